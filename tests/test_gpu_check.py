"""``scripts/gpu-check``, the offline GPU check, on a machine without a GPU.

What can be checked here is checked here: the dry run (the same offline install into a scratch
virtual environment, then collection of the GPU tests, of the kit on ``cuda:0`` and of the host
suite), the reading of JUnit XML into "what failed" lines, and the rendering of a run into
``docs/matrix.md`` and ``docs/benchmarks.md`` (from synthetic results in a temporary tree, and the
committed pages against their generator). The run itself needs the GPU test host.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu-check"


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


gpu_check = _load()

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="5" time="3.5">
<testcase classname="tests.test_cuda" name="test_ok" time="0.1"/>
<testcase classname="tests.test_cuda" name="test_bad[float32]" time="0.2">
  <failure message="AssertionError: pointers differ&#10;second line">trace</failure></testcase>
<testcase classname="tests.test_cuda" name="test_boom" time="0.2"><error message="RuntimeError: CUDA error">x</error></testcase>
<testcase classname="tests.test_cuda" name="test_multi" time="0"><skipped type="pytest.skip" message="needs two CUDA GPUs"/></testcase>
<testcase classname="tests.test_cuda" name="test_xf" time="0"><skipped type="pytest.xfail" message="upstream"/></testcase>
</testsuite></testsuites>
"""


def test_junit_failures_name_every_failure(tmp_path: Path) -> None:
    xml = tmp_path / "r.xml"
    xml.write_text(JUNIT)
    counts, failing = gpu_check.junit_failures(xml)
    assert counts == {"passed": 1, "failed": 1, "errors": 1, "skipped": 1, "xfailed": 1}
    assert failing == ["tests.test_cuda::test_bad[float32]: AssertionError: pointers differ",
                       "tests.test_cuda::test_boom: RuntimeError: CUDA error"]
    assert gpu_check.junit_failures(tmp_path / "missing.xml") == (
        {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0}, [])


def _fake_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "benchmarks.md", root / "docs" / "benchmarks.md")
    (root / "docs" / "matrix.md").write_text("old\n")
    return root


def _fake_results(tmp_path: Path, *, failed: bool) -> Path:
    res = tmp_path / "results"
    res.mkdir()
    xml = res / "gpu-tests.xml"
    xml.write_text(JUNIT if failed else JUNIT.replace('<failure message="AssertionError: pointers differ&#10;second line">trace</failure>', "")
                   .replace('<error message="RuntimeError: CUDA error">x</error>', ""))
    cell = gpu_check._cell_summary("gpu-check: GPU tests (-m 'cuda or multigpu')", xml, 1 if failed else 0, 12.0)
    cell.update(python="3.12.3", versions={"torch": "2.11.0+cu130", "cupy-cuda13x": "14.2.0"},
                finished="2026-12-01 10:00 UTC", wall_seconds=12.0)
    summary = {"finished": "2026-12-01 10:00 UTC", "dry_run": False, "ok": not failed, "seconds": 300.0,
               "machine": "16 CPU cores, x86_64, NVIDIA H200", "steps": [], "cells": [cell]}
    (res / "summary.json").write_text(json.dumps(summary))
    bench = {"environment": {"python": "3.12.3", "versions": {"torch": "2.11.0+cu130"}},
             "results": [gpu_check_bench_row()], "alternatives": [
                 {"name": "pageable h2d staged through pinned buffers (torch)", "ratio": 1.4,
                  "result_text": "14.0 GB/s against 10.0 GB/s native (1.40x)", "decision": "faster: worth taking"}],
             "errors": []}
    (res / "gpu-bench.json").write_text(json.dumps(bench))
    return res


def gpu_check_bench_row() -> dict[str, object]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    row: dict[str, object] = gpu._bandwidth("h2d torch, pageable", 256 << 20, 0.025, 0.024, "what")
    return row


@pytest.mark.parametrize("failed", [False, True])
def test_record_renders_the_gpu_row_and_section(tmp_path: Path, failed: bool) -> None:
    root = _fake_tree(tmp_path)
    gpu_check.record(_fake_results(tmp_path, failed=failed), root)
    matrix = (root / "docs" / "matrix.md").read_text()
    row = next(ln for ln in matrix.splitlines() if ln.startswith("| [gpu-check: GPU tests"))
    assert ("**FAILED**" in row) == failed and ("| passed |" in row) == (not failed)
    assert "- Versions: Python 3.12.3; torch 2.11.0+cu130, cupy-cuda13x 14.2.0" in matrix
    assert "- Run: 2026-12-01 10:00 UTC" in matrix
    assert "not run yet** on a GPU" not in matrix
    if failed:
        assert "- Failing: `tests.test_cuda::test_bad[float32] (failure: AssertionError: pointers differ)`" in matrix
    stored = list((root / "docs" / "data" / "matrix").glob("gpu-check*.json"))
    assert len(stored) == 1
    bench = (root / "docs" / "benchmarks.md").read_text()
    assert bench.count(gpu_check.BEGIN) == 1 and bench.count(gpu_check.END) == 1
    assert "| h2d torch, pageable | 10.7 GB/s | 11.2 GB/s | 0.96x | >= 0.95x | yes |" in bench
    assert "14.0 GB/s against 10.0 GB/s native (1.40x)" in bench
    assert "No GPU run has been recorded yet" not in bench
    # rendering again from the committed data alone gives the same pages
    before = (matrix, bench)
    gpu_check.render_all(root)
    assert ((root / "docs" / "matrix.md").read_text(), (root / "docs" / "benchmarks.md").read_text()) == before


def test_record_refuses_a_dry_run(tmp_path: Path) -> None:
    res = tmp_path / "r"
    res.mkdir()
    (res / "summary.json").write_text(json.dumps({"dry_run": True, "cells": []}))
    with pytest.raises(SystemExit, match="refusing to record a --dry-run"):
        gpu_check.record(res, _fake_tree(tmp_path))


def test_committed_gpu_sections_match_their_generator() -> None:
    """docs/benchmarks.md holds exactly what the generator renders from docs/data/ (no typed figures)."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert gpu_check.replace_section(text, gpu_check.render_bench_section()) == text
    matrix = (ROOT / "docs" / "matrix.md").read_text()
    has_gpu_cells = any((ROOT / "docs" / "data" / "matrix").glob("gpu-check*.json"))
    assert ("| [gpu-check: GPU tests" in matrix) == has_gpu_cells
    assert ("**not run yet** on a GPU" in matrix) == (not has_gpu_cells)


def test_no_gpu_figure_is_claimed_without_data(tmp_path: Path) -> None:
    text = gpu_check.render_bench_section(tmp_path / "absent.json")
    assert "No GPU run has been recorded yet" in text and "GB/s" not in text
    for _, what, _ in gpu_check.BENCH_PLAN:
        assert what in text


@pytest.mark.slow
def test_dry_run_installs_offline_and_collects(tmp_path: Path) -> None:
    """The command CI runs: exit 0, every step ok, GPU tests and the kit on cuda:0 collected."""
    env = dict(os.environ, OUT=str(tmp_path / "out"))
    env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env,
                         timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    steps = {s["step"]: s for s in summary["steps"]}
    assert list(steps) == ["versions", "install", "info", "gpu-tests", "kit", "bench", "host-suite"]
    assert all(s["ok"] for s in steps.values())
    assert int(steps["gpu-tests"]["detail"].split()[0]) >= 80  # tests/test_cuda.py (and the JAX plugin's)
    assert int(steps["kit"]["detail"].split()[0]) > 100  # torch on cuda:0 at least (CuPy and JAX where installed)
    log = (tmp_path / "out" / "gpu-check.log").read_text()
    assert "--no-index --no-deps --no-build-isolation" in log
    where = next(ln for ln in log.splitlines() if ln.startswith("arrayferry imported from "))
    assert "/gpu-check-" in where and "/site/arrayferry/" in where, where  # the --target install, not the checkout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu-check.log", "summary.json"]


def test_gpu_check_failure_exit_status(tmp_path: Path) -> None:
    """A broken install is reported by name and fails the command (no GPU needed to see it)."""
    env = dict(os.environ, OUT=str(tmp_path / "out"))
    env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, str(SCRIPT), "--python", "/nonexistent/python3", "--budget", "60"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert "gpu-check FAILED" in res.stdout
    assert "FAILED [install] cannot run /nonexistent/python3" in res.stdout


def test_install_without_pip_builds_and_unpacks(tmp_path: Path) -> None:
    """A host Python without pip: wheels built by its setuptools and unpacked, entry points included."""
    run = gpu_check.Run(tmp_path / "out", 120, True)
    proj = gpu_check._copy_project(ROOT, tmp_path / "src" / "arrayferry")
    rc, _ = gpu_check._install_without_pip(run, sys.executable, [proj], tmp_path / "site", tmp_path / "wheels")
    assert rc == 0
    eps = (tmp_path / "site" / "arrayferry-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "arrayferry.testing.plugin" in eps
    assert (tmp_path / "site" / "arrayferry" / "_plan.py").read_text() == (ROOT / "src" / "arrayferry" / "_plan.py").read_text()
