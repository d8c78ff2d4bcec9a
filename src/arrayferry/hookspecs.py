"""Hook specifications: the whole plugin API that arrayferry calls.

Every hook is prefixed ``arrayferry_``. A plugin is any object or module with functions marked
by ``arrayferry.hookimpl``; it joins through the ``arrayferry.plugins`` entry-point group or by
``arrayferry.register_plugin(obj)``. The built-in NumPy, PyTorch and CuPy adapters are plugins
registered the same way.

Hooks are called when the registry loads and when a plan is first built for a new kind of
array, never on the conversion hot path (plans are cached). Implementations may accept fewer
arguments than the spec lists, so specs can grow without breaking plugins.

Phases:

* **Registration**: :func:`arrayferry_adapters` (what frameworks a plugin brings).
* **Parsing user input**: :func:`arrayferry_parse_device`, :func:`arrayferry_parse_dtype`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._adapter import Adapter
    from ._device import Device

hookspec = pluggy.HookspecMarker("arrayferry")


@hookspec
def arrayferry_adapters() -> list[Adapter]:
    """Return the framework adapters this plugin provides.

    Called once when the registry loads (and again after ``register_plugin``). Creating an
    adapter must not import its framework: detection and every capability query happen only
    once the framework's module is already in ``sys.modules`` or a conversion needs it.

    :returns: a list of :class:`arrayferry.Adapter` instances (may be empty). Two adapters with
        the same ``name`` are an error reported as a :class:`arrayferry.PluginError`.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def arrayferry_parse_device(obj: Any) -> Device | None:
    """Turn a framework's own device object into an :class:`arrayferry.Device`.

    Stops at the first non-None result. Strings and ``Device`` instances never reach this hook.
    Return ``None`` for objects you do not recognise.

    :param obj: what the user passed as ``device=``.
    :returns: a ``Device`` or ``None``.

    .. versionadded:: 0.1
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def arrayferry_parse_dtype(obj: Any) -> str | None:
    """Turn a framework's own dtype object into a canonical dtype name (``"float32"``, ...).

    Stops at the first non-None result. Strings, Python types, NumPy dtypes and torch dtypes
    are understood by the core and never reach this hook. Return ``None`` when not recognised.

    :param obj: what the user passed as ``dtype=``.
    :returns: a canonical name from ``arrayferry.CANONICAL_DTYPES`` or ``None``.

    .. versionadded:: 0.1
    """
    raise NotImplementedError
