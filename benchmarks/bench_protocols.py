"""Sources no plugin owns (``arrayferry.adapters.protocols``): what reading them costs.

Joined to ``benchmarks/run.py`` through its ``EXTRA`` list (``run(quick)``). Informational rows
(no target): the hot path of registered types does not reach the protocol adapters at all
(``tests/test_protocol_cost.py`` makes the protocol lookup raise and converts every registered
type); the first row measures that path again once protocol sources of nine types have been
detected, in the same way as run.py's ``zero-copy`` rows, and ``docs/benchmarks.md`` renders both
labels of one run side by side (``python benchmarks/run.py --only zero_copy,protocols``). The
other rows say what a protocol source adds over the native call that reads the same object.
"""

from __future__ import annotations

import array
import statistics
import timeit
from collections.abc import Callable
from typing import Any


def _interleaved(fns: dict[str, Callable[[], Any]], number: int, repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    timers = {k: timeit.Timer(f) for k, f in fns.items()}
    for _ in range(repeat):
        for k, t in timers.items():
            times[k].append(t.timeit(number) / number)
    return {k: statistics.median(v) for k, v in times.items()}


def run(quick: bool) -> list[dict[str, Any]]:
    import numpy as np
    import torch

    import arrayferry as af

    base = np.arange(16, dtype=np.float32)
    mv = memoryview(base)
    xs = [float(i) for i in range(16)]
    assert af.plan(mv, "torch").zero_copy and not af.plan(xs, "torch").zero_copy
    assert af.convert(mv, "torch").data_ptr() == base.ctypes.data
    number, repeat = (2000, 5) if quick else (10000, 11)
    m = _interleaved(
        {
            "native_mv": lambda: torch.from_numpy(np.asarray(mv)),
            "convert_mv": lambda: af.convert(mv, "torch"),
            "native_list": lambda: torch.from_numpy(np.asarray(xs)),
            "convert_list": lambda: af.convert(xs, "torch"),
        },
        number,
        repeat,
    )
    # the registered path once protocol sources of several types have been detected in this process:
    # measured like run.py's zero-copy rows (fastest of interleaved batches), to set beside them
    seen = (mv, xs, b"abcd", bytearray(8), 1.5, 3, np.float32(2.0), (1, 2), array.array("d", [1.0]))
    for o in seen:
        af.convert(o, "torch")
    kinds = len({type(o) for o in seen})
    x = np.arange(16, dtype=np.float32)
    af.convert(x, "torch")
    fast_n, fast_r = (1000, 40) if quick else (1000, 300)
    timers = {"from_numpy": timeit.Timer(lambda: torch.from_numpy(x)),
              "convert": timeit.Timer(lambda: af.convert(x, "torch"))}
    fastest = {k: float("inf") for k in timers}
    for _ in range(fast_r):
        for k, t in timers.items():
            fastest[k] = min(fastest[k], t.timeit(fast_n) / fast_n)
    c, n = fastest["convert"] * 1e6, fastest["from_numpy"] * 1e6
    out = [{"name": 'registered type after protocol sources: zero-copy convert(x, "torch") (16 x float32)',
            "value": c, "unit": "us", "baseline": n, "baseline_name": "torch.from_numpy", "ratio": c / n,
            "difference": c - n, "target": None, "passed": None,
            "note": (f"fastest of {fast_r} interleaved batches of {fast_n}, after {kinds} protocol source types were "
                     "converted; compare the zero-copy row above (same run)")}]
    for name, conv, nat, label in (
        ("protocol source: memoryview -> torch, zero-copy (16 x float32)", "convert_mv", "native_mv",
         "torch.from_numpy(np.asarray(mv))"),
        ("protocol source: list -> torch, one copy (16 floats)", "convert_list", "native_list",
         "torch.from_numpy(np.asarray(xs))"),
    ):
        c, n = m[conv] * 1e6, m[nat] * 1e6
        out.append({"name": name, "value": c, "unit": "us", "baseline": n, "baseline_name": label, "ratio": c / n,
                    "difference": c - n, "target": None, "passed": None,
                    "note": f"median of {repeat} interleaved batches of {number}"})
    return out
