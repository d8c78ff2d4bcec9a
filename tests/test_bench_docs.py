"""scripts/gen_bench_docs.py renders docs/benchmarks.md's tables from the record of benchmarks/run.py's JSON
(docs/data/bench.json); --check keeps the page in step with the record."""

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


def test_the_page_is_what_the_record_renders() -> None:
    """What docs/benchmarks.md tells a user to run (and CI's docs session runs)."""
    res = _run("--check")
    assert res.returncode == 0, res.stderr + " (run: python scripts/gen_bench_docs.py)"
    record = json.loads((ROOT / "docs" / "data" / "bench.json").read_text())
    for label in ("zero_copy", "accepts", "first_call", "copies", "import", "convert_tree"):
        assert label in record, label
        env = record[label]["environment"]
        assert env["python"] and env["numpy"] and env["torch"] and env["date"]
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    main = text.split("<!-- bench:main:begin -->")[1].split("<!-- bench:main:end -->")[0]
    first = record["zero_copy"]["results"][0]
    assert f"| {first['name']} | {first['value']:.2f} µs |" in main
    assert "Targets: " in main and " met, " in main


def test_check_fails_on_a_stale_page(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    main = text.split("<!-- bench:main:begin -->")[1].split("<!-- bench:main:end -->")[0]
    doc.write_text(text.replace(main, main.replace("**pass**", "**missed**").replace("µs", "ms"), 1))
    res = _run("--check", "--doc", str(doc))
    assert res.returncode == 1 and "stale" in res.stderr
    doc.write_text(text.replace("<!-- bench:convert_tree:begin -->", "").replace("<!-- bench:convert_tree:end -->", ""))
    res = _run("--check", "--doc", str(doc))
    assert res.returncode == 1 and "convert_tree is recorded" in res.stderr


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
    data = tmp_path / "record.json"
    res = _run(str(js), "--section", "casts", "--doc", str(doc), "--data", str(data))
    assert res.returncode == 0, res.stderr
    assert json.loads(data.read_text())["casts"]["results"][0]["value"] == 7.0
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
    assert _run(str(js), "--section", "nothing", "--doc", str(doc), "--data", str(data)).returncode == 1
    assert _run("--check", "--doc", str(doc), "--data", str(data)).returncode == 0


def test_main_block_renders_differences_and_the_tally(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("intro\n<!-- bench:main:begin -->\nold\n<!-- bench:main:end -->\noutro\n")
    env = {"date": "2026-01-02 03:04:05 UTC", "python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0",
           "arrayferry": "0.1.0", "cpus": 2, "cpu_model": "Some CPU", "loadavg": "1.00 1.00 1.00",
           "command": "python benchmarks/run.py --only zero_copy"}
    run = {"environment": env, "errors": {}, "results": {"zero_copy": [
        {"name": "zero-copy x", "value": 1.0, "unit": "us", "baseline": 0.5, "baseline_name": "native",
         "ratio": 2.0, "difference": 0.5, "target": "overhead <= 0.3 us", "passed": False},
        {"name": "zero-copy y", "value": 0.6, "unit": "us", "baseline": 0.5, "baseline_name": "native",
         "ratio": 1.2, "difference": 0.1, "target": "overhead <= 0.3 us", "passed": True},
    ]}}
    js = tmp_path / "run.json"
    js.write_text(json.dumps(run))
    data = tmp_path / "record.json"
    res = _run(str(js), "--doc", str(doc), "--data", str(data))
    assert res.returncode == 0, res.stderr
    text = doc.read_text()
    assert text.startswith("intro\n<!-- bench:main:begin -->\nRun on 2026-01-02 03:04:05 UTC with "
                           "`python benchmarks/run.py --only zero_copy`; 2 CPU cores (Some CPU), load average")
    assert "| zero-copy x | 1.00 µs | native 0.50 µs | +0.50 µs (2.00×) |  | overhead <= 0.3 us: **missed** |" in text
    assert "Targets: 1 met, 1 missed (zero-copy x)." in text
    assert "Not recorded yet: accepts, first_call, copies, import." in text
    assert text.endswith("<!-- bench:main:end -->\noutro\n")
    assert _run("--check", "--doc", str(doc), "--data", str(data)).returncode == 0


def test_a_quick_run_records_and_renders(tmp_path: Path) -> None:
    """The commands docs/benchmarks.md gives, end to end on a short run (figures not judged: speed
    targets are checked by running the benchmarks, never by tests)."""
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only",
                          "zero_copy,accepts,protocols", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    assert data["environment"]["command"] == "python benchmarks/run.py --quick --only zero_copy,accepts,protocols"
    rows = data["results"]["zero_copy"] + data["results"]["accepts"]
    assert len(rows) == 5 and all(isinstance(r["passed"], bool) and r["baseline"] > 0 for r in rows)
    doc, record = tmp_path / "benchmarks.md", tmp_path / "record.json"
    shutil.copy(ROOT / "docs" / "benchmarks.md", doc)
    shutil.copy(ROOT / "docs" / "data" / "bench.json", record)
    assert _run(str(out), "--doc", str(doc), "--data", str(record)).returncode == 0
    main = doc.read_text().split("<!-- bench:main:begin -->")[1].split("<!-- bench:main:end -->")[0]
    assert data["environment"]["date"] in main and "--quick --only zero_copy,accepts" in main
    # the protocol sources' rows beside the registered zero-copy rows, one run
    prot = doc.read_text().split("<!-- bench:protocols:begin -->")[1].split("<!-- bench:protocols:end -->")[0]
    assert prot.count(data["environment"]["date"]) == 1  # one environment line: one run
    names = [r["name"] for r in data["results"]["zero_copy"] + data["results"]["protocols"]]
    assert all(f"| {n} |" in prot for n in names), names
    assert prot.index('| zero-copy convert(x, "torch")') < prot.index("| registered type after protocol sources")
    assert _run("--check", "--doc", str(doc), "--data", str(record)).returncode == 0
