"""The public conversion API: ``convert``, ``plan``, ``framework_of``, ``device_of``, ``frameworks``.

The hot path of ``convert`` is: one dict lookup for the source type's adapter, the adapter's
``signature(x)`` (a few attribute reads), one dict lookup for the cached plan, then the plan's
composed step functions. Hooks run only when a new signature is planned.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, overload

from ._adapter import Adapter
from ._device import Device
from ._errors import ArrayFerryError, UnknownFrameworkError, format_message
from ._plan import _NOTHING, Plan, Template, build_template, failure, raise_failure, run_template
from ._registry import registry

if TYPE_CHECKING:  # typing only: convert's overloads name each framework's array type
    import jax
    import numpy
    import numpy.typing
    import torch

__all__ = ["convert", "plan", "framework_of", "device_of", "frameworks", "FrameworkInfo", "clear_cache", "export_dlpack"]

_PLANS: dict[Hashable, Any] = {}  # key -> the composed steps (or a dispatcher for refining targets)
_TEMPLATES: dict[Hashable, Template] = {}  # key -> its template, to word errors
_TYPES: dict[type, Adapter] = {}
_MAX_PLANS = 4096
_hooked = False


def clear_cache() -> None:
    """Forget every cached plan and type lookup (done automatically when plugins change)."""
    _PLANS.clear()
    _TEMPLATES.clear()
    _TYPES.clear()


def _source_adapter(x: Any) -> Adapter:
    global _hooked
    reg = registry()
    if not _hooked:
        reg.on_change(clear_cache)
        _hooked = True
    a = reg.adapter_for_type(type(x))
    if a is None:
        # objects no plugin owns, read through a protocol (lists, buffers, __dlpack__ ...): cached
        # per type by the registry, never put in _TYPES (convert_tree walks lists and leaves
        # scalars alone, by _TYPES), and never reached by registered types
        p = reg.protocol_adapter_for_type(type(x))
        if p is not None:
            return p
        tp = type(x)
        protocols = [p for p in ("__dlpack__", "__array__", "__array_interface__", "__cuda_array_interface__", "__array_namespace__") if hasattr(tp, p)]
        raise UnknownFrameworkError(
            format_message(
                f"No registered framework owns objects of type {tp.__module__}.{tp.__qualname__}.",
                [f"registered frameworks: {', '.join(sorted(reg.adapters)) or 'none'}",
                 f"protocols the object offers: {', '.join(protocols) or 'none'}"],
                hint=_unknown_hint(x),
            )
        )
    _TYPES[type(x)] = a
    return a


def _unknown_hint(x: Any) -> str:
    """The first thing to try for an object no framework owns: lists and scalars are not arrays
    of a missing plugin, so installing one would not help them."""
    import sys

    np = sys.modules.get("numpy")
    if np is not None and isinstance(x, np.generic):
        return (f"x is a NumPy scalar ({type(x).__module__}.{type(x).__qualname__}), not an array: "
                "numpy.asarray(x) makes a 0-d array of it")
    if isinstance(x, (bool, int, float, complex)):
        return f"x is a Python {type(x).__name__}, not an array: numpy.asarray(x) makes a 0-d array of it"
    if isinstance(x, (list, tuple)):
        return (f"x is a {type(x).__name__}, not an array: numpy.asarray(x) makes one array of it, and "
                "arrayferry.convert_tree(x, to) converts the arrays inside it")
    if isinstance(x, dict):
        return "x is a dict, not an array: arrayferry.convert_tree(x, to) converts the arrays inside it"
    return ("install or register the plugin for its framework (pip install 'arrayferry[jax]'; the others: "
            "docs/install.md), "
            "or convert it to a NumPy array first (numpy.asarray(x))")


def _template(x: Any, src: Adapter, to: Any, device: Any, dtype: Any, copy: bool | None,
              casting: str | None = None, options: tuple[tuple[str, Any], ...] = ()) -> tuple[Template, Hashable]:
    ex = _example_target(to, device)
    if ex is not None:
        to, device = ex
    tgt = registry().adapter_named(to)
    tgt.namespace()  # a registered framework that is not installed: UnknownFrameworkError with a hint
    info = src.describe(x)
    if tgt.refines:
        info = info.with_(extra=info.extra + tuple(tgt.refine_key(src, x)))
    t = build_template(src, info, tgt, device, dtype, copy, casting, options)
    more = tgt.plan_notes(t) if hasattr(tgt, "plan_notes") else ()
    if more:
        t = replace(t, notes=(*t.notes, *more))
    return t, src.signature(x)


@overload
def convert(x: Any, to: Literal["numpy", "np"], *, device: Any = None, dtype: Any = None,
            copy: bool | None = None, stream: Any = None, casting: str | None = None, **options: Any) -> numpy.typing.NDArray[Any]: ...
@overload
def convert(x: Any, to: Literal["torch", "pytorch", "pt"], *, device: Any = None, dtype: Any = None,
            copy: bool | None = None, stream: Any = None, casting: str | None = None, **options: Any) -> torch.Tensor: ...
@overload
def convert(x: Any, to: Literal["jax"], *, device: Any = None, dtype: Any = None,
            copy: bool | None = None, stream: Any = None, casting: str | None = None, **options: Any) -> jax.Array: ...
@overload
def convert(x: Any, to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None,
            stream: Any = None, casting: str | None = None, **options: Any) -> Any: ...


def convert(x: Any, to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None,
            stream: Any = None, casting: str | None = None, **options: Any) -> Any:
    """Convert ``x`` to framework ``to`` by the cheapest correct route.

    :param x: an array of any registered framework, or an object no plugin owns that speaks an
        array protocol (``__dlpack__``, ``__array__``, the buffer protocol ...), a NumPy or Python
        scalar, or a nested list/tuple of numbers (read as NumPy reads it: a copy the plan names).
    :param to: a framework name (``"numpy"``, ``"torch"``, ...) or the framework's module; an
        array-API namespace (``array_api_compat.array_namespace(y)``, ``array_api_strict``, or any
        object with ``from_dlpack``/``asarray``: one the registry knows keeps its own adapter, any
        other is a generic host target); or an example array ``y`` of a registered framework
        (``to=y``: ``y``'s framework, and ``y``'s device when ``device=`` is not given).
    :param device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a :class:`Device` or the framework's own
        device object; default: the source's device when the target can hold it, else the host.
    :param dtype: a dtype name or any framework's dtype; the cast is part of the plan.
    :param copy: ``None`` aliases when possible, ``False`` never copies (raises
        :class:`CopyRequiredError`), ``True`` always returns memory nothing else holds.
    :param stream: the CUDA stream the result will be used on: a ``torch.cuda.Stream``,
        ``cupy.cuda.Stream``, an object with ``__cuda_stream__``, or an integer handle (DLPack
        convention: 1 legacy default, 2 per-thread default, -1 no synchronisation). Device work runs
        on it and DLPack producers order their pending work before it. Default: each target
        framework's current stream (see ``docs/devices.md``). Not part of the plan cache key.
    :param casting: which casts may change values (NumPy's names). ``None`` (default): any
        ``dtype=`` may be asked for, but NaN/infinity to integers, values outside the target's
        range and non-zero imaginary parts to real types raise :class:`LossyConversionError`
        (rounding and truncation toward zero are allowed); ``"unsafe"``: no check (NumPy's
        ``astype`` result); ``"same_value"``: every value must survive exactly; ``"same_kind"``,
        ``"safe"``, ``"equiv"``, ``"no"``: NumPy's dtype rules, then checked as for ``None``.
    :param options: target options, which the target's adapter declares (``chunks=`` for dask:
        ``convert(x, "dask", chunks=(5, 5))``); an option the target does not take raises
        :class:`ArgumentError` listing those it takes. Hashable values key the plan cache (others
        are planned on every call).
    :returns: the converted array. ``plan(x, ...)`` says how it will be done.
    """
    if options:
        return _convert_options(x, to, device, dtype, copy, stream, casting, options)
    if stream is not None:
        from ._cuda import parse_stream, using_stream

        with using_stream(parse_stream(stream)):
            return convert(x, to, device=device, dtype=dtype, copy=copy, casting=casting)
    src = _TYPES.get(type(x)) or _source_adapter(x)
    key = (src, src.signature(x), to, device, dtype, copy, casting)
    try:
        ent = _PLANS[key]
    except KeyError:
        ent = _new_entry(x, src, key, to, device, dtype, copy, casting)
    except TypeError:  # unhashable device/dtype object (or an example array): plan every time
        return _unkeyed(x, src, to, device, dtype, copy, casting)
    try:
        return ent(x)
    except ArrayFerryError:
        raise
    except Exception as exc:  # foreign errors: see _plan.failure
        raise_failed(key, exc, x)


def _convert_options(x: Any, to: Any, device: Any, dtype: Any, copy: bool | None, stream: Any,
                     casting: str | None, options: dict[str, Any]) -> Any:
    """``convert`` with target options: keyed like ``convert``, plus the sorted options."""
    if stream is not None:
        from ._cuda import parse_stream, using_stream

        with using_stream(parse_stream(stream)):
            return _convert_options(x, to, device, dtype, copy, None, casting, options)
    opts = tuple(sorted(options.items()))
    src = _TYPES.get(type(x)) or _source_adapter(x)
    # the values' types too: 1 == True hash alike, and requires_grad=1 must not find requires_grad=True's plan
    key = (src, src.signature(x), to, device, dtype, copy, casting, opts, tuple(type(v) for _, v in opts))
    try:
        ent = _PLANS[key]
    except KeyError:
        ent = _new_entry(x, src, key, to, device, dtype, copy, casting, opts)
    except TypeError:  # an unhashable option (a list, a dict), device or dtype: plan every time
        return _unkeyed(x, src, to, device, dtype, copy, casting, opts)
    try:
        return ent(x)
    except ArrayFerryError:
        raise
    except Exception as exc:
        raise_failed(key, exc, x)


def _unkeyed(x: Any, src: Adapter, to: Any, device: Any, dtype: Any, copy: bool | None, casting: str | None,
             opts: tuple[tuple[str, Any], ...] = ()) -> Any:
    """Convert without the plan cache (an argument is unhashable); an example array as ``to``
    (NumPy's are unhashable) goes back through the cache as its framework's name and device."""
    ex = _example_target(to, device)
    if ex is not None:
        return convert(x, ex[0], device=ex[1], dtype=dtype, copy=copy, casting=casting, **dict(opts))
    return run_template(_template(x, src, to, device, dtype, copy, casting, opts)[0], x)


def _example_target(to: Any, device: Any) -> tuple[str, Any] | None:
    """``(framework name, device)`` when ``to`` is an example array of a registered framework
    (``device`` itself when given, else the example's device); ``None`` for anything else."""
    if isinstance(to, (str, ModuleType)):
        return None
    a = registry().adapter_for_type(type(to))
    if a is None or not (a.host_import or a.dlpack_import or a.cai_import):  # a source-only adapter is no target
        return None
    return a.name, adapter_device_of(a, to) if device is None else device


def failed(key: Hashable, exc: Exception, x: Any = _NOTHING) -> Exception:
    """The error for a cached plan (``_PLANS[key]``) that raised ``exc`` while running on ``x``
    (described from ``x`` itself, not from the array the plan was cached for)."""
    t = _TEMPLATES.get(key)
    if t is None:
        return exc
    return failure(t, exc, x)


def raise_failed(key: Hashable, exc: Exception, x: Any = _NOTHING) -> NoReturn:
    """Raise :func:`failed`'s error (``exc`` itself, unchained, when it passes through)."""
    err = failed(key, exc, x)
    if err is exc:
        raise exc
    raise err from exc


def _new_entry(x: Any, src: Adapter, key: Hashable, to: Any, device: Any, dtype: Any, copy: bool | None,
               casting: str | None = None, options: tuple[tuple[str, Any], ...] = ()) -> Any:
    ex = _example_target(to, device)
    if ex is not None:
        # an example array as the target: never cached under a key that holds the array itself
        # (torch tensors hash by identity): each call goes through the key of its name and device
        name, dev = ex
        opts = dict(options)

        def via_example(y: Any) -> Any:
            return convert(y, name, device=dev, dtype=dtype, copy=copy, casting=casting, **opts)

        return via_example
    tgt = registry().adapter_named(to)
    ent: Callable[[Any], Any]
    if tgt.refines:
        sub: dict[Hashable, Template] = {}

        def refined(y: Any) -> Any:
            rk = tgt.refine_key(src, y)
            t = sub.get(rk)
            if t is None:
                t = sub[rk] = _template(y, src, to, device, dtype, copy, casting, options)[0]
            try:
                return t.run(y)
            except ArrayFerryError:
                raise
            except Exception as exc:
                raise_failure(t, exc, y)

        ent = refined
    else:
        t, _ = _template(x, src, to, device, dtype, copy, casting, options)
        ent = t.run
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
        _TEMPLATES.clear()
    if not tgt.refines:
        _TEMPLATES[key] = t
    _PLANS[key] = ent
    return ent


def plan(x: Any, to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None,
         stream: Any = None, casting: str | None = None, **options: Any) -> Plan:
    """Plan the conversion of ``x`` without moving any data; same arguments as :func:`convert`.

    A ``stream=`` is kept by the plan and used each time ``plan.execute(x)`` runs; target
    ``options`` are part of the plan (``plan.options``, and ``explain()`` lists them).
    """
    src = _TYPES.get(type(x)) or _source_adapter(x)
    t, sig = _template(x, src, to, device, dtype, copy, casting, tuple(sorted(options.items())))
    return Plan(t, src, sig, stream)


def export_dlpack(x: Any, *, stream: Any = None) -> Any:
    """A DLPack producer for ``x`` that any consumer (``from_dlpack``) can take, without copying
    unless the source must resolve a lazy state first (torch's conjugate/negative bits).

    The source adapter's preparation runs first (``requires_grad`` tensors are detached, lazy bits
    resolved), so consumers never meet the states they refuse or misread. With ``stream=`` the
    export is ordered before that stream whatever stream the consumer asks for (DLPack's
    ``__dlpack__(stream=...)``: the producer makes the stream wait); without it the consumer's own
    stream request is passed through. Host producers are never sent a stream.
    """
    from ._cuda import DLPackExport, parse_stream
    from ._errors import UnsupportedArrayError

    spec = parse_stream(stream)
    src = _TYPES.get(type(x)) or _source_adapter(x)
    info = src.describe(x)
    if info.problem is not None:
        cls, msg = info.problem
        raise cls(msg)
    if not src.dlpack_export:
        raise UnsupportedArrayError(
            format_message(
                f"{src.name} arrays cannot be exported through DLPack ({info.summary()}).",
                hint="convert to a framework that exports DLPack first (arrayferry.convert(x, 'numpy'))",
            )
        )
    for step in src.prepare(info):
        x = step.fn(x)
    return DLPackExport(x, None if spec is None else spec.handle)


def framework_of(x: Any) -> str | None:
    """The name of the framework ``x`` belongs to, or ``None``; never imports anything.

    For an object no registered framework owns, the protocol it is read through: ``"dlpack"``,
    ``"cuda_array_interface"``, ``"array_interface"``, ``"array"``, ``"buffer"``, ``"python"``
    (lists, tuples and Python scalars), ``"numpy"`` (NumPy scalars), ``"pandas"``, ``"xarray"``
    (see ``docs/concepts.md``, "Sources no plugin owns"). These are sources only, not targets.
    """
    a = _TYPES.get(type(x))
    if a is None:
        reg = registry()
        a = reg.adapter_for_type(type(x))
        if a is None:
            p = reg.protocol_adapter_for_type(type(x))  # "dlpack", "buffer", "python" ...
            return None if p is None else p.name
        _TYPES[type(x)] = a
    return a.name


def device_of(x: Any) -> Device:
    """The :class:`Device` ``x`` lives on (``str()`` gives ``"cpu"``, ``"cuda:1"``, ...).

    :raises UnsupportedArrayError: ``x`` has no device (a traced JAX value, a deleted array): the
        same error :func:`convert` raises for it.
    """
    src = _TYPES.get(type(x)) or _source_adapter(x)
    return adapter_device_of(src, x)


def adapter_device_of(src: Adapter, x: Any) -> Device:
    """``src.device_of(x)``; a foreign error becomes the array's problem (as ``convert`` words it)
    or an :class:`UnsupportedArrayError`, never a framework's own exception."""
    try:
        return src.device_of(x)
    except ArrayFerryError:
        raise
    except Exception as exc:
        try:
            problem = src.describe(x).problem
        except Exception:
            problem = None
        if problem is not None:
            cls, msg = problem
            raise cls(msg) from exc
        from ._errors import UnsupportedArrayError

        raise UnsupportedArrayError(
            format_message(
                f"Cannot tell which device a {src.name} array ({type(x).__qualname__}) lives on.",
                [f"{src.name}'s adapter raised {type(exc).__name__}: {exc}"],
                hint="convert or inspect the array where it has data (outside a traced function, before deleting it)",
            )
        ) from exc


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
