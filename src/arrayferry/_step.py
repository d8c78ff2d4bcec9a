"""``Step``: one step of a plan, a value type shared by adapters, host operations and the planner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Step", "identity"]


def identity(x: Any) -> Any:
    """Return ``x``; a step whose function is this one costs nothing and is dropped from plans."""
    return x


@dataclass(frozen=True)
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

    def __str__(self) -> str:
        return f"{self.name}: {self.description}"
