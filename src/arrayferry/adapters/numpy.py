"""The NumPy adapter: the host hub every CPU route passes through.

NumPy aliases anything on the host: any dtype it knows, any strides, read-only memory (the
result stays read-only). It cannot hold device memory.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Hashable
from typing import Any

from arrayferry.plugin import (
    CPU,
    ML_DTYPES,
    NPY_ALIGNED,
    NPY_C_CONTIGUOUS,
    NPY_F_CONTIGUOUS,
    NPY_OWNDATA,
    NPY_WRITEABLE,
    Adapter,
    ArrayInfo,
    Device,
    UnsupportedArrayError,
    format_message,
    hookimpl,
    host_cast,
    identity,
    numpy_dtype,
    numpy_dtype_name,
)

_C, _F, _ALIGNED, _WRITEABLE, _OWNDATA = NPY_C_CONTIGUOUS, NPY_F_CONTIGUOUS, NPY_ALIGNED, NPY_WRITEABLE, NPY_OWNDATA
_MASK = _C | _F | _ALIGNED | _WRITEABLE


def _complex_alignment(x: Any, flags: int) -> int:
    """``flags`` with ALIGNED cleared unless every complex element sits at a multiple of its size.

    NumPy aligns complex types to one component (complex128: 8 bytes), but torch's
    ``c10::complex<double>`` is ``alignas(16)``: writing into a complex128 tensor aliasing memory
    at an 8-byte offset crashes the process (SIGSEGV, torch 2.13). Only complex views pay for this:
    an array owning its data is contiguous at the start of a malloc block (16-byte aligned on the
    64-bit platforms torch supports), so it skips the pointer lookup (about 2 us).
    """
    if flags & _OWNDATA and flags & (_C | _F):
        return flags
    size = x.dtype.itemsize
    if x.__array_interface__["data"][0] % size or any(s % size for s, k in zip(x.strides, x.shape, strict=True) if k > 1):
        return flags & ~_ALIGNED
    return flags


def _odd_strides(a: Adapter, x: Any, flags: int) -> frozenset[str]:
    """``Adapter.stride_flags`` of a NumPy array, skipped when NumPy's flags rule odd strides out.

    A stride that is not a multiple of the itemsize (a structured array's field, an ``as_strided``
    view) clears NumPy's ALIGNED flag on axes longer than 1, except for complex dtypes (aligned to
    one component); length-1 axes (and empty arrays) are never checked by NumPy, so they are
    checked here.
    """
    sh = x.shape
    if flags & _ALIGNED and x.dtype.kind != "c" and 1 not in sh and 0 not in sh:
        return frozenset()
    return a.stride_flags(x.strides, x.shape, x.dtype.itemsize)


class NumpyAdapter(Adapter):
    name = "numpy"
    module = "numpy"
    aliases = ("np",)
    distribution = "numpy"
    min_version = "1.26"
    readonly_capable = True
    numpy_dtypes = True  # any NumPy dtype, datetime64 and strings included
    host_export = True
    host_import = True
    dlpack_export = True
    dlpack_import = True
    priority = 0
    array_api_namespace = "array_api_compat.numpy"

    def native_call(self, source: str, target: str) -> tuple[str, Callable[[Any], Any]] | None:
        if target == "numpy":
            import numpy as np

            return "np.asarray", np.asarray
        return None

    def owns(self, tp: type) -> bool:
        np = sys.modules["numpy"]
        return issubclass(tp, np.ndarray)

    #: dtype, flags and shape, read without a Python frame (about half the cost of ``signature``)
    fast_key = operator.attrgetter("dtype", "flags.num", "shape")

    def fast_key_complete(self, key: Any) -> bool:
        # signature's first case: contiguous and no axis of length 0 or 1 (strides follow from
        # shape and dtype), and no complex view (whose alignment depends on the data pointer)
        dt, n, sh = key
        return bool(n & 3) and 1 not in sh and 0 not in sh and not (n & _ALIGNED and not n & _OWNDATA and dt.kind == "c")

    def signature(self, x: Any) -> Hashable:
        n = x.flags.num
        if n & 3:
            sh = x.shape
            if 1 not in sh and 0 not in sh:  # contiguous, every axis longer than 1: strides follow from the shape
                dt = x.dtype
                if n & _ALIGNED and not n & _OWNDATA and dt.kind == "c":  # see _complex_alignment
                    n = _complex_alignment(x, n)
                return (type(x), dt, n & _MASK)
        if n & _ALIGNED and x.dtype.kind == "c":
            n = _complex_alignment(x, n)
        if n & 3:
            st = x.strides
            if st and min(st) < 0:  # contiguous flags ignore strides of length-1 axes
                return (type(x), x.dtype, n & _MASK, "negative")
            sh = x.shape
            if 1 in sh or 0 in sh:  # contiguous flags ignore their strides, torch.from_numpy does not
                return (type(x), x.dtype, n & _MASK, self.stride_flags(st, sh, x.dtype.itemsize))
            return (type(x), x.dtype, n & _MASK)
        return (type(x), x.dtype, n & _MASK, self.numpy_layout(x.strides, x.shape, False, False),
                _odd_strides(self, x, n))

    def describe(self, x: Any) -> ArrayInfo:
        flags = x.flags.num
        dt = x.dtype
        if flags & _ALIGNED and dt.kind == "c":
            flags = _complex_alignment(x, flags)
        st = x.strides
        if flags & 3 and st and min(st) < 0:
            layout = "negative"
        else:
            layout = self.numpy_layout(st, x.shape, bool(flags & _C), bool(flags & _F))
        problem = None
        odd = _odd_strides(self, x, flags) if not flags & 3 or 1 in x.shape or 0 in x.shape else frozenset()
        ma = sys.modules.get("numpy.ma")  # never imported here (15 ms): a masked array means it was
        if ma is not None and isinstance(x, ma.MaskedArray):
            problem = (
                UnsupportedArrayError,
                format_message(
                    f"Cannot convert a NumPy masked array ({dt} {x.shape}): the mask has no place in the target, and dropping it silently would change what the data means.",
                    hint="use x.filled(fill_value) or np.ma.getdata(x) to choose what masked entries become, or convert x.mask separately",
                ),
            )
        byteorder = "=" if dt.isnative or dt.byteorder == "|" else dt.byteorder
        if byteorder == "=" and not dt.isnative:
            byteorder = ">" if sys.byteorder == "little" else "<"
        return ArrayInfo(
            framework="numpy",
            dtype=numpy_dtype_name(dt),
            shape=x.shape,
            device=CPU,
            readonly=not flags & _WRITEABLE,
            layout=layout,
            byteorder=byteorder,
            aligned=bool(flags & _ALIGNED),
            flags=odd,
            itemsize=dt.itemsize,
            problem=problem,
        )

    def device_of(self, x: Any) -> Device:
        return CPU

    def data_pointer(self, x: Any) -> int | None:
        return int(x.__array_interface__["data"][0])

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        return identity

    def export_host(self, x: Any) -> Any:
        return sys.modules["numpy"].asarray(x)

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        return identity

    def import_host(self, arr: Any) -> Any:
        return arr

    def dlpack_import_refusals(self, info: ArrayInfo) -> list[str]:
        out = []
        if not info.device.is_host:
            out.append(f"NumPy cannot alias memory on {info.device} (np.from_dlpack accepts host memory only)")
        if info.dtype in ML_DTYPES:
            out.append(f"np.from_dlpack does not accept {info.dtype}")
        if info.readonly:
            # the result would be a writable alias unless the read-only flag travels (probed per version)
            from arrayferry.plugin import dlpack_readonly_reason  # capabilities load when first asked

            why = dlpack_readonly_reason(info.framework, "numpy")
            if why is not None:
                out.append(f"read-only memory cannot cross DLPack here: {why}")
        return out

    def from_dlpack(self, x: Any) -> Any:
        return sys.modules["numpy"].from_dlpack(x)

    def copy(self, x: Any) -> Any:
        return x.copy()

    def cast(self, x: Any, dtype: str) -> Any:
        np = sys.modules["numpy"]
        if x.dtype.name in ML_DTYPES:
            x = x.astype(np.float32)
        target = numpy_dtype(dtype)
        if x.dtype.kind == "c" and target.kind != "c":
            x = x.real  # what the cast keeps anyway, without NumPy's ComplexWarning
        return x.astype(target)

    def checked_cast(self, x: Any, src: str, dst: str, mode: str | None) -> Any:
        """NumPy's cast with the value check fused into it, block by block (``arrayferry.plugin.host_cast``)."""
        return host_cast(x, src, dst, mode, shape=x.shape)

    def parse_dtype(self, obj: Any) -> str | None:
        np = sys.modules["numpy"]
        try:
            return numpy_dtype_name(np.dtype(obj)) if not isinstance(obj, str) else None
        except TypeError:
            return None


@hookimpl
def arrayferry_adapters() -> list[Adapter]:
    return [NumpyAdapter()]
