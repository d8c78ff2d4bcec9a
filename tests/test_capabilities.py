"""The capability probes (``arrayferry._capabilities``) against the installed versions' behaviour.

Nothing here hard-codes what one release does: each test reads the probed answer and checks it
against what the installed framework actually does when called directly. The same file runs in
every cell of the nox matrix (NumPy 1.26 / 2.0 / newest, torch 2.13 / 2.14), so each version's
answers are checked on that version.
"""

from __future__ import annotations

import ctypes
import importlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arrayferry as af
from arrayferry import _capabilities as caps
from arrayferry._capabilities import Capabilities, capabilities, check_min_version, parse_version

# framework name -> (module to import, make a float32 array [0, 1] natively, the DLPack consumer)
FRAMEWORKS: dict[str, tuple[str, Callable[[Any], Any], Callable[[Any], Callable[..., Any]]]] = {
    "numpy": ("numpy", lambda m: m.arange(2, dtype=m.float32), lambda m: m.from_dlpack),
    "torch": ("torch", lambda m: m.arange(2, dtype=m.float32), lambda m: m.from_dlpack),
    "jax": ("jax", lambda m: m.numpy.arange(2, dtype=m.numpy.float32),
            lambda m: importlib.import_module("jax.dlpack").from_dlpack),
    "array_api_strict": ("array_api_strict", lambda m: m.arange(2, dtype=m.float32), lambda m: m.from_dlpack),
}


def _registered(name: str) -> bool:
    from arrayferry._registry import registry

    return name in registry().adapters


@pytest.fixture(params=sorted(FRAMEWORKS))
def fw(request: pytest.FixtureRequest) -> tuple[str, Any, Capabilities]:
    """(name, module, probed capabilities) for each installed framework with a registered adapter."""
    name = request.param
    mod = pytest.importorskip(FRAMEWORKS[name][0])
    if not _registered(name):
        pytest.skip(f"no arrayferry adapter registered for {name} (plugin not installed)")
    return name, mod, capabilities(name)


def _sample(name: str, mod: Any) -> Any:
    return FRAMEWORKS[name][1](mod)


def _capsule_named(capsule: Any, name: bytes) -> bool:
    is_valid = ctypes.pythonapi.PyCapsule_IsValid
    is_valid.restype = ctypes.c_int
    is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return bool(is_valid(capsule, name))


# -- the cache ------------------------------------------------------------------------------------
def test_probed_once_per_version_and_cached(fw: tuple[str, Any, Capabilities]) -> None:
    name, mod, got = fw
    from arrayferry._registry import registry

    assert got.framework == name
    assert got.version == registry().adapters[name].version()
    assert capabilities(name) is got  # second question: no new probe
    assert caps.cached()[(name, got.version)] is got


def test_not_probed_at_import_or_detection() -> None:
    code = (
        "import numpy as np, sys, arrayferry as af\n"
        "assert af.framework_of(np.zeros(2)) == 'numpy'\n"
        "mod = sys.modules.get('arrayferry._capabilities')\n"
        "print('probed' if mod is not None and mod.cached() else 'clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "clean"


def test_override_and_restore() -> None:
    real = capabilities("numpy")
    with caps.override("numpy", readonly_export=False) as fake:
        assert capabilities("numpy") is fake
        assert fake.readonly_export is False
        reason = caps.dlpack_readonly_reason("numpy", "numpy")
        assert reason is not None and "cannot export read-only memory" in reason
    assert capabilities("numpy") is real


def test_set_capabilities_and_clear() -> None:
    real = capabilities("numpy")
    try:
        fake = Capabilities("numpy", real.version, readonly_export=None)
        caps.set_capabilities(fake)
        assert capabilities("numpy") is fake
        caps.clear()
        again = capabilities("numpy")  # a fresh probe
        assert again is not fake and again == real
    finally:
        caps.set_capabilities(real)


# -- producer side: the capsule a real array answers with ------------------------------------------
def test_capsule_version_matches_capsule(fw: tuple[str, Any, Capabilities]) -> None:
    name, mod, got = fw
    x = _sample(name, mod)
    if not hasattr(x, "__dlpack__"):
        assert got.capsule_version is None and got.readonly_export is False  # exports nothing
        return
    try:
        cap = x.__dlpack__(max_version=(1, 0))
    except TypeError:
        cap = x.__dlpack__()
    if got.capsule_version is None:
        assert _capsule_named(cap, b"dltensor")
        assert got.readonly_export is False  # a legacy capsule carries no read-only flag
    else:
        assert _capsule_named(cap, b"dltensor_versioned")
        assert got.capsule_version[0] == 1  # a producer never answers a newer major than asked for
    del cap


def test_only_answers_a_decision_uses_are_kept() -> None:
    """Every field of Capabilities feeds ``dlpack_readonly_reason`` (the planner's decision)."""
    import dataclasses
    import inspect

    fields = {f.name for f in dataclasses.fields(Capabilities)} - {"framework", "version", "errors"}
    used = inspect.getsource(caps.dlpack_readonly_reason)
    assert fields == {"readonly_export", "requests_versioned", "readonly_import", "capsule_version"}
    for f in fields:
        assert f"{f}" in used, f"{f} is probed but no decision reads it"


# -- consumer side --------------------------------------------------------------------------------
def test_requests_versioned_matches_what_the_consumer_asks(fw: tuple[str, Any, Capabilities]) -> None:
    """A producer that records its keywords: the consumer asks for max_version exactly when the
    probe says it does (or fails before asking, and the answer is unknown)."""
    name, mod, got = fw
    consume = FRAMEWORKS[name][2](mod)
    spy = caps._Spy(np.arange(2, dtype=np.float32))
    try:
        consume(spy)
    except Exception:
        pass
    if spy.asked is None:
        assert got.requests_versioned is None
    else:
        assert got.requests_versioned is (spy.asked.get("max_version") is not None)


def test_readonly_numpy_through_consumer(fw: tuple[str, Any, Capabilities]) -> None:
    """A read-only NumPy array crosses DLPack exactly when the probes say it can."""
    name, mod, got = fw
    consume = FRAMEWORKS[name][2](mod)
    npc = capabilities("numpy")
    ro = np.arange(3, dtype=np.float32)
    ro.flags.writeable = False
    can = bool(npc.readonly_export and got.requests_versioned)
    if not can:
        with pytest.raises(BufferError):
            consume(ro)
        assert caps.dlpack_readonly_reason("numpy", name) is not None
        return
    out = consume(ro)
    assert np.array_equal(np.asarray(out), ro)
    if name == "numpy":
        assert got.readonly_import is not out.flags.writeable
        assert (caps.dlpack_readonly_reason("numpy", "numpy") is None) is (not out.flags.writeable)


def test_numpy_readonly_export_flag() -> None:
    """Where NumPy exports read-only arrays, the capsule carries DLPack's read-only flag."""
    got = capabilities("numpy")
    ro = np.arange(2, dtype=np.float32)
    ro.flags.writeable = False
    try:
        cap = ro.__dlpack__(max_version=(1, 0))
    except TypeError:  # NumPy 1.26: no max_version, and read-only arrays are refused
        assert got.readonly_export is False
        with pytest.raises(BufferError):
            ro.__dlpack__()
        return
    version, flags = caps._capsule_info(cap)
    assert version is not None
    assert bool(flags is not None and flags & caps.DLPACK_FLAG_READ_ONLY) is bool(got.readonly_export)


# -- how the adapters use them ----------------------------------------------------------------------
def test_numpy_target_refuses_readonly_dlpack_when_flag_cannot_travel() -> None:
    from arrayferry._adapter import ArrayInfo
    from arrayferry.adapters.numpy import NumpyAdapter

    info = ArrayInfo(framework="numpy", dtype="float32", shape=(2,), readonly=True, itemsize=4)
    adapter = NumpyAdapter()
    reason = caps.dlpack_readonly_reason("numpy", "numpy")
    refusals = adapter.dlpack_import_refusals(info)
    assert any("read-only" in r for r in refusals) is (reason is not None)
    with caps.override("numpy", requests_versioned=False):
        assert any("legacy" in r for r in adapter.dlpack_import_refusals(info))
    assert not any("read-only" in r for r in adapter.dlpack_import_refusals(info.with_(readonly=False)))


def test_numpy_from_dlpack_roundtrip_from_torch() -> None:
    torch = pytest.importorskip("torch")
    from arrayferry.adapters.numpy import NumpyAdapter

    t = torch.tensor([1.5, -0.0, float("nan")])
    a = NumpyAdapter().from_dlpack(t)
    assert a.__array_interface__["data"][0] == t.data_ptr()
    assert np.array_equal(a, t.numpy(), equal_nan=True) and np.signbit(a[1])


def test_torch_from_dlpack_of_numpy_on_this_numpy() -> None:
    """torch consumes NumPy capsules of whatever version this NumPy answers, zero-copy."""
    pytest.importorskip("torch")
    from arrayferry.adapters.torch import TorchAdapter

    a = np.array([1.0, -0.0, np.inf], dtype=np.float64)
    t = TorchAdapter().from_dlpack(a)
    assert t.data_ptr() == a.__array_interface__["data"][0]
    t[0] = 7.0
    assert a[0] == 7.0 and np.signbit(a[1])


# -- minimum versions -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.26.4", (1, 26, 4)), ("2.13.0+cpu", (2, 13)), ("2.0.0rc1", (2,)), ("0.10.2", (0, 10, 2)),
     ("2.5.0.dev20240101", (2, 5)), ("v1.2", (1, 2))],
)
def test_parse_version(text: str, expected: tuple[int, ...]) -> None:
    assert parse_version(text) == expected


def test_parse_version_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a version"):
        parse_version("unknown")


@given(st.text(alphabet=st.sampled_from(list("0123456789.v+-rcdeva ") + ["\t", "\u00a0", "\u0663", "\u00b2"]), max_size=14))
@settings(max_examples=600, deadline=None)
def test_parse_version_reads_what_its_pattern_matches(text: str) -> None:
    """parse_version is read by hand (no regular expression compiled on the first plan): the
    release part is what ``^\\s*v?(\\d+(?:\\.\\d+)*)`` matches, trailing zeros dropped."""
    import re

    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", text)
    if m is None:
        with pytest.raises(ValueError, match="not a version"):
            parse_version(text)
        return
    parts = [int(p) for p in m.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    assert parse_version(text) == tuple(parts)


def test_installed_versions_meet_declared_minimums() -> None:
    """The matrix's oldest cells run exactly the declared minimum: it must pass this check."""
    from arrayferry._registry import registry

    for a in registry().adapters.values():
        if a.is_installed() and a.min_version:
            check_min_version(a)  # raises if the installed version is too old


def _too_new_numpy_adapter() -> Any:
    from arrayferry.adapters.numpy import NumpyAdapter

    class FutureNumpy(NumpyAdapter):
        min_version = "99.1"

    return FutureNumpy()


def test_too_old_framework_is_refused_with_hint() -> None:
    adapter = _too_new_numpy_adapter()
    with pytest.raises(af.UnknownFrameworkError) as info:
        check_min_version(adapter)
    msg = str(info.value)
    assert f"numpy {np.__version__} is installed" in msg and ">= 99.1" in msg
    assert msg.splitlines()[-1].startswith("Hint: upgrade: pip install --upgrade 'numpy>=99.1'")
    with pytest.raises(af.UnknownFrameworkError):  # remembered, still refused
        check_min_version(adapter)


def test_planner_checks_min_version_on_first_use() -> None:
    from arrayferry._plan import build_template

    adapter = _too_new_numpy_adapter()
    x = np.zeros(3)
    with pytest.raises(af.UnknownFrameworkError, match="needs numpy >= 99.1"):
        build_template(adapter, adapter.describe(x), adapter, None, None, None)


def test_pyproject_bounds_match_adapter_minimums() -> None:
    """The oldest versions are declared twice (pyproject bounds, Adapter.min_version): they agree."""
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    from arrayferry.adapters.numpy import NumpyAdapter
    from arrayferry.adapters.torch import TorchAdapter

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("pyproject.toml not found (tests run outside the source tree)")
    meta = tomllib.loads(pyproject.read_text())["project"]
    numpy_req = next(r for r in meta["dependencies"] if re.match(r"numpy\b", r))
    assert numpy_req.replace(" ", "") == f"numpy>={NumpyAdapter.min_version}"
    torch_req = next(r for r in meta["optional-dependencies"]["torch"] if re.match(r"torch\b", r))
    pinned = torch_req.split("==")[1]  # torch is always pinned exactly
    assert parse_version(pinned) >= parse_version(TorchAdapter.min_version or "0")


# -- yes, no or unknown --------------------------------------------------------------------------
def test_a_framework_is_never_probed_on_numpy_in_its_name() -> None:
    """CuPy's ``import_host`` hands back the NumPy array (CuPy holds no host memory): without a
    device nothing of CuPy's was probed, so its producer answers are unknown, not NumPy's."""
    cupy = pytest.importorskip("cupy")
    if not _registered("cupy"):
        pytest.skip("cupy adapter not registered")
    try:
        has_device = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        has_device = False
    from arrayferry.plugin import adapter_named

    got = caps._probe(adapter_named("cupy"), "probe-test")
    if has_device:
        assert not any(what == "sample" for what, _ in got.errors)  # a real cupy array answered
        return
    # NumPy 2 would answer "yes, capsule 1.0": nothing of that is CuPy's
    assert got.capsule_version is None and got.readonly_export is None and got.requests_versioned is None
    assert any(what == "sample" and "not a cupy array" in why for what, why in got.errors)
    assert "read-only DLPack export unknown" in got.summary() and "capsule" not in got.summary()


def test_unknown_answers_refuse_readonly_dlpack_and_say_so() -> None:
    # a versioned NumPy (2.x; 1.26 answers legacy capsules, a known "no" that is said first)
    with caps.override("numpy", readonly_export=None, capsule_version=(1, 0)):
        why = caps.dlpack_readonly_reason("numpy", "torch")
    assert why is not None and "unknown" in why
    with caps.override("numpy", readonly_export=True, capsule_version=(1, 0)), \
            caps.override("torch", requests_versioned=None):
        why = caps.dlpack_readonly_reason("numpy", "torch")
    assert why is not None and "unknown" in why and "torch" in why


def test_explain_says_which_capability_answer_decided_the_dlpack_route() -> None:
    """A read-only array_api_strict array into NumPy: the DLPack route needs a copy first, or not,
    as the probed answers say, and ``explain()`` quotes the answer that decided it. Overriding an
    answer clears cached plans (through the registry's listeners), so each plan follows it."""
    pytest.importorskip("array_api_strict")
    if "array_api_strict" not in {f.name for f in af.frameworks()}:
        pytest.skip("the array-api-strict plugin is not registered")
    a = np.arange(4.0)
    a.flags.writeable = False
    x = af.convert(a, "array_api_strict")
    version = caps.capabilities("array_api_strict").version
    with caps.override("array_api_strict", readonly_export=False, capsule_version=None):
        why = dict(af.plan(x, "numpy").refused)["dlpack"]
        assert why.startswith("works but costs more (1 copy step(s)")
        assert f"array_api_strict {version} cannot export read-only memory over DLPack" in why
        assert why in af.plan(x, "numpy").explain()
    with caps.override("array_api_strict", readonly_export=None):
        why = dict(af.plan(x, "numpy").refused)["dlpack"]
        assert f"whether array_api_strict {version} exports read-only memory over DLPack is unknown" in why
    with caps.override("array_api_strict", readonly_export=True), \
            caps.override("numpy", readonly_export=True, requests_versioned=True, readonly_import=True):
        why = dict(af.plan(x, "numpy").refused)["dlpack"]
        assert why.startswith("works at the same cost (zero-copy"), why  # every answer yes: no copy
        assert "read-only" not in why
    real = caps.dlpack_readonly_reason("array_api_strict", "numpy")  # the real answers again
    assert ("cannot cross DLPack" in dict(af.plan(x, "numpy").refused)["dlpack"]) is (real is not None)
