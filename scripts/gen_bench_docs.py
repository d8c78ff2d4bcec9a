"""Render a section of docs/benchmarks.md from the JSON that ``benchmarks/run.py --json`` writes.

    python benchmarks/run.py --only casts --json bench.json
    python scripts/gen_bench_docs.py bench.json --section casts

replaces what lies between ``<!-- bench:casts:begin -->`` and ``<!-- bench:casts:end -->`` in
docs/benchmarks.md with a table of that run's figures (each beside the baseline measured in the
same run) and the environment they were measured in, so no figure is typed by hand.
``--check`` exits 1 when the markers are missing, without writing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def _num(v: Any, unit: str) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        text = f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    else:
        text = str(v)
    return f"{text} {unit}".strip()


def render(data: dict[str, Any], section: str) -> str:
    env = data["environment"]
    rows = data["results"].get(section)
    if rows is None:
        raise SystemExit(f"{section!r} is not in the results (ran: {', '.join(data['results']) or 'nothing'})")
    soft = ", ".join(f"{k} {env[k]}" for k in ("python", "numpy", "torch") if env.get(k))
    lines = [
        f"Run on {env['date']} with `python benchmarks/run.py --only {section}`; "
        f"{env.get('cpus', '?')} CPU cores ({env.get('processor', '?')}), {soft}"
        + (f", torch with {env['torch_threads']} threads" if env.get("torch_threads") else "") + ".",
        "",
        "| benchmark | arrayferry | baseline, same run | ratio | how | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = {True: "**pass**", False: "**missed**", None: ""}[r.get("passed")]
        target = f"{r['target']}: {verdict}" if r.get("target") else "(reference)"
        base = f"{r.get('baseline_name', '')} {_num(r.get('baseline'), r.get('unit', ''))}".strip()
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") is not None else ""
        name = str(r["name"]).replace("|", "\\|")
        note = str(r.get("note", "")).replace("|", "\\|")
        lines.append(f"| {name} | {_num(r.get('value'), r.get('unit', ''))} | {base} | {ratio} | {note} | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, help="the file benchmarks/run.py --json wrote")
    ap.add_argument("--section", required=True, help="a benchmark label (casts, copies, ...)")
    ap.add_argument("--doc", type=Path, default=DOC)
    ap.add_argument("--check", action="store_true", help="only check that the markers exist")
    args = ap.parse_args(argv)
    text = args.doc.read_text()
    begin, end = f"<!-- bench:{args.section}:begin -->", f"<!-- bench:{args.section}:end -->"
    if begin not in text or end not in text:
        print(f"{args.doc} has no {begin} ... {end} markers", file=sys.stderr)
        return 1
    if args.check:
        return 0
    table = render(json.loads(args.json.read_text()), args.section)
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    args.doc.write_text(f"{head}{begin}\n{table}\n{end}{tail}")
    print(f"{args.doc}: section {args.section!r} rendered from {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
