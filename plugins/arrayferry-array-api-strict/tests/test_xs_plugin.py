"""The array-api-strict plugin against real array-api-strict, NumPy and torch.

Values are compared bit for bit (bytes, so NaN payloads, -0.0 and inf count); memory sharing is
checked with ``np.shares_memory`` on the arrays' NumPy views and by writing through the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import arrayferry as af

XS_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float32", "float64", "complex64", "complex128")


def sample(dtype: str, shape: tuple[int, ...] = (4, 6)) -> np.ndarray:
    """Values that expose mistakes: extremes, NaN, -0.0, +-inf (a fresh C-contiguous array)."""
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind == "b":
        flat = np.arange(n) % 3 == 0
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        flat = (np.arange(n) * 7).astype(dt)
        flat[:2] = [info.min, info.max][: min(2, n)]
    else:
        specials = [np.nan, -0.0, np.inf, -np.inf, 1e-38, -1.5]
        flat = np.arange(n, dtype=dt) * dt.type(0.5)
        k = min(n, len(specials))
        flat[:k] = np.array(specials[:k]).astype(dt)
        if dt.kind == "c":
            flat.imag = -np.arange(n)
            if n:
                flat[-1] = complex(-0.0, np.nan)
    return flat.astype(dt).reshape(shape)


#: layout name -> view of a (4, 6) base array (0-d and empty build their own).
LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "contiguous": lambda a: a,
    "fortran": lambda a: a.T,
    "strided": lambda a: a[:, ::2],
    "negative": lambda a: a[::-1, ::2],
    "zerod": lambda a: a.reshape(-1)[5:6].reshape(()),
    "empty": lambda a: a[:0],
}


def host(x: Any) -> np.ndarray:
    """A NumPy view of any array here (torch tensors through ``.numpy()``)."""
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch"):
        return x.detach().numpy()
    return np.from_dlpack(x)


def same_bits(a: Any, b: Any) -> bool:
    ha, hb = host(a), host(b)
    return ha.dtype == hb.dtype and ha.shape == hb.shape and ha.tobytes() == hb.tobytes()


def shares(a: Any, b: Any) -> bool:
    return bool(np.shares_memory(host(a), host(b)))


def make(xs: Any, dtype: str, layout: str) -> tuple[Any, np.ndarray]:
    """An xs array with that dtype and layout, and an independent copy of its values."""
    view = LAYOUTS[layout](sample(dtype))
    return xs.asarray(view), view.copy()


# -- loading ---------------------------------------------------------------------------------


def test_plugin_is_loaded_through_its_entry_point(xs: Any) -> None:
    infos = {f.name: f for f in af.frameworks()}
    assert infos["array_api_strict"].plugin == "array_api_strict"
    assert infos["array_api_strict"].version == xs.__version__
    assert not [b for b in af.broken_plugins() if b[0] == "array_api_strict"]


def test_importing_the_plugin_imports_no_framework(run_python: Any) -> None:
    r = run_python(
        """
        import sys, numpy as np, arrayferry as af, arrayferry_array_api_strict
        assert af.framework_of(np.zeros(3)) == "numpy"
        assert "array_api_strict" in [f.name for f in af.frameworks()]
        print(sorted(m for m in ("array_api_strict", "torch", "jax", "dask") if m in sys.modules))
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_detection_and_names(xs: Any) -> None:
    x = xs.asarray([1.0, 2.0])
    assert af.framework_of(x) == "array_api_strict"
    for name in ("array_api_strict", "xs", "array-api-strict", xs):
        assert af.framework_of(af.convert(np.zeros(2), name)) == "array_api_strict"


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [k for k in LAYOUTS if k != "negative"])
@pytest.mark.parametrize("dtype", XS_DTYPES)
@pytest.mark.parametrize("peer", ["numpy", "torch"])
def test_round_trip_bit_for_bit(xs: Any, torch: Any, peer: str, dtype: str, layout: str) -> None:
    x, ref = make(xs, dtype, layout)
    out = af.convert(x, peer)
    assert af.framework_of(out) == peer
    assert same_bits(out, ref)
    back = af.convert(out, "xs")
    assert af.framework_of(back) == "array_api_strict"
    assert back.dtype == getattr(xs, dtype)
    assert same_bits(back, ref)


@pytest.mark.parametrize("dtype", XS_DTYPES)
@pytest.mark.parametrize("peer", ["numpy", "torch"])
def test_negative_strides_round_trip(xs: Any, torch: Any, negative_strides_safe: None, peer: str, dtype: str) -> None:
    x, ref = make(xs, dtype, "negative")
    p = af.plan(x, peer)
    assert p.source.layout == "negative"
    out = af.convert(x, peer)
    assert same_bits(out, ref)
    assert shares(out, x) == p.zero_copy == (peer == "numpy")
    assert same_bits(af.convert(out, "xs"), ref)


def test_negative_strides_to_torch_in_a_fresh_process(run_python: Any, torch: Any) -> None:
    """torch.as_tensor of this array aborts the process; arrayferry must copy it first."""
    r = run_python(
        """
        import numpy as np, array_api_strict as xs, arrayferry as af
        base = np.arange(12, dtype=np.int32).reshape(3, 4)
        x = xs.asarray(base)[::-1, ...]
        t = af.convert(x, "torch")
        assert t.tolist() == base[::-1].tolist(), t
        assert not np.shares_memory(t.numpy(), base)
        try:
            af.convert(x, "torch", copy=False)
        except af.CopyRequiredError as e:
            assert "negative strides" in str(e) and "Hint:" in str(e), e
        else:
            raise AssertionError("copy=False did not raise")
        print("survived", t.stride())
        """
    )
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "survived (4, 1)" in r.stdout


# -- copy policies and plan honesty -----------------------------------------------------------

PAIRS = [("numpy", "xs"), ("xs", "numpy"), ("xs", "torch"), ("torch", "xs"), ("xs", "xs")]


def _source(kind: str, xs: Any, torch: Any, layout: str) -> tuple[Any, np.ndarray]:
    x, ref = make(xs, "float32", layout)
    if kind == "numpy":
        return LAYOUTS[layout](sample("float32")), ref
    if kind == "torch":
        t = torch.from_numpy(sample("float32"))
        return {"contiguous": t, "fortran": t.T, "strided": t[:, ::2]}[layout], ref
    return x, ref


@pytest.mark.parametrize("layout", ["contiguous", "fortran", "strided"])
@pytest.mark.parametrize("copy", [None, False, True])
@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_copy_policy_and_plan_honesty(xs: Any, torch: Any, src: str, dst: str, copy: bool | None, layout: str) -> None:
    x, ref = _source(src, xs, torch, layout)
    p = af.plan(x, dst, copy=copy)
    out = af.convert(x, dst, copy=copy)
    assert same_bits(out, ref)
    assert shares(out, x) == p.zero_copy
    if copy is True:
        assert not p.zero_copy
    if copy is None:  # every pair here can alias these layouts
        assert p.zero_copy
    # write through the result and read the source
    h = host(out)
    before = host(x).copy()
    h[(0,) * h.ndim] = 42.0
    assert (host(x)[(0,) * h.ndim] == 42.0) == p.zero_copy
    if not p.zero_copy:
        assert host(x).tobytes() == before.tobytes()


def test_copy_false_raises_when_a_copy_is_needed(xs: Any, torch: Any) -> None:
    x = xs.asarray(sample("float64"), device=xs.Device("device1"))
    with pytest.raises(af.CopyRequiredError) as ei:
        af.convert(x, "numpy", copy=False)
    msg = str(ei.value)
    assert "device1" in msg and "copy=False" in msg and msg.splitlines()[-1].startswith("Hint:")


# -- read-only memory ----------------------------------------------------------------------------


def test_readonly_numpy_stays_readonly_in_xs(xs: Any) -> None:
    a = sample("float64")
    a.flags.writeable = False
    p = af.plan(a, "xs")
    x = af.convert(a, "xs")
    assert p.zero_copy and shares(x, a)
    with pytest.raises(ValueError, match="read-only"):
        x[0, 0] = 1.0
    assert not np.from_dlpack(x).flags.writeable
    assert af.plan(x, "numpy").source.readonly


@pytest.mark.parametrize("copy", [None, True])
def test_readonly_xs_never_becomes_a_writable_torch_alias(xs: Any, torch: Any, copy: bool | None) -> None:
    a = sample("float32")
    a.flags.writeable = False
    x = xs.asarray(a)
    t = af.convert(x, "torch", copy=copy)
    assert not shares(t, a)
    t[0, 0] = 7.0
    assert a[0, 0] != 7.0
    with pytest.raises(af.CopyRequiredError, match="writable"):
        af.convert(x, "torch", copy=False)


def test_broadcast_xs_to_torch_copies(xs: Any, torch: Any) -> None:
    x = xs.broadcast_to(xs.asarray([1.0, -0.0, np.nan]), (4, 3))
    t = af.convert(x, "torch")
    assert same_bits(t, np.broadcast_to(np.array([1.0, -0.0, np.nan]), (4, 3)).copy())
    t[0, 0] = 5.0  # an independent dense copy: one element changes, not a broadcast column
    assert host(t)[1:, 0].tolist() == [1.0, 1.0, 1.0] and float(x[0, 0]) == 1.0


def test_xs_arrays_are_writable_and_shared_with_numpy(xs: Any) -> None:
    x = xs.asarray(sample("int32"))
    n = af.convert(x, "numpy")
    assert af.plan(x, "numpy").zero_copy
    n[0, 0] = 5
    assert int(x[0, 0]) == 5


# -- devices -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["device1", "device2"])
@pytest.mark.parametrize("source", ["numpy", "torch"])
def test_conversion_onto_an_xs_device(xs: Any, torch: Any, source: str, name: str) -> None:
    ref = sample("float64")
    x = ref.copy() if source == "numpy" else torch.from_numpy(ref.copy())
    for dev in (name, xs.Device(name), af.Device(name)):
        p = af.plan(x, "xs", device=dev)
        out = af.convert(x, "xs", device=dev)
        assert out.device == xs.Device(name)
        assert af.device_of(out) == af.Device(name)
        assert not p.zero_copy and any(s.name == "to_device" for s in p.steps)
        assert not shares(out, x)
        assert same_bits(out, ref)


@pytest.mark.parametrize("peer", ["numpy", "torch", "xs"])
def test_leaving_an_xs_device_stages_to_the_host(xs: Any, torch: Any, peer: str) -> None:
    ref = sample("complex128")
    x = xs.asarray(ref.copy(), device=xs.Device("device2"))
    with pytest.raises(RuntimeError):  # array-api-strict's own refusal, which arrayferry routes around
        np.asarray(x)
    p = af.plan(x, peer, device="cpu")
    assert p.source.device == af.Device("device2") and p.device == af.Device("cpu")
    assert any(s.name == "to_host" for s in p.steps) or any(s.name == "to_device" for s in p.steps)
    out = af.convert(x, peer, device="cpu")
    assert same_bits(out, ref) and not shares(out, x)
    if peer == "xs":
        assert out.device == xs.Device("CPU_DEVICE")


def test_device_to_device_within_xs(xs: Any) -> None:
    ref = sample("int16")
    x = xs.asarray(ref.copy(), device=xs.Device("device1"))
    same = af.convert(x, "xs")
    assert same is x  # no device asked: stays where it is, nothing done
    moved = af.convert(x, "xs", device="device2")
    assert moved.device == xs.Device("device2") and same_bits(moved, ref) and not shares(moved, x)


def _has_device(xs: Any, name: str) -> bool:
    return any(repr(d) == f"array_api_strict.Device('{name}')" for d in xs.__array_namespace_info__().devices())


def test_devices_are_reported(xs: Any) -> None:
    info = {f.name: f for f in af.frameworks(probe_devices=True)}
    # array-api-strict 2.6 added the devices without 64-bit types
    extra = ("no_float64", "no_x64") if _has_device(xs, "no_float64") else ()
    assert info["array_api_strict"].devices == ("cpu", "device1", "device2", *extra)
    assert af.device_of(xs.asarray([1])) == af.Device("cpu")


@pytest.mark.parametrize("device", ["device9", "cuda", "cpu:1"])
def test_unknown_device_is_refused(xs: Any, device: str) -> None:
    with pytest.raises(af.DeviceError) as ei:
        af.convert(np.zeros(3), "xs", device=device)
    msg = str(ei.value)
    assert repr(device) in msg and "device1" in msg and msg.splitlines()[-1].startswith("Hint:")


# -- dtypes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "dtype"), [("no_float64", "float64"), ("no_float64", "complex128"),
                                               ("no_x64", "int64"), ("no_x64", "uint64")])
def test_devices_without_64_bit_refuse_them(xs: Any, device: str, dtype: str) -> None:
    if not _has_device(xs, device):
        pytest.skip(f"array-api-strict {xs.__version__} has no {device!r} device (added in 2.6)")
    a = sample(dtype)
    with pytest.raises(af.UnsupportedDTypeError) as ei:
        af.convert(a, "xs", device=device)
    msg = str(ei.value)
    assert device in msg and dtype in msg and msg.splitlines()[-1].startswith("Hint:")


def test_no_float64_narrows_only_when_asked(xs: Any) -> None:
    if not _has_device(xs, "no_float64"):
        pytest.skip(f"array-api-strict {xs.__version__} has no 'no_float64' device (added in 2.6)")
    a = np.array([1.5, -0.0, np.inf, np.nan, 1e30, 0.1])
    out = af.convert(a, "xs", device=xs.Device("no_float64"), dtype="float32")
    assert out.dtype == xs.float32 and out.device == xs.Device("no_float64")
    assert same_bits(out, a.astype(np.float32))
    out2 = af.convert(a, "xs", device="no_float64", dtype=xs.float32)  # xs dtype objects work too
    assert same_bits(out2, a.astype(np.float32))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_unsupported(xs: Any, torch: Any, dtype: str) -> None:
    t = torch.arange(4).to(getattr(torch, dtype))
    with pytest.raises(af.UnsupportedDTypeError) as ei:
        af.convert(t, "xs")
    msg = str(ei.value)
    assert dtype in msg and "array-api-strict" in msg
    assert msg.splitlines()[-1].startswith("Hint:") and "dtype=" in msg.splitlines()[-1]
    out = af.convert(t, "xs", dtype="float32")  # the hint works
    assert out.dtype == xs.float32 and np.array_equal(host(out), [0, 1, 2, 3])


def test_big_endian_numpy_is_swapped_into_xs(xs: Any) -> None:
    a = sample("float32").astype(">f4")
    p = af.plan(a, "xs")
    assert not p.zero_copy and "byte" in p.explain()
    out = af.convert(a, "xs")
    assert out.dtype == xs.float32 and same_bits(out, a.astype("<f4"))


def test_nan_to_integer_is_refused_even_when_asked(xs: Any) -> None:
    x = xs.asarray([1.0, np.nan])
    for to in ("numpy", "xs"):
        with pytest.raises(af.LossyConversionError, match="NaN"):
            af.convert(x, to, dtype="int32")
    assert host(af.convert(xs.asarray([1.0, 2.0]), "xs", dtype="int32")).tolist() == [1, 2]


# -- the adapter's own contract ----------------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_signature_agrees_with_describe(xs: Any, layout: str) -> None:
    from arrayferry_array_api_strict import ArrayApiStrictAdapter

    ad = ArrayApiStrictAdapter()
    a, _ = make(xs, "float32", layout)
    b = xs.asarray(LAYOUTS[layout](sample("float32", (6, 8))))
    ia, ib = ad.describe(a), ad.describe(b)
    if ad.signature(a) == ad.signature(b):
        assert ia.with_(shape=()) == ib.with_(shape=())
    ro = np.array(LAYOUTS[layout](sample("float32")))
    ro.flags.writeable = False
    assert ad.signature(xs.asarray(ro)) != ad.signature(xs.asarray(ro.copy()))
    assert ad.data_pointer(a) == host(a).__array_interface__["data"][0]


def test_signature_fallback_without_private_attribute(xs: Any) -> None:
    """Without ``_array`` the adapter reads the memory through public DLPack; same answers."""
    from arrayferry_array_api_strict import ArrayApiStrictAdapter

    class Public:
        def __init__(self, x: Any) -> None:
            self._x = x
            self.dtype, self.device, self.shape = x.dtype, x.device, x.shape

        def __dlpack__(self, **kw: Any) -> Any:
            return self._x.__dlpack__(**kw)

        def __dlpack_device__(self) -> Any:
            return self._x.__dlpack_device__()

    ad = ArrayApiStrictAdapter()
    for layout in LAYOUTS:
        x, _ = make(xs, "int8", layout)
        assert ad.describe(Public(x)) == ad.describe(x)
        assert ad.signature(Public(x))[1:] == ad.signature(x)[1:]
