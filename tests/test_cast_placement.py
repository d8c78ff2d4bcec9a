"""Where a cast runs, what it may change, and what it costs (issues 12 items 2, 3, 8 and 15).

* a property test over (source framework, source dtype, target, requested dtype) compares every
  ``dtype=`` conversion with NumPy's cast of the same values, bit for bit (subnormals, -0.0, NaN,
  infinities), under ``casting="unsafe"`` and under the checked default, whose refusals are judged
  by an independent element-by-element oracle;
* out-of-range casts raise :class:`LossyConversionError` unless ``casting="unsafe"``;
* casts never run in a framework that cannot hold the result or casts differently (JAX without
  x64, JAX's flushed subnormals, array-api-strict's missing dtypes and refused complex casts), and
  never hand out an alias of the source;
* ``plan.nbytes_moved`` is an upper bound of the bytes the steps write, measured step by step;
* casts run before a device -> host transfer when they narrow (torch FakeTensorMode CUDA tensors,
  plan level) and before ``to_device`` when the target device cannot hold the source dtype;
* errors describe the array passed in the call, not the one a cached plan was made for.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from typing import Any

import numpy as np
import pytest
from helpers import ML_DTYPE_BITS, numpy_bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arrayferry as af
from arrayferry._hostops import _BLOCK

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")


class _Lazy:
    """JAX imported on first use, not at collection: the JAX plugin's conftest must set XLA_FLAGS
    (four host devices) before JAX starts, and it is collected after this file."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(pytest.importorskip(self._name), attr)


jax: Any = _Lazy("jax")
jnp: Any = _Lazy("jax.numpy")
xs = pytest.importorskip("array_api_strict")

FRAMEWORKS = ["numpy", "torch", "jax", "array_api_strict"]
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "bfloat16", "float32", "float64", "complex64", "complex128"]
X64 = {"int64", "uint64", "float64", "complex128"}
XS_LACKS = {"float16", "bfloat16"}


def np_dt(name: str) -> np.dtype[Any]:
    return np.dtype(getattr(ml_dtypes, name)) if name in ML_DTYPE_BITS else np.dtype(name)


def x64() -> bool:
    return bool(jax.config.jax_enable_x64)


def holds(fw: str, dtype: str) -> bool:
    if fw == "jax":
        return x64() or dtype not in X64
    if fw == "array_api_strict":
        return dtype not in XS_LACKS
    return True


def make(fw: str, a: np.ndarray) -> Any:
    """``a`` in framework ``fw``, bits untouched (built with the frameworks' own calls)."""
    a = np.ascontiguousarray(a)
    if fw == "numpy":
        return a.copy()
    if fw == "torch":
        name = a.dtype.name
        if name in ML_DTYPE_BITS:
            return torch.from_numpy(a.view(ML_DTYPE_BITS[name]).copy()).view(getattr(torch, name))
        return torch.from_numpy(a.copy())
    if fw == "jax":
        return jax.device_put(a.copy())
    return xs.asarray(a.copy())


def as_numpy(y: Any) -> np.ndarray:
    if isinstance(y, np.ndarray) or isinstance(y, torch.Tensor):
        return numpy_bits(y)
    if af.framework_of(y) == "jax":
        return np.array(y, copy=True)
    return np.array(np.from_dlpack(y), copy=True)


# -- values: the specials of every kind ------------------------------------------------------------

_SPECIAL_FLOATS = [0.0, -0.0, 1.5, -2.75, 1e-40, -1e-45, 1e-310, 6e-8, 65504.0, 65520.0, 3e38, 1e300,
                   2.0**31, -(2.0**31) - 1, 2.0**63, 255.9, -1.0, 1e10, math.inf, -math.inf, math.nan]


@st.composite
def source_values(draw: st.DrawFn, dtype: str) -> np.ndarray:
    n = draw(st.integers(1, 6))
    dt = np_dt(dtype)
    if dtype == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        ints = st.one_of(st.integers(int(info.min), int(info.max)),
                         st.sampled_from([int(info.min), int(info.max), 0, -1 if dt.kind == "i" else 1, 255, 256, 70000]))
        vals = [v for v in draw(st.lists(ints, min_size=n, max_size=n)) if info.min <= v <= info.max] or [0]
        return np.array(vals, dtype=dt)
    floats = st.one_of(st.sampled_from(_SPECIAL_FLOATS), st.floats(allow_nan=True, allow_infinity=True, width=64))
    if dt.kind == "c":
        re = draw(st.lists(floats, min_size=n, max_size=n))
        im = draw(st.lists(st.one_of(st.just(0.0), st.just(-0.0), floats), min_size=n, max_size=n))
        with np.errstate(all="ignore"):
            return (np.array(re) + 1j * np.array(im)).astype(dt)
    with np.errstate(all="ignore"):
        if dtype in ML_DTYPE_BITS:
            return np.array(draw(st.lists(floats, min_size=n, max_size=n))).astype(np.float32).astype(dt)
        return np.array(draw(st.lists(floats, min_size=n, max_size=n))).astype(dt)


def numpy_cast(a: np.ndarray, dst: str) -> np.ndarray:
    """The reference: NumPy's own cast of the same values (ml_dtypes for bfloat16)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if a.dtype.kind == "c" and np_dt(dst).kind != "c":
            a = a.real
        return a.astype(np_dt(dst))


def out_of_range(a: np.ndarray, dst: str) -> bool:
    """Independent oracle, element by element in Python: would the cast change a value beyond
    rounding (NaN/inf to an integer, out of range, finite to non-finite, imaginary part dropped)?"""
    d = np_dt(dst)
    vals = a.astype(np.complex128) if a.dtype.kind == "c" else (
        a.astype(np.float64) if a.dtype.kind == "f" or a.dtype.name in ML_DTYPE_BITS else a)
    for v in vals.tolist():
        if isinstance(v, complex):
            if d.kind != "c" and v.imag != 0:
                return True
            parts = [v.real] if d.kind != "c" else [v.real, v.imag]
        else:
            parts = [v]
        if d.kind == "b":
            continue
        for p in parts:
            if d.kind in "iu":
                if isinstance(p, float) and not math.isfinite(p):
                    return True
                t = math.trunc(p)
                info = np.iinfo(d)
                if not int(info.min) <= t <= int(info.max):
                    return True
            else:
                comp = np.dtype(np.float32 if d == np.complex64 else np.float64) if d.kind == "c" else d
                if isinstance(p, float) and not math.isfinite(p):
                    continue
                with np.errstate(all="ignore"):
                    r = np.array([p]).astype(comp).astype(np.float64)[0] if not isinstance(p, int) else np.array([float(p)]).astype(comp).astype(np.float64)[0]
                if isinstance(p, int) and abs(p) > 2**62:  # big integers: exact decision in Python
                    with np.errstate(all="ignore"):
                        r = float(np.array([p], dtype=a.dtype).astype(comp).astype(np.float64)[0])
                if not math.isfinite(r):
                    return True
    return False


@st.composite
def conversions(draw: st.DrawFn) -> tuple[str, str, str, str, np.ndarray]:
    src_fw = draw(st.sampled_from(FRAMEWORKS))
    src_dt = draw(st.sampled_from([d for d in DTYPES if holds(src_fw, d)]))
    to = draw(st.sampled_from(FRAMEWORKS))
    dst = draw(st.sampled_from(DTYPES))
    return src_fw, src_dt, to, dst, draw(source_values(src_dt))


#: AF_CAST_EXAMPLES=5000 for a longer search (the suite keeps it to a few seconds)
PROPERTY = settings(max_examples=int(os.environ.get("AF_CAST_EXAMPLES", "250")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _convert_or_refused(x: Any, to: str, dst: str, **kw: Any) -> Any:
    try:
        return af.convert(x, to, dtype=dst, **kw)
    except af.UnsupportedDTypeError as exc:
        assert not holds(to, dst), f"{to} holds {dst}, but: {exc}"
        assert str(exc).splitlines()[-1].startswith("Hint:")
        return None


@PROPERTY
@given(conversions())
def test_unsafe_casts_agree_with_numpy_bit_for_bit(conv: tuple[str, str, str, str, np.ndarray]) -> None:
    src_fw, src_dt, to, dst, a = conv
    x = make(src_fw, a)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NumPy's cast warnings never leak
        y = _convert_or_refused(x, to, dst, casting="unsafe")
    if y is None:
        return
    got = as_numpy(y)
    want = numpy_cast(a, dst)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.tobytes() == want.tobytes(), f"{src_fw} {src_dt} -> {to} {dst}\n a    {a!r}\n want {want!r}\n got  {got!r}"


@PROPERTY
@given(conversions())
def test_checked_casts_deliver_numpy_values_or_refuse(conv: tuple[str, str, str, str, np.ndarray]) -> None:
    src_fw, src_dt, to, dst, a = conv
    x = make(src_fw, a)
    bad = out_of_range(a, dst) if src_dt != dst else False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            y = _convert_or_refused(x, to, dst)
    except af.LossyConversionError as exc:
        assert bad, f"{src_fw} {src_dt} -> {to} {dst} refused although every value is in range: {a!r}\n{exc}"
        msg = str(exc)
        assert f"Casting {src_dt} to {dst}" in msg and f"shape {a.shape}" in msg
        assert msg.splitlines()[-1].startswith("Hint:")
        return
    if y is None:
        return
    assert not bad, f"{src_fw} {src_dt} -> {to} {dst} let an out-of-range value through: {a!r} -> {as_numpy(y)!r}"
    got, want = as_numpy(y), numpy_cast(a, dst)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (a, want, got)


# -- out-of-range casts: refused unless asked for ----------------------------------------------------

OUT_OF_RANGE = [
    ("float64", [1e10, -1e10], "int32", "outside int32's range"),
    ("float64", [-1.0, 2.0], "uint8", "-1.0 is outside uint8's range [0, 255]"),
    ("float32", [300.0], "uint8", "outside uint8's range"),
    ("float64", [2.0**63], "int64", "outside int64's range"),
    ("int64", [70000, 1], "int16", "70000 is outside int16's range"),
    ("int32", [-5], "uint32", "-5 is outside uint32's range"),
    ("uint64", [2**63], "int64", "outside int64's range"),
    ("float64", [1e300, 1.0], "float32", "beyond float32's largest finite value"),
    ("float32", [70000.0], "float16", "beyond float16's largest finite value"),
    ("int64", [70000], "float16", "beyond float16's largest finite value"),
    ("float32", [500.0], "float8_e4m3fn", "beyond float8_e4m3fn's largest finite value"),
    ("complex128", [complex(1e300, 1.0)], "complex64", "beyond"),
    ("complex128", [complex(1.0, 2.0)], "float64", "non-zero imaginary parts"),
    ("float64", [math.nan], "int32", "NaN or infinity"),
    ("float32", [math.inf], "int64", "NaN or infinity"),
]


@pytest.mark.parametrize("src_fw", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize("to", ["numpy", "torch"])
@pytest.mark.parametrize(("src", "values", "dst", "words"), OUT_OF_RANGE, ids=[f"{s}->{d}" for s, _, d, _ in OUT_OF_RANGE])
def test_out_of_range_cast_raises_unless_unsafe(src_fw: str, to: str, src: str, values: list[Any], dst: str, words: str) -> None:
    if dst in ML_DTYPE_BITS and src_fw == "array_api_strict":
        pytest.skip("checked through torch/numpy")
    a = np.array(values, dtype=np_dt(src))
    x = make(src_fw, a)
    with pytest.raises(af.LossyConversionError) as info:
        af.convert(x, to, dtype=dst)
    msg = str(info.value)
    assert words in msg and f"Casting {src} to {dst}" in msg and f"shape {a.shape}" in msg, msg
    assert msg.splitlines()[-1].startswith("Hint:") and "casting='unsafe'" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        y = af.convert(x, to, dtype=dst, casting="unsafe")
    assert as_numpy(y).tobytes() == numpy_cast(a, dst).tobytes()


@pytest.mark.parametrize("to", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("at", [0, _BLOCK - 1, 3 * _BLOCK + 5, -1])
@pytest.mark.parametrize(("src", "dst", "bad"), [("float64", "int32", 3e9), ("float64", "uint8", -1.0),
                                                 ("int64", "int32", -(2**40)), ("float64", "float32", -1e39),
                                                 ("float64", "int64", math.nan), ("float32", "int16", 40000.0)])
def test_large_arrays_are_checked_everywhere(to: str, at: int, src: str, dst: str, bad: float) -> None:
    """The check runs block by block (and through the FPU's flags): a bad value in any block, the
    scalar tail included, is found; in-range values cast as NumPy does."""
    if to == "jax" and not x64() and dst in X64:
        pytest.skip("JAX without x64 holds no 64-bit dtype (refused with a hint, tested below)")
    a = (np.arange(4 * _BLOCK + 7) % 100).astype(src)
    assert af.convert(a, "numpy", dtype=dst).tobytes() == a.astype(dst).tobytes()
    a[at] = bad
    with pytest.raises(af.LossyConversionError, match=re.escape(f"shape {a.shape}")):
        af.convert(a, to, dtype=dst)
    y = af.convert(a, to, dtype=dst, casting="unsafe")
    with np.errstate(all="ignore"):
        assert as_numpy(y).tobytes() == a.astype(dst).tobytes()


@pytest.mark.parametrize("src_fw", ["torch", "numpy", "array_api_strict"])
@pytest.mark.parametrize("to", ["torch", "numpy"])
@pytest.mark.parametrize("dst", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"])
def test_unsafe_out_of_range_float_to_int_is_numpys_result(src_fw: str, to: str, dst: str) -> None:
    """C leaves these undefined and torch differs (2**31 + 1.5 to uint8: torch 1, NumPy 0): with
    casting='unsafe' the plan casts with NumPy, so the result is NumPy's."""
    a = np.array([2.0**31 + 1.5, -1.0, 1e10, -1e10, 300.0, 2.0**64, -(2.0**63) - 4096, math.nan, math.inf, -math.inf])
    y = af.convert(make(src_fw, a), to, dtype=dst, casting="unsafe")
    assert as_numpy(y).tobytes() == numpy_cast(a, dst).tobytes()


def test_rounding_and_truncation_are_what_a_cast_means() -> None:
    a = np.array([1.9, -1.9, -0.5, 2147483647.9, -2147483648.9, 0.1])
    assert af.convert(a, "torch", dtype="int32").tolist() == [1, -1, 0, 2147483647, -2147483648, 0]
    assert numpy_bits(af.convert(a, "torch", dtype="float32")).tobytes() == a.astype(np.float32).tobytes()
    # 65519.99 rounds to float16's largest value 65504; 65520 would round to inf
    assert af.convert(np.array([65519.99]), "numpy", dtype="float16")[0] == 65504
    with pytest.raises(af.LossyConversionError):
        af.convert(np.array([65520.0]), "numpy", dtype="float16")


def test_casting_names() -> None:
    a = np.array([1.5, 2.0])
    with pytest.raises(af.LossyConversionError, match="same_value"):
        af.convert(a, "torch", dtype="int32", casting="same_value")
    assert af.convert(np.array([1.0, -2.0]), "torch", dtype="int32", casting="same_value").tolist() == [1, -2]
    with pytest.raises(af.LossyConversionError, match="same_value"):
        af.convert(np.array([0.1]), "numpy", dtype="float32", casting="same_value")
    # NumPy's dtype rules, refused when the plan is made (nothing has run)
    with pytest.raises(af.LossyConversionError, match=r"casting='same_kind' does not allow float64 to int32") as info:
        af.plan(a, "torch", dtype="int32", casting="same_kind")
    assert str(info.value).splitlines()[-1].startswith("Hint:")
    with pytest.raises(af.LossyConversionError, match="casting='safe'"):
        af.plan(a, "torch", dtype="float32", casting="safe")
    assert af.convert(a, "torch", dtype="float32", casting="same_kind").dtype == torch.float32
    assert af.convert(np.array([1, 2], dtype=np.int32), "torch", dtype="int64", casting="safe").tolist() == [1, 2]
    with pytest.raises(af.LossyConversionError, match="casting='no' allows no cast"):
        af.plan(a, "torch", dtype="float32", casting="no")
    assert af.plan(a, "torch", casting="no").zero_copy  # no cast, nothing refused
    # same_kind allows int64 -> int32, and the values are still checked
    with pytest.raises(af.LossyConversionError, match="outside int32's range"):
        af.convert(np.array([2**40]), "torch", dtype="int32", casting="same_kind")
    with pytest.raises(af.ArgumentError, match="casting must be") as info:
        af.convert(a, "torch", dtype="int32", casting="yes")
    assert str(info.value).splitlines()[-1].startswith("Hint:")
    p = af.plan(a, "torch", dtype="int32", casting="unsafe")
    assert p.casting == "unsafe" and "casting='unsafe'" in p.explain()


_SV_DTYPES = ["bool", "int8", "uint8", "int16", "int32", "int64", "uint64", "float16", "float32", "float64",
              "complex64", "complex128"]
_SV_VALUES = [0.0, 1.5, 1e-40, 3.0, 1e300, math.nan, math.inf, -1.0, 255.0, 2.0**53 + 2, 0.1, 2.0**64]


@pytest.mark.parametrize("src", _SV_DTYPES)
def test_same_value_agrees_with_numpys_same_value(src: str) -> None:
    """casting='same_value' refuses exactly what NumPy 2.4's astype(casting='same_value') refuses,
    except two NumPy quirks where arrayferry keeps the value: 65504 (float16's largest value, exact)
    and float16 -0.0 to an integer (0, as NumPy says for every other float type)."""
    try:
        np.array([1.0]).astype(np.int8, casting="same_value")
    except ValueError:
        pytest.skip("this NumPy has no casting='same_value'")
    for dst, v in ((d, v) for d in _SV_DTYPES if d != src for v in _SV_VALUES):
        with np.errstate(all="ignore"):
            a = np.array([v]).astype(src)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NumPy's ComplexWarning, its own
                a.astype(dst, casting="same_value")
            numpy_ok = True
        except ValueError:
            numpy_ok = False
        try:
            af.convert(a, "numpy", dtype=dst, casting="same_value")
            ours = True
        except af.LossyConversionError:
            ours = False
        quirk = (dst == "float16" and abs(complex(a[0])) == 65504) or (src == "float16" and a[0] == 0)
        assert ours == numpy_ok or (quirk and ours), (src, dst, a, numpy_ok, ours)


def test_cache_keys_on_casting() -> None:
    a = np.array([1e10])
    assert af.convert(a, "torch", dtype="int32", casting="unsafe").tolist() == [-2147483648]
    with pytest.raises(af.LossyConversionError):
        af.convert(a, "torch", dtype="int32")
    assert af.convert(a, "torch", dtype="int32", casting="unsafe").tolist() == [-2147483648]


def test_native_casts_are_checked() -> None:
    """Same-framework casts (torch -> torch, xs -> xs, numpy -> numpy) obey the same policy."""
    for x, to in ((torch.tensor([1e10]), "torch"), (xs.asarray(np.array([1e10])), "array_api_strict"),
                  (np.array([1e10]), "numpy")):
        p = af.plan(x, to, dtype="int32")
        assert p.route == "native" or p.route == "host", p.explain()
        with pytest.raises(af.LossyConversionError, match="outside int32's range"):
            af.convert(x, to, dtype="int32")
        assert as_numpy(af.convert(x, to, dtype="int32", casting="unsafe")).tolist() == [-2147483648]


# -- JAX: never a silently narrower dtype, never an alias ----------------------------------------------


@pytest.mark.parametrize("to", ["torch", "numpy", "array_api_strict"])
@pytest.mark.parametrize(("src", "dst"), [("int32", "int64"), ("int16", "float64"), ("float32", "float64"),
                                          ("int32", "uint64"), ("float32", "complex128")])
def test_jax_delivers_64bit_dtypes_without_x64(to: str, src: str, dst: str) -> None:
    j = jnp.arange(4, dtype=src)
    before = np.array(j, copy=True)
    p = af.plan(j, to, dtype=dst)
    assert not p.zero_copy and p.dtype == dst
    y = af.convert(j, to, dtype=dst)
    got = as_numpy(y)
    assert got.dtype == np.dtype(dst) and got.tobytes() == before.astype(dst).tobytes()
    if to == "torch":
        y[0] = 99  # written through the result: the JAX array must not change
    elif to == "numpy":
        y[0] = 99
    assert np.array_equal(np.asarray(j), before)


def test_jax_target_refuses_64bit_without_x64_with_hint() -> None:
    if x64():
        pytest.skip("x64 is on in this process")
    with pytest.raises(af.UnsupportedDTypeError) as info:
        af.plan(np.arange(3, dtype=np.int32), "jax", dtype="int64")
    msg = str(info.value)
    assert "jax_enable_x64" in msg and "dtype='int32'" in msg and msg.splitlines()[-1].startswith("Hint:")
    with pytest.raises(af.UnsupportedDTypeError, match="jax_enable_x64"):
        af.plan(jnp.arange(3, dtype=jnp.int32), "jax", dtype="int64")


@pytest.mark.parametrize("to", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("dst", ["bool", "float16", "bfloat16", "complex64"])
def test_jax_subnormals_survive_casts(to: str, dst: str) -> None:
    a = np.array([1e-40, -1e-45, 0.0, -0.0, 1.0], dtype=np.float32)
    j = jax.device_put(a.copy())
    assert np.array(j).tobytes() == a.tobytes()
    p = af.plan(j, to, dtype=dst)
    assert "astype" not in p.explain() and not any(s.name == "cast" and "in jax" in s.description for s in p.steps), p.explain()
    got = as_numpy(af.convert(j, to, dtype=dst))
    assert got.tobytes() == numpy_cast(a, dst).tobytes()


# -- array-api-strict: missing dtypes and refused complex casts ------------------------------------------


@pytest.mark.parametrize("to", ["numpy", "torch"])
@pytest.mark.parametrize("dst", ["float16", "bfloat16"])
def test_xs_source_to_dtypes_it_lacks(to: str, dst: str) -> None:
    a = np.array([1.5, -0.0, 1e-40, np.inf], dtype=np.float32)
    got = as_numpy(af.convert(xs.asarray(a), to, dtype=dst))
    assert got.tobytes() == numpy_cast(a, dst).tobytes()
    with pytest.raises(af.UnsupportedDTypeError) as info:
        af.convert(xs.asarray(a), "array_api_strict", dtype=dst)
    assert str(info.value).splitlines()[-1].startswith("Hint:")


@pytest.mark.parametrize("to", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize("dst", ["float64", "float32", "bool", "int32"])
def test_xs_complex_to_real(to: str, dst: str) -> None:
    a = np.array([1 + 0j, -2.5 - 0j, 0j], dtype=np.complex128)
    got = as_numpy(af.convert(xs.asarray(a), to, dtype=dst))
    assert got.tobytes() == numpy_cast(a, dst).tobytes()
    with pytest.raises(af.LossyConversionError, match="imaginary"):
        af.convert(xs.asarray(np.array([1 + 1j])), to, dtype=dst)


# -- where the cast runs, by device -------------------------------------------------------------------


@pytest.mark.parametrize("device", ["no_float64", "no_x64"])
def test_xs_cast_runs_before_to_device_the_target_device_cannot_hold(device: str) -> None:
    a = np.array([1, -(2**31), 2**31 - 1], dtype=np.int64)
    x = xs.asarray(a)
    if device == "no_x64":
        p = af.plan(x, "array_api_strict", device=device, dtype="int32")
        names = [s.name for s in p.steps]
        assert names.index("cast") < names.index("to_device"), p.explain()
        y = af.convert(x, "array_api_strict", device=device, dtype="int32")
        assert af.device_of(y) == af.Device(device) and as_numpy(y).tolist() == a.tolist()
    f = xs.asarray(np.array([1.5, -0.0]))
    p = af.plan(f, "array_api_strict", device=device, dtype="float32")
    names = [s.name for s in p.steps]
    assert names.index("cast") < names.index("to_device"), p.explain()
    y = af.convert(f, "array_api_strict", device=device, dtype="float32")
    assert as_numpy(y).tobytes() == np.array([1.5, -0.0], dtype=np.float32).tobytes()


@pytest.fixture
def fake_cuda_f64() -> Any:
    """A torch FakeTensor float64 on cuda:1 (metadata only; FakeTensorMode is private API)."""
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
    except ImportError as exc:
        pytest.skip(f"torch FakeTensorMode is not importable here: {exc}")
    try:
        with FakeTensorMode():
            return torch.empty(1024, dtype=torch.float64, device="cuda:1")
    except Exception as exc:
        pytest.skip(f"FakeTensorMode cannot make a cuda:1 tensor here: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("dst", ["float32", "int32", "int16", "uint8"])
def test_narrowing_cast_runs_on_the_gpu_before_the_transfer(fake_cuda_f64: Any, dst: str) -> None:
    p = af.plan(fake_cuda_f64, "numpy", dtype=dst)
    names = [s.name for s in p.steps]
    assert names[:2] == ["cast", "to_host"], p.explain()
    assert "on cuda:1, before the transfer" in p.steps[0].description
    # the transfer moves the narrow dtype: nbytes_moved counts cast output + staged copy
    item = np.dtype(dst).itemsize
    assert p.nbytes_moved == 1024 * item * sum(1 for s in p.steps if s.copies)


def test_gpu_float64_to_float16_is_narrowed_on_the_gpu(fake_cuda_f64: Any) -> None:
    """torch's own cast rounds float64 -> float16 through float32, but the adapter's cast rounds
    once (``exact_float16``, torch ops only): the GPU narrows before the transfer, moving 2 bytes
    per value instead of 8."""
    p = af.plan(fake_cuda_f64, "numpy", dtype="float16")
    names = [s.name for s in p.steps]
    assert names[:2] == ["cast", "to_host"], p.explain()
    assert "on cuda:1, before the transfer" in p.steps[0].description
    assert p.nbytes_moved == 1024 * 2 * sum(1 for s in p.steps if s.copies)


def test_gpu_cast_torch_rounds_differently_runs_on_the_host() -> None:
    """Pairs whose torch cast still differs from NumPy's (bfloat16's NaN payloads) cast on the host,
    and the plan says why."""
    with FakeMode():
        t = torch.empty(1024, dtype=torch.float32, device="cuda:1")
    p = af.plan(t, "numpy", dtype="bfloat16")
    names = [s.name for s in p.steps]
    assert names[0] == "to_host" and "host_copy" in names, p.explain()
    assert "NaN" in p.explain()


def test_widening_from_gpu_is_not_cast_before_the_transfer(fake_cuda_f64: Any) -> None:
    with FakeMode():
        t = torch.empty(16, dtype=torch.float32, device="cuda:1")
    p = af.plan(t, "numpy", dtype="float64")
    names = [s.name for s in p.steps]
    assert names[0] == "to_host" and "cast" not in names, p.explain()


class FakeMode:
    def __enter__(self) -> Any:
        from torch._subclasses.fake_tensor import FakeTensorMode

        self.m = FakeTensorMode()
        return self.m.__enter__()

    def __exit__(self, *a: Any) -> Any:
        return self.m.__exit__(*a)


def test_cast_in_source_when_it_holds_the_dtype_and_casts_exactly() -> None:
    t = torch.arange(6, dtype=torch.float64)
    p = af.plan(t, "torch", dtype="float32")
    assert p.route == "native" and [s.name for s in p.steps] == ["cast"], p.explain()
    # torch's own cast would round twice; the adapter's cast rounds once (exact_float16)
    p = af.plan(t, "torch", dtype="float16")
    assert p.route == "native" and [s.name for s in p.steps] == ["cast"], p.explain()
    x = torch.tensor([1 + 2.0**-11 + 2.0**-40, 0.1, -65504.0], dtype=torch.float64)
    for casting in (None, "unsafe"):
        y = af.convert(x, "torch", dtype="float16", casting=casting)
        assert numpy_bits(y).tobytes() == x.numpy().astype(np.float16).tobytes()
    p = af.plan(t, "torch", dtype="bfloat16")  # torch's bfloat16 NaN payloads differ: NumPy casts
    assert "host_copy" in [s.name for s in p.steps] and "NaN" in p.explain(), p.explain()


# -- nbytes_moved: an upper bound of what the steps write ------------------------------------------------


def _written(y: Any) -> int:
    from arrayferry._registry import registry

    a = registry().adapter_named(af.framework_of(y))
    info = a.describe(y)
    return info.size * info.itemsize


def _ro() -> np.ndarray:
    ro = np.arange(12, dtype=np.float32).reshape(3, 4)
    ro.flags.writeable = False
    return ro


def _conj() -> Any:
    return torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64).conj()


_NBYTES_CASES: list[tuple[str, Any, str, dict[str, Any]]] = [
    ("numpy cast", lambda: np.arange(12, dtype=np.float32).reshape(3, 4), "torch", {"dtype": "float64"}),
    ("read-only copy then cast", _ro, "torch", {"dtype": "float64"}),
    ("strided narrowing", lambda: np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2], "torch", {"dtype": "int8"}),
    ("big-endian widening", lambda: np.arange(5, dtype=">f4"), "torch", {"dtype": "float64"}),
    ("torch conj bit then cast", _conj, "numpy", {"dtype": "complex128"}),
    ("torch conj bit then torch cast", _conj, "torch", {"dtype": "complex128"}),
    ("torch to float16 on host", lambda: torch.arange(7, dtype=torch.float64), "torch", {"dtype": "float16"}),
    ("jax widening", lambda: jnp.arange(5, dtype=jnp.int32), "torch", {"dtype": "int64"}),
    ("jax float to numpy float64", lambda: jnp.arange(5, dtype=jnp.float32), "numpy", {"dtype": "float64"}),
    ("xs narrowing before to_device", lambda: xs.asarray(np.arange(5, dtype=np.int64)), "array_api_strict",
     {"dtype": "int32", "device": "no_x64"}),
    ("xs copy=True widening", lambda: xs.asarray(np.arange(5, dtype=np.int16)), "torch", {"dtype": "int64", "copy": True}),
    ("numpy to jax cast", lambda: np.arange(5, dtype=np.float64), "jax", {"dtype": "float32"}),
]


@pytest.mark.parametrize(("label", "make_x", "to", "kw"), _NBYTES_CASES, ids=[c[0] for c in _NBYTES_CASES])
def test_nbytes_moved_is_an_upper_bound_of_every_step(label: str, make_x: Any, to: str, kw: dict[str, Any]) -> None:
    x = make_x()
    p = af.plan(x, to, **kw)
    cur, written = x, 0
    for s in p.steps:
        cur = s.fn(cur)
        if s.copies:
            written += _written(cur)
    assert written <= p.nbytes_moved, (written, p.nbytes_moved, p.explain())
    assert p.nbytes_moved <= 2 * written or written == 0, p.explain()  # an upper bound, not a guess
    assert as_numpy(cur).tobytes() == as_numpy(af.convert(x, to, **kw)).tobytes()


def test_nbytes_moved_counts_each_copy_at_the_dtype_it_writes() -> None:
    ro = np.arange(10, dtype=np.float32)
    ro.flags.writeable = False
    assert af.plan(ro, "torch", dtype="float64").nbytes_moved == 10 * 8  # one host copy that casts
    conj = torch.tensor([1 + 2j] * 10, dtype=torch.complex64).conj()
    p = af.plan(conj, "numpy", dtype="complex128")
    assert [s.name for s in p.steps] == ["resolve_bits", "export_host", "host_copy"], p.explain()
    assert p.nbytes_moved == 10 * 8 + 10 * 16  # the resolve copy writes complex64, the cast complex128


# -- errors describe the array at hand ---------------------------------------------------------------


def test_errors_describe_the_array_of_the_call_not_the_cached_plan() -> None:
    af.convert(np.zeros(5), "torch", dtype="int32")  # caches the plan for this signature
    with pytest.raises(af.LossyConversionError) as info:
        af.convert(np.array([1e10, 0.0]), "torch", dtype="int32")
    msg = str(info.value)
    assert "shape (2,)" in msg and "(5,)" not in msg
    # a foreign failure while running a cached template is worded from the given array too
    from arrayferry._plan import failure

    p = af.plan(np.zeros(5), "torch", dtype="float32")
    err = failure(p._t, RuntimeError("boom"), np.zeros((2, 3)))
    assert "(2, 3)" in str(err) and "(5,)" not in str(err) and str(err).splitlines()[-1].startswith("Hint:")


@pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64:UserWarning")  # JAX's own, the point of the test
def test_jax_astype_is_never_trusted_to_change_the_dtype() -> None:
    """The cast step checks what the framework hands back: a no-op cast is an error, not an alias."""
    from arrayferry._plan import _cast_step
    from arrayferry._registry import registry

    jx = registry().adapter_named("jax")
    step = _cast_step(jx, "int32", "int64", None, "test")
    if x64():
        pytest.skip("x64 on: astype does change the dtype")
    with pytest.raises(af.ArrayFerryError, match="returned int32; the plan promised int64"):
        step.fn(jnp.arange(3, dtype=jnp.int32))


# -- dask: the policy travels to every chunk ------------------------------------------------------------


def test_dask_chunks_follow_the_casting_policy() -> None:
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.array([1e10, 1.0, -1.0]), chunks=1)
    lazy = af.convert(x, "dask", dtype="int32")  # lazy: the check runs where each chunk is computed
    with pytest.raises(af.LossyConversionError, match="outside int32's range"):
        lazy.compute(scheduler="sync")
    got = af.convert(x, "dask", dtype="int32", casting="unsafe").compute(scheduler="sync")
    with np.errstate(all="ignore"):
        assert got.tobytes() == np.array([1e10, 1.0, -1.0]).astype(np.int32).tobytes()
    with pytest.raises(af.LossyConversionError):
        af.convert(x, "numpy", dtype="uint8")


# -- JAX with x64 on: 64-bit casts exist, subnormals still survive ------------------------------------------


@pytest.fixture
def jax_x64() -> Any:
    before = x64()
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


@pytest.mark.usefixtures("jax_x64")
@pytest.mark.parametrize("to", ["jax", "numpy", "torch"])
def test_jax_x64_casts_keep_subnormals(to: str) -> None:
    a = np.array([1e-40, -1e-45, -0.0, 3.0], dtype=np.float32)
    j = jax.device_put(a.copy())
    y = af.convert(j, to, dtype="float64")
    got = as_numpy(y)
    assert got.dtype == np.float64 and got.tobytes() == a.astype(np.float64).tobytes()
    if to == "jax":
        assert isinstance(y, jax.Array) and y.dtype == jnp.float64
    ints = jnp.arange(3, dtype=jnp.int32)
    p = af.plan(ints, "jax", dtype="int64")  # integer casts in JAX are exact: they stay in JAX
    assert [s.name for s in p.steps] == ["cast"] and "in jax" in p.steps[0].description, p.explain()
    assert as_numpy(af.convert(ints, "jax", dtype="int64")).tolist() == [0, 1, 2]


# -- the framework-side check (GPU tensors) agrees with the host check ------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(DTYPES).flatmap(
    lambda s: st.tuples(st.just(s), st.sampled_from(DTYPES), source_values(s))))
def test_device_check_agrees_with_host_check(case: tuple[str, str, np.ndarray]) -> None:
    """``_hostops.device_check`` with torch's operations (what a CUDA tensor's cast runs) refuses
    exactly what the host's fused check refuses; run here on CPU tensors."""
    from arrayferry._hostops import check_cast_values, device_check
    from arrayferry.adapters.torch import _TorchOps

    src, dst, a = case
    if src == dst:
        return
    t = make("torch", a)
    for mode in ("range", "exact"):
        outcomes = []
        for check in (lambda: check_cast_values(a, src, dst, mode=mode),
                      lambda: device_check(t, src, dst, mode, _TorchOps(torch))):
            try:
                check()
                outcomes.append(None)
            except af.LossyConversionError as exc:
                outcomes.append(str(exc).split(":")[0])
        assert outcomes[0] == outcomes[1], (mode, src, dst, a, outcomes)
        if mode == "range":
            assert (outcomes[0] is not None) == out_of_range(a, dst), (src, dst, a, outcomes)


def test_convert_tree_takes_casting() -> None:
    tree = {"a": np.array([1e10]), "b": [np.array([1.5])]}
    with pytest.raises(af.LossyConversionError, match=r"\['a'\]"):
        af.convert_tree(tree, "torch", dtype="int32")
    out = af.convert_tree(tree, "torch", dtype="int32", casting="unsafe")
    assert out["a"].tolist() == [-2147483648] and out["b"][0].tolist() == [1]
    with pytest.raises(af.LossyConversionError, match="casting='same_kind'"):
        af.plan_tree(tree, "torch", dtype="int32", casting="same_kind")


@pytest.mark.parametrize("casting", [None, "unsafe"])
@pytest.mark.parametrize("dst", ["float32", "float64", "complex64", "complex128"])
def test_torch_float16_nan_payloads_widen_as_numpy_does(dst: str, casting: str | None) -> None:
    """torch widens float16 NaN with its own payload (0x7e00 -> float32 0x7fffffff; NumPy keeps
    the bits: 0x7fc00000): the plan casts where the bits come out as NumPy's."""
    torch = pytest.importorskip("torch")
    bits = np.array([0x7E00, 0x7C01, 0xFE00, 0x7D00, 0x7FFF, 0xFFFF, 0x3C00, 0x8000], dtype=np.uint16)
    a = bits.view(np.float16)
    got = af.convert(torch.from_numpy(a.copy()), "torch", dtype=dst, casting=casting).numpy()
    want = a.astype(dst)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


# -- the block test's shortcuts (one reduction where one end cannot be crossed) --------------------

_REAL = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"]


def _edges(src: str, dst: str) -> list[Any]:
    """Values of ``src`` at and around both ends of ``dst``'s range and of ``src``'s own."""
    s, d = np.dtype(src), np.dtype(dst)
    out: list[Any] = [0, 1, -1]
    if d.kind in "iu":
        lo, hi = int(np.iinfo(d).min), int(np.iinfo(d).max)
        out += [lo - 1, lo, hi, hi + 1]
    else:
        m = float(np.finfo(d).max)
        out += [m, -m, m * 1.0001, -m * 1.0001, math.inf, -math.inf, math.nan]
    if s.kind in "iu":
        out += [int(np.iinfo(s).min), int(np.iinfo(s).max), int(np.iinfo(s).min) + 1]
        lo_s, hi_s = int(np.iinfo(s).min), int(np.iinfo(s).max)
        return sorted({v for v in out if isinstance(v, int) and lo_s <= v <= hi_s})
    with np.errstate(all="ignore"):
        return list(np.array([float(v) for v in out] + [math.nan, math.inf], dtype=s))


@pytest.mark.parametrize("src", _REAL)
@pytest.mark.parametrize("dst", _REAL)
@pytest.mark.parametrize("n", [5, 2 * _BLOCK + 3])
def test_block_test_shortcuts_refuse_exactly_the_out_of_range_values(src: str, dst: str, n: int) -> None:
    """Each edge value alone in an array (small: one block; large: the last block of several) is
    refused exactly when the element-wise oracle says the cast changes it: the one-reduction
    shortcuts (unsigned view, one end only) miss no end of any pair (int8 -> uint8's -1 included)."""
    if src == dst:
        return
    for v in _edges(src, dst):
        a = np.zeros(n, dtype=src)
        a[-1] = v
        bad = out_of_range(a[-1:], dst)
        try:
            y = af.convert(a, "numpy", dtype=dst)
        except af.LossyConversionError:
            assert bad, (src, dst, v)
            continue
        assert not bad, (src, dst, v)
        with np.errstate(all="ignore"):
            assert y.tobytes() == a.astype(dst).tobytes()


# -- float64/float32 -> float16 in torch ops (what a CUDA tensor's cast runs), NumPy's bits ----------

_F16_EDGES = [0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 65504.0, 65519.99999999999, 65520.0, -65520.0,
              1e300, -1e300, 3.4028235677973366e38, 3.402823669209385e38, 1e-300, -1e-300, 2.0**-24, 2.0**-25,
              2.0**-25 + 2.0**-60, -(2.0**-25), 2.0**-24 * 1.5, 2.0**-14, 2.0**-14 - 2.0**-25, 5e-324,
              1 + 2.0**-11 + 2.0**-40, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 2.0**-126, 2.0**-149, 2.0**-150 + 2.0**-200]
_F64_NANS = [0x7FF0000000000001, 0x7FF4000000000000, 0xFFF8000000000123, 0x7FF0040000000000, 0x7FFFFFFFFFFFFFFF,
             0xFFF0000000000001, 0x7FF003FFFFFFFFFF]


def _f16_bits_numpy(a: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return a.astype(np.float16).view(np.uint16)


def _f16_bits_torch(a: np.ndarray) -> np.ndarray:
    from arrayferry.adapters.torch import exact_float16

    return exact_float16(torch, torch.from_numpy(a)).view(torch.int16).numpy().view(np.uint16)


def test_exact_float16_edges() -> None:
    a = np.array(_F16_EDGES + [-v for v in _F16_EDGES], dtype=np.float64)
    a = np.concatenate([a, np.array(_F64_NANS, dtype=np.uint64).view(np.float64)])
    assert _f16_bits_torch(a).tolist() == _f16_bits_numpy(a).tolist()
    with np.errstate(all="ignore"):
        b = a.astype(np.float32)
    assert _f16_bits_torch(b).tolist() == _f16_bits_numpy(b).tolist()
    # torch's own cast is what this replaces: it rounds twice (and quiets NaN payloads)
    x = np.array([1 + 2.0**-11 + 2.0**-40])
    assert torch.from_numpy(x).to(torch.float16).item() == 1.0 != float(x.astype(np.float16)[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=64), st.booleans())
def test_exact_float16_every_float64_bit_pattern(words: list[int], strided: bool) -> None:
    """Any float64 bit pattern (NaN payloads, subnormals, beyond float32's range) casts to NumPy's
    float16 bits; the same for the float32 patterns in the low words, and for strided views."""
    a = np.array(words, dtype=np.uint64).view(np.float64)
    if strided:
        a = np.repeat(a, 2)[::2]
    assert _f16_bits_torch(a).tolist() == _f16_bits_numpy(a).tolist()
    b = (np.array(words, dtype=np.uint64) & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    assert _f16_bits_torch(b).tolist() == _f16_bits_numpy(b).tolist()


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-70000, max_value=70000, width=64))
def test_exact_float16_near_float16_values(v: float) -> None:
    """Values near float16's grid (where double rounding bites) and its overflow threshold."""
    a = np.array([v, np.nextafter(v, np.inf), np.nextafter(v, -np.inf), v * 2.0**-20, v * 2.0**-30], dtype=np.float64)
    assert _f16_bits_torch(a).tolist() == _f16_bits_numpy(a).tolist()


@pytest.mark.parametrize("casting", [None, "unsafe"])
def test_torch_float16_cast_is_numpys(casting: str | None) -> None:
    """A torch tensor cast to float16 in torch (the unsafe route casts in the adapter) or checked on
    the host: the bits are NumPy's either way; overflow to infinity is refused unless unsafe."""
    a = np.array(_F16_EDGES[:4] + [1 + 2.0**-11 + 2.0**-40, 2.0**-25 + 2.0**-60, 0.1, -7.3], dtype=np.float64)
    y = af.convert(torch.from_numpy(a), "torch", dtype="float16", casting=casting)
    assert y.numpy().view(np.uint16).tolist() == _f16_bits_numpy(a).tolist()
    big = torch.tensor([1.0, 1e6], dtype=torch.float64)
    if casting is None:
        with pytest.raises(af.LossyConversionError, match="float16"):
            af.convert(big, "torch", dtype="float16")
    else:
        assert af.convert(big, "torch", dtype="float16", casting="unsafe").tolist() == [1.0, math.inf]


def test_float64_to_bfloat16_torch_and_ml_dtypes_round_alike() -> None:
    """Both torch and ml_dtypes (NumPy's bfloat16) round float64 to bfloat16 through float32, so
    the exact-float16 treatment is not applied to bfloat16: the reference itself rounds twice."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.array([1 + 2.0**-8 + 2.0**-40, -(1 + 2.0**-8 + 2.0**-40), 1 + 3 * 2.0**-8 - 2.0**-40, 0.1, 3e38])
    ref = a.astype(ml_dtypes.bfloat16).view(np.uint16)
    assert ref.tolist() == a.astype(np.float32).astype(ml_dtypes.bfloat16).view(np.uint16).tolist()
    assert torch.from_numpy(a).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16).tolist() == ref.tolist()
    assert numpy_bits(af.convert(torch.from_numpy(a), "torch", dtype="bfloat16")).tobytes() == ref.tobytes()


@pytest.mark.parametrize("src", ["complex128", "complex64", "float32"])
def test_torch_float16_cast_from_complex_and_float32(src: str) -> None:
    """complex (imaginary parts zero) and float32 tensors cast to float16 in torch with NumPy's bits."""
    with np.errstate(all="ignore"):
        a = np.array([1 + 2.0**-11 + 2.0**-40, 2.0**-25 + 2.0**-60, -0.0, 65519.99, 0.1], dtype=np.float64).astype(src)
    want = (a.real if a.dtype.kind == "c" else a).astype(np.float16)
    p = af.plan(torch.from_numpy(a), "torch", dtype="float16", casting="unsafe")
    assert [s.name for s in p.steps] == ["cast"], p.explain()
    for casting in (None, "unsafe"):
        y = af.convert(torch.from_numpy(a), "torch", dtype="float16", casting=casting)
        assert y.numpy().view(np.uint16).tolist() == want.view(np.uint16).tolist()
