"""scripts/gen_bench_docs.py renders docs/benchmarks.md sections from benchmarks/run.py's JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gen_bench_docs.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_the_casts_section_has_its_markers() -> None:
    res = _run("unused.json", "--section", "casts", "--check")
    assert res.returncode == 0, res.stderr


def test_renders_a_section_from_run_json(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    shutil.copy(ROOT / "docs" / "benchmarks.md", doc)
    data = {
        "environment": {"date": "2026-01-01 00:00:00 UTC", "python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0",
                        "cpus": 2, "processor": "x86_64", "torch_threads": 2},
        "results": {"casts": [
            {"name": "64 MiB range check float64 -> int32", "value": 7.0, "unit": "ms", "baseline": 6.5,
             "baseline_name": "casting='unsafe'", "ratio": 7.0 / 6.5, "note": "FPU flags", "target": "check <= 10 %",
             "passed": True},
            {"name": "64 MiB range check int64 -> int8", "value": 13.0, "unit": "ms", "baseline": 7.0,
             "baseline_name": "casting='unsafe'", "ratio": 13.0 / 7.0, "target": "check <= 10 %", "passed": False},
        ]},
        "errors": {},
    }
    js = tmp_path / "bench.json"
    js.write_text(json.dumps(data))
    res = _run(str(js), "--section", "casts", "--doc", str(doc))
    assert res.returncode == 0, res.stderr
    text = doc.read_text()
    section = text.split("<!-- bench:casts:begin -->")[1].split("<!-- bench:casts:end -->")[0]
    assert "Run on 2026-01-01 00:00:00 UTC" in section
    assert "| 64 MiB range check float64 -> int32 | 7.00 ms | casting='unsafe' 6.50 ms | 1.08× | FPU flags | check <= 10 %: **pass** |" in section
    assert "check <= 10 %: **missed**" in section
    assert text.count("<!-- bench:casts:begin -->") == 1
    # the rest of the page is untouched
    orig = (ROOT / "docs" / "benchmarks.md").read_text()
    assert text.split("<!-- bench:casts:begin -->")[0] == orig.split("<!-- bench:casts:begin -->")[0]
    assert text.split("<!-- bench:casts:end -->")[1] == orig.split("<!-- bench:casts:end -->")[1]
    assert _run(str(js), "--section", "nothing", "--doc", str(doc)).returncode == 1
