"""The Arrow plugin against real pyarrow, NumPy, PyTorch and JAX: each pyarrow hazard, both directions.

Sharing is checked with data pointers (Arrow buffer addresses, ``__array_interface__``,
``data_ptr()``, ``unsafe_buffer_pointer()``) and, where one side is writable, by writing through it.
Values are compared bit for bit (NaN, -0.0 and infinities included).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from typing import Any

import arrayferry as af
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
pc = pytest.importorskip("pyarrow.compute")
torch = pytest.importorskip("torch")
if not entry_points(group="arrayferry.plugins", name="pyarrow"):
    pytest.skip("arrayferry-pyarrow is not installed (pip install -e plugins/arrayferry-pyarrow)",
                allow_module_level=True)

SPECIALS = [np.nan, -0.0, np.inf, -np.inf, 0.0, 1.5, -2.25, 3.0e4]
NUMERIC = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"]


def nptr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def aptr(x: Any) -> int | None:
    """Address of the first element of an Arrow container (the oracle, without arrayferry)."""
    if isinstance(x, pa.Tensor):
        return nptr(x.to_numpy())
    if isinstance(x, pa.FixedShapeTensorArray):
        x = x.storage.flatten()
    buf = x.buffers()[1]
    return None if buf is None else int(buf.address) + x.offset * (x.type.bit_width // 8)


def same_bits(got: Any, want: np.ndarray) -> None:
    """Equal dtype, shape and bytes (NaN payloads and the sign of zero included)."""
    got = np.asarray(got)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


def values(dtype: str, n: int = 12) -> np.ndarray:
    if dtype == "bool":
        return np.arange(n) % 3 == 0
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.array((SPECIALS * n)[:n], dtype=dtype)
    info = np.iinfo(dt)
    out = (np.arange(n) % 50).astype(dt)
    if n:
        out[0], out[-1] = info.min, info.max
    return out


def oracle(x: Any) -> np.ndarray:
    """Read an Arrow container back without arrayferry (copies allowed)."""
    if isinstance(x, pa.Tensor):
        return np.array(x.to_numpy())
    if isinstance(x, pa.FixedShapeTensorArray):
        t = x.type
        flat = x.storage.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape((len(x), *t.shape))
    return x.to_numpy(zero_copy_only=False)


# ------------------------------------------------------------------------------------------------
# registration


def test_plugin_joins_through_the_entry_point_without_importing_pyarrow() -> None:
    code = textwrap.dedent(
        """
        import sys, numpy as np, arrayferry as af
        import arrayferry_pyarrow
        assert "pyarrow" not in sys.modules, "importing the plugin imported pyarrow"
        assert af.framework_of(np.zeros(2)) == "numpy"
        names = {f.name: f.plugin for f in af.frameworks()}
        assert names.get("pyarrow") == "pyarrow", names
        assert "pyarrow" not in sys.modules, "registry or detection imported pyarrow"
        assert not [b for b in af.broken_plugins() if b[0] == "pyarrow"], af.broken_plugins()
        import pyarrow as pa
        assert af.framework_of(pa.array([1.0])) == "pyarrow"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_detection_of_every_container() -> None:
    f32 = np.arange(6, dtype=np.float32)
    for x in (pa.array(f32), pa.chunked_array([pa.array(f32)]), pa.Tensor.from_numpy(f32.reshape(2, 3)),
              pa.FixedShapeTensorArray.from_numpy_ndarray(f32.reshape(2, 3)), pa.array(["a"])):
        assert af.framework_of(x) == "pyarrow"
        assert af.device_of(x) == af.Device("cpu")


# ------------------------------------------------------------------------------------------------
# what convert(x, "pyarrow") returns


@pytest.mark.parametrize("dtype", NUMERIC)
def test_numpy_1d_becomes_an_array_zero_copy(dtype: str) -> None:
    a = values(dtype)
    p = af.plan(a, "pyarrow")
    x = af.convert(a, "pyarrow")
    assert isinstance(x, pa.Array) and not isinstance(x, pa.FixedShapeTensorArray)
    assert x.type == pa.from_numpy_dtype(np.dtype(dtype))
    assert p.zero_copy and aptr(x) == nptr(a)
    same_bits(oracle(x), a)
    a[1] = a[2]  # Arrow aliases the NumPy memory: a write into NumPy shows (documented)
    same_bits(oracle(x), a)
    assert af.convert(a, "pyarrow", copy=False).buffers()[1].address == nptr(a)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 2), (0, 3), (3, 0), (1, 1)])
@pytest.mark.parametrize("dtype", ["float32", "int64", "uint8", "float16"])
def test_numpy_nd_becomes_a_fixed_shape_tensor_array(dtype: str, shape: tuple[int, ...]) -> None:
    a = values(dtype, int(np.prod(shape))).reshape(shape)
    x = af.convert(a, "pyarrow")
    assert isinstance(x, pa.FixedShapeTensorArray)
    assert len(x) == shape[0] and list(x.type.shape) == list(shape[1:])
    assert x.type.value_type == pa.from_numpy_dtype(np.dtype(dtype))
    assert af.plan(a, "pyarrow").zero_copy
    if a.size:
        assert aptr(x) == nptr(a)
    same_bits(oracle(x), a)
    same_bits(af.convert(x, "numpy"), a)  # and back, zero-copy
    if a.size:
        assert nptr(af.convert(x, "numpy", copy=False)) == nptr(a)


def test_numpy_0d_becomes_a_tensor() -> None:
    a = np.array(-0.0, dtype=np.float32)
    x = af.convert(a, "pyarrow")
    assert isinstance(x, pa.Tensor) and x.shape == () and x.type == pa.float32()
    assert aptr(x) == nptr(a)
    same_bits(af.convert(x, "numpy"), a)


def test_a_plan_follows_the_ndim_of_the_array_it_runs_on() -> None:
    """A plan runs on any array with its signature, and the container follows that array's ndim;
    an array of another signature (NumPy's tells a length-1 axis and 1-D from N-D apart) is refused
    with a typed error, never converted into the planned container."""
    flat, row = np.arange(4, dtype=np.float32), np.arange(4, dtype=np.float32).reshape(1, 4)
    for planned, other, kind in ((flat, row, pa.FixedShapeTensorArray), (row, flat, pa.FloatArray)):
        p = af.plan(planned, "pyarrow")
        try:
            out = p.execute(other)
        except af.ArrayFerryError as exc:
            assert "the array given differs" in str(exc)
        else:  # one signature for both shapes: the container still follows the array
            assert isinstance(out, kind) and aptr(out) == nptr(other)
            same_bits(af.convert(out, "numpy"), other)
    pb = af.plan(np.array([True, False]), "pyarrow")
    with pytest.raises(af.ArrayFerryError):  # 0-d bool: no boolean pa.Tensor, or another signature
        pb.execute(np.array(True))
    ok = np.ones(2, bool)
    same_bits(af.convert(pb.execute(ok), "numpy"), ok)


def test_ndim_is_part_of_the_plan_cache() -> None:
    """1-D and 2-D NumPy arrays share a signature: the container must still follow the ndim (refine_key)."""
    for shape in [(6,), (2, 3), (6,), (), (1, 2, 3), (6,)]:
        a = np.arange(6, dtype=np.float32)[: int(np.prod(shape))].reshape(shape)
        x = af.convert(a, "pyarrow")
        want = {0: pa.Tensor, 1: pa.FloatArray, 2: pa.FixedShapeTensorArray, 3: pa.FixedShapeTensorArray}[a.ndim]
        assert type(x) is want
        same_bits(af.convert(x, "numpy"), a)


# ------------------------------------------------------------------------------------------------
# hazard: pa.Tensor.from_numpy keeps big-endian bytes unswapped; pa.array refuses them


def test_native_tensor_from_big_endian_is_wrong() -> None:
    be = np.arange(4, dtype=">f4")
    assert pa.Tensor.from_numpy(be).to_numpy().tolist() != be.tolist()  # the trap itself
    with pytest.raises(pa.ArrowNotImplementedError):
        pa.array(be)


@pytest.mark.parametrize("shape", [(), (5,), (2, 4)])
@pytest.mark.parametrize("dtype", [">f4", ">i8", ">u2", ">f8"])
def test_big_endian_is_swapped_by_the_plan(dtype: str, shape: tuple[int, ...]) -> None:
    native = values(np.dtype(dtype).newbyteorder("=").name, max(1, int(np.prod(shape)))).reshape(shape)
    be = native.astype(dtype)
    p = af.plan(be, "pyarrow")
    assert not p.zero_copy and "native byte order" in p.explain()
    x = af.convert(be, "pyarrow")
    same_bits(af.convert(x, "numpy"), native)
    with pytest.raises(af.CopyRequiredError, match="byte order"):
        af.convert(be, "pyarrow", copy=False)


# ------------------------------------------------------------------------------------------------
# hazard: pa.Tensor.from_numpy(bool) returns uint8; booleans are bit-packed


def test_native_tensor_turns_bool_into_uint8() -> None:
    assert pa.Tensor.from_numpy(np.array([True, False])).type == pa.uint8()  # the trap itself


@pytest.mark.parametrize("shape", [(9,), (3, 5), (0,), (0, 2), (2, 2, 3)])
def test_bool_to_arrow_is_a_named_copy(shape: tuple[int, ...]) -> None:
    a = values("bool", int(np.prod(shape))).reshape(shape)
    p = af.plan(a, "pyarrow")
    assert not p.zero_copy and p.copies == 1
    assert "bits" in p.steps[-1].description
    x = af.convert(a, "pyarrow")
    t = x.type.value_type if isinstance(x, pa.FixedShapeTensorArray) else x.type
    assert t == pa.bool_()
    same_bits(oracle(x), a)
    with pytest.raises(af.CopyRequiredError, match="bits"):
        af.convert(a, "pyarrow", copy=False)
    c = af.convert(a, "pyarrow", copy=True)  # the packing copy is the only one
    assert af.plan(a, "pyarrow", copy=True).copies == 1
    same_bits(oracle(c), a)


@pytest.mark.parametrize("target", ["numpy", "torch"])
def test_bool_from_arrow_is_a_named_copy(target: str) -> None:
    bits = [True, False, True, True, False, False, True, False, True, True]
    x = pa.array(bits)[3:]  # a bit offset that is not a multiple of 8
    p = af.plan(x, target)
    assert [s.name for s in p.steps][0] == "unpack_bits" and p.copies == 1
    out = af.convert(x, target)
    got = out.numpy() if target == "torch" else out
    same_bits(got, np.array(bits[3:]))
    assert np.asarray(got).flags.writeable  # fresh memory
    with pytest.raises(af.CopyRequiredError, match="bit-packed"):
        af.convert(x, target, copy=False)


def test_bool_0d_is_refused_with_a_hint() -> None:
    for src in (np.array(True), torch.tensor(True)):
        with pytest.raises(af.UnsupportedArrayError, match="no boolean type") as ei:
            af.convert(src, "pyarrow")
        assert str(ei.value).splitlines()[-1].startswith("Hint:")
        with pytest.raises(af.UnsupportedArrayError):
            af.plan(src, "pyarrow")
    with pytest.raises(af.UnsupportedArrayError, match="no boolean type"):
        af.convert(np.array(1.0), "pyarrow", dtype="bool")
    with pytest.raises(af.UnsupportedDTypeError, match="no boolean type"):
        af.convert(pa.Tensor.from_numpy(np.ones((2, 2))), "pyarrow", dtype="bool")
    one = af.convert(np.array(True).reshape(1), "pyarrow")  # what the hint says works
    assert one.to_pylist() == [True]


def test_bool_fixed_shape_tensor_permuted_reads_like_the_numeric_one() -> None:
    phys = np.arange(12).reshape(2, 2, 3)
    t_int = pa.fixed_shape_tensor(pa.int64(), [2, 3], permutation=[1, 0])
    t_bool = pa.fixed_shape_tensor(pa.bool_(), [2, 3], permutation=[1, 0])
    ints = pa.ExtensionArray.from_storage(t_int, pa.FixedSizeListArray.from_arrays(pa.array(phys.reshape(-1)), 6))
    bools = pa.ExtensionArray.from_storage(
        t_bool, pa.FixedSizeListArray.from_arrays(pa.array(phys.reshape(-1) % 3 == 0), 6))
    want = ints.to_numpy_ndarray()  # pyarrow's own reading of the permutation
    assert want.shape == (2, 3, 2)
    got_int = af.convert(ints, "numpy")
    same_bits(got_int, want)
    assert nptr(got_int) == aptr(ints)
    got_bool = af.convert(bools, "numpy")
    same_bits(got_bool, want % 3 == 0)


# ------------------------------------------------------------------------------------------------
# hazard: nulls become NaN (to_numpy) or 0 (to_numpy_ndarray) without a word


def test_native_calls_drop_nulls() -> None:
    assert np.isnan(pa.array([1.0, None]).to_numpy(zero_copy_only=False)[1])  # the trap
    inner = pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(pa.float32(), [2]),
                                           pa.array([[1.0, None]], pa.list_(pa.float32(), 2)))
    assert inner.to_numpy_ndarray().tolist() == [[1.0, 0.0]]  # a null read as 0


def _with_nulls() -> dict[str, Any]:
    tt = pa.fixed_shape_tensor(pa.float32(), [2])
    return {
        "array": pa.array([1.0, None, 3.0]),
        "int-array": pa.array([1, None], pa.int32()),
        "bool-array": pa.array([True, None]),
        "chunked-second": pa.chunked_array([pa.array([1.0, 2.0]), pa.array([None], pa.float64())]),
        "tensor-row": pa.ExtensionArray.from_storage(tt, pa.array([[1.0, 2.0], None], pa.list_(pa.float32(), 2))),
        "tensor-value": pa.ExtensionArray.from_storage(tt, pa.array([[1.0, None]], pa.list_(pa.float32(), 2))),
    }


@pytest.mark.parametrize("case", sorted(_with_nulls()))
@pytest.mark.parametrize("target", ["numpy", "torch", "jax", "pyarrow"])
def test_nulls_are_refused_with_a_hint(case: str, target: str) -> None:
    if target == "jax":
        pytest.importorskip("jax")
    x = _with_nulls()[case]
    with pytest.raises(af.UnsupportedArrayError) as ei:
        af.convert(x, target)
    msg = str(ei.value)
    assert "null" in msg and "fill_null" in msg and msg.splitlines()[-1].startswith("Hint:")
    with pytest.raises(af.UnsupportedArrayError):
        af.plan(x, target)


def test_the_hint_works() -> None:
    x = pa.array([1.0, None, 3.0])
    same_bits(af.convert(x.fill_null(0.0), "numpy"), np.array([1.0, 0.0, 3.0]))
    same_bits(af.convert(pc.is_null(x), "numpy"), np.array([False, True, False]))
    same_bits(af.convert(x.drop_null(), "numpy"), np.array([1.0, 3.0]))


def test_a_null_free_slice_of_an_array_with_nulls_converts() -> None:
    x = pa.array([None, 1.5, -0.0])[1:]
    assert x.null_count == 0
    same_bits(af.convert(x, "numpy"), np.array([1.5, -0.0]))


# ------------------------------------------------------------------------------------------------
# hazard: empty torch/JAX arrays become the null type in pa.array


def test_native_empty_becomes_null_type() -> None:
    assert pa.array(torch.zeros(0)).type == pa.null()  # the trap itself


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0)])
@pytest.mark.parametrize("dtype", ["float32", "int16", "bool"])
def test_empty_torch_and_jax_keep_their_dtype(shape: tuple[int, ...], dtype: str) -> None:
    sources = [torch.zeros(shape, dtype=getattr(torch, dtype))]
    try:
        import jax.numpy as jnp
    except ImportError:
        pass
    else:
        sources.append(jnp.zeros(shape, dtype=dtype))
    for src in sources:
        x = af.convert(src, "pyarrow")
        t = x.type.value_type if isinstance(x, pa.FixedShapeTensorArray) else x.type
        assert t == pa.from_numpy_dtype(np.dtype(dtype))
        back = af.convert(x, "numpy")
        assert back.shape == shape and back.dtype == np.dtype(dtype)


def test_null_typed_arrays_are_refused_with_a_hint() -> None:
    with pytest.raises(af.UnsupportedDTypeError, match="null") as ei:
        af.convert(pa.array([]), "numpy")
    assert "pa.array([], pa.float32())" in str(ei.value)


# ------------------------------------------------------------------------------------------------
# hazard: torch.asarray(pa.Tensor) reads raw bytes as float32; pa.Tensor capsules are not read-only


def test_native_torch_asarray_misreads_tensor() -> None:
    t = pa.Tensor.from_numpy(np.arange(12, dtype=np.int32).reshape(3, 4))
    bad = torch.asarray(t)
    assert bad.dtype != torch.int32 or tuple(bad.shape) != (3, 4)  # the trap itself


@pytest.mark.parametrize("dtype", ["int32", "float32", "uint8", "float64"])
def test_tensor_to_torch_keeps_shape_dtype_and_copies(dtype: str) -> None:
    a = values(dtype).reshape(3, 4)
    t = pa.Tensor.from_numpy(a)
    assert t.is_mutable  # pyarrow would hand out writable memory
    p = af.plan(t, "torch")
    out = af.convert(t, "torch")
    same_bits(out.numpy(), a)
    assert not p.zero_copy and out.data_ptr() != aptr(t)
    out[0, 0] = out[1, 1]
    same_bits(t.to_numpy(), a)  # the Tensor is untouched
    with pytest.raises(af.CopyRequiredError, match="read-only"):
        af.convert(t, "torch", copy=False)


def test_tensor_to_numpy_is_a_read_only_view() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = pa.Tensor.from_numpy(a.T)  # strided (Fortran) tensor
    v = af.convert(t, "numpy")
    assert not v.flags.writeable and nptr(v) == aptr(t)
    same_bits(v, a.T)
    with pytest.raises(ValueError):
        v[0, 0] = 1.0
    c = af.convert(t, "numpy", copy=True)
    assert c.flags.writeable and nptr(c) != aptr(t)
    assert af.plan(t, "numpy").source.layout == "fortran"


# ------------------------------------------------------------------------------------------------
# hazard: misleading DLPack errors (bool, nulls): arrayferry never uses pyarrow's DLPack


def test_dlpack_errors_are_replaced_by_typed_ones() -> None:
    b = pa.array([True, False])
    with pytest.raises((BufferError, TypeError)):  # the trap: a message about legacy DLPack, not booleans
        torch.from_dlpack(b, copy=False)  # (torch before 2.4: no copy= keyword at all)
    with pytest.raises(af.CopyRequiredError) as ei:
        af.convert(b, "torch", copy=False)
    assert "bit-packed" in str(ei.value)
    with pytest.raises(af.UnsupportedArrayError, match="null"):
        af.convert(pa.array([1.0, None]), "torch")
    for x in (pa.array([1.0]), pa.Tensor.from_numpy(np.ones(2))):
        assert all(r != "dlpack" for r, _ in af.plan(x, "torch").refused)
        assert af.plan(x, "torch").route == "host"


# ------------------------------------------------------------------------------------------------
# read-only: Arrow memory is never handed out writable


@pytest.mark.parametrize("make", ["array", "chunked1", "tensor_array", "tensor"])
def test_arrow_to_numpy_and_torch(make: str) -> None:
    a = values("float32").reshape(3, 4)
    x = {
        "array": lambda: pa.array(a.reshape(-1)),
        "chunked1": lambda: pa.chunked_array([pa.array(a.reshape(-1))]),
        "tensor_array": lambda: pa.FixedShapeTensorArray.from_numpy_ndarray(a.copy()),
        "tensor": lambda: pa.Tensor.from_numpy(a.copy()),
    }[make]()
    want = a if make in ("tensor_array", "tensor") else a.reshape(-1)
    v = af.convert(x, "numpy", copy=False)
    assert af.plan(x, "numpy").zero_copy and not v.flags.writeable
    assert nptr(v) == aptr(x if make != "chunked1" else x.chunk(0))
    same_bits(v, want)
    t = af.convert(x, "torch")
    assert t.data_ptr() != nptr(v)
    same_bits(t.numpy(), want)
    t.view(-1)[0] = 42.0
    same_bits(af.convert(x, "numpy"), want)
    with pytest.raises(af.CopyRequiredError, match="read-only"):
        af.convert(x, "torch", copy=False)


def test_read_only_numpy_is_aliased_and_stays_read_only() -> None:
    a = values("int32").reshape(3, 4)
    a.flags.writeable = False
    x = af.convert(a, "pyarrow", copy=False)
    assert aptr(x) == nptr(a)
    back = af.convert(x, "numpy")
    assert not back.flags.writeable and nptr(back) == nptr(a)
    t = af.convert(x, "torch")  # torch tensors are writable: torch gets its own copy
    assert t.data_ptr() != nptr(a)
    same_bits(t.numpy(), a)


def test_torch_to_arrow_aliases_and_back_to_torch_copies() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    x = af.convert(t, "pyarrow")
    assert af.plan(t, "pyarrow").zero_copy and aptr(x) == t.data_ptr()
    t2 = af.convert(x, "torch")
    assert t2.data_ptr() != t.data_ptr()
    same_bits(t2.numpy(), t.numpy())


def test_jax_to_arrow_and_back_zero_copy() -> None:
    jax = pytest.importorskip("jax")
    j = jax.numpy.arange(12, dtype=jax.numpy.float32).reshape(3, 4)
    x = af.convert(j, "pyarrow")
    assert af.plan(j, "pyarrow").zero_copy and aptr(x) == j.unsafe_buffer_pointer()
    same_bits(oracle(x), np.asarray(j))
    # pyarrow allocates 64-byte aligned buffers, so JAX can alias them (read-only both sides)
    y = pa.array(np.arange(16, dtype=np.float32)).slice(0)
    k = af.convert(y, "jax")
    assert (k.unsafe_buffer_pointer() == aptr(y)) is af.plan(y, "jax").zero_copy
    same_bits(np.asarray(k), np.arange(16, dtype=np.float32))


# ------------------------------------------------------------------------------------------------
# chunked arrays


def test_chunked_single_chunk_is_zero_copy() -> None:
    base = pa.array(np.array(SPECIALS, dtype=np.float64))
    c = pa.chunked_array([base])
    p = af.plan(c, "numpy")
    v = af.convert(c, "numpy")
    assert p.zero_copy and nptr(v) == aptr(base)
    same_bits(v, np.array(SPECIALS))


@pytest.mark.parametrize("dtype", ["float64", "int8", "bool"])
def test_chunked_several_chunks_is_one_named_copy(dtype: str) -> None:
    vals = values(dtype, 10)
    c = pa.chunked_array([pa.array(vals[:3]), pa.array(vals[3:3]), pa.array(vals[3:])])
    p = af.plan(c, "torch")
    assert p.copies == 1 and p.steps[0].name in ("combine_chunks", "unpack_bits")
    assert "chunks" in p.steps[0].description
    t = af.convert(c, "torch")
    same_bits(t.numpy(), vals)
    with pytest.raises(af.CopyRequiredError, match="chunks"):
        af.convert(c, "numpy", copy=False)
    n = af.convert(c, "numpy")
    assert n.flags.writeable  # fresh memory: no second copy for numpy or torch
    assert af.plan(c, "numpy").copies == 1


def test_chunked_zero_chunks_and_tensor_chunks() -> None:
    empty = pa.chunked_array([], type=pa.float32())
    got = af.convert(empty, "numpy")
    assert got.shape == (0,) and got.dtype == np.float32
    a, b = values("int16", 6).reshape(2, 3), values("int16", 3).reshape(1, 3)
    c = pa.chunked_array([pa.FixedShapeTensorArray.from_numpy_ndarray(a), pa.FixedShapeTensorArray.from_numpy_ndarray(b)])
    same_bits(af.convert(c, "numpy"), np.concatenate([a, b]))
    assert af.plan(c, "numpy").source.shape == (3, 3)
    one = pa.chunked_array([pa.FixedShapeTensorArray.from_numpy_ndarray(a)])
    assert af.plan(one, "numpy").zero_copy


def test_plan_for_one_chunk_refuses_several() -> None:
    one = pa.chunked_array([pa.array([1.0, 2.0])])
    two = pa.chunked_array([pa.array([1.0]), pa.array([2.0])])
    p = af.plan(one, "numpy")
    with pytest.raises(af.ArrayFerryError, match="differs"):
        p.execute(two)
    same_bits(af.convert(one, "numpy"), af.convert(two, "numpy"))


# ------------------------------------------------------------------------------------------------
# offsets, layouts and dtypes


def test_sliced_arrays_keep_their_offset() -> None:
    base = pa.array(np.arange(10, dtype=np.int64))
    s = base.slice(3, 4)
    v = af.convert(s, "numpy")
    assert nptr(v) == aptr(base) + 3 * 8
    same_bits(v, np.arange(3, 7, dtype=np.int64))
    ft = pa.FixedShapeTensorArray.from_numpy_ndarray(np.arange(24, dtype=np.float32).reshape(4, 2, 3))[1:3]
    same_bits(af.convert(ft, "numpy"), np.arange(6, 18, dtype=np.float32).reshape(2, 2, 3))


@pytest.mark.parametrize("layout", ["negative", "step", "fortran", "broadcast"])
def test_strided_numpy_is_copied_into_c_order(layout: str) -> None:
    base = values("float32", 24).reshape(4, 6)
    a = {"negative": base[::-1], "step": base[:, ::2], "fortran": base.T, "broadcast": np.broadcast_to(base[0], (4, 6))}[layout]
    p = af.plan(a, "pyarrow")
    assert not p.zero_copy and "C-contiguous" in p.explain()
    x = af.convert(a, "pyarrow")
    same_bits(af.convert(x, "numpy"), np.ascontiguousarray(a))


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_is_refused_with_a_hint(dtype: str) -> None:
    z = np.array([1 + 2j, -0.0 - 3.5j, np.nan + np.inf * 1j], dtype=dtype)
    with pytest.raises(af.UnsupportedDTypeError) as ei:
        af.convert(z, "pyarrow")
    assert "complex" in str(ei.value) and str(ei.value).splitlines()[-1].startswith("Hint:")
    assert "x.real and x.imag" in str(ei.value)
    re, im = af.convert(z.real, "pyarrow"), af.convert(z.imag, "pyarrow")  # what the hint says
    same_bits(af.convert(re, "numpy"), z.real)
    same_bits(af.convert(im, "numpy"), z.imag)


def test_bfloat16_is_refused_with_a_hint() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(af.UnsupportedDTypeError, match="float32"):
        af.convert(np.ones(3, dtype=ml_dtypes.bfloat16), "pyarrow")
    x = af.convert(np.ones(3, dtype=ml_dtypes.bfloat16), "pyarrow", dtype="float32")
    assert x.type == pa.float32()


@pytest.mark.parametrize("x", [pa.array(["a", "b"]), pa.array([1, 2]).dictionary_encode(),
                               pa.array([1, 2], pa.timestamp("s")), pa.array([[1]], pa.list_(pa.int64()))],
                         ids=["string", "dictionary", "timestamp", "list"])
def test_non_numeric_arrow_types_are_refused(x: Any) -> None:
    with pytest.raises(af.UnsupportedDTypeError) as ei:
        af.convert(x, "numpy")
    assert "cast" in str(ei.value) and str(ei.value).splitlines()[-1].startswith("Hint:")
    with pytest.raises(af.UnsupportedDTypeError):
        af.convert(x, "torch")


def test_the_cast_hints_work() -> None:
    d = pa.array([3, 1, 3], pa.int16()).dictionary_encode()
    same_bits(af.convert(d.dictionary_decode(), "numpy"), np.array([3, 1, 3], dtype=np.int16))
    ts = pa.array([1, 2], pa.timestamp("s"))
    same_bits(af.convert(ts.cast(pa.int64()), "numpy"), np.array([1, 2], dtype=np.int64))
    s = pa.array(["1.5", "-0.0"])
    same_bits(af.convert(s.cast(pa.float64()), "numpy"), np.array([1.5, -0.0]))
    empty = pa.array([], pa.float32())  # the hint for the null type
    assert af.convert(empty, "numpy").dtype == np.float32


def test_target_names_and_module() -> None:
    a = np.arange(3, dtype=np.int8)
    for to in ("pyarrow", "pa", "arrow", pa):
        x = af.convert(a, to)
        assert isinstance(x, pa.Int8Array) and aptr(x) == nptr(a)


def test_masked_numpy_is_refused_not_dropped() -> None:
    m = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    with pytest.raises(af.UnsupportedArrayError, match="mask"):
        af.convert(m, "pyarrow")


def test_arrow_dtype_objects_are_understood() -> None:
    x = af.convert(np.arange(4, dtype=np.int64), "pyarrow", dtype=pa.float32())
    assert x.type == pa.float32()
    assert af.convert(x, "numpy", dtype=pa.int16()).dtype == np.int16


# ------------------------------------------------------------------------------------------------
# Arrow to Arrow keeps the container


@pytest.mark.parametrize("kind", ["array", "bool", "chunked", "tensor_array", "tensor", "bool_tensor_array"])
def test_arrow_to_arrow_identity_copy_cast(kind: str) -> None:
    a = values("float32").reshape(3, 4)
    x = {
        "array": lambda: pa.array(a.reshape(-1)),
        "bool": lambda: pa.array(a.reshape(-1) > 0),
        "chunked": lambda: pa.chunked_array([pa.array(a.reshape(-1)[:5]), pa.array(a.reshape(-1)[5:])]),
        "tensor_array": lambda: pa.FixedShapeTensorArray.from_numpy_ndarray(a.copy()),
        "tensor": lambda: pa.Tensor.from_numpy(a.copy()),
        "bool_tensor_array": lambda: af.convert(a > 0, "pyarrow"),
    }[kind]()
    want = af.convert(x, "numpy")
    assert af.convert(x, "pyarrow") is x
    assert af.convert(x, "pyarrow", copy=False) is x
    c = af.convert(x, "pyarrow", copy=True)
    assert type(c) is type(x)
    same_bits(af.convert(c, "numpy"), want)
    if kind in ("array", "tensor_array", "tensor"):
        assert aptr(c) != aptr(x)
    if kind.startswith("bool"):
        return
    h = af.convert(x, "pyarrow", dtype="float64")
    assert type(h) is (pa.DoubleArray if kind == "array" else type(x))
    same_bits(af.convert(h, "numpy"), want.astype(np.float64))
    with pytest.raises(af.CopyRequiredError):
        af.convert(x, "pyarrow", dtype="float64", copy=False)
    with pytest.raises(af.LossyConversionError, match="NaN or infinity"):
        af.convert(x, "pyarrow", dtype="int32")


# ------------------------------------------------------------------------------------------------
# property: any numeric NumPy array survives NumPy -> Arrow -> NumPy bit for bit, sharing as planned

_DTYPES = ["bool", *NUMERIC]


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(_DTYPES), shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
       view=st.sampled_from(["c", "neg", "step", "T"]), be=st.booleans(), readonly=st.booleans())
def test_numpy_arrow_numpy_round_trip(dtype: str, shape: list[int], view: str, be: bool, readonly: bool) -> None:
    n = int(np.prod(shape)) if shape else 1
    a = values(dtype, max(n, 2))[:n].reshape(tuple(shape))
    if a.ndim and view == "neg":
        a = a[::-1]
    elif a.ndim and view == "step":
        a = a[::2]
    elif view == "T":
        a = a.T
    if be and dtype != "bool":
        a = a.astype(a.dtype.newbyteorder(">"))
    a.flags.writeable = not readonly
    if a.ndim == 0 and dtype == "bool":
        with pytest.raises(af.UnsupportedArrayError):
            af.convert(a, "pyarrow")
        return
    p = af.plan(a, "pyarrow")
    x = af.convert(a, "pyarrow")
    want = a.astype(a.dtype.newbyteorder("="))
    same_bits(af.convert(x, "numpy"), want)
    if a.size:
        assert (aptr(x) == nptr(a)) is p.zero_copy
    swapped = not a.dtype.isnative
    # arrayferry describes any negative stride as "negative" (even on a length-1 axis), and copies
    contiguous = a.flags.c_contiguous and min(a.strides, default=0) >= 0
    assert p.zero_copy is (dtype != "bool" and not swapped and contiguous)


@pytest.mark.parametrize("layout", ["c", "fortran", "step", "broadcast", "3d-step"])
@pytest.mark.parametrize("target", ["numpy", "torch", "jax"])
def test_strided_tensors_to_every_target(layout: str, target: str) -> None:
    if target == "jax":
        pytest.importorskip("jax")
    base = values("float32", 24).reshape(4, 6)
    a = {"c": base, "fortran": base.T, "step": base[:, ::2], "broadcast": np.broadcast_to(base[0], (3, 6)),
         "3d-step": values("float32", 48).reshape(2, 4, 6)[:, ::2, 1::2]}[layout]
    t = pa.Tensor.from_numpy(a)
    assert aptr(t) == nptr(a)  # pyarrow aliases strided NumPy memory
    p = af.plan(t, target)
    out = af.convert(t, target)
    same_bits(np.asarray(out.numpy() if target == "torch" else out), np.asarray(a))
    shared = {"numpy": lambda: nptr(out), "torch": lambda: out.data_ptr(),
              "jax": lambda: out.unsafe_buffer_pointer()}[target]() == nptr(a)
    assert shared is p.zero_copy
    if target == "torch":
        assert not shared  # read-only memory is never aliased by always-writable torch tensors


def test_shares_memory_sees_arrow_buffers() -> None:
    a = np.arange(6.0)
    assert af.shares_memory(af.convert(a, "pyarrow"), a)
    assert af.shares_memory(af.convert(a.reshape(2, 3), "pyarrow"), a)
    assert af.shares_memory(pa.Tensor.from_numpy(a), a)
    assert not af.shares_memory(af.convert(a, "pyarrow", copy=True), a)
    b = pa.array([True, False])
    assert not af.shares_memory(b, af.convert(b, "numpy"))


def test_misaligned_numpy_is_copied_first() -> None:
    raw = np.zeros(4 * 6 + 1, dtype=np.uint8)
    a = raw[1:].view(np.float32)
    a[...] = values("float32", 6)
    assert not a.flags.aligned
    p = af.plan(a, "pyarrow")
    assert not p.zero_copy and "misaligned" in p.explain()
    x = af.convert(a, "pyarrow")
    assert aptr(x) != nptr(a) and aptr(x) % 64 == 0
    same_bits(af.convert(x, "numpy"), a)


def test_torch_requires_grad_and_conj_reach_arrow_resolved() -> None:
    t = torch.arange(4, dtype=torch.float32, requires_grad=True)
    x = af.convert(t, "pyarrow")
    same_bits(af.convert(x, "numpy"), np.arange(4, dtype=np.float32))
    n = torch.tensor([1.0, -2.0])._neg_view()
    same_bits(af.convert(af.convert(n, "pyarrow"), "numpy"), np.array([-1.0, 2.0], dtype=np.float32))
