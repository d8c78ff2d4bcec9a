"""Sources no plugin owns (``arrayferry.adapters.protocols``): what reading them costs.

Joined to ``benchmarks/run.py`` through its ``EXTRA`` list (``run(quick)``). Informational rows
(no target): the hot path of registered types does not reach the protocol adapters at all (the
``zero-copy`` rows of run.py measure it), so these rows only say what a protocol source adds over
the native call that reads the same object.
"""

from __future__ import annotations

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
    out = []
    for name, conv, nat, label in (
        ("protocol source: memoryview -> torch, zero-copy (16 x float32)", "convert_mv", "native_mv",
         "torch.from_numpy(np.asarray(mv))"),
        ("protocol source: list -> torch, one copy (16 floats)", "convert_list", "native_list",
         "torch.from_numpy(np.asarray(xs))"),
    ):
        c, n = m[conv] * 1e6, m[nat] * 1e6
        out.append({"name": name, "value": c, "unit": "us", "baseline": n, "baseline_name": label, "ratio": c / n,
                    "difference": c - n, "target": None, "passed": None,
                    "note": "informational: registered types never reach the protocol adapters"})
    return out
