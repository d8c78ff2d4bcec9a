"""Host-side (NumPy) operations shared by the planner and adapters: the casting policy, value
checks, and the one-pass copy that casts.

Casting policy (``convert(..., casting=)``, NumPy's names):

``None`` (the default)
    any dtype pair may be asked for, but a cast that would change a value beyond rounding raises
    :class:`LossyConversionError`: NaN or infinity to an integer, a value outside the target's
    range (``1e10`` to int32, ``-1`` to uint8, ``70000`` to int16, ``1e300`` to float32, which
    would become ``inf``), non-zero imaginary parts to a real type. Rounding to the nearest
    representable value (float64 to float32) and truncation toward zero (float to int) are what a
    cast means and are allowed.
``"unsafe"``
    no checks: NumPy's ``astype`` result, whatever the values.
``"same_value"``
    every value must survive exactly (NumPy 2.4's ``astype(casting="same_value")``): ``1.5`` to
    an integer or ``0.1`` to float32 raise too.
``"same_kind"``, ``"safe"``, ``"equiv"``, ``"no"``
    NumPy's dtype rules (``numpy.can_cast``), checked when the plan is made; the casts they allow
    are then value-checked as for ``None``.

The checks run with the cast: through the FPU's flags where those report every out-of-range
value of the pair (no extra pass), else block by block while the block is in cache (``_BLOCK``
elements), with one reduction where one suffices (:func:`_range_test`); the failing value is
looked for only in a block that fails. ``benchmarks/run.py`` measures each class of pair.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

from ._dtypes import ITEMSIZE, ML_DTYPES, kind_of, numpy_dtype
from ._errors import ArgumentError, LossyConversionError, format_message
from ._step import Step

__all__ = [
    "CASTING",
    "check_cast_values",
    "host_cast",
    "host_copy_step",
    "parse_casting",
    "casting_refusal",
    "check_mode",
    "range_problem",
    "device_check",
    "check_method",
    "guarded_call",
]

CASTING: tuple[str, ...] = ("no", "equiv", "safe", "same_kind", "same_value", "unsafe")
"""The values ``casting=`` accepts besides ``None`` (the checked default)."""

#: elements per block of the fused cast-and-check loop (fits a core's L2 cache at 8 bytes each)
_BLOCK = 1 << 16

_UNSAFE_HINT = "pass casting='unsafe' to accept NumPy's result for such values, or clip/replace them first"


def parse_casting(casting: Any) -> str | None:
    """Validate ``casting=``; ``None`` is the checked default."""
    if casting is None or casting in CASTING:
        return casting  # type: ignore[no-any-return]
    raise ArgumentError(
        format_message(
            f"casting must be None or one of {', '.join(repr(c) for c in CASTING)}; got {casting!r}.",
            ["None (default): values out of the target's range raise LossyConversionError; "
             "'unsafe': no check; 'same_value': every value must survive exactly; "
             "'same_kind', 'safe', 'equiv', 'no': NumPy's dtype rules"],
            hint="pass casting=None, 'unsafe', 'same_value', 'same_kind', 'safe', 'equiv' or 'no'",
        )
    )


def casting_refusal(src: str, dst: str, casting: str | None) -> str | None:
    """Why ``casting`` forbids casting ``src`` to ``dst`` at all (NumPy's dtype rules), or ``None``."""
    if casting in (None, "unsafe", "same_value") or src == dst:
        return None
    import numpy as np

    if casting == "no" or (casting == "equiv" and src != dst):
        return f"casting={casting!r} allows no cast, and {src} to {dst} is one"
    if np.can_cast(numpy_dtype(src), numpy_dtype(dst), casting):  # type: ignore[arg-type]
        return None
    return f"casting={casting!r} does not allow {src} to {dst} (numpy.can_cast({src}, {dst}, {casting!r}) is False)"


def _component(name: str) -> str:
    return {"complex64": "float32", "complex128": "float64"}.get(name, name)


#: largest finite values of the ml_dtypes formats (known without importing ml_dtypes, so that
#: plans of frameworks that hold them natively, torch, do not need it)
_ML_MAX = {"bfloat16": 3.3895313892515355e38, "float8_e4m3fn": 448.0, "float8_e5m2": 57344.0,
           "float8_e4m3fnuz": 240.0, "float8_e5m2fnuz": 57344.0}


def _fmax(name: str) -> float:
    import numpy as np

    if name in _ML_MAX:
        return _ML_MAX[name]
    return float(np.finfo(np.dtype(_component(name))).max)


def _irange(name: str) -> tuple[int, int]:
    import numpy as np

    info = np.iinfo(np.dtype(name))
    return int(info.min), int(info.max)


def _range_needed(src: str, dst: str) -> bool:
    """Whether some value of ``src`` falls outside what ``dst`` can represent (beyond rounding)."""
    ks, kd = kind_of(src), kind_of(dst)
    if src == dst or ks == "b":
        return False
    if kd == "b":
        return ks == "c"  # any number is a truth value; only imaginary parts would be dropped
    if ks == "c" and kd != "c":
        return True
    if ks in "fc":
        if kd in "iu":
            return True
        return _fmax(dst) < _fmax(src)
    # integer source
    if kd in "iu":
        lo, hi = _irange(src)
        dlo, dhi = _irange(dst)
        return lo < dlo or hi > dhi
    return _fmax(dst) < _irange(src)[1]


def _lossless(src: str, dst: str) -> bool:
    """True when every value of ``src`` is exactly representable in ``dst``."""
    ks, kd = kind_of(src), kind_of(dst)
    if src == dst or ks == "b":
        return True
    if kd == "b":
        return False
    if ks in "iu" and kd in "iu":
        return not _range_needed(src, dst)
    if ks in "iu":  # to a float: enough mantissa bits
        bits = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53, "complex64": 24, "complex128": 53}.get(dst, 4)
        return ITEMSIZE[src] * 8 - (ks == "i") <= bits
    if kd in "iu":
        return False
    if ks == "c" and kd != "c":
        return False
    if src in ML_DTYPES or dst in ML_DTYPES:
        return src == "bfloat16" and _component(dst) in ("float32", "float64")
    return ITEMSIZE[_component(dst)] >= ITEMSIZE[_component(src)]


def check_mode(src: str, dst: str, casting: str | None) -> str | None:
    """What the cast of ``src`` to ``dst`` must check under ``casting``: ``"range"``, ``"exact"`` or ``None``."""
    if src == dst or casting == "unsafe":
        return None
    if casting == "same_value":
        return None if _lossless(src, dst) else "exact"
    return "range" if _range_needed(src, dst) else None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def range_problem(src: str, dst: str, lo: Any, hi: Any) -> str | None:
    """Given the smallest and largest value of a real (or integer) ``src`` array, why casting it to
    ``dst`` would change values out of range; ``None`` when it would not. NaN extremes mean the
    array holds NaN (``numpy.minimum`` propagates it)."""
    ks, kd = kind_of(src), kind_of(dst)
    lo = lo.item() if hasattr(lo, "item") else lo
    hi = hi.item() if hasattr(hi, "item") else hi
    if kd in "iu":
        if ks in "fc":
            if math.isnan(lo) or math.isnan(hi):
                return f"the input holds NaN or infinity (NaN), which {dst} cannot represent"
            if math.isinf(lo) or math.isinf(hi):
                return f"the input holds NaN or infinity ({_fmt(lo if math.isinf(lo) else hi)}), which {dst} cannot represent"
            tlo, thi = math.trunc(lo), math.trunc(hi)
        else:
            tlo, thi = int(lo), int(hi)
        dlo, dhi = _irange(dst)
        bad = [v for v, t in ((lo, tlo), (hi, thi)) if not dlo <= t <= dhi]
        if bad:
            return (f"{' and '.join(_fmt(v) for v in dict.fromkeys(bad))} "
                    f"{'is' if len(set(bad)) == 1 else 'are'} outside {dst}'s range [{dlo}, {dhi}]")
        return None
    # to a float type: finite values must stay finite (rounding is allowed)
    import numpy as np

    np_dst = numpy_dtype(_component(dst))
    bad = []
    for v in (lo, hi):
        if isinstance(v, float) and not math.isfinite(v):
            continue
        with np.errstate(all="ignore"):
            r = float(np.array(v).astype(np_dst).astype(np.float64))
        if not math.isfinite(r):
            bad.append(v)
    if bad:
        return (f"{' and '.join(_fmt(v) for v in dict.fromkeys(bad))} "
                f"{'is' if len(set(bad)) == 1 else 'are'} beyond {dst}'s largest finite value {_fmax(dst):g} "
                f"(the cast would give {'inf' if dst not in ('float8_e4m3fn', 'float8_e4m3fnuz', 'float8_e5m2fnuz') else 'NaN'})")
    return None


def _lossy(src: str, dst: str, why: str, shape: tuple[int, ...] | None, hint: str = _UNSAFE_HINT) -> LossyConversionError:
    tried = [f"the array: {src}, shape {shape}"] if shape is not None else []
    return LossyConversionError(format_message(f"Casting {src} to {dst} would change values: {why}.", tried, hint=hint))


def _imag_error(src: str, dst: str, shape: tuple[int, ...] | None) -> LossyConversionError:
    return _lossy(src, dst, "it would drop non-zero imaginary parts", shape,
                  hint="take .real explicitly first if that is what you want, or pass casting='unsafe'")


def check_cast_values(a: Any, src: str, dst: str, mode: str | None = "range") -> None:
    """Raise :class:`LossyConversionError` if casting the NumPy array ``a`` (dtype ``src``) to
    ``dst`` would change values that ``mode`` (:func:`check_mode`) does not allow to change."""
    if mode == "range" and not _range_needed(src, dst):
        return
    if mode is None or not a.size:
        return
    host_cast(a, src, dst, mode, shape=a.shape)


def device_check(x: Any, src: str, dst: str, mode: str | None, ops: Any) -> None:
    """The value check of :func:`check_cast_values` for an array that stays in its framework (a
    GPU tensor): ``ops`` runs the few reductions it needs there (``size``, ``any_imag``,
    ``real``, ``parts``, ``extremes``, ``finite``, ``roundtrip_equal``; see the torch adapter)."""
    if mode is None or not ops.size(x):
        return
    shape = tuple(x.shape)
    if mode == "exact":
        # complex to real: a non-zero imaginary part never survives, whatever the round trip of
        # the real part says (NaN + 1.5j to float16 round-trips as NaN on some torch releases)
        if kind_of(src) == "c" and kind_of(dst) not in "cb" and ops.any_imag(x):  # (bool: non-zero is True)
            raise _lossy(src, dst, "non-zero imaginary parts would be dropped (casting='same_value')", shape,
                         hint="take .real explicitly first, or pass casting='unsafe'")
        if not ops.roundtrip_equal(x, dst):
            raise _lossy(src, dst, "some value would not survive the cast exactly (casting='same_value')", shape,
                         hint="pass casting=None to allow rounding, or casting='unsafe'")
        return
    if not _range_needed(src, dst):
        return
    ks, kd = kind_of(src), kind_of(dst)
    s = src
    if ks == "c" and kd != "c":
        if ops.any_imag(x):
            raise _imag_error(src, dst, shape)
        x, s = ops.real(x), _component(src)
    elif ks == "c":
        x, s = ops.parts(x), _component(src)
    if kd == "b":
        return
    lo, hi = ops.extremes(x)  # one pass (torch.aminmax); NaN propagates
    if kd not in "iu" and kind_of(s) == "f":
        if math.isfinite(lo) and math.isfinite(hi):
            why = range_problem(s, _component(dst), lo, hi)
            if why:
                raise _lossy(src, dst, why, shape)
            return
        # NaN and infinity stay what they are in a float type: look again at the finite values only
        # (a second pass, taken only when the array holds NaN or infinity)
        x = ops.finite(x)
        if not ops.size(x):
            return
        lo, hi = ops.extremes(x)
    why = range_problem(s, dst if kd in "iu" else _component(dst), lo, hi)
    if why:
        raise _lossy(src, dst, why, shape)


@functools.cache
def _bounds(src: str, dst: str) -> tuple[Any, Any] | None:
    """Inclusive bounds ``(lo, hi)`` on the values of a real ``src`` array whose cast to the real
    ``dst`` stays in range (as ``src`` scalars, or Python ints), computed once per pair and
    verified by casting the bounds and their neighbours; ``None`` when no bound applies."""
    from fractions import Fraction  # 0.7 ms to import: only casts with a range check need it

    import numpy as np

    ks, kd = kind_of(src), kind_of(dst)
    npsrc = numpy_dtype(src)
    if kd in "iu" and ks in "iu":
        return _irange(dst)
    if kd in "iu":  # float to integer: trunc(v) must lie in [min, max], i.e. min - 1 < v < max + 1
        dlo, dhi = _irange(dst)
        finfo_max = Fraction(float(np.finfo(npsrc).max))

        def inside(limit: int, up: bool) -> Any:
            if abs(Fraction(limit)) > finfo_max:  # every finite value of src is inside
                return np.array(float(finfo_max) * (1 if up else -1)).astype(npsrc)[()]
            c = np.array(limit, dtype=np.float64).astype(npsrc)[()]
            step = np.array(-np.inf if up else np.inf, dtype=npsrc)[()]
            while (Fraction(float(c)) >= limit) if up else (Fraction(float(c)) <= limit):
                c = np.nextafter(c, step)
            return c

        return inside(dlo - 1, False), inside(dhi + 1, True)
    # to a float type: the largest source value whose cast stays finite, by bisection over the
    # source's values in order (bit patterns of positive floats, or integers); casts are monotonic
    np_dst = numpy_dtype(dst)

    def finite(v: Any) -> bool:
        return bool(np.isfinite(np.array([v], dtype=npsrc).astype(np_dst).astype(np.float64))[0])

    if ks in "iu":
        lo_i, hi_i = 0, _irange(src)[1]
        if finite(hi_i):
            return None
        while hi_i - lo_i > 1:  # finite(lo_i), not finite(hi_i)
            mid = (lo_i + hi_i) // 2
            lo_i, hi_i = (mid, hi_i) if finite(mid) else (lo_i, mid)
        return (-lo_i if ks == "i" else 0), lo_i
    bits = np.dtype(f"u{npsrc.itemsize}")
    top = np.array([np.finfo(npsrc).max], dtype=npsrc)
    if finite(top[0]):
        return None
    lo_b, hi_b = 0, int(top.view(bits)[0])
    while hi_b - lo_b > 1:
        mid = (lo_b + hi_b) // 2
        v = np.array([mid], dtype=bits).view(npsrc)[0]
        lo_b, hi_b = (mid, hi_b) if finite(v) else (lo_b, mid)
    c = np.array([lo_b], dtype=bits).view(npsrc)[0]
    return -c, c


def _verify_bounds(src: str, dst: str, b: tuple[Any, Any]) -> bool:
    """The bounds cast in range and their outer neighbours do not (a self-check, once per pair)."""
    import numpy as np

    lo, hi = b
    if kind_of(src) in "iu":
        return True
    npsrc, np_dst = numpy_dtype(src), numpy_dtype(dst)
    arr = np.array([lo, hi], dtype=npsrc)
    with np.errstate(all="ignore"):
        if kind_of(dst) in "iu":
            ok = all(range_problem(src, dst, float(v), float(v)) is None for v in arr)
            out = np.nextafter(arr, np.array([-np.inf, np.inf], dtype=npsrc))
            return ok and all(range_problem(src, dst, float(v), float(v)) is not None
                              for v in out if math.isfinite(float(v)))
        fin = np.isfinite(arr.astype(np_dst).astype(np.float64)).all()
        out = np.nextafter(arr, np.array([-np.inf, np.inf], dtype=npsrc))
        return bool(fin) and not np.isfinite(out.astype(np_dst).astype(np.float64)).any()


@functools.cache
def _checked_bounds(src: str, dst: str) -> tuple[Any, Any] | None:
    import numpy as np

    with np.errstate(all="ignore"):
        b = _bounds(src, dst)
        ok = b is None or _verify_bounds(src, dst, b)
    if not ok:
        raise AssertionError(f"arrayferry's range bounds for {src} -> {dst} are wrong: {b}")
    return b


def _check_block(o: Any, b: Any, src: str, dst: str, mode: str, shape: tuple[int, ...] | None,
                 rsrc: str | None = None) -> None:
    """Check one block after its cast (``b`` the real source values, float32 for ml_dtypes; ``o`` the cast)."""
    import numpy as np

    if mode == "exact":
        if kind_of(dst) == "b":
            return  # NumPy's same_value: any non-zero value is the truth value True
        # compared as numbers (NumPy promotes mixed comparisons exactly), never through a round
        # trip, which wrap-around would make look exact (-1 -> uint8 255 -> int8 -1)
        cmp = o.astype(np.float32) if o.dtype.name in ML_DTYPES else o

        def eq(x: Any, y: Any) -> Any:  # equal, or NaN on both sides (per real part, never "either part")
            return (x == y) | (np.isnan(x) & np.isnan(y)) if x.dtype.kind == "f" and y.dtype.kind == "f" else x == y

        same = cmp == b
        if b.dtype.kind == "c" and cmp.dtype.kind == "c":
            same = eq(b.real, cmp.real) & eq(b.imag, cmp.imag)
        elif b.dtype.kind == "c" and cmp.dtype.kind == "f":
            same = eq(b.real, cmp) & (b.imag == 0)  # a non-zero imaginary part never survives
        elif b.dtype.kind == "f" and cmp.dtype.kind == "c":
            same = eq(b, cmp.real) & (cmp.imag == 0)
        elif b.dtype.kind == "f" and cmp.dtype.kind == "f":
            same = eq(b, cmp)
        elif b.dtype.kind in "iu" and cmp.dtype.kind in "fc":
            # the comparison promotes big integers to float64, rounding them like the cast did:
            # the integer must also come back from the float (2**64 - 1 -> 2**64 does not)
            same &= cmp.real.astype(b.dtype) == b
        if not same.all():
            i = int(np.argmin(same.reshape(-1)))
            v, r = b.reshape(-1)[i], o.reshape(-1)[i]
            raise _lossy(src, dst, f"{_fmt(v.item())} becomes {_fmt(r.item())} (casting='same_value' asks for every value exactly)",
                         shape, hint="pass casting=None to allow rounding, or casting='unsafe'")
        return
    kd = kind_of(dst)
    if kd == "b":
        return
    if b.dtype.kind == "c":  # complex to complex: both parts, as a float array
        b = b.reshape(-1).view(b.real.dtype) if b.flags.c_contiguous else np.concatenate([b.real.reshape(-1), b.imag.reshape(-1)])
    rsrc = rsrc or _dtype_name_of(b.dtype)
    rdst = _component(dst)
    bounds = _checked_bounds(rsrc, rdst)
    if bounds is None:
        return
    if b.ndim == 1:
        lo, hi = np.minimum.reduce(b), np.maximum.reduce(b)
    else:
        lo, hi = b.min(), b.max()
    if lo >= bounds[0] and hi <= bounds[1]:
        return
    # NaN, infinity, or a value out of range: find which, from the values themselves
    if kd in "iu":
        why = range_problem(rsrc, rdst, lo, hi)
        if why:
            raise _lossy(src, dst, why, shape,
                         hint=("replace them first (np.nan_to_num) or keep a floating dtype, or pass casting='unsafe'"
                               if "NaN or infinity" in why else _UNSAFE_HINT))
        return
    with np.errstate(all="ignore"):
        bad = np.isfinite(b) & ((b < bounds[0]) | (b > bounds[1]))
    if bad.any():
        v = b[bad].reshape(-1)
        why = range_problem(rsrc, rdst, v.min(), v.max())
        raise _lossy(src, dst, why or f"{_fmt(v[0].item())} would not stay finite", shape)


@functools.cache
def _range_test(rsrc: str, rdst: str) -> Any:
    """A fast test ``ok(block) -> bool`` that a block of real ``rsrc`` values casts to the real
    ``rdst`` in range (``False`` also for NaN or infinity, which :func:`_check_block` then looks
    at), with as few reductions as the pair needs; ``None`` when the pair needs no check.

    * integer to a narrower unsigned integer: one maximum over the source read as unsigned (a
      negative value reads as a huge one), so both ends are checked in one pass;
    * integer sources whose values can leave the range at one end only (unsigned to anything,
      int8 to uint16, ...): one reduction, at that end;
    * otherwise the minimum and the maximum (``numpy.minimum`` propagates NaN, so a NaN fails the
      comparison too).
    """
    import numpy as np

    bounds = _checked_bounds(rsrc, rdst)
    if bounds is None:
        return None
    blo, bhi = bounds
    ks = kind_of(rsrc)
    maximum, minimum = np.maximum.reduce, np.minimum.reduce
    if ks in "iu":
        slo, shi = _irange(rsrc)
        need_lo, need_hi = slo < blo, shi > bhi
        if need_lo and need_hi and blo == 0 and bhi < 2 ** (8 * np.dtype(rsrc).itemsize - 1):
            unsigned = np.dtype(f"u{np.dtype(rsrc).itemsize}")

            def ok_view(b: Any) -> bool:  # -1 reads as 2**bits - 1, beyond bhi
                return bool(int(maximum(b.view(unsigned), axis=None)) <= bhi)
            return ok_view
        if not need_lo:
            def ok_hi(b: Any) -> bool:  # compared as Python ints (NumPy 1.26 would compare uint64 with int as float64)
                return bool(int(maximum(b, axis=None)) <= bhi)
            return ok_hi
        if not need_hi:
            def ok_lo(b: Any) -> bool:
                return bool(int(minimum(b, axis=None)) >= blo)
            return ok_lo

    if ks in "iu":
        def ok_int(b: Any) -> bool:
            return bool(int(minimum(b, axis=None)) >= blo) and bool(int(maximum(b, axis=None)) <= bhi)
        return ok_int

    def ok(b: Any) -> bool:
        return bool(minimum(b, axis=None) >= blo) and bool(maximum(b, axis=None) <= bhi)
    return ok


def check_method(src: str, dst: str, casting: str | None = None) -> str:
    """How the host check of casting ``src`` to ``dst`` runs under ``casting``, in words (the
    benchmark's "how" column)."""
    mode = check_mode(src, dst, casting)
    if mode is None:
        return "no check needed"
    if mode == "exact":
        return "every value compared with its cast, per cached block"
    if (src not in ML_DTYPES and kind_of(src) != "c" and _flags_reliable(_component(src), _component(dst))):
        return "FPU flags of the cast itself, no extra pass"
    fused = _speedups() is not None and src not in ML_DTYPES and (
        (kind_of(dst) in "iu" and (kind_of(src) in "iu" or src in ("float32", "float64")))
        or (kind_of(src) == "c" and dst == _component(src)))
    if fused:  # (for a C-contiguous, aligned, native-order source; others as below)
        return "cast and check fused in one compiled pass (arrayferry._speedups)"
    if kind_of(src) == "c" and kind_of(dst) != "c":
        narrows = _checked_bounds(_component(src), _component(dst)) is not None
        return "imaginary parts tested" + (", then min/max of the real parts" if narrows else "") + ", per cached block"
    rsrc = "float32" if src in ML_DTYPES else _component(src)
    test = _range_test(rsrc, _component(dst))
    name = getattr(test, "__name__", "")
    return {"ok_view": "one max of the source read as unsigned, per cached block",
            "ok_hi": "one max, per cached block", "ok_lo": "one min, per cached block"}.get(
        name, "min and max, per cached block")


def _dtype_name_of(dt: Any) -> str:
    return str(dt.name)


@functools.cache
def _flags_reliable(src: str, dst: str) -> bool:
    """Whether NumPy's cast of ``src`` to ``dst`` raises the IEEE invalid/overflow flag for every
    value out of range and for no value in range, checked once per pair here by probing the
    bounds and their outer neighbours at several positions (SIMD body and scalar tail).

    Where it does (float to int32/int64, float64 to float32/float16 on x86-64 and arm64), the
    range check costs nothing: ``np.errstate(invalid="raise", over="raise")`` around the cast."""
    import numpy as np

    if src in ML_DTYPES or dst in ML_DTYPES:
        return False
    if not (kind_of(src) == "f" and kind_of(dst) in "iuf" or kind_of(src) in "iu" and kind_of(dst) == "f"):
        return False  # (integers to float16: NumPy's software conversion raises the overflow flag)
    with np.errstate(all="ignore"):
        return _probe_flags(src, dst)


def _probe_flags(src: str, dst: str) -> bool:
    import numpy as np

    b = _checked_bounds(src, dst)
    if b is None:
        return False
    npsrc, np_dst = numpy_dtype(src), numpy_dtype(dst)
    lo, hi = (np.array(v, dtype=npsrc)[()] for v in b)
    if kind_of(src) in "iu":  # the integers just outside, where the source holds them
        slo, shi = _irange(src)
        outside = [npsrc.type(v) for v in (int(lo) - 1, int(hi) + 1) if slo <= v <= shi]
    else:
        outside = [np.nextafter(lo, npsrc.type(-np.inf)), np.nextafter(hi, npsrc.type(np.inf))]
    if kind_of(dst) in "iu":
        outside += [npsrc.type(np.nan), npsrc.type(np.inf), npsrc.type(-np.inf)]

    def flagged(v: Any, at: int) -> bool:
        a = np.zeros(67, dtype=npsrc)
        a[at] = v
        o = np.empty(67, dtype=np_dst)
        try:
            with np.errstate(all="ignore", invalid="raise", over="raise"):
                np.copyto(o, a, casting="unsafe")
        except FloatingPointError:
            return True
        return False

    spots = (0, 33, 66)
    if any(flagged(v, at) for v in (lo, hi) for at in spots):
        return False
    return all(flagged(v, at) for v in outside if not (kind_of(dst) == "f" and not np.isfinite(v)) for at in spots)


def host_cast(a: Any, src: str, dst: str, mode: str | None, shape: tuple[int, ...] | None = None, out: Any = None) -> Any:
    """Cast the NumPy array ``a`` (dtype ``src``) to ``dst`` into fresh 64-byte aligned C-contiguous
    memory (or ``out``), checking values per ``mode`` (:func:`check_mode`) block by block while
    each block is in cache. Never emits NumPy's ``RuntimeWarning``: the check reports instead."""
    import numpy as np

    np_dst = numpy_dtype(dst)
    if out is None:
        out = _aligned_empty(a.shape, np_dst)
    through_f32 = src in ML_DTYPES and src != dst
    # complex to real: the cast keeps .real anyway; taking it first avoids NumPy's ComplexWarning
    drop_imag = kind_of(src) == "c" and kind_of(dst) != "c"
    if mode is None or not a.size:
        with np.errstate(all="ignore"):
            if drop_imag:
                a = a.real
            _copy_cast(out, a, through_f32)
        return out
    if mode == "range" and _flags_reliable(_component(src), _component(dst)) and not drop_imag:
        # the hardware flags say whether any value left the range: no pass over the data
        try:
            with np.errstate(all="ignore", invalid="raise", over="raise"):
                np.copyto(out, a, casting="unsafe")
            return out
        except FloatingPointError:
            pass  # find which value, and say so (or accept: a signalling NaN also raises the flag)
    if mode == "range" and not through_f32 and _fused_cast(a, out, src, dst):
        return out  # one compiled pass cast and checked every value (a failing value: see below)
    # the real dtype each block is checked in: float32 for ml_dtypes, the component of complex
    rsrc = "float32" if through_f32 else _component(src)
    with np.errstate(all="ignore"):
        fast = _range_test(rsrc, _component(dst)) if (mode == "range" and not through_f32 and not drop_imag
                                                      and kind_of(src) != "c" and kind_of(dst) != "b") else None
        if fast is not None:
            # the common case (real to real): one copyto and one or two in-cache reductions per
            # block, no per-block Python beyond that; a block that fails is looked at in detail
            if a.flags.c_contiguous and a.ndim and a.size > _BLOCK:
                fa, fo = a.reshape(-1), out.reshape(-1)
                for i in range(0, fa.shape[0], _BLOCK):
                    b, o = fa[i:i + _BLOCK], fo[i:i + _BLOCK]
                    np.copyto(o, b, casting="unsafe")
                    if not fast(b):
                        _check_block(o, b, src, dst, mode, shape, rsrc)
            else:
                np.copyto(out, a, casting="unsafe")
                if not fast(a):
                    _check_block(out, a, src, dst, mode, shape, rsrc)
            return out
        if a.flags.c_contiguous and a.ndim and a.size > _BLOCK:
            fa, fo = a.reshape(-1), out.reshape(-1)
            n = fa.shape[0]
            for i in range(0, n, _BLOCK):
                _cast_checked(fo[i:i + _BLOCK], fa[i:i + _BLOCK], src, dst, mode, shape, through_f32, drop_imag, rsrc)
        else:
            _cast_checked(out, a, src, dst, mode, shape, through_f32, drop_imag, rsrc)
    return out


def _speedups() -> Any:
    """``arrayferry._speedups`` (the compiled one-pass check and hot path), or ``None`` where it
    was not built or ``ARRAYFERRY_NO_SPEEDUPS`` is set to a non-empty value (read once, at first
    use: the same logic then runs in Python, as without a C compiler)."""
    global _SPEEDUPS
    if _SPEEDUPS is _UNSET:
        import os

        if os.environ.get("ARRAYFERRY_NO_SPEEDUPS"):
            _SPEEDUPS = None
            return None
        try:
            from . import _speedups as mod

            _SPEEDUPS = mod
        except ImportError:  # built without a C compiler: NumPy, block by block
            _SPEEDUPS = None
    return _SPEEDUPS


_UNSET: Any = object()
_SPEEDUPS: Any = _UNSET


def guarded_call(call: Callable[[Any], Any], key: Callable[[Any], Any], mask: int, accepted: Iterable[int],
                 fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``x -> call(x)`` when ``key(x) & mask`` is one of ``accepted`` (at most 16 ints), else
    ``fallback(x)``: a direct call's guard (``Adapter.direct_call``) without a Python frame where
    the compiled extension is built (``arrayferry._speedups.Guarded``; a Python closure doing the
    same otherwise). ``key`` should itself be C-level (an ``operator.attrgetter``), ``call`` the
    native conversion, ``fallback`` the slower test for everything else, raising to refuse.

    torch's NumPy -> torch direct call: ``guarded_call(torch.from_numpy,
    attrgetter("flags.num"), mask, writable_aligned_owned_contiguous_flags, views_test)``.
    """
    acc = tuple(int(a) for a in accepted)
    if len(acc) > 16:
        raise ValueError(f"guarded_call takes at most 16 accepted keys, got {len(acc)}")
    mod = _speedups()
    if mod is not None:
        return mod.Guarded(call, key, int(mask), acc, fallback)  # type: ignore[no-any-return]
    ok = frozenset(acc)

    def guarded(x: Any) -> Any:
        return call(x) if key(x) & mask in ok else fallback(x)

    return guarded


def _fused_cast(a: Any, out: Any, src: str, dst: str) -> bool:
    """Cast ``a`` into ``out`` and check every value in one compiled pass
    (``arrayferry._speedups.cast_checked``) where it applies: a C-contiguous, aligned,
    native-order real source of 1 to 8 bytes (floats of 4 or 8) going to an integer type, or a
    complex source going to the real type of its component. ``True`` when every value passed
    (``out`` holds the cast); ``False`` when it does not apply or a value failed, and the caller
    then casts again and words the failure as ever (the compiled pass is only a faster yes)."""
    mod = _speedups()
    if mod is None or not a.size:
        return False
    ad, od = a.dtype, out.dtype
    if not (a.flags.c_contiguous and a.flags.aligned and ad.isnative and out.flags.c_contiguous
            and out.flags.aligned and out.flags.writeable and od.isnative and a.shape == out.shape):
        return False
    ks, kd = ad.kind, od.kind
    if ks == "c":
        if kd != "f" or od.itemsize * 2 != ad.itemsize or _checked_bounds(_component(src), dst) is not None:
            return False  # a narrowing to another precision also checks the real parts' range
        lo: Any = 0
        hi: Any = 0
    elif kd in "iu" and (ks in "iu" or (ks == "f" and ad.itemsize in (4, 8))) and src not in ML_DTYPES:
        b = _checked_bounds(src, dst)
        if b is None:
            return False
        if ks == "f":
            lo, hi = float(b[0]), float(b[1])
        else:  # in the source's own range (uint64 -> int64: [0, 2**63 - 1])
            slo, shi = _irange(src)
            lo, hi = max(int(b[0]), slo), min(int(b[1]), shi)
    else:
        return False
    return bool(mod.cast_checked(a, out, ks, ad.itemsize, kd, od.itemsize, lo, hi) < 0)


def _copy_cast(o: Any, b: Any, through_f32: bool) -> None:
    """``np.copyto(o, b)``, NumPy's (and ml_dtypes') own cast; through float32 (exact for the
    ml_dtypes formats) only for pairs ml_dtypes registers no cast for."""
    import numpy as np

    if through_f32:
        try:
            np.copyto(o, b, casting="unsafe")
            return
        except (TypeError, ValueError):
            b = b.astype(np.float32)
    np.copyto(o, b, casting="unsafe")


def _cast_checked(o: Any, b: Any, src: str, dst: str, mode: str, shape: tuple[int, ...] | None,
                  through_f32: bool, drop_imag: bool, rsrc: str | None = None) -> None:
    import numpy as np

    if drop_imag and mode == "range":
        if np.count_nonzero(b.imag):  # (5x faster than np.any on the strided imaginary parts)
            raise _imag_error(src, dst, shape)
    _copy_cast(o, b.real if drop_imag else b, through_f32)
    if through_f32:
        b = b.astype(np.float32)  # checked as float32 values (exact for the ml_dtypes formats)
    if drop_imag and mode == "range":
        b = b.real
    _check_block(o, b, src, dst, mode, shape, rsrc)


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


def host_copy_step(src_dtype: str, dst_dtype: str, reasons: list[str], mode: str | None = None) -> Step:
    """One copy (byte swap, C order, cast, writable at once) into fresh 64-byte aligned memory,
    with the value check ``mode`` (:func:`check_mode`) fused into the cast."""
    import numpy as np

    cast = src_dtype != dst_dtype
    mode = mode if cast else None

    if cast:
        def host_copy(a: Any) -> Any:
            return host_cast(a, src_dtype, dst_dtype, mode, shape=a.shape)
    else:
        def host_copy(a: Any) -> Any:
            out = _aligned_empty(a.shape, a.dtype.newbyteorder("="))
            np.copyto(out, a, casting="unsafe")
            return out

    why = "; ".join(reasons)
    checked = {"range": ", values range-checked", "exact": ", every value checked to survive exactly"}.get(mode or "", "")
    return Step("host_copy", f"one copy on the host into a fresh C-contiguous {dst_dtype} array ({why}{checked})",
                host_copy, copies=True, dtype=dst_dtype)
