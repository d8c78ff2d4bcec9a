"""The public conversion API: ``convert``, ``plan``, ``framework_of``, ``device_of``, ``frameworks``.

The hot path of ``convert`` is: one dict lookup for the source type's adapter, the adapter's
``signature(x)`` (a few attribute reads), one dict lookup for the cached plan, then the plan's
composed step functions. Hooks run only when a new signature is planned.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from ._adapter import Adapter
from ._device import Device
from ._errors import UnknownFrameworkError, format_message
from ._plan import Plan, Template, build_template, run_template
from ._registry import registry

__all__ = ["convert", "plan", "framework_of", "device_of", "frameworks", "FrameworkInfo", "clear_cache"]

_PLANS: dict[Hashable, Any] = {}
_TYPES: dict[type, Adapter] = {}
_MAX_PLANS = 4096
_hooked = False


def clear_cache() -> None:
    """Forget every cached plan and type lookup (done automatically when plugins change)."""
    _PLANS.clear()
    _TYPES.clear()


def _source_adapter(x: Any) -> Adapter:
    global _hooked
    reg = registry()
    if not _hooked:
        reg.on_change(clear_cache)
        _hooked = True
    a = reg.adapter_for_type(type(x))
    if a is None:
        tp = type(x)
        protocols = [p for p in ("__dlpack__", "__array__", "__array_interface__", "__cuda_array_interface__", "__array_namespace__") if hasattr(tp, p)]
        raise UnknownFrameworkError(
            format_message(
                f"No registered framework owns objects of type {tp.__module__}.{tp.__qualname__}.",
                [f"registered frameworks: {', '.join(sorted(reg.adapters)) or 'none'}",
                 f"protocols the object offers: {', '.join(protocols) or 'none'}"],
                hint="install or register the plugin for its framework (pip install 'arrayferry[jax]', ...), "
                "or convert lists and scalars with numpy.asarray first",
            )
        )
    _TYPES[type(x)] = a
    return a


def _template(x: Any, src: Adapter, to: Any, device: Any, dtype: Any, copy: bool | None) -> tuple[Template, Hashable]:
    tgt = registry().adapter_named(to)
    info = src.describe(x)
    if tgt.refines:
        info = info.with_(extra=tgt.refine_key(src, x))
    return build_template(src, info, tgt, device, dtype, copy), src.signature(x)


def convert(x: Any, to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None) -> Any:
    """Convert ``x`` to framework ``to`` by the cheapest correct route.

    :param x: an array of any registered framework.
    :param to: a framework name (``"numpy"``, ``"torch"``, ...) or the framework's module.
    :param device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a :class:`Device` or the framework's own
        device object; default: the source's device when the target can hold it, else the host.
    :param dtype: a dtype name or any framework's dtype; the cast is part of the plan.
    :param copy: ``None`` aliases when possible, ``False`` never copies (raises
        :class:`CopyRequiredError`), ``True`` always returns memory nothing else holds.
    :returns: the converted array. ``plan(x, ...)`` says how it will be done.
    """
    src = _TYPES.get(type(x)) or _source_adapter(x)
    key = (src.signature(x), to, device, dtype, copy)
    try:
        ent = _PLANS.get(key)
    except TypeError:  # unhashable device/dtype object: plan every time
        return run_template(_template(x, src, to, device, dtype, copy)[0], x)
    if ent is None:
        ent = _new_entry(x, src, key, to, device, dtype, copy)
    return ent(x)


def _new_entry(x: Any, src: Adapter, key: Hashable, to: Any, device: Any, dtype: Any, copy: bool | None) -> Any:
    tgt = registry().adapter_named(to)
    if tgt.refines:
        sub: dict[Hashable, Any] = {}

        def refined(y: Any) -> Any:
            rk = tgt.refine_key(src, y)
            e = sub.get(rk)
            if e is None:
                t, _ = _template(y, src, to, device, dtype, copy)
                e = sub[rk] = _runner(t)
            return e(y)

        ent = refined
    else:
        t, _ = _template(x, src, to, device, dtype, copy)
        ent = _runner(t)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = ent
    return ent


def _runner(t: Template) -> Any:
    run = t.run

    def go(x: Any) -> Any:
        try:
            return run(x)
        except Exception:
            return run_template(t, x)  # re-raises as an ArrayFerryError naming the route

    return go


def plan(x: Any, to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None) -> Plan:
    """Plan the conversion of ``x`` without moving any data; same arguments as :func:`convert`."""
    src = _TYPES.get(type(x)) or _source_adapter(x)
    t, sig = _template(x, src, to, device, dtype, copy)
    return Plan(t, src, sig)


def framework_of(x: Any) -> str | None:
    """The name of the framework ``x`` belongs to, or ``None``; never imports anything."""
    a = _TYPES.get(type(x))
    if a is None:
        a = registry().adapter_for_type(type(x))
        if a is None:
            return None
        _TYPES[type(x)] = a
    return a.name


def device_of(x: Any) -> Device:
    """The :class:`Device` ``x`` lives on (``str()`` gives ``"cpu"``, ``"cuda:1"``, ...)."""
    src = _TYPES.get(type(x)) or _source_adapter(x)
    return src.device_of(x)


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
    import sys

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
