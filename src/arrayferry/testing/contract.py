"""The adapter contract: test functions the kit makes pytest collect when it is switched on.

Parametrized from the kit's options (see :mod:`arrayferry.testing`): ``af_framework`` (each
framework named by ``--arrayferry-conformance``), ``af_peer`` (``--arrayferry-peers``),
``af_device`` (``--arrayferry-device``), ``af_case`` (:data:`CASES`) and ``af_copy``.

NumPy is the reference: every case is built as a NumPy array, carried into the framework under
test, converted, read back and compared with the NumPy original byte for byte (so NaN payloads,
infinities and ``-0.0`` count). Memory sharing is observed through ``Adapter.data_pointer`` and,
where both sides expose writable or readable host views, by writing through the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import arrayferry as af
from arrayferry.plugin import adapters, is_narrowing, kind_of, numpy_dtype
from arrayferry.testing.cases import Case, cases_for
from arrayferry.testing.plugin import selected

__all__ = [
    "CASES",
    "Case",
    "DTYPES",
    "test_detection_without_import",
    "test_detection_in_process",
    "test_device_reporting",
    "test_signature_captures_plan",
    "test_dtype_fidelity",
    "test_casts_match_numpy",
    "test_non_numeric_dtypes_refused",
    "test_unreachable_device_refused",
    "test_round_trip_out",
    "test_round_trip_in",
    "test_direct_call",
    "test_target_options",
]

# ------------------------------------------------------------------------------------------------
# the standard cases (NumPy reference arrays)


def _ml_dtypes_available() -> bool:
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return False
    return True


DTYPES: tuple[str, ...] = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
) + (("bfloat16",) if _ml_dtypes_available() else ())

_SPECIAL = [0.0, -0.0, 1.5, -2.25, float("nan"), float("inf"), float("-inf"), 3.0, 1e-3, -7.0, 65504.0, 2.0]


def _values(dtype: str, shape: tuple[int, ...] = (3, 4)) -> Any:
    """A C-contiguous NumPy array of ``dtype`` with edge values (extremes, NaN, inf, -0.0)."""

    n = int(np.prod(shape))
    dt = numpy_dtype(dtype)
    k = kind_of(dtype)
    if k == "b":
        flat = (np.arange(n) % 3 == 0)
    elif k in "iu":
        info = np.iinfo(dt)
        flat = np.arange(n, dtype=np.int64) % 100
        flat = flat.astype(dt)
        flat[0], flat[-1] = info.min, info.max
    elif k == "f":
        flat = np.array((_SPECIAL * (n // len(_SPECIAL) + 1))[:n], dtype=np.float32).astype(dt)
    else:
        re = np.array((_SPECIAL * (n // len(_SPECIAL) + 1))[:n])
        flat = np.empty(n, dtype=dt)
        flat.real, flat.imag = re, re[::-1]
        flat[0] = complex(-0.0, float("nan"))
    return np.ascontiguousarray(flat.reshape(shape))


#: The kit's standard cases: those of the one case catalogue (:mod:`arrayferry.testing.cases`)
#: marked for the kit, for the dtypes available here (every numeric dtype, 0-d, empty, strided,
#: negative strides, transposed, broadcast, read-only).
CASES: tuple[Case, ...] = tuple(c for c in cases_for("kit") if c.dtype in DTYPES)
_CASES = {c.name: c for c in CASES}
_NON_NUMERIC: dict[str, Callable[[], Any]] = {
    "object": lambda: np.array([1, "a", None], dtype=object),
    "datetime64": lambda: np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[ns]"),
    "structured": lambda: np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]),
    "string": lambda: np.array(["ab", "cde"]),
}

# ------------------------------------------------------------------------------------------------
# parametrization from the kit's options


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the contract over the frameworks, peers, devices, cases and copy policies."""
    config = metafunc.config
    frameworks = selected(config, "arrayferry_conformance")
    if "af_framework" in metafunc.fixturenames:
        metafunc.parametrize("af_framework", frameworks)
    if "af_peer" in metafunc.fixturenames:
        peers = selected(config, "arrayferry_peers")
        if not peers:
            peers = sorted(n for n, a in adapters().items() if a.is_installed())
            peers = peers or ["numpy"]
        metafunc.parametrize("af_peer", peers)
    if "af_device" in metafunc.fixturenames:
        metafunc.parametrize("af_device", selected(config, "arrayferry_devices") or ["cpu"])
    if "af_case" in metafunc.fixturenames:
        metafunc.parametrize("af_case", [c.name for c in CASES])
    if "af_dtype" in metafunc.fixturenames:
        metafunc.parametrize("af_dtype", list(DTYPES))
    if "af_non_numeric" in metafunc.fixturenames:
        metafunc.parametrize("af_non_numeric", list(_NON_NUMERIC))
    if "af_copy" in metafunc.fixturenames:
        metafunc.parametrize("af_copy", [None, False, True], ids=["copy=None", "copy=False", "copy=True"])


# ------------------------------------------------------------------------------------------------
# helpers


def _adapter(name: str) -> af.Adapter:
    """The registered adapter ``name``; skips (with the reason) when unregistered or not installed."""
    registered = adapters()
    a = registered.get(name)
    if a is None:
        broken = [f"{n}: {e}" for n, e in af.broken_plugins()]
        if broken:
            # a framework asked for by name whose plugin is broken is a failure, not a skip
            pytest.fail(f"framework {name!r} is not registered; broken plugins: {'; '.join(broken)}")
        pytest.skip(f"framework {name!r} is not registered (registered: {', '.join(sorted(registered))})")
    if not a.is_installed():
        pytest.skip(f"framework {name!r} is registered but {a.module!r} is not installed")
    return a


def _device(adapter: af.Adapter, device: str) -> af.Device:
    """Parse ``device`` and skip (with the reason) when ``adapter`` cannot place arrays there now."""
    dev = af.Device.parse(device)
    adapter.namespace()
    try:
        adapter.check_device(dev)
    except af.DeviceError as exc:
        pytest.skip(f"{adapter.name} cannot use device {device!r} here: {exc.args[0].splitlines()[0]}")
    return dev


def _expect(adapter: af.Adapter, dtype: str, device: af.Device) -> str:
    """What converting ``dtype`` into ``adapter`` must do: ``ok``, ``error``, ``lossy`` or ``narrow``."""
    try:
        held = adapter.default_dtype_for(dtype, device)
    except af.UnsupportedDTypeError:
        return "error"
    if held == dtype:
        return "ok"
    if is_narrowing(dtype, held) and kind_of(dtype) in "iub":
        return "lossy"
    return "narrow"


def _overflows(ref: Any, held: str) -> bool:
    """Whether a finite value of ``ref`` would become infinite as ``held`` (``1e300`` as float32):
    the casting policy refuses such a narrowing with ``LossyConversionError`` instead of warning."""
    a = np.asarray(ref)
    if a.dtype.kind not in "fc":
        return False
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cast = a.astype(numpy_dtype(held))
    pairs = [(a.real, cast.real), (a.imag, cast.imag)] if a.dtype.kind == "c" else [(a, cast)]
    return any(bool((np.isfinite(x) & np.isinf(y)).any()) for x, y in pairs)


def _check_hint(exc: BaseException) -> None:
    msg = str(exc)
    assert isinstance(exc, af.ArrayFerryError), f"{type(exc).__name__} is not an arrayferry error: {msg}"
    assert msg.splitlines()[-1].startswith("Hint:"), f"error message has no final 'Hint:' line:\n{msg}"


def _check_refused(expect: str, fn: Callable[[], Any], what: str) -> None:
    """``fn`` converts a dtype the target cannot hold: it must raise clearly or warn."""
    if expect in ("error", "lossy"):
        types = (af.UnsupportedDTypeError, af.LossyConversionError)
        with pytest.raises(types) as info:
            fn()
        _check_hint(info.value)
        return
    with pytest.warns(af.LossyConversionWarning):
        fn()


def _bits(a: Any) -> tuple[str, tuple[int, ...], bytes]:
    """dtype name, shape and raw bytes (C order) of a NumPy array: equality is bit-for-bit."""
    a = np.asarray(a)
    return (a.dtype.name, a.shape, np.ascontiguousarray(a).tobytes())


def _readback(x: Any) -> Any:
    """A NumPy array with ``x``'s values (through arrayferry; a copy where needed)."""
    return np.asarray(af.convert(x, "numpy"))


def _host_view(x: Any) -> Any | None:
    """A zero-copy NumPy view of ``x``, or ``None`` when none exists (device memory, lazy arrays)."""
    try:
        return af.convert(x, "numpy", copy=False)
    except (af.CopyRequiredError, af.DeviceError):
        return None


def _other_value(old: Any) -> Any:
    """A value of ``old``'s dtype whose bits differ from ``old``."""
    if old.dtype == np.bool_:
        return np.logical_not(old)
    if old.dtype.kind in "iu":
        return np.bitwise_xor(old, old.dtype.type(1))
    new = old.dtype.type(1.0)
    return new if _bits(new) != _bits(old) else old.dtype.type(2.0)


def _make(framework: str, case: Case, device: af.Device) -> Any:
    """``case`` as an array of ``framework`` on ``device``; native views where the framework has them."""
    ref = case.numpy()
    if framework == "numpy" and device.is_host:
        return ref
    if case.view is None or case.base is None or case.readonly:
        return af.convert(ref, framework, device=device, copy=None if case.readonly else True)
    base = af.convert(case.base(), framework, device=device, copy=True)
    try:
        out = case.view(base)
    except Exception:  # the framework cannot express this view natively: take the planner's copy
        return af.convert(ref, framework, device=device)
    if af.framework_of(out) != framework or not np.array_equal(_readback(out), ref, equal_nan=True):
        return af.convert(ref, framework, device=device)
    return out


def _round_trip(src_name: str, tgt_name: str, case: Case, copy: bool | None, device: str) -> None:
    """Convert ``case`` held by ``src_name`` into ``tgt_name`` and check everything observable."""
    src_ad, tgt_ad = _adapter(src_name), _adapter(tgt_name)
    src_dev = _device(src_ad, device) if src_name != "numpy" else af.Device("cpu")
    tgt_dev = _device(tgt_ad, device) if tgt_name != "numpy" else af.Device("cpu")
    if _expect(src_ad, case.dtype, src_dev) != "ok":
        pytest.skip(f"{src_name} does not hold {case.dtype} on {src_dev} (checked by test_dtype_fidelity)")
    src = _make(src_name, case, src_dev)
    ref = case.numpy()
    assert _bits(_readback(src)) == _bits(ref), f"{src_name} did not receive {case.name} bit for bit"

    expect = _expect(tgt_ad, case.dtype, tgt_dev)
    if expect == "narrow" and copy is False:  # narrowing is a cast, and a cast copies
        with pytest.raises(af.CopyRequiredError) as cinfo:
            af.convert(src, tgt_name, device=tgt_dev, copy=False)
        _check_hint(cinfo.value)
        return
    if expect == "narrow" and _overflows(ref, tgt_ad.default_dtype_for(case.dtype, tgt_dev)):
        expect = "lossy"  # a finite value beyond the narrower type's range: refused, not warned about
    if expect != "ok":
        _check_refused(expect, lambda: af.convert(src, tgt_name, device=tgt_dev, copy=copy), f"{src_name}->{tgt_name}")
        return

    default_plan = af.plan(src, tgt_name, device=tgt_dev)
    src_info = src_ad.describe(src)
    # an immutable target (Adapter.immutable, e.g. JAX) gets a copy of writable memory under
    # copy=None, but may alias it under copy=False
    guarded = tgt_ad.immutable and not src_info.readonly
    if guarded:
        assert not default_plan.zero_copy, (
            f"copy=None aliases writable memory into immutable {tgt_name} arrays:\n{default_plan.explain()}")
    if copy is False and not default_plan.zero_copy:
        if guarded:
            try:
                af.plan(src, tgt_name, device=tgt_dev, copy=False)
            except af.CopyRequiredError as exc:
                _check_hint(exc)
                return
        else:
            with pytest.raises(af.CopyRequiredError) as info:
                af.plan(src, tgt_name, device=tgt_dev, copy=False)
            _check_hint(info.value)
            with pytest.raises(af.CopyRequiredError):
                af.convert(src, tgt_name, device=tgt_dev, copy=False)
            return
    p = af.plan(src, tgt_name, device=tgt_dev, copy=copy)
    if copy is False:
        assert p.zero_copy, f"copy=False plan copies although the copy=None plan is zero-copy:\n{p.explain()}"
    if copy is True:
        assert not p.zero_copy, f"copy=True plan claims zero-copy:\n{p.explain()}"

    out = af.convert(src, tgt_name, device=tgt_dev, copy=copy)
    assert af.framework_of(out) == tgt_name, f"result belongs to {af.framework_of(out)!r}, not {tgt_name!r}"
    assert af.device_of(out) == tgt_dev, f"result is on {af.device_of(out)}, not {tgt_dev}"
    out_info = tgt_ad.describe(out)
    assert out_info.dtype == case.dtype, f"dtype changed silently: {case.dtype} became {out_info.dtype}"
    assert out_info.shape == ref.shape
    assert _bits(_readback(out)) == _bits(ref), f"values differ after {src_name}->{tgt_name}:\n{p.explain()}"
    # the source is untouched
    assert _bits(_readback(src)) == _bits(ref), f"the conversion changed the source:\n{p.explain()}"
    if ref.size == 0:
        return  # sharing is unobservable for empty arrays

    shared: bool | None = None
    sp, tp = src_ad.data_pointer(src), tgt_ad.data_pointer(out)
    if sp is not None and tp is not None and src_info.device == tgt_dev:
        shared = sp == tp
        assert shared == p.zero_copy, (
            f"plan.zero_copy is {p.zero_copy} but the data pointers are "
            f"{'equal' if shared else 'different'} ({sp:#x} vs {tp:#x}):\n{p.explain()}"
        )

    view = _host_view(out)
    if view is None or not view.flags.writeable:
        return  # a read-only (or device) result cannot be written through
    # the result is writable: it must never alias read-only memory
    if src_info.readonly:
        assert not p.zero_copy and not shared, (
            f"writable alias of read-only {src_name} memory ({case.name}):\n{p.explain()}"
        )
    idx = (0,) * view.ndim
    before = _bits(_readback(src))
    view[idx] = _other_value(np.asarray(view[idx]))
    changed = _bits(_readback(src)) != before
    assert changed == p.zero_copy, (
        f"writing through the result {'changed' if changed else 'did not change'} the source, "
        f"but plan.zero_copy is {p.zero_copy}:\n{p.explain()}"
    )


# ------------------------------------------------------------------------------------------------
# the contract


def test_detection_without_import(af_framework: str) -> None:
    """In a fresh interpreter, detecting a NumPy array imports no registered framework but NumPy."""
    ad = _adapter(af_framework)
    code = (
        "import json, sys, numpy, arrayferry\n"
        "a = numpy.zeros(3)\n"
        "name = arrayferry.framework_of(a)\n"
        "none = arrayferry.framework_of(object())\n"
        "from arrayferry.plugin import adapters\n"
        "reg = adapters()\n"
        "mods = sorted({ad.module for ad in reg.values()} - {'numpy'})\n"
        "print(json.dumps({'name': name, 'none': none, 'registered': sorted(reg),\n"
        "  'imported': [m for m in mods if m in sys.modules],\n"
        "  'broken': [list(b) for b in arrayferry.broken_plugins()]}))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert af_framework in got["registered"], f"{af_framework} is not registered in a fresh process: {got}"
    assert got["name"] == "numpy" and got["none"] is None, got
    assert got["imported"] == [], (
        f"detecting a NumPy array imported {got['imported']} (module of {ad.name}: {ad.module})"
    )


def test_detection_in_process(af_framework: str, af_device: str) -> None:
    """``framework_of`` names the framework for its arrays (never a protocol it also speaks); unknown
    objects give ``None``; a list is read through the ``"python"`` protocol, owned by no framework."""
    ad = _adapter(af_framework)
    dev = _device(ad, af_device)
    x = _make(af_framework, _CASES["float32"], dev)
    assert af.framework_of(x) == af_framework
    assert ad.owns(type(x))
    assert af.framework_of(object()) is None
    assert af.framework_of([1.0, 2.0]) == "python"


def test_device_reporting(af_framework: str, af_device: str) -> None:
    """Arrays land on the device asked for; ``device_of`` and the plan report it as a ``Device``."""
    ad = _adapter(af_framework)
    dev = _device(ad, af_device)
    ref = _values("float32")
    p = af.plan(ref, af_framework, device=af_device)
    assert p.device == dev
    x = af.convert(ref, af_framework, device=af_device)
    got = af.device_of(x)
    assert isinstance(got, af.Device)
    assert got == dev, f"device_of reports {got}, asked for {dev}"
    assert ad.describe(x).device == dev
    assert any(d == dev for d in ad.devices()), f"{dev} is not listed by {ad.name}.devices(): {ad.devices()}"
    assert str(got) == str(dev)


def test_signature_captures_plan(af_framework: str, af_device: str) -> None:
    """Arrays with equal ``signature`` must have equal descriptions (shape aside): plans are cached by it."""
    ad = _adapter(af_framework)
    dev = _device(ad, af_device)
    by_sig: dict[Any, tuple[str, tuple[Any, ...]]] = {}
    for case in CASES:
        if _expect(ad, case.dtype, dev) != "ok":
            continue
        x = _make(af_framework, case, dev)
        info = ad.describe(x)
        key = (info.dtype, info.device, info.readonly, info.layout, info.byteorder, info.aligned,
               info.flags, info.problem)
        sig = ad.signature(x)
        hash(sig)
        if sig in by_sig:
            other, okey = by_sig[sig]
            assert okey == key, (
                f"{ad.name}.signature() is equal for cases {other!r} and {case.name!r} but describe() differs:\n"
                f"  {okey}\n  {key}\nthe signature must capture everything the plan depends on"
            )
        else:
            by_sig[sig] = (case.name, key)


def test_dtype_fidelity(af_framework: str, af_device: str, af_dtype: str) -> None:
    """NumPy -> framework keeps the dtype, or refuses clearly (never a silent change)."""
    ad = _adapter(af_framework)
    dev = _device(ad, af_device)
    ref = _values(af_dtype)
    expect = _expect(ad, af_dtype, dev)
    if expect != "ok":
        _check_refused(expect, lambda: af.convert(ref, af_framework, device=dev), f"numpy->{af_framework}")
        if expect == "narrow":
            assert af.plan(ref, af_framework, device=dev).notes, "float narrowing is not recorded in plan.notes"
        return
    assert ad.supports_dtype(af_dtype, dev)
    with warnings.catch_warnings():
        warnings.simplefilter("error", af.LossyConversionWarning)
        x = af.convert(ref, af_framework, device=dev)
    assert ad.describe(x).dtype == af_dtype
    assert _bits(_readback(x)) == _bits(ref)


def test_casts_match_numpy(af_framework: str, af_device: str, af_dtype: str) -> None:
    """``dtype=`` casts within the framework give NumPy's cast of the same values, bit for bit
    (NaN, infinities, -0.0 and extremes; ``casting="unsafe"`` so that every value is cast), or
    refuse a dtype the framework cannot hold. Wherever the planner runs the cast (in the
    framework when ``cast_differs`` says it casts as NumPy does, else on the host), the bits must
    be NumPy's: a framework cast that differs must be declared in ``Adapter.cast_differs``."""

    ad = _adapter(af_framework)
    dev = _device(ad, af_device)
    if _expect(ad, af_dtype, dev) != "ok":
        pytest.skip(f"{af_framework} cannot hold {af_dtype} on {dev}")
    ref = _values(af_dtype)
    x = af.convert(ref, af_framework, device=dev)
    for dst in DTYPES:
        if dst == af_dtype or _expect(ad, dst, dev) != "ok":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with np.errstate(all="ignore"):
                want = (ref.real if kind_of(af_dtype) == "c" and kind_of(dst) != "c" else ref).astype(numpy_dtype(dst))
            got = af.convert(x, af_framework, dtype=dst, casting="unsafe")
        assert ad.describe(got).dtype == dst
        assert _bits(_readback(got)) == _bits(want), (
            f"{af_framework} cast {af_dtype} -> {dst} differs from NumPy's:\n  want {want!r}\n  got  {_readback(got)!r}\n"
            "declare the pair in Adapter.cast_differs so that the planner casts elsewhere")


def test_non_numeric_dtypes_refused(af_framework: str, af_non_numeric: str) -> None:
    """Object, datetime, structured and string arrays raise ``UnsupportedDTypeError`` with a hint,
    unless the framework declares ``numpy_dtypes`` (then they travel there and back intact)."""
    ad = _adapter(af_framework)
    if af_framework == "numpy":
        pytest.skip("numpy holds every NumPy dtype")
    x = _NON_NUMERIC[af_non_numeric]()
    if ad.numpy_dtypes:  # the framework says it holds every NumPy dtype: it must, both ways
        y = af.convert(x, af_framework)
        back = af.convert(y, "numpy")
        assert back.dtype == x.dtype and back.shape == x.shape, f"{x.dtype} came back as {back.dtype} {back.shape}"
        assert list(back.ravel()) == list(x.ravel())
        return
    with pytest.raises(af.UnsupportedDTypeError) as info:
        af.convert(x, af_framework)
    _check_hint(info.value)


def test_unreachable_device_refused(af_framework: str, af_device: str) -> None:
    """A device the framework cannot reach here (no GPU, no driver, a host-only framework) is refused
    while planning, with :class:`arrayferry.DeviceError` and a hint, for every case and copy policy;
    ``devices()`` does not list it and ``frameworks(probe_devices=True)`` does not raise.

    This is what the kit checks of a device framework on a machine without its device (CuPy
    without a driver, JAX or torch without a GPU); where the device is reachable it skips, and the
    round trips run there instead.
    """
    ad = _adapter(af_framework)
    dev = af.Device.parse(af_device)
    ad.namespace()
    try:
        ad.check_device(dev)
    except af.DeviceError as exc:
        _check_hint(exc)
    else:
        pytest.skip(f"{ad.name} can use device {af_device!r} here: the round trips check it")
    assert dev not in ad.devices(), f"{dev} is listed by {ad.name}.devices() but check_device refuses it"
    for case in CASES:
        ref = case.numpy()
        for copy in (None, False, True):
            with pytest.raises(af.DeviceError) as info:
                af.plan(ref, af_framework, device=dev, copy=copy)
            _check_hint(info.value)
        with pytest.raises(af.DeviceError) as info:
            af.convert(ref, af_framework, device=dev)
        _check_hint(info.value)
    listed = {f.name: f for f in af.frameworks(probe_devices=True)}
    assert str(dev) not in (listed[af_framework].devices or ()), f"frameworks() lists {dev} for {ad.name}"


def test_round_trip_out(af_framework: str, af_peer: str, af_device: str, af_case: str, af_copy: bool | None) -> None:
    """framework -> peer: values bit for bit, copy policy honoured, memory shared exactly when planned."""
    _round_trip(af_framework, af_peer, _CASES[af_case], af_copy, af_device)


def test_round_trip_in(af_framework: str, af_peer: str, af_device: str, af_case: str, af_copy: bool | None) -> None:
    """peer -> framework: values bit for bit, copy policy honoured, memory shared exactly when planned."""
    _round_trip(af_peer, af_framework, _CASES[af_case], af_copy, af_device)



def _direct(src_ad: af.Adapter, tgt_ad: af.Adapter, tp: type, device: af.Device | None) -> Callable[[Any], Any] | None:
    fn = src_ad.direct_call(tp, src_ad.name, tgt_ad.name, device)
    if fn is None and tgt_ad is not src_ad:
        fn = tgt_ad.direct_call(tp, src_ad.name, tgt_ad.name, device)
    return fn


def test_direct_call(af_framework: str, af_peer: str, af_device: str, af_case: str) -> None:
    """``Adapter.direct_call`` keeps its contract both ways (framework -> peer, peer -> framework),
    with no device asked for and with the device under test: on every case it raises, or returns
    what the plan's route returns (``plan(x, to, device=...).execute(x)``): the same type, dtype,
    shape and bits, memory shared exactly when the plan shares it, and no warning. Passes
    trivially for pairs without a direct call."""
    case = _CASES[af_case]
    for src_name, tgt_name in ((af_framework, af_peer), (af_peer, af_framework)):
        src_ad, tgt_ad = _adapter(src_name), _adapter(tgt_name)
        src_dev = _device(src_ad, af_device) if src_name != "numpy" else af.Device("cpu")
        if _expect(src_ad, case.dtype, src_dev) != "ok":
            continue
        x = _make(src_name, case, src_dev)
        for dev in (None, af.Device.parse(af_device)):
            fn = _direct(src_ad, tgt_ad, type(x), dev)
            if fn is None:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a direct call that warns breaks the contract
                try:
                    got = fn(x)
                except Exception:  # refused: the plan runs instead
                    continue
            what = f"{src_name} -> {tgt_name} direct call (device={dev}) on case {case.name!r}"
            try:
                p = af.plan(x, tgt_name, device=dev)
            except af.ArrayFerryError as exc:
                pytest.fail(f"{what} returned an array, but the plan refuses the case: {exc}")
            want = p.execute(x)
            assert type(got) is type(want), f"{what}: {type(got).__qualname__}, the plan gives {type(want).__qualname__}"
            assert af.device_of(got) == af.device_of(want), f"{what}: on {af.device_of(got)}, the plan's result on {af.device_of(want)}"
            assert _bits(_readback(got)) == _bits(_readback(want)), f"{what}: values differ from the plan's"
            shared, planned = af.shares_memory(got, x), af.shares_memory(want, x)
            assert shared == planned, f"{what}: shares memory {shared}, the plan's result {planned}"


def test_target_options(af_framework: str) -> None:
    """Target options: an unknown one is refused with the declared ones listed; each declared one
    is applied (``target_option_examples``): the plan records it and differs from the plan
    without it, and the values survive bit for bit, from NumPy and from the framework itself."""
    ad = _adapter(af_framework)
    with pytest.raises(af.ArgumentError) as info:
        af.convert(_values("float64"), af_framework, af_no_such_option=1)
    _check_hint(info.value)
    msg = str(info.value)
    assert "af_no_such_option" in msg and af_framework in msg, msg
    if ad.target_options:
        for name in ad.target_options:
            assert name in msg, f"the error does not list the option {name!r}:\n{msg}"
    else:
        assert "no target options" in msg, msg
    for name in ad.target_options:
        examples = ad.target_option_examples.get(name, ())
        assert examples, (f"{ad.name} declares the target option {name!r} but no target_option_examples for it: "
                          "the kit cannot check that it is applied")
        ref = _values("float64", (4, 4))
        own = af.convert(ref, af_framework, copy=True)
        for value in examples:
            for source in (ref, own):
                plain = af.plan(source, af_framework)
                p = af.plan(source, af_framework, **{name: value})
                assert p.options == {name: value}, p.options
                assert f"{name}=" in p.explain(), p.explain()
                assert [(s.name, s.description) for s in p.steps] != [(s.name, s.description) for s in plain.steps], (
                    f"{ad.name}: the plan with {name}={value!r} is the plan without it: the option is not applied\n"
                    f"{p.explain()}")
                out = af.convert(source, af_framework, **{name: value})
                assert af.framework_of(out) == ad.name
                assert _bits(_readback(out)) == _bits(ref), f"{name}={value!r} changed the values"
