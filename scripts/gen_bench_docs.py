"""Render docs/benchmarks.md's figures from the JSON that ``benchmarks/run.py --json`` writes.

    python benchmarks/run.py --json bench.json              # or --only zero_copy,accepts,...
    python scripts/gen_bench_docs.py bench.json             # record every section of that run
    python scripts/gen_bench_docs.py bench.json --section casts   # record only some sections
    python scripts/gen_bench_docs.py                        # re-render from the record
    python scripts/gen_bench_docs.py --check                # exit 1 when the page is stale

The record, ``docs/data/bench.json``, keeps the latest run of each benchmark label (``zero_copy``,
``accepts``, ``first_call``, ``copies``, ``import``, ``casts``, ``convert_tree``, ...) with the
environment it ran in, so labels measured on different runs keep their own date, machine and
versions. Each ``<!-- bench:NAME:begin -->`` ... ``<!-- bench:NAME:end -->`` block of the page is
rendered from it: ``main`` holds the labels of :data:`GROUPS` ``["main"]`` (the hot path, the
first call, copies, import), any other NAME the label of that name. A table row shows the figure,
the baseline measured in the same run, the ratio or difference, and the target with **pass** or
**missed**; no figure on the page is typed by hand. ``--check`` renders into memory and exits 1
when the page differs (or a recorded label has no block), like the other generators.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
DATA = ROOT / "docs" / "data" / "bench.json"

#: block name -> the labels it shows, in order (a block not named here shows the label of its name)
GROUPS: dict[str, tuple[str, ...]] = {
    "main": ("zero_copy", "accepts", "first_call", "copies", "import"),
    # the registered zero-copy rows beside the protocol sources' rows (record both from one run)
    "protocols": ("zero_copy", "protocols"),
}

_BLOCK = re.compile(r"<!-- bench:([A-Za-z0-9_]+):begin -->\n?(.*?)<!-- bench:\1:end -->", re.S)
_UNITS = {"us": "µs"}


def _num(v: Any, unit: str) -> str:
    if v is None:
        return ""
    unit = _UNITS.get(unit, unit)
    if isinstance(v, float):
        text = f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    else:
        text = str(v)
    return f"{text} {unit}".strip()


def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|")


def _env_line(env: dict[str, Any], command: str) -> str:
    soft = ", ".join(f"{k} {env[k]}" for k in ("python", "arrayferry", "numpy", "torch") if env.get(k))
    machine = f"{env.get('cpus', '?')} CPU cores ({env.get('cpu_model') or env.get('processor', '?')})"
    if env.get("platform"):
        machine += f", {env['platform']}"
    load = f", load average {env['loadavg']}" if env.get("loadavg") else ""
    threads = f", torch with {env['torch_threads']} threads" if env.get("torch_threads") else ""
    return f"Run on {env['date']} with `{command}`; {machine}{load}; {soft}{threads}."


def render_rows(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        verdict = {True: "**pass**", False: "**missed**", None: ""}[r.get("passed")]
        target = f"{_cell(r['target'])}: {verdict}" if r.get("target") else "(reference)"
        unit = r.get("unit", "")
        base = f"{r.get('baseline_name', '')} {_num(r.get('baseline'), unit)}".strip()
        result = f"{r['ratio']:.2f}×" if r.get("ratio") is not None else ""
        if r.get("difference") is not None:
            diff = f"{r['difference']:+.2f} {_UNITS.get(unit, unit)}".strip()
            result = f"{diff} ({result})" if result else diff
        out.append(f"| {_cell(r['name'])} | {_num(r.get('value'), unit)} | {_cell(base)} | {result} | "
                   f"{_cell(r.get('note', ''))} | {target} |")
    return out


def render_block(record: dict[str, Any], labels: tuple[str, ...]) -> str:
    """The Markdown of one block: the environment line(s), the table, and the targets' tally."""
    present = [lb for lb in labels if lb in record]
    if not present:
        raise SystemExit(f"none of {', '.join(labels)} is recorded in {DATA.relative_to(ROOT)}")
    envs: dict[str, list[str]] = {}
    for lb in present:
        envs.setdefault(_env_line(record[lb]["environment"], record[lb]["command"]), []).append(lb)
    lines = []
    for line, lbs in envs.items():
        lines.append(line if len(envs) == 1 else f"{', '.join(lbs)}: {line}")
    lines += ["", "| benchmark | arrayferry | baseline, same run | ratio / difference | how | target |",
              "|---|---|---|---|---|---|"]
    rows = [r for lb in present for r in record[lb]["results"]]
    lines += render_rows(rows)
    met = [r for r in rows if r.get("passed") is True]
    missed = [r for r in rows if r.get("passed") is False]
    tally = f"Targets: {len(met)} met, {len(missed)} missed"
    if missed:
        tally += " (" + "; ".join(_cell(r["name"]) for r in missed) + ")"
    lines += ["", tally + "."]
    missing = [lb for lb in labels if lb not in record]
    if missing:
        lines += ["", f"Not recorded yet: {', '.join(missing)}."]
    return "\n".join(lines)


def render_doc(text: str, record: dict[str, Any]) -> str:
    """``text`` with every block whose labels are recorded rendered anew (others left as they are)."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        labels = GROUPS.get(name, (name,))
        if not any(lb in record for lb in labels):
            return m.group(0)
        return f"<!-- bench:{name}:begin -->\n{render_block(record, labels)}\n<!-- bench:{name}:end -->"

    return _BLOCK.sub(sub, text)


def merge(record: dict[str, Any], run: dict[str, Any], sections: list[str] | None) -> list[str]:
    """Copy the labels of ``run`` (all, or ``sections``) into ``record``; return those copied."""
    results: dict[str, Any] = run["results"]
    chosen = sections if sections is not None else list(results)
    missing = [s for s in chosen if s not in results]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not in the results (ran: {', '.join(results) or 'nothing'})")
    env = run["environment"]
    command = env.get("command") or "python benchmarks/run.py" + (f" --only {','.join(results)}" if results else "")
    for lb in chosen:
        record[lb] = {"environment": env, "command": command, "results": results[lb]}
    return chosen


def _blocks(text: str) -> set[str]:
    return {m.group(1) for m in _BLOCK.finditer(text)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, nargs="?", help="a file benchmarks/run.py --json wrote, to record")
    ap.add_argument("--section", action="append", help="record only this label (repeatable; default: every label of the run)")
    ap.add_argument("--doc", type=Path, default=DOC)
    ap.add_argument("--data", type=Path, default=DATA, help="the record (default docs/data/bench.json)")
    ap.add_argument("--check", action="store_true", help="exit 1 when the page is not what the record renders")
    args = ap.parse_args(argv)
    text = args.doc.read_text()
    record: dict[str, Any] = json.loads(args.data.read_text()) if args.data.is_file() else {}
    shown = {lb for name in _blocks(text) for lb in GROUPS.get(name, (name,))}
    if args.check:
        problems = [f"{lb} is recorded but {args.doc} has no block for it" for lb in record if lb not in shown]
        if args.section:
            problems += [f"{args.doc} has no <!-- bench:{s}:begin --> ... end markers" for s in args.section
                         if s not in shown]
        if render_doc(text, record) != text:
            problems.append(f"{args.doc} is stale: run python scripts/gen_bench_docs.py")
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    if args.json is not None:
        run = json.loads(args.json.read_text())
        chosen = merge(record, run, args.section)
        unshown = [lb for lb in chosen if lb not in shown]
        if unshown:
            print(f"{args.doc} has no block for {', '.join(unshown)} (add <!-- bench:NAME:begin --> ... end)",
                  file=sys.stderr)
            return 1
        args.data.parent.mkdir(parents=True, exist_ok=True)
        args.data.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"{args.data}: recorded {', '.join(chosen)} from {args.json}")
    args.doc.write_text(render_doc(text, record))
    print(f"{args.doc}: rendered from {args.data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
