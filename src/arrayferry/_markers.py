"""The ``hookimpl`` marker plugins use (imports pluggy, so only loaded by plugins)."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("arrayferry")
"""Marks a plugin's functions as implementations of arrayferry's hooks (``@arrayferry.hookimpl``).

A pluggy ``HookimplMarker`` for the project name ``"arrayferry"``; the hooks are listed in the
hook reference. Importing it imports pluggy, so only plugins touch it."""

__all__ = ["hookimpl"]
