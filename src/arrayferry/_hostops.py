"""Host-side (NumPy) operations shared by the planner and adapters: value checks and the one-pass copy."""

from __future__ import annotations

from typing import Any

from ._adapter import Step
from ._dtypes import ML_DTYPES, kind_of, numpy_dtype
from ._errors import LossyConversionError, format_message

__all__ = ["check_cast_values", "host_copy_step"]


def check_cast_values(a: Any, src: str, dst: str) -> None:
    """Refuse casts that cannot have been meant: NaN/inf to integers, non-zero imaginary to real."""
    import numpy as np

    if not a.size:
        return
    ks, kd = kind_of(src), kind_of(dst)
    if ks == "c" and kd != "c" and np.any(a.imag != 0):
        raise LossyConversionError(
            format_message(
                f"Casting {src} to {dst} would drop non-zero imaginary parts.",
                hint="take .real explicitly first if that is what you want",
            )
        )
    if ks in "fc" and kd in "iu":
        vals = a.astype(np.float32) if src in ML_DTYPES else a
        if not np.isfinite(vals).all():
            raise LossyConversionError(
                format_message(
                    f"Casting {src} to {dst}: the input holds NaN or infinity, which {dst} cannot represent.",
                    hint="replace them first (np.nan_to_num) or keep a floating dtype",
                )
            )


_ALIGN = 64


def _aligned_empty(shape: tuple[int, ...], dtype: Any) -> Any:
    """A writable C-contiguous array whose data pointer is 64-byte aligned.

    JAX (and XLA) alias host memory only at 64-byte alignment and silently copy otherwise, so a
    host copy that a plan says is the last copy must be aligned for that to be true.
    """
    import numpy as np

    dt = np.dtype(dtype)
    n = 1
    for s in shape:
        n *= s
    nbytes = n * dt.itemsize
    buf = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    off = -buf.ctypes.data % _ALIGN
    return buf[off:off + nbytes].view(dt).reshape(shape)


def host_copy_step(src_dtype: str, dst_dtype: str, reasons: list[str], check_values: bool) -> Step:
    """One copy (byte swap, C order, cast, writable at once) into fresh 64-byte aligned memory."""
    import numpy as np

    np_dst = numpy_dtype(dst_dtype)
    cast = src_dtype != dst_dtype
    through_f32 = cast and src_dtype in ML_DTYPES
    # complex to real: the cast keeps .real anyway; taking it first avoids NumPy's ComplexWarning
    # after check_cast_values has proved the imaginary parts zero
    drop_imag = cast and kind_of(src_dtype) == "c" and kind_of(dst_dtype) != "c"
    check = check_values and cast and (
        (kind_of(src_dtype) in "fc" and kind_of(dst_dtype) in "iu") or (kind_of(src_dtype) == "c" and kind_of(dst_dtype) != "c")
    )

    def host_copy(a: Any) -> Any:
        if check:
            check_cast_values(a, src_dtype, dst_dtype)
        if cast:
            if through_f32:  # ml_dtypes formats convert exactly through float32
                a = a.astype(np.float32)
            elif drop_imag:
                a = a.real
            out = _aligned_empty(a.shape, np_dst)
        else:
            out = _aligned_empty(a.shape, a.dtype.newbyteorder("="))
        np.copyto(out, a, casting="unsafe")
        return out

    why = "; ".join(reasons)
    return Step("host_copy", f"one copy on the host into a fresh C-contiguous {dst_dtype} array ({why})",
                host_copy, copies=True)
