"""Benchmark: ``convert_tree`` on many small leaves against a hand-written loop of native calls.

``run(quick)`` returns one dict per case, in ``benchmarks/run.py``'s schema (times in ms)::

    {"name": "tree numpy->torch, 10000 leaves", "leaves": 10000, "value": ..., "unit": "ms",
     "baseline": ..., "baseline_name": "torch.from_numpy loop", "ratio": value / baseline,
     "target": "<= 1.3x the native loop", "passed": ...}

Times are the best of several interleaved repeats of converting the whole tree. The identity case
(numpy -> numpy against ``np.asarray``, a no-op) is a reference without a target. Run it alone with
``python benchmarks/bench_tree.py [--quick]``.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from typing import Any

__all__ = ["run"]


def _best(fn: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def _cases(n: int) -> list[tuple[str, Any, str, Callable[[], Any], Callable[[], Any], str]]:
    import numpy as np

    import arrayferry as af

    out: list[tuple[str, Any, str, Callable[[], Any], Callable[[], Any], str]] = []
    np_tree = {f"p{i}": np.full(4, i, dtype=np.float32) for i in range(n)}
    nested = [{"w": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float64), "name": f"l{i}"} for i in range(n // 2)]
    out.append((f"tree numpy->numpy (identity), {n} leaves", np_tree, "numpy",
                lambda: af.convert_tree(np_tree, "numpy"),
                lambda: {k: np.asarray(v) for k, v in np_tree.items()}, "np.asarray"))
    try:
        import torch
    except ImportError:
        return out
    out.append((f"tree numpy->torch, {n} leaves", np_tree, "torch",
                lambda: af.convert_tree(np_tree, "torch"),
                lambda: {k: torch.from_numpy(v) for k, v in np_tree.items()}, "torch.from_numpy"))
    t_tree = {k: torch.from_numpy(v) for k, v in np_tree.items()}
    out.append((f"tree torch->numpy, {n} leaves", t_tree, "numpy",
                lambda: af.convert_tree(t_tree, "numpy"),
                lambda: {k: v.numpy() for k, v in t_tree.items()}, "Tensor.numpy"))
    out.append((f"nested list of dicts numpy->torch, {n} array leaves", nested, "torch",
                lambda: af.convert_tree(nested, "torch"),
                lambda: [{"w": torch.from_numpy(d["w"]), "b": torch.from_numpy(d["b"]), "name": d["name"]} for d in nested],
                "torch.from_numpy"))
    return out


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time each case; ``quick`` uses 1,000 leaves and fewer repeats (a smoke run for CI)."""
    n = 1_000 if quick else 10_000
    repeat = 5 if quick else 15
    number = 3
    rows = []
    for name, _tree, _to, ours, native, native_name in _cases(n):
        ours()  # plan once (cached per signature), like any steady state
        native()
        t_ours = t_native = float("inf")
        for _ in range(repeat):  # interleaved: a noisy neighbour hits both alike
            t_ours = min(t_ours, _best(ours, number, 1))
            t_native = min(t_native, _best(native, number, 1))
        row: dict[str, Any] = {
            "name": name,
            "leaves": n,
            "value": t_ours * 1e3,
            "unit": "ms",
            "baseline": t_native * 1e3,
            "baseline_name": f"{native_name} loop",
            "ratio": t_ours / t_native if t_native else float("inf"),
        }
        if "identity" in name:
            row["note"] = "reference: np.asarray of an ndarray is a no-op"
        else:
            row["target"] = "<= 1.3x the native loop"
            row["passed"] = row["ratio"] <= 1.3
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    for row in run(quick):
        print(f"{row['name']:<58} arrayferry {row['value']:8.2f} ms   "
              f"{row['baseline_name']:<24} {row['baseline']:8.2f} ms   ratio {row['ratio']:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
