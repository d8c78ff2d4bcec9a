"""The ``arrayferry`` command (also ``python -m arrayferry``).

``arrayferry info``
    arrayferry and Python versions, every registered framework (installed, version, providing
    plugin, devices with ``--devices``), plugins (broken ones with their error), the entry-point
    group and whether autoload is disabled. ``--json`` for machine-readable output.
``arrayferry matrix``
    for every ordered pair of installed frameworks and a set of typical cases: the route taken,
    zero-copy or not, and the median time of ``convert`` beside the framework's own fastest call.
    A text table by default, ``--json``, ``--plot FILE.png`` (a matplotlib heat map),
    ``--frameworks numpy,torch``, ``--cases ...``, ``--repeat N``.

Errors exit with status 2 and a one-line message on stderr (no traceback; set
ARRAYFERRY_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "info_data", "format_info", "format_matrix", "plot_matrix", "CliError"]


class CliError(Exception):
    """A user-facing error of the command line: printed as one line, exit status 2."""


# ------------------------------------------------------------------------------------------------
# info


def _cuda_reason(adapter: Any) -> str | None:
    """Why ``adapter`` cannot place arrays on CUDA now (its own DeviceError's first line), or
    ``None`` for host-only frameworks, which have nothing to explain."""
    import re

    from ._device import Device
    from ._errors import DeviceError

    try:
        adapter.check_device(Device("cuda"))
    except DeviceError as exc:
        first = str(exc).splitlines()[0]
        if "live on the host" in first:  # the default Adapter.check_device: host-only by design
            return None
        return re.sub(r"[;,]? ?\(?asked for (device )?'cuda'\)?\.?", "", first).rstrip(" ;,.") + "."
    except Exception as exc:  # a broken install is reported, not raised
        return f"{type(exc).__name__}: {exc}"
    return None


def info_data(*, probe_devices: bool = False) -> dict[str, Any]:
    """What ``arrayferry info`` reports, as plain data."""
    from importlib.metadata import entry_points

    import arrayferry as af

    from ._registry import DISABLE_AUTOLOAD_ENV, ENTRY_POINT_GROUP, registry

    reg = registry()
    fws = []
    for f in af.frameworks(probe_devices=probe_devices):
        entry: dict[str, Any] = {
            "name": f.name,
            "module": f.module,
            "installed": f.installed,
            "version": f.version,
            "plugin": f.plugin,
        }
        if probe_devices:
            devs = list(f.devices) if f.devices is not None else []
            entry["devices"] = devs
            if f.installed and not any(d.startswith(("cuda", "rocm")) for d in devs):
                entry["cuda"] = "no CUDA device"
                why = _cuda_reason(reg.adapters[f.name])
                if why:
                    entry["cuda_reason"] = why
            elif any(d.startswith(("cuda", "rocm")) for d in devs):
                entry["cuda"] = ", ".join(d for d in devs if d.startswith(("cuda", "rocm")))
        fws.append(entry)
    provides: dict[str, list[str]] = {}
    for fw, plugin in reg.provider.items():
        provides.setdefault(plugin, []).append(fw)
    plugins = []
    for name, _obj in reg.pm.list_name_plugin():
        if name is None:
            continue
        plugins.append({"name": name, "frameworks": sorted(provides.get(name, [])), "status": "ok"})
    for b in reg.broken:
        plugins.append({"name": b.name, "frameworks": [], "status": "broken", "error": b.error})
    eps = [{"name": ep.name, "value": ep.value} for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return {
        "arrayferry": af.__version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "frameworks": fws,
        "plugins": plugins,
        "entry_point_group": ENTRY_POINT_GROUP,
        "entry_points": eps,
        "autoload_disabled": bool(os.environ.get(DISABLE_AUTOLOAD_ENV)),
        "autoload_env": DISABLE_AUTOLOAD_ENV,
    }


def format_info(d: dict[str, Any]) -> str:
    """``info_data`` as readable text."""
    lines = [
        f"arrayferry {d['arrayferry']}",
        f"Python {d['python']} ({d['executable']})",
        f"Platform {d['platform']}",
        "",
        "Frameworks:",
    ]
    probed = any("devices" in f for f in d["frameworks"])
    rows = [["name", "installed", "version", "plugin"] + (["devices"] if probed else [])]
    for f in d["frameworks"]:
        r = [f["name"], "yes" if f["installed"] else "no", f["version"] or "-", f["plugin"]]
        if probed:
            if not f["installed"]:
                r.append("-")
            else:
                devs = ", ".join(f.get("devices") or []) or "-"
                if f.get("cuda_reason"):  # host-only frameworks have nothing to explain
                    devs += " (no CUDA device)"
                r.append(devs)
        rows.append(r)
    lines.extend("  " + s for s in _table(rows))
    if not probed:
        lines.append("  (devices not probed: run 'arrayferry info --devices')")
    reasons = [(f["name"], f["cuda_reason"]) for f in d["frameworks"] if f.get("cuda_reason")]
    if reasons:
        lines += ["", "Why no CUDA device:"]
        lines.extend(f"  {name}: {why}" for name, why in reasons)
    lines += ["", "Plugins:"]
    for p in d["plugins"]:
        if p["status"] == "broken":
            lines.append(f"  {p['name']}: BROKEN: {p['error']}")
        else:
            lines.append(f"  {p['name']}: {', '.join(p['frameworks']) or '(no frameworks)'}")
    lines += [
        "",
        f"Entry-point group: {d['entry_point_group']} "
        f"({len(d['entry_points'])} entry point(s){': ' if d['entry_points'] else ''}"
        f"{', '.join(e['name'] + ' = ' + e['value'] for e in d['entry_points'])})",
        f"Autoload: {'disabled' if d['autoload_disabled'] else 'enabled'} "
        f"(set {d['autoload_env']}=1 to disable)",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# matrix


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f} us" if v < 100 else f"{v:.0f} us"


def format_matrix(result: Any) -> str:
    """A :class:`arrayferry._matrix.MatrixResult` as text tables, one per framework pair."""
    env = result.environment
    lines = [
        f"arrayferry {env['arrayferry']} matrix: Python {env['python']}, {env['cpus']} CPU(s); "
        + ", ".join(f"{k} {v}" for k, v in result.frameworks.items()),
        f"times: median of {result.repeat} batches; ratio = convert / native call",
    ]
    for name, why in result.skipped.items():
        lines.append(f"skipped {name}: {why}")
    pairs: dict[tuple[str, str], list[Any]] = {}
    for r in result.rows:
        pairs.setdefault((r.source, r.target), []).append(r)
    for (src, tgt), rows in pairs.items():
        native = next((r.native for r in rows if r.native), None) or "none"
        lines += ["", f"{src} -> {tgt}   (native call: {native})"]
        table = [["case", "route", "zero-copy", "steps", "convert", "native", "ratio"]]
        notes: list[str] = []
        for r in rows:
            if r.status == "n/a":
                table.append([r.case, "n/a", "", "", "", "", ""])
                continue
            if r.status in ("error", "refused"):
                table.append([r.case, "ERROR" if r.status == "error" else "refused", "", "", "", "", ""])
                notes.append(f"{r.case}: {r.reason}")
                continue
            zc = "yes" if r.zero_copy else "no"
            if r.values_ok is False or r.plan_honest is False:
                zc += " (!)"
            if r.reason:
                notes.append(f"{r.case}: {r.reason}")
            if r.plan_honest is False:
                notes.append(f"{r.case}: BUG: memory sharing after convert differs from what the plan said")
            if r.native_status == "ok":
                nat = _fmt_us(r.native_us)
                ratio = f"{r.ratio:.1f}x" if r.ratio is not None else "-"
                if r.native_note:
                    notes.append(f"{r.case}: {r.native} {r.native_note}")
            else:
                nat = {"fails": "FAILS", "wrong": "WRONG", "not run": "ABORTS", "none": "-"}.get(
                    r.native_status or "", "-")
                ratio = ""
                if r.native_note and r.native_status != "none":
                    notes.append(f"{r.case}: {r.native} {r.native_note}")
            table.append([r.case, r.route or "", zc, "+".join(r.steps) or "identity", _fmt_us(r.convert_us), nat, ratio])
        lines.extend("  " + s for s in _table(table))
        if notes:
            lines.append("  notes:")
            lines.extend(f"    {_clip(n, 160)}" for n in notes)
    na = sorted({(r.source, r.case, r.reason) for r in result.rows if r.status == "n/a"})
    if na:
        lines += ["", "n/a (the source framework cannot hold the case):"]
        seen: set[tuple[str, str]] = set()
        for src, case, why in na:
            if (src, case) not in seen:
                seen.add((src, case))
                lines.append(f"  {src} {case}: {why}")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters at a word boundary, with an ellipsis when cut."""
    if len(text) <= width:
        return text
    cut = text[: width - 3]
    space = cut.rfind(" ")
    if space > width // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "..."


def _check_plot_path(path: str) -> None:
    """Refuse a ``--plot`` path that cannot be written, before anything is measured."""
    import matplotlib.figure

    if os.path.isdir(path):
        raise CliError(f"--plot: {path!r} is a directory; Hint: give a file name such as matrix.png")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"--plot: the folder {folder!r} does not exist; Hint: create it first or choose another path")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CliError(f"--plot: cannot write {path!r} (permission denied); Hint: choose a writable path")
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    formats = matplotlib.figure.Figure().canvas.get_supported_filetypes()
    if ext not in formats:
        raise CliError(
            f"--plot: {path!r} has {'no extension' if not ext else f'the extension .{ext}'}, which matplotlib cannot "
            f"write; Hint: end the name with one of .{', .'.join(sorted(formats))} (e.g. matrix.png)"
        )


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def plot_matrix(result: Any, path: str, *, value: str = "ratio", source: str | None = None) -> None:
    """Write a heat map (rows: framework pairs, columns: cases) to ``path``.

    ``value="ratio"`` colours cells by convert time / native time (log scale, grey where the
    native call fails or is wrong); ``value="route"`` colours them by route class (zero-copy,
    copy, n/a, error). Each cell is annotated with the route and the ratio.

    With ``source`` only the conversions from that framework are drawn, transposed (cases down,
    target frameworks across) and with larger text, so the picture stays readable at the width
    of a documentation page.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap, LogNorm
    except ImportError as exc:
        raise CliError(
            f"--plot needs matplotlib, which cannot be imported ({exc}); "
            "Hint: pip install 'arrayferry[plot]'"
        ) from None
    import numpy as np

    pairs = list(dict.fromkeys((r.source, r.target) for r in result.rows if source in (None, r.source)))
    cases = [c for c, _ in result.cases]
    if source is not None:  # drop the cases this source cannot hold at all (n/a for every target)
        held = {r.case for r in result.rows if r.source == source and r.status != "n/a"}
        cases = [c for c in cases if c in held]
    if not pairs or not cases:
        raise CliError("--plot: the matrix is empty (fewer than two usable frameworks); Hint: install torch")
    idx = {(r.source, r.target, r.case): r for r in result.rows}
    grid = np.full((len(pairs), len(cases)), np.nan)
    text = [["" for _ in cases] for _ in pairs]
    for i, (s, t) in enumerate(pairs):
        for j, c in enumerate(cases):
            r = idx.get((s, t, c))
            if r is None or r.status == "n/a":
                text[i][j] = "n/a"
                if value == "route":
                    grid[i, j] = 2
                continue
            if r.status in ("error", "refused"):
                text[i][j] = r.status
                if value == "route":
                    grid[i, j] = 3
                continue
            label = ("0-copy" if r.zero_copy else "copy") + "\n"
            if r.ratio is not None:
                label += f"{r.ratio:.1f}x"
            else:
                label += {"fails": "native fails", "wrong": "native wrong", "not run": "native aborts"}.get(
                    r.native_status or "", "")
            text[i][j] = label
            if value == "route":
                grid[i, j] = 0 if r.zero_copy else 1
            elif r.ratio is not None:
                grid[i, j] = r.ratio
    if source is not None:  # cases down, targets across
        grid = grid.T
        text = [list(col) for col in zip(*text, strict=True)]
        rows_lbl, cols_lbl = cases, [t for _, t in pairs]
        fig, ax = plt.subplots(figsize=(1.5 * len(cols_lbl) + 3.0, 0.55 * len(rows_lbl) + 1.5))
        cell_font, label_font = 12, 13
    else:
        rows_lbl, cols_lbl = [f"{s} -> {t}" for s, t in pairs], cases
        fig, ax = plt.subplots(figsize=(1.3 * len(cases) + 3.5, 0.7 * len(pairs) + 2.4))
        cell_font, label_font = 9, 11
    if value == "route":
        routes = ListedColormap(["#4caf50", "#ffb74d", "#eeeeee", "#e57373"])
        im = ax.imshow(grid, cmap=routes, vmin=-0.5, vmax=3.5, aspect="auto")
        cbar = fig.colorbar(im, ax=ax, ticks=[0, 1, 2, 3])
        cbar.ax.set_yticklabels(["zero-copy", "copy", "n/a", "error/refused"])
        title = "route class"
    else:
        finite = grid[np.isfinite(grid)]
        lo = max(min(float(finite.min()) if finite.size else 1.0, 1.0), 0.1)
        hi = max(float(finite.max()) if finite.size else 2.0, lo * 2)
        cmap = plt.get_cmap("RdYlGn_r").copy()
        cmap.set_bad("#dddddd")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=LogNorm(vmin=lo, vmax=hi), aspect="auto")
        fig.colorbar(im, ax=ax, label="convert time / native call time")
        title = "overhead of arrayferry.convert over the native call (grey: no valid native call)"
    if source is not None:
        ax.set_xticks(range(len(cols_lbl)), cols_lbl, fontsize=label_font)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks(range(len(cols_lbl)), cols_lbl, rotation=40, ha="right", fontsize=label_font)
    ax.set_yticks(range(len(rows_lbl)), rows_lbl, fontsize=label_font)
    for i in range(len(rows_lbl)):
        for j in range(len(cols_lbl)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=cell_font)
    if source is None:
        ax.set_title(f"arrayferry matrix: {title}", fontsize=label_font)
    else:  # the colour bar names the value; the title names the source
        ax.set_title(f"from {source} to ...", fontsize=label_font + 1, pad=28)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise CliError(f"--plot: cannot write {path!r}: {exc.strerror or exc}; Hint: choose a writable path") from None
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------
# entry point


def _parser() -> argparse.ArgumentParser:
    import arrayferry as af

    p = argparse.ArgumentParser(
        prog="arrayferry",
        description="Move arrays between frameworks by the cheapest correct route, and say which.",
    )
    p.add_argument("--version", action="version", version=f"arrayferry {af.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    pi = sub.add_parser("info", help="versions, frameworks, devices and plugins")
    pi.add_argument("--devices", action="store_true", help="import the installed frameworks and probe their devices")
    pi.add_argument("--json", action="store_true", help="print JSON")
    pm = sub.add_parser("matrix", help="routes and timings for every pair of installed frameworks")
    pm.add_argument("--frameworks", metavar="A,B", help="restrict to these frameworks (comma-separated)")
    pm.add_argument("--cases", metavar="C,D", help="restrict to these cases (comma-separated)")
    pm.add_argument("--sources", action="store_true",
                    help="also convert objects no plugin owns (lists, scalars, buffers, objects that offer only "
                         "DLPack or an array interface, pandas, xarray) into each framework, an example array of "
                         "each (to=y), their array_api_compat namespaces and an array-API namespace no plugin "
                         "registers")
    pm.add_argument("--repeat", type=int, default=7, metavar="N", help="timing batches; the median is shown (default 7)")
    pm.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pm.add_argument("--plot", metavar="FILE.png", help="also write a heat map (needs matplotlib)")
    pm.add_argument("--plot-value", choices=("ratio", "route"), default="ratio",
                    help="what the heat map colours: overhead ratio (default) or route class")
    pm.add_argument("--plot-split", action="store_true",
                    help="with --plot FILE.png, also write FILE-SOURCE.png for each source framework "
                         "(cases down, targets across, larger text)")
    return p


def _nothing_to_compare(result: Any) -> str:
    """Why a matrix has no rows: fewer than two frameworks could be used."""
    usable = ", ".join(result.frameworks) or "none"
    skipped = "; ".join(f"{k}: {v}" for k, v in result.skipped.items())
    return (f"nothing to measure: the matrix compares pairs of frameworks, and only {usable} can be used here"
            + (f" (skipped {skipped})" if skipped else "")
            + "; Hint: install a second framework (torch: pip install 'torch==2.13.0'; a plugin: "
            "pip install 'arrayferry[jax]'), "
            "or name two with --frameworks numpy,torch")


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise CliError(f"empty list {text!r}; Hint: write names separated by commas, e.g. numpy,torch")
    return items


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "info":
        d = info_data(probe_devices=args.devices)
        print(json.dumps(d, indent=2) if args.json else format_info(d))
        return 0
    if args.command == "matrix":
        from ._matrix import run_matrix

        if args.repeat < 1:
            raise CliError(f"--repeat must be at least 1, got {args.repeat}; Hint: pass --repeat 1 or more (default 7)")
        if args.plot_split and args.plot is None:
            raise CliError("--plot-split needs --plot FILE.png; Hint: arrayferry matrix --plot matrix.png --plot-split")
        if args.plot is not None:
            import importlib.util

            if importlib.util.find_spec("matplotlib") is None:
                raise CliError("--plot needs matplotlib, which is not installed; Hint: pip install 'arrayferry[plot]'")
            _check_plot_path(args.plot)  # before minutes of measuring, not after
        fws = _split(args.frameworks)
        if fws:
            from ._registry import registry

            reg = registry()
            unknown = [f for f in fws if f not in reg._names]
            if unknown:
                raise CliError(
                    f"unknown framework(s) {', '.join(map(repr, unknown))} in --frameworks; "
                    f"registered: {', '.join(sorted(reg.adapters)) or 'none'}; "
                    "Hint: pick registered names (arrayferry info lists them), or install the plugin"
                )
        progress = None if args.json else (lambda s: print(f"measuring {s} ...", file=sys.stderr, flush=True))
        result = run_matrix(fws, cases=_split(args.cases), repeat=args.repeat, progress=progress, sources=args.sources)
        if not result.rows:
            raise CliError(_nothing_to_compare(result))
        written: list[str] = []
        if args.plot is not None:
            plot_matrix(result, args.plot, value=args.plot_value)
            written.append(args.plot)
            if args.plot_split:
                stem, dot, ext = args.plot.rpartition(".")
                for src in dict.fromkeys(r.source for r in result.rows):
                    out = f"{stem}-{src}.{ext}" if dot else f"{args.plot}-{src}"
                    plot_matrix(result, out, value=args.plot_value, source=src)
                    written.append(out)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            print(format_matrix(result))
            if written:
                print(f"\nheat map written to {', '.join(written)}")
        return 0
    parser.print_help()
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 error)."""
    from ._errors import ArrayFerryError

    parser = _parser()
    args = parser.parse_args(argv)  # argparse itself exits with 2 on bad usage
    try:
        return _run(args, parser)
    except BrokenPipeError:  # pragma: no cover - e.g. piping into head
        return 0
    except KeyboardInterrupt:
        print("arrayferry: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("ARRAYFERRY_DEBUG"):
            raise
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        msg = lines[0] if lines else ""
        if not isinstance(exc, (CliError, ArrayFerryError, ValueError)):
            msg = f"{type(exc).__name__}: {msg}".rstrip(": ")
        hint = next((ln for ln in lines[1:] if ln.startswith("Hint:")), None)
        print(f"arrayferry: error: {msg}" + (f" ({hint})" if hint else ""), file=sys.stderr)
        return 2
