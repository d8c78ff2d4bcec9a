"""``BrokenPlugin``: a plugin that could not be loaded or whose hook raised (``registry().broken``).

A module of its own so that the registry builds the class only when a plugin fails.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BrokenPlugin"]


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded or whose hook raised."""

    name: str
    error: str
    #: True when arrayferry refused the plugin's adapter (``error`` is then the whole message).
    refused: bool = False
