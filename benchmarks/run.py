"""arrayferry benchmarks: ratios and differences against the native call measured in the same run.

Run ``python benchmarks/run.py`` (``nox -s bench``), ``--quick`` for a short run, ``--json FILE``
to save the figures. Targets (from the project brief):

* zero-copy ``convert`` numpy->torch and torch->numpy of a 16-element float32 array: within
  0.3 us of ``torch.from_numpy`` / ``Tensor.numpy()``; a pre-bound ``converter("torch")`` /
  ``converter("numpy")`` within 0.15 us (``zero_copy``);
* ``@accepts("torch")`` on a function of two arrays called with NumPy arrays: within 2 us of the
  same function called with the conversions written by hand (``accepts``);
* the first conversion in a fresh process (``import arrayferry``, the registry, the first plan;
  entry-point plugins load on first need, so a conversion between built-in frameworks does not
  discover them): within 10 ms of the native first call (``first_call``, subprocesses; a second
  row, without a target, times it with every plugin loaded first);
* 64 MiB copies (``convert(x, "torch", copy=True)``; a read-only source with ``copy=None``):
  at least as fast as ``np.copy``;
* ``python -c "import arrayferry"``: at most 25 ms over ``python -c "import numpy"``, and no
  torch imported;
* 64 MiB ``dtype=`` casts: the host-side cast costs at most 10 % over torch's own cast where both
  are exact, and the casting policy's range check at most 10 % of the cast (``casts``).

Other benchmark modules join through :data:`EXTRA`: each entry names a file exposing
``run(quick: bool) -> list[dict]``; a missing file is skipped, a failing one reported. Each dict
should hold ``name`` and may hold ``value``, ``unit``, ``baseline``, ``ratio``, ``target``,
``passed`` (``True``/``False``/``None``) and ``note``. Benchmarks of this file are listed in
:data:`BENCHMARKS` (the same signature), so adding one is appending a function.

Exit status: 0 when every benchmark ran (a missed target prints FAIL but does not fail the run,
since timings on shared machines are noisy; ``--strict`` makes a missed target exit 1).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Result = dict[str, Any]


def _median_per_call(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Median seconds per call over ``repeat`` timeit batches of ``number`` calls."""
    t = timeit.Timer(fn)
    return statistics.median(x / number for x in t.repeat(repeat=repeat, number=number))


def _interleaved(fns: dict[str, Callable[[], Any]], number: int, repeat: int) -> dict[str, float]:
    """Median seconds per call of each function, batches interleaved so drift hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    timers = {k: timeit.Timer(f) for k, f in fns.items()}
    for _ in range(repeat):
        for k, t in timers.items():
            times[k].append(t.timeit(number) / number)
    return {k: statistics.median(v) for k, v in times.items()}


def _interleaved_min(fns: dict[str, Callable[[], Any]], number: int, repeat: int) -> dict[str, float]:
    """Fastest seconds per call of each function over ``repeat`` interleaved batches of ``number``:
    on a shared machine the minimum is the run least disturbed by neighbours, for every function alike."""
    best: dict[str, float] = {k: float("inf") for k in fns}
    timers = {k: timeit.Timer(f) for k, f in fns.items()}
    for _ in range(repeat):
        for k, t in timers.items():
            best[k] = min(best[k], t.timeit(number) / number)
    return best


# ------------------------------------------------------------------------------------------------
# zero-copy overhead


def bench_zero_copy(quick: bool) -> list[Result]:
    """convert numpy<->torch of a 16-element float32 array, and a pre-bound converter, vs torch.from_numpy / Tensor.numpy()."""
    import numpy as np
    import torch

    import arrayferry as af

    x = np.arange(16, dtype=np.float32)
    t = torch.arange(16, dtype=torch.float32)
    assert af.plan(x, "torch").zero_copy and af.plan(t, "numpy").zero_copy
    to_torch, to_numpy = af.converter("torch"), af.converter("numpy")
    assert to_torch(x).data_ptr() == x.ctypes.data and to_numpy(t).ctypes.data == t.data_ptr()
    af.convert(x, "torch")
    af.convert(t, "numpy")
    number, repeat = (1000, 40) if quick else (1000, 300)
    m = _interleaved_min(
        {
            "from_numpy": lambda: torch.from_numpy(x),
            "convert_np_torch": lambda: af.convert(x, "torch"),
            "converter_np_torch": lambda: to_torch(x),
            "tensor_numpy": lambda: t.numpy(),
            "convert_torch_np": lambda: af.convert(t, "numpy"),
            "converter_torch_np": lambda: to_numpy(t),
        },
        number,
        repeat,
    )
    out = []
    for name, conv, nat, label, limit in (
        ('zero-copy convert(x, "torch") (16 x float32)', "convert_np_torch", "from_numpy", "torch.from_numpy", 0.3),
        ('zero-copy convert(t, "numpy") (16 x float32)', "convert_torch_np", "tensor_numpy", "Tensor.numpy()", 0.3),
        ('converter("torch")(x), pre-bound (16 x float32)', "converter_np_torch", "from_numpy", "torch.from_numpy", 0.15),
        ('converter("numpy")(t), pre-bound (16 x float32)', "converter_torch_np", "tensor_numpy", "Tensor.numpy()", 0.15),
    ):
        c, n = m[conv] * 1e6, m[nat] * 1e6
        over = c - n
        out.append({
            "name": name, "value": c, "unit": "us", "baseline": n, "baseline_name": label,
            "ratio": c / n, "difference": over, "target": f"overhead <= {limit} us", "passed": over <= limit,
            "note": f"fastest of {repeat} interleaved batches of {number}",
        })
    return out


# ------------------------------------------------------------------------------------------------
# @accepts


def bench_accepts(quick: bool) -> list[Result]:
    """@accepts("torch") on f(a, b) called with two NumPy arrays vs the same body with the conversions by hand."""
    import numpy as np
    import torch

    import arrayferry as af

    def body(a: Any, b: Any) -> Any:
        return a + b

    wrapped = af.accepts("torch")(body)

    def by_hand(a: Any, b: Any) -> Any:
        return body(torch.from_numpy(a), torch.from_numpy(b)).numpy()

    x = np.arange(16, dtype=np.float32)
    y = np.ones(16, dtype=np.float32)
    assert np.array_equal(wrapped(x, y), by_hand(x, y)) and type(wrapped(x, y)) is np.ndarray
    number, repeat = (500, 40) if quick else (500, 300)
    m = _interleaved_min({"hand": lambda: by_hand(x, y), "accepts": lambda: wrapped(x, y)}, number, repeat)
    a, h = m["accepts"] * 1e6, m["hand"] * 1e6
    return [{
        "name": "@accepts('torch'), two NumPy arrays in, one back (16 x float32)", "value": a, "unit": "us",
        "baseline": h, "baseline_name": "torch.from_numpy x2, body, Tensor.numpy()", "ratio": a / h,
        "difference": a - h, "target": "overhead <= 2 us", "passed": a - h <= 2.0,
        "note": f"fastest of {repeat} interleaved batches of {number}",
    }]


# ------------------------------------------------------------------------------------------------
# the first conversion in a fresh process

_FIRST_NATIVE = """
import time, numpy as np, torch
x = np.arange(16, dtype=np.float32)
t0 = time.perf_counter()
y = torch.from_numpy(x)
print(time.perf_counter() - t0)
"""
_FIRST_AF = """
import time, numpy as np, torch
x = np.arange(16, dtype=np.float32)
t0 = time.perf_counter()
import arrayferry as af
y = af.convert(x, "torch")
print(time.perf_counter() - t0)
"""
# the same, with every plugin loaded first (the entry-point scan and each plugin's import): what
# the first conversion costs when it needs a plugin
_FIRST_AF_PLUGINS = _FIRST_AF.replace(
    "import arrayferry as af\n", "import arrayferry as af\naf.broken_plugins()  # loads every plugin\n")


def _first_ms(code: str) -> float:
    # bytecode caches allowed, as in an installed package (PYTHONDONTWRITEBYTECODE would make
    # every run compile arrayferry's sources)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(p.stdout.strip().splitlines()[-1]) * 1e3


def bench_first_call(quick: bool) -> list[Result]:
    """The first convert(x, "torch") in a fresh process (import, registry, first plan) vs the first torch.from_numpy; also with every plugin loaded first."""
    runs = 5 if quick else 15
    _first_ms(_FIRST_AF)  # warm the file cache and write the bytecode caches
    _first_ms(_FIRST_AF_PLUGINS)
    _first_ms(_FIRST_NATIVE)
    af_t, nat_t, all_t = [], [], []
    for _ in range(runs):  # interleaved, so a noisy neighbour hits all
        nat_t.append(_first_ms(_FIRST_NATIVE))
        af_t.append(_first_ms(_FIRST_AF))
        all_t.append(_first_ms(_FIRST_AF_PLUGINS))
    val, base, every = min(af_t), min(nat_t), min(all_t)
    return [{
        "name": 'first convert(x, "torch") in a fresh process, numpy and torch already imported',
        "value": val, "unit": "ms", "baseline": base, "baseline_name": "first torch.from_numpy(x)",
        "difference": val - base, "target": "<= 10 ms over the native first call", "passed": val - base <= 10.0,
        "note": f"fastest of {runs} subprocesses each; includes import arrayferry (median {statistics.median(af_t):.1f} ms); "
                "entry-point plugins load on first need, not here",
    }, {
        "name": 'first convert(x, "torch") in a fresh process, every plugin loaded first (arrayferry.broken_plugins())',
        "value": every, "unit": "ms", "baseline": base, "baseline_name": "first torch.from_numpy(x)",
        "difference": every - base,
        "note": f"fastest of {runs} subprocesses; adds the entry-point scan of the installed distributions and "
                f"each plugin's import and registration (median {statistics.median(all_t):.1f} ms)",
    }]


# ------------------------------------------------------------------------------------------------
# 64 MiB copies


def bench_copies(quick: bool) -> list[Result]:
    """64 MiB copies in GB/s: convert(copy=True), read-only source with copy=None, natives."""
    import numpy as np
    import torch

    import arrayferry as af

    n = (64 << 20) // 4
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    ro = x.copy()
    ro.flags.writeable = False
    assert not af.plan(x, "torch", copy=True).zero_copy and not af.plan(ro, "torch").zero_copy
    r = af.convert(ro, "torch")
    assert r.data_ptr() != ro.ctypes.data and np.array_equal(r.numpy(), ro)
    number, repeat = (1, 5) if quick else (2, 11)
    fns: dict[str, Callable[[], Any]] = {
        "np.copy(x)": lambda: np.copy(x),
        "convert(x, 'torch', copy=True)": lambda: af.convert(x, "torch", copy=True),
        "convert(read-only x, 'torch')": lambda: af.convert(ro, "torch"),
        "torch.tensor(x)": lambda: torch.tensor(x),
        "torch.from_numpy(np.copy(x))": lambda: torch.from_numpy(np.copy(x)),
    }
    for f in fns.values():  # warm up the allocator and the plan cache
        f()
    gc.collect()
    m = _interleaved(fns, number, repeat)
    nbytes = x.nbytes
    base = nbytes / m["np.copy(x)"] / 1e9
    out = []
    for k, s in m.items():
        gbs = nbytes / s / 1e9
        res: Result = {"name": f"64 MiB copy: {k}", "value": gbs, "unit": "GB/s", "baseline": base,
                       "baseline_name": "np.copy(x)", "ratio": gbs / base}
        if k.startswith("convert"):
            # "at least as fast as np.copy", with 5 % allowance for timer noise on a shared machine
            res["target"] = ">= np.copy (within 5 % noise)"
            res["passed"] = gbs >= 0.95 * base
        out.append(res)
    return out


# ------------------------------------------------------------------------------------------------
# import time


def _import_ms(code: str, runs: int) -> tuple[float, str]:
    times = []
    last = ""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        times.append((time.perf_counter() - t0) * 1e3)
        last = p.stdout.strip()
    return statistics.median(times), last


def bench_import(quick: bool) -> list[Result]:
    """``python -c "import arrayferry"`` over ``python -c "import numpy"`` (median of subprocess runs)."""
    runs = 7 if quick else 15
    _import_ms("import numpy", 2)  # warm the file cache
    _import_ms("import arrayferry", 2)
    # interleave the two so a noisy neighbour hits both
    np_t, af_t = [], []
    for _ in range(runs):
        np_t.append(_import_ms("import numpy", 1)[0])
        af_t.append(_import_ms("import arrayferry", 1)[0])
    base, val = statistics.median(np_t), statistics.median(af_t)
    both = statistics.median(_import_ms("import numpy, arrayferry", 1)[0] for _ in range(runs))
    _, mods = _import_ms(
        "import sys, arrayferry; print(','.join(m for m in ('torch','jax','cupy','dask','pluggy','numpy') if m in sys.modules))",
        1,
    )
    heavy = [m for m in mods.split(",") if m in ("torch", "jax", "cupy", "dask")]
    return [
        {"name": "import arrayferry (subprocess)", "value": val, "unit": "ms", "baseline": base,
         "baseline_name": "import numpy", "difference": val - base, "target": "<= 25 ms over import numpy",
         "passed": val - base <= 25.0,
         "note": "arrayferry imports numpy lazily, so this can be below import numpy"},
        {"name": "import numpy, arrayferry (subprocess)", "value": both, "unit": "ms", "baseline": base,
         "baseline_name": "import numpy", "difference": both - base,
         "target": "<= 25 ms over import numpy", "passed": both - base <= 25.0},
        {"name": "import arrayferry imports no framework", "value": None, "unit": "",
         "note": f"modules present after import: {mods or 'none'}", "target": "no torch/jax/cupy/dask",
         "passed": not heavy},
    ]


# ------------------------------------------------------------------------------------------------
# casts: where they run, and what the casting policy's value check costs


def bench_casts(quick: bool) -> list[Result]:
    """64 MiB dtype= casts: the host-side (NumPy) cast vs torch's own cast; the range check vs casting='unsafe'."""
    import numpy as np
    import torch

    import arrayferry as af

    n = (64 << 20) // 8
    rng = np.random.default_rng(0)
    f64 = rng.standard_normal(n) * 100.0  # every value in range of every target below
    i64 = rng.integers(-100, 100, n)
    f32 = f64.astype(np.float32)
    t64 = torch.from_numpy(f64)
    number, repeat = (1, 5) if quick else (1, 11)
    out: list[Result] = []

    # 1. where both casts are exact (torch's cast of these pairs matches NumPy's bit for bit), the
    #    host-side cast arrayferry plans against torch's own cast of the same host memory
    pairs: list[tuple[str, Any, str, Any]] = [
        ("float64 -> float32", f64, "float32", torch.float32),
        ("float32 -> float64", f32, "float64", torch.float64),
        ("int64 -> int32", i64, "int32", torch.int32),
    ]
    for label, x, dst, tdt in pairs:
        src_t = torch.from_numpy(x)
        y = af.convert(x, "torch", dtype=dst)
        assert y.dtype == tdt and torch.equal(y, src_t.to(tdt))
        m = _interleaved({"af": lambda x=x, dst=dst: af.convert(x, "torch", dtype=dst),
                          "torch": lambda src_t=src_t, tdt=tdt: src_t.to(tdt)}, number, repeat)
        a_ms, t_ms = m["af"] * 1e3, m["torch"] * 1e3
        out.append({"name": f"64 MiB cast {label}: convert(x, 'torch', dtype=) (host cast, range-checked)",
                    "value": a_ms, "unit": "ms", "baseline": t_ms,
                    "baseline_name": f"torch.from_numpy(x).to(torch.{dst}) ({torch.get_num_threads()} threads)",
                    "ratio": a_ms / t_ms, "target": "<= 1.10x torch's own cast", "passed": a_ms <= 1.10 * t_ms})
    # torch -> torch float16: torch's own cast rounds twice, so the plan casts with NumPy instead
    y = af.convert(t64, "torch", dtype="float16")
    assert np.array_equal(y.numpy().view(np.uint16), f64.astype(np.float16).view(np.uint16))
    m = _interleaved({"af": lambda: af.convert(t64, "torch", dtype="float16"),
                      "torch": lambda: t64.to(torch.float16)}, number, repeat)
    out.append({"name": "64 MiB cast float64 -> float16 of a torch tensor: convert (NumPy's exact cast)",
                "value": m["af"] * 1e3, "unit": "ms", "baseline": m["torch"] * 1e3,
                "baseline_name": "t.to(torch.float16) (rounds through float32)", "ratio": m["af"] / m["torch"],
                "note": "(reference: torch's cast is not used, it differs from NumPy's in the last bit)"})
    # the same cast in torch operations (round to odd through float32): what a CUDA tensor runs
    from arrayferry.adapters.torch import exact_float16

    assert np.array_equal(exact_float16(torch, t64).numpy().view(np.uint16), f64.astype(np.float16).view(np.uint16))
    m = _interleaved({"af": lambda: exact_float16(torch, t64), "torch": lambda: t64.to(torch.float16)}, number, repeat)
    out.append({"name": "64 MiB cast float64 -> float16 in torch ops, rounding once (exact_float16, the GPU's cast)",
                "value": m["af"] * 1e3, "unit": "ms", "baseline": m["torch"] * 1e3,
                "baseline_name": "t.to(torch.float16) (rounds through float32)", "ratio": m["af"] / m["torch"],
                "note": "(reference: the GPU's code path, timed on a CPU tensor; CPU tensors are cast with NumPy, "
                        "the row above; on a GPU it lets the transfer move 2 bytes per value instead of 8)"})

    # 2. the value check (casting=None) against no check (casting='unsafe'), same route, NumPy target
    #    one row per class of pair: the check each class runs is named in the "how" column
    u8 = np.abs(f64) % 256
    checks: list[tuple[str, Any, str]] = [
        ("float64 -> int32", f64, "int32"),
        ("float64 -> int64", f64, "int64"),
        ("float64 -> float32", f64, "float32"),
        ("float64 -> float16", f64, "float16"),
        ("float32 -> float16", f32, "float16"),
        ("float64 -> uint8", u8, "uint8"),
        ("float32 -> int16", f32, "int16"),
        ("int64 -> int32", i64, "int32"),
        ("int64 -> int8", i64, "int8"),
        ("int64 -> uint8", np.abs(i64), "uint8"),
        ("int32 -> uint32", i64.astype(np.int32) + 100, "uint32"),
        ("uint64 -> int64", np.abs(i64).astype(np.uint64), "int64"),
        ("int64 -> float16", i64, "float16"),
        ("complex128 -> float64", f64.astype(np.complex128)[: n // 2], "float64"),
    ]
    from arrayferry._hostops import check_method

    met = 0
    for label, x, dst in checks:
        p = af.plan(x, "numpy", dtype=dst)
        assert p.steps and "range-checked" in p.steps[0].description, p.explain()
        m = _interleaved({"checked": lambda x=x, dst=dst: af.convert(x, "numpy", dtype=dst),
                          "unsafe": lambda x=x, dst=dst: af.convert(x, "numpy", dtype=dst, casting="unsafe")},
                         number, repeat)
        c_ms, u_ms = m["checked"] * 1e3, m["unsafe"] * 1e3
        met += c_ms <= 1.10 * u_ms
        out.append({"name": f"64 MiB range check {label} (convert, casting=None)", "value": c_ms, "unit": "ms",
                    "baseline": u_ms, "baseline_name": "casting='unsafe'", "ratio": c_ms / u_ms,
                    "note": f"{check_method(x.dtype.name, dst)}; check +{c_ms - u_ms:.2f} ms",
                    "target": "check <= 10 % of the cast", "passed": c_ms <= 1.10 * u_ms})
    out.append({"name": "range check pairs within 1.10x of casting='unsafe'", "value": met, "unit": f"of {len(checks)}",
                "note": "the rows above, this run"})
    return out


#: The benchmarks of this file, in order. Append a ``run(quick) -> list[dict]`` function to add one.
BENCHMARKS: list[Callable[[bool], list[Result]]] = [bench_zero_copy, bench_accepts, bench_first_call, bench_copies,
                                                    bench_import, bench_casts]

#: Benchmarks other parts of the project provide: (label, path relative to the repository root).
EXTRA: list[tuple[str, str]] = [
    ("convert_tree", "benchmarks/bench_tree.py"),
    ("dask", "plugins/arrayferry-dask/benchmarks/bench_dask.py"),
    ("protocols", "benchmarks/bench_protocols.py"),
    ("matrix", "benchmarks/bench_matrix.py"),
]


def _load_extra(label: str, rel: str) -> Callable[[bool], list[Result]] | None:
    path = ROOT / rel
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"_arrayferry_bench_{label}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fn: Callable[[bool], list[Result]] = mod.run
    return fn


# ------------------------------------------------------------------------------------------------
# report


def _fmt(v: Any, unit: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f} {unit}".strip() if abs(v) < 10 else f"{v:.1f} {unit}".strip()
    return f"{v} {unit}".strip()


def print_result(r: Result) -> None:
    unit = r.get("unit", "")
    verdict = {True: "PASS", False: "FAIL", None: ""}.get(r.get("passed"), "")
    parts = [f"{r.get('name', '?')}: {_fmt(r.get('value'), unit)}"]
    if r.get("baseline") is not None:
        parts.append(f"vs {r.get('baseline_name', 'native')} {_fmt(r['baseline'], unit)}")
    if r.get("ratio") is not None:
        parts.append(f"ratio {r['ratio']:.2f}x")
    if r.get("difference") is not None:
        parts.append(f"difference {r['difference']:+.3f} {unit}")
    if r.get("note"):
        parts.append(str(r["note"]))
    if r.get("target"):
        parts.append(f"target {r['target']}")
    if "value" not in r:  # a benchmark with its own keys: show them all
        known = {"name", "unit", "passed", "baseline", "baseline_name", "ratio", "difference", "note", "target"}
        parts.extend(f"{k}={_fmt(v, '')}" for k, v in r.items() if k not in known)
        parts[0] = str(r.get("name", "?"))
    line = "; ".join(parts)
    print(f"  {verdict:4}  {line}" if verdict else f"        {line}")


def environment() -> dict[str, Any]:
    import numpy as np

    import arrayferry as af

    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "arrayferry": af.__version__,
        "numpy": np.__version__,
    }
    try:  # the CPU's model name, where Linux says it
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                env["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if hasattr(os, "getloadavg"):  # other work on the machine while the run started
        env["loadavg"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        env["torch"] = None
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (about 10 s)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated benchmark names (zero_copy, accepts, first_call, copies, import, casts, or an EXTRA label)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None

    env = environment()
    env["command"] = " ".join(["python benchmarks/run.py", *(["--quick"] if args.quick else []),
                               *(["--only", args.only] if args.only else [])])
    print("arrayferry benchmarks  " + ", ".join(f"{k}={v}" for k, v in env.items()))
    results: dict[str, list[Result]] = {}
    errors: dict[str, str] = {}
    todo: list[tuple[str, Callable[[bool], list[Result]] | None, str]] = [
        (fn.__name__.removeprefix("bench_"), fn, fn.__doc__ or "") for fn in BENCHMARKS
    ]
    for label, rel in EXTRA:
        try:
            todo.append((label, _load_extra(label, rel), rel))
        except Exception as exc:
            errors[label] = f"cannot load {rel}: {type(exc).__name__}: {exc}"
    for label, fn, doc in todo:
        if only is not None and label not in only:
            continue
        if fn is None:
            print(f"\n[{label}] skipped: {doc} does not exist yet")
            continue
        print(f"\n[{label}] {doc.strip().splitlines()[0] if doc.strip() else ''}", flush=True)
        try:
            rs = fn(args.quick)
        except Exception as exc:
            errors[label] = f"{type(exc).__name__}: {exc}"
            print(f"  ERROR  {errors[label]}")
            continue
        results[label] = rs
        for r in rs:
            print_result(r)
    missed = [r["name"] for rs in results.values() for r in rs if r.get("passed") is False]
    print()
    print(f"targets missed: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else ""))
    if errors:
        print(f"benchmarks that failed to run: {', '.join(errors)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "results": results, "errors": errors}, indent=2))
        print(f"results written to {args.json}")
    if errors:
        return 1
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
