"""arrayferry: move arrays between frameworks by the cheapest correct route, and say which.

>>> import arrayferry as af
>>> t = af.convert(np_array, "torch")          # doctest: +SKIP
>>> print(af.plan(np_array[::-1], "torch").explain())  # doctest: +SKIP

Importing this package imports no array framework (and not pluggy): the registry loads on first
use, and detection reads ``sys.modules``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _device as _device_module
from . import _dtypes as _dtypes_module
from ._errors import (
    ArgumentError,
    ArrayFerryError,
    CopyRequiredError,
    DeviceError,
    LossyConversionError,
    LossyConversionWarning,
    MixedFrameworksError,
    PluginError,
    UnknownFrameworkError,
    UnsupportedArrayError,
    UnsupportedDTypeError,
)

# Everything else loads on first use (PEP 562), so ``import arrayferry`` costs a few
# milliseconds: the planner, registry, tree and decorator modules are imported the first time
# one of their names is touched, then cached in this module's namespace.
_LAZY: dict[str, str] = {
    "Adapter": "._adapter",
    "ArrayInfo": "._adapter",
    "Step": "._adapter",
    "identity": "._adapter",
    "FrameworkInfo": "._frameworks",
    "clear_cache": "._api",
    "convert": "._api",
    "converter": "._api",
    "device_of": "._api",
    "export_dlpack": "._api",
    "framework_of": "._api",
    "frameworks": "._frameworks",
    "plan": "._api",
    "accepts": "._decorator",
    "namespace_for": "._decorator",
    "Device": "._device",
    "Plan": "._plan",
    "shares_memory": "._shares",
    "LeafPlan": "._tree",
    "TreePlan": "._tree",
    "convert_tree": "._tree",
    "plan_tree": "._tree",
    "register_container": "._tree",
    "unregister_container": "._tree",
    "hookimpl": "._markers",
}

# Names whose runtime object is a faster twin of the documented function (same signature and
# docstring, through ``__wrapped__``): ``convert``'s hot path, compiled where the extension is
# built, else in Python without keyword-only defaults (``_api._exported_convert``).
_RUNTIME: dict[str, str] = {"convert": "_convert_export"}

if TYPE_CHECKING:
    from ._adapter import Adapter, ArrayInfo, Step, identity
    from ._api import (
        clear_cache,
        convert,
        converter,
        device_of,
        export_dlpack,
        framework_of,
        plan,
    )
    from ._decorator import accepts, namespace_for
    from ._device import Device
    from ._dtypes import CANONICAL as CANONICAL_DTYPES
    from ._frameworks import FrameworkInfo, frameworks
    from ._markers import hookimpl
    from ._plan import Plan
    from ._shares import shares_memory
    from ._tree import LeafPlan, TreePlan, convert_tree, plan_tree, register_container, unregister_container

__version__ = "0.1.0"
"""The installed arrayferry's version (also ``arrayferry --version``)."""

__all__ = [
    "Adapter",
    "ArgumentError",
    "ArrayFerryError",
    "ArrayInfo",
    "CANONICAL_DTYPES",
    "CopyRequiredError",
    "Device",
    "DeviceError",
    "FrameworkInfo",
    "LossyConversionError",
    "LossyConversionWarning",
    "Plan",
    "PluginError",
    "Step",
    "identity",
    "UnknownFrameworkError",
    "UnsupportedArrayError",
    "UnsupportedDTypeError",
    "__version__",
    "clear_cache",
    "convert",
    "converter",
    "export_dlpack",
    "device_of",
    "framework_of",
    "frameworks",
    "hookimpl",
    "plan",
    "register_plugin",
    "unregister_plugin",
    "broken_plugins",
    "convert_tree",
    "plan_tree",
    "TreePlan",
    "LeafPlan",
    "register_container",
    "unregister_container",
    "accepts",
    "MixedFrameworksError",
    "namespace_for",
    "shares_memory",
]


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object or module by hand (no entry point needed); returns its name."""
    from ._registry import registry

    return registry().register(plugin, name)


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered under ``name``."""
    from ._registry import registry

    registry().unregister(name)


def broken_plugins() -> list[tuple[str, str]]:
    """Plugins that failed to load or whose hook raised, as ``(name, error)`` pairs."""
    from ._registry import registry

    return [(b.name, b.error) for b in registry().broken]


def _framework_device(obj: Any) -> Device | None:
    from ._registry import registry

    return registry().parse_device(obj)


def _framework_dtype(obj: Any) -> str | None:
    from ._registry import registry

    return registry().parse_dtype(obj)


# The value types (Device, the dtype names) sit below the registry and never import it; the
# package, at the top of the layers (docs/architecture.md), wires the registry's parsers into them.
_device_module.set_framework_parser(_framework_device)
_dtypes_module.set_framework_parser(_framework_dtype)


def __getattr__(name: str) -> Any:
    import importlib

    modname = _LAZY.get(name)
    if modname is not None:
        value = getattr(importlib.import_module(modname, __name__), _RUNTIME.get(name, name))
        globals()[name] = value  # later lookups are plain attribute reads
        return value
    if name == "CANONICAL_DTYPES":
        from ._dtypes import CANONICAL

        globals()[name] = CANONICAL
        return CANONICAL
    if name == "hookspecs":
        return importlib.import_module("arrayferry.hookspecs")
    raise AttributeError(f"module 'arrayferry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
