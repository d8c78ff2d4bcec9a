"""Property tests: random dtype, shape, strides (negative too), byte offsets, byte order and
read-only flag. Values survive bit for bit (random bit patterns, so NaN payloads too), memory is
shared exactly when the plan said so, and exactly when the target can safely alias it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cases import ALL_DTYPES, ML_DTYPES, np_dtype
from helpers import assert_bitwise_equal, data_pointer, numpy_bits, shares_memory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arrayferry as af

torch = pytest.importorskip("torch")

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POLICIES = st.sampled_from([None, False, True])


def _random_fill(buf: np.ndarray, seed: int, is_bool: bool) -> None:
    rng = np.random.default_rng(seed)
    buf[...] = rng.integers(0, 2 if is_bool else 256, size=buf.size, dtype=np.uint8)


@st.composite
def numpy_arrays(draw: st.DrawFn) -> np.ndarray:
    """A view into a random uint8 buffer: any dtype, 0-3 dims, steps +-1/+-2, permuted axes,
    byte offset 0-7, either byte order, optionally read-only."""
    name = draw(st.sampled_from(ALL_DTYPES))
    dt = np_dtype(name)
    if dt.itemsize > 1 and name not in ML_DTYPES and draw(st.booleans()):
        dt = dt.newbyteorder(">" if dt.byteorder in "=<" else "<")  # the non-native order
    ndim = draw(st.integers(0, 3))
    shape = [draw(st.integers(0, 4)) for _ in range(ndim)]
    steps = [draw(st.sampled_from([1, 2, -1, -2])) for _ in range(ndim)]
    perm = draw(st.permutations(list(range(ndim))))
    offset = draw(st.integers(0, 7))
    base_shape = tuple(n * abs(k) for n, k in zip(shape, steps, strict=True))
    nbytes = int(np.prod(base_shape, dtype=np.int64)) * dt.itemsize
    buf = np.empty(nbytes + offset, dtype=np.uint8)
    _random_fill(buf, draw(st.integers(0, 2**32 - 1)), name == "bool")
    base = buf[offset:offset + nbytes].view(dt).reshape(base_shape)
    x = base[(*(slice(None, None, k) for k in steps), ...)].transpose(perm)  # "..." keeps 0-d a view
    if draw(st.booleans()):
        x.setflags(write=False)
    return x


def _torch_can_alias(x: np.ndarray) -> bool:
    """What torch can hold as it is, stated independently of arrayferry's planner."""
    if not x.flags.writeable or not x.dtype.isnative or any(s < 0 for s in x.strides):
        return False
    if x.dtype.kind == "c":  # c10::complex<T> is aligned to its whole size
        size = x.dtype.itemsize
        live = [s for s, n in zip(x.strides, x.shape, strict=True) if n > 1]
        if data_pointer(x) % size or any(s % size for s in live):
            return False
    return True


@SETTINGS
@given(x=numpy_arrays(), to=st.sampled_from(["numpy", "torch"]), copy=POLICIES)
def test_numpy_source(negative_strides_safe: None, x: np.ndarray, to: str, copy: bool | None) -> None:
    ref = numpy_bits(x)
    can_alias = to == "numpy" or _torch_can_alias(x)
    if copy is False and not can_alias and x.size:
        with pytest.raises(af.CopyRequiredError):
            af.plan(x, to, copy=False)
        with pytest.raises(af.CopyRequiredError):
            af.convert(x, to, copy=False)
        return
    try:
        p = af.plan(x, to, copy=copy)
    except af.CopyRequiredError:  # only size-0 arrays may land here (their layout still counts)
        assert copy is False and x.size == 0 and not af.plan(x, to).zero_copy
        return
    y = af.convert(x, to, copy=copy)
    assert_bitwise_equal(ref, y)
    if x.size:
        assert p.zero_copy is (copy is not True and can_alias), p.explain()
        assert shares_memory(x, y) is p.zero_copy, p.explain()
    if shares_memory(x, y) and not x.flags.writeable:
        assert to == "numpy" and not y.flags.writeable  # never a writable alias of read-only memory
    assert_bitwise_equal(ref, af.convert(y, "numpy"))  # and back again
    assert numpy_bits(x).tobytes() == ref.tobytes()  # the source is untouched


@st.composite
def torch_tensors(draw: st.DrawFn) -> tuple[Any, np.ndarray]:
    """A torch tensor (positive-step slices, permutations, storage offsets, requires_grad, conj
    bit) and its values computed with NumPy."""
    name = draw(st.sampled_from(ALL_DTYPES))
    dt = np_dtype(name)
    ndim = draw(st.integers(0, 3))
    shape = [draw(st.integers(0, 4)) for _ in range(ndim)]
    steps = [draw(st.sampled_from([1, 2, 3])) for _ in range(ndim)]
    start = draw(st.integers(0, 1)) if ndim else 0
    base_shape = tuple(n * k + start for n, k in zip(shape, steps, strict=True))
    nbytes = int(np.prod(base_shape, dtype=np.int64)) * dt.itemsize
    buf = np.empty(nbytes, dtype=np.uint8)
    _random_fill(buf, draw(st.integers(0, 2**32 - 1)), name == "bool")
    data = buf.view(dt).reshape(base_shape)
    if name in ML_DTYPES:
        bits = np.int16 if dt.itemsize == 2 else np.uint8
        t = torch.from_numpy(data.view(bits).copy()).view(getattr(torch, name))
    else:
        t = torch.from_numpy(data.copy())
    index = tuple(slice(start, None, k) for k in steps)
    perm = draw(st.permutations(list(range(ndim))))
    t = t[index].permute(*perm) if ndim else t
    ref = np.array(data[index].transpose(perm), order="C", copy=True)
    if name in ("float32", "float64") and draw(st.booleans()):
        t.requires_grad_()
    if dt.kind == "c" and draw(st.booleans()):
        t, ref = t.conj(), np.conj(ref)
    return t, ref


@SETTINGS
@given(tr=torch_tensors(), to=st.sampled_from(["numpy", "torch"]), copy=POLICIES)
def test_torch_source(tr: tuple[Any, np.ndarray], to: str, copy: bool | None) -> None:
    t, ref = tr
    can_alias = to == "torch" or not t.is_conj()
    if copy is False and not can_alias:
        with pytest.raises(af.CopyRequiredError):
            af.convert(t, to, copy=False)
        return
    p = af.plan(t, to, copy=copy)
    assert p.zero_copy is (copy is not True and can_alias), p.explain()
    y = af.convert(t, to, copy=copy)
    assert_bitwise_equal(ref, y)
    if t.numel():
        assert shares_memory(t, y) is p.zero_copy, p.explain()
    assert_bitwise_equal(ref, af.convert(y, "torch"))


@st.composite
def byte_strided_arrays(draw: st.DrawFn) -> np.ndarray:
    """An ``as_strided`` view of a random byte buffer: any strides in bytes (multiples of the
    itemsize or not, zero, on length-1 axes too) and any byte offset, as a structured array's
    field or a hand-made view has them."""
    name = draw(st.sampled_from([n for n in ALL_DTYPES if n not in ML_DTYPES]))
    dt = np_dtype(name)
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(0, 4)) for _ in range(ndim))
    strides = tuple(draw(st.integers(0, 3 * dt.itemsize + 3)) for _ in range(ndim))
    offset = draw(st.integers(0, 7))
    extent = sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) if all(shape) else 0
    buf = np.empty(offset + extent + dt.itemsize, dtype=np.uint8)
    _random_fill(buf, draw(st.integers(0, 2**32 - 1)), name == "bool")
    x = np.lib.stride_tricks.as_strided(buf[offset:offset + dt.itemsize].view(dt), shape=shape, strides=strides)
    if draw(st.booleans()):
        x.setflags(write=False)
    return x


def _torch_can_hold(x: np.ndarray) -> bool:
    """Whether torch can alias ``x`` (stated without arrayferry): strides count elements in torch."""
    live = [s for s, n in zip(x.strides, x.shape, strict=True) if n > 1]
    return _torch_can_alias(x) and not any(s % x.dtype.itemsize for s in live)


@SETTINGS
@given(x=byte_strided_arrays(), to=st.sampled_from(["numpy", "torch"]), copy=POLICIES)
def test_byte_strides(x: np.ndarray, to: str, copy: bool | None) -> None:
    """Strides that are not a multiple of the itemsize: one planned copy where the target cannot
    hold them, CopyRequiredError under copy=False, zero-copy where only length-1 axes have them;
    never a raw error."""
    ref = numpy_bits(x)
    can_alias = to == "numpy" or _torch_can_hold(x)
    if copy is False and not can_alias and x.size:
        with pytest.raises(af.CopyRequiredError):
            af.convert(x, to, copy=False)
        return
    try:
        p = af.plan(x, to, copy=copy)
    except af.CopyRequiredError:
        assert copy is False and x.size == 0
        return
    y = af.convert(x, to, copy=copy)
    assert_bitwise_equal(ref, y)
    if x.size:
        assert p.zero_copy is (copy is not True and can_alias), p.explain()
        assert shares_memory(x, y) is p.zero_copy, p.explain()
        assert p.copies <= 1, p.explain()
    assert_bitwise_equal(ref, af.convert(y, "numpy"))


def _usable_targets() -> list[str]:
    """Installed host frameworks, found without importing any (JAX is left to its plugin's tests:
    importing it here, before the plugin's conftest sets XLA_FLAGS, would cost those tests their
    four host devices; CuPy needs a GPU)."""
    return [f.name for f in af.frameworks() if f.installed and f.name not in ("jax", "cupy")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=byte_strided_arrays(), to=st.sampled_from(_usable_targets()), copy=POLICIES)
def test_byte_strides_into_every_installed_framework(x: np.ndarray, to: str, copy: bool | None) -> None:
    """Any installed target (plugins too): right values, copy=False either aliases or raises
    CopyRequiredError, and plan.zero_copy is exactly whether memory is shared; never a raw error."""
    import warnings

    ref = numpy_bits(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", af.LossyConversionWarning)
        try:
            p = af.plan(x, to, copy=copy)
        except (af.CopyRequiredError, af.UnsupportedDTypeError, af.LossyConversionError) as exc:
            assert not isinstance(exc, af.CopyRequiredError) or copy is False
            return
        y = af.convert(x, to, copy=copy)
    back = af.convert(y, "numpy")
    if p.dtype == x.dtype.name or (p.dtype == str(x.dtype.newbyteorder("="))):
        assert_bitwise_equal(ref, back)
    if x.size and to != "dask":  # dask results are graphs, compared chunk by chunk elsewhere
        assert af.shares_memory(x, y) is p.zero_copy, p.explain()
