"""``to=`` an array-API namespace, or an example array.

Namespaces the registry knows (``array_api_compat.numpy``/``torch``/``dask.array``, the
``array_api_strict`` module, NumPy 2's main namespace) keep their frameworks' adapters. Any
other namespace becomes a generic host target whose plans are honest: zero-copy only where its
``asarray``/``from_dlpack`` takes ``copy=False`` and a probe saw it alias; ``copy=True`` is
independent memory; ``copy=False`` with a namespace that cannot promise raises
``CopyRequiredError``. An example array ``to=y`` means ``y``'s framework and device.
"""

from __future__ import annotations

import gc
import types
import weakref
from typing import Any

import numpy as np
import pytest

import arrayferry as af
from arrayferry import _api
from arrayferry.testing.cases import np_asarray, np_from_dlpack

torch = pytest.importorskip("torch")
array_api_compat = pytest.importorskip("array_api_compat")

_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64",
           "complex64", "complex128")


class MiniArray:
    """The arrays of ``minixp``: a NumPy array in a wrapper (not a registered framework)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __dlpack__(self, **kw: Any) -> Any:
        return self.a.__dlpack__(**kw)

    def __dlpack_device__(self) -> Any:
        return self.a.__dlpack_device__()

    def __array_namespace__(self, api_version: str | None = None) -> Any:
        return MINIXP


def _module(name: str, *, copy_kw: bool = True, honest: bool = True, from_dlpack: bool = True,
            asarray: bool = True) -> types.ModuleType:
    """A small real array-API namespace over NumPy: ``asarray``/``from_dlpack`` with the 2023.12
    ``copy=`` (or without it: an older namespace; or ignoring ``copy=False``: a dishonest one)."""
    m = types.ModuleType(name)
    for d in _DTYPES:
        setattr(m, d, np.dtype(d))

    if asarray:
        if not copy_kw:
            def asarray_old(obj: Any) -> MiniArray:
                return MiniArray(np.asarray(obj))

            m.asarray = asarray_old  # type: ignore[attr-defined]
        elif honest:
            def asarray_new(obj: Any, /, *, copy: bool | None = None) -> MiniArray:
                return MiniArray(np_asarray(obj.a if isinstance(obj, MiniArray) else obj, copy=copy))

            m.asarray = asarray_new  # type: ignore[attr-defined]
        else:
            def asarray_lying(obj: Any, /, *, copy: bool | None = None) -> MiniArray:
                return MiniArray(np.array(obj, copy=True))  # copies whatever copy= says

            m.asarray = asarray_lying  # type: ignore[attr-defined]
    if from_dlpack:
        if copy_kw:
            def from_dlpack_new(x: Any, /, *, copy: bool | None = None) -> MiniArray:
                return MiniArray(np_from_dlpack(x, copy=copy))

            m.from_dlpack = from_dlpack_new  # type: ignore[attr-defined]
        else:
            def from_dlpack_old(x: Any, /) -> MiniArray:
                return MiniArray(np.from_dlpack(x))

            m.from_dlpack = from_dlpack_old  # type: ignore[attr-defined]
    return m


MINIXP = _module("minixp")
OLDXP = _module("oldxp", copy_kw=False)
LYINGXP = _module("lyingxp", honest=False, from_dlpack=False)
DLPACKXP = _module("dlpackxp", asarray=False)


def _special(dtype: str = "float64", n: int = 12) -> np.ndarray:
    a = np.arange(n).astype(dtype)
    if np.dtype(dtype).kind in "fc":
        a[:4] = [np.nan, -0.0, np.inf, -np.inf]
    return a


def _bits(a: Any) -> tuple[str, tuple[int, ...], bytes]:
    a = np.asarray(a.a if isinstance(a, MiniArray) else a)
    return a.dtype.name, a.shape, np.ascontiguousarray(a).tobytes()


# ------------------------------------------------------------------------------------------------
# registered frameworks' namespaces keep their adapters


@pytest.mark.parametrize("src", ["numpy", "torch"])
def test_array_api_compat_namespaces_map_to_registered_adapters(src: str) -> None:
    x = _special("float32")
    y = torch.from_numpy(x.copy())
    for ns, name, kind in [(array_api_compat.array_namespace(x), "numpy", np.ndarray),
                           (array_api_compat.array_namespace(y), "torch", torch.Tensor),
                           (np, "numpy", np.ndarray), (torch, "torch", torch.Tensor)]:
        source = x if src == "numpy" else torch.from_numpy(x)
        p = af.plan(source, ns)
        assert p.target == name and p.zero_copy
        out = af.convert(source, ns)
        assert type(out) is kind
        assert _bits(np.asarray(out)) == _bits(x)
        assert np.shares_memory(np.asarray(out), x)


def test_array_api_strict_module_and_dask_compat_namespace() -> None:
    xps = pytest.importorskip("array_api_strict")
    x = _special()
    p = af.plan(x, xps)
    assert p.target == "array_api_strict"
    assert type(af.convert(x, xps)).__module__.startswith("array_api_strict")
    pytest.importorskip("dask.array")
    import dask.array as da

    ns = array_api_compat.array_namespace(da.zeros(2))
    assert ns.__name__ == "array_api_compat.dask.array"
    y = af.convert(x.reshape(3, 4), ns, chunks=(1, 2))  # the dask adapter, with its target options
    assert isinstance(y, da.Array) and y.chunks == ((1, 1, 1), (2, 2))
    assert _bits(y.compute()) == _bits(x.reshape(3, 4))


# ------------------------------------------------------------------------------------------------
# an unregistered namespace


@pytest.mark.parametrize("dtype", _DTYPES)
def test_unregistered_namespace_aliases_when_it_promises(dtype: str) -> None:
    x = _special(dtype)
    p = af.plan(x, MINIXP)
    assert p.target == "minixp" and p.zero_copy and p.route == "host"
    assert any("minixp.asarray(numpy_array, copy=False)" in n and "a probe saw it alias" in n for n in p.notes)
    out = af.convert(x, MINIXP)
    assert isinstance(out, MiniArray)
    assert _bits(out) == _bits(x)
    assert np.shares_memory(out.a, x)


def test_copy_policies_with_an_honest_namespace() -> None:
    x = _special()
    y = af.convert(x, MINIXP, copy=False)
    assert np.shares_memory(y.a, x)
    z = af.convert(x, MINIXP, copy=True)
    assert not af.plan(x, MINIXP, copy=True).zero_copy
    assert _bits(z) == _bits(x)
    z.a[5] = 99.0  # independent: a write through one is not seen by the other
    x[6] = -7.0
    assert x[5] == 5.0 and z.a[6] == 6.0


@pytest.mark.parametrize("ns, why", [(OLDXP, "takes no copy= (array API before 2023.12"),
                                     (LYINGXP, "copy=False copied NumPy memory in a probe")])
def test_a_namespace_that_cannot_promise_gets_a_private_copy(ns: Any, why: str) -> None:
    x = _special()
    for copy in (None, True):
        p = af.plan(x, ns, copy=copy)
        assert not p.zero_copy and p.copies == 1
        assert why in p.explain()
        out = af.convert(x, ns, copy=copy)
        assert _bits(out) == _bits(x)
        assert not np.shares_memory(out.a, x)
        out.a[5] = 99.0
        assert x[5] == 5.0
    with pytest.raises(af.CopyRequiredError) as info:
        af.convert(x, ns, copy=False)
    assert isinstance(info.value, BufferError)
    msg = str(info.value)
    assert f"to {ns.__name__} on cpu" in msg and why in msg and msg.splitlines()[-1].startswith("Hint:")


def test_from_dlpack_only_namespace() -> None:
    x = _special("int32")
    p = af.plan(x, DLPACKXP)
    assert p.zero_copy and any("dlpackxp.from_dlpack(numpy_array, copy=False)" in n for n in p.notes)
    out = af.convert(x, DLPACKXP)
    assert np.shares_memory(out.a, x) and _bits(out) == _bits(x)
    t = torch.arange(6, dtype=torch.float32)
    out = af.convert(t, DLPACKXP)
    t[0] = 5.0
    assert out.a[0] == 5.0  # aliases the tensor


def test_torch_source_into_a_namespace() -> None:
    t = torch.tensor([float("nan"), -0.0, float("inf"), 1.5])
    p = af.plan(t, MINIXP)
    assert p.zero_copy
    out = af.convert(t, MINIXP)
    assert _bits(out) == _bits(t.numpy())
    t[3] = 2.5
    assert out.a[3] == 2.5
    out = af.convert(t, MINIXP, copy=True)
    t[3] = 3.5
    assert out.a[3] == 2.5


def test_read_only_and_strided_sources_are_copied_and_the_plan_says_why() -> None:
    x = _special()
    x.flags.writeable = False
    p = af.plan(x, MINIXP)
    assert not p.zero_copy and "read-only" in p.explain()
    out = af.convert(x, MINIXP)
    assert out.a.flags.writeable and not np.shares_memory(out.a, x) and _bits(out) == _bits(x)
    with pytest.raises(af.CopyRequiredError):
        af.convert(x, MINIXP, copy=False)
    s = _special()[::2]
    p = af.plan(s, MINIXP)
    assert not p.zero_copy and "C-contiguous" in p.explain()
    assert _bits(af.convert(s, MINIXP)) == _bits(s)


def test_dtype_casts_run_on_the_host_and_unknown_dtypes_are_refused() -> None:
    x = _special("float64")
    out = af.convert(x, MINIXP, dtype="float32")
    assert _bits(out) == _bits(x.astype("float32"))
    assert not hasattr(MINIXP, "float16")
    with pytest.raises(af.UnsupportedDTypeError) as info:
        af.convert(np.zeros(3, np.float16), MINIXP)
    assert "minixp cannot hold float16" in str(info.value)


def test_a_namespace_target_is_cached_like_a_name() -> None:
    af.clear_cache()
    x = _special()
    af.convert(x, MINIXP)
    n = _api.cache_size()
    af.convert(x, MINIXP)
    assert _api.cache_size() == n
    assert af.plan(x, MINIXP).target == "minixp"


def test_an_unregistered_array_names_its_namespace() -> None:
    x = _special()
    example = MiniArray(np.zeros(2))
    assert af.framework_of(example) == "dlpack"  # no registered framework: read through its protocol as a source
    out = af.convert(x, example)  # to= an array of no registered framework: its __array_namespace__()
    assert isinstance(out, MiniArray) and np.shares_memory(out.a, x)


def test_namespace_and_example_targets_in_trees() -> None:
    x = _special()
    out = af.convert_tree({"a": x, "b": [x]}, MINIXP)
    assert isinstance(out["a"], MiniArray) and np.shares_memory(out["b"][0].a, x)
    out = af.convert_tree({"a": x}, torch.zeros(1))
    assert isinstance(out["a"], torch.Tensor)
    tp = af.plan_tree({"a": x}, MINIXP)
    assert tp.leaves[0].plan.target == "minixp"


@pytest.mark.parametrize("bad", [[1, 2], 3.5, None, object()])
def test_something_else_is_still_an_unknown_target(bad: Any) -> None:
    with pytest.raises(af.UnknownFrameworkError) as info:
        af.convert(np.zeros(2), bad)
    msg = str(info.value)
    assert "Unknown target framework" in msg and "array-API namespace" in msg.splitlines()[-1]


def test_a_namespace_whose_calls_fail_is_refused() -> None:
    broken = types.ModuleType("brokenxp")

    def asarray(obj: Any, /, *, copy: bool | None = None) -> Any:
        raise RuntimeError("no")

    broken.asarray = asarray  # type: ignore[attr-defined]
    with pytest.raises(af.UnknownFrameworkError) as info:
        af.convert(np.zeros(2), broken)
    msg = str(info.value)
    assert "brokenxp cannot be a target" in msg and msg.splitlines()[-1].startswith("Hint:")


# ------------------------------------------------------------------------------------------------
# an example array as the target


def test_example_array_gives_framework_and_device() -> None:
    x = _special("float32")
    ex = torch.zeros(1)
    p = af.plan(x, ex)
    assert p.target == "torch" and str(p.device) == "cpu" and p.zero_copy
    out = af.convert(x, ex)
    assert isinstance(out, torch.Tensor) and np.shares_memory(out.numpy(), x)
    assert isinstance(af.convert(torch.from_numpy(x), np.zeros(1)), np.ndarray)
    with pytest.raises(af.DeviceError):  # an explicit device= wins over the example's
        af.convert(x, np.zeros(1), device="cuda")


def test_example_arrays_never_key_the_cache() -> None:
    af.clear_cache()
    x = _special("float32")
    ex = torch.zeros(1)
    ref = weakref.ref(ex)
    for _ in range(3):
        af.convert(x, ex)
        af.convert(x, np.zeros(1))  # unhashable: through the key of "numpy" too
    assert all(key is not ex and not (isinstance(key, tuple) and any(k is ex for k in key)) for key in _api._CACHE)
    n = _api.cache_size()
    af.convert(x, torch.ones(3))  # another example of the same framework and device: no new plan
    assert _api.cache_size() == n
    del ex
    gc.collect()
    assert ref() is None  # nothing arrayferry keeps holds the example


def test_example_array_with_options() -> None:
    pytest.importorskip("dask.array")
    import dask.array as da

    y = af.convert(np.arange(6.0), da.zeros(2), chunks=2)
    assert y.chunks == ((2, 2, 2),)


# ------------------------------------------------------------------------------------------------
# the class: any layout, dtype, namespace kind and copy policy keeps the plan honest

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_LAYOUTS = ("contiguous", "strided", "reversed", "transposed", "readonly", "byteswapped", "0-d", "empty")


def _source(layout: str, dtype: str) -> np.ndarray:
    base = _special(dtype, 24).reshape(4, 6)
    if layout == "strided":
        return base[:, ::2]
    if layout == "reversed":
        return base[::-1]
    if layout == "transposed":
        return base.T
    if layout == "readonly":
        base.flags.writeable = False
        return base
    if layout == "byteswapped":
        return base.astype(base.dtype.newbyteorder())
    if layout == "0-d":
        return base[1:2, 1:2].copy().reshape(())
    if layout == "empty":
        return base[:0]
    return base


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_LAYOUTS), st.sampled_from(("bool", "int8", "uint16", "int64", "float32", "float64", "complex64")),
       st.sampled_from(("minixp", "oldxp", "lyingxp", "dlpackxp")), st.sampled_from((None, True, False)),
       st.booleans())
def test_namespace_plans_are_honest(layout: str, dtype: str, which: str, copy: bool | None, via_torch: bool) -> None:
    ns = {"minixp": MINIXP, "oldxp": OLDXP, "lyingxp": LYINGXP, "dlpackxp": DLPACKXP}[which]
    x = _source(layout, dtype)
    src: Any = x
    if via_torch:
        if layout in ("byteswapped",) or x.dtype == np.uint16 and torch.__version__ < "2.3":
            return
        src = af.convert(x, "torch")  # (a copy where torch cannot alias the layout)
    view = np.asarray(af.convert(src, "numpy", copy=False)) if via_torch else x
    default = af.plan(src, ns)
    if copy is False and not default.zero_copy:
        with pytest.raises(af.CopyRequiredError):
            af.convert(src, ns, copy=False)
        return
    p = af.plan(src, ns, copy=copy)
    out = af.convert(src, ns, copy=copy)
    assert isinstance(out, MiniArray)
    assert _bits(out) == _bits(x.astype(x.dtype.newbyteorder("=")))
    shared = np.shares_memory(out.a, view) and view.size > 0
    if view.size > 0:
        assert shared == p.zero_copy, p.explain()
    if copy is True or layout == "readonly" and not via_torch:  # (torch copied read-only memory already)
        assert not shared
    if which in ("oldxp", "lyingxp"):
        assert not p.zero_copy


def test_example_arrays_device_is_asked_for_without_a_gpu() -> None:
    """A CuPy example on cuda:1 (a real cupy.ndarray labelled so, built without a driver: see
    tests/cuda_support.py) asks for CuPy on cuda:1; an explicit device= wins."""
    from cuda_support import cupy_without_driver, driverless_cupy_array

    if not cupy_without_driver():
        pytest.skip("needs CuPy installed without a usable CUDA device")
    ex = driverless_cupy_array(np.zeros(2), 1)
    with pytest.raises(af.DeviceError, match="asked for device 'cuda:1'"):
        af.convert(np.arange(3.0), ex)
    with pytest.raises(af.DeviceError, match="asked for device 'cuda:0'"):
        af.plan(np.arange(3.0), ex, device="cuda:0")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")
def test_example_cuda_tensor_puts_the_result_on_its_gpu() -> None:
    ex = torch.zeros(1, device="cuda")
    x = _special("float32")
    out = af.convert(x, ex)
    assert out.device == ex.device
    assert _bits(out.cpu().numpy()) == _bits(x)
    assert af.convert(x, ex, device="cpu").device.type == "cpu"
    back = af.convert(out, np.zeros(1))  # a NumPy example: the host
    assert _bits(back) == _bits(x)


def test_public_test_namespace_is_a_generic_target() -> None:
    """``arrayferry.testing.cases.array_api_namespace()`` (what ``arrayferry matrix --sources``
    converts into) is a real namespace no plugin registers: zero-copy where its ``copy=False``
    aliases (written through), a named copy for read-only memory, bits kept."""
    from arrayferry.testing.cases import NamespaceArray, array_api_namespace

    ns = array_api_namespace()
    x = _special("float32")
    p = af.plan(x, ns)
    assert p.target == "arrayferry_minixp" and p.zero_copy
    y = af.convert(x, ns)
    assert type(y) is NamespaceArray and y.a.dtype == np.float32 and y.a.tobytes() == x.tobytes()
    x[5] = 42.0
    assert y.a[5] == 42.0  # shares memory, as planned
    ro = _special("float32")
    ro.flags.writeable = False
    p = af.plan(ro, ns)
    assert not p.zero_copy and "read-only" in p.explain()
    z = af.convert(ro, ns)
    assert not np.shares_memory(z.a, ro) and z.a.tobytes() == ro.tobytes()
    # and back: its arrays are read through __dlpack__ (a protocol source)
    assert af.framework_of(y) == "dlpack"
    back = af.convert(y, "numpy")
    assert np.shares_memory(back, x)
