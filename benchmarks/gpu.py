"""GPU benchmarks: arrayferry against the native calls, measured in the same run on one GPU.

Run by ``scripts/gpu-check`` (``python benchmarks/gpu.py --json FILE``); ``--check`` only verifies
that the script and what it imports load (CI's dry run). Figures, each with its target:

* host -> device, 256 MiB float32 from pageable and from pinned host memory:
  ``convert(x, "torch", device="cuda")`` against ``torch.from_numpy(x).cuda()`` and
  ``convert(x, "cupy")`` against ``cupy.asarray(x)``: at least 0.95x the native bandwidth;
* device -> host, 256 MiB: ``convert(t, "numpy")`` against ``t.cpu().numpy()`` and
  ``convert(c, "numpy")`` against ``c.get()``: at least 0.95x;
* cached zero-copy torch CUDA <-> CuPy ``convert`` (16 floats) against ``cupy.from_dlpack(t)`` /
  ``torch.from_dlpack(c)``: at most +1 us per call;
* alternatives: a big pageable host -> device copy staged through two pinned buffers
  (chunked, double-buffered on a side stream) and a device -> host copy into pinned memory
  then NumPy, against the native pageable calls. They are measured, not yet used by the
  routes: the JSON says whether each would win, so the first GPU run decides.

Bandwidth ratios are native seconds / arrayferry seconds (higher is better); every timed call is
bracketed by a device synchronisation. Medians over ``--repeat`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20
Result = dict[str, Any]


def _median_seconds(fn: Callable[[], Any], sync: Callable[[], None], repeat: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _bandwidth(name: str, nbytes: int, ours: float, native: float, what: str) -> Result:
    ratio = native / ours
    gbs = nbytes / ours / 1e9
    ngbs = nbytes / native / 1e9
    return {
        "name": name, "what": what, "unit": "GB/s", "value": round(gbs, 2), "baseline": round(ngbs, 2),
        "ratio": round(ratio, 3), "target": 0.95, "passed": ratio >= 0.95,
        "value_text": f"{gbs:.1f} GB/s", "baseline_text": f"{ngbs:.1f} GB/s", "result_text": f"{ratio:.2f}x",
        "target_text": ">= 0.95x",
    }


def _overhead(name: str, ours: float, native: float, what: str, limit_us: float = 1.0) -> Result:
    diff = (ours - native) * 1e6
    return {
        "name": name, "what": what, "unit": "us", "value": round(ours * 1e6, 3), "baseline": round(native * 1e6, 3),
        "diff_us": round(diff, 3), "target": limit_us, "passed": diff <= limit_us,
        "value_text": f"{ours * 1e6:.2f} us", "baseline_text": f"{native * 1e6:.2f} us",
        "result_text": f"{diff:+.2f} us", "target_text": f"<= +{limit_us:g} us",
    }


def _per_call(fns: dict[str, Callable[[], Any]], number: int, repeat: int) -> dict[str, float]:
    """Median seconds per call, batches interleaved: ``benchmarks/run.py``'s timer."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from run import _interleaved  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return _interleaved(fns, number, repeat)  # type: ignore[no-any-return]


def bench_torch(torch: Any, af: Any, nbytes: int, repeat: int) -> tuple[list[Result], list[Result]]:
    out: list[Result] = []
    sync = torch.cuda.synchronize
    x = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32)
    plan = af.plan(x, "torch", device="cuda:0")
    ours = _median_seconds(lambda: af.convert(x, "torch", device="cuda:0"), sync, repeat)
    native = _median_seconds(lambda: torch.from_numpy(x).cuda(), sync, repeat)
    out.append(_bandwidth("h2d torch, pageable", nbytes, ours, native,
                          f"convert(x, 'torch', device='cuda:0') vs torch.from_numpy(x).cuda(); plan: {plan!r}"))
    pinned_t = torch.empty(nbytes // 4, dtype=torch.float32).pin_memory()
    pinned = pinned_t.numpy()
    pinned[...] = x
    ours = _median_seconds(lambda: af.convert(pinned, "torch", device="cuda:0"), sync, repeat)
    native = _median_seconds(lambda: torch.from_numpy(pinned).cuda(), sync, repeat)
    out.append(_bandwidth("h2d torch, pinned", nbytes, ours, native,
                          "the same from pinned host memory (a NumPy view of a pinned tensor)"))
    t = torch.from_numpy(x).cuda()
    ours = _median_seconds(lambda: af.convert(t, "numpy"), sync, repeat)
    native = _median_seconds(lambda: t.cpu().numpy(), sync, repeat)
    out.append(_bandwidth("d2h torch", nbytes, ours, native, "convert(t, 'numpy') vs t.cpu().numpy()"))

    alts: list[Result] = []
    staged = _staged_h2d(torch)
    secs = _median_seconds(lambda: staged(x), sync, repeat)
    native = _median_seconds(lambda: torch.from_numpy(x).cuda(), sync, repeat)
    alts.append(_alternative("pageable h2d staged through pinned buffers (torch)", nbytes, secs, native))
    host = torch.empty(nbytes // 4, dtype=torch.float32).pin_memory()

    def d2h_pinned() -> Any:
        host.copy_(t)
        return host.numpy()

    secs = _median_seconds(d2h_pinned, sync, repeat)
    native = _median_seconds(lambda: t.cpu().numpy(), sync, repeat)
    alts.append(_alternative("d2h into a reused pinned buffer (torch)", nbytes, secs, native))
    return out, alts


def _staged_h2d(torch: Any, chunk: int = 32 * MIB) -> Callable[[np.ndarray], Any]:
    """A pageable -> device copy through two pinned buffers, double-buffered on a side stream."""
    bufs = [torch.empty(chunk, dtype=torch.uint8).pin_memory() for _ in range(2)]
    events = [torch.cuda.Event() for _ in range(2)]
    stream = torch.cuda.Stream()

    def run(a: np.ndarray) -> Any:
        raw = a.reshape(-1).view(np.uint8)
        dst = torch.empty(raw.nbytes, dtype=torch.uint8, device="cuda")
        for i, start in enumerate(range(0, raw.nbytes, chunk)):
            k = i % 2
            n = min(chunk, raw.nbytes - start)
            events[k].synchronize()  # the buffer's previous copy is done
            bufs[k][:n].numpy()[...] = raw[start:start + n]
            with torch.cuda.stream(stream):
                dst[start:start + n].copy_(bufs[k][:n], non_blocking=True)
                events[k].record(stream)
        torch.cuda.current_stream().wait_stream(stream)
        return dst.view(torch.float32)

    return run


def _alternative(name: str, nbytes: int, secs: float, native: float) -> Result:
    ratio = native / secs
    return {"name": name, "seconds": secs, "native_seconds": native, "ratio": round(ratio, 3),
            "result_text": f"{nbytes / secs / 1e9:.1f} GB/s against {nbytes / native / 1e9:.1f} GB/s native "
                           f"({ratio:.2f}x)",
            "decision": ("faster than the native call: worth taking into the route" if ratio > 1.05
                         else "no gain over the native call: the routes keep the native call")}


def bench_cupy(cp: Any, af: Any, nbytes: int, repeat: int) -> list[Result]:
    out: list[Result] = []

    def sync() -> None:
        cp.cuda.Device().synchronize()

    x = np.random.default_rng(1).random(nbytes // 4, dtype=np.float32)
    ours = _median_seconds(lambda: af.convert(x, "cupy"), sync, repeat)
    native = _median_seconds(lambda: cp.asarray(x), sync, repeat)
    out.append(_bandwidth("h2d cupy, pageable", nbytes, ours, native, "convert(x, 'cupy') vs cupy.asarray(x)"))
    pinned_mem = cp.cuda.alloc_pinned_memory(nbytes)
    pinned = np.frombuffer(pinned_mem, dtype=np.float32, count=nbytes // 4)
    pinned[...] = x
    ours = _median_seconds(lambda: af.convert(pinned, "cupy"), sync, repeat)
    native = _median_seconds(lambda: cp.asarray(pinned), sync, repeat)
    out.append(_bandwidth("h2d cupy, pinned", nbytes, ours, native, "the same from pinned host memory"))
    c = cp.asarray(x)
    ours = _median_seconds(lambda: af.convert(c, "numpy"), sync, repeat)
    native = _median_seconds(lambda: c.get(), sync, repeat)
    out.append(_bandwidth("d2h cupy", nbytes, ours, native, "convert(c, 'numpy') vs c.get()"))
    return out


def bench_zero_copy(torch: Any, cp: Any, af: Any, quick: bool) -> list[Result]:
    t = torch.arange(16, dtype=torch.float32, device="cuda:0")
    c = cp.arange(16, dtype=cp.float32)
    assert af.convert(t, "cupy").data.ptr == t.data_ptr()  # zero-copy, and the plan is cached
    assert af.convert(c, "torch").data_ptr() == c.data.ptr
    number, repeat = (2000, 5) if quick else (10000, 15)
    tc = _per_call({"ours": lambda: af.convert(t, "cupy"), "native": lambda: cp.from_dlpack(t)}, number, repeat)
    ct = _per_call({"ours": lambda: af.convert(c, "torch"), "native": lambda: torch.from_dlpack(c)}, number, repeat)
    return [
        _overhead("zero-copy torch cuda -> cupy", tc["ours"], tc["native"], "convert(t, 'cupy') vs cupy.from_dlpack(t)"),
        _overhead("zero-copy cupy -> torch cuda", ct["ours"], ct["native"], "convert(c, 'torch') vs torch.from_dlpack(c)"),
    ]


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for d in ("numpy", "torch", "cupy-cuda13x", "cupy-cuda12x", "jax", "arrayferry"):
        try:
            found[d] = version(d)
        except PackageNotFoundError:
            pass
    return {"python": platform.python_version(), "machine": platform.machine(), "versions": found,
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    ap.add_argument("--mib", type=int, default=256, help="transfer size in MiB (default 256)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--check", action="store_true", help="only check that the benchmark loads (no GPU needed)")
    args = ap.parse_args(argv)
    import arrayferry as af

    if args.check:
        print(f"benchmarks/gpu.py loads (arrayferry {af.__version__}, numpy {np.__version__}); nothing measured")
        return 0
    torch = cp = None
    try:
        import torch as _torch

        if _torch.cuda.is_available():
            torch = _torch
    except ImportError:
        pass
    try:
        import cupy as _cp

        if _cp.cuda.runtime.getDeviceCount() > 0:
            cp = _cp
    except Exception:
        pass
    if torch is None and cp is None:
        print("no GPU: neither torch nor CuPy sees a CUDA device; nothing to measure", file=sys.stderr)
        return 1
    nbytes = args.mib * MIB
    results: list[Result] = []
    alternatives: list[Result] = []
    errors: list[str] = []
    for label, fn in (("torch", lambda: bench_torch(torch, af, nbytes, args.repeat) if torch else ([], [])),
                      ("cupy", lambda: (bench_cupy(cp, af, nbytes, args.repeat), []) if cp else ([], [])),
                      ("zero-copy", lambda: (bench_zero_copy(torch, cp, af, args.quick), [])
                       if torch and cp else ([], []))):
        try:
            res, alts = fn()
            results += res
            alternatives += alts
        except Exception as exc:  # reported, and the run fails
            errors.append(f"{label}: {type(exc).__name__}: {exc}")
    for r in results:
        print(f"{r['name']:<32} {r['value_text']:>12}  native {r['baseline_text']:>12}  {r['result_text']:>9}  "
              f"target {r['target_text']:<9} {'ok' if r['passed'] else 'MISSED'}")
    for a in alternatives:
        print(f"alternative: {a['name']}: {a['result_text']}; {a['decision']}")
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(), "results": results, "alternatives": alternatives,
                       "errors": errors}, f, indent=2)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
