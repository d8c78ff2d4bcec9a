"""The Dask plugin with the local (synchronous/threaded) scheduler: materialise, build, chunk-wise."""

from __future__ import annotations

from typing import Any

import arrayferry_dask as afd
import numpy as np
import pytest

import arrayferry as af

DTYPES = ("bool", "int8", "int32", "int64", "uint16", "uint64", "float32", "float64", "complex64", "complex128")


def sample(dtype: str, shape: tuple[int, ...] = (6, 5)) -> np.ndarray:
    """Extremes, NaN, -0.0 and +-inf where the dtype has them."""
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind == "b":
        flat = np.arange(n) % 3 == 0
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        flat = (np.arange(n) * 5).astype(dt)
        flat[:2] = [info.min, info.max]
    else:
        flat = np.arange(n, dtype=dt) * dt.type(0.25)
        flat[:4] = np.array([np.nan, -0.0, np.inf, -np.inf]).astype(dt)
        if dt.kind == "c":
            flat.imag = -np.arange(n)
            flat[-1] = complex(-0.0, np.nan)
    return flat.astype(dt).reshape(shape)


def host(x: Any) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.numpy()


def same_bits(a: Any, b: np.ndarray) -> bool:
    h = host(a)
    return h.dtype == b.dtype and h.shape == b.shape and h.tobytes() == b.tobytes()


# -- loading ---------------------------------------------------------------------------------


def test_importing_the_plugin_imports_neither_dask_nor_torch(run_python: Any) -> None:
    r = run_python(
        """
        import sys, numpy as np, arrayferry as af, arrayferry_dask
        assert af.framework_of(np.zeros(3)) == "numpy"
        assert "dask" in [f.name for f in af.frameworks()]
        print(sorted(m for m in ("dask", "dask.array", "distributed", "torch") if m in sys.modules))
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_plugin_is_loaded_through_its_entry_point(da: Any) -> None:
    infos = {f.name: f for f in af.frameworks()}
    assert infos["dask"].plugin == "dask"
    assert af.framework_of(da.zeros(3)) == "dask"


# -- dask to numpy / torch: materialise ---------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_materialise_bit_for_bit(da: Any, torch: Any, to: str, dtype: str) -> None:
    ref = sample(dtype)
    x = da.from_array(ref, chunks=(4, 2))
    p = af.plan(x, to)
    assert p.steps[0].name == "materialise" and not p.zero_copy and p.copies == 1
    desc = p.steps[0].description
    assert f"{x.npartitions} chunk(s)" in desc and f"{ref.nbytes} B" in desc
    out = af.convert(x, to)
    assert af.framework_of(out) == to and same_bits(out, ref)
    # fresh memory: writing to it does not change the next computation
    host(out).reshape(-1)[-1] = host(out).reshape(-1)[0]
    assert same_bits(af.convert(x, to), ref)


@pytest.mark.parametrize("shape", [(), (0, 3), (7,)])
def test_materialise_edge_shapes(da: Any, shape: tuple[int, ...]) -> None:
    ref = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    out = af.convert(da.from_array(ref), "numpy")
    assert type(out) is np.ndarray and same_bits(out, ref)


def test_reduction_result_becomes_an_ndarray(da: Any) -> None:
    out = af.convert(da.from_array(np.arange(10.0), chunks=3).sum(), "numpy")
    assert type(out) is np.ndarray and out.shape == () and out == 45.0


@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_copy_false_raises_because_materialising_copies(da: Any, torch: Any, to: str) -> None:
    x = da.from_array(np.arange(12.0), chunks=4)
    with pytest.raises(af.CopyRequiredError) as ei:
        af.convert(x, to, copy=False)
    msg = str(ei.value)
    assert "dask" in msg and "3 chunk(s)" in msg and msg.splitlines()[-1].startswith("Hint:")


def test_copy_true_copies_once(da: Any) -> None:
    p = af.plan(da.from_array(np.arange(12.0), chunks=4), "numpy", copy=True)
    assert p.copies == 1


def test_big_endian_dask_to_torch(da: Any, torch: Any) -> None:
    ref = sample("float32").astype(">f4")
    out = af.convert(da.from_array(ref, chunks=3), "torch")
    assert same_bits(out, ref.astype("<f4"))


def test_unknown_chunk_sizes_are_refused_with_a_hint(da: Any) -> None:
    x = da.from_array(np.arange(10.0), chunks=5)
    y = x[x > 3]
    with pytest.raises(af.UnsupportedArrayError) as ei:
        af.convert(y, "numpy")
    assert "compute_chunk_sizes" in str(ei.value).splitlines()[-1]
    assert af.convert(y.compute_chunk_sizes(), "numpy").tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]


# -- anything to dask ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["numpy", "torch"])
def test_convert_to_dask_builds_a_snapshot(da: Any, torch: Any, source: str) -> None:
    ref = sample("float64")
    a = ref.copy()
    x = a if source == "numpy" else torch.from_numpy(a)
    p = af.plan(x, "dask")
    assert not p.zero_copy and "from_array copies" in p.explain()
    d = af.convert(x, "dask")
    assert isinstance(d, da.Array) and d.dtype == np.float64
    a[0, 0] = 123.0  # the plan said copy: later writes to the source do not show
    assert same_bits(d.compute(), ref)
    with pytest.raises(af.CopyRequiredError):
        af.convert(x, "dask", copy=False)
    assert af.plan(x, "dask", copy=True).copies == 1


def test_convert_dask_to_dask_is_identity_or_a_lazy_cast(da: Any) -> None:
    x = da.from_array(np.array([1.5, -2.5, 3.0]), chunks=2)
    assert af.convert(x, "dask") is x
    y = af.convert(x, "dask", dtype="int32")
    assert isinstance(y, da.Array) and y.dtype == np.int32 and y.chunks == x.chunks
    assert y.compute().tolist() == [1, -2, 3]
    bad = da.from_array(np.array([1.0, np.nan]), chunks=1)
    with pytest.raises(af.LossyConversionError, match="NaN"):
        af.convert(bad, "dask", dtype="int32").compute()


@pytest.mark.parametrize("chunks", [2, (3, 5), ((1, 5), (2, 3)), "auto"])
def test_from_array_with_chunks(da: Any, torch: Any, chunks: Any) -> None:
    ref = sample("int64")
    for x in (ref, torch.from_numpy(ref.copy())):
        d = afd.from_array(x, chunks=chunks)
        assert d.chunks == da.from_array(ref, chunks=chunks).chunks
        assert same_bits(d.compute(), ref)
    d32 = afd.from_array(ref, chunks=2, dtype="float64")
    assert d32.dtype == np.float64
    again = afd.from_array(d, chunks=3)
    assert again.chunks == ((3, 3), (3, 2)) and same_bits(again.compute(), ref)


def test_from_array_refuses_nan_to_int(da: Any) -> None:
    with pytest.raises(af.LossyConversionError):
        afd.from_array(np.array([np.nan]), dtype="int8")


# -- chunk-wise conversion (local scheduler) ----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_convert_chunks_to_torch_and_back(da: Any, torch: Any, dtype: str) -> None:
    ref = sample(dtype)
    x = da.from_array(ref, chunks=(4, 2))
    y = afd.convert_chunks(x, "torch")
    assert isinstance(y, da.Array) and y.chunks == x.chunks
    assert isinstance(y._meta, torch.Tensor) and afd.chunk_framework(y) == "torch"
    blocks = [y.blocks[i, j].compute(scheduler="sync") for i in range(y.numblocks[0]) for j in range(y.numblocks[1])]
    assert all(isinstance(b, torch.Tensor) for b in blocks)
    z = afd.convert_chunks(y, "numpy")
    assert isinstance(z._meta, np.ndarray)
    assert same_bits(z.compute(), ref)
    assert same_bits(af.convert(y, "numpy"), ref)  # materialise converts torch chunks first
    assert same_bits(af.convert(y, "torch"), ref)


def test_convert_chunks_is_lazy(da: Any, torch: Any) -> None:
    import dask

    calls = []

    def boom() -> np.ndarray:
        calls.append(1)
        raise RuntimeError("computed too early")

    x = da.from_delayed(dask.delayed(boom)(), shape=(4,), dtype=np.float32)
    y = afd.convert_chunks(x, "torch", dtype="float64")
    assert calls == [] and str(y.dtype) == "torch.float64"
    with pytest.raises(RuntimeError, match="computed too early"):
        y.compute(scheduler="sync")


def test_convert_chunks_errors_before_any_task(da: Any, torch: Any) -> None:
    x = da.from_array(np.arange(4, dtype=np.uint8), chunks=2)
    with pytest.raises(af.UnknownFrameworkError):
        afd.convert_chunks(x, "no-such-framework")
    with pytest.raises(af.UnsupportedArrayError) as ei:
        afd.convert_chunks(np.arange(3), "torch")
    assert str(ei.value).splitlines()[-1].startswith("Hint:")


def test_convert_chunks_shares_chunk_memory_when_the_plan_allows(da: Any, torch: Any) -> None:
    """Each chunk's conversion is arrayferry's own plan: numpy->torch is zero-copy per chunk."""
    a = np.arange(8.0)
    x = da.from_array(a, chunks=4)
    chunk = x.blocks[0].compute(scheduler="sync")
    conv = afd.ChunkConverter("torch")
    t = conv(chunk)
    assert np.shares_memory(t.numpy(), chunk) == af.plan(chunk, "torch").zero_copy is True
    copied = afd.ChunkConverter("torch", copy=True)(chunk)
    assert not np.shares_memory(copied.numpy(), chunk)


def test_chunk_converter_tokenizes_deterministically() -> None:
    from dask.base import tokenize

    assert tokenize(afd.ChunkConverter("torch")) == tokenize(afd.ChunkConverter("torch"))
    assert tokenize(afd.ChunkConverter("torch")) != tokenize(afd.ChunkConverter("torch", dtype="float32"))
    import pickle

    c = pickle.loads(pickle.dumps(afd.ChunkConverter("numpy", copy=True)))
    assert (c.to, c.copy) == ("numpy", True)


# -- NumPy-only dtypes: dask holds every NumPy dtype ---------------------------------------------

_NUMPY_ONLY = {
    "datetime64[ns]": lambda: np.array(["2020-01-01T00:00:00.5", "NaT", "1677-09-22"], dtype="datetime64[ns]"),
    "datetime64[D]-big-endian": lambda: np.array(["2020-01-01", "NaT"], dtype=">M8[D]"),
    "timedelta64[s]": lambda: np.array([1, -2, np.iinfo(np.int64).min], dtype="int64").view("timedelta64[s]"),
    "str": lambda: np.array(["a", "bc", ""]),
    "bytes": lambda: np.array([b"a", b"\x00bc"]),
    "object": lambda: np.array([1, "x", None], dtype=object),
    "structured": lambda: np.array([(1, 2.5), (-3, np.nan)], dtype=[("a", "<i4"), ("b", "<f8")]),
    "longdouble": lambda: np.array([1.5, -0.0], dtype=np.longdouble),
    "datetime-readonly-negative": lambda: np.array(["2020-01-01", "2021-01-01"], dtype="M8[D]")[::-1],
}


@pytest.mark.parametrize("name", list(_NUMPY_ONLY))
@pytest.mark.parametrize("copy", [None, True])
def test_numpy_only_dtypes_travel_to_dask_and_back(name: str, copy: bool | None) -> None:
    x = _NUMPY_ONLY[name]()
    if name.endswith("readonly-negative"):
        x.flags.writeable = False
    d = af.convert(x, "dask", copy=copy)
    assert d.dtype == x.dtype and d.shape == x.shape
    back = af.convert(d, "numpy")
    assert back.dtype == x.dtype
    if x.dtype.hasobject:
        assert list(back) == list(x)
    else:
        assert np.ascontiguousarray(back).tobytes() == np.ascontiguousarray(x).tobytes()  # NaT, NaN bit for bit
    with pytest.raises(af.CopyRequiredError):  # dask.array.from_array copies into the graph
        af.convert(x, "dask", copy=False)
    with pytest.raises(af.UnsupportedDTypeError):  # frameworks that hold numeric dtypes only still refuse
        af.convert(d, "torch")


# -- shares_memory answers for dask arrays -------------------------------------------------------


def test_shares_memory_with_lazy_and_persisted_dask_arrays() -> None:
    import dask.array as da
    from dask.core import flatten

    torch = pytest.importorskip("torch")
    a = np.arange(12.0)
    lazy = da.from_array(a, chunks=4) + 1  # chunks are tasks: nothing in memory yet
    assert af.shares_memory(lazy, a) is False and af.shares_memory(a, lazy) is False
    assert af.shares_memory(lazy, lazy) is False
    kept = lazy.persist()  # chunks computed and held by the graph
    chunk = kept.dask[next(iter(flatten(kept.__dask_keys__())))]
    assert isinstance(chunk, np.ndarray)
    assert af.shares_memory(kept, chunk) is True and af.shares_memory(chunk[1:], kept) is True
    assert af.shares_memory(kept, chunk.copy()) is False
    assert af.shares_memory(kept, kept) is True
    assert af.shares_memory(kept, torch.from_numpy(chunk)) is True  # across frameworks
    assert af.shares_memory(kept, a) is False
    assert af.shares_memory(af.convert(a, "dask"), a) is False  # from_array copies into the graph


# -- the graph's own errors are the caller's -----------------------------------------------------


@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_errors_of_the_graph_pass_through_as_they_are(to: str) -> None:
    """A task of the caller's graph that raises is not 'a bug in arrayferry': the same exception
    comes out, with a note saying arrayferry was computing the graph."""
    import dask.array as da

    pytest.importorskip("torch")

    def bad(block: np.ndarray) -> np.ndarray:
        if block.size:
            raise KeyError("missing column")
        return block

    x = da.from_array(np.ones(4), chunks=2).map_blocks(bad, dtype=float)
    with pytest.raises(KeyError, match="missing column") as ei:
        af.convert(x, to)
    assert not isinstance(ei.value, af.ArrayFerryError)
    assert any(n.startswith("arrayferry: raised while computing the dask graph") for n in ei.value.__notes__)
    with pytest.raises(MemoryError):  # running out of memory in a task stays a MemoryError too
        af.convert(da.from_array(np.ones(4), chunks=2).map_blocks(_oom, dtype=float), to)


def _oom(block: np.ndarray) -> np.ndarray:
    if block.size:
        raise MemoryError("no room for the chunk")
    return block
