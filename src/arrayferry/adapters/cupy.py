"""The CuPy adapter (placeholder until the devices issue lands)."""

from __future__ import annotations

from .._adapter import Adapter
from .._markers import hookimpl


@hookimpl
def arrayferry_adapters() -> list[Adapter]:
    return []
