"""``Step``: one step of a plan, a value type shared by adapters, host operations and the planner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Step", "identity"]


def identity(x: Any) -> Any:
    """Return ``x``; a step whose function is this one costs nothing and is dropped from plans."""
    return x


# The value classes on the first conversion's path (``Step``, ``ArrayInfo``, ``Template``) are
# frozen dataclasses whose ``__init__``, ``__repr__``, ``__eq__`` and ``__hash__`` are written
# out: ``@dataclass`` compiles every method it generates when the class is made, about a
# millisecond of the first conversion for the three. They are the methods ``@dataclass(frozen=True)``
# generates (``tests/test_value_classes.py`` compares them, field by field, with generated ones).
@dataclass(frozen=True, init=False, repr=False, eq=False)
class Step:
    """One step of a plan: a short ``name``, a human ``description``, whether it ``copies``.

    ``fn`` maps the native object coming in to the one going out. ``transfer`` marks copies
    that cross devices. ``dtype`` is the dtype of the step's output when the step changes it (a
    cast); ``plan.nbytes_moved`` counts each copying step at the itemsize of its output.
    """

    name: str
    description: str
    fn: Callable[[Any], Any] = field(repr=False, compare=False)
    copies: bool = False
    transfer: bool = False
    dtype: str | None = None

    def __init__(self, name: str, description: str, fn: Callable[[Any], Any], copies: bool = False,
                 transfer: bool = False, dtype: str | None = None) -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "description", description)
        _set(self, "fn", fn)
        _set(self, "copies", copies)
        _set(self, "transfer", transfer)
        _set(self, "dtype", dtype)

    def __repr__(self) -> str:
        return (f"{self.__class__.__qualname__}(name={self.name!r}, description={self.description!r}, "
                f"copies={self.copies!r}, transfer={self.transfer!r}, dtype={self.dtype!r})")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return ((self.name, self.description, self.copies, self.transfer, self.dtype)
                    == (other.name, other.description, other.copies, other.transfer, other.dtype))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.name, self.description, self.copies, self.transfer, self.dtype))

    def __str__(self) -> str:
        return f"{self.name}: {self.description}"
