"""The one plan cache (``arrayferry._api``): ``convert``, ``converter``, ``convert_tree``, ``plan_tree``,
``@accepts`` and refining targets share its entries; a pre-bound converter re-plans whenever an array's
signature differs; failures of cached runs are worded in one place."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import arrayferry as af
from arrayferry import _api


def _shares(a: Any, b: Any) -> bool:
    return bool(af.shares_memory(a, b))


def _bits(a: Any) -> bytes:
    arr = a.detach().resolve_conj().resolve_neg().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return np.ascontiguousarray(arr).tobytes()


# -- the pre-bound converter -----------------------------------------------------------------------
def test_converter_is_convert_with_the_options_bound() -> None:
    x = np.arange(16, dtype=np.float32)
    to_torch = af.converter("torch")
    t = to_torch(x)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert t.data_ptr() == x.ctypes.data  # zero-copy, as convert
    to_f64 = af.converter("torch", dtype="float64")
    y = to_f64(x)
    assert y.dtype == torch.float64 and np.array_equal(y.numpy(), x.astype(np.float64))
    copied = af.converter("torch", copy=True)(x)
    assert not _shares(copied, x)
    back = af.converter("np")(t)
    assert isinstance(back, np.ndarray) and back.ctypes.data == x.ctypes.data


def test_converter_checks_the_target_when_made() -> None:
    with pytest.raises(af.UnknownFrameworkError) as info:
        af.converter("nosuchframework")
    assert "nosuchframework" in str(info.value)
    assert str(info.value).splitlines()[-1].lstrip().startswith("Hint:")


def test_converter_refuses_what_convert_refuses() -> None:
    ro = np.arange(4.0)
    ro.flags.writeable = False
    never_copy = af.converter("torch", copy=False)
    with pytest.raises(af.CopyRequiredError) as info:
        never_copy(ro)
    with pytest.raises(af.CopyRequiredError) as info2:
        af.convert(ro, "torch", copy=False)
    assert str(info.value) == str(info2.value)
    with pytest.raises(af.UnknownFrameworkError):
        af.converter("torch")(object())
    # and takes what convert takes: a list no plugin owns, read through the protocol adapters
    assert af.converter("torch")([1.0, -0.0]).tolist() == af.convert([1.0, -0.0], "torch").tolist()


def test_converter_replans_when_the_signature_changes() -> None:
    """One converter, arrays whose signatures differ in each way that changes a route: each gets
    its own plan (never the cached plan of the previous array)."""
    to_torch = af.converter("torch")
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = to_torch(base)
    assert t.data_ptr() == base.ctypes.data

    ro = base.copy()
    ro.flags.writeable = False
    t_ro = to_torch(ro)  # read-only: torch must not alias it
    assert not _shares(t_ro, ro) and t_ro.numpy().tobytes() == ro.tobytes()
    t_ro[0, 0] = -1.0
    assert ro[0, 0] == 0.0

    neg = base[::-1]  # negative strides: torch cannot alias them
    t_neg = to_torch(neg)
    assert np.array_equal(t_neg.numpy(), neg)

    swapped = base.astype(">f4")  # byte order
    t_sw = to_torch(swapped)
    assert t_sw.dtype == torch.float32 and np.array_equal(t_sw.numpy(), base)

    f64 = base.astype(np.float64)  # dtype
    assert to_torch(f64).dtype == torch.float64

    fortran = np.asfortranarray(base)  # layout, still zero-copy
    t_f = to_torch(fortran)
    assert t_f.data_ptr() == fortran.ctypes.data and np.array_equal(t_f.numpy(), base)

    unit = np.lib.stride_tricks.as_strided(base, shape=(3, 1), strides=(16, 1001))  # odd stride on a length-1 axis
    t_unit = to_torch(unit)
    assert np.array_equal(t_unit.numpy(), unit)

    # and back to the first kind: its cached plan, zero-copy again
    assert to_torch(base).data_ptr() == base.ctypes.data


def test_converter_replans_torch_sources() -> None:
    to_numpy = af.converter("numpy")
    t = torch.arange(4.0)
    assert to_numpy(t).ctypes.data == t.data_ptr()
    g = torch.arange(4.0, requires_grad=True)
    assert np.array_equal(to_numpy(g), np.arange(4.0))  # detached, not refused
    z = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    zc = z.conj()
    assert zc.is_conj()
    assert np.array_equal(to_numpy(zc), np.array([1 - 2j, 3 + 4j], dtype=np.complex64))
    neg = zc.imag  # a real view with the negative bit
    assert neg.is_neg()
    assert np.array_equal(to_numpy(neg), np.array([-2.0, 4.0], dtype=np.float32))
    assert to_numpy(t).ctypes.data == t.data_ptr()


def test_torch_signature_tells_cpu_from_meta() -> None:
    from arrayferry._registry import registry

    ad = registry().adapter_named("torch")
    cpu, meta = torch.empty(3), torch.empty(3, device="meta")
    assert ad.signature(cpu) != ad.signature(meta)
    with pytest.raises(af.ArrayFerryError):
        af.converter("numpy")(meta)
    assert isinstance(af.converter("numpy")(cpu), np.ndarray)


def test_numpy_signature_tells_unit_axis_strides_apart() -> None:
    """Contiguous flags ignore the strides of length-1 axes; the signature must not."""
    from arrayferry._registry import registry

    ad = registry().adapter_named("numpy")
    buf = np.zeros(12, np.float32)
    views = {st: np.lib.stride_tricks.as_strided(buf, shape=(3, 1), strides=st) for st in ((4, 4), (4, 1001), (4, -4))}
    assert all(v.flags.c_contiguous for v in views.values())
    sigs = {st: ad.signature(v) for st, v in views.items()}
    assert len(set(sigs.values())) == 3
    flipped = np.lib.stride_tricks.as_strided(buf, shape=(1, 4), strides=(-16, 4))
    assert ad.signature(flipped) != ad.signature(buf.reshape(3, 4)[:1])
    for v in views.values():  # and each converts to its own values
        assert np.array_equal(af.converter("torch")(v).numpy(), v)


# -- NumPy's fast key (dtype, flags, shape read by an attrgetter) ---------------------------------------
def _complex_views() -> tuple[np.ndarray, np.ndarray]:
    """Two complex128 views of one buffer, same shape, dtype and NumPy flags: one at a multiple of
    16 bytes, one 8 bytes off (torch's complex<double> needs 16: the second must be copied)."""
    buf = np.zeros(64, np.uint8)
    base = -buf.ctypes.data % 16
    aligned = buf[base:base + 32].view(np.complex128)
    off = buf[base + 8:base + 40].view(np.complex128)
    aligned[:] = [1 + 2j, -0.0 - 3j]
    assert aligned.flags.num == off.flags.num and aligned.shape == off.shape and aligned.dtype == off.dtype
    return aligned, off


@pytest.mark.parametrize("first", ["aligned", "off"])
@pytest.mark.parametrize("how", ["convert", "converter"])
def test_fast_key_leaves_complex_views_to_the_signature(fresh_cache: None, first: str, how: str) -> None:
    """A complex view's alignment depends on its data pointer, which the fast key does not read:
    arrays equal in dtype, flags and shape still get their own plans, in either order."""
    aligned, off = _complex_views()
    to_torch = af.converter("torch") if how == "converter" else (lambda a: af.convert(a, "torch"))
    order = [aligned, off] if first == "aligned" else [off, aligned]
    for a in order * 2:
        got = to_torch(a)
        assert _bits(got) == a.tobytes()
        assert _shares(got, a) == af.plan(a, "torch").zero_copy
    assert af.plan(aligned, "torch").zero_copy and not af.plan(off, "torch").zero_copy


@pytest.mark.parametrize("how", ["convert", "converter"])
def test_fast_key_keeps_flags_and_unit_axes_apart(fresh_cache: None, how: str) -> None:
    """Same dtype and shape, other flags (read-only, Fortran order) or odd strides on a length-1
    axis: each gets its own plan, whichever came first."""
    to_torch = af.converter("torch") if how == "converter" else (lambda a: af.convert(a, "torch"))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    ro = x.copy()
    ro.flags.writeable = False
    fo = np.asfortranarray(x)
    buf = np.arange(12, dtype=np.float32)
    unit = [np.lib.stride_tricks.as_strided(buf, shape=(3, 1), strides=(4, s)) for s in (4, 1001, -4)]
    for a in [x, ro, fo, *unit, x, ro, fo, *unit]:
        got = to_torch(a)
        assert np.array_equal(got.numpy(), a) and tuple(got.shape) == a.shape
        p = af.plan(a, "torch")
        assert _shares(got, a) == p.zero_copy
        if not a.flags.writeable:
            assert not _shares(got, a)


def test_fast_key_plans_once_for_many_shapes(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Contiguous arrays of one dtype and many shapes share one plan (the fast key holds the shape,
    the signature does not), and the fast keys kept per type are bounded."""
    monkeypatch.setattr(_api, "_MAX_FAST", 8)
    to_torch = af.converter("torch")
    for n in range(2, 40):
        a = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        t = to_torch(a)
        assert t.data_ptr() == a.ctypes.data and np.array_equal(t.numpy(), a)
        af.convert(a, "torch")
    assert _api.cache_size() == 1
    te = _api._CACHE["torch"][np.ndarray]
    assert te[1] is not te[3] and len(te[1]) <= 8


def test_fast_key_hit_failures_are_worded(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached run that fails on the hot path (found by its fast key) is reported from its plan,
    as for any cached run."""
    x = np.arange(4, dtype=np.float32)
    af.convert(x, "torch")
    te = _api._CACHE["torch"][np.ndarray]
    key = te[0](x)

    def broken(y: Any) -> Any:
        raise ValueError("boom")

    te[1][key] = broken
    # without the direct call (tests/test_direct_calls.py), which would answer first
    _api._CACHE["torch"][np.ndarray] = (te[0], te[1], te[2], te[3], None)
    with pytest.raises(af.ArrayFerryError, match="numpy float32") as info:
        af.convert(x, "torch")
    assert "boom" in str(info.value) and isinstance(info.value.__cause__, ValueError)


_DTYPES = ["float32", "float64", "int64", "int8", "bool", "complex64", "float16", "uint8"]


@st.composite
def _numpy_arrays(draw: Any, dtype: str | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    dt = np.dtype(dtype or draw(st.sampled_from(_DTYPES)))
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    a = (np.arange(int(np.prod(shape)) or 0) % 7).astype(dt).reshape(shape)
    if draw(st.booleans()) and a.ndim:
        a = a[::-1] if draw(st.booleans()) else np.asfortranarray(a)
    if draw(st.booleans()):
        a = a.astype(a.dtype.newbyteorder(">")) if a.dtype.kind not in "b" and a.dtype.itemsize > 1 else a
    if draw(st.booleans()) and a.dtype.isnative:  # a view at a byte offset (complex: maybe misaligned for torch)
        off = draw(st.sampled_from([0, a.dtype.itemsize // 2, a.dtype.itemsize])) if a.dtype.kind == "c" else 0
        buf = np.zeros(a.nbytes + 2 * a.dtype.itemsize + 16, np.uint8)
        start = -buf.ctypes.data % 16 + off
        v = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
        v[...] = a
        a = v
    if draw(st.booleans()) and a.ndim:  # a length-1 axis with an odd stride (contiguity flags ignore it)
        base = np.ascontiguousarray(a)
        a = np.lib.stride_tricks.as_strided(base, shape=(1, *base.shape), strides=(draw(st.sampled_from([0, 8, 1001, -4])), *base.strides))
    if draw(st.booleans()):
        a = a.copy() if not a.flags.writeable else a
        a.flags.writeable = False
    return a


def _check_sequence(arrays: list[np.ndarray]) -> None:
    to_torch = af.converter("torch")
    for a in arrays:
        p = af.plan(a, "torch")
        want = p.execute(a)
        for got in (to_torch(a), af.convert(a, "torch")):  # both go through NumPy's fast key first
            assert got.dtype == want.dtype and tuple(got.shape) == a.shape
            assert _bits(got) == _bits(want)
            if a.size:
                assert _shares(got, a) == p.zero_copy
            if not a.flags.writeable and a.size:
                assert not _shares(got, a)


@settings(max_examples=120, deadline=None)
@given(st.lists(_numpy_arrays(), min_size=1, max_size=6))
def test_converter_agrees_with_convert_for_any_sequence(arrays: list[np.ndarray]) -> None:
    """Whatever order arrays of any dtype, layout, byte order, writability, offset (complex views
    misaligned for torch) and length-1-axis strides come in, a converter and convert give what a
    fresh plan gives: values bit for bit, dtype, and memory shared exactly when the
    plan says zero-copy."""
    _check_sequence(arrays)


@st.composite
def _same_dtype_and_shape(draw: Any) -> list[np.ndarray]:
    """Arrays of one dtype and shape, each in its own layout: what NumPy's fast key (dtype, flags,
    shape) can confuse unless it leaves them to the signature."""
    dt = draw(st.sampled_from(_DTYPES))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    return draw(st.lists(_numpy_arrays(dt, shape), min_size=2, max_size=6))


@settings(max_examples=120, deadline=None)
@given(_same_dtype_and_shape())
def test_fast_key_agrees_with_the_signature(arrays: list[np.ndarray]) -> None:
    """Arrays that agree in dtype and shape but not in layout, offset or writability, in any
    order: each conversion is what its own plan gives (see the test above)."""
    _check_sequence(arrays)


# -- one cache for everything ----------------------------------------------------------------------
@pytest.fixture
def fresh_cache() -> Iterator[None]:
    af.clear_cache()
    yield
    af.clear_cache()


def test_convert_converter_tree_and_plan_tree_share_entries(fresh_cache: None) -> None:
    x = np.arange(4, dtype=np.float32)
    af.convert(x, "torch")
    assert _api.cache_size() == 1
    af.converter("torch")(np.ones(3, np.float32))
    tree = {"a": np.zeros(2, np.float32), "b": [np.ones(5, np.float32), "kept"]}
    af.convert_tree(tree, "torch")
    tp = af.plan_tree(tree, "torch")
    assert _api.cache_size() == 1  # one signature, one entry, whoever asked
    t, _, _ = _api.template_for(_api.options_key("torch"), x)
    assert all(lp.plan._t is t for lp in tp.leaves)  # plan_tree reports the cached plan itself
    af.convert(x, "torch", dtype="float64")
    assert _api.cache_size() == 2  # other options: another entry
    af.converter("torch", dtype="float64")(x)
    af.convert_tree(tree, "torch", dtype="float64")
    assert _api.cache_size() == 2


def test_accepts_uses_the_same_cache(fresh_cache: None) -> None:
    @af.accepts("torch")
    def add(a: Any, b: Any) -> Any:
        return a + b

    x, y = np.arange(3.0), np.ones(3)
    af.convert(x, "torch")
    assert _api.cache_size() == 1
    r = add(x, y)
    assert isinstance(r, np.ndarray) and np.array_equal(r, x + y)
    assert _api.cache_size() == 2  # arguments: the entry convert made; the result back: torch -> numpy
    add(x, y)
    add(a=x, b=y)  # the general path: the same entries
    assert _api.cache_size() == 2


def test_clear_cache_reaches_converters(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    planned: list[Any] = []
    real = _api._template

    def counting(*a: Any, **k: Any) -> Any:
        planned.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(_api, "_template", counting)
    conv = af.converter("torch")
    x = np.arange(3.0)
    conv(x)
    conv(x)
    assert len(planned) == 1
    af.clear_cache()
    assert _api.cache_size() == 0
    conv(x)  # planned again: the converter's dict was emptied, not orphaned
    assert len(planned) == 2
    af.convert(x, "torch")
    assert len(planned) == 2 and _api.cache_size() == 1


def test_cache_is_bounded(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_api, "_MAX_PLANS", 3)
    conv = af.converter("numpy")
    for dt in ("float32", "float64", "int8", "int16", "int32", "uint8", "bool"):
        a = np.zeros(2, dt)
        assert conv(a) is a
        assert _api.cache_size() <= 3
    assert af.convert(np.zeros(2, "int64"), "numpy").dtype == np.int64


# -- failures of cached runs, worded once ----------------------------------------------------------
class _Box:
    def __init__(self, a: Any) -> None:
        self.a = a


@pytest.fixture
def fail_probe() -> Iterator[dict[str, Any]]:
    """A target framework whose import step raises a foreign error on demand, and that refines its
    plans by the array's length (as JAX refines by alignment)."""
    state: dict[str, Any] = {"fail": False, "refined": 0}

    class FailAdapter(af.Adapter):
        name = "failprobe"
        module = __name__
        readonly_capable = True
        refines = True

        def owns(self, tp: type) -> bool:
            return tp is _Box

        def describe(self, x: Any) -> af.ArrayInfo:
            return af.ArrayInfo("failprobe", str(x.a.dtype), x.a.shape, itemsize=x.a.itemsize)

        def export_host(self, x: Any) -> Any:
            return x.a

        def import_host(self, arr: Any) -> Any:
            if state["fail"]:
                raise RuntimeError("probe import failed")
            return _Box(arr)

        def refine_key(self, source: af.Adapter, x: Any) -> tuple[tuple[str, Any], ...]:
            state["refined"] += 1
            return (("even", len(x) % 2 == 0),)

    class Plugin:
        @af.hookimpl
        def arrayferry_adapters(self) -> list[af.Adapter]:
            return [FailAdapter()]

    name = af.register_plugin(Plugin(), "test-fail-probe")
    try:
        yield state
    finally:
        af.unregister_plugin(name)


def test_cached_failure_is_worded_alike_everywhere(fail_probe: dict[str, Any]) -> None:
    x = np.arange(4.0)
    assert isinstance(af.convert(x, "failprobe"), _Box)  # planned and cached
    fail_probe["fail"] = True
    messages = []
    for call in (lambda: af.convert(x, "failprobe"), lambda: af.converter("failprobe")(x)):
        with pytest.raises(af.ArrayFerryError) as info:
            call()
        assert isinstance(info.value.__cause__, RuntimeError)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "failprobe" in messages[0] and "probe import failed" in messages[0]
    with pytest.raises(af.ArrayFerryError) as tree_info:
        af.convert_tree({"k": [x]}, "failprobe")
    assert str(tree_info.value).startswith("In the tree, leaf ['k'][0] could not be converted")
    assert messages[0] in str(tree_info.value)


def test_refining_targets_plan_per_refine_key_through_every_path(fail_probe: dict[str, Any]) -> None:
    even, odd = np.arange(4.0), np.arange(5.0)
    conv = af.converter("failprobe")
    assert isinstance(conv(even), _Box) and isinstance(conv(odd), _Box)
    tp = af.plan_tree({"e": even, "o": odd, "e2": np.arange(6.0)}, "failprobe")
    assert len(tp.plans) == 2  # one per refine key, the same signature
    assert tp["['e']"].plan is tp["['e2']"].plan
    out = af.convert_tree([even, odd], "failprobe")
    assert [type(o) for o in out] == [_Box, _Box]
    assert np.array_equal(out[1].a, odd)


# -- the walker -------------------------------------------------------------------------------------
def test_leaves_and_convert_tree_visit_the_same_paths() -> None:
    from arrayferry._tree import leaves

    tree = {"a": [np.ones(1), ("s", np.zeros(2))], "b": {"c": np.arange(3.0)}, "n": None}
    found, kept = leaves(tree)
    assert [p for p, _ in found] == ["['a'][0]", "['a'][1][1]", "['b']['c']"]
    assert kept == ["['a'][1][0]", "['n']"]
    tp = af.plan_tree(tree, "torch")
    assert [lp.path for lp in tp.leaves] == [p for p, _ in found]
    out = af.convert_tree(tree, "torch")
    assert out["a"][1][0] == "s" and out["n"] is None
    assert all(isinstance(v, torch.Tensor) for v in (out["a"][0], out["a"][1][1], out["b"]["c"]))


# -- the first conversion ---------------------------------------------------------------------------
def test_first_conversion_imports_no_masked_array_module() -> None:
    """numpy.ma costs about 15 ms to import; describing a plain array never needs it (a masked
    array means the program imported it already)."""
    code = (
        "import sys, numpy, arrayferry\n"
        "print('numpy.ma' in sys.modules)\n"
        "arrayferry.convert(numpy.ones(3), 'numpy'); arrayferry.plan(numpy.ones(3), 'numpy').explain()\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        # NumPy 1.x imports numpy.ma itself (``import numpy`` does): nothing left to save
        assert out.stdout.split() == ["True", "True"]
    else:
        assert out.stdout.split() == ["False", "False"]


def test_masked_arrays_still_refused() -> None:
    m = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    conv = af.converter("torch")
    conv(np.ones(2))
    with pytest.raises(af.UnsupportedArrayError) as info:
        conv(m)
    assert "masked" in str(info.value)


def test_convert_keeps_its_signature_with_the_options_read_off_the_hot_path() -> None:
    """convert's hot path takes ``**kw`` (keyword-only defaults cost a call 70 ns to fill in): its
    documented signature, keyword-only options and errors stay those of the options version."""
    import inspect

    params = inspect.signature(af.convert).parameters
    assert list(params) == ["x", "to", "device", "dtype", "copy", "stream", "casting", "options"]
    assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in ("device", "dtype", "copy", "stream", "casting"))
    x = np.arange(4, dtype=np.float32)
    with pytest.raises(TypeError):
        af.convert(x, "torch", "cpu")  # type: ignore[call-overload]
    with pytest.raises(af.ArgumentError, match="chunks"):
        af.convert(x, "torch", chunks=2)
    t = af.convert(x, "torch", copy=None)  # the default, spelled out: the same plan as convert(x, "torch")
    assert t.data_ptr() == x.ctypes.data and af.convert(x, "torch").data_ptr() == x.ctypes.data
    assert af.convert(x, to="torch", dtype="float64").dtype == torch.float64
