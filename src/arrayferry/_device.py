"""``Device``: a framework-neutral device value (``cpu``, ``cuda:1``, ``cpu:2`` for JAX host devices)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import DeviceError, format_message

__all__ = ["Device", "DLPACK_DEVICE_TYPES", "set_framework_parser"]

# DLPack's DLDeviceType codes (dlpack.h) and the names arrayferry uses for them.
DLPACK_DEVICE_TYPES: dict[int, str] = {
    1: "cpu",
    2: "cuda",
    3: "cuda_host",
    4: "opencl",
    7: "vulkan",
    8: "metal",
    9: "vpi",
    10: "rocm",
    11: "rocm_host",
    13: "cuda_managed",
    14: "oneapi",
}
_DLPACK_CODES = {v: k for k, v in DLPACK_DEVICE_TYPES.items()}

# How a framework's own device object (``torch.device``, ``cupy.cuda.Device``, ...) becomes a
# Device. This value type sits below the registry and never imports it: the package wires the
# registry's ``parse_device`` (which asks each adapter's ``parse_device``) in here when it loads.
_framework_parser: Callable[[Any], Device | None] | None = None


def set_framework_parser(fn: Callable[[Any], Device | None] | None) -> None:
    """Install how :meth:`Device.parse` reads a framework's device object (``None``: none is read).

    ``arrayferry/__init__.py`` installs the registry's adapter-by-adapter parser; tests may swap it.
    """
    global _framework_parser
    _framework_parser = fn


class Device:
    """A device: a type (``"cpu"``, ``"cuda"``, ...) and an optional index.

    ``str(Device("cuda", 1))`` is ``"cuda:1"``; ``Device("cpu", 0)`` equals ``Device("cpu")``
    and prints as ``"cpu"``. Instances are immutable and hashable.
    """

    __slots__ = ("_type", "_index")
    _type: str
    _index: int | None

    def __init__(self, type: str, index: int | None = None) -> None:
        if not isinstance(type, str) or not type:
            raise DeviceError(format_message(
                f"Device type must be a non-empty string, got {type!r}.",
                hint='write Device("cpu"), Device("cuda", 1), or parse a string with Device.parse("cuda:1")'))
        if index is not None:
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise DeviceError(format_message(
                    f"Device index must be a non-negative int, got {index!r}.",
                    hint=f"use an index 0, 1, ..., or None for the default {type} device (Device({type!r}))"))
        if type == "cpu" and index == 0:
            index = None
        object.__setattr__(self, "_type", type)
        object.__setattr__(self, "_index", index)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Device is immutable")

    @property
    def type(self) -> str:
        """The device type: ``"cpu"``, ``"cuda"``, ``"rocm"``, ..."""
        return self._type

    @property
    def index(self) -> int | None:
        """The device index, or ``None`` for the default device of that type."""
        return self._index

    @property
    def is_host(self) -> bool:
        """True when the memory is readable by the CPU without a transfer."""
        return self._type == "cpu"

    @property
    def dlpack(self) -> tuple[int, int]:
        """The ``(device_type, device_id)`` pair DLPack uses."""
        code = _DLPACK_CODES.get(self._type)
        if code is None:
            raise DeviceError(format_message(
                f"Device {self} has no DLPack device code.",
                [f"DLPack device types: {', '.join(sorted(_DLPACK_CODES))}"],
                hint="only devices DLPack names can travel through DLPack; convert through the host instead"))
        return code, self._index or 0

    @classmethod
    def from_dlpack(cls, pair: tuple[int, int]) -> Device:
        """Build a device from ``__dlpack_device__()``'s ``(device_type, device_id)``."""
        try:
            code, idx = int(pair[0]), int(pair[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise DeviceError(format_message(
                f"A DLPack device is a pair of integers (device_type, device_id); got {pair!r}.",
                hint="pass what __dlpack_device__() returns, e.g. Device.from_dlpack((1, 0)) for the CPU")) from exc
        name = DLPACK_DEVICE_TYPES.get(code)
        if name is None:
            raise DeviceError(format_message(
                f"Unknown DLPack device type {code} (device id {idx}).",
                [f"known DLPack device types: {', '.join(f'{k} ({v})' for k, v in DLPACK_DEVICE_TYPES.items())}"],
                hint="pass the pair __dlpack_device__() returns, e.g. Device.from_dlpack((2, 0)) for cuda:0"))
        return cls(name, idx if name != "cpu" else None)

    @classmethod
    def parse(cls, obj: Any) -> Device:
        """Parse ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``Device`` or a framework's device object."""
        if isinstance(obj, Device):
            return obj
        if isinstance(obj, str):
            text = obj.strip().lower()
            kind, sep, idx = text.partition(":")
            if not kind or (sep and not idx.isdigit()):
                raise DeviceError(
                    format_message(
                        f"Cannot parse device string {obj!r}.",
                        hint='write "cpu", "cuda", "cuda:1" or pass a Device / framework device object',
                    )
                )
            if kind == "gpu":
                kind = "cuda"
            return cls(kind, int(idx) if sep else None)
        found = _framework_parser(obj) if _framework_parser is not None else None
        if found is not None:
            return found
        raise DeviceError(
            format_message(
                f"Cannot interpret {obj!r} (type {type(obj).__module__}.{type(obj).__qualname__}) as a device.",
                ["strings, arrayferry.Device and the device objects of registered frameworks are understood"],
                hint='pass "cpu", "cuda:N" or arrayferry.Device(type, index)',
            )
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Device):
            return self._type == other._type and self._index == other._index
        if isinstance(other, str):
            try:
                return self == Device.parse(other)
            except DeviceError:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._type, self._index))

    def __str__(self) -> str:
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self) -> str:
        return f"Device({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Device, (self._type, self._index))
