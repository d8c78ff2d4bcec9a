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
from collections.abc import Callable, Iterator, Mapping, Sequence
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


# ------------------------------------------------------------------------------------------------
# The walker: one flatten/unflatten pair per container kind, used by convert_tree (``_map``), by
# plan_tree and @accepts (``leaves``, with paths).
#
#   flatten(node) -> (children: list, aux)      unflatten(node, aux, new_children) -> new node
#   segment(aux, i) -> the path segment of child i ("[0]", "['key']", ".field")


def _flatten_dict(node: dict[Any, Any]) -> tuple[list[Any], Any]:
    return list(node.values()), list(node)


def _unflatten_dict(node: dict[Any, Any], keys: list[Any], out: list[Any]) -> Any:
    new = dict(zip(keys, out, strict=True))
    if type(node) is dict:
        return new
    if isinstance(node, defaultdict):
        return defaultdict(node.default_factory, new)
    if isinstance(node, OrderedDict) and type(node) is OrderedDict:
        return OrderedDict(new)
    rebuilt = _copy.copy(node)
    rebuilt.update(new)
    return rebuilt


def _flatten_seq(node: Sequence[Any]) -> tuple[Sequence[Any], Any]:
    return node, None


def _unflatten_list(node: list[Any], aux: Any, out: list[Any]) -> Any:
    if type(node) is list:
        return out
    new = _copy.copy(node)
    new[:] = out
    return new


def _unflatten_tuple(node: tuple[Any, ...], aux: Any, out: list[Any]) -> Any:
    return tuple(out)


def _unflatten_tuplesub(node: tuple[Any, ...], aux: Any, out: list[Any]) -> Any:
    return type(node)(out)


def _flatten_namedtuple(node: Any) -> tuple[list[Any], Any]:
    return list(node), node._fields


def _unflatten_namedtuple(node: Any, aux: Any, out: list[Any]) -> Any:
    return type(node)(*out)


def _flatten_dataclass(node: Any) -> tuple[list[Any], Any]:
    fields = [f for f in dataclasses.fields(node) if hasattr(node, f.name)]
    return [getattr(node, f.name) for f in fields], [(f.name, f.init) for f in fields]


def _unflatten_dataclass(node: Any, aux: list[tuple[str, bool]], out: list[Any]) -> Any:
    init = {name: v for (name, is_init), v in zip(aux, out, strict=True) if is_init}
    late = {name: v for (name, is_init), v in zip(aux, out, strict=True) if not is_init}
    try:
        new = dataclasses.replace(node, **init)
    except (TypeError, ValueError):  # e.g. an InitVar without default: rebuild field by field
        new = _copy.copy(node)
        late = {**init, **late}
    for name, v in late.items():
        object.__setattr__(new, name, v)  # init=False fields; works on frozen dataclasses too
    return new


def _flatten_custom(node: Any) -> tuple[list[Any], Any]:
    children, aux = _CUSTOM[type(node)][0](node)
    if isinstance(children, Mapping):
        return list(children.values()), (list(children), aux)
    return list(children), (None, aux)


def _unflatten_custom(node: Any, aux: Any, out: list[Any]) -> Any:
    keys, user_aux = aux
    unflatten = _CUSTOM[type(node)][1]
    if keys is not None:
        return unflatten(user_aux, dict(zip(keys, out, strict=True)))
    return unflatten(user_aux, out)


def _seg_index(aux: Any, i: int) -> str:
    return f"[{i}]"


def _seg_key(keys: list[Any], i: int) -> str:
    return f"[{keys[i]!r}]"


def _seg_field(fields: Sequence[Any], i: int) -> str:
    f = fields[i]
    return f".{f if isinstance(f, str) else f[0]}"


def _seg_custom(aux: Any, i: int) -> str:
    return f"[{i}]" if aux[0] is None else f"[{aux[0][i]!r}]"


_Kind = tuple[Callable[[Any], "tuple[Sequence[Any], Any]"], Callable[[Any, Any, list[Any]], Any], Callable[[Any, int], str]]

#: container kind -> (flatten, unflatten, segment)
_WALK: dict[str, _Kind] = {
    "dict": (_flatten_dict, _unflatten_dict, _seg_key),
    "dictsub": (_flatten_dict, _unflatten_dict, _seg_key),
    "list": (_flatten_seq, _unflatten_list, _seg_index),
    "listsub": (_flatten_seq, _unflatten_list, _seg_index),
    "tuple": (_flatten_seq, _unflatten_tuple, _seg_index),
    "tuplesub": (_flatten_seq, _unflatten_tuplesub, _seg_index),
    "namedtuple": (_flatten_namedtuple, _unflatten_namedtuple, _seg_field),
    "dataclass": (_flatten_dataclass, _unflatten_dataclass, _seg_field),
    "custom": (_flatten_custom, _unflatten_custom, _seg_custom),
}


def _cycle(node: Any, path: str | None = None) -> ArrayFerryError:
    where = f"at {path or '(root)'}" if path is not None else f"(a {type(node).__qualname__} that is its own descendant)"
    return ArrayFerryError(format_message(
        f"The tree contains itself {where}.",
        hint="convert_tree walks trees, not graphs with cycles; break the cycle first"))


#: Depth at which convert_tree's walk, which counts depth instead of keeping the containers on its
#: path, starts again with the path kept (a cycle, or a tree this deep, is rare: see _map).
_DEEP = 100
#: Containers with at least this many children try the one-``map`` conversion (below that, the
#: test of their children's types costs more than it saves).
_UNIFORM = 8


#: The kinds the compiled walk handles itself, by identity (``arrayferry._speedups.walk``).
_NAMES = (_ARRAY, _LEAF, "dict", "list", "tuple")


def _compiled_walk() -> Callable[..., Any] | None:
    """``arrayferry._speedups.walk`` (convert_tree's walk over exact dicts, lists and tuples,
    without a Python frame per container), or ``None`` without the extension."""
    from ._hostops import _speedups

    mod = _speedups()
    return None if mod is None else mod.walk


class _TooDeep(Exception):
    """The counted walk went deeper than ``_DEEP``: walk again keeping the path (cycle check)."""


def _map(node: Any, fn: Callable[[Any], Any], active: set[int] | None, depth: int = 0,
         entries: Mapping[type, Any] | None = None) -> Any:
    """Rebuild ``node`` with ``fn`` applied to every array leaf.

    ``active`` holds the ids of the containers on the path (a cycle raises); ``None`` counts the
    depth instead (cheaper per container) and raises :class:`_TooDeep` beyond ``_DEEP``, and the
    caller walks again with a set. ``entries`` is the converter's plan-cache entries (``fn.entries``):
    a container whose children are all arrays of one type with a direct call
    (``Adapter.direct_call``) is converted by one ``map`` of it, without a Python frame per leaf;
    a refusal falls back to the leaf-by-leaf loop, where ``fn`` handles it."""
    k = _KINDS.get(type(node)) or _kind(type(node))
    if k == _ARRAY:
        return fn(node)
    if k == _LEAF:
        return node
    if active is None:
        if depth >= _DEEP:
            raise _TooDeep
        nid = 0
    else:
        nid = id(node)
        if nid in active:
            raise _cycle(node)
        active.add(nid)
    depth += 1
    kinds = _KINDS
    try:
        if k == "dict":  # _WALK["dict"] unrolled, for speed: the commonest container
            if entries is not None and len(node) >= _UNIFORM:
                types = set(map(type, node.values()))
                if len(types) == 1:
                    te = entries.get(types.pop())
                    if te is not None and te[4] is not None:
                        try:
                            return dict(zip(node, map(te[4], node.values()), strict=True))
                        except Exception:  # a refusal: leaf by leaf below, where fn plans it
                            pass
            new: dict[Any, Any] = {}
            key: Any = None
            try:
                for key, v in node.items():
                    kv = kinds.get(type(v))
                    new[key] = (fn(v) if kv == _ARRAY else v if kv == _LEAF
                                else _map(v, fn, active, depth, entries))
            except _TooDeep:
                raise
            except Exception as exc:
                raise _fail(exc, f"[{key!r}]") from None
            return new
        flatten, unflatten, segment = _WALK[k]
        children, aux = flatten(node)
        if entries is not None and len(children) >= _UNIFORM and k != "custom":
            types = set(map(type, children))
            if len(types) == 1:
                te = entries.get(types.pop())
                if te is not None and te[4] is not None:
                    try:
                        converted = list(map(te[4], children))
                    except Exception:  # a refusal: leaf by leaf below
                        pass
                    else:
                        return unflatten(node, aux, converted)
        out: list[Any] = []
        append = out.append
        try:
            for v in children:
                kv = kinds.get(type(v))
                append(fn(v) if kv == _ARRAY else v if kv == _LEAF else _map(v, fn, active, depth, entries))
        except _TooDeep:
            raise
        except Exception as exc:
            raise _fail(exc, segment(aux, len(out))) from None
        return unflatten(node, aux, out)
    finally:
        if nid:
            active.discard(nid)  # type: ignore[union-attr]


def leaves(tree: Any) -> tuple[list[tuple[str, Any]], list[str]]:
    """The ``(path, array)`` pairs of ``tree`` in the order :func:`convert_tree` visits them,
    and the paths of the non-array leaves."""
    found: list[tuple[str, Any]] = []
    kept: list[str] = []
    _leaves(tree, "", found, kept, set())
    return found, kept


def _leaves(node: Any, path: str, out: list[tuple[str, Any]], kept: list[str], active: set[int]) -> None:
    k = _KINDS.get(type(node)) or _kind(type(node))
    if k == _ARRAY:
        out.append((path, node))
        return
    if k == _LEAF:
        kept.append(path)
        return
    if id(node) in active:
        raise _cycle(node, path)
    active.add(id(node))
    try:
        flatten, _, segment = _WALK[k]
        children, aux = flatten(node)
        for i, v in enumerate(children):
            _leaves(v, path + segment(aux, i), out, kept, active)
    finally:
        active.discard(id(node))


def first_array(tree: Any) -> Any:
    """The first array leaf of ``tree`` (``tree`` itself when it is an array), or ``None``."""
    k = _KINDS.get(type(tree)) or _kind(type(tree))
    if k == _ARRAY:
        return tree
    if k == _LEAF:
        return None
    found, _ = leaves(tree)
    return found[0][1] if found else None


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

        check_options(tgt, options, also=registry().source_option_names())  # so does an unknown option
    if stream is not None:
        from ._cuda import parse_stream, using_stream

        with using_stream(parse_stream(stream)):
            return convert_tree(tree, to, device=device, dtype=dtype, copy=copy, casting=casting, **options)
    conv = _api.converter(to, device=device, dtype=dtype, copy=copy, casting=casting, **options)
    entries = getattr(conv, "entries", None)
    walk = _compiled_walk()
    if walk is not None:  # exact dicts, lists and tuples in C; anything else, or an error: below
        try:
            return walk(tree, conv, _KINDS, _NAMES, _DEEP)
        except Exception:  # noqa: S110 - the Python walk redoes it and words any error with its path
            pass
    try:
        try:
            return _map(tree, conv, None, 0, entries)
        except _TooDeep:  # a cycle, or a tree deeper than _DEEP: again, keeping the path
            return _map(tree, conv, set(), 0, entries)
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

        check_options(tgt, options, also=registry().source_option_names())
    found, kept = leaves(tree)
    okey = _api.options_key(to, device, dtype, copy, casting, options)
    plans: dict[int, Plan] = {}  # id(template) -> the Plan its leaves share
    out: list[LeafPlan] = []
    for path, x in found:
        try:
            t, src, sig = _api.template_for(okey, x)
            p = plans.get(id(t))
            if p is None:
                p = plans[id(t)] = Plan(t, src, sig, stream)
            shape = tuple(src.describe(x).shape)
        except Exception as exc:
            _reraise(_Failed(exc, [path or "(root)"]), to)
            raise  # pragma: no cover
        size = 1
        for s in shape:
            size *= s
        per_copy = size * ITEMSIZE.get(p.dtype, p.source.itemsize or 1)
        out.append(LeafPlan(path, p, shape, per_copy * p.copies))
    return TreePlan(tgt.name, copy, out, kept)
