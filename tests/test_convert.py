"""The conversion matrix of issue 2: every case x target x copy policy, values bit for bit.

For each cell the test checks, against references computed with NumPy alone: the result's type,
dtype, shape and bytes (NaN payloads, -0.0 and inf included); whether memory is shared (byte
ranges, then a write through one side read on the other); that read-only memory never comes back
writable; and that the plan said beforehand exactly what happened.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cases import Case, sample
from helpers import (
    assert_bitwise_equal,
    assert_error_layout,
    assert_independent,
    assert_values_equal,
    assert_write_through,
    dtype_name,
    numpy_bits,
    shares_memory,
    size_of,
)

import arrayferry as af

torch = pytest.importorskip("torch")


def _is_target_type(y: Any, target: str) -> bool:
    return isinstance(y, np.ndarray) if target == "numpy" else isinstance(y, torch.Tensor)


def test_matrix(case: Case, target: str, copy_policy: bool | None) -> None:
    """One cell: zero-copy exactly when safe, a copy or CopyRequiredError otherwise, values exact."""
    x, ref = case.make()
    needs_copy = case.needs_copy(target)
    if copy_policy is False and needs_copy:
        before = numpy_bits(x).tobytes()
        with pytest.raises(af.CopyRequiredError) as planned:
            af.plan(x, target, copy=False)
        with pytest.raises(BufferError) as converted:  # CopyRequiredError is also a BufferError
            af.convert(x, target, copy=False)
        for exc in (planned.value, converted.value):
            assert isinstance(exc, af.CopyRequiredError)
            assert_error_layout(exc, "copy=False", target, case.why)
        assert numpy_bits(x).tobytes() == before
        return

    expect_shared = copy_policy is not True and not needs_copy
    p = af.plan(x, target, copy=copy_policy)
    assert p.zero_copy is expect_shared, p.explain()
    if needs_copy:
        assert case.why in p.explain()
    y = af.convert(x, target, copy=copy_policy)

    assert _is_target_type(y, target), type(y)
    assert af.framework_of(y) == target
    assert tuple(y.shape) == tuple(ref.shape)
    assert dtype_name(y) == dtype_name(ref), "silent dtype change"
    assert_bitwise_equal(ref, y)

    # the plan never lies; for size-0 arrays sharing is unobservable
    observable = size_of(x) > 0
    shared = shares_memory(x, y)
    if observable:
        assert shared is expect_shared, p.explain()

    # read-only memory never comes back writable
    if case.readonly and shared:
        assert target == "numpy" and not y.flags.writeable
    if target == "numpy" and not shared:
        assert y.flags.writeable

    # the plan object runs the same conversion; a second convert hits the plan cache
    z = p.execute(x)
    assert_bitwise_equal(ref, z)
    assert_bitwise_equal(ref, af.convert(x, target, copy=copy_policy))
    if observable:
        assert shares_memory(x, z) is expect_shared

    # writes: through an alias they reach the source, into a copy they do not
    if observable:
        if shared and (target == "torch" or y.flags.writeable):
            assert_write_through(x, y)
        elif not shared:
            assert_independent(x, y)


def test_negative_strides_never_reach_torch(negative_strides_safe: str) -> None:
    """The subprocess guard (conftest): every negative-stride case converted with every copy
    policy while torch.from_numpy / torch.from_dlpack report any negative-stride argument."""
    from cases import CASES

    risky = {c.id for c in CASES if c.risky}
    done = [line.split() for line in negative_strides_safe.splitlines() if line.startswith("ok ")]
    assert {d[1] for d in done} == risky and len(done) == len(risky) * 2 * 3
    assert "REACHED" not in negative_strides_safe


@pytest.mark.parametrize("copy_policy", [None, False, True], ids=lambda c: f"copy={c}")
def test_round_trip_numpy_torch_numpy(case: Case, copy_policy: bool | None) -> None:
    """numpy -> torch -> numpy (and torch -> numpy -> torch) gives the same bits back."""
    x, ref = case.make()
    other = "torch" if case.source == "numpy" else "numpy"
    try:
        mid = af.convert(x, other, copy=copy_policy)
    except af.CopyRequiredError:
        assert copy_policy is False and case.needs_copy(other)
        return
    legs = af.plan(x, other, copy=copy_policy).zero_copy and af.plan(mid, case.source).zero_copy
    try:
        back = af.convert(mid, case.source, copy=copy_policy)
    except af.CopyRequiredError:  # e.g. a misaligned tensor: NumPy aliases it, torch will not take it back
        assert copy_policy is False and not af.plan(mid, case.source).zero_copy
        return
    assert af.framework_of(back) == case.source
    assert_bitwise_equal(ref, back)
    if size_of(x):
        assert shares_memory(x, back) is legs


# -- the named examples ------------------------------------------------------------------


def test_conj_imag_has_the_right_sign() -> None:
    """DLPack drops the neg bit; arrayferry resolves it: [1+2j, 3-4j].conj().imag is [-2, 4]."""
    t = torch.tensor([1 + 2j, 3 - 4j]).conj().imag
    assert t.is_neg()
    p = af.plan(t, "numpy")
    assert [s.name for s in p.steps][0] == "resolve_bits"
    assert p.steps[0].copies and not p.zero_copy
    a = af.convert(t, "numpy")
    np.testing.assert_array_equal(a, np.array([-2.0, 4.0], dtype=np.float32))
    assert a.dtype == np.float32


def test_conj_bit_resolved_to_numpy() -> None:
    t = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex128).conj()
    a = af.convert(t, "numpy")
    np.testing.assert_array_equal(a, np.array([1 - 2j, 3 + 4j]))
    assert "conj" in af.plan(t, "numpy").explain()


@pytest.mark.parametrize("copy_policy", [None, False], ids=lambda c: f"copy={c}")
def test_requires_grad_is_detached_without_copy(copy_policy: bool | None) -> None:
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_()
    p = af.plan(t, "numpy", copy=copy_policy)
    assert p.zero_copy
    detach = [s for s in p.steps if s.name == "detach"]
    assert len(detach) == 1 and not detach[0].copies
    assert "detach" in p.explain()
    a = af.convert(t, "numpy", copy=copy_policy)
    assert a.ctypes.data == t.data_ptr()
    a[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    assert t.requires_grad  # the source tensor is untouched


@pytest.mark.parametrize("direction", ["numpy->torch", "torch->numpy"])
def test_bfloat16_crosses_by_reinterpreting_bits(direction: str) -> None:
    """bf16 goes both ways zero-copy (same pointer, writes go through), never via float32."""
    import ml_dtypes

    bits = np.array([0x3FC0, 0x7FC1, 0x8000, 0xFF80, 0x0001], dtype=np.uint16)  # 1.5, NaN payload, -0.0, -inf, subnormal
    a = bits.view(ml_dtypes.bfloat16)
    if direction == "numpy->torch":
        src, to = a, "torch"
    else:
        src, to = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16), "numpy"
    p = af.plan(src, to)
    assert p.zero_copy and not any("cast" in s.name for s in p.steps), p.explain()
    y = af.convert(src, to)
    if to == "torch":
        assert y.dtype == torch.bfloat16 and y.data_ptr() == a.ctypes.data
        assert y.view(torch.int16).numpy().view(np.uint16).tolist() == bits.tolist()
        y[0] = 2.0
        assert a[0] == 2.0
    else:
        assert y.dtype == np.dtype(ml_dtypes.bfloat16) and y.ctypes.data == src.data_ptr()
        assert y.view(np.uint16).tolist() == bits.tolist()
        y[0] = 2.0
        assert src[0].item() == 2.0


def test_big_endian_is_byte_swapped_with_one_copy() -> None:
    x = np.array([0.0, 1.0, -0.0, np.inf, np.nan, 2.5], dtype=">f4")
    p = af.plan(x, "torch")
    assert not p.zero_copy and p.copies == 1
    assert "byte order" in p.explain()
    t = af.convert(x, "torch")
    assert t.dtype == torch.float32
    assert t.numpy().tobytes() == x.astype("<f4").tobytes()


def test_readonly_never_becomes_a_writable_torch_alias() -> None:
    base = np.arange(4, dtype=np.float64)
    ro = base.view()
    ro.setflags(write=False)
    t = af.convert(ro, "torch")
    t[0] = 99.0
    assert base[0] == 0.0  # the write did not reach read-only memory
    with pytest.raises(af.CopyRequiredError, match="read-only"):
        af.convert(ro, "torch", copy=False)


@pytest.mark.parametrize("copy_policy", [None, False], ids=lambda c: f"copy={c}")
def test_readonly_numpy_to_numpy_stays_readonly(copy_policy: bool | None) -> None:
    ro = np.arange(4.0)
    ro.setflags(write=False)
    y = af.convert(ro, "numpy", copy=copy_policy)
    assert np.shares_memory(y, ro) and not y.flags.writeable
    with pytest.raises(ValueError):
        y[0] = 1.0


# -- how the target can be named ---------------------------------------------------------------


@pytest.mark.parametrize("to", ["torch", "pytorch", "pt", "module"])
def test_target_names_and_module(to: str) -> None:
    x = sample("float32", (2, 2))
    y = af.convert(x, torch if to == "module" else to)
    assert isinstance(y, torch.Tensor) and y.data_ptr() == x.ctypes.data


@pytest.mark.parametrize("to", ["numpy", "np", "module"])
def test_numpy_target_names(to: str) -> None:
    t = torch.arange(3.0)
    y = af.convert(t, np if to == "module" else to)
    assert isinstance(y, np.ndarray) and y.ctypes.data == t.data_ptr()


# -- dtype= casts --------------------------------------------------------------------------------

_CASTS = [
    ("float64", "float32", [1.5, np.nan, -0.0, np.inf, -np.inf, 1e-50]),
    ("float32", "float64", [1.5, np.nan, -0.0, np.inf]),
    ("float64", "float16", [1.5, -0.0, 65519.99, np.inf, 1e-8]),  # 65519.99 rounds to 65504; 1e5 raises (test_cast_placement)
    ("float32", "bfloat16", [1.5, np.nan, -0.0, 3.14159]),
    ("float64", "int32", [1.5, -2.25, 3.0, 100.9]),
    ("float32", "uint8", [1.5, 3.7, 255.0]),
    ("int64", "float64", [2**53 + 1, -(2**40), 0]),
    ("int32", "complex64", [1, -2, 2**20]),
    ("complex128", "complex64", [1 + 2j, complex(np.nan, -0.0)]),
    ("bool", "int8", [True, False]),
    ("int64", "bool", [0, 3, -1]),
    ("uint16", "int64", [0, 65535]),
]


def _make(src_fw: str, values: np.ndarray) -> Any:
    return values.copy() if src_fw == "numpy" else torch.from_numpy(values.copy())


def _dtype_arg(kind: str, name: str) -> Any:
    if kind == "name":
        return name
    if kind == "numpy":
        from cases import np_dtype

        return np_dtype(name)
    return getattr(torch, name)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e5 -> float16 inf, asked for
@pytest.mark.parametrize("src_fw", ["numpy", "torch"])
@pytest.mark.parametrize("to", ["numpy", "torch"])
@pytest.mark.parametrize(("src", "dst", "values"), _CASTS, ids=[f"{s}->{d}" for s, d, _ in _CASTS])
def test_dtype_cast_is_a_plan_step(src_fw: str, to: str, src: str, dst: str, values: list[Any]) -> None:
    from cases import np_dtype

    data = np.array(values, dtype=np_dtype(src))
    x = _make(src_fw, data)
    for kind in ("name", "numpy", "torch"):
        p = af.plan(x, to, dtype=_dtype_arg(kind, dst))
        assert p.dtype == dst and not p.zero_copy
        casting = [s for s in p.steps if s.copies and (s.name == "cast" or f"cast {src} to {dst}" in s.description)]
        assert len(casting) == 1, p.explain()
        assert f"cast {src} to {dst}" in p.explain()
    y = af.convert(x, to, dtype=dst)
    assert_values_equal(data.astype(np_dtype(dst)), y)
    assert af.framework_of(y) == to
    with pytest.raises(af.CopyRequiredError):
        af.convert(x, to, dtype=dst, copy=False)


@pytest.mark.parametrize("src_fw", ["numpy", "torch"])
@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_dtype_equal_to_source_is_no_cast(src_fw: str, to: str) -> None:
    x = _make(src_fw, sample("float32", (2, 3)))
    p = af.plan(x, to, dtype="float32", copy=False)
    assert p.zero_copy and not any(s.name == "cast" for s in p.steps)
    assert shares_memory(x, af.convert(x, to, dtype=np.float32, copy=False))


@pytest.mark.parametrize("src_fw", ["numpy", "torch"])
@pytest.mark.parametrize("to", ["numpy", "torch"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dst", ["int32", "int64", "uint8"])
def test_nan_and_inf_to_int_raise(src_fw: str, to: str, bad: float, dst: str) -> None:
    x = _make(src_fw, np.array([1.0, bad, 2.0]))
    with pytest.raises(af.LossyConversionError) as ei:
        af.convert(x, to, dtype=dst)
    assert isinstance(ei.value, ValueError)
    assert_error_layout(ei.value, "nan or infinity", dst)


@pytest.mark.parametrize("src_fw", ["numpy", "torch"])
@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_complex_to_real_with_imaginary_parts_raises(src_fw: str, to: str) -> None:
    x = _make(src_fw, np.array([1 + 0j, 2 + 1j]))
    with pytest.raises(af.LossyConversionError) as ei:
        af.convert(x, to, dtype="float64")
    assert_error_layout(ei.value, "imaginary")
    real = _make(src_fw, np.array([1 + 0j, complex(-0.0, 0.0)]))
    assert_bitwise_equal(np.array([1.0, -0.0]), af.convert(real, to, dtype="float64"))


@pytest.mark.parametrize("src_fw", ["numpy", "torch"])
@pytest.mark.parametrize("name", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_integers_never_narrow_without_dtype(src_fw: str, name: str) -> None:
    """Without dtype= every integer type arrives as itself, extremes intact, in both targets."""
    x = _make(src_fw, sample(name, (7,)))
    for to in ("numpy", "torch"):
        y = af.convert(x, to)
        assert dtype_name(y) == name
        assert_bitwise_equal(sample(name, (7,)), y)


# -- strides that are not a multiple of the itemsize -------------------------------------------


def _field() -> np.ndarray:
    rec = np.zeros(5, dtype=[("i", "<i4"), ("c", "i1")])
    rec["i"] = [1, -2, 3, 2**31 - 1, -(2**31)]
    return rec["i"]  # strides (5,): not a multiple of 4


def test_structured_field_into_torch_is_one_planned_copy() -> None:
    z = _field()
    p = af.plan(z, "torch")
    assert not p.zero_copy and p.copies == 1, p.explain()
    assert "not a multiple of its itemsize" in p.explain()
    y = af.convert(z, "torch")
    assert_bitwise_equal(np.array([1, -2, 3, 2**31 - 1, -(2**31)], dtype=np.int32), y)
    with pytest.raises(af.CopyRequiredError) as ei:
        af.convert(z, "torch", copy=False)
    assert_error_layout(ei.value, "itemsize")
    assert af.plan(z, "numpy").zero_copy  # NumPy holds byte strides as they are


def test_odd_stride_on_length_one_axis_stays_zero_copy() -> None:
    """A length-1 axis's stride is never used: torch aliases the memory, as DLPack would."""
    base = np.arange(8, dtype=np.int32)
    x = np.lib.stride_tricks.as_strided(base, shape=(1, 3), strides=(3, 4))  # odd stride, length 1
    p = af.plan(x, "torch", copy=False)
    assert p.zero_copy, p.explain()
    y = af.convert(x, "torch", copy=False)
    y[0, 1] = 99  # written through torch, read through NumPy
    assert base[1] == 99
    empty = np.lib.stride_tricks.as_strided(base, shape=(0, 3), strides=(4, 3))  # nothing to copy
    assert af.convert(empty, "torch", copy=False).shape == (0, 3)
