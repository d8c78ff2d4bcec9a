"""``@arrayferry.accepts(framework)``: write a function once in one framework, call it with any.

The decorated function's array arguments (all of them, or those named in ``args``; arrays
nested in lists, dicts, tuples and dataclasses too) are converted to ``framework`` before the
call. Array results (also inside tuples, lists, dicts) are converted back to the framework and
device of the *caller*: the first array argument, or the argument named in ``like``.

>>> import arrayferry as af
>>> @af.accepts("torch")
... def softmax(x):
...     return x.softmax(-1)
>>> softmax(np.zeros(3))                      # doctest: +SKIP
array([0.33333333, 0.33333333, 0.33333333])
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._errors import ArrayFerryError, MixedFrameworksError, format_message

__all__ = ["accepts", "MixedFrameworksError", "namespace_for"]

F = TypeVar("F", bound=Callable[..., Any])

_MIXED = ("error", "first")
_NS_CACHE: dict[str, Any] = {}


def namespace_for(framework: str, example: Any = None) -> Any:
    """The array-API namespace of ``framework``, from array-api-compat.

    With an ``example`` array, ``array_api_compat.array_namespace(example)``; otherwise the
    module the framework's adapter names in ``Adapter.array_api_namespace``
    (``array_api_compat.torch``, ...).
    """
    ns = _NS_CACHE.get(framework)
    if ns is not None:
        return ns
    try:
        import array_api_compat
    except ImportError as exc:
        raise ArrayFerryError(
            format_message(
                f"An array-API namespace for {framework!r} was asked for, but array-api-compat is not installed.",
                hint="pip install 'array-api-compat>=1.12'",
            )
        ) from exc
    if example is not None:
        ns = array_api_compat.array_namespace(example)
    else:
        import importlib

        from ._registry import registry

        reg = registry()
        modname = reg.adapter_named(framework).array_api_namespace
        if modname is None:
            known = sorted(n for n, a in reg.adapters.items() if a.array_api_namespace)
            raise ArrayFerryError(
                format_message(
                    f"No array-API namespace is known for framework {framework!r} without an array of it.",
                    [f"known without an array (Adapter.array_api_namespace): {', '.join(known) or 'none'}"],
                    hint="pass at least one array argument, or pass xp= yourself",
                )
            )
        ns = importlib.import_module(modname)
    _NS_CACHE[framework] = ns
    return ns


def _skip_first(sig: inspect.Signature) -> str | None:
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "cls") and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
    ):
        return params[0].name
    return None


def _first_array(value: Any, found: list[Any]) -> None:
    """Append every array leaf of ``value`` to ``found`` (tree order)."""
    from ._tree import leaves

    found.extend(x for _, x in leaves(value)[0])


def accepts(
    framework: str,
    *,
    args: Iterable[str] | None = None,
    like: str | None = None,
    mixed: str = "error",
    device: Any = None,
    copy: bool | None = None,
    stream: Any = None,
    namespace_arg: str = "xp",
    convert_results: bool = True,
    options: Mapping[str, Any] | None = None,
) -> Callable[[F], F]:
    """Decorate a function written for ``framework`` so that it accepts arrays of any framework.

    :param framework: the framework the function body is written in (``"torch"``, ``"numpy"``, ...).
    :param args: names of the parameters to convert (default: every parameter except a leading
        ``self``/``cls`` and ``namespace_arg``). Arrays nested in containers are converted too.
    :param like: the parameter whose array decides where results go back (default: the first
        array argument, in signature order).
    :param mixed: what to do when array arguments come from more than one framework:
        ``"error"`` (default) raises :class:`MixedFrameworksError`; ``"first"`` converts them all
        and sends results back to the framework of the first array argument (or ``like``).
    :param device: device for the converted arguments (default: each argument's own device).
    :param copy: the copy policy for converting arguments (``None`` aliases when possible;
        ``True`` gives the function memory it may modify freely; ``False`` raises
        :class:`CopyRequiredError` where a copy would be needed). Results go back with
        ``copy=None``.
    :param stream: the CUDA stream for the conversions in and out, as for :func:`convert`.
    :param namespace_arg: if the function declares a parameter with this name and the caller
        does not pass it, it receives the array-API namespace of ``framework`` from
        array-api-compat (``array_api_compat.array_namespace``).
    :param convert_results: set ``False`` to return results in ``framework`` as they are.
    :param options: target options for converting the arguments (``options={"chunks": 100}`` for
        ``accepts("dask")``), as for :func:`convert`; results go back without them.

    The wrapper keeps the function's name, docstring and signature (``functools.wraps`` and
    ``__signature__``), and works on methods (``self`` is never converted). Coroutine functions
    (``async def``) get a coroutine-function wrapper whose awaited result is converted back;
    generator and async generator functions get a generator of the same kind that converts
    every yielded value back (``send``/``throw``/``athrow`` are forwarded).
    """
    if mixed not in _MIXED:
        raise ArrayFerryError(format_message(
            f"accepts(mixed={mixed!r}) is not a known rule.", [f"known rules: {', '.join(_MIXED)}"],
            hint='use mixed="error" (raise on mixed frameworks) or mixed="first" (the first array decides)'))
    if not isinstance(framework, str) and not hasattr(framework, "__name__"):
        raise ArrayFerryError(format_message(
            f"accepts() needs a framework name such as 'torch', got {framework!r}.",
            hint="write @arrayferry.accepts('torch')"))
    selected = None if args is None else tuple(args)
    opts = dict(options or {})

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        skip = _skip_first(sig)
        if selected is not None:
            unknown = [n for n in selected if n not in sig.parameters]
            if unknown:
                raise ArrayFerryError(format_message(
                    f"accepts(args=...) names parameters that {fn.__qualname__}{sig} does not have: {', '.join(unknown)}.",
                    hint=f"choose among: {', '.join(names)}"))
            conv_names = [n for n in names if n in selected]
        else:
            conv_names = [n for n in names if n != skip and n != namespace_arg]
        if like is not None and like not in sig.parameters:
            raise ArrayFerryError(format_message(
                f"accepts(like={like!r}): {fn.__qualname__}{sig} has no such parameter.",
                hint=f"choose among: {', '.join(names)}"))
        wants_ns = namespace_arg in sig.parameters
        target = framework if isinstance(framework, str) else framework.__name__

        def enter(a: tuple[Any, ...], kw: dict[str, Any]) -> tuple[inspect.BoundArguments, Any]:
            """Convert the arguments; return them bound, and the caller's (adapter, array) or None."""
            from ._api import _TYPES, _source_adapter
            from ._tree import convert_tree

            bound = sig.bind_partial(*a, **kw)
            arguments = bound.arguments
            # which framework the caller speaks: the first array argument (or `like`)
            frameworks: dict[str, str] = {}
            caller: Any = None
            for name in conv_names:
                if name not in arguments:
                    continue
                leaves: list[Any] = []
                _first_array(arguments[name], leaves)
                for x in leaves:
                    src = _TYPES.get(type(x)) or _source_adapter(x)
                    frameworks.setdefault(src.name, name)
                    if caller is None and like is None:
                        caller = (src, x)
            if like is not None and like in arguments:
                leaves = []
                _first_array(arguments[like], leaves)
                if leaves:
                    caller = (_TYPES.get(type(leaves[0])) or _source_adapter(leaves[0]), leaves[0])
            if len(frameworks) > 1 and mixed == "error":
                raise MixedFrameworksError(format_message(
                    f"{fn.__qualname__} (written for {target}) was called with arrays from several frameworks.",
                    [f"{fw}: first in argument {arg!r}" for fw, arg in frameworks.items()],
                    hint=f'convert them to one framework first, or decorate with accepts({target!r}, mixed="first") '
                    "to send results back to the first array's framework"))
            first_converted: Any = None
            for name in conv_names:
                if name in arguments:
                    value = arguments[name]
                    new = convert_tree(value, target, device=device, copy=copy, stream=stream, **opts)
                    arguments[name] = new
                    if first_converted is None and frameworks:
                        leaves = []
                        _first_array(new, leaves)
                        if leaves:
                            first_converted = leaves[0]
            if wants_ns and namespace_arg not in arguments:
                arguments[namespace_arg] = namespace_for(target, first_converted)
            return bound, caller

        # The fast path: every argument positional, each converted one an array or a non-array
        # leaf, one source framework; arrays go through one pre-bound converter, results back
        # through one per (framework, device) of the caller. Anything else takes enter() above.
        from ._api import _TYPES, adapter_device_of, converter
        from ._tree import _CUSTOM, _KINDS, _LEAF, _kind, convert_tree

        params = list(sig.parameters.values())
        plain = 0
        for prm in params:
            if prm.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                break
            plain += 1
        conv_at = tuple(i for i, n in enumerate(names[:plain]) if n in conv_names)
        ns_at = names.index(namespace_arg) if wants_ns else -1
        fast_ok = like is None
        state: dict[str, Any] = {}
        backs: dict[tuple[Any, Any], Callable[[Any], Any]] = {}

        no_kw: dict[str, Any] = {}

        def fast_enter(a: tuple[Any, ...]) -> tuple[list[Any], dict[str, Any], Any] | None:
            """The converted arguments, the namespace keyword if any, and the caller; ``None`` when
            this call needs enter()."""
            conv = state.get("in")
            if conv is None:  # made on first call: decorating never loads the plugins
                conv = state["in"] = converter(target, device=device, copy=copy, stream=stream, **opts)
            new = list(a)
            caller: Any = None
            src0: Any = None
            first_converted: Any = None
            n = len(a)
            for i in conv_at:
                if i >= n:
                    break
                v = a[i]
                src = _TYPES.get(type(v))
                if src is None or (_CUSTOM and type(v) in _CUSTOM):  # a leaf, or this call needs enter()
                    if (_KINDS.get(type(v)) or _kind(type(v))) == _LEAF:
                        continue
                    return None
                if caller is None:
                    caller, src0 = (src, v), src
                elif src is not src0 and mixed == "error":
                    return None
                new[i] = y = conv(v)
                if first_converted is None:
                    first_converted = y
            if wants_ns and ns_at >= n:
                return new, {namespace_arg: namespace_for(target, first_converted)}, caller
            return new, no_kw, caller

        def back(result: Any, caller: Any) -> Any:
            if caller is None or not convert_results:
                return result
            src, x = caller
            try:
                dev = src.device_of(x)
            except Exception:  # worded as device_of words it
                dev = adapter_device_of(src, x)
            if _TYPES.get(type(result)) is not None and not (_CUSTOM and type(result) in _CUSTOM):
                # one array: the pre-bound converter back (convert_tree of an array is that call)
                last = state.get("back")
                if last is not None and last[0] is src and last[1] is dev:  # host adapters return one Device object
                    conv = last[2]
                else:
                    key = (src, dev)
                    conv = backs.get(key)
                    if conv is None:
                        conv = backs[key] = converter(src.name, device=dev, stream=stream)
                    state["back"] = (src, dev, conv)
                return conv(result)
            return convert_tree(result, src.name, device=dev, stream=stream)

        def call_args(a: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, dict[str, Any], Any]:
            if fast_ok and not kw and len(a) <= plain:
                got = fast_enter(a)
                if got is not None:
                    return got
            bound, caller = enter(a, kw)
            return bound.args, bound.kwargs, caller

        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*a: Any, **kw: Any) -> Any:
                args, kwargs, caller = call_args(a, kw)
                agen = fn(*args, **kwargs)
                try:
                    value = await agen.__anext__()
                    while True:
                        try:
                            sent = yield back(value, caller)
                        except GeneratorExit:
                            raise
                        except BaseException as exc:  # noqa: BLE001 - forwarded to the generator
                            value = await agen.athrow(exc)
                        else:
                            value = await agen.asend(sent)
                except StopAsyncIteration:
                    return
                finally:
                    await agen.aclose()

            wrapper = agen_wrapper
        elif inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*a: Any, **kw: Any) -> Any:
                args, kwargs, caller = call_args(a, kw)
                return back(await fn(*args, **kwargs), caller)

            wrapper = async_wrapper
        elif inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*a: Any, **kw: Any) -> Any:
                args, kwargs, caller = call_args(a, kw)
                gen = fn(*args, **kwargs)
                try:
                    value = next(gen)
                    while True:
                        try:
                            sent = yield back(value, caller)
                        except GeneratorExit:
                            raise
                        except BaseException as exc:  # noqa: BLE001 - forwarded to the generator
                            value = gen.throw(exc)
                        else:
                            value = gen.send(sent)
                except StopIteration as stop:
                    return back(stop.value, caller)
                finally:
                    gen.close()

            wrapper = gen_wrapper
        else:

            @functools.wraps(fn)
            def sync_wrapper(*a: Any, **kw: Any) -> Any:
                got = fast_enter(a) if fast_ok and not kw and len(a) <= plain else None
                if got is None:
                    bound, caller = enter(a, kw)
                    return back(fn(*bound.args, **bound.kwargs), caller)
                args, kwargs, caller = got
                return back(fn(*args, **kwargs), caller)

            wrapper = sync_wrapper

        out: Any = wrapper
        out.__signature__ = sig
        return out  # type: ignore[no-any-return]

    return decorate
