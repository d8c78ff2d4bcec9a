"""The error taxonomy: one base class, each subclass also the builtin a caller would catch.

Messages follow one layout (see ``format_message``): what was asked, what was tried, and a
last line that starts with ``Hint:``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ArgumentError",
    "ArrayFerryError",
    "CopyRequiredError",
    "DeviceError",
    "LossyConversionError",
    "PluginError",
    "UnknownFrameworkError",
    "UnsupportedArrayError",
    "UnsupportedDTypeError",
    "LossyConversionWarning",
    "MixedFrameworksError",
    "format_message",
]


class ArrayFerryError(Exception):
    """Base class of every error arrayferry raises on purpose."""


class ArgumentError(ArrayFerryError, TypeError):
    """An argument of an arrayferry call has the wrong type or value (``copy="yes"``, ...)."""


class CopyRequiredError(ArrayFerryError, BufferError):
    """``copy=False`` was asked for, but every route needs a copy."""


class UnsupportedDTypeError(ArrayFerryError, TypeError):
    """The source or target framework cannot hold this dtype."""


class UnsupportedArrayError(ArrayFerryError, TypeError):
    """The array's kind cannot be converted (sparse layout, masked array, ...)."""


class UnknownFrameworkError(ArrayFerryError, TypeError):
    """The object or the target name belongs to no registered framework."""


class DeviceError(ArrayFerryError, ValueError):
    """The device asked for is unknown, unavailable, or not reachable by the target."""


class LossyConversionError(ArrayFerryError, ValueError):
    """The conversion would change values (narrowing, NaN to integer, dropping imaginary parts)."""


class LossyConversionWarning(UserWarning):
    """A conversion narrowed floats because the target cannot hold the source dtype."""


class MixedFrameworksError(ArrayFerryError, TypeError):
    """Arguments of a function decorated with ``accepts(mixed="error")`` come from several frameworks."""


class PluginError(ArrayFerryError, RuntimeError):
    """A plugin failed to load or raised inside a hook."""


def format_message(asked: str, tried: Iterable[str] = (), hint: str | None = None) -> str:
    """Build a message: first line what was asked, then one line per thing tried, then the hint."""
    lines = [asked]
    lines.extend(f"  - {t}" for t in tried)
    if hint:
        lines.append(f"Hint: {hint}")
    return "\n".join(lines)
