"""convert_tree / plan_tree / register_container on real NumPy and PyTorch arrays.

Every array check is independent of arrayferry: values compared as bytes (NaN, -0.0 and inf
included), dtype and shape read from the frameworks, memory sharing proven by writing through
one side and reading the other.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, NamedTuple

import numpy as np
import pytest

import arrayferry as af
from arrayferry import _api

torch = pytest.importorskip("torch")

SPECIAL = np.array([np.nan, -0.0, np.inf, -np.inf, 1.5], dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# independent helpers


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().resolve_conj().resolve_neg().numpy()
    return np.asarray(x)


def same_bits(a: Any, b: Any) -> None:
    na, nb = to_numpy(a), to_numpy(b)
    assert na.dtype == nb.dtype
    assert na.shape == nb.shape
    assert np.ascontiguousarray(na).tobytes() == np.ascontiguousarray(nb).tobytes()


def framework(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return "torch"
    if isinstance(x, np.ndarray):
        return "numpy"
    return "other"


def writes_through(src: Any, out: Any) -> bool:
    """Write a marker into ``out``'s first element and see whether ``src`` changes; then undo it."""
    if to_numpy(src).size == 0:
        return False
    before = to_numpy(src).copy()
    idx = (0,) * out.ndim
    old = out[idx].item()
    marker = 7 if old != 7 else 9
    with torch.no_grad():
        out[idx] = marker
        changed = not np.array_equal(to_numpy(src), before, equal_nan=True)
        out[idx] = old
    return changed


@dataclasses.dataclass
class Params:
    weight: Any
    bias: Any
    name: str = "layer"
    cache: Any = dataclasses.field(default=None, init=False)


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: Any
    tag: tuple[int, ...] = (1, 2)


class Point(NamedTuple):
    x: Any
    label: str


class MyList(list):  # type: ignore[type-arg]
    pass


class MyTuple(tuple):  # type: ignore[type-arg]
    pass


def make_source(kind: str, fw: str) -> Any:
    """Arrays in framework ``fw``: contiguous float with specials, int, a strided view."""
    if kind == "special":
        a = SPECIAL.copy()
    elif kind == "int":
        a = np.arange(6, dtype=np.int32).reshape(2, 3)
    elif kind == "float32":
        a = np.linspace(-1, 1, 4, dtype=np.float32)
    else:  # strided: every other column
        a = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]
    if fw == "numpy":
        return a
    return torch.from_numpy(np.ascontiguousarray(a)) if kind != "strided" else torch.arange(12, dtype=torch.float64).reshape(3, 4)[:, ::2]


def make_tree(fw: str) -> Any:
    p = Params(make_source("float32", fw), make_source("int", fw))
    p.cache = make_source("special", fw)
    return {
        "layers": [p, Frozen(make_source("strided", fw))],
        "point": Point(make_source("special", fw), "origin"),
        "pair": (make_source("int", fw), 3, None),
        "meta": {"lr": 0.1, "name": "sgd", "steps": [1, 2]},
        "ordered": collections.OrderedDict(b=make_source("float32", fw), a="x"),
        "dd": collections.defaultdict(list, {"k": make_source("int", fw)}),
        "mylist": MyList([make_source("float32", fw)]),
        "mytuple": MyTuple((make_source("int", fw), "t")),
    }


def leaves(tree: Any, path: str = "") -> list[tuple[str, Any]]:
    """An independent walker for the test's own structures (paths in convert_tree's notation)."""
    if isinstance(tree, (np.ndarray, torch.Tensor)):
        return [(path, tree)]
    if isinstance(tree, dict):
        return [x for k, v in tree.items() for x in leaves(v, f"{path}[{k!r}]")]
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return [x for f in tree._fields for x in leaves(getattr(tree, f), f"{path}.{f}")]
    if isinstance(tree, (list, tuple)):
        return [x for i, v in enumerate(tree) for x in leaves(v, f"{path}[{i}]")]
    if dataclasses.is_dataclass(tree):
        return [x for f in dataclasses.fields(tree) for x in leaves(getattr(tree, f.name), f"{path}.{f.name}")]
    return [(path, tree)]


DIRECTIONS = [("numpy", "torch"), ("torch", "numpy"), ("numpy", "numpy"), ("torch", "torch")]


@pytest.fixture(params=DIRECTIONS, ids=lambda d: f"{d[0]}->{d[1]}")
def direction(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=[None, True, False], ids=lambda c: f"copy={c}")
def copy_policy(request: pytest.FixtureRequest) -> bool | None:
    return request.param  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------
# structure, values, sharing


def test_structure_and_leaves_kept(direction: tuple[str, str]) -> None:
    src_fw, dst_fw = direction
    tree = make_tree(src_fw)
    out = af.convert_tree(tree, dst_fw)

    assert type(out) is dict and list(out) == list(tree)
    assert type(out["layers"][0]) is Params and type(out["layers"][1]) is Frozen
    assert type(out["point"]) is Point and type(out["pair"]) is tuple
    assert type(out["ordered"]) is collections.OrderedDict and list(out["ordered"]) == ["b", "a"]
    assert type(out["dd"]) is collections.defaultdict and out["dd"].default_factory is list
    assert type(out["mylist"]) is MyList and type(out["mytuple"]) is MyTuple
    # non-array leaves are the very same objects
    assert out["layers"][0].name is tree["layers"][0].name
    assert out["point"].label is tree["point"].label
    assert out["meta"]["steps"] == [1, 2] and out["meta"]["lr"] == 0.1
    assert out["layers"][1].tag == (1, 2)
    # containers are rebuilt, never shared
    assert out is not tree and out["meta"] is not tree["meta"] and out["layers"] is not tree["layers"]

    src_leaves, out_leaves = leaves(tree), leaves(out)
    assert [p for p, _ in src_leaves] == [p for p, _ in out_leaves]
    for (path, a), (_, b) in zip(src_leaves, out_leaves, strict=True):
        if isinstance(a, (np.ndarray, torch.Tensor)):
            assert framework(b) == dst_fw, path
            same_bits(a, b)
        else:
            assert b is a, path


def test_sharing_matches_plan_tree(direction: tuple[str, str], copy_policy: bool | None) -> None:
    src_fw, dst_fw = direction
    tree = make_tree(src_fw)
    try:
        tp = af.plan_tree(tree, dst_fw, copy=copy_policy)
    except af.CopyRequiredError:
        with pytest.raises(af.CopyRequiredError):
            af.convert_tree(tree, dst_fw, copy=copy_policy)
        return
    out = af.convert_tree(tree, dst_fw, copy=copy_policy)
    by_path = dict(leaves(out))
    assert len(tp) == sum(isinstance(v, (np.ndarray, torch.Tensor)) for _, v in leaves(tree))
    for (path, a) in leaves(tree):
        if not isinstance(a, (np.ndarray, torch.Tensor)):
            continue
        lp = tp[path]
        shared = writes_through(a, by_path[path])
        assert shared == (not lp.copied), (path, lp.reason)
        if copy_policy is True:
            assert not shared
        if copy_policy is False:
            assert shared


def test_copy_false_names_the_failing_leaf() -> None:
    tree = {"ok": np.arange(3.0), "p": Params(np.ones(2), np.arange(4)[::-1])}
    with pytest.raises(af.CopyRequiredError) as ei:
        af.convert_tree(tree, "torch", copy=False)
    msg = str(ei.value)
    assert msg.startswith("In the tree, leaf ['p'].bias could not be converted to 'torch'")
    assert "negative strides" in msg
    assert msg.splitlines()[-1].startswith("Hint:")
    with pytest.raises(af.CopyRequiredError, match=r"leaf \['p'\]\.bias"):
        af.plan_tree(tree, "torch", copy=False)


def test_dtype_option_casts_every_leaf() -> None:
    tree = [np.arange(3, dtype=np.int16), {"b": np.array([1.5, -0.0])}]
    out = af.convert_tree(tree, "torch", dtype="float32")
    assert out[0].dtype == torch.float32 and out[1]["b"].dtype == torch.float32
    assert out[0].tolist() == [0.0, 1.0, 2.0]
    b = out[1]["b"].numpy()
    assert b[0] == 1.5 and b[1] == 0 and np.signbit(b[1])


def test_root_array_and_empty_containers() -> None:
    x = np.arange(4.0)
    t = af.convert_tree(x, "torch")
    assert isinstance(t, torch.Tensor) and t.data_ptr() == x.ctypes.data
    assert af.convert_tree({}, "torch") == {}
    assert af.convert_tree([[], ()], "torch") == [[], ()]
    assert af.convert_tree("text", "torch") == "text"


def test_unknown_target_fails_even_without_arrays() -> None:
    with pytest.raises(af.UnknownFrameworkError, match="Unknown target framework 'tensorflw'"):
        af.convert_tree({"a": 1}, "tensorflw")


def test_cycle_is_an_error() -> None:
    a: list[Any] = [np.zeros(1)]
    a.append(a)
    with pytest.raises(af.ArrayFerryError, match="contains itself") as ei:
        af.convert_tree(a, "torch")
    assert "leaf [1]" in str(ei.value)
    with pytest.raises(af.ArrayFerryError, match="contains itself at \\[1\\]"):
        af.plan_tree(a, "torch")


def test_cycle_deeper_than_the_counted_walk_names_its_path() -> None:
    """convert_tree counts depth instead of keeping its path; past _tree._DEEP it walks again
    keeping it: a cycle far down is still named by its path, a deep tree without one converts."""
    from arrayferry import _tree

    deep: list[Any] = [np.arange(3.0)]
    node = deep
    for _ in range(_tree._DEEP + 5):
        child: list[Any] = [np.arange(2.0)]
        node.append(child)
        node = child
    out = af.convert_tree(deep, "torch")
    probe, depth = out, 0
    while len(probe) > 1:
        assert isinstance(probe[0], torch.Tensor)
        probe, depth = probe[1], depth + 1
    assert depth == _tree._DEEP + 5 and probe[0].data_ptr() == node[0].ctypes.data
    node.append(deep)  # now a cycle, more than _DEEP containers down
    with pytest.raises(af.ArrayFerryError, match="contains itself") as ei:
        af.convert_tree(deep, "torch")
    assert str(ei.value).startswith("In the tree, leaf " + "[1]" * (_tree._DEEP + 6) + " ")


@pytest.mark.parametrize("kind", ["dict", "list", "tuple"])
def test_uniform_containers_with_a_refused_leaf(kind: str) -> None:
    """A container of many arrays of one type goes through one map of the direct call; an array
    the call refuses (read-only, reversed) sends the container leaf by leaf: each leaf as
    convert would do it."""
    arrays = [np.arange(4.0) + i for i in range(12)]
    ro = arrays[5]
    ro.flags.writeable = False
    arrays[7] = arrays[7][::-1]
    for _ in range(2):  # the second time with the type's cache entry in place
        tree: Any = {f"k{i}": a for i, a in enumerate(arrays)} if kind == "dict" else (
            arrays if kind == "list" else tuple(arrays))
        out = af.convert_tree(tree, "torch")
        got = list(out.values()) if kind == "dict" else list(out)
        assert type(out) is type(tree)
        for a, t in zip(arrays, got, strict=True):
            same_bits(a, t)
            assert (t.data_ptr() == a.ctypes.data) == (a.flags.writeable and a.strides[0] > 0)
    plain = {f"k{i}": np.arange(3.0) for i in range(10)}
    out = af.convert_tree(plain, "torch")
    assert all(out[k].data_ptr() == v.ctypes.data for k, v in plain.items())


def test_shared_subtrees_are_converted_each_time() -> None:
    shared = [np.ones(2)]
    out = af.convert_tree({"a": shared, "b": shared}, "torch")
    assert out["a"] is not out["b"]
    assert out["a"][0].data_ptr() == out["b"][0].data_ptr() == shared[0].ctypes.data


def test_non_array_error_gets_a_note() -> None:
    class Boom:
        pass

    def flatten(obj: Any) -> tuple[list[Any], None]:
        raise RuntimeError("flatten failed")

    af.register_container(Boom, flatten, lambda aux, ch: Boom())
    try:
        with pytest.raises(RuntimeError, match="flatten failed") as ei:
            af.convert_tree({"x": [Boom()]}, "torch")
        assert any("['x'][0]" in n for n in getattr(ei.value, "__notes__", []))
    finally:
        af.unregister_container(Boom)


# ------------------------------------------------------------------------------------------------
# one plan per signature


def test_one_plan_per_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = _api._template

    def counting(*args: Any) -> Any:
        calls.append(args[0])
        return real(*args)

    af.clear_cache()
    monkeypatch.setattr(_api, "_template", counting)
    tree = {f"k{i}": (np.full(3, i, np.float32), np.full((2, 2), i, np.int64)) for i in range(500)}
    out = af.convert_tree(tree, "torch")
    # two distinct signatures, 1000 leaves: at most one plan each (fewer where the direct call
    # torch.from_numpy answers before any plan is needed: tests/test_direct_calls.py)
    assert 1 <= len(calls) <= 2
    assert out["k499"][1][1, 1].item() == 499
    tp = af.plan_tree(tree, "torch")
    assert len(tp.plans) == 2 and len(tp) == 1000
    assert tp["['k0'][0]"].plan is tp["['k499'][0]"].plan


# ------------------------------------------------------------------------------------------------
# registered containers


class Pair:
    __slots__ = ("left", "right")

    def __init__(self, left: Any, right: Any) -> None:
        self.left, self.right = left, right


class Bag:
    def __init__(self, **items: Any) -> None:
        self.items = items


@pytest.fixture
def registered() -> Any:
    af.register_container(Pair, lambda p: ([p.left, p.right], None), lambda aux, ch: Pair(*ch))
    af.register_container(Bag, lambda b: (b.items, "bag"), lambda aux, ch: Bag(**ch))
    yield
    af.unregister_container(Pair)
    af.unregister_container(Bag)


def test_registered_containers(registered: None) -> None:
    x, y = np.arange(3.0), np.arange(4)[::-1]
    out = af.convert_tree([Pair(x, Bag(w=y, s="s"))], "torch")
    p = out[0]
    assert type(p) is Pair and isinstance(p.left, torch.Tensor) and p.left.data_ptr() == x.ctypes.data
    assert type(p.right) is Bag and p.right.items["s"] == "s" and p.right.items["w"].tolist() == [3, 2, 1, 0]
    tp = af.plan_tree([Pair(x, Bag(w=y, s="s"))], "torch")
    assert [lp.path for lp in tp] == ["[0][0]", "[0][1]['w']"]
    assert [lp.copied for lp in tp] == [False, True]
    assert tp.kept == ("[0][1]['s']",)


def test_unregistered_container_is_a_plain_leaf() -> None:
    p = Pair(np.zeros(1), np.zeros(1))
    out = af.convert_tree({"p": p}, "torch")
    assert out["p"] is p


def test_register_container_validates() -> None:
    with pytest.raises(af.ArrayFerryError, match="needs a type"):
        af.register_container("Pair", lambda p: ([], None), lambda a, c: None)  # type: ignore[arg-type]
    with pytest.raises(af.ArrayFerryError, match="must be callables"):
        af.register_container(Pair, None, None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# plan_tree reports


def test_plan_tree_report() -> None:
    ro = np.arange(5, dtype=np.float32)
    ro.flags.writeable = False
    tree = {
        "a": [np.arange(4, dtype=np.float64)[::-1], np.ones(3, np.float32)],
        "ro": ro,
        "many": [np.zeros(2, np.int8) for _ in range(12)],
        "skip": "label",
    }
    tp = af.plan_tree(tree, "torch")
    assert tp.to == "torch" and not tp.zero_copy
    copied = {lp.path: lp for lp in tp.copied}
    assert set(copied) == {"['a'][0]", "['ro']"}
    assert "negative strides" in copied["['a'][0]"].reason
    assert "read-only" in copied["['ro']"].reason
    assert tp["['a'][1]"].reason == "zero-copy"
    assert tp.nbytes_moved == 4 * 8 + 5 * 4
    assert tp.kept == ("['skip']",)
    text = tp.explain(max_paths=3)
    assert text.startswith("Tree plan: 15 array leaf(s) -> torch")
    assert "2 copied, 13 zero-copy" in text and "52 B written" in text
    assert "['a'][0] (4,)" in text and "... and 9 more leaf(s)" in text
    assert str(tp) == tp.explain()
    with pytest.raises(KeyError):
        tp["['nope']"]


def test_plan_tree_matches_what_convert_tree_does() -> None:
    tree = {"x": np.arange(6.0).reshape(2, 3).T, "y": torch.arange(3.0, requires_grad=True)}
    tp = af.plan_tree(tree, "numpy")
    out = af.convert_tree(tree, "numpy")
    for lp in tp:
        src = dict(leaves(tree))[lp.path]
        assert writes_through(src, dict(leaves(out))[lp.path]) == (not lp.copied)
    steps = [s.name for s in tp["['y']"].plan.steps]
    assert "detach" in steps


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")
def test_tree_to_gpu_and_back() -> None:
    tree = {"a": np.arange(4.0), "b": [np.ones(2, np.float32)]}
    tp = af.plan_tree(tree, "torch", device="cuda")
    assert len(tp.copied) == 2 and tp.nbytes_moved == 4 * 8 + 2 * 4  # one host-to-device copy each
    out = af.convert_tree(tree, "torch", device="cuda")
    assert out["a"].is_cuda and out["b"][0].is_cuda
    back = af.convert_tree(out, "numpy")
    same_bits(back["a"], tree["a"])
    same_bits(back["b"][0], tree["b"][0])


def test_stream_option_passes_through() -> None:
    tree = {"a": np.ones(2)}
    with pytest.raises(af.DeviceError, match="Cannot use 0 as a CUDA stream"):
        af.convert_tree(tree, "torch", stream=0)
    out = af.convert_tree(tree, "torch", stream=-1)  # -1: no synchronisation; host memory ignores it
    assert out["a"].data_ptr() == tree["a"].ctypes.data


def test_dataclass_with_initvar_is_rebuilt_field_by_field() -> None:
    @dataclasses.dataclass
    class Scaled:
        data: Any
        factor: dataclasses.InitVar[float]
        total: float = 0.0

        def __post_init__(self, factor: float) -> None:
            self.total = float(factor)

    s = Scaled(np.arange(3.0), 2.0)
    out = af.convert_tree({"s": s}, "torch")["s"]
    assert type(out) is Scaled and out is not s and out.total == 2.0
    assert isinstance(out.data, torch.Tensor) and out.data.data_ptr() == s.data.ctypes.data
    assert isinstance(s.data, np.ndarray)  # the input is untouched
