"""The plugin registry: a pluggy ``PluginManager`` plus per-type detection caches.

Loaded lazily on first use, so ``import arrayferry`` imports neither pluggy nor any framework.
Built-in adapters are registered exactly like third-party plugins; third-party plugins come
from the ``arrayferry.plugins`` entry-point group unless ``ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD``
is set. The built-ins of the frameworks already imported register with the registry; the
entry-point plugins and the other built-ins register on first need
(:meth:`Registry.load_plugins`): the first time a question the loaded adapters cannot answer is
asked, or a listing. So a first conversion between imported frameworks neither scans the
installed distributions nor imports a plugin, and every answer is still the one a registry that
loaded everything would give. A plugin that fails to import or raises inside a hook is recorded
as broken (listed by ``arrayferry info`` and ``frameworks()``) and the others keep working.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._errors import PluginError, UnknownFrameworkError, format_message

if TYPE_CHECKING:
    import pluggy

    from ._adapter import Adapter
    from ._broken import BrokenPlugin
    from ._device import Device

__all__ = ["ENTRY_POINT_GROUP", "DISABLE_AUTOLOAD_ENV", "BrokenPlugin", "Registry", "registry"]

ENTRY_POINT_GROUP = "arrayferry.plugins"
DISABLE_AUTOLOAD_ENV = "ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD"
#: The built-in plugins, in registration order; each is named after its framework's module.
BUILTIN_PLUGINS = ("arrayferry.adapters.numpy", "arrayferry.adapters.torch", "arrayferry.adapters.cupy")
#: The source-only adapters for objects no registered adapter owns (``__dlpack__``, buffers, lists ...).
PROTOCOL_MODULE = "arrayferry.adapters.protocols"


class Registry:
    """Holds plugins and adapters; answers detection and name lookups (cached)."""

    def __init__(self, *, autoload: bool | None = None, builtins: bool = True) -> None:
        from . import hookspecs

        self._pm: pluggy.PluginManager = _manager_class()("arrayferry")
        self._pm.add_hookspecs(hookspecs)
        self._broken: list[BrokenPlugin] = []
        self._adapters: dict[str, Adapter] = {}
        self._provider: dict[str, str] = {}
        self._name_map: dict[Any, Adapter] = {}
        self._namespaces: list[tuple[Any, Adapter]] = []  # (namespace, its generic target), by identity
        self._made: dict[str, list[Adapter]] = {}  # each plugin's adapters, as its hook returned them
        self.type_cache: dict[type, Adapter | None] = {}
        self.protocol_cache: dict[type, Adapter | None] = {}
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        # The built-ins register now while their frameworks are imported (only those can own an
        # array yet); from the first whose framework is not, they register on first need, before
        # the entry-point plugins, so the order is always the same (see load_plugins).
        self._deferred: list[str] = []
        for modname in BUILTIN_PLUGINS if builtins else ():
            if self._deferred or modname.rsplit(".", 1)[-1] not in sys.modules:
                self._deferred.append(modname)
            else:
                self._register_module(modname, modname.rsplit(".", 1)[-1])
        if autoload is None:
            autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
        self._autoload = autoload
        #: Plugins not registered yet (deferred built-ins, entry points): they load on first need.
        self._pending = bool(self._deferred) or autoload
        self._loading = False
        self._collect()

    # -- what the plugins registered (reading one loads the entry-point plugins first) ----------
    @property
    def pm(self) -> pluggy.PluginManager:
        """The pluggy ``PluginManager`` holding every plugin (the entry-point ones loaded)."""
        self.load_plugins()
        return self._pm

    @property
    def adapters(self) -> dict[str, Adapter]:
        """Every registered adapter by framework name, in registration order (built-ins first)."""
        self.load_plugins()
        return self._adapters

    @property
    def provider(self) -> dict[str, str]:
        """The plugin name that provided each framework."""
        self.load_plugins()
        return self._provider

    @property
    def broken(self) -> list[BrokenPlugin]:
        """Plugins that failed to load, or whose hook raised or was refused."""
        self.load_plugins()
        return self._broken

    @broken.setter
    def broken(self, value: list[BrokenPlugin]) -> None:
        self._broken = value

    @property
    def _names(self) -> dict[Any, Adapter]:
        self.load_plugins()
        return self._name_map

    # -- loading -------------------------------------------------------------------------------
    def _register_module(self, modname: str, name: str) -> bool:
        """Import and register a plugin module; whether it was registered (else it is recorded broken)."""
        import importlib

        try:
            mod = importlib.import_module(modname)
            self._add(mod, name)
            return True
        except PluginError as exc:
            self._broken.append(_broken_record(name, str(exc)))
        except Exception as exc:  # a broken plugin must not break the others
            self._broken.append(_broken_record(name, f"{type(exc).__name__}: {exc}"))
        return False

    def load_plugins(self) -> None:
        """Register the plugins not registered yet: the built-ins whose framework was not imported
        when the registry was made, then the entry-point plugins (unless autoload is off).

        They load on first need, not when the registry is made: the adapters of the imported
        frameworks answer for their own types and names without them, so a first conversion
        between those neither scans the installed distributions nor imports any plugin.
        Whatever the loaded adapters cannot answer (a type none owns, a name none has, a device
        or dtype object none parses) and every listing (:attr:`adapters`, :attr:`broken`,
        ``frameworks()``, ``register_plugin`` ...) loads them first, in the order an eager
        registry registers them, so every answer is the one it would give.
        """
        if not self._pending:
            return
        with self._lock:  # another thread waits here until the plugins are in
            if not self._pending or self._loading:  # done, or this thread is loading them (a plugin
                return  # that reads the registry while it imports)
            self._loading = True
            try:
                added = False
                for modname in self._deferred:
                    added = self._register_module(modname, modname.rsplit(".", 1)[-1]) or added
                self._deferred = []
                if self._autoload:
                    added = self._load_entry_points() or added
                if added:
                    self._collect(incremental=True)
            finally:
                self._loading = False
                self._pending = False

    def _load_entry_points(self) -> bool:
        """Register every entry-point plugin; whether any was registered."""
        from importlib.metadata import entry_points

        added = False
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if self._pm.has_plugin(ep.name) or self._pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                self._add(plugin, ep.name)
                added = True
            except PluginError as exc:
                self._broken.append(_broken_record(ep.name, str(exc)))
            except Exception as exc:
                self._broken.append(_broken_record(ep.name, f"{type(exc).__name__}: {exc}"))
        return added

    def _add(self, plugin: Any, name: str | None) -> str:
        """Register ``plugin`` with pluggy and validate its hooks; raise a several-line ``PluginError``.

        pluggy checks argument names at registration but accepts unknown hook names silently
        (``arrayferry_adaptors`` would just never be called), so those are checked here too.
        """
        import inspect

        import pluggy

        try:
            pname = self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            if self._pm.is_registered(plugin):  # pluggy < 1.5 leaves it half registered
                self._pm.unregister(plugin)
            text = str(exc)
            hook = text.split("for hook '", 1)[1].split("'", 1)[0] if "for hook '" in text else "?"
            sig = text.split("hookimpl definition: ", 1)[1].split("\n", 1)[0] if "hookimpl definition: " in text else "?"
            rule = text.splitlines()[-1]
            raise PluginError(_validation_message(name or repr(plugin), plugin, hook, sig, rule)) from exc
        except ValueError as exc:  # name or object already registered
            raise PluginError(
                format_message(
                    f"Cannot register plugin {name or plugin!r}.",
                    [f"pluggy refused it: {exc}"],
                    hint="unregister the plugin of that name first (arrayferry.unregister_plugin) or pick another name",
                )
            ) from exc
        assert pname is not None
        # the hooks pluggy found on the plugin (it walked the plugin's attributes once already:
        # walking them again costs milliseconds on the first conversion); one without a spec is
        # a name no hookspec declares
        for caller in self._pm.get_hookcallers(plugin) or ():
            if caller.spec is not None:
                continue
            hook = caller.name
            fn = next((i.function for i in caller.get_hookimpls() if i.plugin is plugin), None)
            attr = getattr(fn, "__name__", hook)
            try:
                sig = f"{attr}({', '.join(inspect.signature(fn).parameters)})" if fn is not None else attr
            except (TypeError, ValueError):
                sig = attr
            self._pm.unregister(name=pname)
            specs = {n for n in dir(self._pm.hook) if n.startswith("arrayferry_")}
            known = ", ".join(sorted(n for n in specs if self._pm.hook.__dict__[n].spec is not None))
            rule = _REMOVED_HOOKS.get(hook) or f"no hook named {hook!r} is specified (known hooks: {known})"
            raise PluginError(_validation_message(pname, plugin, hook, sig, rule))
        return pname

    def _collect(self, incremental: bool = False) -> None:
        """Ask every plugin for its adapters, one plugin at a time so one failure stays local.

        ``incremental``: only plugins not asked yet are asked (the entry-point plugins, loaded
        after the built-ins); the others keep the adapters they gave, the very same objects.
        """
        from ._adapter import Adapter, check_protocol

        adapters: dict[str, Adapter] = {}
        provider: dict[str, str] = {}
        made: dict[str, list[Adapter]] = {}
        for impl in self._pm.hook.arrayferry_adapters.get_hookimpls():
            pname = self._pm.get_name(impl.plugin) or repr(impl.plugin)
            if any(b.name == pname for b in self._broken):
                continue
            try:
                got: Any = self._made[pname] if incremental and pname in self._made else impl.function()
                made[pname] = mine = []
                for a in got or ():
                    if not isinstance(a, Adapter):
                        raise TypeError(f"arrayferry_adapters returned {a!r}, not an arrayferry.Adapter")
                    if not (incremental and pname in self._made):  # checked when it was made
                        check_protocol(a, pname)
                    if a.name in adapters:
                        raise TypeError(
                            f"adapter name {a.name!r} is already provided by plugin {provider[a.name]!r}"
                        )
                    adapters[a.name] = a
                    provider[a.name] = pname
                    mine.append(a)
            except PluginError as exc:  # already says which plugin and what is wrong, on several lines
                self._broken.append(_broken_record(pname, str(exc), refused=True))
                made.pop(pname, None)
                for k in [k for k, v in provider.items() if v == pname]:
                    del adapters[k], provider[k]
            except Exception as exc:
                self._broken.append(_broken_record(pname, f"{type(exc).__name__} in arrayferry_adapters: {exc}"))
                made.pop(pname, None)
                for k in [k for k, v in provider.items() if v == pname]:
                    del adapters[k], provider[k]
        self._adapters = adapters
        self._provider = provider
        self._made = made
        names: dict[Any, Adapter] = {}
        # an adapter registered earlier keeps its names: a later one (an entry-point plugin's,
        # loaded on first need) cannot take over a built-in's name, module or alias
        for a in adapters.values():
            names.setdefault(a.name, a)
            names.setdefault(a.module, a)
            for al in a.aliases:
                names.setdefault(al, a)
        self._name_map = names
        self.type_cache.clear()
        self.protocol_cache.clear()
        self.notify()

    def on_change(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` whenever what plans are made from changes: the set of adapters, or a
        capability answer overridden (the public API clears its plan cache)."""
        self._listeners.append(fn)

    def notify(self) -> None:
        """Tell every ``on_change`` listener that cached plans may be stale.

        Lower layers that cannot import the plan cache (``_capabilities.override``) call this.
        """
        for fn in self._listeners:
            fn()

    # -- public operations ---------------------------------------------------------------------
    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin object or module by hand; returns its name."""
        self.load_plugins()  # the entry-point plugins first, as when they loaded with the registry
        with self._lock:
            pname = self._add(plugin, name)
            self._broken = [b for b in self._broken if b.name != pname]
            self._collect()
            broken = [b for b in self._broken if b.name == pname]
            if broken:
                self._pm.unregister(name=pname)
                self._collect()
                self._broken = [b for b in self._broken if b.name != pname] + [broken[0]]
                if broken[0].refused:  # an adapter refused at registration: its own message
                    raise PluginError(broken[0].error)
                raise PluginError(
                    format_message(
                        f"Plugin {pname!r} was registered but its hook failed.",
                        [broken[0].error],
                        hint="fix the plugin's arrayferry_adapters hook",
                    )
                )
            return pname

    def unregister(self, name: str) -> None:
        """Remove a plugin by name."""
        self.load_plugins()
        with self._lock:
            self._pm.unregister(name=name)
            self._broken = [b for b in self._broken if b.name != name]
            self._collect()

    def adapter_for_type(self, tp: type) -> Adapter | None:
        """The adapter owning arrays of type ``tp`` (cached per type; never imports)."""
        try:
            return self.type_cache[tp]
        except KeyError:
            pass
        found = self._owner(tp)
        if found is None and self._pending:  # a type the built-ins do not own: maybe a plugin's
            self.load_plugins()
            found = self._owner(tp)
        self.type_cache[tp] = found  # cleared whenever the set of adapters changes
        return found

    def _owner(self, tp: type) -> Adapter | None:
        """The first loaded adapter (whose module is imported) that owns ``tp``."""
        mods = sys.modules
        for a in self._adapters.values():
            if a.module in mods:
                try:
                    if a.owns(tp):
                        return a
                except Exception:
                    continue
        return None

    def source_option_names(self) -> frozenset[str]:
        """Every source option a registered adapter declares (``Adapter.source_options``): what a
        tree's leaves may take before each leaf's own source is known."""
        return frozenset(n for a in self.adapters.values() for n in a.source_options)

    def protocol_adapter_for_type(self, tp: type) -> Adapter | None:
        """The source-only adapter reading objects of type ``tp`` that no registered adapter owns
        (``arrayferry.adapters.protocols``: NumPy scalars, pandas, xarray, ``__dlpack__``,
        ``__cuda_array_interface__``, ``__array_interface__``, ``__array__``, buffers, Python
        scalars and sequences), or ``None``. Cached per type; never imports a framework."""
        try:
            return self.protocol_cache[tp]
        except KeyError:
            pass
        found = None
        if self.adapter_for_type(tp) is None:
            import importlib

            found = importlib.import_module(PROTOCOL_MODULE).protocol_adapter_for_type(tp)
        self.protocol_cache[tp] = found
        return found

    def adapter_named(self, to: Any) -> Adapter:
        """The adapter for ``to``: a framework name, alias, or the framework's module object; an
        array-API namespace (a registered framework's own, e.g. ``array_api_compat.torch``, gets
        that framework's adapter; any other object with ``asarray``/``from_dlpack`` a generic
        host target, see :mod:`arrayferry._namespace`); or an example array (its framework)."""
        a = self._name_map.get(to) if isinstance(to, str) else None
        if a is not None:
            return a
        a = self._known(to)
        if a is None and self._pending:  # a name the built-ins do not have: maybe a plugin's
            self.load_plugins()
            a = self._known(to)
        if a is not None:
            return a
        if isinstance(to, str) and to in _protocol_names():
            raise UnknownFrameworkError(
                format_message(
                    f"{to!r} names a kind of source (objects no plugin owns, read through a protocol), not a target framework.",
                    [f"registered frameworks: {', '.join(sorted(self.adapters)) or 'none'}"],
                    hint="convert to a framework instead: arrayferry.convert(x, 'numpy') gives an array that offers "
                    "__dlpack__, __array__, __array_interface__ and the buffer protocol",
                )
            )
        if not isinstance(to, str):
            a = self.adapter_for_type(type(to))  # an example array: its framework (if it can be a target)
            if a is not None and (a.host_import or a.dlpack_import or a.cai_import):
                return a
            ns = self._namespace_adapter(to)
            if ns is not None:
                return ns
        for b in self.broken:
            if isinstance(to, str) and to == b.name:
                raise PluginError(
                    format_message(
                        f"Framework {to!r} was asked for, but the plugin {b.name!r} that provides it is broken.",
                        [f"loading it failed: {b.error}"],
                        hint=f"fix or reinstall the plugin {b.name!r}; arrayferry.broken_plugins() lists every broken plugin",
                    )
                )
        known = ", ".join(sorted(self.adapters)) or "none"
        broken = "; ".join(f"{b.name}: {b.error}" for b in self.broken)
        tried = [f"registered frameworks: {known}"]
        if broken:
            tried.append(f"broken plugins: {broken}")
        raise UnknownFrameworkError(
            format_message(
                f"Unknown target framework {to!r}.",
                tried,
                hint="pass one of the names above (or the module object, an array-API namespace with asarray or "
                "from_dlpack, or an example array of a registered framework); a plugin framework needs its plugin: "
                "pip install 'arrayferry[jax]' (the others: docs/install.md)",
            )
        )

    def _known(self, to: Any) -> Adapter | None:
        """The loaded adapter that ``to`` names: a name or alias, or a module (``array_api_compat``'s too)."""
        names = self._name_map
        if isinstance(to, str):
            return names.get(to)
        modname = getattr(to, "__name__", None)
        if not isinstance(modname, str):
            return None
        a = names.get(modname) or names.get(modname.split(".")[0])
        if a is None and modname.startswith("array_api_compat."):  # array_api_compat.torch, .dask.array ...
            rest = modname[len("array_api_compat."):]
            a = names.get(rest) or names.get(rest.split(".")[0])
        return a

    def _namespace_adapter(self, to: Any) -> Adapter | None:
        """The generic target for an array-API namespace no adapter owns (made once per namespace),
        or for an array of an unknown framework that names its namespace (``__array_namespace__``)."""
        from ._namespace import NamespaceAdapter, is_namespace

        if not is_namespace(to):
            get_ns = getattr(type(to), "__array_namespace__", None)
            if get_ns is None:
                return None
            try:
                to = get_ns(to)
            except Exception:
                return None
            if not is_namespace(to):
                return None
            return self.adapter_named(to)  # its namespace may be a registered framework's
        for ns, a in self._namespaces:
            if ns is to:
                return a
        a = NamespaceAdapter(to)
        self._namespaces.append((to, a))
        return a

    def parse_device(self, obj: Any) -> Device | None:
        """A framework's device object as a ``Device``: the first adapter whose ``parse_device``
        knows it (only adapters whose module is imported: such an object cannot exist otherwise)."""
        for a in self._parsers():
            d = a.parse_device(obj)
            if d is not None:
                return d
        return None

    def parse_dtype(self, obj: Any) -> str | None:
        """A framework's dtype object as a canonical name: the first adapter's ``parse_dtype`` that knows it."""
        for a in self._parsers():
            d = a.parse_dtype(obj)
            if d is not None:
                return d
        return None

    def _parsers(self) -> Iterator[Adapter]:
        """The adapters whose module is imported, in order; the entry-point plugins' ones are
        loaded only when the ones before them all passed (the built-ins know their own objects)."""
        mods = sys.modules
        seen = 0
        for a in self._adapters.values():
            seen += 1
            if a.module in mods:
                yield a
        if self._pending:
            self.load_plugins()
            for a in list(self._adapters.values())[seen:]:
                if a.module in mods:
                    yield a


_MANAGER: type[pluggy.PluginManager] | None = None


def _manager_class() -> type[pluggy.PluginManager]:
    """pluggy's ``PluginManager``, finding a module plugin's hooks without ``inspect.getattr_static``
    on each of its attributes.

    pluggy reads every name in ``dir(plugin)`` statically (milliseconds for the built-in adapter
    modules, on the first conversion). ``parse_hookimpl_opts`` is pluggy's documented override
    point: for a plain module, a non-dunder name's static value is the one in the module's
    ``__dict__``, and a plain function there without the ``arrayferry_impl`` marker, or any
    object that is not a function, ``staticmethod``, ``classmethod`` or bound method, is no hook
    (what pluggy would answer, read directly). Everything else goes to pluggy.
    """
    global _MANAGER
    if _MANAGER is None:
        import types

        import pluggy

        hookable = (staticmethod, classmethod, types.MethodType)
        absent = object()

        class _Manager(pluggy.PluginManager):
            def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
                if type(plugin) is types.ModuleType and not name.startswith("__"):
                    value = plugin.__dict__.get(name, absent)
                    if type(value) is types.FunctionType:
                        if self.project_name + "_impl" not in value.__dict__:
                            return None
                    elif value is not absent and not isinstance(value, hookable):
                        return None
                return super().parse_hookimpl_opts(plugin, name)

        _MANAGER = _Manager
    return _MANAGER


def _broken_record(name: str, error: str, refused: bool = False) -> BrokenPlugin:
    """A :class:`~arrayferry._broken.BrokenPlugin` record (its module loads with the first failure)."""
    from ._broken import BrokenPlugin

    return BrokenPlugin(name, error, refused)


def __getattr__(name: str) -> Any:
    if name == "BrokenPlugin":  # still importable from here
        from ._broken import BrokenPlugin

        return BrokenPlugin
    raise AttributeError(f"module 'arrayferry._registry' has no attribute {name!r}")


#: Hooks arrayferry no longer calls, and what does their job now (one extension mechanism per job).
_REMOVED_HOOKS = {
    "arrayferry_parse_device": "the hook 'arrayferry_parse_device' was removed (one extension mechanism per job): a framework's "
    "device objects are read by its adapter's parse_device(obj) method",
    "arrayferry_parse_dtype": "the hook 'arrayferry_parse_dtype' was removed (one extension mechanism per job): a framework's "
    "dtype objects are read by its adapter's parse_dtype(obj) method",
}


def _protocol_names() -> frozenset[str]:
    import importlib

    names: frozenset[str] = importlib.import_module(PROTOCOL_MODULE).PROTOCOL_NAMES
    return names


def _validation_message(pname: str, plugin: Any, hook: str, signature: str, rule: str) -> str:
    """The several-line message for a plugin whose hooks do not match the specs."""
    return format_message(
        f"Plugin {pname!r} does not match arrayferry's hook specifications.",
        [f"plugin: {pname} ({plugin!r})", f"hook: {hook}", f"signature: {signature}", f"rule broken: {rule}"],
        hint="compare the hook names and arguments with arrayferry.hookspecs (docs/hooks.md); an implementation "
        "may take fewer arguments than the spec, never other ones",
    )


_REGISTRY: Registry | None = None
_REG_LOCK = threading.Lock()


def registry() -> Registry:
    """The process-wide registry, created on first use."""
    global _REGISTRY
    reg = _REGISTRY
    if reg is None:
        with _REG_LOCK:
            if _REGISTRY is None:
                _REGISTRY = Registry()
            reg = _REGISTRY
    return reg


def reset_registry(**kwargs: Any) -> Registry:
    """Replace the process-wide registry (tests; after installing a plugin at run time)."""
    global _REGISTRY
    old = _REGISTRY
    with _REG_LOCK:
        _REGISTRY = Registry(**kwargs)
        if old is not None:
            for fn in old._listeners:
                _REGISTRY.on_change(fn)
                fn()
    return _REGISTRY
