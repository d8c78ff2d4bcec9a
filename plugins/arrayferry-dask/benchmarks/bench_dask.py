"""Benchmark: chunk-wise conversion on a ``distributed.LocalCluster`` with 1 and 2 workers.

For each worker count, a float32 dask array is generated *on the workers* and persisted, then
``arrayferry_dask.convert_chunks(x, "torch", copy=...)`` is persisted (every chunk converted on
the worker that holds it) and timed; the baseline is the same graph with an identity
``map_blocks`` (dask's own scheduling cost), measured in the same run.

Self-contained: ``python plugins/arrayferry-dask/benchmarks/bench_dask.py [--quick] [--json F]``,
or ``run(quick)`` from a runner (``benchmarks/run.py`` calls it). Each result is a dict with
``name``, ``workers``, ``copy`` (``None`` or ``True``), ``chunks``, ``bytes``, ``seconds`` (median), ``baseline_seconds``,
``overhead_s`` (seconds over the baseline), ``gb_per_s`` and ``repeat``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

__all__ = ["run", "main"]


def _identity(block: Any) -> Any:
    return block


def _median_time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Run the benchmark; ``quick`` uses 16 MiB and 3 repeats instead of 128 MiB and 5."""
    import importlib

    import arrayferry_dask as afd

    # typed as Any: dask and distributed ship few annotations
    dask: Any = importlib.import_module("dask")
    da: Any = importlib.import_module("dask.array")
    distributed: Any = importlib.import_module("distributed")
    Client, LocalCluster, wait = distributed.Client, distributed.LocalCluster, distributed.wait

    n_bytes = (16 if quick else 128) * 2**20
    chunks = 16 if quick else 64
    repeat = 3 if quick else 5
    n = n_bytes // 4
    results: list[dict[str, Any]] = []
    for workers in (1, 2):
        with dask.config.set({"distributed.scheduler.work-stealing": False}), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                             dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
            x = da.random.default_rng(0).standard_normal(n, chunks=n // chunks, dtype="float32").persist()
            wait(x)
            wait(afd.convert_chunks(x, "torch").persist())  # warm-up: workers import torch, plans are built

            def persist(make: Any) -> None:
                y = make().persist()
                wait(y)
                del y

            # every timed graph gets fresh keys: the same deterministic keys persisted again could be
            # answered from results the scheduler has not released yet, timing nothing
            fresh = iter(range(10**9))

            base = _median_time(lambda: persist(lambda: x.map_blocks(_identity, name=f"bench-identity-{next(fresh)}")),
                                repeat)
            for copy in (None, True):
                secs = _median_time(
                    lambda c=copy: persist(lambda: afd.convert_chunks(x, "torch", copy=c, name=f"bench-to-torch-{next(fresh)}")),
                    repeat)
                results.append({
                    "name": f"dask convert_chunks numpy->torch copy={copy}",
                    "workers": workers,
                    "copy": copy,
                    "chunks": chunks,
                    "bytes": n * 4,
                    "seconds": secs,
                    "baseline_seconds": base,
                    "overhead_s": secs - base,
                    "gb_per_s": n * 4 / secs / 1e9,
                    "repeat": repeat,
                })
            client.cancel(x)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: print a table, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16 MiB, 3 repeats")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = ap.parse_args(argv)
    res = run(args.quick)
    print(f"{'benchmark':44} {'workers':>7} {'chunks':>6} {'MiB':>6} {'median s':>9} {'baseline s':>10} {'GB/s':>6}")
    for r in res:
        print(f"{r['name']:44} {r['workers']:>7} {r['chunks']:>6} {r['bytes'] / 2**20:>6.0f} "
              f"{r['seconds']:>9.4f} {r['baseline_seconds']:>10.4f} {r['gb_per_s']:>6.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
