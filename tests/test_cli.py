"""The ``arrayferry`` command line: ``info``, ``matrix`` (text, JSON, heat map) and its errors.

Everything runs the real command in a subprocess (``python -m arrayferry`` and the installed
console script) against the real NumPy and PyTorch installed here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ARRAYFERRY_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "arrayferry", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p.stdout


# ------------------------------------------------------------------------------------------------
# info


def test_info_text_names_versions_plugins_and_entry_points() -> None:
    import arrayferry

    out = ok(run_cli("info"))
    assert out.splitlines()[0] == f"arrayferry {arrayferry.__version__}"
    assert f"Python {sys.version.split()[0]}" in out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ") and ln.split()}
    assert np.__version__ in lines["numpy"] and "yes" in lines["numpy"]
    # the local segment (+cpu, +cu130) is in torch.__version__ but not always in the wheel's metadata
    assert torch.__version__.split("+")[0] in lines["torch"]
    assert "Entry-point group: arrayferry.plugins" in out
    assert "Autoload: enabled" in out


def test_info_json_matches_the_installed_frameworks() -> None:
    d = json.loads(ok(run_cli("info", "--json")))
    fws = {f["name"]: f for f in d["frameworks"]}
    assert fws["numpy"]["installed"] is True and fws["numpy"]["version"] == np.__version__
    assert fws["torch"]["version"].split("+")[0] == torch.__version__.split("+")[0]
    assert fws["torch"]["plugin"] == "torch"
    assert "devices" not in fws["torch"]  # not probed unless asked
    assert d["entry_point_group"] == "arrayferry.plugins"
    assert d["autoload_disabled"] is False
    plugins = {p["name"]: p for p in d["plugins"]}
    assert plugins["numpy"]["frameworks"] == ["numpy"] and plugins["numpy"]["status"] == "ok"


def test_info_reports_autoload_disabled() -> None:
    d = json.loads(ok(run_cli("info", "--json", env={"ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD": "1"})))
    assert d["autoload_disabled"] is True
    # only the built-in plugins remain
    assert {p["name"] for p in d["plugins"] if p["status"] == "ok"} <= {"numpy", "torch", "cupy"}


def test_info_devices_reports_no_cuda_cleanly() -> None:
    d = json.loads(ok(run_cli("info", "--devices", "--json")))
    fws = {f["name"]: f for f in d["frameworks"]}
    assert fws["numpy"]["devices"] == ["cpu"]
    assert "cpu" in fws["torch"]["devices"]
    if not torch.cuda.is_available():
        assert fws["torch"]["cuda"] == "no CUDA device"
        text = ok(run_cli("info", "--devices"))
        torch_line = next(ln for ln in text.splitlines() if ln.strip().startswith("torch "))
        assert "cpu (no CUDA device)" in torch_line
        assert "Traceback" not in text
        # the reason comes from torch's own adapter, and host-only numpy has nothing to explain
        assert "no CUDA device available" in fws["torch"]["cuda_reason"]
        assert "cuda_reason" not in fws["numpy"]
        why = text.split("Why no CUDA device:\n", 1)[1].split("\n\n", 1)[0]
        assert any(ln.strip().startswith("torch: no CUDA device available") for ln in why.splitlines())
        assert not any(ln.strip().startswith("numpy:") for ln in why.splitlines())
        numpy_line = next(ln for ln in text.splitlines() if ln.strip().startswith("numpy "))
        assert "no CUDA device" not in numpy_line


def test_info_lists_broken_plugins_with_their_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from arrayferry._registry import BrokenPlugin, registry
    from arrayferry.cli import format_info, info_data

    reg = registry()
    monkeypatch.setattr(reg, "broken", [*reg.broken, BrokenPlugin("badplugin", "ImportError: No module named 'nothere'")])
    d = info_data()
    bad = [p for p in d["plugins"] if p["name"] == "badplugin"]
    assert bad == [{"name": "badplugin", "frameworks": [], "status": "broken", "error": "ImportError: No module named 'nothere'"}]
    assert "  badplugin: BROKEN: ImportError: No module named 'nothere'" in format_info(d).splitlines()


# ------------------------------------------------------------------------------------------------
# matrix


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    out = ok(run_cli("matrix", "--frameworks", "numpy,torch", "--repeat", "3", "--json"))
    data: dict[str, Any] = json.loads(out)
    return data


def _row(m: dict[str, Any], src: str, tgt: str, case: str) -> dict[str, Any]:
    rows = [r for r in m["rows"] if (r["source"], r["target"], r["case"]) == (src, tgt, case)]
    assert len(rows) == 1, (src, tgt, case)
    return rows[0]


def test_matrix_json_covers_both_directions_and_every_case(matrix: dict[str, Any]) -> None:
    assert set(matrix["frameworks"]) == {"numpy", "torch"}
    assert matrix["repeat"] == 3
    cases = [c["name"] for c in matrix["cases"]]
    assert {"contiguous", "strided", "negative", "fortran", "readonly", "broadcast", "big-endian",
            "bfloat16", "int64", "0-d", "requires_grad"} <= set(cases)
    pairs = {(r["source"], r["target"]) for r in matrix["rows"]}
    assert pairs == {("numpy", "torch"), ("torch", "numpy")}
    assert len(matrix["rows"]) == 2 * len(cases)


def test_matrix_rows_that_ran_are_correct_and_honest(matrix: dict[str, Any]) -> None:
    ran = [r for r in matrix["rows"] if r["status"] == "ok"]
    assert len(ran) >= 18
    for r in ran:
        assert r["values_ok"] is True, r
        assert r["plan_honest"] is True, r  # memory shared exactly when the plan said so
        assert r["convert_us"] > 0
        if r["native_status"] == "ok":
            assert r["native_us"] > 0 and r["ratio"] == pytest.approx(r["convert_us"] / r["native_us"])
        else:
            assert r["native_us"] is None and r["native_note"]


@pytest.mark.parametrize(
    ("src", "tgt", "case", "zero_copy", "native_status"),
    [
        ("numpy", "torch", "contiguous", True, "ok"),
        ("numpy", "torch", "strided", True, "ok"),
        ("numpy", "torch", "fortran", True, "ok"),
        ("numpy", "torch", "negative", False, "fails"),  # torch.from_numpy raises ValueError
        ("numpy", "torch", "readonly", False, "wrong"),  # torch.from_numpy: writable alias
        ("numpy", "torch", "broadcast", False, "wrong"),
        ("numpy", "torch", "big-endian", False, "fails"),
        ("numpy", "torch", "bfloat16", True, "fails"),
        ("numpy", "torch", "int64", True, "ok"),
        ("numpy", "torch", "0-d", True, "ok"),
        ("torch", "numpy", "contiguous", True, "ok"),
        ("torch", "numpy", "bfloat16", True, "fails"),
        ("torch", "numpy", "requires_grad", True, "fails"),
        ("torch", "numpy", "conj", False, "fails"),
    ],
)
def test_matrix_routes(matrix: dict[str, Any], src: str, tgt: str, case: str, zero_copy: bool, native_status: str) -> None:
    r = _row(matrix, src, tgt, case)
    assert r["status"] == "ok", r
    assert r["zero_copy"] is zero_copy
    assert r["native_status"] == native_status, r
    if not zero_copy:
        assert any(s in r["steps"] for s in ("host_copy", "copy", "resolve_bits")), r["steps"]


def test_matrix_native_failure_is_named(matrix: dict[str, Any]) -> None:
    neg = _row(matrix, "numpy", "torch", "negative")
    assert neg["native"] == "torch.from_numpy" and "negative strides" in neg["native_note"]
    ro = _row(matrix, "numpy", "torch", "readonly")
    assert ro["native_note"] == "unsafe: writable alias of read-only memory"
    grad = _row(matrix, "torch", "numpy", "requires_grad")
    assert "detach" in grad["steps"] and grad["native"] == "Tensor.numpy()"


@pytest.mark.parametrize("case", ["negative", "readonly", "big-endian"])
def test_matrix_cases_torch_cannot_hold_are_na(matrix: dict[str, Any], case: str) -> None:
    r = _row(matrix, "torch", "numpy", case)
    assert r["status"] == "n/a" and r["reason"].startswith("torch cannot hold it")
    assert r["convert_us"] is None


def test_matrix_sources_no_plugin_owns() -> None:
    """``--sources``: lists, scalars, buffers, protocol objects, pandas and xarray into each framework,
    every row correct, and zero-copy exactly when memory is shared (pointers compared)."""
    out = ok(run_cli("matrix", "--frameworks", "numpy,torch", "--sources", "--repeat", "1", "--json"))
    m = json.loads(out)
    from arrayferry._matrix import SOURCE_CASES

    src_rows = [r for r in m["rows"] if r["case"] in {c.name for c in SOURCE_CASES}]
    # each framework, an example array of each (to=y), each one's array_api_compat namespace, and
    # an array-API namespace no plugin registers (arrayferry.testing.cases.array_api_namespace)
    targets = {"numpy", "torch", "like numpy", "like torch", "arrayferry_minixp"}
    if importlib.util.find_spec("array_api_compat") is not None:
        targets |= {"array_api_compat.numpy", "array_api_compat.torch"}
    assert {r["target"] for r in src_rows} == targets
    assert len(src_rows) == len(targets) * len(SOURCE_CASES)
    ran = [r for r in src_rows if r["status"] == "ok"]
    assert len(ran) >= len(targets) * (len(SOURCE_CASES) - 2)  # pandas and xarray may be missing
    for r in ran:
        assert r["values_ok"] is True, r
        assert r["plan_honest"] in (True, None), r
    by = {(r["case"], r["target"]): r for r in ran}
    assert by[("memoryview", "torch")]["source"] == "buffer" and by[("memoryview", "torch")]["zero_copy"] is True
    assert by[("memoryview", "torch")]["plan_honest"] is True
    assert by[("list", "torch")]["source"] == "python" and by[("list", "torch")]["zero_copy"] is False
    assert by[("list", "torch")]["native"] == "torch.asarray"  # which reads Python floats as float32
    assert by[("list", "torch")]["native_status"] == "wrong"
    assert by[("bytes", "torch")]["zero_copy"] is False  # read-only memory: copied for torch
    assert by[("__dlpack__", "torch")]["route"] == "dlpack"
    # an example array or a registered framework's namespace plans exactly as its framework's name
    for alias in ("like torch", "array_api_compat.torch", "like numpy", "array_api_compat.numpy"):
        fw = alias.rsplit(" ", 1)[-1].rsplit(".", 1)[-1]
        for case in ("memoryview", "bytes", "list", "__dlpack__"):
            if (case, alias) in by:
                mine, theirs = by[(case, alias)], by[(case, fw)]
                assert (mine["route"], mine["zero_copy"], mine["steps"]) == (theirs["route"], theirs["zero_copy"],
                                                                             theirs["steps"]), (case, alias)
    # the generic namespace: zero-copy where its asarray/from_dlpack(copy=False) aliases (pointers
    # compared), a named copy for read-only memory, values bit for bit (checked for every row above)
    gen = {c: by[(c, "arrayferry_minixp")] for c in ("memoryview", "bytes", "__dlpack__", "list")}
    assert gen["memoryview"]["zero_copy"] is True and gen["memoryview"]["plan_honest"] is True
    assert gen["bytes"]["zero_copy"] is False and gen["bytes"]["plan_honest"] is True
    assert "host_copy" in gen["bytes"]["steps"]
    assert gen["__dlpack__"]["route"] == "dlpack" and gen["__dlpack__"]["plan_honest"] is True
    assert gen["list"]["zero_copy"] is False and gen["list"]["native"] == "arrayferry_minixp.asarray"
    # without --sources the table is the frameworks' own
    p = run_cli("matrix", "--frameworks", "numpy,torch", "--cases", "list", "--repeat", "1")
    assert p.returncode != 0 and "unknown case" in p.stderr


def test_matrix_text_table() -> None:
    p = run_cli("matrix", "--frameworks", "numpy,torch", "--cases", "contiguous,negative", "--repeat", "1")
    out = ok(p)
    assert "numpy -> torch   (native call: torch.from_numpy)" in out
    row = next(ln.split() for ln in out.splitlines() if ln.strip().startswith("negative") and "host" in ln)
    assert row[:3] == ["negative", "host", "no"] and "FAILS" in row
    assert "measuring numpy -> torch" in p.stderr


def test_matrix_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "matrix.png"
    out = ok(run_cli("matrix", "--frameworks", "numpy,torch", "--cases", "contiguous,negative,readonly",
                     "--repeat", "1", "--plot", str(png)))
    assert f"heat map written to {png}" in out
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    route_png = tmp_path / "route.png"
    ok(run_cli("matrix", "--frameworks", "numpy,torch", "--cases", "contiguous", "--repeat", "1",
               "--plot", str(route_png), "--plot-value", "route", "--json"))
    assert route_png.read_bytes()[:8] == PNG_SIGNATURE


# ------------------------------------------------------------------------------------------------
# errors: exit status 2, one line, no traceback


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("matrix", "--frameworks", "numpy,nosuch"), "unknown framework(s) 'nosuch' in --frameworks; registered:"),
        (("matrix", "--repeat", "0"), "--repeat must be at least 1, got 0"),
        (("matrix", "--cases", "nosuch"), "unknown case(s) nosuch; known: contiguous"),
        (("matrix", "--frameworks", ","), "empty list ','"),
        (("matrix", "--frameworks", "numpy"), "nothing to measure: the matrix compares pairs of frameworks, "
                                              "and only numpy can be used here"),
        (("matrix", "--frameworks", "numpy,torch", "--plot", "/nonexistent-folder/m.png"),
         "--plot: the folder '/nonexistent-folder' does not exist"),
        (("matrix", "--frameworks", "numpy,torch", "--plot", "/"), "--plot: '/' is a directory"),
        (("matrix", "--frameworks", "numpy,torch", "--plot", "matrix.txt"), "the extension .txt, which matplotlib cannot write"),
    ],
)
def test_errors_exit_2_with_one_line(args: tuple[str, ...], expected: str) -> None:
    if "--plot" in args:
        pytest.importorskip("matplotlib")
    p = run_cli(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arrayferry: error: ")
    assert expected in lines[0]
    assert "Hint: " in lines[0]  # every error says what to do
    assert "Traceback" not in p.stderr and p.stdout == ""  # and nothing was measured first


def test_matrix_in_a_numpy_only_install_says_why_it_is_empty() -> None:
    import arrayferry as af

    # every registered framework but NumPy is made unimportable (plugins installed here included)
    blocked = sorted({f.module for f in af.frameworks()} - {"numpy"})
    assert {"torch", "cupy"} <= set(blocked)
    code = (f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); from arrayferry.cli import main; "
            "raise SystemExit(main(['matrix', '--repeat', '1']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    msg = p.stderr.strip()
    assert msg.startswith("arrayferry: error: nothing to measure:") and "only numpy can be used here" in msg
    assert "(skipped " in msg and "torch: import torch failed" in msg and "Hint: install a second framework" in msg


def test_notes_are_cut_at_a_word_with_an_ellipsis() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from arrayferry.cli import _clip

    @given(st.text(alphabet="ab ,:", max_size=300), st.integers(20, 200))
    def check(text: str, width: int) -> None:
        out = _clip(text, width)
        assert len(out) <= width
        if len(text) <= width:
            assert out == text
        else:
            assert out.endswith("...") and text.startswith(out[:-3])

    check()
    long = "big-endian: jnp.asarray TypeError: Error interpreting argument to stage as a JAX value. " * 3
    out = _clip(long, 160)
    assert out.endswith("value...") or out.endswith("...") and long[len(out) - 3] == " "


def test_plot_without_matplotlib_is_a_clear_error(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['matplotlib'] = None; from arrayferry.cli import main; "
            f"raise SystemExit(main(['matrix', '--frameworks', 'numpy,torch', '--plot', {str(tmp_path / 'x.png')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == ("arrayferry: error: --plot needs matplotlib, which is not installed; "
                                "Hint: pip install 'arrayferry[plot]'")
    assert not (tmp_path / "x.png").exists()


def test_bad_usage_is_argparse_exit_2() -> None:
    p = run_cli("matrix", "--repeat", "many")
    assert p.returncode == 2 and "invalid int value: 'many'" in p.stderr


# ------------------------------------------------------------------------------------------------
# entry points


def test_python_dash_m_and_console_script_agree() -> None:
    import arrayferry

    assert ok(run_cli("--version")).strip() == f"arrayferry {arrayferry.__version__}"
    script = shutil.which("arrayferry", path=str(Path(sys.executable).parent)) or shutil.which("arrayferry")
    if script is None:
        pytest.skip("the arrayferry console script is not on PATH (package not pip-installed)")
    p = subprocess.run([script, "info", "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["arrayferry"] == arrayferry.__version__


def test_matrix_cases_are_built_at_controlled_alignment() -> None:
    """Zero-copy into some frameworks (JAX) depends on the address: every case is placed on a
    64-byte boundary (the "unaligned" case 4 bytes past one), so runs give the same table."""
    from arrayferry._matrix import CASES

    for case in CASES:
        for _ in range(5):
            x = case.make()[0]  # a torch case aliases its placed NumPy memory
            ptr = x.data_ptr() if case.source == "torch" else x.__array_interface__["data"][0]
            want = 4 if case.name == "unaligned" else 0
            assert ptr % 64 == want, case.name
