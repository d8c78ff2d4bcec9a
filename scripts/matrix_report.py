"""Helpers for the nox version matrix (standard library only, except ``versions``).

``versions --out FILE [--asked JSON]``
    run inside a cell's virtualenv: records Python and framework versions, what the session
    asked pip for (``--asked``: pins, or bare names for "the newest release"), and what
    ``arrayferry._capabilities`` probed for each installed framework.
``pytest CELL --junit X --versions V --out J -- ARGS``
    run inside a cell's virtualenv: runs pytest (streaming its output), then ``summarize``;
    exits with pytest's status (128 + signal when it crashed).
``summarize CELL JUNIT.xml --seconds S --versions FILE --out FILE``
    parses pytest's JUnit XML into a JSON summary: passed, failed, errors, skipped (with
    reasons), xfailed, xpassed, the names of failing tests, pytest's duration.
``render --results DIR --out docs/matrix.md [--cells JSON]``
    writes the Markdown table from every summary in DIR and in ``docs/data/matrix/`` (the committed
    summaries: cells run on other machines, such as the GPU test host's ``scripts/gpu-check``), and
    stores every summary it rendered in ``docs/data/matrix/``, so the page can be re-rendered anywhere.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

FRAMEWORKS = ["numpy", "torch", "jax", "jaxlib", "array-api-strict", "dask", "distributed", "ml_dtypes", "pluggy",
              "cupy-cuda12x", "cupy-cuda13x", "array-api-compat", "matplotlib", "pyarrow"]


def versions(out: Path, asked: list[str] | None = None) -> None:
    """Record versions and probed capabilities of the current environment."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for dist in FRAMEWORKS:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    caps: dict[str, str] = {}
    try:
        import arrayferry._capabilities as c

        for name in ("numpy", "torch", "jax", "array_api_strict"):
            try:
                __import__(name)
                caps[name] = c.capabilities(name).summary()
            except Exception as exc:  # a missing framework or plugin: not probed
                caps[name] = f"not probed ({type(exc).__name__})"
    except Exception as exc:
        caps["error"] = f"{type(exc).__name__}: {exc}"
    data = {"python": platform.python_version(), "versions": found, "asked": asked or [],
            "capabilities": {k: v for k, v in caps.items() if not v.startswith("not probed")}}
    out.write_text(json.dumps(data, indent=2))


def run_pytest(cell: str, xml: Path, versions_file: Path, out: Path, args: list[str]) -> int:
    """Run pytest (output streamed), then summarise; returns pytest's exit status.

    A crash (a signal, e.g. SIGSEGV) leaves no JUnit XML: the summary then names the signal and
    the test frames faulthandler printed.
    """
    import signal
    import subprocess
    import time

    xml.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", *args, f"--junitxml={xml}", "-o", "junit_family=xunit2"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    tail: collections.deque[str] = collections.deque(maxlen=400)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        tail.append(line.rstrip("\n"))
    rc = proc.wait()
    crash = None
    if rc < 0:
        try:
            crash = f"pytest crashed: {signal.Signals(-rc).name}"
        except ValueError:
            crash = f"pytest crashed: signal {-rc}"
        frames = [ln.strip() for ln in tail if ln.strip().startswith("File ") and "/site-packages/" not in ln]
        if frames:
            crash += " in " + " <- ".join(frames[:3])
    summarize(cell, xml, time.monotonic() - started, versions_file, out, rc=rc, crash=crash)
    return rc if rc >= 0 else 128 - rc


def summarize(cell: str, xml: Path, seconds: float, versions_file: Path | None, out: Path,
              rc: int | None = None, crash: str | None = None) -> dict[str, Any]:
    """Summarise one cell's JUnit XML."""
    import time

    data: dict[str, Any] = {"cell": cell, "pytest_seconds": round(seconds, 1), "pytest_rc": rc,
                            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if versions_file is not None and versions_file.exists():
        data.update(json.loads(versions_file.read_text()))
    if crash:
        data["crash"] = crash
    if not xml.exists():
        data.update(tests=0, note=crash or "no JUnit XML: pytest did not finish")
        out.write_text(json.dumps(data, indent=2))
        return data
    root = ET.parse(xml).getroot()
    counts = collections.Counter[str]()
    skips = collections.Counter[str]()
    xfails = collections.Counter[str]()
    failing: list[str] = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "errors"
                failing.append(f"{name} ({child.tag}: {(child.get('message') or '').splitlines()[0][:160] if child.get('message') else ''})")
                break
            if child.tag == "skipped":
                msg = child.get("message") or ""
                if child.get("type") == "pytest.xfail":
                    outcome = "xfailed"
                    xfails[msg[:200]] += 1
                else:
                    outcome = "skipped"
                    skips[msg[:200]] += 1
                break
        counts[outcome] += 1
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    data.update(
        tests=sum(counts.values()),
        passed=counts["passed"],
        failed=counts["failed"],
        errors=counts["errors"],
        skipped=counts["skipped"],
        xfailed=counts["xfailed"],
        skip_reasons=dict(skips.most_common()),
        xfail_reasons=dict(xfails.most_common()),
        failing=failing[:50],
        junit_seconds=round(sum(float(s.get("time", 0) or 0) for s in suites), 1),
    )
    out.write_text(json.dumps(data, indent=2))
    return data


SHOW_FAILING = 12
#: committed cell summaries (JSON), one file a cell: the page is rendered from these
COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "data" / "matrix"
#: the cells ``scripts/gpu-check`` adds (their names start with this)
GPU_PREFIX = "gpu-check"


def _slug_of(cell: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", cell).strip("-").lower()


INTRO = [
    "Cells: `minimums(torch=...)` installs exactly every declared minimum (`requirements/minimums.txt`: NumPy,",
    "pluggy, ml_dtypes, CuPy (planning and error paths: no GPU here), array-api-compat, matplotlib, JAX, Dask)",
    "on the oldest Python declared, with torch 2.13.0 (the CPU wheel; CI runs it) and with torch 2.11.0",
    "(torch's declared minimum, a CUDA build run on the CPU, tag `big`); `minimums-array-api-strict` does the",
    "same for that plugin, which raises NumPy's minimum (`requirements/minimums-arrayferry-array-api-strict.txt`).",
    "`gpu-host-versions` runs the GPU test host's releases on the CPU. `newest` asks pip for no",
    "version at all on the newest Python declared: it ran whatever the package index served on the date in its",
    "`run` column, and the versions column says what that was; rerun it (`nox -s matrix -- newest`) to test",
    "today's releases. Each session runs the core suite and every plugin's suite, one row each. The minimums",
    "are checked at run time too (`Adapter.min_version`, `arrayferry._capabilities.check_min_version`), and",
    "`tests/test_packaging.py` checks that every declared minimum is pinned in `requirements/minimums.txt`",
    "and shown passing here (`docs/matrix.json` holds these rows as data).",
    "",
    "Each cell also records what `arrayferry._capabilities` probed on its versions (\"Probed:\" lines below):",
    "the planner asks these answers (\"can read-only memory cross DLPack from NumPy into torch?\": yes, no or",
    "unknown, and unknown counts as no), never the version number. A failing or crashing cell fails `nox -s matrix`; a known, reported upstream bug is marked",
    "`xfail(strict=True)` naming the upstream issue, never skipped.",
    "",
    "Result legend: **CRASHED** = pytest died on a signal (the test frames are named below); **ERROR** = the",
    "session failed before pytest ran (usually an install); skipped = the cell's plugin is not in this checkout.",
]


def _status(d: dict[str, Any]) -> str:
    if d.get("crash"):
        return "**CRASHED**"
    if d.get("failed") or d.get("errors"):
        return "**FAILED**"
    if d.get("pytest_rc") == 5 or (d.get("pytest_rc") == 0 and not d.get("tests")):
        return "**FAILED** (no tests ran)"
    if d.get("rc") not in (None, 0) or d.get("pytest_rc") not in (None, 0):
        return "**FAILED**" if "pytest_rc" in d else "**ERROR** (before pytest)"
    if d.get("skipped_session"):
        return "skipped"
    return "passed"


_CODE = re.compile(
    r"'[^'\s]*[_.(\[][^'\s]*'"                             # a quoted name: 'array_api_strict', 'cuda-core[cu12]'
    r"|(?<![\w`.])(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*"       # an identifier, dotted or not ...
    r"(?:\([^()]*\))?"                                     # ... with its call's arguments
    r"(?<=[_)\w])(?![\w`])"
)


def _is_code(token: str) -> bool:
    """Names that read as code: dunders, snake_case, dotted paths, calls, quoted names."""
    if token.startswith("'") or "_" in token or "(" in token:
        return True
    return "." in token and all(len(seg) > 1 for seg in token.split("."))  # cupy.cuda, not e.g


def md_text(text: str) -> str:
    """Free text (skip reasons, probed capabilities) as Markdown that renders as written.

    Code-like names (``__dlpack__``, ``from_dlpack(copy, device)``, ``cupy.cuda.runtime``,
    ``'array_api_strict'``) go in backticks, so ``__dlpack__`` is not read as bold ``dlpack``;
    existing code spans are kept; ``*``, ``|``, ``<`` and ``>`` elsewhere are escaped.
    """
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for k, part in enumerate(parts):
        if k % 2:  # already a code span
            out.append(part)
            continue
        pieces = []
        last = 0
        for m in _CODE.finditer(part):
            if not _is_code(m.group(0)):
                continue
            pieces.append(_escape(part[last:m.start()]))
            pieces.append("`" + m.group(0) + "`")
            last = m.end()
        pieces.append(_escape(part[last:]))
        out.append("".join(pieces))
    return "".join(out)


def _escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("|", "\\|")
            .replace("<", "&lt;").replace(">", "&gt;"))


def cell_anchor(cell: str) -> str:
    """The id of a cell's details section: ``tests(numpy='1.26', torch='2.13')`` -> ``cell-tests-numpy-1-26-torch-2-13``."""
    return "cell-" + re.sub(r"[^a-z0-9]+", "-", cell.lower()).strip("-")


def _collect(*folders: Path) -> dict[str, dict[str, Any]]:
    """Every cell summary in ``folders``; a later folder's summary replaces an earlier one of its cell."""
    found: dict[str, dict[str, Any]] = {}
    for folder in folders:
        for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if f.name.endswith(".versions.json"):
                continue
            d = json.loads(f.read_text())
            if isinstance(d, dict) and "cell" in d:
                found[d["cell"]] = d
    return found


def render(results: Path, out: Path, order: list[str], committed: Path = COMMITTED) -> None:
    """Write docs/matrix.md from every summary in ``committed`` and ``results`` (a fresh result
    replaces the committed one of its cell), and store what it rendered in ``committed``, so the
    page can be re-rendered on any machine (cells of the GPU host included)."""
    found = _collect(committed, results)
    committed.mkdir(parents=True, exist_ok=True)
    order_file = committed / "_order.json"
    if order:
        order_file.write_text(json.dumps(order, indent=2) + "\n")
    elif order_file.exists():
        order = json.loads(order_file.read_text())
    for cell, d in found.items():
        target = committed / f"{_slug_of(cell)}.json"
        if not target.exists() or json.loads(target.read_text()) != d:
            target.write_text(json.dumps(d, indent=2) + "\n")
    out.write_text(render_found(found, order))
    # the rows as data (docs/matrix.json next to docs/matrix.md): what tests/test_packaging.py reads
    cells = [c for c in order if c in found] + sorted(c for c in found if c not in order)
    keep = ("cell", "session", "python", "versions", "asked", "finished", "passed", "failed", "errors", "skipped",
            "xfailed", "pytest_rc", "rc", "crash", "skipped_session")
    data = [{k: found[c][k] for k in keep if k in found[c]} | {"result": _status(found[c]).strip("*")} for c in cells]
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")


def render_text(results: Path, order: list[str]) -> str:
    """The Markdown of the matrix page from the summaries in ``results`` alone."""
    return render_found(_collect(results), order)


def render_found(found: dict[str, dict[str, Any]], order: list[str]) -> str:
    """The Markdown of the matrix page: a summary narrow enough for a 1280 px window (one row per
    cell: result and counts, linked to its details; the cell name as plain text, which wraps at
    its spaces, where a code span in a narrow column breaks letter by letter), then per cell its
    versions, run, probed capabilities, skip and xfail reasons and failing tests."""
    cells = [c for c in order if c in found] + sorted(c for c in found if c not in order)
    lines = [
        "# Test matrix",
        "",
        "Generated by `nox -s matrix` (scripts/matrix_report.py) from pytest's JUnit XML; do not edit by hand.",
        "Run one cell alone with `nox -s \"<cell>\"`; `nox -s matrix -- \"<cell>\" ...` reruns some cells and",
        "re-renders this page with every result kept in `.nox/matrix/`.",
        "",
        *INTRO,
        "",
        "| cell | result | passed | failed | skipped | xfailed | seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        d = found[c]
        failed = d.get("failed", 0) + d.get("errors", 0)
        lines.append(
            f"| [{_escape(c)}](#{cell_anchor(c)}) | {_status(d)} | {d.get('passed', 0)} | {failed} | "
            f"{d.get('skipped', 0)} | {d.get('xfailed', 0)} | {d.get('session_seconds', d.get('wall_seconds', d.get('junit_seconds', '')))} |"
        )
    lines += ["", "failed counts failures and errors; seconds is the whole session (install included) when "
              "`nox -s matrix` ran it, else pytest's time. Versions and the run date of each cell are in its details."]
    missing = [c for c in order if c not in found]
    if missing:
        lines += ["", "Not run yet: " + ", ".join(f"`{c}`" for c in missing) + "."]
    if not any(c.startswith(GPU_PREFIX) for c in cells):
        lines += ["", "GPU cells (`scripts/gpu-check` on the GPU test host: the `cuda`/`multigpu` tests, the conformance",
                  "kit on `cuda:0` and the suite on the host's versions): **not run yet** on a GPU. See",
                  "[devices](devices.md#what-has-run-on-a-gpu)."]
    probed: dict[str, str] = {}
    for c in cells:
        for summary in found[c].get("capabilities", {}).values():
            head, _, rest = summary.partition(": ")
            probed.setdefault(head, rest)
    if probed:
        lines += ["", "## DLPack capabilities, as probed per version", "",
                  "| framework version | probed (`arrayferry._capabilities`) |", "| --- | --- |"]
        lines += [f"| {md_text(k)} | {md_text(v)} |" for k, v in sorted(probed.items())]
    lines += ["", "## Details per cell", ""]
    for c in cells:
        d = found[c]
        lines.append(f"### `{c}` {{ #{cell_anchor(c)} }}")
        lines.append("")
        vers = ", ".join(f"{k} {v}" for k, v in d.get("versions", {}).items())
        lines.append(f"- Result: {_status(d)}; {d.get('tests', 0)} tests: {d.get('passed', 0)} passed, "
                     f"{d.get('failed', 0)} failed, {d.get('errors', 0)} errors, {d.get('skipped', 0)} skipped, "
                     f"{d.get('xfailed', 0)} xfailed")
        if vers or d.get("python"):
            lines.append(f"- Versions: Python {d.get('python', '?')}; {vers}")
        if d.get("finished") or d.get("junit_seconds") is not None:
            timing = ", ".join(x for x in (
                f"pytest {d['junit_seconds']} s" if d.get("junit_seconds") is not None else "",
                f"session {d.get('session_seconds', d.get('wall_seconds'))} s"
                if d.get("session_seconds", d.get("wall_seconds")) is not None else "") if x)
            lines.append(f"- Run: {d.get('finished') or 'date not recorded'}" + (f" ({timing})" if timing else ""))
        if d.get("note"):
            lines.append(f"- Note: {md_text(d['note'])}")
        if d.get("asked"):
            lines.append("- Asked pip for: " + ", ".join(f"`{a}`" for a in d["asked"])
                         + f"; ran on {d.get('finished', '?')} with Python {d.get('python', '?')}")
        if d.get("crash") and d["crash"] != d.get("note"):
            lines.append(f"- Crash: {md_text(d['crash'])}")
        for cap in d.get("capabilities", {}).values():
            lines.append(f"- Probed: {md_text(cap)}")
        for why, n in d.get("skip_reasons", {}).items():
            lines.append(f"- Skipped ({n}): {md_text(why)}")
        for why, n in d.get("xfail_reasons", {}).items():
            lines.append(f"- xfail ({n}): {md_text(why)}")
        failing = d.get("failing", [])
        for f in failing[:SHOW_FAILING]:
            lines.append(f"- Failing: `{f.replace('`', '')}`")
        more = d.get("failed", 0) + d.get("errors", 0) - min(len(failing), SHOW_FAILING)
        if more > 0:
            lines.append(f"- ... and {more} more failing (the cell's JUnit XML in `.nox/matrix/` has them all)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def rerender_committed(out: Path, committed: Path = COMMITTED) -> None:
    """Re-render ``out`` from the committed summaries alone (``docs/data/matrix/``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as empty:
        render(Path(empty), out, [], committed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("versions")
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--asked", default="[]", help="JSON list of the requirements the session asked pip for")
    p = sub.add_parser("pytest", help="run pytest for a cell and summarise it; arguments after -- go to pytest")
    p.add_argument("cell")
    p.add_argument("--junit", type=Path, required=True)
    p.add_argument("--versions", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("args", nargs=argparse.REMAINDER)
    s = sub.add_parser("summarize")
    s.add_argument("cell")
    s.add_argument("xml", type=Path)
    s.add_argument("--seconds", type=float, default=0.0)
    s.add_argument("--versions", type=Path)
    s.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("render")
    r.add_argument("--results", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--cells", default="[]", help="JSON list of cells in display order")
    r.add_argument("--committed", type=Path, default=COMMITTED,
                   help="the committed summaries to render with and update (default docs/data/matrix)")
    a = ap.parse_args(argv)
    if a.cmd == "versions":
        versions(a.out, json.loads(a.asked))
    elif a.cmd == "pytest":
        args = a.args[1:] if a.args[:1] == ["--"] else a.args
        return run_pytest(a.cell, a.junit, a.versions, a.out, args)
    elif a.cmd == "summarize":
        summarize(a.cell, a.xml, a.seconds, a.versions, a.out)
    else:
        render(a.results, a.out, json.loads(a.cells), a.committed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
