"""``frameworks()``: every registered framework, installed or not, with its version and plugin.

Apart from :mod:`arrayferry._api` so that a first conversion does not build what only listings use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ._registry import registry

__all__ = ["FrameworkInfo", "frameworks"]


@dataclass(frozen=True)
class FrameworkInfo:
    """What ``frameworks()`` reports for one framework."""

    name: str
    module: str
    installed: bool
    imported: bool
    version: str | None
    plugin: str
    devices: tuple[str, ...] | None

    def __str__(self) -> str:
        state = (f"{self.version}" if self.installed else "not installed")
        return f"{self.name} {state} (plugin {self.plugin})"


def frameworks(*, probe_devices: bool = False) -> list[FrameworkInfo]:
    """Every registered framework: installed or not, version, providing plugin.

    With ``probe_devices=True`` the installed frameworks are imported and asked which devices
    they see (this may take seconds; never done implicitly).
    """
    reg = registry()
    out = []
    for name, a in sorted(reg.adapters.items()):
        inst = a.is_installed()
        devs: tuple[str, ...] | None = None
        if probe_devices and inst:
            try:
                a.namespace()
                devs = tuple(str(d) for d in a.devices())
            except Exception as exc:  # a broken install is reported, not raised
                devs = (f"error: {type(exc).__name__}: {exc}",)
        out.append(FrameworkInfo(name, a.module, inst, a.module in sys.modules,
                                 a.version() if inst else None, reg.provider.get(name, "?"), devs))
    return out
