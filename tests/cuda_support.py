"""Support for the device tests: what CUDA this machine has (for skips with a reason), NumPy
DLPack capsules relabelled to claim a CUDA device, and CuPy arrays built without a driver.

Everything here uses real components (see ``../shared/NO_GPU.md``): the relabelled capsule is
NumPy's own capsule with ``dl_tensor.device`` rewritten in place (never a capsule built in
ctypes), and the driverless CuPy array is a real ``cupy.ndarray`` whose memory pointer names
host memory and a device index. Neither is ever read as data on the device.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any

from arrayferry._dlpack_abi import dl_tensor

__all__ = [
    "ClaimsDevice",
    "cupy_device_count",
    "cupy_without_driver",
    "driverless_cupy_array",
    "relabel_capsule",
    "torch_cuda_count",
    "torch_is_cpu_build",
]


@cache
def torch_cuda_count() -> int:
    """CUDA devices torch can use (0 without torch, on a CPU build, or without a driver)."""
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


@cache
def torch_is_cpu_build() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return not (getattr(torch.version, "cuda", None) or getattr(torch.version, "hip", None))


@cache
def cupy_device_count() -> int:
    """CUDA devices CuPy can use (0 when CuPy is missing or has no driver)."""
    if importlib.util.find_spec("cupy") is None:
        return 0
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def cupy_without_driver() -> bool:
    """CuPy imports but no device is usable: the "installed but no GPU" situation."""
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy  # noqa: F401
    except Exception:
        return False
    return cupy_device_count() == 0


def relabel_capsule(capsule: Any, device_type: int, device_id: int) -> Any:
    """Rewrite the device of a (versioned or legacy) DLPack capsule in place and return it."""
    tensor = dl_tensor(capsule)
    tensor.device.device_type = device_type
    tensor.device.device_id = device_id
    return capsule


class ClaimsDevice:
    """A DLPack producer: a NumPy array whose capsules claim device ``(device_type, device_id)``.

    Records the keyword arguments of every ``__dlpack__`` call in ``calls``, so tests can see
    which ``stream`` a consumer (or arrayferry) passed. Its memory is host memory: consumers must
    refuse it or only describe it, never read it as device data.
    """

    def __init__(self, array: Any, device: tuple[int, int] = (2, 1)) -> None:
        self.array = array
        self.device = device
        self.calls: list[dict[str, Any]] = []

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None, copy: Any = None) -> Any:
        self.calls.append({"stream": stream, "max_version": max_version, "dl_device": dl_device, "copy": copy})
        if max_version is not None and tuple(max_version) >= (1, 0):
            cap = self.array.__dlpack__(max_version=(1, 0))
        else:
            cap = self.array.__dlpack__()
        return relabel_capsule(cap, *self.device)


def driverless_cupy_array(host: Any, device_id: int) -> Any:
    """A real ``cupy.ndarray`` over ``host``'s memory, labelled as memory of CUDA device ``device_id``.

    Built without any CUDA call (``UnownedMemory`` with an explicit device id), so detection,
    description and planning can be tested on a machine without a driver. Never read its data.
    """
    import cupy
    from cupy.cuda.memory import MemoryPointer, UnownedMemory

    base = host if host.base is None else host.base
    mem = UnownedMemory(host.ctypes.data, host.nbytes, base, device_id=device_id)
    return cupy.ndarray(host.shape, dtype=host.dtype, memptr=MemoryPointer(mem, 0), strides=host.strides)
