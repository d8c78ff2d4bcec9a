"""scripts/gen_bench_docs.py renders docs/benchmarks.md's tables from the record of benchmarks/run.py's JSON
(docs/data/bench.json); --check keeps the page in step with the record."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
    for label in ("zero_copy", "accepts", "first_call", "copies", "import", "convert_tree", "dask", "matrix"):
        assert label in record, label
        env = record[label]["environment"]
        assert env["python"] and env["numpy"] and env["torch"] and env["date"]
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    main = text.split("<!-- bench:main:begin -->")[1].split("<!-- bench:main:end -->")[0]
    first = record["zero_copy"]["results"][0]
    assert f"| {first['name']} | {first['value']:.2f} µs |" in main
    assert "Targets: " in main and " met, " in main
    # the Dask and conversion-matrix tables are generated blocks too, from recorded runs
    dask = _block(text, "dask")
    r = record["dask"]["results"][0]
    assert f"| {r['workers']} | " in dask and f" | {r['seconds']:.3f} | {r['baseline_seconds']:.3f} | " in dask
    assert record["dask"]["environment"]["date"] in dask
    matrix = _block(text, "matrix")
    assert record["matrix"]["environment"]["date"] in matrix
    ok = [c for c in record["matrix"]["results"] if c["status"] == "ok"]
    assert {(c["source"], c["to"]) for c in ok} == {("numpy", "torch"), ("torch", "numpy")}
    for c in ok:
        assert f"| `{c['case']}`: " in matrix and f" | {c['value']:.2f} µs | " in matrix, c["name"]
    # no typed figures left outside the generated blocks of these sections
    outside = text.split("<!-- bench:matrix:end -->")[1].split("<!-- BEGIN gpu-bench")[0]
    assert "µs" not in outside and "×" not in outside


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


def _block(text: str, name: str) -> str:
    return text.split(f"<!-- bench:{name}:begin -->")[1].split(f"<!-- bench:{name}:end -->")[0]


_ENV = {"date": "2026-01-03 04:05:06 UTC", "python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0",
        "arrayferry": "0.1.0", "cpus": 2, "cpu_model": "Some CPU", "loadavg": "2.00 1.00 0.50"}
_PAGE = ("intro\n<!-- bench:dask:begin -->\nold\n<!-- bench:dask:end -->\nmiddle\n"
         "<!-- bench:matrix:begin -->\n<!-- bench:matrix:end -->\noutro\n")


def _dask_row(workers: int, copy: bool | None, secs: float, base: float) -> dict[str, Any]:
    return {"name": f"dask convert_chunks numpy->torch copy={copy}", "workers": workers, "copy": copy,
            "chunks": 16, "bytes": 16 * 2**20, "seconds": secs, "baseline_seconds": base,
            "overhead_s": secs - base, "gb_per_s": 16 * 2**20 / secs / 1e9, "repeat": 3}


def _cell(case: str, src: str, to: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": f"matrix {src} -> {to}: {case}", "description": f"the {case} case", "repeat": 9,
        "command": "arrayferry matrix --frameworks numpy,torch --repeat 9 --json", "source": src, "to": to,
        "case": case, "status": "ok", "reason": None, "route": "host", "zero_copy": True, "steps": ["import_host"],
        "values_ok": True, "plan_honest": True, "native": "torch.from_numpy" if to == "torch" else "Tensor.numpy()",
        "native_status": "ok", "native_note": None}
    row.update(kw)
    return row


def _fixture_run() -> dict[str, Any]:
    return {"environment": dict(_ENV, command="python benchmarks/run.py --only dask,matrix"), "errors": {}, "results": {
        "dask": [_dask_row(1, None, 0.05, 0.04), _dask_row(2, True, 0.25, 0.125)],
        "matrix": [
            _cell("contiguous", "numpy", "torch", value=1.25, unit="us", baseline=0.5, baseline_name="torch.from_numpy",
                  ratio=2.5),
            _cell("negative", "numpy", "torch", zero_copy=False, steps=["host_copy", "import_host"], value=6.5,
                  unit="us", native_status="fails", native_note="ValueError: At least one stride is negative"),
            _cell("readonly", "numpy", "torch", zero_copy=False, steps=["host_copy", "import_host"], value=5.0,
                  unit="us", native_status="wrong", native_note="unsafe: writable alias of read-only memory"),
            _cell("conj", "numpy", "torch", status="n/a", reason="only torch arrays have this state", route=None,
                  zero_copy=None, steps=[], values_ok=None, plan_honest=None, native=None, native_status=None),
            _cell("conj", "torch", "numpy", zero_copy=False, steps=["resolve_bits", "export_host"], value=4.0,
                  unit="us", native_status="fails", native_note="RuntimeError: conjugate bit set", plan_honest=None),
            _cell("0-d", "torch", "numpy", steps=["export_host"], value=1.5, unit="us", baseline=0.75,
                  baseline_name="Tensor.numpy()", ratio=2.0, plan_honest=False),
            _cell("int64", "torch", "numpy", steps=["export_host"], value=1.5, unit="us", baseline=0.75,
                  baseline_name="Tensor.numpy()", ratio=2.0, values_ok=False,
                  reason="convert returned wrong data: 3 values differ"),
        ]}}


def _record_fixture(tmp_path: Path) -> tuple[Path, Path]:
    doc, data, js = tmp_path / "benchmarks.md", tmp_path / "record.json", tmp_path / "run.json"
    doc.write_text(_PAGE)
    js.write_text(json.dumps(_fixture_run()))
    res = _run(str(js), "--doc", str(doc), "--data", str(data))
    assert res.returncode == 0, res.stderr
    return doc, data


def test_the_dask_block_renders_from_the_run_json(tmp_path: Path) -> None:
    doc, data = _record_fixture(tmp_path)
    assert sorted(json.loads(data.read_text())) == ["dask", "matrix"]
    text = doc.read_text()
    dask = _block(text, "dask")
    assert dask.startswith("\nRun on 2026-01-03 04:05:06 UTC with `python benchmarks/run.py --only dask,matrix`; "
                           "2 CPU cores (Some CPU), load average 2.00 1.00 0.50; python 3.11.7")
    assert "| workers | copy | chunks | MiB | seconds (median of 3) | identity baseline | over the baseline | GB/s |" in dask
    assert "| 1 | None (zero-copy per chunk) | 16 | 16 | 0.050 | 0.040 | +0.010 | 0.34 |" in dask
    assert "| 2 | True | 16 | 16 | 0.250 | 0.125 | +0.125 | 0.07 |" in dask
    assert "old" not in dask and text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("\noutro\n")
    assert _run("--check", "--doc", str(doc), "--data", str(data)).returncode == 0


def test_the_matrix_block_renders_from_the_run_json(tmp_path: Path) -> None:
    doc, data = _record_fixture(tmp_path)
    m = _block(doc.read_text(), "matrix")
    assert "Run on 2026-01-03 04:05:06 UTC" in m
    assert "Cells of `arrayferry matrix --frameworks numpy,torch --repeat 9 --json` (run in a fresh process); " \
           "times are medians of 9 batches." in m
    assert "| numpy → torch | route | zero-copy | steps | convert | `torch.from_numpy` | ratio |" in m
    assert "| `contiguous`: the contiguous case | host | yes | `import_host` | 1.25 µs | 0.50 µs | 2.5× |" in m
    assert ("| `negative`: the negative case | host | no | `host_copy` → `import_host` | 6.50 µs | FAILS (ValueError) |"
            "  |") in m
    assert "| 5.00 µs | WRONG (unsafe: writable alias of read-only memory) |  |" in m
    assert "n/a with numpy as the source: `conj`; only torch arrays have this state." in m
    assert "| `conj`: the conj case |" in m.split("| torch → numpy |")[1]  # the n/a cell only under numpy
    assert "| `0-d`: the 0-d case | host | yes (memory disagrees with the plan) | `export_host` | 1.50 µs |" in m
    assert ("| `int64`: the int64 case | host | yes | `export_host` | WRONG VALUES (convert returned wrong data: 3 "
            "values differ) 1.50 µs | 0.75 µs | 2.0× |") in m
    assert ("6 cells converted: 5 returned the source's values bit for bit; memory was shared exactly when the plan "
            "said so in 4 of the 5 with pointers to compare (not: matrix torch -> numpy: 0-d; matrix torch -> numpy: "
            "int64). On the same cells the native call raised on 2 and returned a wrong or unsafe result on 1.") in m
    assert _run("--check", "--doc", str(doc), "--data", str(data)).returncode == 0


def test_check_catches_stale_or_missing_dask_and_matrix_blocks(tmp_path: Path) -> None:
    doc, data = _record_fixture(tmp_path)
    good = doc.read_text()
    for name, old, new in (("dask", "| 0.250 | 0.125 |", "| 0.200 | 0.125 |"),
                           ("matrix", "FAILS (ValueError)", "0.40 µs"),
                           ("matrix", "| 2.5× |", "| 2.0× |")):
        stale = good.replace(_block(good, name), _block(good, name).replace(old, new, 1))
        assert stale != good
        doc.write_text(stale)
        res = _run("--check", "--doc", str(doc), "--data", str(data))
        assert res.returncode == 1 and "stale" in res.stderr, (name, old)
    for name in ("dask", "matrix"):
        doc.write_text(good.replace(f"<!-- bench:{name}:begin -->", "").replace(f"<!-- bench:{name}:end -->", ""))
        res = _run("--check", "--doc", str(doc), "--data", str(data))
        assert res.returncode == 1 and f"{name} is recorded but" in res.stderr
    # a new run of one label re-renders its block and leaves the other's as it was
    run = _fixture_run()
    run["environment"]["date"] = "2026-02-01 00:00:00 UTC"
    run["results"]["dask"][0]["seconds"] = 0.075
    js = tmp_path / "again.json"
    js.write_text(json.dumps(run))
    doc.write_text(good)
    assert _run(str(js), "--section", "dask", "--doc", str(doc), "--data", str(data)).returncode == 0
    text = doc.read_text()
    assert "| 1 | None (zero-copy per chunk) | 16 | 16 | 0.075 | 0.040 | +0.035 |" in _block(text, "dask")
    assert "2026-02-01" in _block(text, "dask") and _block(text, "matrix") == _block(good, "matrix")


def test_a_quick_matrix_run_records_and_renders(tmp_path: Path) -> None:
    """``benchmarks/run.py --only matrix`` runs ``arrayferry matrix --json`` for real; the rendered cells
    say what the frameworks really do (torch.from_numpy refuses bfloat16 and negative strides, and
    aliases read-only memory writably; Tensor.numpy() refuses requires_grad)."""
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "matrix",
                          "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    cells = json.loads(out.read_text())["results"]["matrix"]
    assert {c["command"] for c in cells} == {"arrayferry matrix --frameworks numpy,torch --repeat 3 --json"}
    by = {(c["source"], c["case"]): c for c in cells}
    assert by["numpy", "contiguous"]["zero_copy"] is True and by["numpy", "contiguous"]["baseline"] > 0
    assert by["numpy", "bfloat16"]["native_status"] == "fails" and by["numpy", "negative"]["native_status"] == "fails"
    assert by["numpy", "readonly"]["native_status"] == "wrong" and by["numpy", "readonly"]["zero_copy"] is False
    assert by["torch", "requires_grad"]["steps"][0] == "detach" and by["torch", "negative"]["status"] == "n/a"
    doc, record = tmp_path / "benchmarks.md", tmp_path / "record.json"
    shutil.copy(ROOT / "docs" / "benchmarks.md", doc)
    shutil.copy(ROOT / "docs" / "data" / "bench.json", record)
    assert _run(str(out), "--doc", str(doc), "--data", str(record)).returncode == 0
    m = _block(doc.read_text(), "matrix")
    assert "--repeat 3 --json" in m and "| `bfloat16`: " in m and "FAILS (TypeError)" in m
    assert "n/a with torch as the source: `negative`, `readonly`, `big-endian`" in m
    assert _run("--check", "--doc", str(doc), "--data", str(record)).returncode == 0


@pytest.mark.slow
def test_a_quick_dask_run_records_and_renders(tmp_path: Path) -> None:
    """``benchmarks/run.py --only dask`` (a real distributed.LocalCluster, 1 and 2 workers) into the dask block."""
    pytest.importorskip("distributed")
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "dask",
                          "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = json.loads(out.read_text())["results"]["dask"]
    assert [(r["workers"], r["copy"]) for r in rows] == [(1, None), (1, True), (2, None), (2, True)]
    assert all(r["seconds"] > 0 and r["baseline_seconds"] > 0 and r["bytes"] == 16 * 2**20 for r in rows)
    doc, record = tmp_path / "benchmarks.md", tmp_path / "record.json"
    shutil.copy(ROOT / "docs" / "benchmarks.md", doc)
    shutil.copy(ROOT / "docs" / "data" / "bench.json", record)
    assert _run(str(out), "--doc", str(doc), "--data", str(record)).returncode == 0
    d = _block(doc.read_text(), "dask")
    assert "seconds (median of 3)" in d and "--quick --only dask" in d
    assert f"| 2 | True | 16 | 16 | {rows[3]['seconds']:.3f} | {rows[3]['baseline_seconds']:.3f} |" in d
    assert _run("--check", "--doc", str(doc), "--data", str(record)).returncode == 0
