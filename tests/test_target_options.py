"""Target options: ``convert(x, "dask", chunks=...)`` and the plugin API behind it.

An adapter declares the keyword options it takes as a target (``Adapter.target_options``) and
applies them to each route's steps (``Adapter.apply_options``); they are part of the plan
(``plan.options``, ``explain()``) and of the plan cache's key when hashable; an unknown option
raises ``ArgumentError`` listing the options the target takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pytest

import arrayferry as af
from arrayferry import _api
from arrayferry._registry import registry
from arrayferry.plugin import Adapter, ArrayInfo, PluginError, Step, adapter_named, format_message, hookimpl

da = pytest.importorskip("dask.array")


def _special(shape: tuple[int, ...] = (10, 10)) -> np.ndarray:
    """float64 values whose bits matter: NaN with a payload, -0.0, infinities, subnormals."""
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    flat = a.reshape(-1)
    flat[:5] = [np.nan, -0.0, np.inf, -np.inf, 5e-324]
    flat.view(np.uint64)[0] |= np.uint64(0x1234)  # a NaN payload (NumPy 1.x refuses uint64 | Python int)
    return a


def _bits(a: Any) -> tuple[str, tuple[int, ...], bytes]:
    a = np.asarray(a)
    return a.dtype.name, a.shape, np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize("chunks", [(5, 5), 5, "auto", -1, (2, -1), {0: 2}, {1: 3}, [5, 5], ((3, 7), (10,)), (4, 4)])
def test_chunks_are_those_from_array_makes(chunks: Any) -> None:
    x = _special()
    y = af.convert(x, "dask", chunks=chunks)
    assert isinstance(y, da.Array)
    assert y.chunks == da.from_array(x, chunks=chunks).chunks
    assert _bits(y.compute()) == _bits(x)
    x[1, 1] = 99.0  # from_array copied it: the graph does not see later writes
    assert y.compute()[1, 1] == 11.0


@pytest.mark.parametrize("dtype", ["int8", "uint64", "float32", "bool", "complex128"])
def test_chunks_with_every_dtype_and_a_cast(dtype: str) -> None:
    x = np.arange(24).reshape(4, 6).astype(dtype)
    y = af.convert(x, "dask", chunks=(2, 3))
    assert y.dtype == x.dtype and y.chunks == ((2, 2), (3, 3))
    assert _bits(y.compute()) == _bits(x)
    z = af.convert(x, "dask", chunks=(2, 3), dtype="float64")
    assert z.dtype == np.float64 and z.chunks == ((2, 2), (3, 3))
    assert _bits(z.compute()) == _bits(x.real.astype("float64"))


def test_plan_records_and_explains_the_options() -> None:
    x = _special()
    p = af.plan(x, "dask", chunks=(5, 5))
    assert p.options == {"chunks": (5, 5)}
    text = p.explain()
    assert "options: chunks=(5, 5)" in text.splitlines()[1]
    assert "dask.array.from_array(chunks=(5, 5))" in text
    assert af.plan(x, "dask").options == {}
    assert "options" not in af.plan(x, "dask").explain().splitlines()[1]
    assert p.execute(x).chunks == ((5, 5), (5, 5))


def test_torch_source_and_dask_to_dask_rechunk() -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    y = af.convert(t, "dask", chunks=(1, 2))
    assert y.chunks == ((1, 1, 1), (2, 2))
    assert _bits(y.compute()) == _bits(t.numpy())
    z = af.convert(y, "dask", chunks=(3, 1))
    p = af.plan(y, "dask", chunks=(3, 1))
    assert p.route == "native" and [s.name for s in p.steps] == ["rechunk"]
    assert "lazy" in p.steps[0].description
    assert z.chunks == ((3,), (1, 1, 1, 1))
    assert _bits(z.compute()) == _bits(t.numpy())
    w = af.convert(y, "dask", chunks=-1, dtype="float64")  # a lazy cast, then the rechunk
    assert w.chunks == ((3,), (4,)) and w.dtype == np.float64
    assert _bits(w.compute()) == _bits(t.numpy().astype("float64"))


def test_options_key_the_plan_cache() -> None:
    af.clear_cache()
    x = _special()
    a = af.convert(x, "dask", chunks=(5, 5))
    n = _api.cache_size()
    b = af.convert(x, "dask", chunks=(5, 5))
    assert _api.cache_size() == n  # the same plan, from the cache
    assert any(isinstance(k, tuple) and k[-2:] == ((("chunks", (5, 5)),), (tuple,)) for k in _api._CACHE)
    c = af.convert(x, "dask", chunks=(2, 5))
    assert _api.cache_size() == n + 1
    d = af.convert(x, "dask")  # no option: chunks="auto", not the last ones asked for
    assert a.chunks == b.chunks == ((5, 5), (5, 5))
    assert c.chunks == ((2,) * 5, (5, 5))
    assert d.chunks == ((10,), (10,))


def test_unhashable_options_are_planned_every_time() -> None:
    af.clear_cache()
    x = _special()
    n = _api.cache_size()
    for chunks in ([5, 5], {0: 5}, [5, 5]):
        y = af.convert(x, "dask", chunks=chunks)
        assert y.chunks == da.from_array(x, chunks=chunks).chunks
    assert _api.cache_size() == n


def test_a_cached_plan_checks_chunks_against_each_shape() -> None:
    chunks = ((3, 7), (10,))
    af.convert(np.zeros((10, 10)), "dask", chunks=chunks)
    with pytest.raises(af.ArgumentError) as info:  # same signature, other shape: the cached plan refuses it
        af.convert(np.zeros((5, 5)), "dask", chunks=chunks)
    msg = str(info.value)
    assert f"chunks={chunks!r}" in msg and "shape (5, 5)" in msg and msg.splitlines()[-1].startswith("Hint:")


@pytest.mark.parametrize("chunks, why", [((3,), "same length"), (1.5, "not float"), ("big", "normalize_chunks"),
                                         (True, "not bool"), (None, "not NoneType")])
def test_bad_chunks_are_an_argument_error(chunks: Any, why: str) -> None:
    with pytest.raises(af.ArgumentError) as info:
        af.convert(np.zeros((10, 10)), "dask", chunks=chunks)
    assert isinstance(info.value, TypeError)
    msg = str(info.value)
    assert f"Target option chunks={chunks!r} does not fit a dask array of shape (10, 10)." in msg
    assert why in msg
    assert msg.splitlines()[-1].startswith("Hint:")
    with pytest.raises(af.ArgumentError):
        af.plan(np.zeros((10, 10)), "dask", chunks=chunks)


def test_unknown_option_lists_what_the_target_takes() -> None:
    with pytest.raises(af.ArgumentError) as info:
        af.convert(np.zeros(3), "dask", chunk=5)
    msg = str(info.value)
    lines = msg.splitlines()
    assert lines[0] == "Unknown target option 'chunk' for dask (convert(x, 'dask', chunk=...))."
    assert lines[1].startswith("  - dask takes: chunks (")
    assert lines[-1].startswith("Hint: pass only chunks")
    with pytest.raises(af.ArgumentError) as info:
        af.plan(np.zeros(3), "dask", chunks=2, fill=0, pad=1)
    assert "Unknown target options 'fill', 'pad' for dask" in str(info.value)


@pytest.mark.parametrize("to", ["numpy", "jax", "array_api_strict"])
def test_a_target_without_options_says_so(to: str) -> None:
    if to not in registry().adapters:  # a plugin framework (array_api_strict) the environment lacks
        pytest.skip(f"the {to} plugin is not registered")
    if not adapter_named(to).is_installed():
        pytest.skip(f"{to} is not installed")
    with pytest.raises(af.ArgumentError) as info:
        af.convert(np.zeros(3), to, pin_memory=True)
    msg = str(info.value)
    assert f"Unknown target option 'pin_memory' for {adapter_named(to).name}" in msg
    assert f"{adapter_named(to).name} takes no target options" in msg
    assert msg.splitlines()[-1].startswith("Hint: remove pin_memory")


def test_convert_tree_plan_tree_and_accepts_pass_options_through() -> None:
    x = _special()
    tree = {"a": x, "b": [x[:4], 3]}
    out = af.convert_tree(tree, "dask", chunks=2)
    assert out["a"].chunks == ((2,) * 5, (2,) * 5) and out["b"][0].chunks == ((2, 2), (2,) * 5)
    assert out["b"][1] == 3
    assert _bits(out["a"].compute()) == _bits(x)
    out = af.convert_tree(tree, "dask", chunks=[2, 5])  # unhashable: planned per leaf
    assert out["a"].chunks == ((2,) * 5, (5, 5))
    tp = af.plan_tree(tree, "dask", chunks=(5, 5))
    assert all(leaf.plan.options == {"chunks": (5, 5)} for leaf in tp.leaves)
    with pytest.raises(af.ArgumentError, match="chunk"):
        af.convert_tree({}, "dask", chunk=2)  # refused even when the tree holds no array
    with pytest.raises(af.ArgumentError, match="chunk"):
        af.plan_tree({}, "dask", chunk=2)

    @af.accepts("dask", options={"chunks": 5})
    def chunks_of(a: Any) -> Any:
        return a.chunks

    assert chunks_of(x) == ((5, 5), (5, 5))


# ------------------------------------------------------------------------------------------------
# the plugin API: a small framework with one option


class Labelled:
    """A framework of one class: a NumPy array with a label."""

    def __init__(self, a: Any, label: str = "") -> None:
        self.a = a
        self.label = label


class LabelAdapter(Adapter):
    name = "labelled"
    module = __name__
    target_options: ClassVar[Mapping[str, str]] = MappingProxyType({"label": "a string kept with the array"})
    target_option_examples: ClassVar[Mapping[str, tuple[Any, ...]]] = MappingProxyType({"label": ("x",)})

    def owns(self, tp: type) -> bool:
        return tp is Labelled

    def describe(self, x: Any) -> ArrayInfo:
        return adapter_named("numpy").describe(x.a).with_(framework=self.name)

    def signature(self, x: Any) -> Hashable:
        return (Labelled, adapter_named("numpy").signature(x.a))

    def export_host(self, x: Any) -> Any:
        return x.a

    def import_host(self, arr: Any) -> Any:
        return Labelled(arr)

    def apply_options(self, steps: list[Step], options: Mapping[str, Any], info: ArrayInfo) -> list[Step]:
        label = options["label"]
        if not isinstance(label, str):
            raise af.ArgumentError(format_message(f"label must be a string, not {label!r}.", hint="pass label='...'"))

        def labelled(x: Labelled) -> Labelled:
            return Labelled(x.a, label)

        if steps and steps[-1].name == "import_host":
            return [*steps[:-1], dataclasses.replace(steps[-1], fn=lambda arr: labelled(Labelled(arr)),
                                                     description=f"wrap the NumPy memory, labelled {label!r}")]
        return [*steps, Step("label", f"label it {label!r}", labelled)]


class NoApply(LabelAdapter):
    name = "labelled_broken"

    apply_options = Adapter.apply_options  # declares options, applies none


def _plugin(adapter: Adapter) -> Any:
    class Plugin:
        @hookimpl
        def arrayferry_adapters(self) -> list[Adapter]:
            return [adapter]

    return Plugin()


@pytest.fixture
def labelled() -> Iterator[None]:
    af.register_plugin(_plugin(LabelAdapter()), name="labelled-plugin")
    try:
        yield
    finally:
        af.unregister_plugin("labelled-plugin")


def test_a_plugin_option_is_applied_by_every_route(labelled: None) -> None:
    x = np.arange(6.0)
    y = af.convert(x, "labelled", label="a")
    assert isinstance(y, Labelled) and y.label == "a"
    assert np.shares_memory(y.a, x)  # the option did not cost a copy
    assert af.plan(x, "labelled", label="a").zero_copy
    z = af.convert(y, "labelled", label="b")  # native route: the appended step
    assert z.label == "b" and z.a is y.a
    assert af.convert(x, "labelled").label == ""
    with pytest.raises(af.ArgumentError, match="label must be a string"):
        af.convert(x, "labelled", label=3)
    with pytest.raises(af.ArgumentError) as info:
        af.convert(x, "labelled", colour="red")
    assert "labelled takes: label (a string kept with the array)" in str(info.value)


def test_declared_options_without_apply_options_are_refused_at_registration() -> None:
    with pytest.raises(PluginError) as info:
        af.register_plugin(_plugin(NoApply()), name="labelled-broken-plugin")
    msg = str(info.value)
    assert "'labelled_broken' does not meet the adapter protocol" in msg
    assert "target_options: label, but apply_options is not implemented" in msg
    assert msg.splitlines()[-1].startswith("Hint:")
    af.unregister_plugin("labelled-broken-plugin")


# ------------------------------------------------------------------------------------------------
# the class: any shape, any chunks spec dask takes (or refuses)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _shape_and_chunks(draw: st.DrawFn) -> tuple[tuple[int, ...], Any]:
    shape = tuple(draw(st.lists(st.integers(0, 7), min_size=1, max_size=3)))
    per_axis = st.one_of(st.integers(-1, 8), st.just("auto"), st.none())
    kind = draw(st.sampled_from(["int", "tuple", "dict", "auto", "blocks"]))
    if kind == "int":
        return shape, draw(st.integers(-1, 8))
    if kind == "auto":
        return shape, "auto"
    if kind == "dict":
        return shape, draw(st.dictionaries(st.integers(0, len(shape)), st.integers(-1, 8), max_size=len(shape)))
    if kind == "blocks":  # explicit block sizes: right or wrong sums
        return shape, tuple(tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))) for _ in shape)
    return shape, tuple(draw(per_axis) for _ in range(draw(st.sampled_from([len(shape), len(shape), len(shape) + 1]))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_shape_and_chunks(), st.sampled_from(["float32", "int16", "bool"]))
def test_any_chunks_give_what_from_array_gives_or_an_argument_error(sc: tuple[tuple[int, ...], Any], dtype: str) -> None:
    shape, chunks = sc
    x = (np.arange(int(np.prod(shape))) % 7).astype(dtype).reshape(shape)
    try:
        want = da.from_array(x, chunks=chunks)
    except Exception:
        want = None
    if want is None:
        with pytest.raises(af.ArgumentError) as info:
            af.convert(x, "dask", chunks=chunks)
        assert info.value.args[0].splitlines()[-1].startswith("Hint:")
        return
    got = af.convert(x, "dask", chunks=chunks)
    assert got.chunks == want.chunks and got.dtype == x.dtype
    assert _bits(got.compute()) == _bits(x)
    try:
        want_again = want.rechunk(chunks)
    except Exception:
        with pytest.raises(af.ArgumentError, match="rechunk raised"):  # what from_array takes, rechunk may not
            af.convert(got, "dask", chunks=chunks)
        return
    again = af.convert(got, "dask", chunks=chunks)  # dask to dask: a lazy rechunk
    assert again.chunks == want_again.chunks
    assert _bits(again.compute()) == _bits(x)


# ------------------------------------------------------------------------------------------------
# torch: requires_grad=


def test_torch_requires_grad_makes_a_leaf_sharing_memory() -> None:
    torch = pytest.importorskip("torch")
    x = _special((6,))
    t = af.convert(x, "torch", requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.dtype == torch.float64
    p = af.plan(x, "torch", requires_grad=True)
    assert p.zero_copy and p.steps[-1].name == "requires_grad" and p.options == {"requires_grad": True}
    assert _bits(t.detach().numpy()) == _bits(x)
    x[5] = 42.0  # shares memory: a write through NumPy shows
    assert float(t.detach()[5]) == 42.0
    (t[4:] * 3).sum().backward()
    assert t.grad is not None and t.grad.tolist() == [0.0] * 4 + [3.0, 3.0]
    c = af.convert(x, "torch", requires_grad=True, copy=True)
    assert c.requires_grad and not np.shares_memory(c.detach().numpy(), x)


def test_torch_requires_grad_never_changes_the_callers_tensor() -> None:
    torch = pytest.importorskip("torch")
    s = torch.arange(4.0)
    u = af.convert(s, "torch", requires_grad=True)
    assert u is not s and u.requires_grad and not s.requires_grad
    assert u.data_ptr() == s.data_ptr()
    w = torch.ones(3, requires_grad=True)
    g = w * 2  # a non-leaf in a graph
    d = af.convert(g, "torch", requires_grad=False)
    assert not d.requires_grad and g.requires_grad and d.data_ptr() == g.data_ptr()
    leaf = af.convert(g, "torch", requires_grad=True)
    assert leaf.is_leaf and leaf.requires_grad and leaf.grad_fn is None  # gradients stop there
    leaf.sum().backward()
    assert w.grad is None
    assert af.convert(g, "torch") is g  # without the option: the tensor itself, as before


def test_torch_requires_grad_refuses_what_torch_cannot_hold() -> None:
    torch = pytest.importorskip("torch")
    af.convert(np.zeros(2), "torch", requires_grad=True)  # cached with True ...
    with pytest.raises(af.ArgumentError, match="requires_grad=1 is not a bool"):  # ... 1 is not True
        af.convert(np.zeros(2), "torch", requires_grad=1)
    with pytest.raises(af.ArgumentError) as info:
        af.convert(np.arange(3), "torch", requires_grad=True)
    msg = str(info.value)
    assert "int64 tensor that requires grad" in msg and msg.splitlines()[-1].startswith("Hint: pass dtype='float32'")
    t = af.convert(np.arange(3), "torch", requires_grad=True, dtype="float32")
    assert t.requires_grad and t.dtype == torch.float32 and t.tolist() == [0.0, 1.0, 2.0]
    z = af.convert(np.arange(3), "torch", requires_grad=False)  # any dtype can not require grad
    assert not z.requires_grad and z.dtype == torch.int64
