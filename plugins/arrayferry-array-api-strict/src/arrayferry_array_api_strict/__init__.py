"""arrayferry plugin for array-api-strict (``import array_api_strict as xs``).

array-api-strict is the reference implementation of the Python array API standard: a thin,
strict wrapper around a NumPy array. This plugin teaches arrayferry to convert its arrays to and
from every other framework, bit for bit and zero-copy where that is safe.

How it reaches the memory (public API only, on every path that moves data):

* **export**: ``numpy.from_dlpack(x)`` (the array's ``__dlpack__``; versioned DLPack, so a
  read-only array comes back as a read-only NumPy view, never a writable alias);
* **import**: ``xs.asarray(numpy_array)`` (aliases; a read-only NumPy array stays read-only:
  assignments raise ``ValueError``) or ``xs.from_dlpack`` for DLPack producers such as torch;
* **signature** (the plan-cache key, read on every ``convert``): reads the wrapped NumPy array's
  flags through ``x._array`` when it is an ``ndarray`` because ``numpy.from_dlpack`` costs about
  4 µs per call; it falls back to ``numpy.from_dlpack`` when that private attribute is missing.

Traps it routes around:

* ``torch.as_tensor``/``torch.asarray``/``torch.from_dlpack`` of an array-api-strict array with
  a negative stride **abort the process**. The plugin reports such arrays with layout
  ``"negative"``, so the planner copies them into positive strides before torch sees them.
* Devices: ``CPU_DEVICE`` is arrayferry's ``cpu``; ``device1``, ``device2``, ``no_float64`` and
  ``no_x64`` become ``Device("device1")`` etc. They are not host memory (``np.asarray`` refuses
  them), so leaving them is a planned copy (``to_device``); ``no_float64`` and ``no_x64`` refuse
  the dtypes they cannot hold with :class:`arrayferry.UnsupportedDTypeError` unless ``dtype=``
  asks for the narrowing.
* array-api-strict has no float16, bfloat16, float8, non-native byte order, object, string or
  datetime dtypes: such conversions raise :class:`arrayferry.UnsupportedDTypeError` with a hint.

Importing this module does not import array-api-strict.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Hashable
from typing import Any

from arrayferry.plugin import (
    NPY_ALIGNED,
    NPY_C_CONTIGUOUS,
    NPY_F_CONTIGUOUS,
    NPY_WRITEABLE,
    Adapter,
    ArrayInfo,
    Device,
    DeviceError,
    UnsupportedDTypeError,
    check_cast_values,
    hookimpl,
    host_cast,
)

__all__ = ["ArrayApiStrictAdapter", "arrayferry_adapters", "__version__"]

__version__ = "0.1.0"

_MODULE = "array_api_strict"
_CPU = Device("cpu")
_C, _F, _ALIGNED, _WRITEABLE = NPY_C_CONTIGUOUS, NPY_F_CONTIGUOUS, NPY_ALIGNED, NPY_WRITEABLE
_MASK = _C | _F | _ALIGNED | _WRITEABLE
_DEVICE_NAME = re.compile(r"Device\('([^']*)'\)")


def _msg(asked: str, tried: list[str] | tuple[str, ...] = (), hint: str | None = None) -> str:
    """Message layout shared with arrayferry: what was asked, what was tried, ``Hint:`` line."""
    lines = [asked, *(f"  - {t}" for t in tried)]
    if hint:
        lines.append(f"Hint: {hint}")
    return "\n".join(lines)


def _xs() -> Any:
    return sys.modules[_MODULE]


def _np() -> Any:
    import numpy

    return numpy


def _numpy_view(x: Any) -> Any:
    """A NumPy view of ``x``'s memory through DLPack (public API; read-only carried; works on
    every xs device, since array-api-strict exports each of them as CPU memory)."""
    return _np().from_dlpack(x)


def _host_view(x: Any) -> Any:
    """The host route's export: a NumPy view through ``__array__`` (public API: no copy, the
    read-only flag carried). 0.5 us against 4 us for ``np.from_dlpack``, and unlike it it works
    on NumPy < 2.1 for read-only memory (legacy DLPack cannot say read-only). Only CPU_DEVICE
    arrays reach it (``np.asarray`` refuses the others): the planner stages them first."""
    return _np().asarray(x)


class ArrayApiStrictAdapter(Adapter):
    """Adapter for ``array_api_strict.Array`` (a strict wrapper around a NumPy array)."""

    name = "array_api_strict"
    module = _MODULE
    aliases = ("xs", "array-api-strict", "array_api_strict.Array")
    distribution = "array-api-strict"
    min_version = "2.3"
    #: a read-only NumPy array wrapped by ``xs.asarray`` stays read-only (writes raise).
    readonly_capable = True
    host_export = True
    host_import = True
    dlpack_export = True
    dlpack_import = True
    priority = 0
    array_api_namespace = _MODULE

    def __init__(self) -> None:
        self._array_type: type | None = None
        self._dev_to_af: dict[Any, Device] | None = None
        self._af_to_dev: dict[Device, Any] | None = None
        self._dtypes: dict[Device, dict[str, Any]] = {}
        self._dtype_names: dict[Any, str] | None = None

    def native_call(self, source: str, target: str) -> tuple[str, Callable[[Any], Any]] | None:
        if target == self.name and source in ("numpy", "object"):
            return "xs.asarray", _xs().asarray
        if target == self.name and source == "torch":
            return "xs.from_dlpack", _xs().from_dlpack
        return None

    # -- framework facts (computed once, only after array_api_strict is imported) ----------
    def _array_cls(self) -> type:
        tp = self._array_type
        if tp is None:
            tp = self._array_type = type(self.namespace().asarray(0))
        return tp

    def _device_maps(self) -> tuple[dict[Any, Device], dict[Device, Any]]:
        if self._dev_to_af is None or self._af_to_dev is None:
            info = self.namespace().__array_namespace_info__()
            to_af: dict[Any, Device] = {}
            for d in info.devices():
                m = _DEVICE_NAME.search(repr(d))
                label = m.group(1) if m else str(d)
                to_af[d] = _CPU if label == "CPU_DEVICE" else Device(label.lower())
            self._dev_to_af = to_af
            self._af_to_dev = {v: k for k, v in to_af.items()}
        return self._dev_to_af, self._af_to_dev

    def _xs_device(self, device: Device) -> Any:
        _, to_xs = self._device_maps()
        d = to_xs.get(device)
        if d is None:
            self.check_device(device)  # raises with the list of devices
        return d

    def _supported(self, device: Device) -> dict[str, Any]:
        got = self._dtypes.get(device)
        if got is None:
            info = self.namespace().__array_namespace_info__()
            got = self._dtypes[device] = dict(info.dtypes(device=self._xs_device(device)))
        return got

    def _xs_dtype(self, name: str) -> Any:
        return self._supported(_CPU)[name]

    # -- detection ---------------------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        return issubclass(tp, self._array_cls())

    def _host_array(self, x: Any) -> Any:
        arr = getattr(x, "_array", None)
        np = _np()
        if type(arr) is np.ndarray:
            return arr
        return _numpy_view(x)

    def signature(self, x: Any) -> Hashable:
        a = self._host_array(x)
        n = a.flags.num
        if n & 3:
            st = a.strides
            if st and min(st) < 0:  # contiguous flags ignore strides of length-1 axes
                return (type(x), x.dtype, x.device, n & _MASK, "negative")
            if st and min(a.shape) < 2:  # odd strides of length-1 axes (Adapter.stride_flags)
                return (type(x), x.dtype, x.device, n & _MASK, self.stride_flags(st, a.shape, a.itemsize))
            return (type(x), x.dtype, x.device, n & _MASK)
        return (type(x), x.dtype, x.device, n & _MASK, self.numpy_layout(a.strides, a.shape, False, False),
                self.stride_flags(a.strides, a.shape, a.itemsize))

    def describe(self, x: Any) -> ArrayInfo:
        a = self._host_array(x)
        flags = a.flags.num
        st = a.strides
        if flags & 3 and st and min(st) < 0:
            layout = "negative"
        else:
            layout = self.numpy_layout(st, a.shape, bool(flags & _C), bool(flags & _F))
        return ArrayInfo(
            framework=self.name,
            dtype=a.dtype.name,
            shape=tuple(x.shape),
            device=self.device_of(x),
            readonly=not flags & _WRITEABLE,
            layout=layout,
            aligned=bool(flags & _ALIGNED),
            flags=self.stride_flags(st, a.shape, a.itemsize),
            itemsize=a.dtype.itemsize,
        )

    def device_of(self, x: Any) -> Device:
        to_af, _ = self._device_maps()
        d = to_af.get(x.device)
        if d is None:
            m = _DEVICE_NAME.search(repr(x.device))
            d = Device((m.group(1) if m else str(x.device)).lower())
        return d

    def data_pointer(self, x: Any) -> int | None:
        try:  # the wrapped ndarray (DLPack cannot export strides that are not a multiple of the itemsize)
            return int(self._host_array(x).__array_interface__["data"][0])
        except BufferError:
            return None

    def byte_strides(self, x: Any) -> tuple[int, ...] | None:
        """Strides in bytes, for ``arrayferry.shares_memory`` (any strides, odd ones too)."""
        try:
            return tuple(self._host_array(x).strides)
        except BufferError:
            return None

    def parse_device(self, obj: Any) -> Device | None:
        if isinstance(obj, self.namespace().Device):
            to_af, _ = self._device_maps()
            return to_af.get(obj)
        return None

    def parse_dtype(self, obj: Any) -> str | None:
        names = self._dtype_names
        if names is None:
            names = self._dtype_names = {v: k for k, v in self._supported(_CPU).items()}
        try:
            return names.get(obj)
        except TypeError:  # unhashable
            return None

    # -- devices and dtypes ------------------------------------------------------------------
    def devices(self) -> list[Device]:
        to_af, _ = self._device_maps()
        return list(to_af.values())

    def check_device(self, device: Device) -> None:
        _, to_xs = self._device_maps()
        if device not in to_xs:
            known = ", ".join(repr(str(d)) for d in to_xs)
            raise DeviceError(
                _msg(
                    f"array-api-strict has no device {str(device)!r}.",
                    [f"its devices: {known} (array_api_strict.Device('CPU_DEVICE') is 'cpu')"],
                    hint="pass one of those names, or an array_api_strict.Device object",
                )
            )

    def supports_dtype(self, dtype: str, device: Device) -> bool:
        return dtype in self._supported(device)

    def default_dtype_for(self, dtype: str, device: Device) -> str:
        if dtype in self._supported(device):
            return dtype
        if dtype in self._supported(_CPU):
            raise UnsupportedDTypeError(
                _msg(
                    f"array-api-strict device {str(device)!r} cannot hold {dtype}.",
                    [f"dtypes on {str(device)!r}: {', '.join(sorted(self._supported(device)))}"],
                    hint="pass dtype= with one of those (e.g. dtype='float32' narrows explicitly), or use device='cpu'",
                )
            )
        raise UnsupportedDTypeError(
            _msg(
                f"array-api-strict has no {dtype} dtype.",
                [f"array-api-strict dtypes: {', '.join(sorted(self._supported(_CPU)))}"],
                hint="pass dtype='float32' (or another dtype from the list) to cast explicitly",
            )
        )

    # -- routes ------------------------------------------------------------------------------
    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy")

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        return _host_view

    def export_host(self, x: Any) -> Any:
        return _host_view(x)

    def host_import_refusals(self, info: ArrayInfo) -> list[str]:
        if info.byteorder != "=":
            return ["array-api-strict holds native byte order only (a byte swap is needed)"]
        return []

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        asarray = self.namespace().asarray

        def import_host(arr: Any) -> Any:
            return asarray(arr, copy=False)

        return import_host

    def import_host(self, arr: Any) -> Any:
        return self.namespace().asarray(arr, copy=False)

    def dlpack_import_refusals(self, info: ArrayInfo) -> list[str]:
        out = self.host_import_refusals(info)
        if not info.device.is_host:
            out.append(f"xs.from_dlpack reads host memory only; the source is on {info.device}")
        return out

    def from_dlpack(self, x: Any) -> Any:
        return self.namespace().from_dlpack(x)

    # -- native operations -------------------------------------------------------------------
    def copy(self, x: Any) -> Any:
        # asarray(copy=True) copies in NumPy's order 'K': negative strides come out positive.
        return self.namespace().asarray(x, copy=True)

    def check_cast(self, x: Any, src: str, dst: str, mode: str = "range") -> None:
        """The casting policy's value check (NaN/inf to integers, values out of range, non-zero
        imaginary parts to reals), on every xs device: the memory is NumPy's (``np.from_dlpack``)."""
        check_cast_values(_numpy_view(x), src, dst, mode=mode)

    def checked_cast(self, x: Any, src: str, dst: str, mode: str | None) -> Any:
        """On ``CPU_DEVICE`` with a value check: NumPy's cast with the check fused into it (the
        memory is NumPy's), wrapped without a copy; elsewhere ``check_cast`` then ``xs.astype``."""
        if mode is not None and self.device_of(x) == _CPU:
            out = host_cast(_numpy_view(x), src, dst, mode, shape=tuple(x.shape))
            return self.namespace().asarray(out, copy=False)
        return super().checked_cast(x, src, dst, mode)

    def cast_differs(self, src: str, dst: str, device: Device) -> str | None:
        if src.startswith("complex") and not dst.startswith("complex"):
            return "xs.astype refuses complex to real casts (TypeError)"
        return None

    def cast(self, x: Any, dtype: str) -> Any:
        xs = self.namespace()
        with _np().errstate(all="ignore"):  # casting='unsafe' asked for NumPy's result: no RuntimeWarning
            return xs.astype(x, self._xs_dtype(dtype), copy=True)

    def to_host(self, x: Any) -> Any:
        # Array.to_device copies (np.asarray(copy=True)) when the device changes.
        return x.to_device(self._xs_device(_CPU))

    def to_device(self, x: Any, device: Device) -> Any:
        target = self._xs_device(device)
        if x.device == target:
            return self.namespace().asarray(x, copy=True)
        return x.to_device(target)


@hookimpl
def arrayferry_adapters() -> list[Adapter]:
    """The array-api-strict adapter (creating it imports nothing)."""
    return [ArrayApiStrictAdapter()]
