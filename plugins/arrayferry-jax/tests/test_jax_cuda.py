"""JAX on a CUDA GPU, with torch CUDA tensors and CuPy arrays on the same device.

Every test needs a GPU that JAX can use (marker ``cuda``) and skips with the reason otherwise
(a CPU-only jaxlib, no driver). ``scripts/gpu-check`` runs them on the GPU test host. Values are
compared bit for bit (NaN, -0.0 and inf included); whether memory is shared is checked by
device pointers, and it must be exactly what the plan said (``plan.zero_copy``). JAX arrays are
immutable: no route may hand out a writable alias of one.
"""

from __future__ import annotations

from typing import Any

import arrayferry as af
import numpy as np
import pytest

pytestmark = pytest.mark.cuda

DTYPES = ["float32", "float16", "int32", "uint8", "bool", "complex64"]


def _sample(dtype: str, n: int = 64) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.arange(n) % 3 == 0
    if dt.kind in "iu":
        info = np.iinfo(dt)
        vals = np.linspace(info.min, info.max, n, dtype=np.float64).astype(dt)
        vals[:2] = (info.min, info.max)
        return vals
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 1.5, -2.25, np.finfo(dt).max, np.finfo(dt).tiny])
    vals = np.resize(special, n).astype(dt)
    if dt.kind == "c":
        vals = vals + 1j * np.resize(special[::-1], n).astype(dt)
    return vals


def _bits(expected: np.ndarray, got: Any) -> None:
    got = np.asarray(got)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()


@pytest.fixture(scope="module")
def jax_gpu() -> Any:
    jax = pytest.importorskip("jax")
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        pytest.skip("no GPU for JAX (jax.devices('gpu') is empty: a CPU-only jaxlib, or no driver)")
    return jax


@pytest.fixture(scope="module")
def torch_cuda() -> Any:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU for torch (a CPU build, or no driver)")
    return torch


@pytest.fixture(scope="module")
def cupy_cuda() -> Any:
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            raise RuntimeError
    except Exception:
        pytest.skip("no CUDA device for CuPy")
    return cupy


def _jax_on_gpu(jax: Any, x: np.ndarray) -> Any:
    return jax.device_put(x, jax.devices("gpu")[0])


def _jax_ptr(j: Any) -> int:
    return int(j.unsafe_buffer_pointer())


def _ptr(x: Any) -> int:
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        return int(x.data_ptr())
    if mod == "cupy":
        return int(x.data.ptr)
    return _jax_ptr(x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_to_jax_gpu_and_back(jax_gpu: Any, dtype: str) -> None:
    x = _sample(dtype)
    p = af.plan(x, "jax", device="cuda:0")
    assert not p.zero_copy and any(s.transfer for s in p.steps), p.explain()
    j = af.convert(x, "jax", device="cuda:0")
    assert af.device_of(j) == af.Device("cuda", 0)
    assert j.devices() == {jax_gpu.devices("gpu")[0]}
    _bits(x, np.asarray(j))
    back = af.convert(j, "numpy")
    _bits(x, back)
    with pytest.raises(af.CopyRequiredError):
        af.convert(j, "numpy", copy=False)


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_readonly_numpy_to_jax_gpu_one_copy(jax_gpu: Any, dtype: str) -> None:
    x = _sample(dtype)
    x.setflags(write=False)
    p = af.plan(x, "jax", device="cuda:0")
    transfers = [s for s in p.steps if s.transfer]
    assert len(transfers) == 1, p.explain()
    _bits(x, np.asarray(af.convert(x, "jax", device="cuda:0")))


@pytest.mark.parametrize("target", ["torch", "cupy"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_jax_gpu_to_device_framework(jax_gpu: Any, torch_cuda: Any, cupy_cuda: Any, target: str, dtype: str) -> None:
    x = _sample(dtype)
    j = _jax_on_gpu(jax_gpu, x)
    p = af.plan(j, target)
    assert p.device == af.Device("cuda", 0) and not any(s.transfer for s in p.steps), p.explain()
    # JAX arrays are immutable and torch/CuPy arrays writable: never an alias (one copy on the device)
    assert not p.zero_copy and p.copies == 1, p.explain()
    out = af.convert(j, target)
    assert af.device_of(out) == af.Device("cuda", 0)
    assert _ptr(out) != _jax_ptr(j)
    _bits(x, out.cpu().numpy() if target == "torch" else out.get())
    if dtype != "bool":
        out[0] = 1
        _bits(x, np.asarray(j))  # the JAX array did not change
    with pytest.raises(af.CopyRequiredError):
        af.convert(j, target, copy=False)


@pytest.mark.parametrize("source", ["torch", "cupy"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_device_framework_to_jax_gpu(jax_gpu: Any, torch_cuda: Any, cupy_cuda: Any, source: str, dtype: str) -> None:
    x = _sample(dtype)
    src = torch_cuda.from_numpy(x).to("cuda:0") if source == "torch" else cupy_cuda.asarray(x)
    p = af.plan(src, "jax")
    assert p.device == af.Device("cuda", 0) and not any(s.transfer for s in p.steps), p.explain()
    j = af.convert(src, "jax")
    assert af.device_of(j) == af.Device("cuda", 0)
    _bits(x, np.asarray(j))
    assert (_jax_ptr(j) == _ptr(src)) == p.zero_copy, p.explain()  # shared exactly when the plan says so
    cp = af.convert(src, "jax", copy=True)
    assert _jax_ptr(cp) != _ptr(src)
    _bits(x, np.asarray(cp))


def test_copy_true_and_cast_on_the_gpu(jax_gpu: Any) -> None:
    x = _sample("float32")
    j = _jax_on_gpu(jax_gpu, x)
    c = af.convert(j, "jax", copy=True)
    assert af.device_of(c) == af.Device("cuda", 0) and _jax_ptr(c) != _jax_ptr(j)
    _bits(x, np.asarray(c))
    # wherever the plan casts (JAX flushes subnormals, so float casts leave JAX), NumPy's bits come out
    p = af.plan(j, "numpy", dtype="float16", casting="unsafe")
    assert any(s.transfer for s in p.steps), p.explain()
    with np.errstate(over="ignore", invalid="ignore"):
        _bits(x.astype(np.float16), af.convert(j, "numpy", dtype="float16", casting="unsafe"))
    sub = _jax_on_gpu(jax_gpu, np.array([1e-40, -1e-40, 0.0], dtype=np.float32))
    _bits(np.array([1e-40, -1e-40, 0.0], dtype=np.float32).astype(bool), af.convert(sub, "numpy", dtype="bool"))


def test_torch_producer_on_a_side_stream_is_finished(jax_gpu: Any, torch_cuda: Any) -> None:
    torch = torch_cuda
    sleep = getattr(torch.cuda, "_sleep", None)
    if sleep is None:
        pytest.skip("torch.cuda._sleep is not available")
    n = 1 << 22
    t = torch.zeros(n, device="cuda:0")
    torch.cuda.synchronize()
    producer = torch.cuda.Stream()
    with torch.cuda.stream(producer):
        sleep(200_000_000)
        t.fill_(2.0)
        j = af.convert(t, "jax")  # JAX asks the producer to order its stream before JAX's
    assert float(np.asarray(j).sum(dtype=np.float64)) == 2.0 * n
