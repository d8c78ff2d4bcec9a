"""Hook specifications: the whole plugin API that arrayferry calls.

Every hook is prefixed ``arrayferry_``. A plugin is any object or module with functions marked
by ``arrayferry.hookimpl``; it joins through the ``arrayferry.plugins`` entry-point group or by
``arrayferry.register_plugin(obj)``. The built-in NumPy, PyTorch and CuPy adapters are plugins
registered the same way.

The hook is called when the plugin loads (and after ``register_plugin``), never on the
conversion hot path. The built-ins of the frameworks already imported load with the registry;
entry-point plugins, and built-ins whose framework is not imported yet, load the first time
arrayferry needs them: an array type, a framework name, a device or dtype object the loaded
adapters do not know, or a listing (``frameworks()``, ``broken_plugins()``, ``register_plugin``). Implementations may accept fewer
arguments than the spec lists, so specs can grow without breaking plugins.

There is one hook, :func:`arrayferry_adapters` (what frameworks a plugin brings); everything else
a plugin says, it says through its adapters' attributes and methods (one extension mechanism per
job). A framework's own device and dtype objects are read by ``Adapter.parse_device`` and
``Adapter.parse_dtype``; the ``arrayferry_parse_device`` / ``arrayferry_parse_dtype`` hooks are
gone, and a plugin that still implements them is refused with a ``PluginError`` saying so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._adapter import Adapter

hookspec = pluggy.HookspecMarker("arrayferry")


@hookspec
def arrayferry_adapters() -> list[Adapter]:
    """Return the framework adapters this plugin provides.

    Called once when the plugin loads (and again after ``register_plugin``). Creating an
    adapter must not import its framework: detection and every capability query happen only
    once the framework's module is already in ``sys.modules`` or a conversion needs it.

    :returns: a list of :class:`arrayferry.Adapter` instances (may be empty). Two adapters with
        the same ``name`` are an error reported as a :class:`arrayferry.PluginError`.

    .. versionadded:: 0.1
    """
    raise NotImplementedError
