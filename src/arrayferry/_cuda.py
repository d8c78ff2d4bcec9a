"""CUDA helpers shared by the PyTorch and CuPy adapters: streams, DLPack stream conventions,
``__cuda_array_interface__`` (CAI) consumption, and mapping CUDA failures to :class:`DeviceError`.

Rules this module follows:

* Nothing here imports a framework at import time, and nothing probes CUDA until a conversion
  that needs a device is planned (``import cupy`` works without a driver; its first device call
  raises ``CUDARuntimeError`` with status 35, which arrayferry reports as ``DeviceError``).
* **The stream argument.** ``convert(..., stream=S)`` / ``plan(..., stream=S)`` accept a framework
  stream object (``torch.cuda.Stream``, ``cupy.cuda.Stream``, any object with the
  ``__cuda_stream__`` protocol such as ``cuda.core.Stream``) or an integer handle. Integer handles
  follow the DLPack convention for CUDA: ``1`` is the legacy default stream, ``2`` the per-thread
  default stream, ``-1`` means "do not synchronise", ``0`` is refused as ambiguous, anything
  else is a ``cudaStream_t`` value. A framework's own default stream (handle ``0`` in torch and
  CuPy) is read as ``1``, as torch and CuPy do when they consume DLPack.
* **What is synchronised.** The requested stream is held in a context variable while the plan
  runs, so plans stay cached per signature (the stream is not part of the key). Device work the
  adapters issue (casts, copies, transfers) runs on that stream when it belongs to the device the
  work runs on; DLPack exports are requested with ``__dlpack__(stream=S)`` so the producer makes
  ``S`` wait for its pending work; CAI consumption makes ``S`` wait on the producer's stream. With
  no stream given, each consumer passes its own current stream (torch and CuPy do this inside
  ``from_dlpack``), so the result is safe to use on the target framework's current stream.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ._device import Device
from ._errors import ArrayFerryError, DeviceError, format_message

__all__ = [
    "LEGACY_DEFAULT_STREAM",
    "PER_THREAD_DEFAULT_STREAM",
    "NO_SYNC",
    "StreamSpec",
    "parse_stream",
    "requested_stream",
    "using_stream",
    "DLPackExport",
    "with_requested_stream",
    "CAIView",
    "consume_dlpack",
    "producer_stream",
    "is_cuda_error",
    "device_error_from",
    "torch_stream_context",
    "cupy_stream_context",
    "cupy_stream",
    "cupy_external_stream",
]

#: DLPack's stream values for CUDA (array API ``__dlpack__`` specification).
LEGACY_DEFAULT_STREAM = 1
"""DLPack's stream value for CUDA's legacy default stream."""
PER_THREAD_DEFAULT_STREAM = 2
"""DLPack's stream value for CUDA's per-thread default stream."""
NO_SYNC = -1
"""DLPack's stream value for "do not synchronise" (the consumer orders the work itself)."""

#: DLPack device types whose memory is ordered by CUDA/ROCm streams.
_STREAMED_DEVICE_TYPES = (2, 10, 13)


@dataclass(frozen=True)
class StreamSpec:
    """A parsed ``stream=`` argument: the DLPack stream value and, when known, its device index."""

    handle: int
    device: int | None = None
    obj: Any = None

    def __str__(self) -> str:
        names = {LEGACY_DEFAULT_STREAM: "legacy default stream", PER_THREAD_DEFAULT_STREAM: "per-thread default stream",
                 NO_SYNC: "no synchronisation (stream=-1)"}
        text = names.get(self.handle, f"stream {self.handle:#x}")
        return text if self.device is None else f"{text} on cuda:{self.device}"


def _stream_error(obj: Any, why: str) -> DeviceError:
    return DeviceError(
        format_message(
            f"Cannot use {obj!r} as a CUDA stream: {why}.",
            ["stream= accepts torch.cuda.Stream, cupy.cuda.Stream, objects with __cuda_stream__ "
             "(cuda.core.Stream) and integer handles (1 legacy default, 2 per-thread default, -1 no sync, "
             "or a cudaStream_t value)"],
            hint="pass the stream object itself, or stream=None to use the target framework's current stream",
        )
    )


def parse_stream(obj: Any) -> StreamSpec | None:
    """Parse a ``stream=`` argument (see the module docstring); ``None`` stays ``None``."""
    if obj is None:
        return None
    if isinstance(obj, StreamSpec):
        return obj
    if isinstance(obj, bool):
        raise _stream_error(obj, "a bool is not a stream handle")
    if isinstance(obj, int):
        if obj == 0:
            raise _stream_error(obj, "0 is ambiguous for CUDA and DLPack disallows it")
        if obj < -1:
            raise _stream_error(obj, "negative handles other than -1 are not streams")
        return StreamSpec(obj)
    proto = getattr(obj, "__cuda_stream__", None)
    if proto is not None:
        got = proto() if callable(proto) else proto
        try:
            _version, handle = got
            handle = int(handle)
        except (TypeError, ValueError):
            raise _stream_error(obj, f"__cuda_stream__ returned {got!r}, not (version, handle)") from None
        return StreamSpec(handle or LEGACY_DEFAULT_STREAM, _stream_device_index(obj), obj)
    mod = type(obj).__module__ or ""
    if mod.startswith("torch") and hasattr(obj, "cuda_stream"):
        dev = getattr(obj, "device", None)
        return StreamSpec(int(obj.cuda_stream) or LEGACY_DEFAULT_STREAM, getattr(dev, "index", None), obj)
    if mod.startswith("cupy") and hasattr(obj, "ptr"):
        idx = getattr(obj, "device_id", None)
        return StreamSpec(int(obj.ptr) or LEGACY_DEFAULT_STREAM, idx if isinstance(idx, int) and idx >= 0 else None, obj)
    raise _stream_error(obj, f"objects of type {mod}.{type(obj).__qualname__} are not understood")


def _stream_device_index(obj: Any) -> int | None:
    """The device index of a stream object: CuPy ``device_id``, torch ``device.index``, cuda.core ``device.device_id``."""
    idx = getattr(obj, "device_id", None)
    if idx is None:
        dev = getattr(obj, "device", None)
        idx = getattr(dev, "index", None)
        if idx is None:
            idx = getattr(dev, "device_id", None)
    return idx if isinstance(idx, int) and not isinstance(idx, bool) and idx >= 0 else None


class _HandleStream:
    """A raw ``cudaStream_t`` value presented through the ``__cuda_stream__`` protocol."""

    __slots__ = ("handle",)

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.handle)


def cupy_external_stream(handle: int, device_index: int | None = None) -> Any:
    """A CuPy stream object for a raw handle (``Stream.from_external`` on CuPy 14+, else ``ExternalStream``)."""
    cp = sys.modules["cupy"]
    from_external = getattr(cp.cuda.Stream, "from_external", None)
    if from_external is not None:
        return from_external(_HandleStream(handle))
    return cp.cuda.ExternalStream(handle, -1 if device_index is None else device_index)


_REQUESTED: ContextVar[StreamSpec | None] = ContextVar("arrayferry_stream", default=None)


def requested_stream() -> StreamSpec | None:
    """The stream the running conversion was asked to use, or ``None``."""
    return _REQUESTED.get()


@contextlib.contextmanager
def using_stream(spec: StreamSpec | None) -> Iterator[None]:
    """Run the body with ``spec`` as the requested stream (what ``convert(stream=...)`` does)."""
    token = _REQUESTED.set(spec)
    try:
        yield
    finally:
        _REQUESTED.reset(token)


def _stream_for(device_index: int | None) -> StreamSpec | None:
    """The requested stream if device work on ``device_index`` should run on it."""
    spec = _REQUESTED.get()
    if spec is None or spec.handle == NO_SYNC:
        return None
    if spec.device is not None and device_index is not None and spec.device != device_index:
        return None  # the stream belongs to another device: use that device's current stream
    return spec


def torch_stream_context(device_index: int | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.cuda.stream(S)`` for the requested stream on ``device_index``, else a no-op."""
    spec = _stream_for(device_index)
    if spec is None:
        return contextlib.nullcontext()
    torch = sys.modules["torch"]
    obj = spec.obj
    if obj is None or not isinstance(obj, torch.cuda.Stream):
        dev = device_index if device_index is not None else spec.device
        if spec.handle == LEGACY_DEFAULT_STREAM:
            obj = torch.cuda.default_stream(dev)
        else:
            obj = torch.cuda.ExternalStream(spec.handle, device=dev)
    return torch.cuda.stream(obj)  # type: ignore[no-any-return]


def cupy_stream_context(device_index: int | None) -> contextlib.AbstractContextManager[Any]:
    """``with cupy stream:`` for the requested stream on ``device_index``, else a no-op."""
    s = cupy_stream(device_index)
    return contextlib.nullcontext() if s is None else s


def cupy_stream(device_index: int | None) -> Any:
    """The CuPy stream object for the requested stream on ``device_index``, or ``None``."""
    spec = _stream_for(device_index)
    if spec is None:
        return None
    cp = sys.modules["cupy"]
    obj = spec.obj
    if obj is None or not isinstance(obj, cp.cuda.Stream):
        if spec.handle == LEGACY_DEFAULT_STREAM:
            obj = cp.cuda.Stream.null
        elif spec.handle == PER_THREAD_DEFAULT_STREAM:
            obj = cp.cuda.Stream.ptds
        else:
            obj = cupy_external_stream(spec.handle, device_index if device_index is not None else spec.device)
    return obj


class DLPackExport:
    """A DLPack producer wrapping ``obj``: the consumer's ``stream`` is replaced by a bound stream.

    With ``stream=None`` the consumer's own stream request is passed through. Either stream is only
    forwarded to producers on CUDA/ROCm devices: host producers always get ``stream=None``. Other keyword arguments (``max_version``, ``dl_device``, ``copy``) are
    forwarded when the consumer gives them.
    """

    __slots__ = ("obj", "stream")

    def __init__(self, obj: Any, stream: int | None = None) -> None:
        self.obj = obj
        self.stream = stream

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.obj.__dlpack_device__()  # type: ignore[no-any-return]

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None, copy: Any = None) -> Any:
        kw: dict[str, Any] = {}
        want = stream if self.stream is None else self.stream
        # host producers are never sent a stream: the DLPack standard says stream must be None for
        # CPU memory (torch asserts it, NumPy raises RuntimeError), whoever asked for one
        if want is not None and int(self.obj.__dlpack_device__()[0]) in _STREAMED_DEVICE_TYPES:
            kw["stream"] = want
        if max_version is not None:
            kw["max_version"] = max_version
        if dl_device is not None:
            kw["dl_device"] = dl_device
        if copy is not None:
            kw["copy"] = copy
        return self.obj.__dlpack__(**kw)

    def __repr__(self) -> str:
        return f"<DLPackExport of {type(self.obj).__qualname__} stream={self.stream!r}>"


def with_requested_stream(x: Any) -> Any:
    """``x`` wrapped so its DLPack export uses the requested stream (``x`` itself when none)."""
    spec = _REQUESTED.get()
    if spec is None:
        return x
    return DLPackExport(x, spec.handle)


class CAIView:
    """An object exposing a (possibly edited) ``__cuda_array_interface__`` and keeping ``owner`` alive."""

    __slots__ = ("owner", "__cuda_array_interface__")

    def __init__(self, owner: Any, interface: dict[str, Any]) -> None:
        self.owner = owner
        self.__cuda_array_interface__ = interface


def producer_stream(x: Any, interface: dict[str, Any]) -> int | None:
    """The stream the producer of ``x`` orders its work on, for CAI consumption.

    CAI v3 carries it in ``interface["stream"]`` (``None``: no synchronisation needed). torch
    exports CAI version 2 without the field, so for torch tensors the current stream of the
    tensor's device is used, which is where torch queued the work that produced it.
    """
    if "stream" in interface:
        s = interface["stream"]
        return None if s is None else int(s)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor) and x.is_cuda:
        return int(torch.cuda.current_stream(x.device).cuda_stream) or LEGACY_DEFAULT_STREAM
    return None


def is_cuda_error(exc: BaseException) -> bool:
    """True for the errors a framework raises when CUDA itself is missing or fails."""
    name = type(exc).__name__
    if name in ("CUDARuntimeError", "CUDADriverError", "CUDARuntimeException", "CUDADriverException"):
        return True
    if isinstance(exc, AssertionError) and "not compiled with cuda" in str(exc).lower():
        return True
    text = str(exc)
    return "CUDA driver" in text or "no CUDA GPUs are available" in text or "Unknown backend cuda" in text


def device_error_from(exc: BaseException, what: str, hint: str) -> DeviceError:
    """A :class:`DeviceError` describing ``exc`` (status code included when the error has one)."""
    status = getattr(exc, "status", None)
    detail = f"{type(exc).__name__}: {exc}" + (f" (status {status})" if status is not None else "")
    return DeviceError(format_message(what, [detail], hint=hint))


def _dlpack_device(x: Any) -> Device | None:
    try:
        return Device.from_dlpack(x.__dlpack_device__())
    except Exception:
        return None


def consume_dlpack(target: str, fn: Callable[[Any], Any], x: Any) -> Any:
    """Call ``fn(x)`` (a framework's ``from_dlpack``); a refusal of the device becomes ``DeviceError``.

    Consumers refuse memory on devices they cannot reach in their own words (NumPy
    ``RuntimeError: Unsupported device in DLTensor.``, a torch CPU build ``AssertionError: Torch
    not compiled with CUDA enabled``, JAX ``RuntimeError: Unknown backend cuda``); these are
    reported as one typed error naming the device.
    """
    try:
        return fn(x)
    except ArrayFerryError:
        raise
    except Exception as exc:
        dev = _dlpack_device(x)
        if dev is not None and not dev.is_host:
            raise DeviceError(
                format_message(
                    f"{target} cannot import DLPack memory on {dev}.",
                    [f"{target}'s from_dlpack raised {type(exc).__name__}: {exc}"],
                    hint=f"stage the data to the host first (arrayferry.convert(x, {target!r}) plans that), "
                    f"or install a CUDA-enabled {target} on a machine with a GPU",
                )
            ) from exc
        raise
