"""The range-checked cast in one compiled pass (``arrayferry._speedups.cast_checked``).

It must agree with the NumPy path it replaces (``_hostops`` block by block) on every pair it
serves, bit for bit where values are in range, and with the same error (type and message) where
one is not; the bounds and their neighbours, NaN, infinities, -0.0 and each source type's
extremes included. Layouts it does not serve (strided, byte-swapped, misaligned) take the NumPy
path. Integers to float16 are checked by NumPy's overflow flag, probed once per pair.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arrayferry as af
from arrayferry import _hostops

INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
PAIRS = [(s, d) for s in [*INTS, "float32", "float64"] for d in INTS if s != d] + [
    ("complex64", "float32"), ("complex128", "float64")]


def _compiler() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is not None


def test_the_extension_is_built_where_a_compiler_is() -> None:
    if os.environ.get("ARRAYFERRY_NO_SPEEDUPS"):
        pytest.skip("ARRAYFERRY_NO_SPEEDUPS is set: the Python path is under test")
    if not _compiler():
        pytest.skip("no C compiler here: arrayferry installs without its one-pass check (NumPy checks instead)")
    assert _hostops._speedups() is not None, "pip install -e . builds arrayferry._speedups with a C compiler"


needs_speedups = pytest.mark.skipif(_hostops._speedups() is None, reason="arrayferry._speedups is not built here")


def _special(src: str, dst: str) -> list[Any]:
    """Each pair's hard values: the bounds, their neighbours, the source's extremes, NaN, inf, -0.0."""
    dt = np.dtype(src)
    if dt.kind == "c":
        return [0, -0.0, complex(1, 0), complex(0, -0.0), complex(1, 1e-300), complex(0, np.nan),
                complex(np.nan, 0), complex(np.inf, 0), complex(3, -1)]
    out: list[Any] = [0, 1]
    if dt.kind == "f":
        out += [-0.0, np.nan, np.inf, -np.inf, 0.5, -0.5, -0.99, np.finfo(dt).max, -np.finfo(dt).max]
    else:
        out += [np.iinfo(dt).min, np.iinfo(dt).max]
    b = _hostops._checked_bounds(src, dst)
    if b is not None:
        for v in b:
            v = dt.type(v) if dt.kind == "f" else int(v)
            out.append(v)
            if dt.kind == "f":
                out += [np.nextafter(dt.type(v), dt.type(np.inf)), np.nextafter(dt.type(v), dt.type(-np.inf))]
            else:
                out += [v - 1, v + 1]
    if dt.kind in "iu":  # the bounds of a wider target lie beyond the source's own range
        out = [v for v in out if np.iinfo(dt).min <= v <= np.iinfo(dt).max]
    return out


def _outcome(a: np.ndarray, src: str, dst: str) -> tuple[str, Any]:
    try:
        out = _hostops.host_cast(a, src, dst, "range", shape=a.shape)
    except af.LossyConversionError as exc:
        return ("error", str(exc))
    return ("ok", (out.dtype.str, out.shape, out.tobytes()))


def _both(a: np.ndarray, src: str, dst: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    fused = _outcome(a, src, dst)
    with monkeypatch.context() as m:
        m.setattr(_hostops, "_SPEEDUPS", None)
        plain = _outcome(a, src, dst)
    return fused, plain


@needs_speedups
@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}->{d}" for s, d in PAIRS])
def test_every_pair_agrees_with_the_numpy_path(src: str, dst: str, monkeypatch: pytest.MonkeyPatch) -> None:
    values = _special(src, dst)
    base = np.zeros(70, dtype=src)
    for v in values:
        for at in (0, 33, 69):  # vector body and scalar tail
            a = base.copy()
            with np.errstate(all="ignore"):
                a[at] = v
            fused, plain = _both(a, src, dst, monkeypatch)
            assert fused == plain, (src, dst, v, at, fused, plain)
    # every in-range special value at once: the cast, bit for bit NumPy's
    ok = []
    for v in values:
        a = np.array([v], dtype=src) if not isinstance(v, float) or np.isfinite(v) or np.dtype(src).kind != "c" else None
        if a is not None and _outcome(a, src, dst)[0] == "ok":
            ok.append(a[0])
    if ok:
        a = np.array(ok * 20, dtype=src)
        fused, plain = _both(a, src, dst, monkeypatch)
        assert fused == plain and fused[0] == "ok"
        with np.errstate(all="ignore"):
            want = (a.real if a.dtype.kind == "c" else a).astype(dst)
        assert fused[1][2] == want.tobytes()


@needs_speedups
@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PAIRS), st.integers(1, 300), st.data())
def test_random_values_agree(pair: tuple[str, str], n: int, data: st.DataObject) -> None:
    src, dst = pair
    dt = np.dtype(src)
    if dt.kind == "c":
        comp = dt.type(0).real.dtype
        big = float(np.finfo(comp).max)
        parts = data.draw(st.lists(st.sampled_from([0.0, -0.0, 1.5, -2.0, big, -np.inf, np.nan]), min_size=2 * n, max_size=2 * n))
        a = np.array(parts, dtype=comp).view(dt)
    elif dt.kind == "f":
        fl = st.floats(width=8 * dt.itemsize, allow_nan=True, allow_infinity=True)
        a = np.array(data.draw(st.lists(st.one_of(fl, st.sampled_from(_special(src, dst))), min_size=n, max_size=n)), dtype=dt)
    else:
        info = np.iinfo(dt)
        a = np.array(data.draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n, max_size=n)), dtype=dt)
    with pytest.MonkeyPatch.context() as mp:
        fused, plain = _both(a, src, dst, mp)
    assert fused == plain


@needs_speedups
@pytest.mark.parametrize("layout", ["strided", "byteswapped", "misaligned", "fortran"])
def test_layouts_it_does_not_serve_take_the_numpy_path(layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a = (np.arange(200) - 50).astype(np.int64)
    if layout == "strided":
        a = a[::2]
    elif layout == "byteswapped":
        a = a.astype(">i8")
    elif layout == "misaligned":
        raw = np.zeros(a.nbytes + 1, np.uint8)
        m = raw[1:].view(np.int64)
        m[...] = a
        a = m
        assert not a.flags.aligned
    else:
        a = np.asfortranarray(a.reshape(20, 10))
    out = np.empty(a.shape, np.uint8)
    assert not _hostops._fused_cast(a, out, "int64", "uint8")
    # nor is an `out` (arrayferry.plugin.host_cast(..., out=)) that is misaligned or read-only
    good = np.arange(10, dtype=np.int64)
    raw = np.zeros(41, np.uint8)
    odd = raw[1:].view(np.int32)
    assert _hostops._fused_cast(good, np.empty(10, np.int32), "int64", "int32")  # aligned: taken
    assert not odd.flags.aligned and not _hostops._fused_cast(good, odd, "int64", "int32")
    ro = np.empty(10, np.int32)
    ro.flags.writeable = False
    assert not _hostops._fused_cast(good, ro, "int64", "int32")
    got = _hostops.host_cast(good, "int64", "int32", "range", out=np.empty(10, np.int32))
    assert got.tolist() == list(range(10))
    fused, plain = _both(a, "int64", "uint8", monkeypatch)
    assert fused == plain and fused[0] == "error" and "-50 is outside uint8's range" in fused[1]


@needs_speedups
def test_the_kernel_refuses_what_it_cannot_do() -> None:
    mod = _hostops._speedups()
    a = np.arange(4, dtype=np.int64)
    with pytest.raises(ValueError, match="buffer sizes"):
        mod.cast_checked(a, np.empty(3, np.int8), "i", 8, "i", 1, 0, 1)
    with pytest.raises(ValueError, match="integer type"):
        mod.cast_checked(a, np.empty(4, np.float32), "i", 8, "f", 4, 0, 1)
    with pytest.raises(ValueError, match="complex goes to the float of its component"):
        mod.cast_checked(a.astype(np.complex128), np.empty(4, np.float32), "c", 16, "f", 4, 0, 0)
    ro = np.empty(4, np.int8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):  # NumPy's buffer export refuses to write
        mod.cast_checked(a, ro, "i", 8, "i", 1, -128, 127)
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        mod.cast_checked(np.arange(8, dtype=np.int64)[::2], np.empty(4, np.int8), "i", 8, "i", 1, -128, 127)
    with pytest.raises(ValueError, match="unsigned source takes lo == 0"):
        mod.cast_checked(a.astype(np.uint64), np.empty(4, np.uint8), "u", 8, "u", 1, 0, 200)
    out = np.empty(4, np.int8)
    assert mod.cast_checked(a, out, "i", 8, "i", 1, -128, 127) == -1 and out.tolist() == [0, 1, 2, 3]
    assert mod.cast_checked(a.astype(np.uint16), out, "u", 2, "i", 1, 0, 127) == -1
    assert mod.cast_checked(np.array([1, 128, 2, 999], np.uint16), out, "u", 2, "i", 1, 0, 127) == 1
    # a signed source with bounds [0, 2**k - 1] (int16 to uint8): negative values fail too
    u8 = np.empty(4, np.uint8)
    assert mod.cast_checked(np.array([1, 255, 0, 7], np.int16), u8, "i", 2, "u", 1, 0, 255) == -1 and u8.tolist() == [1, 255, 0, 7]
    assert mod.cast_checked(np.array([1, 2, -1, 7], np.int16), u8, "i", 2, "u", 1, 0, 255) == 2
    assert mod.cast_checked(np.array([1, 256, -1, 7], np.int16), u8, "i", 2, "u", 1, 0, 255) == 1
    assert mod.cast_checked(np.array([1, 2, 300, 400]), out, "i", 8, "i", 1, -128, 127) == 2


@pytest.mark.parametrize("src", ["int32", "int64", "uint16", "uint32", "uint64"])
def test_integers_to_float16_use_numpys_overflow_flag(src: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy's software float16 conversion raises the overflow flag for every integer beyond
    float16's range (probed once per pair at the bounds and their neighbours): no extra pass."""
    assert _hostops._flags_reliable(src, "float16")
    assert _hostops.check_method(src, "float16") == "FPU flags of the cast itself, no extra pass"
    info = np.iinfo(src)
    for v, ok in [(65504, True), (65519, True), (65520, False), (int(info.max), False)] + (
            [(-65519, True), (-65520, False)] if info.min < 0 else []):
        a = np.zeros(67, dtype=src)
        a[33] = v
        fused, plain = _both(a, src, "float16", monkeypatch)
        assert fused == plain and (fused[0] == "ok") == ok, (src, v, fused)


@pytest.mark.slow
def test_the_python_path_passes_the_hot_path_and_cast_suites() -> None:
    """Without the extension (ARRAYFERRY_NO_SPEEDUPS=1, as where no C compiler built it) the same
    logic runs in Python: the suites of the hot path, the tree walker, the casts and this file
    pass there too."""
    if os.environ.get("ARRAYFERRY_NO_SPEEDUPS"):
        pytest.skip("already without the extension")
    root = Path(__file__).parent
    files = ["test_direct_calls.py", "test_cache.py", "test_tree.py", "test_decorator.py", "test_fused_cast.py",
             "test_cast_placement.py", "test_protocol_cost.py"]
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                          *(str(root / f) for f in files), "-k", "not test_the_python_path_passes"],
                         env={**os.environ, "ARRAYFERRY_NO_SPEEDUPS": "1"}, capture_output=True, text=True, cwd=root.parent)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    probe = subprocess.run([sys.executable, "-c", "import arrayferry as af, numpy as np\n"
                            "from arrayferry import _hostops\n"
                            "print(_hostops._speedups(), type(af.convert).__name__, type(af.converter('numpy')).__name__)"],
                           env={**os.environ, "ARRAYFERRY_NO_SPEEDUPS": "1"}, capture_output=True, text=True)
    assert probe.stdout.split() == ["None", "function", "function"], probe.stdout + probe.stderr
