"""GPU tests: data moved between the host and CUDA devices, torch <-> CuPy zero-copy, streams.

Every test here needs a CUDA GPU (marker ``cuda``; two GPUs: ``multigpu``) and is skipped with
the reason when none is present. Run them with ``nox -s tests-cuda`` (``pytest -m "cuda or
multigpu"``). Data is checked bit for bit (NaN, -0.0 and inf included), zero-copy by comparing
device pointers and by writing through one side, and one test per direction uses a
non-default stream with a delayed producer, so missing synchronisation shows up as wrong values.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cuda_support import cupy_device_count, torch_cuda_count, torch_is_cpu_build  # noqa: E402

import arrayferry as af  # noqa: E402

pytestmark = pytest.mark.cuda

DTYPES = ["float16", "float32", "float64", "complex64", "int8", "int64", "uint16", "bool"]


def _sample(dtype: str, n: int = 64) -> np.ndarray:
    """Values that catch lossy or reinterpreting paths: NaN, -0.0, +-inf, extremes."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return (np.arange(n) % 3 == 0)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        base = np.linspace(info.min, info.max, n, dtype=np.float64).astype(dt)
        base[:2] = (info.min, info.max)
        return base
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 1.5, -2.25, np.finfo(dt).max, np.finfo(dt).tiny])
    vals = np.resize(special, n).astype(dt)
    if dt.kind == "c":
        vals = vals + 1j * np.resize(special[::-1], n).astype(dt)
    return vals


def _assert_bits(expected: np.ndarray, got: Any) -> None:
    got = np.asarray(got)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()


def _torch_to_np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


# -- fixtures: skip with the reason --------------------------------------------------------------
@pytest.fixture
def torch_cuda() -> Any:
    if torch_cuda_count() == 0:
        why = ("torch is a CPU build" if torch_is_cpu_build()
               else "torch is not installed, or torch.cuda.is_available() is False: no driver or GPU")
        pytest.skip(f"no CUDA GPU for torch ({why})")
    import torch

    return torch


@pytest.fixture
def cupy_cuda() -> Any:
    if cupy_device_count() == 0:
        pytest.skip("no CUDA device for CuPy (CuPy missing, or no driver/GPU: cupy.cuda.runtime.getDeviceCount() fails)")
    import cupy

    return cupy


@pytest.fixture
def two_gpus(torch_cuda: Any, cupy_cuda: Any) -> tuple[Any, Any]:
    if min(torch_cuda_count(), cupy_device_count()) < 2:
        pytest.skip("needs two CUDA GPUs")
    return torch_cuda, cupy_cuda


@pytest.fixture
def sleep(torch_cuda: Any) -> Any:
    fn = getattr(torch_cuda.cuda, "_sleep", None)
    if fn is None:
        pytest.skip("torch.cuda._sleep (a GPU busy-wait used to delay the producer) is not available")
    return lambda: fn(200_000_000)  # roughly 0.1 s of GPU time: long enough for a race to show


# -- host <-> device -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_to_torch_cuda_and_back(torch_cuda: Any, dtype: str) -> None:
    x = _sample(dtype)
    p = af.plan(x, "torch", device="cuda")
    assert not p.zero_copy and any(s.transfer for s in p.steps)
    t = af.convert(x, "torch", device="cuda")
    assert t.is_cuda and str(t.dtype) == f"torch.{dtype}"
    assert af.device_of(t) == af.Device("cuda", t.device.index)
    _assert_bits(x, _torch_to_np(t))
    back_plan = af.plan(t, "numpy")
    assert back_plan.route == "host" and back_plan.steps[0].name == "to_host" and not back_plan.zero_copy
    back = af.convert(t, "numpy")
    _assert_bits(x, back)
    back[...] = back[::-1]  # independent host memory: the tensor keeps its values
    _assert_bits(x, _torch_to_np(t))


def test_torch_cuda_to_numpy_copy_false(torch_cuda: Any) -> None:
    t = torch_cuda.arange(4.0, device="cuda")
    with pytest.raises(af.CopyRequiredError, match=f"device memory on cuda:{t.device.index} cannot be aliased by numpy"):
        af.convert(t, "numpy", copy=False)
    with pytest.raises(af.CopyRequiredError):
        af.convert(np.arange(4.0), "torch", device="cuda", copy=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_to_cupy_and_back(cupy_cuda: Any, dtype: str) -> None:
    x = _sample(dtype)
    p = af.plan(x, "cupy")
    assert not p.zero_copy and [s.name for s in p.steps] == ["to_device"] and p.steps[0].transfer
    a = af.convert(x, "cupy")
    assert isinstance(a, cupy_cuda.ndarray) and a.dtype == x.dtype
    assert af.device_of(a) == af.Device("cuda", a.device.id)
    _assert_bits(x, a.get())
    _assert_bits(x, af.convert(a, "numpy"))
    with pytest.raises(af.CopyRequiredError, match="cannot be aliased by numpy"):
        af.convert(a, "numpy", copy=False)


def test_cupy_strided_layouts_to_numpy(cupy_cuda: Any) -> None:
    x = np.arange(48, dtype=np.float32).reshape(6, 8)
    a = cupy_cuda.asarray(x)
    for view, ref in [(a[::-1], x[::-1]), (a.T, x.T), (a[:, ::3], x[:, ::3])]:
        _assert_bits(np.ascontiguousarray(ref), np.ascontiguousarray(af.convert(view, "numpy")))


# -- torch CUDA <-> CuPy ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cupy_zero_copy_both_ways(torch_cuda: Any, cupy_cuda: Any, dtype: str) -> None:
    x = _sample(dtype)
    t = torch_cuda.from_numpy(x).to("cuda")
    p = af.plan(t, "cupy")
    assert p.route == "dlpack" and p.zero_copy, p.explain()
    assert any(r == "cai" for r, _ in p.refused)  # the second route is known, and costs more here
    c = af.convert(t, "cupy")
    assert c.data.ptr == t.data_ptr() and c.device.id == t.device.index
    _assert_bits(x, c.get())
    t2 = af.convert(c, "torch")
    assert t2.data_ptr() == c.data.ptr and t2.device == t.device
    if dtype != "bool":
        c[0] = 1
        torch_cuda.cuda.synchronize()
        assert _torch_to_np(t)[0] == 1  # a write through CuPy is seen by torch: same memory


def test_cai_route_zero_copy(torch_cuda: Any, cupy_cuda: Any) -> None:
    from arrayferry._registry import registry

    x = _sample("float32")
    t = torch_cuda.from_numpy(x).to("cuda")
    c = registry().adapter_named("cupy").from_cai(t)
    assert c.data.ptr == t.data_ptr()
    _assert_bits(x, c.get())
    t2 = registry().adapter_named("torch").from_cai(c)
    assert t2.data_ptr() == c.data.ptr and t2.device == t.device
    _assert_bits(x, _torch_to_np(t2))


def test_copy_true_on_device(torch_cuda: Any, cupy_cuda: Any) -> None:
    x = _sample("float64")
    t = torch_cuda.from_numpy(x).to("cuda")
    for target in ("torch", "cupy"):
        out = af.convert(t, target, copy=True)
        ptr = out.data_ptr() if target == "torch" else out.data.ptr
        assert ptr != t.data_ptr()
        assert af.device_of(out) == af.device_of(t)
        _assert_bits(x, _torch_to_np(out) if target == "torch" else out.get())
    c = cupy_cuda.asarray(x)
    c2 = af.convert(c, "cupy", copy=True)
    assert c2.data.ptr != c.data.ptr and c2.device.id == c.device.id
    _assert_bits(x, c2.get())


def test_cast_on_device(torch_cuda: Any, cupy_cuda: Any) -> None:
    x = _sample("float64")
    c = cupy_cuda.asarray(x)
    p = af.plan(c, "torch", dtype="float32")
    assert p.route == "dlpack" and p.steps[0].name == "cast" and not p.steps[0].transfer
    t = af.convert(c, "torch", dtype="float32")
    assert t.is_cuda and t.dtype == torch_cuda.float32
    _assert_bits(x.astype(np.float32), _torch_to_np(t))
    with pytest.raises(af.LossyConversionError, match="NaN or infinity"):
        af.convert(c, "torch", dtype="int32")


# -- streams ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["stream-argument", "consumer-current-stream"])
def test_dlpack_orders_delayed_producer(torch_cuda: Any, cupy_cuda: Any, sleep: Any, how: str) -> None:
    torch = torch_cuda
    n = 1 << 22
    t = torch.zeros(n, device="cuda")
    torch.cuda.synchronize()
    producer = torch.cuda.Stream()
    consumer = cupy_cuda.cuda.Stream(non_blocking=True)
    with torch.cuda.stream(producer):
        sleep()
        t.fill_(3.0)  # queued behind the sleep on the producer stream
        if how == "stream-argument":
            c = af.convert(t, "cupy", stream=consumer)
        else:
            with consumer:
                c = af.convert(t, "cupy")  # CuPy passes its current stream to __dlpack__
    with consumer:
        total = float(c.sum())
    assert total == 3.0 * n
    assert c.data.ptr == t.data_ptr()


def test_device_to_host_waits_for_stream(torch_cuda: Any, sleep: Any) -> None:
    torch = torch_cuda
    n = 1 << 22
    t = torch.zeros(n, device="cuda")
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        sleep()
        t.fill_(5.0)
    out = af.convert(t, "numpy", stream=s)  # the copy to host is queued on s, behind the fill
    assert out.dtype == np.float32 and bool((out == 5.0).all())


def test_host_to_device_on_given_stream(torch_cuda: Any, cupy_cuda: Any) -> None:
    x = _sample("float32", 1 << 16)
    s = torch_cuda.cuda.Stream()
    t = af.convert(x, "torch", device="cuda", stream=s)
    s.synchronize()
    _assert_bits(x, _torch_to_np(t))
    cs = cupy_cuda.cuda.Stream(non_blocking=True)
    a = af.convert(x, "cupy", stream=cs)
    cs.synchronize()
    _assert_bits(x, a.get())
    p = af.plan(x, "cupy", stream=cs)
    assert p.stream is not None and p.stream.handle == cs.ptr
    _assert_bits(x, p.execute(x).get())


def test_integer_stream_handles(torch_cuda: Any) -> None:
    x = _sample("float64")
    for handle in (1, 2, -1, torch_cuda.cuda.Stream().cuda_stream):
        t = af.convert(x, "torch", device="cuda", stream=handle)
        torch_cuda.cuda.synchronize()
        _assert_bits(x, _torch_to_np(t))


# -- two GPUs ----------------------------------------------------------------------------------------
@pytest.mark.multigpu
def test_numpy_to_torch_cuda1(two_gpus: tuple[Any, Any]) -> None:
    x = _sample("float32")
    t = af.convert(x, "torch", device="cuda:1")
    assert t.device.index == 1 and af.device_of(t) == af.Device("cuda", 1)
    _assert_bits(x, _torch_to_np(t))


@pytest.mark.multigpu
def test_cuda0_to_cuda1(two_gpus: tuple[Any, Any]) -> None:
    torch, cupy = two_gpus
    x = _sample("float64")
    t0 = torch.from_numpy(x).to("cuda:0")
    p = af.plan(t0, "torch", device="cuda:1")
    assert not p.zero_copy and [s.name for s in p.steps] == ["to_device"] and p.steps[0].transfer
    t1 = af.convert(t0, "torch", device="cuda:1")
    assert t1.device.index == 1
    _assert_bits(x, _torch_to_np(t1))
    with pytest.raises(af.CopyRequiredError, match="device memory on cuda:0 cannot be aliased by torch on cuda:1"):
        af.convert(t0, "torch", device="cuda:1", copy=False)
    with cupy.cuda.Device(0):
        a0 = cupy.asarray(x)
    a1 = af.convert(a0, "cupy", device="cuda:1")
    assert a1.device.id == 1
    _assert_bits(x, a1.get())
    c1 = af.convert(t0, "cupy", device=cupy.cuda.Device(1))
    assert c1.device.id == 1 and c1.data.ptr != t0.data_ptr()
    _assert_bits(x, c1.get())


@pytest.mark.multigpu
def test_unindexed_cuda_stays_on_source_gpu(two_gpus: tuple[Any, Any]) -> None:
    torch, _ = two_gpus
    t1 = torch.arange(8.0, device="cuda:1")
    p = af.plan(t1, "cupy", device="cuda")
    assert p.device == af.Device("cuda", 1) and p.zero_copy
    c = af.convert(t1, "cupy", device="cuda")
    assert c.device.id == 1 and c.data.ptr == t1.data_ptr()


# -- every host <-> device pair, read-only host memory, casts placed before the transfer -----------
def _host_source(kind: str, x: np.ndarray) -> Any:
    if kind == "numpy":
        return x
    if kind == "numpy-readonly":
        y = x.copy()
        y.setflags(write=False)
        return y
    import torch

    return torch.from_numpy(x.copy())  # torch on the CPU


def _to_numpy(out: Any) -> np.ndarray:
    mod = type(out).__module__.split(".")[0]
    if mod == "torch":
        return _torch_to_np(out)
    if mod == "cupy":
        return out.get()  # type: ignore[no-any-return]
    return np.asarray(out)


@pytest.mark.parametrize("source", ["numpy", "numpy-readonly", "torch-cpu"])
@pytest.mark.parametrize("target", ["torch", "cupy"])
@pytest.mark.parametrize("dtype", ["float32", "complex64", "int64", "bool"])
def test_host_to_device_every_pair(torch_cuda: Any, cupy_cuda: Any, source: str, target: str, dtype: str) -> None:
    x = _sample(dtype)
    src = _host_source(source, x)
    p = af.plan(src, target, device="cuda:0")
    # one copy: the transfer itself (read-only host memory is not copied on the host first)
    assert p.copies == 1 and [s.name for s in p.steps if s.copies] == ["to_device"], p.explain()
    assert p.nbytes_moved >= x.nbytes
    out = af.convert(src, target, device="cuda:0")
    assert af.device_of(out) == af.Device("cuda", 0)
    _assert_bits(x, _to_numpy(out))
    # independent of the host source: writing the device result leaves the source untouched
    if dtype != "bool":
        out[0] = 7
        _assert_bits(x, _to_numpy(src) if source != "torch-cpu" else _torch_to_np(src))


@pytest.mark.parametrize("source", ["torch", "cupy"])
@pytest.mark.parametrize("target", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "complex128", "uint16", "bool"])
def test_device_to_host_every_pair(torch_cuda: Any, cupy_cuda: Any, source: str, target: str, dtype: str) -> None:
    x = _sample(dtype)
    src = torch_cuda.from_numpy(x).to("cuda:0") if source == "torch" else cupy_cuda.asarray(x)
    p = af.plan(src, target, device="cpu")
    assert p.copies == 1 and any(s.transfer for s in p.steps), p.explain()
    out = af.convert(src, target, device="cpu")
    assert af.device_of(out) == af.Device("cpu")
    _assert_bits(x, _to_numpy(out))
    with pytest.raises(af.CopyRequiredError, match="cannot be aliased"):
        af.convert(src, target, device="cpu", copy=False)


@pytest.mark.parametrize("source", ["torch", "cupy"])
@pytest.mark.parametrize("pair", [("float64", "float32"), ("int64", "int16"), ("complex128", "complex64")])
def test_narrowing_cast_runs_on_the_device_before_the_transfer(torch_cuda: Any, cupy_cuda: Any, source: str,
                                                               pair: tuple[str, str]) -> None:
    src_dt, dst_dt = pair
    x = _sample(src_dt, 1 << 12)
    if np.dtype(src_dt).kind == "i":
        x = (np.arange(x.size) % 60000 - 30000).astype(src_dt)  # inside int16's range: the default casting allows it
    src = torch_cuda.from_numpy(x).to("cuda:0") if source == "torch" else cupy_cuda.asarray(x)
    p = af.plan(src, "numpy", dtype=dst_dt)
    names = [s.name for s in p.steps]
    assert "cast" in names and names.index("cast") < names.index("to_host"), p.explain()
    # the transfer moves the narrow dtype: the device cast writes it once, the transfer once more
    assert p.nbytes_moved <= 2 * x.size * np.dtype(dst_dt).itemsize, p.explain()
    with np.errstate(over="ignore", invalid="ignore"):
        expected = x.astype(dst_dt)
    _assert_bits(expected, af.convert(src, "numpy", dtype=dst_dt))


@pytest.mark.parametrize("source", ["torch", "cupy"])
@pytest.mark.parametrize("pair", [("float64", "float32"), ("float32", "float64"), ("int64", "int32"),
                                  ("int32", "float64"), ("float32", "int32"), ("complex128", "complex64"),
                                  ("float64", "float16"), ("float32", "bool")])
def test_device_casts_agree_with_numpy(torch_cuda: Any, cupy_cuda: Any, source: str, pair: tuple[str, str]) -> None:
    """Wherever the plan casts (on the device when the framework casts exactly, else on the host),
    the result is NumPy's cast of the same values, bit for bit: subnormals, -0.0, NaN and ties."""
    src_dt, dst_dt = pair
    rng = np.random.default_rng(7)
    if np.dtype(src_dt).kind == "f":
        x = (rng.standard_normal(1 << 16) * rng.choice([1e-40, 1e-5, 1.0, 1e4, 6.5e4], 1 << 16)).astype(src_dt)
        x[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.5]
        if dst_dt == "int32":
            x = np.nan_to_num(np.clip(x, -2e9, 2e9), nan=0.0, posinf=1.0, neginf=-1.0)  # in range: allowed
    elif np.dtype(src_dt).kind == "c":
        x = (rng.standard_normal(1 << 15) + 1j * rng.standard_normal(1 << 15)).astype(src_dt)
    else:
        x = rng.integers(-(2**31), 2**31 - 1, 1 << 16).astype(src_dt)
    src = torch_cuda.from_numpy(x).to("cuda:0") if source == "torch" else cupy_cuda.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = x.astype(dst_dt)
    _assert_bits(expected, af.convert(src, "numpy", dtype=dst_dt))


@pytest.mark.parametrize("target", ["torch", "cupy"])
def test_widening_cast_runs_on_the_device_after_the_transfer(torch_cuda: Any, cupy_cuda: Any, target: str) -> None:
    x = _sample("float16", 1 << 12)
    p = af.plan(x, target, device="cuda:0", dtype="float64")
    # the transfer moves float16; the cast to the 4x wider float64 runs on the device afterwards
    assert [s.name for s in p.steps if s.copies][0] == "to_device", p.explain()
    assert p.nbytes_moved >= x.size * (2 + 8)
    out = af.convert(x, target, device="cuda:0", dtype="float64")
    _assert_bits(x.astype(np.float64), _to_numpy(out))


def test_copy_true_on_device_is_independent(torch_cuda: Any, cupy_cuda: Any) -> None:
    x = _sample("int64")
    t = torch_cuda.from_numpy(x).to("cuda:0")
    for target in ("torch", "cupy"):
        out = af.convert(t, target, copy=True)
        out[0] = 12345
        torch_cuda.cuda.synchronize()
        _assert_bits(x, _torch_to_np(t))  # the source did not change


# -- zero-copy between torch CUDA and CuPy through CAI, with a producer still running ---------------
def test_cai_orders_delayed_torch_producer(torch_cuda: Any, cupy_cuda: Any, sleep: Any) -> None:
    from arrayferry._registry import registry

    torch = torch_cuda
    n = 1 << 22
    t = torch.zeros(n, device="cuda")
    torch.cuda.synchronize()
    producer = torch.cuda.Stream()
    with torch.cuda.stream(producer):
        sleep()
        t.fill_(4.0)
        c = registry().adapter_named("cupy").from_cai(t)  # torch's CAI v2: the producer is the current stream
    assert c.data.ptr == t.data_ptr()
    assert float(c.sum()) == 4.0 * n  # CuPy's current stream waited for the fill


def test_dlpack_orders_delayed_cupy_producer(torch_cuda: Any, cupy_cuda: Any, sleep: Any) -> None:
    torch, cupy = torch_cuda, cupy_cuda
    n = 1 << 22
    c = cupy.zeros(n, dtype=cupy.float32)
    cupy.cuda.Device().synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        sleep()  # the side stream is busy ...
    ext = cupy.cuda.ExternalStream(side.cuda_stream)
    with ext:
        c.fill(6.0)  # ... so this CuPy write waits behind the sleep
        t = af.convert(c, "torch")  # CuPy's current stream is the producer's: torch's stream waits for it
    assert t.data_ptr() == c.data.ptr
    assert float(t.sum()) == 6.0 * n


# -- DLPack and CAI both offered: the plan names both, data is shared -------------------------------
@pytest.mark.parametrize("direction", ["torch->cupy", "cupy->torch"])
def test_zero_copy_plan_names_both_protocols(torch_cuda: Any, cupy_cuda: Any, direction: str) -> None:
    x = _sample("float32")
    t = torch_cuda.from_numpy(x).to("cuda:0")
    src, target = (t, "cupy") if direction == "torch->cupy" else (cupy_cuda.asarray(x), "torch")
    p = af.plan(src, target)
    assert p.route == "dlpack" and p.zero_copy
    assert dict(p.refused).get("cai", "").startswith("works at the same cost"), p.explain()
    out = af.convert(src, target)
    ptr_in = src.data_ptr() if direction == "torch->cupy" else src.data.ptr
    ptr_out = out.data.ptr if direction == "torch->cupy" else out.data_ptr()
    assert ptr_in == ptr_out
