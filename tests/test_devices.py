"""Device logic tested without a GPU, with real components (``../shared/NO_GPU.md``).

* torch ``FakeTensorMode`` tensors on ``cuda:1``: detection, ``device_of``, plans (never data);
* real CuPy arrays built without a driver (host memory labelled as device memory): detection,
  plans, and the "CuPy installed but no driver" errors;
* NumPy capsules relabelled to claim CUDA, fed to real consumers (NumPy, torch CPU build, JAX,
  CuPy without driver): each refusal reaches the caller as ``DeviceError``;
* cuda-core's ``StridedMemoryView`` as a real CUDA consumer of ``export_dlpack`` (stream included);
* the ``stream=`` argument: parsing, what reaches the adapters, and the plan cache.

Tests that move data on a GPU are in ``test_cuda.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cuda_support import (  # noqa: E402
    ClaimsDevice,
    cupy_without_driver,
    driverless_cupy_array,
    torch_cuda_count,
    torch_is_cpu_build,
)

import arrayferry as af  # noqa: E402
from arrayferry._api import export_dlpack  # noqa: E402
from arrayferry._cuda import (  # noqa: E402
    DLPackExport,
    StreamSpec,
    consume_dlpack,
    parse_stream,
    requested_stream,
    using_stream,
)

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_JAX = importlib.util.find_spec("jax") is not None
HAVE_CUDA_CORE = importlib.util.find_spec("cuda") is not None and importlib.util.find_spec("cuda.core") is not None

needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
needs_cpu_torch = pytest.mark.skipif(
    not HAVE_TORCH or not torch_is_cpu_build(), reason="needs a CPU build of torch (this one has CUDA support)"
)
needs_driverless_cupy = pytest.mark.skipif(
    not cupy_without_driver(), reason="needs CuPy installed without a usable CUDA driver/device"
)


def _hint_last(exc: BaseException) -> None:
    lines = str(exc).splitlines()
    assert lines[-1].startswith("Hint:"), str(exc)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def fake_cuda1() -> Any:
    """A torch FakeTensor on cuda:1 (metadata only; FakeTensorMode is private API)."""
    torch = pytest.importorskip("torch")
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
    except ImportError as exc:  # private API moved
        pytest.skip(f"torch FakeTensorMode is not importable here: {exc}")
    try:
        with FakeTensorMode():
            t = torch.empty(3, 4, dtype=torch.float32, device="cuda:1")
    except Exception as exc:
        pytest.skip(f"FakeTensorMode cannot make a cuda:1 tensor here: {type(exc).__name__}: {exc}")
    return t


@pytest.fixture(params=["C", "F", "strided", "negative"])
def cupy_dev1(request: pytest.FixtureRequest) -> tuple[Any, str]:
    """A real cupy.ndarray labelled as memory of cuda:1 (never read), and its expected layout."""
    if not cupy_without_driver():
        pytest.skip("needs CuPy installed without a usable CUDA driver/device")
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    host = {"C": base, "F": np.asfortranarray(base), "strided": base[:, ::2], "negative": base[::-1]}[request.param]
    layout = {"C": "contiguous", "F": "fortran", "strided": "strided", "negative": "negative"}[request.param]
    return driverless_cupy_array(host, 1), layout


@pytest.fixture
def stream_probe() -> Iterator[list[Any]]:
    """Register a tiny plugin whose host import records the stream arrayferry requested."""
    seen: list[Any] = []

    class ProbeArray:
        def __init__(self, a: Any) -> None:
            self.a = a

    class ProbeAdapter(af.Adapter):
        name = "streamprobe"
        module = __name__
        readonly_capable = True

        def owns(self, tp: type) -> bool:
            return tp is ProbeArray

        def describe(self, x: Any) -> af.ArrayInfo:
            return af.ArrayInfo("streamprobe", str(x.a.dtype), x.a.shape, itemsize=x.a.itemsize)

        def export_host(self, x: Any) -> Any:
            return x.a

        def import_host(self, arr: Any) -> Any:
            seen.append(requested_stream())
            return ProbeArray(arr)

    class Plugin:
        @af.hookimpl
        def arrayferry_adapters(self) -> list[af.Adapter]:
            return [ProbeAdapter()]

    name = af.register_plugin(Plugin(), "test-stream-probe")
    try:
        yield seen
    finally:
        af.unregister_plugin(name)


# -- the stream argument ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "handle"),
    [(1, 1), (2, 2), (-1, -1), (0x7F00DEADBEEF, 0x7F00DEADBEEF)],
    ids=["legacy-default", "per-thread-default", "no-sync", "raw-handle"],
)
def test_stream_integer_handles_follow_dlpack(given: int, handle: int) -> None:
    spec = parse_stream(given)
    assert spec == StreamSpec(handle)


@pytest.mark.parametrize("bad", [0, -2, True, "stream", 1.5, object()], ids=repr)
def test_stream_bad_values_raise_device_error(bad: Any) -> None:
    with pytest.raises(af.DeviceError) as info:
        parse_stream(bad)
    assert "as a CUDA stream" in str(info.value)
    _hint_last(info.value)


def test_stream_zero_message_says_ambiguous() -> None:
    with pytest.raises(af.DeviceError, match="0 is ambiguous"):
        af.convert(np.ones(2), "numpy", stream=0)


class _StreamProtocol:
    """An object following the ``__cuda_stream__`` protocol (what cuda.core.Stream exposes)."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.handle)


@pytest.mark.parametrize(("handle", "expected"), [(0xABC, 0xABC), (0, 1)], ids=["handle", "null-is-legacy"])
def test_stream_cuda_stream_protocol(handle: int, expected: int) -> None:
    obj = _StreamProtocol(handle)
    spec = parse_stream(obj)
    assert spec is not None and spec.handle == expected and spec.obj is obj


@pytest.mark.skipif(importlib.util.find_spec("cupy") is None, reason="cupy is not installed")
def test_stream_cupy_objects() -> None:
    import cupy

    assert parse_stream(cupy.cuda.Stream.null) == StreamSpec(1, None, cupy.cuda.Stream.null)
    with pytest.warns(DeprecationWarning) if hasattr(cupy.cuda.Stream, "from_external") else contextlib.nullcontext():
        ext = cupy.cuda.ExternalStream(0x1234, 1)
    spec = parse_stream(ext)
    assert (spec.handle, spec.device) == (0x1234, 1)
    assert parse_stream(cupy.cuda.Stream.ptds).handle == 2


def test_stream_reaches_adapters_and_is_reset(stream_probe: list[Any]) -> None:
    x = np.arange(4.0)
    af.convert(x, "streamprobe")
    af.convert(x, "streamprobe", stream=0x5000)
    p = af.plan(x, "streamprobe", stream=7)
    assert p.stream == StreamSpec(7)
    p.execute(x)
    assert stream_probe == [None, StreamSpec(0x5000), StreamSpec(7)]
    assert requested_stream() is None  # nothing leaks after the call


def test_stream_not_part_of_plan_cache(stream_probe: list[Any]) -> None:
    from arrayferry import _api

    x = np.arange(3.0)
    af.convert(x, "streamprobe")
    before = _api.cache_size()
    for s in (1, 2, 0x9999):
        af.convert(x, "streamprobe", stream=s)
    assert _api.cache_size() == before
    assert [s.handle if s else None for s in stream_probe] == [None, 1, 2, 0x9999]


def test_stream_explained_in_plan() -> None:
    text = af.plan(np.ones(2), "numpy", stream=0x42).explain()
    assert "Stream: stream 0x42" in text
    assert "Stream:" not in af.plan(np.ones(2), "numpy").explain()


def test_stream_ignored_by_host_only_work_values_intact() -> None:
    x = np.array([np.nan, -0.0, np.inf, 1.5])
    out = af.convert(x, "numpy", stream=1)
    assert out is x
    if HAVE_TORCH:
        t = af.convert(x, "torch", stream=2)
        assert np.array_equal(t.numpy(), x, equal_nan=True) and np.signbit(t.numpy()[1])


def test_using_stream_nests_and_restores() -> None:
    with using_stream(StreamSpec(5)):
        with using_stream(StreamSpec(6)):
            assert requested_stream() == StreamSpec(6)
        assert requested_stream() == StreamSpec(5)
    assert requested_stream() is None


# -- export_dlpack and cuda-core's StridedMemoryView ------------------------------------------
@pytest.fixture
def smv() -> Any:
    if not HAVE_CUDA_CORE:
        pytest.skip("cuda-core is not installed (pip install 'cuda-core[cu12]')")
    try:
        from cuda.core.utils import StridedMemoryView
    except ImportError as exc:
        pytest.skip(f"cuda.core.utils.StridedMemoryView not importable: {exc}")
    return StridedMemoryView


@pytest.mark.parametrize(("bound", "consumer", "sent"), [(None, 0x99, 0x99), (7, 0x99, 7), (-1, 0x99, -1), (7, -1, 7)],
                         ids=["consumer-stream", "bound-stream", "bound-no-sync", "bound-over-consumer-no-sync"])
def test_cuda_consumer_gets_the_right_stream(smv: Any, bound: int | None, consumer: int, sent: int) -> None:
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    producer = ClaimsDevice(host, (2, 1))
    view = smv.from_dlpack(DLPackExport(producer, bound), stream_ptr=consumer)
    assert producer.calls[-1]["stream"] == sent
    assert view.ptr == host.ctypes.data and view.shape == (3, 4) and view.dtype == np.float32
    assert view.device_id == 1 and view.is_device_accessible


def test_export_dlpack_cpu_producer_never_gets_a_stream(smv: Any) -> None:
    host = np.arange(6, dtype=np.int32)
    exp = export_dlpack(host, stream=0x77)  # NumPy refuses any stream but None
    view = smv.from_dlpack(exp, stream_ptr=-1)
    assert view.ptr == host.ctypes.data and not view.is_device_accessible
    back = np.from_dlpack(export_dlpack(host, stream=3))
    assert np.shares_memory(back, host)


def _host_producers() -> list[Any]:
    out = [pytest.param(lambda: np.arange(6, dtype=np.int32), id="numpy")]
    out.append(pytest.param(lambda: __import__("torch").arange(6, dtype=__import__("torch").int32), id="torch-cpu",
                            marks=needs_torch))
    return out


@pytest.mark.parametrize("make", _host_producers())
@pytest.mark.parametrize("bound", [None, 3])
@pytest.mark.parametrize("asked", [None, 1, 2, -1, 0x77])
def test_export_dlpack_host_producers_never_get_a_consumer_stream(make: Any, bound: int | None, asked: int | None) -> None:
    """A consumer asking a host producer for a stream (what a CUDA consumer does by default) gets
    the capsule: the stream is dropped, not handed to torch (AssertionError) or NumPy (RuntimeError)."""
    x = make()
    exp = export_dlpack(x, stream=bound)
    capsule = exp.__dlpack__(stream=asked)
    assert type(capsule).__name__ == "PyCapsule"
    back = np.from_dlpack(export_dlpack(x, stream=bound))
    assert back.tolist() == list(range(6))


@needs_torch
def test_export_dlpack_prepares_torch_states() -> None:
    import torch

    t = torch.tensor([1.0, -0.0, float("nan")], requires_grad=True)
    with pytest.raises((BufferError, RuntimeError)):  # torch >= 2.4 raises BufferError, older RuntimeError
        np.from_dlpack(t)  # what a consumer meets without arrayferry
    out = np.from_dlpack(export_dlpack(t))
    assert out.ctypes.data == t.data_ptr()  # detach costs nothing
    assert np.array_equal(out, t.detach().numpy(), equal_nan=True) and np.signbit(out[1])
    z = torch.tensor([1 + 2j, 3 - 4j]).conj()
    got = np.from_dlpack(export_dlpack(z.imag))  # negative bit resolved: numpy alone returns [2, -4]
    assert got.tolist() == [-2.0, 4.0]


def test_export_dlpack_bad_stream() -> None:
    with pytest.raises(af.DeviceError):
        export_dlpack(np.ones(2), stream=0)


# -- relabelled capsules fed to real consumers -----------------------------------------------
def _consumers() -> list[Any]:
    out = [pytest.param("numpy", id="numpy")]
    out.append(pytest.param("torch", id="torch-cpu-build", marks=needs_cpu_torch))
    out.append(pytest.param("jax", id="jax", marks=pytest.mark.skipif(not HAVE_JAX, reason="jax is not installed")))
    out.append(pytest.param("cupy", id="cupy-no-driver", marks=needs_driverless_cupy))
    return out


def _consume(name: str, x: Any) -> Any:
    if name == "numpy":
        return consume_dlpack("numpy", np.from_dlpack, x)
    if name == "jax":
        import jax

        return consume_dlpack("jax", jax.dlpack.from_dlpack, x)
    from arrayferry._registry import registry

    return registry().adapter_named(name).from_dlpack(x)  # the adapters' own import step


@pytest.mark.parametrize("consumer", _consumers())
def test_relabelled_capsule_refusal_is_device_error(consumer: str) -> None:
    producer = ClaimsDevice(np.arange(5, dtype=np.float32), (2, 1))
    with pytest.raises(af.DeviceError) as info:
        _consume(consumer, producer)
    msg = str(info.value)
    assert f"{consumer} cannot import DLPack memory on cuda:1" in msg
    assert "raised" in msg  # the consumer's own words are kept
    _hint_last(info.value)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("consumer", [c for c in _consumers() if c.id != "cupy-no-driver"])
def test_relabelled_capsule_back_on_host_is_accepted(consumer: str) -> None:
    """The same producer labelled as CPU memory is consumed: the refusal above is about the device."""
    host = np.arange(5, dtype=np.float32)
    out = _consume(consumer, ClaimsDevice(host, (1, 0)))
    assert np.array_equal(np.asarray(out), host)


def test_consume_dlpack_leaves_other_errors_alone() -> None:
    """Only refusals of a non-host device are re-typed; other failures reach the caller unchanged."""
    with pytest.raises(AttributeError, match="__dlpack__"):
        consume_dlpack("numpy", np.from_dlpack, object())


# -- torch FakeTensorMode: a cuda:1 tensor without a GPU --------------------------------------------
def test_fake_cuda_tensor_detected(fake_cuda1: Any) -> None:
    assert af.framework_of(fake_cuda1) == "torch"
    assert af.device_of(fake_cuda1) == af.Device("cuda", 1)
    assert str(af.device_of(fake_cuda1)) == "cuda:1"
    assert tuple(int(v) for v in fake_cuda1.__dlpack_device__()) == (2, 1)


def test_fake_cuda_tensor_to_numpy_stages_through_host(fake_cuda1: Any) -> None:
    p = af.plan(fake_cuda1, "numpy")
    assert p.route == "host" and not p.zero_copy
    assert p.steps[0].name == "to_host" and p.steps[0].copies and p.steps[0].transfer
    assert p.copies == 1 and p.device == af.Device("cpu")
    assert "stage from cuda:1 into host memory" in p.explain()


def test_fake_cuda_tensor_copy_false_refused(fake_cuda1: Any) -> None:
    with pytest.raises(af.CopyRequiredError) as info:
        af.plan(fake_cuda1, "numpy", copy=False)
    msg = str(info.value)
    assert "device memory on cuda:1 cannot be aliased by numpy" in msg
    assert "copy=False" in msg.splitlines()[0]
    _hint_last(info.value)


@needs_cpu_torch
@pytest.mark.parametrize("device", ["cuda:0", "cuda", "cuda:1"])
def test_fake_cuda_tensor_to_cuda_on_cpu_build(fake_cuda1: Any, device: str) -> None:
    with pytest.raises(af.DeviceError, match="no CUDA device available.*torch .* is a CPU build"):
        af.plan(fake_cuda1, "torch", device=device)


@needs_driverless_cupy
def test_fake_cuda_tensor_to_cupy_without_driver(fake_cuda1: Any) -> None:
    with pytest.raises(af.DeviceError, match="CuPy is installed but no CUDA driver/device is available") as info:
        af.plan(fake_cuda1, "cupy")
    assert "cuda:1" in str(info.value) and "status 35" in str(info.value)


def _installed_targets() -> list[str]:
    return sorted(i.name for i in af.frameworks() if i.installed and i.name not in ("streamprobe",))


@pytest.mark.filterwarnings("ignore:Accessing the data pointer of FakeTensor:UserWarning")
@pytest.mark.parametrize("target", _installed_targets())
def test_every_transfer_plan_copies(fake_cuda1: Any, target: str) -> None:
    """plan.zero_copy is False whenever the result lands on another device than the source."""
    try:
        p = af.plan(fake_cuda1, target)
    except af.ArrayFerryError as exc:
        assert isinstance(exc, (af.DeviceError, af.UnsupportedDTypeError)), repr(exc)
        return
    if p.device != af.device_of(fake_cuda1):
        assert not p.zero_copy
        assert any(s.transfer and s.copies for s in p.steps), p.explain()
    for s in p.steps:
        assert s.copies or not s.transfer


# -- "device=" for every target --------------------------------------------------------------------
@pytest.mark.skipif(torch_cuda_count() > 0, reason="a CUDA GPU is present: see test_cuda.py")
@pytest.mark.parametrize("target", _installed_targets())
def test_device_cuda_for_every_target_without_gpu(target: str) -> None:
    x = np.arange(3, dtype=np.float32)
    for device in ("cuda:1", af.Device("cuda", 0)):
        with pytest.raises(af.DeviceError) as info:
            af.convert(x, target, device=device)
        _hint_last(info.value)


@pytest.mark.parametrize("target", [t for t in _installed_targets() if t != "cupy"])
def test_device_cpu_for_every_host_target(target: str) -> None:
    x = np.array([1.5, -0.0, np.nan], dtype=np.float32)
    out = af.convert(x, target, device="cpu")
    assert af.device_of(out).is_host
    back = np.asarray(af.convert(out, "numpy"))
    assert back.tobytes() == x.tobytes()


# -- CuPy installed without a driver -------------------------------------------------------------
def test_cupy_driverless_array_detected(cupy_dev1: tuple[Any, str]) -> None:
    a, layout = cupy_dev1
    assert af.framework_of(a) == "cupy"
    assert af.device_of(a) == af.Device("cuda", 1)
    from arrayferry._registry import registry

    info = registry().adapter_named("cupy").describe(a)
    assert (info.dtype, info.shape, info.layout, info.readonly) == ("float32", a.shape, layout, False)


def test_cupy_to_numpy_plan_and_driver_error(cupy_dev1: tuple[Any, str]) -> None:
    a, _ = cupy_dev1
    p = af.plan(a, "numpy")
    assert p.route == "host" and not p.zero_copy and p.steps[0].name == "to_host" and p.steps[0].transfer
    with pytest.raises(af.CopyRequiredError, match="device memory on cuda:1 cannot be aliased by numpy"):
        af.plan(a, "numpy", copy=False)
    with pytest.raises(af.DeviceError) as info:  # running the plan needs the driver
        af.convert(a, "numpy")
    assert "CuPy is installed but no CUDA driver" in str(info.value) and "status 35" in str(info.value)
    assert type(info.value.__cause__).__name__ == "CUDARuntimeError"


@needs_driverless_cupy
@pytest.mark.parametrize("device", [None, "cuda", "cuda:0", "cuda:3", af.Device("cuda", 1)], ids=str)
def test_cupy_target_without_driver(device: Any) -> None:
    with pytest.raises(af.DeviceError) as info:
        af.convert(np.arange(3.0), "cupy", device=device)
    msg = str(info.value)
    assert msg.startswith("CuPy is installed but no CUDA driver/device is available")
    assert "CUDARuntimeError" in msg and "status 35" in msg
    _hint_last(info.value)


@needs_driverless_cupy
def test_cupy_device_objects_parsed() -> None:
    import cupy

    assert af.Device.parse(cupy.cuda.Device(1)) == af.Device("cuda", 1)
    with pytest.raises(af.DeviceError, match="asked for device 'cuda:1'"):
        af.convert(np.ones(2), "cupy", device=cupy.cuda.Device(1))


@needs_driverless_cupy
def test_cupy_refuses_host_device() -> None:
    with pytest.raises(af.DeviceError, match="CuPy arrays live in CUDA device memory") as info:
        af.convert(np.ones(2), "cupy", device="cpu")
    _hint_last(info.value)


@needs_driverless_cupy
def test_cupy_probed_devices_empty_without_driver() -> None:
    info = {i.name: i for i in af.frameworks(probe_devices=True)}["cupy"]
    assert info.installed and info.devices == ()


@needs_driverless_cupy
def test_cupy_never_probed_at_import() -> None:
    """Importing arrayferry and converting host arrays neither imports CuPy nor touches CUDA."""
    from helpers import run_python

    code = (
        "import sys, numpy as np, arrayferry as af\n"
        "af.convert(np.ones(3), 'numpy'); af.framework_of(np.ones(3)); af.frameworks()\n"
        "assert 'cupy' not in sys.modules, 'cupy imported'\n"
        "from arrayferry._registry import registry\n"
        "assert 'cupy' in registry().adapters and 'cupy' not in sys.modules\n"
        "print('ok')\n"
    )
    res = run_python(code)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_cai_route_refused_off_device(cupy_dev1: tuple[Any, str]) -> None:
    """The planner knows the CAI route and says why it does not apply to a host target."""
    a, _ = cupy_dev1
    if not HAVE_TORCH:
        pytest.skip("torch is not installed")
    p = af.plan(a, "torch", device="cpu")
    reasons = dict(p.refused)
    assert "cai" in reasons and "describes device memory" in reasons["cai"]
