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
first call, copies, import), any other NAME the label of that name; ``dask`` (workers, copy
policy, seconds beside the identity graph) and ``matrix`` (the numpy <-> torch cells of
``arrayferry matrix --json``: route, zero-copy, steps, convert beside the native call or why the
native call FAILS or is WRONG) have their own tables (:data:`RENDERERS`). A table row shows the figure,
the baseline measured in the same run, the ratio or difference, and the target with **pass** or
**missed**; no figure on the page is typed by hand. ``--check`` renders into memory and exits 1
when the page differs (or a recorded label has no block), like the other generators.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
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


def _seconds(v: float) -> str:
    return f"{v:.3f}"


def render_dask(entry: dict[str, Any]) -> str:
    """The ``dask`` label (``plugins/arrayferry-dask/benchmarks/bench_dask.py``): one row per worker
    count and copy policy, the conversion's graph beside the identity graph of the same run."""
    rows = entry["results"]
    repeats = {r["repeat"] for r in rows}
    median = f"median of {repeats.pop()}" if len(repeats) == 1 else "median"
    lines = [_env_line(entry["environment"], entry["command"]), "",
             f"| workers | copy | chunks | MiB | seconds ({median}) | identity baseline | over the baseline | GB/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        copy = r["copy"] if "copy" in r else r["name"].rsplit("copy=", 1)[-1]
        how = "None (zero-copy per chunk)" if copy in (None, "None") else str(copy)
        lines.append(f"| {r['workers']} | {how} | {r['chunks']} | {r['bytes'] / 2**20:.0f} | {_seconds(r['seconds'])} | "
                     f"{_seconds(r['baseline_seconds'])} | {r['seconds'] - r['baseline_seconds']:+.3f} | "
                     f"{r['gb_per_s']:.2f} |")
    return "\n".join(lines)


def _native_cell(r: dict[str, Any]) -> str:
    status, note = r.get("native_status"), r.get("native_note") or ""
    if status == "ok":
        return _num(r.get("baseline"), r.get("unit", "us"))
    if status == "fails":
        return f"FAILS ({_cell(note.split(':', 1)[0])})"
    if status == "wrong":
        return f"WRONG ({_cell(note)})"
    if status == "not run":
        return f"not run ({_cell(note)})"
    return "no native call"


def render_matrix(entry: dict[str, Any]) -> str:
    """The ``matrix`` label (``benchmarks/bench_matrix.py``, ``arrayferry matrix --json``): one table
    per (source, target) pair of the cells that ran, then the cells the source cannot hold, and a
    tally of what the run checked (values bit for bit, memory shared exactly when planned)."""
    rows = entry["results"]
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        pairs.setdefault((r["source"], r["to"]), []).append(r)
    repeats = sorted({r["repeat"] for r in rows})
    commands = sorted({r["command"] for r in rows})
    lines = [_env_line(entry["environment"], entry["command"]), "",
             f"Cells of `{'`, `'.join(commands)}` (run in a fresh process); times are medians of "
             f"{' or '.join(map(str, repeats))} batches."]
    for (src, to), cells in pairs.items():
        ran = [r for r in cells if r["status"] != "n/a"]
        natives = sorted({r["native"] for r in ran if r.get("native")})
        lines += ["", f"| {_cell(src)} → {_cell(to)} | route | zero-copy | steps | convert | "
                      f"{' / '.join(f'`{n}`' for n in natives) or 'native call'} | ratio |",
                  "|---|---|---|---|---|---|---|"]
        for r in ran:
            case = f"`{r['case']}`: {_cell(r['description'])}"
            if r["status"] != "ok":
                lines.append(f"| {case} | {r['status']} | | {_cell(r.get('reason') or '')} | | {_native_cell(r)} | |")
                continue
            zero = "yes" if r["zero_copy"] else "no"
            if r.get("plan_honest") is False:
                zero += " (memory disagrees with the plan)"
            steps = " → ".join(f"`{s}`" for s in r["steps"])
            conv = _num(r.get("value"), r.get("unit", "us"))
            if r.get("values_ok") is False:
                conv = f"WRONG VALUES ({_cell(r.get('reason') or '')}) {conv}"
            ratio = f"{r['ratio']:.1f}×" if r.get("ratio") is not None else ""
            lines.append(f"| {case} | {r['route']} | {zero} | {steps} | {conv} | {_native_cell(r)} | {ratio} |")
        na: dict[str, list[str]] = {}
        for r in cells:
            if r["status"] == "n/a":
                na.setdefault(r.get("reason") or "not applicable", []).append(f"`{r['case']}`")
        for reason, names in na.items():
            lines += ["", f"n/a with {_cell(src)} as the source: {', '.join(names)}; {_cell(reason)}."]
    ran = [r for r in rows if r["status"] == "ok"]
    same = [r for r in ran if r.get("values_ok") is True]
    compared = [r for r in ran if r.get("plan_honest") is not None]
    honest = [r for r in compared if r["plan_honest"]]
    bad = [r for r in ran if r.get("values_ok") is not True or r.get("plan_honest") is False]
    refused = [r for r in rows if r["status"] in ("refused", "error")]
    fails = [r for r in ran if r.get("native_status") == "fails"]
    wrong = [r for r in ran if r.get("native_status") == "wrong"]
    tally = (f"{len(ran)} cells converted: {len(same)} returned the source's values bit for bit; memory was "
             f"shared exactly when the plan said so in {len(honest)} of the {len(compared)} with pointers to compare")
    if bad:
        tally += " (not: " + "; ".join(_cell(r["name"]) for r in bad) + ")"
    if refused:
        tally += f"; {len(refused)} refused or failed"
    tally += (f". On the same cells the native call raised on {len(fails)} and returned a wrong or unsafe result "
              f"on {len(wrong)}.")
    lines += ["", tally]
    return "\n".join(lines)


#: blocks with their own table (block name -> renderer of the label of that name)
RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {"dask": render_dask, "matrix": render_matrix}


def render_doc(text: str, record: dict[str, Any]) -> str:
    """``text`` with every block whose labels are recorded rendered anew (others left as they are)."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        labels = GROUPS.get(name, (name,))
        if not any(lb in record for lb in labels):
            return m.group(0)
        body = RENDERERS[name](record[name]) if name in RENDERERS else render_block(record, labels)
        return f"<!-- bench:{name}:begin -->\n{body}\n<!-- bench:{name}:end -->"

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
