"""The ``hookimpl`` marker plugins use (imports pluggy, so only loaded by plugins)."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("arrayferry")

__all__ = ["hookimpl"]
