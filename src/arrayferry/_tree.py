"""Convert every array in a nested structure: ``convert_tree``, ``plan_tree``, ``register_container``.

A *tree* is any mix of dicts, lists, tuples, named tuples, dataclass instances and containers
registered with :func:`register_container`. Arrays of registered frameworks are its leaves;
everything else (strings, numbers, ``None``, unknown objects) is kept as it is. Containers are
rebuilt (new dicts, lists, tuples; dataclasses through :func:`dataclasses.replace`), so the result
never shares a container with the input, only (when the plan allows) array memory.

Speed: each leaf goes through the same cache as :func:`arrayferry.convert`: one dict lookup for
the leaf's adapter, its ``signature``, one dict lookup for the plan. Leaves with the same
signature share one plan; no plan is built per leaf.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _api
from ._dtypes import ITEMSIZE
from ._errors import ArrayFerryError, format_message
from ._plan import Plan

__all__ = ["convert_tree", "plan_tree", "register_container", "unregister_container", "TreePlan", "LeafPlan"]

Flatten = Callable[[Any], "tuple[Sequence[Any] | Mapping[Any, Any], Any]"]
Unflatten = Callable[[Any, Any], Any]

#: Containers registered by users: exact type -> (flatten, unflatten).
_CUSTOM: dict[type, tuple[Flatten, Unflatten]] = {}

# What a type is, cached per type: "array", "leaf", or a container kind.
_ARRAY = "array"
_LEAF = "leaf"
_KINDS: dict[type, str] = {}
_hooked = False


def register_container(tp: type, flatten: Flatten, unflatten: Unflatten) -> None:
    """Teach :func:`convert_tree` to walk into containers of type ``tp`` (exact type, not subclasses).

    :param flatten: ``flatten(obj) -> (children, aux)``. ``children`` is a sequence (paths show
        ``[i]``) or a mapping (paths show ``[key]``); ``aux`` is anything needed to rebuild.
    :param unflatten: ``unflatten(aux, children) -> obj``, given children of the same kind
        (a list, or a dict with the same keys) holding the converted values.

    Registered types take precedence over the built-in handling (a registered ``dict`` subclass
    or dataclass is walked with your functions).
    """
    if not isinstance(tp, type):
        raise ArrayFerryError(format_message(f"register_container needs a type, got {tp!r}.",
                                             hint="pass the container class itself"))
    if not callable(flatten) or not callable(unflatten):
        raise ArrayFerryError(format_message(f"register_container({tp.__qualname__}): flatten and unflatten must be callables.",
                                             hint="flatten(obj) -> (children, aux); unflatten(aux, children) -> obj"))
    _CUSTOM[tp] = (flatten, unflatten)
    _KINDS.clear()


def unregister_container(tp: type) -> None:
    """Forget a container type registered with :func:`register_container` (no error if unknown)."""
    _CUSTOM.pop(tp, None)
    _KINDS.clear()


def _clear_kinds() -> None:
    _KINDS.clear()


def _kind(tp: type) -> str:
    """Classify a type once: array leaf, plain leaf, or which container handler walks it."""
    global _hooked
    k = _KINDS.get(tp)
    if k is not None:
        return k
    if not _hooked:
        from ._registry import registry

        registry().on_change(_clear_kinds)
        _hooked = True
    if tp in _CUSTOM:
        k = "custom"
    elif _api._TYPES.get(tp) is not None:
        k = _ARRAY
    else:
        from ._registry import registry

        if registry().adapter_for_type(tp) is not None:
            k = _ARRAY
        elif tp is dict:
            k = "dict"
        elif tp is list:
            k = "list"
        elif tp is tuple:
            k = "tuple"
        elif issubclass(tp, tuple) and hasattr(tp, "_fields"):
            k = "namedtuple"
        elif dataclasses.is_dataclass(tp):
            k = "dataclass"
        elif issubclass(tp, dict):
            k = "dictsub"
        elif issubclass(tp, list):
            k = "listsub"
        elif issubclass(tp, tuple):
            k = "tuplesub"
        else:
            k = _LEAF
    _KINDS[tp] = k
    return k


class _Failed(Exception):
    """Carries the path of the leaf whose conversion raised, outwards through the containers."""

    def __init__(self, exc: BaseException, path: list[str]) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.path = path


def _fail(exc: BaseException, seg: str) -> _Failed:
    if isinstance(exc, _Failed):
        exc.path.append(seg)
        return exc
    return _Failed(exc, [seg])


def _map(node: Any, fn: Callable[[Any], Any], active: set[int]) -> Any:
    """Rebuild ``node`` with ``fn`` applied to every array leaf."""
    k = _KINDS.get(type(node)) or _kind(type(node))
    if k == _ARRAY:
        return fn(node)
    if k == _LEAF:
        return node
    nid = id(node)
    if nid in active:
        raise ArrayFerryError(format_message(
            f"The tree contains itself (a {type(node).__qualname__} that is its own descendant).",
            hint="convert_tree walks trees, not graphs with cycles; break the cycle first"))
    active.add(nid)
    try:
        return _HANDLERS[k](node, fn, active)
    finally:
        active.discard(nid)


def _map_dict(node: dict[Any, Any], fn: Callable[[Any], Any], active: set[int]) -> Any:
    out = {}
    key: Any = None
    kinds = _KINDS
    try:
        for key, v in node.items():
            out[key] = fn(v) if kinds.get(type(v)) == _ARRAY else _map(v, fn, active)
    except Exception as exc:
        raise _fail(exc, f"[{key!r}]") from None
    if type(node) is dict:
        return out
    if isinstance(node, defaultdict):
        return defaultdict(node.default_factory, out)
    if isinstance(node, OrderedDict) and type(node) is OrderedDict:
        return OrderedDict(out)
    new = _copy.copy(node)
    new.update(out)
    return new


def _map_list(node: list[Any], fn: Callable[[Any], Any], active: set[int]) -> Any:
    out = _map_seq(node, fn, active)
    if type(node) is list:
        return out
    new = _copy.copy(node)
    new[:] = out
    return new


def _map_seq(node: Sequence[Any], fn: Callable[[Any], Any], active: set[int]) -> list[Any]:
    out = []
    kinds = _KINDS
    try:
        for v in node:
            out.append(fn(v) if kinds.get(type(v)) == _ARRAY else _map(v, fn, active))
    except Exception as exc:
        raise _fail(exc, f"[{len(out)}]") from None
    return out


def _map_tuple(node: tuple[Any, ...], fn: Callable[[Any], Any], active: set[int]) -> Any:
    return tuple(_map_seq(node, fn, active))


def _map_tuplesub(node: tuple[Any, ...], fn: Callable[[Any], Any], active: set[int]) -> Any:
    return type(node)(_map_seq(node, fn, active))


def _map_namedtuple(node: Any, fn: Callable[[Any], Any], active: set[int]) -> Any:
    out = []
    name = ""
    try:
        for name in node._fields:
            out.append(_map(getattr(node, name), fn, active))
    except Exception as exc:
        raise _fail(exc, f".{name}") from None
    return type(node)(*out)


def _map_dataclass(node: Any, fn: Callable[[Any], Any], active: set[int]) -> Any:
    init: dict[str, Any] = {}
    late: dict[str, Any] = {}
    name = ""
    try:
        for f in dataclasses.fields(node):
            name = f.name
            if not hasattr(node, name):
                continue
            new = _map(getattr(node, name), fn, active)
            (init if f.init else late)[name] = new
    except Exception as exc:
        raise _fail(exc, f".{name}") from None
    try:
        out = dataclasses.replace(node, **init)
    except (TypeError, ValueError):  # e.g. an InitVar without default: rebuild field by field
        out = _copy.copy(node)
        late = {**init, **late}
    for name, v in late.items():
        object.__setattr__(out, name, v)  # init=False fields; works on frozen dataclasses too
    return out


def _map_custom(node: Any, fn: Callable[[Any], Any], active: set[int]) -> Any:
    flatten, unflatten = _CUSTOM[type(node)]
    children, aux = flatten(node)
    if isinstance(children, Mapping):
        out_map = {}
        key: Any = None
        try:
            for key, v in children.items():
                out_map[key] = _map(v, fn, active)
        except Exception as exc:
            raise _fail(exc, f"[{key!r}]") from None
        return unflatten(aux, out_map)
    out = []
    try:
        for v in children:
            out.append(_map(v, fn, active))
    except Exception as exc:
        raise _fail(exc, f"[{len(out)}]") from None
    return unflatten(aux, out)


_HANDLERS: dict[str, Callable[[Any, Callable[[Any], Any], set[int]], Any]] = {
    "dict": _map_dict,
    "dictsub": _map_dict,
    "list": _map_list,
    "listsub": _map_list,
    "tuple": _map_tuple,
    "tuplesub": _map_tuplesub,
    "namedtuple": _map_namedtuple,
    "dataclass": _map_dataclass,
    "custom": _map_custom,
}


def _leaf_converter(to: Any, device: Any, dtype: Any, copy: bool | None,
                    casting: str | None = None, options: dict[str, Any] | None = None) -> Callable[[Any], Any]:
    """The per-leaf function: :func:`arrayferry.convert`'s hot path, with the options bound once.

    Plans come from (and go into) the same cache as ``convert``; within one call they are also
    kept in a local dict keyed by the leaf's signature alone, which saves building the full key.
    """
    types = _api._TYPES
    plans = _api._PLANS
    source_adapter = _api._source_adapter
    new_entry = _api._new_entry
    convert = _api.convert
    local: dict[Hashable, Callable[[Any], Any]] = {}
    opts = tuple(sorted(options.items())) if options else ()
    # convert's key has the options and their types last, when given
    more: tuple[Any, ...] = (opts, tuple(type(v) for _, v in opts)) if opts else ()

    def conv(x: Any) -> Any:
        src = types.get(type(x)) or source_adapter(x)
        sig = src.signature(x)
        ent = local.get((src, sig))
        if ent is None:
            key = (src, sig, to, device, dtype, copy, casting, *more)  # convert's key
            try:
                ent = plans.get(key)
            except TypeError:  # unhashable device/dtype object: the slow path plans every time
                return convert(x, to, device=device, dtype=dtype, copy=copy, casting=casting, **dict(opts))
            if ent is None:
                ent = new_entry(x, src, key, to, device, dtype, copy, casting, opts)
            local[(src, sig)] = ent
        try:
            return ent(x)
        except ArrayFerryError:
            raise
        except Exception as exc:  # as in convert: foreign errors name the route
            _api.raise_failed((src, sig, to, device, dtype, copy, casting, *more), exc, x)

    return conv


def _reraise(failed: _Failed, to: Any) -> None:
    path = "".join(reversed(failed.path))
    exc = failed.exc
    if isinstance(exc, ArrayFerryError):
        try:
            new = type(exc)(f"In the tree, leaf {path} could not be converted to {to!r}:\n{exc}")
        except Exception:
            new = None
        if new is not None:
            raise new from exc
    exc.add_note(f"(raised while converting tree leaf {path} to {to!r})")
    raise exc


def convert_tree(tree: Any, to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None,
                 stream: Any = None, casting: str | None = None, **options: Any) -> Any:
    """Convert every array leaf of ``tree`` to framework ``to``; same options as :func:`convert`.

    :param tree: an array, or dicts / lists / tuples / named tuples / dataclass instances /
        registered containers nested in any way. Non-array leaves are kept as they are (the same
        objects); containers are rebuilt.
    :param to: the target framework, as for :func:`convert`.
    :param device: target device for every leaf (default: each leaf's own, when the target can
        hold it).
    :param dtype: cast every array leaf to this dtype.
    :param copy: the copy policy for every leaf (``None``, ``False``, ``True``).
    :param stream: the CUDA stream the results will be used on, as for :func:`convert`.
    :param casting: which casts may change values, as for :func:`convert`.
    :param options: target options for every leaf, as for :func:`convert` (``chunks=`` for dask).
    :returns: a tree of the same structure. A failing leaf raises the error
        :func:`convert` would raise, of the same class, its message starting with the leaf's path
        (e.g. ``['params'][0].weight``).
    """
    from ._registry import registry

    tgt = registry().adapter_named(to)  # an unknown target fails even when the tree holds no array
    if options:
        from ._plan import check_options

        check_options(tgt, options)  # so does an unknown option
    if stream is not None:
        from ._cuda import parse_stream, using_stream

        with using_stream(parse_stream(stream)):
            return convert_tree(tree, to, device=device, dtype=dtype, copy=copy, casting=casting, **options)
    conv = _leaf_converter(to, device, dtype, copy, casting, options)
    try:
        return _map(tree, conv, set())
    except _Failed as failed:
        _reraise(failed, to)
        raise  # pragma: no cover - _reraise always raises


# ------------------------------------------------------------------------------------------------
# plan_tree: the report mode


@dataclass(frozen=True)
class LeafPlan:
    """One array leaf of a :class:`TreePlan`: where it is, what it is, and the plan it shares."""

    path: str
    plan: Plan
    shape: tuple[int, ...]
    nbytes_moved: int

    @property
    def copied(self) -> bool:
        """True when converting this leaf copies its data."""
        return not self.plan.zero_copy

    @property
    def reason(self) -> str:
        """Why it is copied (the copying steps' descriptions), or ``"zero-copy"``."""
        if self.plan.zero_copy:
            return "zero-copy"
        return "; ".join(s.description for s in self.plan.steps if s.copies)


class TreePlan:
    """What :func:`convert_tree` would do to a tree: per leaf path, its plan; nothing moved yet.

    Leaves with the same signature share one :class:`Plan` object (``plans`` lists the distinct
    ones). ``explain()`` groups leaves by plan.
    """

    def __init__(self, to: str, copy: bool | None, leaves: list[LeafPlan], kept: list[str]) -> None:
        self.to = to
        self.copy = copy
        self.leaves: tuple[LeafPlan, ...] = tuple(leaves)
        #: Paths of the leaves that are not arrays (kept as they are).
        self.kept: tuple[str, ...] = tuple(kept)

    @property
    def plans(self) -> tuple[Plan, ...]:
        """The distinct plans, in the order their first leaf appears."""
        seen: dict[int, Plan] = {}
        for lp in self.leaves:
            seen.setdefault(id(lp.plan), lp.plan)
        return tuple(seen.values())

    @property
    def copied(self) -> tuple[LeafPlan, ...]:
        """The leaves whose conversion copies data."""
        return tuple(lp for lp in self.leaves if lp.copied)

    @property
    def zero_copy(self) -> bool:
        """True when no leaf is copied (every result shares memory with its input)."""
        return not any(lp.copied for lp in self.leaves)

    @property
    def nbytes_moved(self) -> int:
        """Bytes written by copying steps, over all leaves."""
        return sum(lp.nbytes_moved for lp in self.leaves)

    def __getitem__(self, path: str) -> LeafPlan:
        for lp in self.leaves:
            if lp.path == path:
                return lp
        raise KeyError(path)

    def __iter__(self) -> Iterator[LeafPlan]:
        return iter(self.leaves)

    def __len__(self) -> int:
        return len(self.leaves)

    def explain(self, max_paths: int = 8) -> str:
        """A readable account: totals, then each distinct plan with the leaves that use it."""
        from ._plan import _fmt_bytes

        n = len(self.leaves)
        lines = [
            f"Tree plan: {n} array leaf(s) -> {self.to}, {len(self.plans)} distinct plan(s); "
            f"{len(self.copied)} copied, {n - len(self.copied)} zero-copy; about {_fmt_bytes(self.nbytes_moved)} written.",
        ]
        if self.kept:
            lines.append(f"{len(self.kept)} non-array leaf(s) kept as they are.")
        groups: dict[int, list[LeafPlan]] = {}
        for lp in self.leaves:
            groups.setdefault(id(lp.plan), []).append(lp)
        for i, group in enumerate(groups.values(), 1):
            p = group[0].plan
            steps = ", ".join(s.name for s in p.steps) or "identity"
            head = f"{p.source.framework} {p.source.dtype} {p.source.device} {p.source.layout}"
            what = "zero-copy" if p.zero_copy else f"copied: {group[0].reason}"
            lines.append(f"Plan {i} ({head}; route {p.route}: {steps}) - {what}")
            shown = group[:max_paths]
            lines.extend(f"  {lp.path or '(root)'} {lp.shape}" for lp in shown)
            if len(group) > len(shown):
                lines.append(f"  ... and {len(group) - len(shown)} more leaf(s)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def __repr__(self) -> str:
        return f"<TreePlan to={self.to} leaves={len(self.leaves)} copied={len(self.copied)} bytes={self.nbytes_moved}>"


def _walk(node: Any, path: str, out: list[tuple[str, Any]], kept: list[str], active: set[int]) -> None:
    """Collect ``(path, leaf)`` pairs in the order :func:`convert_tree` visits them."""
    k = _kind(type(node))
    if k == _ARRAY:
        out.append((path, node))
        return
    if k == _LEAF:
        kept.append(path)
        return
    if id(node) in active:
        raise ArrayFerryError(format_message(
            f"The tree contains itself at {path or '(root)'}.",
            hint="convert_tree walks trees, not graphs with cycles; break the cycle first"))
    active.add(id(node))
    try:
        items: list[tuple[str, Any]]
        if k in ("dict", "dictsub"):
            items = [(f"[{key!r}]", v) for key, v in node.items()]
        elif k in ("list", "listsub", "tuple", "tuplesub"):
            items = [(f"[{i}]", v) for i, v in enumerate(node)]
        elif k == "namedtuple":
            items = [(f".{f}", getattr(node, f)) for f in node._fields]
        elif k == "dataclass":
            items = [(f".{f.name}", getattr(node, f.name)) for f in dataclasses.fields(node) if hasattr(node, f.name)]
        else:
            children, _ = _CUSTOM[type(node)][0](node)
            if isinstance(children, Mapping):
                items = [(f"[{key!r}]", v) for key, v in children.items()]
            else:
                items = [(f"[{i}]", v) for i, v in enumerate(children)]
        for seg, v in items:
            _walk(v, path + seg, out, kept, active)
    finally:
        active.discard(id(node))


def plan_tree(tree: Any, to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None,
              stream: Any = None, casting: str | None = None, **options: Any) -> TreePlan:
    """Plan :func:`convert_tree` without moving data: per leaf path, whether it is copied and why.

    Same arguments as :func:`convert_tree`. Raises what :func:`plan` raises for the first leaf
    that cannot be converted, its message starting with the leaf's path.
    """
    from ._registry import registry

    tgt = registry().adapter_named(to)
    if options:
        from ._plan import check_options

        check_options(tgt, options)
    found: list[tuple[str, Any]] = []
    kept: list[str] = []
    _walk(tree, "", found, kept, set())
    plans: dict[Hashable, Plan] = {}
    leaves: list[LeafPlan] = []
    for path, x in found:
        src = _api._TYPES.get(type(x)) or _api._source_adapter(x)
        try:
            key: Hashable = (src.name, src.signature(x), tgt.refine_key(src, x) if tgt.refines else ())
            p = plans.get(key)
            if p is None:
                p = plans[key] = _api.plan(x, to, device=device, dtype=dtype, copy=copy, stream=stream, casting=casting,
                                           **options)
            shape = tuple(src.describe(x).shape)
        except Exception as exc:
            _reraise(_Failed(exc, [path or "(root)"]), to)
            raise  # pragma: no cover
        size = 1
        for s in shape:
            size *= s
        per_copy = size * ITEMSIZE.get(p.dtype, p.source.itemsize or 1)
        leaves.append(LeafPlan(path, p, shape, per_copy * p.copies))
    return TreePlan(tgt.name, copy, leaves, kept)
