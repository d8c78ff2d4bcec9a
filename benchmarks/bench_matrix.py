"""The numpy <-> torch conversion matrix (``arrayferry matrix``) as the benchmark label ``matrix``.

Joined to ``benchmarks/run.py`` through its ``EXTRA`` list (``run(quick)``). Runs
``arrayferry matrix --frameworks numpy,torch --repeat 9 --json`` (``--repeat 3`` with ``--quick``)
in a fresh subprocess, so the cells are timed as a user's command times them (not after the
runner's other benchmarks warmed the plan cache), and returns one row per cell: the keys every
benchmark row has (``name``; ``value``, ``convert``'s median time in µs; ``baseline``, the native
call's; ``ratio``; ``note``) and the matrix's own (``source``, ``to``, ``case``,
``description``, ``status``, ``reason``, ``route``, ``zero_copy``, ``steps``, ``values_ok``,
``plan_honest``, ``native``, ``native_status``, ``native_note``), with ``repeat`` and the
``command`` that produced them. ``scripts/gen_bench_docs.py`` renders docs/benchmarks.md's
conversion-matrix tables from these rows. Informational: no row has a target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FRAMEWORKS = "numpy,torch"


def command(quick: bool) -> list[str]:
    """The ``arrayferry matrix`` arguments this benchmark runs."""
    return ["matrix", "--frameworks", FRAMEWORKS, "--repeat", "3" if quick else "9", "--json"]


def run(quick: bool) -> list[dict[str, Any]]:
    import arrayferry

    args = command(quick)
    # the subprocess imports the arrayferry this runner imported (a checkout's src/ before an installed copy)
    src = str(Path(arrayferry.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    p = subprocess.run([sys.executable, "-m", "arrayferry", *args], capture_output=True, text=True, env=env,
                       timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"arrayferry {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    data = json.loads(p.stdout)
    described = {c["name"]: c["description"] for c in data["cases"]}
    out: list[dict[str, Any]] = []
    for cell in data["rows"]:
        row: dict[str, Any] = {
            "name": f"matrix {cell['source']} -> {cell['target']}: {cell['case']}",
            "description": described.get(cell["case"], cell["case"]),
            "repeat": data["repeat"],
            "command": "arrayferry " + " ".join(args),
        }
        row["to"] = cell["target"]  # not "target": run.py's rows name their speed target so
        for key in ("source", "case", "status", "reason", "route", "zero_copy", "steps", "values_ok",
                    "plan_honest", "native", "native_status", "native_note"):
            row[key] = cell[key]
        if cell["convert_us"] is not None:
            row["value"], row["unit"] = cell["convert_us"], "us"
        if cell["native_us"] is not None:
            row["baseline"], row["baseline_name"] = cell["native_us"], cell["native"]
        if cell["ratio"] is not None:
            row["ratio"] = cell["ratio"]
        if cell["status"] != "ok":
            row["note"] = f"{cell['status']}: {cell['reason']}"
        else:
            row["note"] = f"route {cell['route']}, zero-copy {cell['zero_copy']}, steps {' -> '.join(cell['steps'])}"
            if cell["native_status"] != "ok":
                row["note"] += f"; {cell['native']} {cell['native_status']}: {cell['native_note']}"
        out.append(row)
    if not out:
        raise RuntimeError(f"arrayferry {' '.join(args)} gave no cells (frameworks: {data.get('frameworks')})")
    return out
