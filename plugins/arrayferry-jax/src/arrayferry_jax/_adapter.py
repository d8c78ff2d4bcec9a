"""The JAX adapter: what arrayferry's planner needs to know about ``jax.Array``.

Each rule below is a trap of JAX's own conversion calls (observed with jax 0.10.2 on CPU); the
adapter declares it to the planner so that plans route around it and say so:

* **Immutable buffers.** JAX never writes into an array, so a JAX array is described as
  read-only: NumPy may alias it (the view is read-only), torch may not (``torch.from_dlpack``
  would hand out a writable alias of memory JAX believes immutable), so ``jax -> torch`` copies,
  and ``copy=False`` raises :class:`arrayferry.CopyRequiredError`. ``torch.asarray(jax_array)``
  (which reads the bytes as flat float32) is never used.
* **Casts.** XLA flushes subnormal floats to zero when it casts (``1e-40`` in float32 cast to
  bool gives ``False``), and with x64 off ``astype`` to a 64-bit type is a silent no-op that
  returns the same immutable buffer. :meth:`JaxAdapter.cast_differs` says so, so the planner casts
  float sources on the host with NumPy (or in the target), never with ``astype``; a requested
  64-bit dtype is delivered (cast on the host) or, into JAX without x64, refused with a hint.
* **Silent 64-bit narrowing.** With ``jax_enable_x64`` off (JAX's default) every JAX entry point
  turns int64/uint64/float64/complex128 into 32-bit types without a word.
  :meth:`JaxAdapter.default_dtype_for` reports the narrowing so the planner refuses it for integers
  (:class:`arrayferry.LossyConversionError` unless ``dtype=`` asks for it) and warns for floats.
  The flag is part of :meth:`JaxAdapter.refine_key`, so toggling it never reuses a stale plan.
* **Conditional zero-copy.** ``jax.device_put`` and ``jax.dlpack.from_dlpack`` alias host memory
  only when its address is a multiple of 64 and silently copy otherwise; ``device_put`` also
  copies anything that is not C-contiguous. :meth:`JaxAdapter.refine_key` reads the source's data
  pointer so the plan knows which; when the plan says "copy", the import copies explicitly
  (``jnp.array``), so ``plan.zero_copy`` is exact either way.
* **Immutability.** JAX's docs call writing to memory a JAX array aliases undefined behaviour,
  yet its imports alias writable memory. The adapter is ``immutable``: ``copy=None`` copies
  writable memory, ``copy=False`` aliases it and the plan's notes say not to write the source.
* **Layouts.** A JAX array imported zero-copy from column-major memory keeps that layout, and
  ``np.asarray`` of it copies: the layout is in the signature (two dimensions and more) and
  leaving JAX from it is a planned ``relayout`` copy.
* **Legacy DLPack.** JAX asks producers for an unversioned capsule, which cannot carry a read-only
  flag (NumPy raises ``BufferError`` for read-only arrays), and accepts only compact strides.
* **Several host devices.** With ``--xla_force_host_platform_device_count=N`` JAX has CPU devices
  ``cpu:0`` ... ``cpu:N-1``; ``device="cpu:2"`` (or a ``jax.Device``) lands the result there.

Nothing here imports JAX at import time: the framework is imported on first conversion.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import Any

from arrayferry.plugin import (
    CANONICAL_DTYPES,
    ML_DTYPES,
    Adapter,
    ArrayInfo,
    Device,
    DeviceError,
    Step,
    UnsupportedArrayError,
    UnsupportedDTypeError,
    format_message,
)

__all__ = ["JaxAdapter"]

#: What JAX stores 64-bit types as while ``jax_enable_x64`` is off.
NARROW_WITHOUT_X64: dict[str, str] = {
    "int64": "int32",
    "uint64": "uint32",
    "float64": "float32",
    "complex128": "complex64",
}
#: JAX aliases host memory only at this alignment.
ALIGNMENT = 64
#: arrayferry device types and JAX's platform names.
_PLATFORM_OF = {"cpu": "cpu", "cuda": "gpu", "rocm": "gpu", "tpu": "tpu"}
_TYPE_OF = {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda", "rocm": "rocm", "tpu": "tpu"}

_CPU = Device("cpu")


def _jax() -> Any:
    return sys.modules["jax"]


def _np_dtype(name: str) -> Any:
    import numpy as np

    if name in ML_DTYPES:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


def _dtype_name(dt: Any) -> str:
    """Canonical name of a NumPy/JAX dtype, or its ``str`` when arrayferry has no name for it."""
    name = str(getattr(dt, "name", dt))
    return name if name in CANONICAL_DTYPES else str(dt)


class JaxAdapter(Adapter):
    """Adapter for ``jax.Array`` (single-device arrays; sharded arrays are refused with a hint)."""

    name = "jax"
    module = "jax"
    aliases = ("jnp", "jax.numpy")
    distribution = "jax"
    min_version = "0.4.30"
    readonly_capable = True  # JAX never writes into an array it holds
    #: JAX arrays are immutable; its docs call writing to memory a JAX array aliases undefined
    #: behaviour (jax.dlpack.from_dlpack), so copy=None copies writable sources (see Adapter.immutable)
    immutable = True
    host_export = True
    host_import = True
    dlpack_export = True
    dlpack_import = True
    priority = 0
    refines = True  # zero-copy import depends on the source's alignment and on jax_enable_x64
    array_api_namespace = "jax.numpy"
    dlpack_consumer = "jax.dlpack:from_dlpack"

    def __init__(self) -> None:
        self._jdev_cache: dict[Device, Any] = {}

    def native_call(self, source: str, target: str) -> tuple[str, Callable[[Any], Any]] | None:
        if target != "jax":
            return None
        if source == "torch":
            import jax.dlpack

            return "jax.dlpack.from_dlpack", jax.dlpack.from_dlpack
        import jax.numpy as jnp

        return "jnp.asarray", jnp.asarray

    # -- detection -------------------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        jax = _jax()
        if issubclass(tp, jax.Array):
            return True
        tracer = getattr(getattr(jax, "core", None), "Tracer", None)  # jit/grad/vmap placeholders
        return tracer is not None and issubclass(tp, tracer)

    def signature(self, x: Any) -> Hashable:
        # The layout only matters from two dimensions on: a JAX array imported zero-copy from
        # column-major or permuted memory keeps that layout, and leaving JAX then copies (see
        # ``prepare``). ``x._pjrt_layout`` (hashable, compared by value) costs about 0.1 us against
        # 1.5 us for the public ``x.format``, which is the fallback and what ``describe`` reads.
        try:
            if x.ndim > 1:
                try:
                    lay: Any = x._pjrt_layout
                    hash(lay)
                except Exception:
                    lay = self._layout(x)
                return (type(x), x.dtype, x.sharding, x.is_deleted(), lay)
            return (type(x), x.dtype, x.sharding, x.is_deleted())
        except Exception:  # tracers and other abstract values: the type says it all
            return (type(x), "abstract")

    def describe(self, x: Any) -> ArrayInfo:
        jax = _jax()
        tracer = getattr(getattr(jax, "core", None), "Tracer", None)
        dname = _dtype_name(x.dtype)
        shape = tuple(x.shape)
        itemsize = int(getattr(x.dtype, "itemsize", 0))
        if tracer is not None and isinstance(x, tracer):
            return ArrayInfo("jax", dname, shape, itemsize=itemsize, readonly=True, problem=(
                UnsupportedArrayError,
                format_message(f"Cannot convert a traced JAX value ({type(x).__name__}, {dname} {shape}): inside jax.jit, "
                         "jax.grad or jax.vmap it is a placeholder without data.",
                         hint="convert outside the transformed function (return the value, then convert it), "
                         "or use jax.pure_callback to leave JAX"),
            ))
        if x.is_deleted():
            return ArrayInfo("jax", dname, shape, itemsize=itemsize, readonly=True, problem=(
                UnsupportedArrayError,
                format_message(f"Cannot convert a deleted JAX array ({dname} {shape}): its buffer was freed "
                         "(x.delete() or donation to a jitted function).",
                         hint="convert it before deleting or donating it"),
            ))
        devs = x.devices()
        if len(devs) != 1:
            return ArrayInfo("jax", dname, shape, itemsize=itemsize, readonly=True, problem=(
                UnsupportedArrayError,
                format_message(f"Cannot convert a JAX array sharded over {len(devs)} devices ({dname} {shape}): "
                         "its data is not one buffer.",
                         hint="gather it first (jax.device_put(x, jax.devices()[0])) or convert each "
                         "shard (x.addressable_shards[i].data)"),
            ))
        return ArrayInfo(
            framework="jax",
            dtype=dname,
            shape=shape,
            device=self._device(next(iter(devs))),
            readonly=True,
            layout=self._layout(x),
            itemsize=itemsize,
        )

    @staticmethod
    def _layout(x: Any) -> str:
        """JAX arrays are dense; one imported over DLPack may keep a transposed (compact) layout."""
        try:
            order = tuple(x.format.layout.major_to_minor)
        except Exception:
            try:  # JAX before ``format`` (0.4.30): the layout prints its minor-to-major order, "{0,1}"
                import re

                m = re.search(r"\{([\d,\s]+)", str(x.layout.device_local_layout))
                assert m is not None
                order = tuple(reversed([int(v) for v in m.group(1).split(",") if v.strip()]))
            except Exception:
                return "contiguous"
        n = len(order)
        if n < 2 or order == tuple(range(n)):
            return "contiguous"
        return "fortran" if order == tuple(range(n - 1, -1, -1)) else "strided"

    def device_of(self, x: Any) -> Device:
        devs = x.devices()
        if len(devs) != 1:
            return self.describe(x).device  # raises nothing; problem is reported on conversion
        return self._device(next(iter(devs)))

    def data_pointer(self, x: Any) -> int | None:
        try:
            return int(x.unsafe_buffer_pointer())
        except Exception:
            return None

    def refine_key(self, source: Adapter, x: Any) -> tuple[tuple[str, Any], ...]:
        """``aligned64`` (True/False, None when the source cannot say) and ``x64`` (JAX's flag)."""
        if source is self:  # a JAX buffer: JAX moves it between its devices itself (see import_copies)
            return (("aligned64", None), ("jax_buffer", True), ("x64", self._x64()))
        try:
            ptr = source.data_pointer(x)
        except Exception:
            ptr = None
        aligned = None if ptr is None else ptr % ALIGNMENT == 0
        if not aligned:
            try:
                if source.describe(x).size == 0:
                    aligned = True  # an empty array: nothing to alias or copy, wherever it points
            except Exception:
                pass
        return (("aligned64", aligned), ("x64", self._x64()))

    def parse_device(self, obj: Any) -> Device | None:
        dev_type = getattr(_jax(), "Device", None)
        if dev_type is not None and isinstance(obj, dev_type):
            return self._device(obj)
        return None

    def parse_dtype(self, obj: Any) -> str | None:
        # jnp.float32, jnp.bfloat16 ...: JAX scalar types whose ``dtype`` is a NumPy dtype
        if type(obj).__module__.startswith("jax") and hasattr(obj, "dtype"):
            name = _dtype_name(obj.dtype)
            return name if name in CANONICAL_DTYPES else None
        return None

    # -- devices ---------------------------------------------------------------------------
    @staticmethod
    def _device(d: Any) -> Device:
        kind = _TYPE_OF.get(str(d.platform), str(d.platform))
        if kind == "cpu":
            return Device("cpu", int(d.id))
        idx = getattr(d, "local_hardware_id", None)
        return Device(kind, int(d.id if idx is None else idx))

    def _x64(self) -> bool:
        jax = self.namespace()
        try:
            return bool(jax.config.jax_enable_x64)
        except AttributeError:  # older spelling
            return bool(jax.config.read("jax_enable_x64"))

    def devices(self) -> list[Device]:
        jax = self.namespace()
        out: list[Device] = []
        for plat in ("cpu", "gpu", "tpu"):
            try:
                out.extend(self._device(d) for d in jax.devices(plat))
            except RuntimeError:  # backend not present
                continue
        return out

    def _jax_device(self, device: Device) -> Any:
        """The ``jax.Device`` for ``device`` (raises :class:`DeviceError`)."""
        got = self._jdev_cache.get(device)
        if got is not None:
            return got
        jax = self.namespace()
        plat = _PLATFORM_OF.get(device.type)
        found = None
        avail: list[Device] = []
        if plat is not None:
            try:
                cands = list(jax.devices(plat))
            except RuntimeError:
                cands = []
            want = Device(device.type, device.index if device.index is not None else (None if device.type == "cpu" else 0))
            for d in cands:
                dv = self._device(d)
                avail.append(dv)
                if dv == want and found is None:
                    found = d
        if found is None:
            seen = ", ".join(str(d) for d in (avail or self.devices())) or "none"
            raise DeviceError(
                format_message(
                    f"JAX has no device {str(device)!r} (asked for as the target device).",
                    [f"JAX sees: {seen}"],
                    hint="pick one of the devices listed; for several host devices set "
                    "XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX is imported",
                )
            )
        self._jdev_cache[device] = found
        return found

    def check_device(self, device: Device) -> None:
        self._jax_device(device)

    def _is_default(self, device: Device) -> bool:
        """True when ``device`` is where JAX puts uncommitted arrays (so none is named)."""
        jax = self.namespace()
        return self._device(jax.devices()[0]) == device

    def supports_dtype(self, dtype: str, device: Device) -> bool:
        if dtype not in CANONICAL_DTYPES:
            return False
        return self._x64() or dtype not in NARROW_WITHOUT_X64

    def dtype_hint(self, dtype: str, device: Device) -> str | None:
        if dtype in NARROW_WITHOUT_X64 and not self._x64():
            return (f"JAX holds 64-bit types only with x64 enabled: call jax.config.update('jax_enable_x64', True) "
                    f"before creating arrays, or ask for dtype='{NARROW_WITHOUT_X64[dtype]}'")
        return None

    def cast_differs(self, src: str, dst: str, device: Device) -> str | None:
        if src.startswith(("float", "bfloat", "complex")):
            # jnp.array([1e-40], dtype=float32).astype(bool) is False; to float64 (x64) 0.0
            return "XLA flushes subnormal floats to zero in its casts (NumPy keeps them)"
        return None

    def default_dtype_for(self, dtype: str, device: Device) -> str:
        if dtype in NARROW_WITHOUT_X64 and not self._x64():
            return NARROW_WITHOUT_X64[dtype]
        if self.supports_dtype(dtype, device):
            return dtype
        raise UnsupportedDTypeError(format_message(f"JAX cannot hold {dtype} arrays on {device}.",
                                             hint="convert to a numeric dtype first"))

    # -- export (JAX is the source) ----------------------------------------------------------
    def prepare(self, info: ArrayInfo) -> list[Step]:
        if info.layout != "contiguous":
            # np.asarray (and jax.device_get) of a JAX array in a non-default layout (one imported
            # zero-copy from column-major or permuted memory) copies into row-major order: plan that
            # copy, in JAX, so that plan.zero_copy stays exact
            return [Step("relayout", f"copy into JAX's default row-major layout (this array is {info.layout} in "
                         "memory, and JAX exports only row-major buffers without copying)", self._relayout,
                         copies=True)]
        return []

    def _relayout(self, x: Any) -> Any:
        jax = self.namespace()
        if hasattr(x, "format"):  # JAX with Array.format: jnp.array(copy=True) lays the buffer out anew
            return jax.numpy.array(x, copy=True)
        # Older JAX (0.4.30): jnp.array(copy=True) of a buffer that is not row-major raises "Unexpected
        # XLA layout override", or, once compiled, copies its bytes as if they were row-major (values
        # transposed); np.asarray reads it right, so the fresh row-major buffer comes through the host.
        import numpy as np

        return jax.device_put(np.array(x), next(iter(x.devices())))

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy", readonly=True)

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        import numpy as np

        return np.asarray  # a read-only view of the host buffer (bfloat16 comes back as ml_dtypes)

    def export_host(self, x: Any) -> Any:
        import numpy as np

        return np.asarray(x)

    # -- import (JAX is the target) ----------------------------------------------------------
    @staticmethod
    def _aligned(info: ArrayInfo) -> bool | None:
        """True/False from refine_key; True for fresh planner copies (extra cleared); None if unknown."""
        extra = dict(info.extra)
        if "aligned64" not in extra:
            return True  # a host copy made by the plan: 64-byte aligned by arrayferry
        a: bool | None = extra["aligned64"]
        return a

    def host_import_refusals(self, info: ArrayInfo) -> list[str]:
        out = []
        if info.byteorder != "=":
            out.append("JAX holds native byte order only (jax.device_put raises TypeError on non-native dtypes)")
        return out

    def import_copies(self, info: ArrayInfo) -> str | None:
        if dict(info.extra).get("jax_buffer"):
            return ("the source is a JAX array: between JAX devices a buffer moves by a transfer (device_put), "
                    "never by aliasing another device's memory")
        why = []
        if info.layout != "contiguous":
            why.append(f"jax.device_put copies arrays that are not C-contiguous (this one is {info.layout})")
        aligned = self._aligned(info)
        if aligned is False:
            why.append(f"the data pointer is not {ALIGNMENT}-byte aligned, and JAX aliases only aligned host memory")
        elif aligned is None:
            why.append(f"the source's data pointer is unknown, so whether JAX could alias it ({ALIGNMENT}-byte "
                       "alignment) cannot be predicted; arrayferry copies")
        return "; ".join(why) or None

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        jax = self.namespace()
        jdev = None if self._is_default(info.device) else self._jax_device(info.device)
        if self.import_copies(info):
            jnp = jax.numpy
            if _accepts_keyword(jnp.array, "device"):

                def import_copy(a: Any) -> Any:
                    return jnp.array(a, copy=True, device=jdev)  # always fresh memory, as the plan says

            else:  # older JAX (0.4.30): jnp.array has no device=; copy, then place
                put = jax.device_put

                def import_copy(a: Any) -> Any:
                    out = jnp.array(a, copy=True)
                    return out if jdev is None else put(out, jdev)

            return import_copy
        device_put = jax.device_put

        def import_alias(a: Any) -> Any:
            return device_put(a, jdev)  # aliases: C-contiguous and 64-byte aligned

        return import_alias

    def import_host(self, arr: Any) -> Any:
        from arrayferry import plan

        return plan(arr, self.name).execute(arr)

    def dlpack_import_refusals(self, info: ArrayInfo) -> list[str]:
        if info.framework == "jax":
            return ["JAX to JAX is done natively (device_put, astype, copy), not through DLPack"]
        out = []
        plat = _PLATFORM_OF.get(info.device.type)
        if plat is None or (not info.device.is_host and not self._has_platform(plat)):
            out.append(f"JAX has no backend for {info.device} here")
        if info.readonly:
            out.append("JAX asks for a legacy (unversioned) DLPack capsule, which cannot mark memory read-only, "
                       "so read-only arrays cannot travel over it (the producer raises BufferError)")
        if info.layout in ("strided", "broadcast", "negative"):
            out.append(f"jax.dlpack.from_dlpack accepts only compact strides (this array is {info.layout})")
        if info.framework == "numpy" and info.dtype in ML_DTYPES:
            out.append(f"NumPy cannot export {info.dtype} through DLPack")
        if not info.extra:
            out.append(f"memory copied by an earlier step is not guaranteed to be {ALIGNMENT}-byte aligned, and "
                       "jax.dlpack.from_dlpack copies unaligned memory silently")
        elif self._aligned(info) is False:
            out.append(f"the data pointer is not {ALIGNMENT}-byte aligned, so jax.dlpack.from_dlpack would copy silently")
        elif self._aligned(info) is None:
            out.append(f"the source's data pointer is unknown, so whether jax.dlpack.from_dlpack copies "
                       f"({ALIGNMENT}-byte alignment) cannot be predicted")
        return out

    def _has_platform(self, plat: str) -> bool:
        try:
            return bool(self.namespace().devices(plat))
        except RuntimeError:
            return False

    def from_dlpack(self, x: Any) -> Any:
        import importlib

        return importlib.import_module("jax.dlpack").from_dlpack(x)

    # -- native operations -------------------------------------------------------------------
    def copy(self, x: Any) -> Any:
        return self.namespace().numpy.array(x, copy=True)

    def cast(self, x: Any, dtype: str) -> Any:
        return x.astype(_np_dtype(dtype))

    def to_host(self, x: Any) -> Any:
        jax = self.namespace()
        return jax.device_put(x, jax.devices("cpu")[0])

    def to_device(self, x: Any, device: Device) -> Any:
        return self.namespace().device_put(x, self._jax_device(device))


def _accepts_keyword(fn: Any, name: str) -> bool:
    """Whether ``fn`` takes keyword ``name`` (feature detection, not version numbers)."""
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
