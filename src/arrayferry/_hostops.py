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


def host_copy_step(src_dtype: str, dst_dtype: str, reasons: list[str], check_values: bool) -> Step:
    """One ``np.array(..., copy=True)`` that byte-swaps, makes C-contiguous, casts and un-read-onlys."""
    import numpy as np

    np_dst = numpy_dtype(dst_dtype)
    cast = src_dtype != dst_dtype
    through_f32 = cast and src_dtype in ML_DTYPES
    check = check_values and cast and (
        (kind_of(src_dtype) in "fc" and kind_of(dst_dtype) in "iu") or (kind_of(src_dtype) == "c" and kind_of(dst_dtype) != "c")
    )

    def host_copy(a: Any) -> Any:
        if check:
            check_cast_values(a, src_dtype, dst_dtype)
        if cast:
            if through_f32:  # ml_dtypes formats convert exactly through float32
                a = a.astype(np.float32)
            return np.array(a, dtype=np_dst, order="C", copy=True)
        return np.array(a, dtype=a.dtype.newbyteorder("="), order="C", copy=True)

    why = "; ".join(reasons)
    return Step("host_copy", f"one copy on the host into a fresh C-contiguous {dst_dtype} array ({why})",
                host_copy, copies=True)
