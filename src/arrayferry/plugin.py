"""The plugin-author API: everything a framework adapter, or its test suite, may import.

A plugin imports ``arrayferry``, ``arrayferry.plugin`` and ``arrayferry.testing``, nothing else
from arrayferry. The built-in adapters (``arrayferry.adapters.numpy``, ``torch``, ``cupy``) are
held to the same rule (``tests/test_plugin_api.py`` walks their imports), so a plugin written
from outside can do anything a built-in one does.

What is here, by job:

* **the protocol**: :class:`Adapter` (subclass it), :class:`ArrayInfo` (what ``describe``
  returns), :class:`Step` and :func:`identity` (what route methods return), :class:`Device`,
  :data:`CPU`, :data:`LAYOUTS`, :data:`ROUTE_METHODS` (which methods implement which route:
  an adapter declaring a route without them is refused at registration), and :data:`hookimpl`
  (mark ``arrayferry_adapters``); target options (``convert(x, "dask", chunks=...)``) are
  declared in ``Adapter.target_options`` and applied by ``Adapter.apply_options``, which raises
  :class:`ArgumentError` for a value the framework cannot take (docs/plugins.md, "Target options");
  source options (how to read your arrays: Arrow's ``fill_null=``) in ``Adapter.source_options``,
  applied by ``Adapter.source_step`` (docs/plugins.md, "Source options");
* **errors**: the exception hierarchy and :func:`format_message`, which writes the
  several-line message every arrayferry error carries (what was asked, what was tried, a ``Hint:``);
* **dtypes**: the canonical names (:data:`CANONICAL_DTYPES`), their itemsizes (:data:`ITEMSIZE`),
  the ``ml_dtypes`` formats (:data:`ML_DTYPES`), NumPy dtype <-> name (:func:`numpy_dtype`,
  :func:`numpy_dtype_name`, :func:`canonical_name`), kinds and narrowing (:func:`kind_of`,
  :func:`is_narrowing`), and NumPy's flag bits (``NPY_*``) for a fast ``describe``;
* **casts and host copies**: the value checks of the casting policy (:func:`check_cast_values`,
  :func:`device_check`), NumPy's cast fused with them (:func:`host_cast`), and the host copy step
  the planner itself uses (:func:`host_copy_step`);
* **the hot path**: :func:`guarded_call`, the guard of a direct call (``Adapter.direct_call``)
  without a Python frame;
* **streams and CUDA**: the ``stream=`` argument (:func:`parse_stream`, :func:`requested_stream`,
  :func:`with_requested_stream`, :class:`StreamSpec`), DLPack and ``__cuda_array_interface__``
  consumption (:func:`consume_dlpack`, :func:`producer_stream`, :class:`CAIView`), the streams
  torch and CuPy work should run on (:func:`torch_stream_context`, :func:`cupy_stream_context`,
  :func:`cupy_stream`, :func:`cupy_external_stream`), and CUDA failures mapped to
  :class:`DeviceError` (:func:`is_cuda_error`, :func:`device_error_from`), and a DLPack capsule
  read in place without consuming it (:func:`read_dlpack_capsule`, :class:`DLPackCapsuleInfo`);
* **the registry, read-only**: :func:`adapters` and :func:`adapter_named`, and
  :func:`dlpack_readonly_reason` (whether read-only memory may cross DLPack between two
  registered frameworks, probed per version).

Everything is re-exported from the private modules that implement it: one object, one name.
Importing this module imports no array framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._adapter import (
    CPU,
    LAYOUTS,
    NPY_ALIGNED,
    NPY_C_CONTIGUOUS,
    NPY_F_CONTIGUOUS,
    NPY_OWNDATA,
    NPY_WRITEABLE,
    ROUTE_METHODS,
    Adapter,
    ArrayInfo,
    Step,
    identity,
)
from ._device import Device
from ._dtypes import CANONICAL as CANONICAL_DTYPES
from ._dtypes import ITEMSIZE, ML_DTYPES, canonical_name, is_narrowing, kind_of, numpy_dtype, numpy_dtype_name
from ._errors import (
    ArgumentError,
    ArrayFerryError,
    CopyRequiredError,
    DeviceError,
    LossyConversionError,
    LossyConversionWarning,
    MixedFrameworksError,
    PluginError,
    UnknownFrameworkError,
    UnsupportedArrayError,
    UnsupportedDTypeError,
    format_message,
)
from ._hostops import CASTING, check_cast_values, device_check, guarded_call, host_cast, host_copy_step
from ._markers import hookimpl

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._capabilities import dlpack_readonly_reason
    from ._cuda import (
        LEGACY_DEFAULT_STREAM,
        NO_SYNC,
        PER_THREAD_DEFAULT_STREAM,
        CAIView,
        StreamSpec,
        consume_dlpack,
        cupy_external_stream,
        cupy_stream,
        cupy_stream_context,
        device_error_from,
        is_cuda_error,
        parse_stream,
        producer_stream,
        requested_stream,
        torch_stream_context,
        with_requested_stream,
    )
    from ._dlpack_abi import DLPackCapsuleInfo, read_dlpack_capsule

# Streams, CUDA, DLPack capsules and capabilities load on first use (PEP 562), so a plugin that
# imports them by name at the top pays for them then; the built-in adapters reach them inside
# the routes that need them, and a first conversion that needs none of them never loads them.
_LAZY: dict[str, str] = {
    "dlpack_readonly_reason": "._capabilities",
    **dict.fromkeys(
        ("LEGACY_DEFAULT_STREAM", "NO_SYNC", "PER_THREAD_DEFAULT_STREAM", "CAIView", "StreamSpec", "consume_dlpack",
         "cupy_external_stream", "cupy_stream", "cupy_stream_context", "device_error_from", "is_cuda_error",
         "parse_stream", "producer_stream", "requested_stream", "torch_stream_context", "with_requested_stream"),
        "._cuda",
    ),
    "DLPackCapsuleInfo": "._dlpack_abi",
    "read_dlpack_capsule": "._dlpack_abi",
}

__all__ = [
    # the protocol
    "Adapter",
    "ArrayInfo",
    "Step",
    "identity",
    "Device",
    "CPU",
    "LAYOUTS",
    "ROUTE_METHODS",
    "hookimpl",
    # errors
    "ArrayFerryError",
    "ArgumentError",
    "CopyRequiredError",
    "DeviceError",
    "LossyConversionError",
    "LossyConversionWarning",
    "MixedFrameworksError",
    "PluginError",
    "UnknownFrameworkError",
    "UnsupportedArrayError",
    "UnsupportedDTypeError",
    "format_message",
    # dtypes
    "CANONICAL_DTYPES",
    "ITEMSIZE",
    "ML_DTYPES",
    "canonical_name",
    "numpy_dtype",
    "numpy_dtype_name",
    "kind_of",
    "is_narrowing",
    "NPY_C_CONTIGUOUS",
    "NPY_F_CONTIGUOUS",
    "NPY_OWNDATA",
    "NPY_ALIGNED",
    "NPY_WRITEABLE",
    # casts and host copies
    "CASTING",
    "check_cast_values",
    "device_check",
    "host_cast",
    "host_copy_step",
    # the hot path
    "guarded_call",
    # streams and CUDA
    "LEGACY_DEFAULT_STREAM",
    "PER_THREAD_DEFAULT_STREAM",
    "NO_SYNC",
    "StreamSpec",
    "parse_stream",
    "requested_stream",
    "with_requested_stream",
    "consume_dlpack",
    "producer_stream",
    "CAIView",
    "torch_stream_context",
    "cupy_stream_context",
    "cupy_stream",
    "cupy_external_stream",
    "is_cuda_error",
    "device_error_from",
    "DLPackCapsuleInfo",
    "read_dlpack_capsule",
    # the registry, read-only
    "adapters",
    "adapter_named",
    "dlpack_readonly_reason",
]


def adapters() -> Mapping[str, Adapter]:
    """The registered adapters by framework name (a read-only view; loads the registry)."""
    from types import MappingProxyType

    from ._registry import registry

    return MappingProxyType(registry().adapters)


def adapter_named(name: object) -> Adapter:
    """The adapter for a framework name or alias (``"np"``, ``"pt"`` ...), as ``convert(to=)`` reads it.

    Raises :class:`UnknownFrameworkError` (with the registered names and a hint) when none matches.
    """
    from ._registry import registry

    return registry().adapter_named(name)


def __getattr__(name: str) -> Any:
    modname = _LAZY.get(name)
    if modname is None:
        raise AttributeError(f"module 'arrayferry.plugin' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(modname, "arrayferry"), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
