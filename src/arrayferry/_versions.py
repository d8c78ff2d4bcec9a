"""Minimum framework versions: the run-time half of the supported-versions contract.

The first time an adapter is used (the planner calls :func:`check_min_version` for both adapters
of every plan it builds), an installed framework older than ``Adapter.min_version`` is refused
with :class:`~arrayferry.UnknownFrameworkError` and a hint to upgrade. Kept apart from
:mod:`arrayferry._capabilities` (which re-exports these names) so that the first plan loads only
this, not the DLPack probes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import UnknownFrameworkError, format_message

if TYPE_CHECKING:
    from ._adapter import Adapter

__all__ = ["check_min_version", "parse_version"]


def parse_version(v: str) -> tuple[int, ...]:
    """The release part of a version string: ``"2.13.0+cpu"`` -> ``(2, 13, 0)``; pre-releases
    (``"2.0.0rc1"``, ``".dev"``) compare like their release.

    What the pattern ``^\\s*v?(\\d+(?:\\.\\d+)*)`` matches, read by hand: compiling a regular
    expression would cost the first plan more than parsing every version it checks.
    """
    s = v.lstrip()
    if s[:1] == "v":
        s = s[1:]
    parts: list[int] = []
    i, n = 0, len(s)
    while True:
        j = i
        while j < n and s[j].isdecimal():
            j += 1
        if j == i:
            break
        parts.append(int(s[i:j]))
        if j + 1 < n and s[j] == "." and s[j + 1].isdecimal():
            i = j + 1
        else:
            break
    if not parts:
        raise ValueError(f"not a version: {v!r}")
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


_CHECKED: dict[tuple[str, str | None, str], str | None] = {}


def check_min_version(adapter: Adapter) -> None:
    """Raise :class:`UnknownFrameworkError` when ``adapter``'s framework is older than ``min_version``.

    The planner calls it for both adapters of every plan it builds (not on the cached hot path);
    the answer is remembered per adapter object and per (framework, version, minimum). Only
    installed versions are checked (a missing framework fails later with its own message).
    """
    try:
        msg = _BY_ADAPTER[adapter]  # the planner's fast path: no version lookup
    except KeyError:
        msg = _BY_ADAPTER[adapter] = _min_version_problem(adapter)
    if msg is not None:
        raise UnknownFrameworkError(msg)


_BY_ADAPTER: dict[Adapter, str | None] = {}


def _min_version_problem(adapter: Adapter) -> str | None:
    minimum = adapter.min_version
    if not minimum:
        return None
    installed = adapter.version()
    key = (adapter.name, installed, minimum)
    if key in _CHECKED:
        msg = _CHECKED[key]
    else:
        msg = None
        if installed is not None:
            try:
                too_old = parse_version(installed) < parse_version(minimum)
            except ValueError:
                too_old = False  # an unparseable version is not refused
            if too_old:
                msg = format_message(
                    f"{adapter.name} {installed} is installed, but arrayferry's {adapter.name} adapter needs "
                    f"{adapter.name} >= {minimum}.",
                    [f"version read from the {adapter.distribution or adapter.module!r} distribution; "
                     f"the oldest supported versions are tested in the nox matrix (docs/matrix.md)"],
                    hint=f"upgrade: {adapter.install_command(upgrade=True)}",
                )
        _CHECKED[key] = msg
    return msg
