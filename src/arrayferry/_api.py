"""The public conversion API: ``convert``, ``plan``, ``framework_of``, ``device_of``, ``frameworks``.

The hot path of ``convert`` is: one dict lookup for the source type's adapter, the adapter's
``signature(x)`` (a few attribute reads), one dict lookup for the cached plan, then the plan's
composed step functions. Hooks run only when a new signature is planned.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
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

__all__ = ["convert", "converter", "plan", "framework_of", "device_of", "clear_cache", "export_dlpack"]

_TYPES: dict[type, Adapter] = {}
_MAX_PLANS = 4096
_hooked = False

# ------------------------------------------------------------------------------------------------
# The plan cache: the one place plans are looked up, created and blamed for failures.
#
#   _CACHE[options_key(to, ...)][type(x)] = (key function, {key: run}, source adapter, {signature: run},
#                                            direct call or None)
#   _TEMPLATES[(options key, source adapter, signature)] = y -> the Template that runs for y
#
# ``convert``, :func:`converter` (and through it ``convert_tree`` and ``@accepts``), ``plan_tree``
# and refining targets all go through :func:`lookup`; ``convert`` and converters read the two inner
# dicts inline (their hot path), and call :func:`lookup` on a miss. A *run* is the plan's composed
# step function (``Template.run``), or for refining targets a dispatcher that plans once per
# ``refine_key``. Failures of a cached run are worded by :func:`raise_failed` from its template.
#
# The key function is the adapter's ``signature``, and the two dicts are one, unless the adapter
# has a ``fast_key`` (a C-level attrgetter: NumPy's dtype, flags and shape): then the first dict
# maps fast keys to the signature's run where the key decides the signature
# (``fast_key_complete``), and to a dispatcher computing the signature where it does not.
#
# Under the default options an adapter may offer a *direct call* (``Adapter.direct_call``): one
# native call that raises for every array whose plan is another route. The hot path tries it
# before reading any signature and falls through to the signature when it raises; after
# ``_MAX_REFUSALS`` refusals under one key and type it is dropped from the entry (``_refused``).

#: What one options key caches per source type:
#: (key function, {key: run}, adapter, {signature: run}, direct call or None).
TypeEntry = tuple[Callable[[Any], Hashable], dict[Hashable, Callable[[Any], Any]], Adapter,
                  dict[Hashable, Callable[[Any], Any]], Callable[[Any], Any] | None]
_MAX_FAST = 1024  # fast keys per type entry (they hold shapes: a loop over many shapes must not grow it)

_CACHE: dict[Hashable, dict[type, TypeEntry]] = {}
_TEMPLATES: dict[tuple[Hashable, Adapter, Hashable], Callable[[Any], Template]] = {}
_count = 0  # runs cached, all options keys together (bounded by _MAX_PLANS)
_MAX_REFUSALS = 16
_refusals: dict[tuple[Hashable, type], int] = {}


class _Options(tuple):  # type: ignore[type-arg]
    """An options key with options (so that no ``to`` can be mistaken for one)."""

    __slots__ = ()


def options_key(to: Any, device: Any = None, dtype: Any = None, copy: bool | None = None,
                casting: str | None = None, options: Mapping[str, Any] | tuple[tuple[str, Any], ...] = ()) -> Hashable:
    """The plan-cache key of a target and its options: ``to`` itself when every option is the
    default (``convert``'s hot path relies on that), else a tuple. Target ``options`` join it
    sorted, with their values' types (``1 == True`` hash alike, and ``requires_grad=1`` must not
    find ``requires_grad=True``'s plan) and, for floats, their ``repr`` (``-0.0 == 0.0``, and
    ``fill_null=-0.0`` must not find ``fill_null=0.0``'s plan). The CUDA stream is not part of it (it changes where work
    runs, not the plan). The one place a new option joins the key."""
    key: Hashable = to
    if device is not None or dtype is not None or copy is not None or casting is not None or options:
        opts = tuple(sorted(options.items())) if isinstance(options, Mapping) else tuple(options)
        key = _Options((to, device, dtype, copy, casting, opts, tuple(
            (type(v), repr(v)) if isinstance(v, (float, complex)) else type(v) for _, v in opts)))
    return key


def _options(okey: Hashable) -> tuple[Any, Any, Any, bool | None, str | None, tuple[tuple[str, Any], ...]]:
    """The options an :func:`options_key` stands for: ``(to, device, dtype, copy, casting, options)``."""
    if type(okey) is _Options:
        to, device, dtype, copy, casting, opts, _ = okey
        return to, device, dtype, copy, casting, opts
    return (okey, None, None, None, None, ())


def _concrete(okey: Hashable) -> Hashable:
    """``okey`` with an example array as ``to`` (``convert(x, to=y)``) replaced by its framework's
    name and device: the cache never holds an array (torch tensors hash by identity, NumPy's not
    at all). Checked on misses only; anything else comes back as it is."""
    to, device, dtype, copy, casting, opts = _options(okey)
    ex = _example_target(to, device)
    if ex is None:
        return okey
    return options_key(ex[0], ex[1], dtype, copy, casting, opts)


def _example_target(to: Any, device: Any) -> tuple[str, Any] | None:
    """``(framework name, device)`` when ``to`` is an example array of a registered framework
    (``device`` itself when given, else the example's device); ``None`` for anything else."""
    if isinstance(to, (str, ModuleType)):
        return None
    a = registry().adapter_for_type(type(to))
    if a is None or not (a.host_import or a.dlpack_import or a.cai_import):  # a source-only adapter is no target
        return None
    return a.name, adapter_device_of(a, to) if device is None else device


def cache_size() -> int:
    """How many plans (runs) the cache holds."""
    return sum(len(te[3]) for types in _CACHE.values() for te in types.values())


def clear_cache() -> None:
    """Forget every cached plan and type lookup (done automatically when plugins change)."""
    global _count
    for types in _CACHE.values():  # converters hold these dicts: empty them in place
        types.clear()
    if len(_CACHE) > _MAX_PLANS:  # many distinct options: forget them (converters keep their own)
        _CACHE.clear()
    _TEMPLATES.clear()
    _TYPES.clear()
    _refusals.clear()
    _count = 0


def _hook() -> None:
    global _hooked
    if not _hooked:
        registry().on_change(clear_cache)
        _hooked = True


def types_for(okey: Hashable) -> dict[type, TypeEntry]:
    """The per-source-type dict of the options key ``okey`` (created empty when new).

    :raises TypeError: ``okey`` is unhashable (a device or dtype object that cannot be hashed).
    """
    types = _CACHE.get(okey)
    if types is None:
        _hook()
        types = _CACHE[okey] = {}
    return types


def lookup(okey: Hashable, x: Any, types: dict[type, TypeEntry] | None = None,
           ) -> tuple[Callable[[Any], Any], Adapter, Hashable]:
    """The cached run for converting ``x`` under ``okey``, planned on a miss: ``(run, source
    adapter, signature)``. The slow half of the hot path: ``convert`` and converters read
    ``types`` (default: ``types_for(okey)``) inline first and call this on a miss.

    Options or a signature that cannot be hashed (a device or dtype object without ``__hash__``)
    get a run that plans every time. An example array as the target (``to=y``) is looked up
    under its framework's name and device (:func:`_concrete`), never under the array itself.
    """
    if types is None:
        ckey = _concrete(okey)
        if ckey is not okey:
            via, src, sig = lookup(ckey, x)
            return _worded(via, ckey, src, sig), src, sig
    try:
        if types is None:
            types = types_for(okey)
    except TypeError:
        return _planning_run(okey), _TYPES.get(type(x)) or _source_adapter(x), None
    te = types.get(type(x))
    if te is None:
        te = types[type(x)] = _type_entry(x, okey)
    keyfn, fast, src, runs, _ = te
    key = keyfn(x)
    sig = key if fast is runs else src.signature(x)  # without a fast key, the key is the signature
    try:
        run = runs.get(sig)
    except TypeError:
        return _planning_run(okey), src, sig
    if run is None:
        run = _run_for(okey, src, sig, te, types, x)
    if fast is runs:
        return run, src, sig
    if len(fast) >= _MAX_FAST:
        fast.clear()
    try:
        if src.fast_key_complete(key):
            fast[key] = run
        elif key not in fast:
            fast[key] = _by_signature(okey, te, types)
    except TypeError:  # a key that cannot be hashed: the signature decides on every call
        pass
    return run, src, sig


def _type_entry(x: Any, okey: Hashable) -> TypeEntry:
    """A new, empty cache entry for arrays of ``type(x)`` under ``okey``."""
    src = _TYPES.get(type(x)) or _source_adapter(x)
    runs: dict[Hashable, Callable[[Any], Any]] = {}
    direct = _direct_for(okey, src, type(x))
    if src.fast_key is None:
        return (src.signature, runs, src, runs, direct)
    return (src.fast_key, {}, src, runs, direct)


def _direct_for(okey: Hashable, src: Adapter, tp: type) -> Callable[[Any], Any] | None:
    """The direct call (``Adapter.direct_call``) for ``tp`` under ``okey``: only for the default
    options (a ``device`` aside) and a target named by its adapter's name, an alias or its module
    (not an array-API namespace or an example array, which plan their own way); asked of the
    source's adapter, then the target's."""
    okey, device, dtype, copy, casting, opts = _options(okey)
    if dtype is not None or copy is not None or casting is not None or opts:
        return None
    dev = None
    if device is not None:
        try:
            dev = Device.parse(device)
        except Exception:  # the plan will word it
            return None
    if not isinstance(okey, (str, ModuleType)):
        return None
    try:
        tgt = registry().adapter_named(okey)
    except ArrayFerryError:
        return None
    if (okey.__name__ != tgt.module if isinstance(okey, ModuleType)
            else okey != tgt.name and okey not in tgt.aliases):
        return None
    if tgt.refines:
        return None
    fn = src.direct_call(tp, src.name, tgt.name, dev)
    if fn is None and tgt is not src:
        fn = tgt.direct_call(tp, src.name, tgt.name, dev)
    return fn


def _refused(okey: Hashable, x: Any, types: dict[type, TypeEntry] | None = None) -> None:
    """Count a refusal of the direct call for ``type(x)`` under ``okey``; at ``_MAX_REFUSALS``
    drop it from the entry (converters hold the same ``types`` dict, so they stop trying too)."""
    k = (okey, type(x))
    n = _refusals[k] = _refusals.get(k, 0) + 1
    if n >= _MAX_REFUSALS:
        found = _CACHE.get(okey) if types is None else types
        te = found.get(type(x)) if found is not None else None
        if found is not None and te is not None:
            found[type(x)] = (te[0], te[1], te[2], te[3], None)


def _run_for(okey: Hashable, src: Adapter, sig: Hashable, te: TypeEntry, types: dict[type, TypeEntry],
             x: Any) -> Callable[[Any], Any]:
    """Plan ``x`` (signature ``sig``) into ``te``'s runs, clearing the cache first when it is full."""
    runs = te[3]
    if _count >= _MAX_PLANS:
        clear_cache()
        types[type(x)] = te
        te[1].clear()
        runs.clear()
    return _new_entry(okey, src, sig, runs, x)


def _by_signature(okey: Hashable, te: TypeEntry, types: dict[type, TypeEntry]) -> Callable[[Any], Any]:
    """The run kept under a fast key that does not decide the signature: it computes the
    signature and runs its plan (planning it on a miss)."""
    src, runs = te[2], te[3]
    sigfn = src.signature

    def by_signature(y: Any) -> Any:
        run = runs.get(sigfn(y))
        if run is None:
            run = lookup(okey, y, types)[0]
        return run(y)

    return by_signature


def _worded(run: Callable[[Any], Any], okey: Hashable, src: Adapter, sig: Hashable) -> Callable[[Any], Any]:
    """``run``, its foreign errors worded under ``okey`` (for callers that hold another key)."""

    def worded(y: Any) -> Any:
        try:
            return run(y)
        except ArrayFerryError:
            raise
        except Exception as exc:
            raise_failed(okey, src, sig, exc, y)

    return worded


def _planning_run(okey: Hashable) -> Callable[[Any], Any]:
    """A run that plans each array anew (for options or signatures that cannot be cached)."""
    options = _options(okey)

    def plan_each_time(y: Any) -> Any:
        return _uncached(y, *options)

    return plan_each_time


def template_for(okey: Hashable, x: Any) -> tuple[Template, Adapter, Hashable]:
    """The cached :class:`Template` that converts ``x`` under ``okey`` (planned on a miss), with
    the source adapter and signature: what ``plan_tree`` reports and :func:`raise_failed` words."""
    okey = _concrete(okey)
    _, src, sig = lookup(okey, x)
    try:
        get_template = _TEMPLATES[(okey, src, sig)]
    except TypeError:  # not cacheable: plan it
        return _template(x, src, *_options(okey))[0], src, sig
    return get_template(x), src, sig


def _new_entry(okey: Hashable, src: Adapter, sig: Hashable, runs: dict[Hashable, Callable[[Any], Any]],
               x: Any) -> Callable[[Any], Any]:
    """Plan ``x`` and cache the run: the one place cache entries are created."""
    global _count
    to, device, dtype, copy, casting, opts = _options(okey)
    tgt = registry().adapter_named(to)
    run: Callable[[Any], Any]
    get_template: Callable[[Any], Template]
    if tgt.refines:
        sub: dict[Hashable, Template] = {}

        def get_template(y: Any) -> Template:
            rk = tgt.refine_key(src, y)
            t = sub.get(rk)
            if t is None:
                t = sub[rk] = _template(y, src, to, device, dtype, copy, casting, opts)[0]
            return t

        def refined(y: Any) -> Any:
            t = get_template(y)
            try:
                return t.run(y)
            except ArrayFerryError:
                raise
            except Exception as exc:
                raise_failure(t, exc, y)

        run = refined
        get_template(x)  # plan now: an array that cannot be converted fails before it is cached
    else:
        t = _template(x, src, to, device, dtype, copy, casting, opts)[0]
        run = t.run

        def get_template(y: Any) -> Template:
            return t

    _TEMPLATES[(okey, src, sig)] = get_template
    runs[sig] = run
    _count += 1
    return run


def failed(okey: Hashable, src: Adapter, sig: Hashable, exc: Exception, x: Any = _NOTHING) -> Exception:
    """The error for a cached run (options key ``okey``, source ``src``, signature ``sig``) that
    raised ``exc`` while running on ``x`` (described from ``x`` itself, not from the array the plan
    was cached for): the one place such failures are worded. ``sig`` may be a fast key (the
    hot path's): the signature of ``x`` is computed again."""
    try:
        if x is not _NOTHING and src.fast_key is not None:
            sig = src.signature(x)
        get_template = _TEMPLATES.get((okey, src, sig))
        if get_template is None:
            return exc
        t = get_template(x)
    except Exception:
        return exc
    return failure(t, exc, x)


def raise_failed(okey: Hashable, src: Adapter, sig: Hashable, exc: Exception, x: Any = _NOTHING) -> NoReturn:
    """Raise :func:`failed`'s error (``exc`` itself, unchained, when it passes through)."""
    err = failed(okey, src, sig, exc, x)
    if err is exc:
        raise exc
    raise err from exc


def _source_adapter(x: Any) -> Adapter:
    reg = registry()
    _hook()
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
    if isinstance(x, str):
        return "x is a str, not an array: turn the text into numbers first, e.g. [float(s) for s in x.split()]"
    import collections
    from collections.abc import Iterator, MappingView

    if isinstance(x, (range, set, frozenset, collections.deque, Iterator, MappingView)):  # not an unknown array
        return (f"x is a {type(x).__name__}, an iterable but not an array: arrayferry.convert(list(x), to) reads its "
                "items as NumPy reads a list")
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
    ignored: tuple[tuple[str, Any], ...] = ()
    if options:
        sopts = tuple(kv for kv in options if kv[0] in src.source_options and kv[0] not in tgt.target_options)
        if sopts:
            return _with_source_step(x, src, tgt, info, device, dtype, copy, casting, options, sopts), src.signature(x)
        # a source option of another framework (fill_null= for a NumPy array: nothing to fill) is
        # ignored, so that backend-agnostic code can pass it whatever the source is
        elsewhere = registry().source_option_names()
        ignored = tuple(kv for kv in options if kv[0] in elsewhere and kv[0] not in tgt.target_options)
        if ignored:
            options = tuple(kv for kv in options if kv not in ignored)
    t = build_template(src, info, tgt, device, dtype, copy, casting, options)
    if ignored:
        t = replace(t, options=(*t.options, *ignored), notes=(*t.notes, *(
            f"source option {k}={v!r} does not apply to {src.name} arrays (only to those of frameworks that declare "
            "it): ignored" for k, v in ignored)))
    more = tgt.plan_notes(t) if hasattr(tgt, "plan_notes") else ()
    if more:
        t = replace(t, notes=(*t.notes, *more))
    return t, src.signature(x)


def _with_source_step(x: Any, src: Adapter, tgt: Adapter, info: Any, device: Any, dtype: Any, copy: bool | None,
                      casting: str | None, options: tuple[tuple[str, Any], ...],
                      sopts: tuple[tuple[str, Any], ...]) -> Template:
    """The template for source options (``fill_null=`` for Arrow): the source adapter's step
    first, then the plan for what it returns; ``copy=False`` refuses a step that copies."""
    step, after = src.source_step(x, dict(sopts), info)
    if copy is False and step.copies:
        from ._errors import CopyRequiredError

        raise CopyRequiredError(format_message(
            f"Converting {info.summary()} to {tgt.name} with {', '.join(f'{k}={v!r}' for k, v in sopts)} "
            "needs a copy, but copy=False was given.",
            [f"{step.name}: {step.description}"],
            hint="allow the copy (copy=None), or apply the option in the source framework first"))
    rest = tuple(kv for kv in options if kv not in sopts)
    t = build_template(src, after, tgt, device, dtype, copy, casting, rest)
    first, then = step.fn, t.run

    def run(y: Any) -> Any:
        return then(first(y))

    return replace(t, source=info, steps=(step, *t.steps), run=run, options=options,
                   notes=(*t.notes, f"source option{'s' if len(sopts) > 1 else ''} "
                          f"{', '.join(f'{k}={v!r}' for k, v in sopts)}: {step.description}"))


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
    # The documented function; `arrayferry.convert` is its faster twin for `convert(x, to)`
    # (`_convert_export`: compiled, or `_convert_fast`), which hands every keyword to this one.
    if stream is not None:
        from ._cuda import parse_stream, using_stream

        with using_stream(parse_stream(stream)):
            return convert(x, to, device=device, dtype=dtype, copy=copy, casting=casting, **options)
    # options_key(to) is `to` itself for the default options (convert(x, to, copy=None))
    okey = (to if device is None and dtype is None and copy is None and casting is None and not options
            else options_key(to, device, dtype, copy, casting, options))
    return _via_cache(okey, None, x)




def _convert_fast(x: Any, to: Any, **kw: Any) -> Any:
    """``arrayferry.convert`` as the package exports it: :func:`convert` (whose signature and
    docstring it carries, through ``__wrapped__``), with the default options taken without
    filling in five keyword-only defaults and an options dict (about 60 ns of a 0.3 us budget).
    Any keyword goes to :func:`convert` itself."""
    if kw:
        return convert(x, to, **kw)
    return _via_cache(to, None, x)


functools.update_wrapper(_convert_fast, convert)
# argument errors name `convert` (`convert() missing 1 required positional argument: 'to'`)
_convert_fast.__code__ = _convert_fast.__code__.replace(co_name="convert", co_qualname="convert")


def _via_cache(okey: Hashable, types: dict[type, TypeEntry] | None, x: Any) -> Any:
    """The hot path in Python (``convert``, and converters and ``arrayferry.convert`` without the
    compiled extension): ``x``'s direct call, else :func:`_run_cached`. ``types``: the options
    key's dict, when the caller holds it (a converter)."""
    try:
        direct = (_CACHE[okey] if types is None else types)[type(x)][4]
    except (KeyError, TypeError):  # a miss, or options that cannot be hashed
        return _run_cached(okey, types, x)
    if direct is not None:
        try:
            return direct(x)
        except Exception:  # another route: plan it (see Adapter.direct_call)
            _refused(okey, x, types)
    return _run_cached(okey, types, x)


def _run_cached(okey: Hashable, types: dict[type, TypeEntry] | None, x: Any) -> Any:
    """The signature half of the hot path (after a direct call refused ``x``, or without one):
    the cached run for ``x``'s key or signature, planned on a miss, its foreign errors worded."""
    try:
        te = (_CACHE[okey] if types is None else types)[type(x)]
        sig = te[0](x)
        run = te[1][sig]
        src = te[2]
    except (KeyError, TypeError):  # a miss, or options/signature that cannot be hashed
        run, src, sig = lookup(okey, x, types)
    try:
        return run(x)
    except ArrayFerryError:
        raise
    except Exception as exc:  # foreign errors: see _plan.failure
        raise_failed(okey, src, sig, exc, x)


def _convert_refused(x: Any, to: Any) -> Any:
    """``convert(x, to)`` after ``x``'s direct call refused it (the compiled hot path's callback)."""
    _refused(to, x)
    return _run_cached(to, None, x)


def _hot() -> Any:
    """``arrayferry._speedups.Hot`` (the hot path in C), or ``None`` where it was not built."""
    from ._hostops import _speedups

    mod = _speedups()
    return None if mod is None else mod.Hot


def _exported_convert() -> Callable[..., Any]:
    """What ``arrayferry.convert`` is at run time: the compiled hot path over :data:`_CACHE`
    (``x`` and ``to`` only; anything else, and every miss, goes to :func:`convert`), or
    :func:`_convert_fast` without the extension. Either carries ``convert``'s signature and
    docstring (``__wrapped__``)."""
    hot = _hot()
    if hot is None:
        return _convert_fast
    fn = hot(None, _CACHE, convert, _convert_refused)
    functools.update_wrapper(fn, convert)
    return fn  # type: ignore[no-any-return]


_convert_export = _exported_convert()


def _uncached(x: Any, to: Any, device: Any, dtype: Any, copy: bool | None, casting: str | None,
              opts: tuple[tuple[str, Any], ...] = ()) -> Any:
    """Convert without the cache (options or a signature that cannot be hashed)."""
    src = _TYPES.get(type(x)) or _source_adapter(x)
    return run_template(_template(x, src, to, device, dtype, copy, casting, opts)[0], x)


@overload
def converter(to: Literal["numpy", "np"], *, device: Any = None, dtype: Any = None, copy: bool | None = None,
              stream: Any = None, casting: str | None = None, **options: Any) -> Callable[[Any], numpy.typing.NDArray[Any]]: ...
@overload
def converter(to: Literal["torch", "pytorch", "pt"], *, device: Any = None, dtype: Any = None,
              copy: bool | None = None, stream: Any = None, casting: str | None = None, **options: Any) -> Callable[[Any], torch.Tensor]: ...
@overload
def converter(to: Literal["jax"], *, device: Any = None, dtype: Any = None, copy: bool | None = None,
              stream: Any = None, casting: str | None = None, **options: Any) -> Callable[[Any], jax.Array]: ...
@overload
def converter(to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None,
              stream: Any = None, casting: str | None = None, **options: Any) -> Callable[[Any], Any]: ...


def converter(to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None,
              stream: Any = None, casting: str | None = None, **options: Any) -> Callable[[Any], Any]:
    """A function converting one array to ``to`` with these options: ``converter(to, ...)(x)`` is
    ``convert(x, to, ...)``, minus the work of reading the options on every call (for loops).

    Same arguments as :func:`convert` (target options included); the target is checked now (an unknown one raises
    :class:`UnknownFrameworkError` here). The converter shares :func:`convert`'s plan cache: each
    array's signature (dtype, layout, flags, device, ...) picks its plan, so arrays of any kind
    may be passed, and a new kind is planned on first sight, exactly as ``convert`` would.

    >>> to_torch = arrayferry.converter("torch")        # doctest: +SKIP
    >>> tensors = [to_torch(a) for a in arrays]         # doctest: +SKIP
    """
    registry().adapter_named(to)
    okey = _concrete(options_key(to, device, dtype, copy, casting, options))  # an example array: its name and device
    try:
        types = types_for(okey)
    except TypeError:  # unhashable options: every call plans
        def uncached(x: Any) -> Any:
            return convert(x, to, device=device, dtype=dtype, copy=copy, stream=stream, casting=casting, **options)

        return uncached
    spec = None
    if stream is not None:
        from ._cuda import parse_stream

        spec = parse_stream(stream)

    def conv(x: Any) -> Any:
        return _via_cache(okey, types, x)

    if spec is None:
        hot = _hot()
        out: Any = conv
        if hot is not None:  # the same, compiled; misses and failures come back to conv (or after_refusal)
            def after_refusal(x: Any) -> Any:
                _refused(okey, x, types)
                return _run_cached(okey, types, x)

            out = hot(types, None, conv, after_refusal)
        out.entries = types  # convert_tree's map over uniform containers
        return out  # type: ignore[no-any-return]

    def conv_on_stream(x: Any) -> Any:
        from ._cuda import using_stream

        with using_stream(spec):
            return conv(x)

    return conv_on_stream


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
