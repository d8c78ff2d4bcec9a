"""nox sessions for arrayferry: lint, types, tests, the version matrix, packaging, benchmarks, docs.

Everyday sessions (run by a bare ``nox``): ``lint``, ``typecheck``, ``tests``.

The version matrix: one session per environment, named so that it runs alone::

    nox -s "minimums(torch='2.13')"    # every declared minimum (requirements/minimums.txt), torch 2.13.0
    nox -s "minimums(torch='2.3')"     # the same with torch 2.3.0, torch's declared minimum (big)
    nox -s "minimums(torch='2.11')"    # the same with torch 2.11.0, the GPU test host's torch (big)
    nox -s newest                      # the newest release of everything, resolved when it runs (big)
    nox -t matrix                      # every cell (no report)
    nox -s matrix                      # every cell, then docs/matrix.md
    nox -s matrix -- newest            # some cells, the report keeps every result in .nox/matrix/

A session runs the core suite and, where it installs them, each plugin's suite: each suite is a
row of the report (``<session>: tests``, ``<session>: plugins-jax``, ...), with the versions it ran
and when. ``minimums`` installs exactly the pins of ``requirements/minimums.txt`` on the oldest
Python declared; ``newest`` asks for no version at all on the newest Python declared, so it takes
whatever the package index serves the day it runs (the report records what that was; the
machine's pip cap on torch is lifted for that session only). torch 2.13.0 is the CPU wheel on
local disk; any other torch is a CUDA build of several GB that also runs on CPU: those sessions
carry the ``big`` tag and CI does not run them.

Documentation: ``docs`` (strict build, generated pages up to date, scripts/check_site.py over
the HTML; run by CI), and on request ``docs-screenshots`` (every page in headless Chromium at
1280 px) and ``docs-install`` (docs/install.md's pip commands in fresh virtual environments).

The GPU test host runs ``scripts/gpu-check`` (offline, no nox there); CI runs its ``--dry-run``.

Packaging: ``build`` writes the sdist and wheel of arrayferry and of every plugin into ``dist/``
and checks them (twine check, check-wheel-contents); ``install`` installs from ``dist/`` into fresh
virtual environments as a user would and runs every install command the docs and the error hints
give (scripts/install_check.py).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "typecheck", "tests"]

ROOT = Path(__file__).parent
MATRIX_DIR = ROOT / ".nox" / "matrix"
REPORT = ROOT / "docs" / "matrix.md"
REQ = ROOT / "requirements"


def _interpreter(version: str) -> str:
    """A working ``pythonX.Y``: on PATH, else a pyenv build of it (a pyenv shim on PATH may not run it)."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")), reverse=True)
    for c in candidates:
        if c and subprocess.call([c, "-c", "pass"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
            return c
    return version  # nox reports it missing


#: The Python versions pyproject.toml declares (requires-python and classifiers; tests/test_packaging.py
#: checks they agree): the oldest runs everyday sessions and the minimums, the newest the newest releases.
PY_OLDEST, PY_NEWEST = "3.11", "3.12"
PYTHON = _interpreter(PY_OLDEST)
PYTHON_NEWEST = _interpreter(PY_NEWEST)

# -- the matrix ------------------------------------------------------------------------------------
#: torch, always pinned exactly; 2.13.0 is the CPU wheel on local disk, the others CUDA builds.
TORCH_DEFAULT = "torch==2.13.0"
BIG_TORCH = {"2.3", "2.11"}
#: Plugin directory -> report name of its suite.
PLUGIN_ROWS = {
    "arrayferry-jax": "plugins-jax",
    "arrayferry-array-api-strict": "plugins-array-api-strict",
    "arrayferry-dask": "plugins-dask",
}
#: The newest release of every framework, unpinned: resolved by pip when the session runs.
NEWEST = ["numpy", "torch", "ml_dtypes", "pluggy", "jax", "jaxlib", "array-api-strict", "dask[array]", "distributed",
          "cupy-cuda12x", "array-api-compat", "matplotlib"]

#: session name -> the report rows (one per suite) it writes
MATRIX_CELLS: dict[str, list[str]] = {}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")


def _plugin_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def _row_name(plugin: Path) -> str:
    return PLUGIN_ROWS.get(plugin.name, "plugins-" + plugin.name.removeprefix("arrayferry-"))


def _read_pins(path: Path) -> list[str]:
    return [p for p in (ln.split("#")[0].strip() for ln in path.read_text().splitlines()) if p]


def _pin_name(pin: str) -> str:
    return re.split(r"[\[=<>]", pin, maxsplit=1)[0].lower().replace("_", "-")


def _minimums(torch: str | None = None, plugin: Path | None = None) -> list[str]:
    """The pins of requirements/minimums.txt, with a plugin's own minimums-<plugin>.txt over them
    and torch replaced by ``torch`` when given."""
    pins = _read_pins(REQ / "minimums.txt")
    if plugin is not None:
        over = {_pin_name(p): p for p in _read_pins(_own_minimums(plugin))}
        pins = [over.pop(_pin_name(p), p) for p in pins] + list(over.values())
    if torch is not None:
        pins = [torch if _pin_name(p) == "torch" else p for p in pins]
    return pins


def _own_minimums(plugin: Path) -> Path:
    return REQ / f"minimums-{plugin.name}.txt"


def _pytest(session: nox.Session, cell: str, *paths: str, extra: tuple[str, ...] = (), asked: list[str] | None = None,
            check: bool = True) -> bool:
    """Run pytest through scripts/matrix_report.py: JUnit XML plus a summary for the matrix report.

    ``asked`` is what the session asked pip for (pins, or bare names for the newest release); the
    summary records it beside the versions installed. Returns True when pytest passed.
    """
    MATRIX_DIR.mkdir(parents=True, exist_ok=True)
    session.env["ARRAYFERRY_MATRIX_CELL"] = cell  # tests of the committed report skip: this run rewrites it
    slug = _slug(cell)
    versions = str(MATRIX_DIR / f"{slug}.versions.json")
    session.run("python", "scripts/matrix_report.py", "versions", "--out", versions, "--asked", json.dumps(asked or []))
    cmd = ["python", "scripts/matrix_report.py", "pytest", "--junit", str(MATRIX_DIR / f"{slug}.xml"),
           "--versions", versions, "--out", str(MATRIX_DIR / f"{slug}.json"), cell, "--",
           *paths, *extra, *session.posargs]
    if check:
        session.run(*cmd)
        return True
    session.run(*cmd, success_codes=list(range(256)))
    return _passed(MATRIX_DIR / f"{slug}.json")


def _passed(summary: Path) -> bool:
    try:
        d = json.loads(summary.read_text())
    except (OSError, ValueError):
        return False
    return d.get("pytest_rc") == 0


def _suites(session: nox.Session, name: str, asked: list[str], plugins: list[Path] | None = None,
            core: bool = True) -> None:
    """Run the core suite and each plugin's suite as separate report rows; fail at the end."""
    failed = []
    plugins = _plugin_dirs() if plugins is None else plugins
    rows = [(f"{name}: tests", "tests")] if core else []
    rows += [(f"{name}: {_row_name(p)}", str(p / "tests")) for p in plugins]
    for row, path in rows:
        session.log(f"pytest {path} ({row})")
        if not _pytest(session, row, path, asked=asked, check=False):
            failed.append(row)
    if failed:
        session.error(f"failing suites: {', '.join(failed)}")


def _skip(session: nox.Session, cell: str, reason: str) -> None:
    """Skip a cell, leaving the reason for the matrix report."""
    MATRIX_DIR.mkdir(parents=True, exist_ok=True)
    (MATRIX_DIR / f"{_slug(cell)}.json").write_text(
        json.dumps({"cell": cell, "tests": 0, "skipped_session": True, "note": f"session skipped: {reason}"}))
    session.skip(reason)


# -- everyday sessions -----------------------------------------------------------------------------
@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the core, plugins, tests and scripts."""
    session.install("ruff")
    session.run("ruff", "check", ".", *session.posargs)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the core (configuration in pyproject.toml)."""
    session.install("mypy", TORCH_DEFAULT, "-e", ".[test]")  # pytest: arrayferry.testing is typed against it
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """README command 2's environment (requirements/ci.txt): core and plugin suites, each run even if one fails."""
    session.install("-r", str(REQ / "ci.txt"))
    suites = ["tests"] + [str(p / "tests") for p in _plugin_dirs() if (p / "tests").is_dir()]
    failed = []
    for suite in suites:
        session.log(f"pytest {suite}")
        if subprocess.call([str(Path(session.bin) / "python"), "-m", "pytest", suite, *session.posargs], cwd=ROOT):
            failed.append(suite)
    if failed:
        session.error(f"failing suites: {', '.join(failed)}")


# -- the matrix cells ------------------------------------------------------------------------------
def _minimums_cell(torch: str) -> None:
    name = f"minimums(torch='{torch}')"
    pin = f"torch=={torch}.0"
    tags = ["matrix", "minimums"] + (["big"] if torch in BIG_TORCH else [])

    plugins = [p for p in _plugin_dirs() if not _own_minimums(p).exists()]

    def cell(session: nox.Session) -> None:
        pins = _minimums(pin)
        # the pins go in the same pip call as what declares the minimums, so a pin below a
        # declared minimum (or a declared minimum above a pin) fails the install
        session.install(*pins, "-e", ".[test,plot]", *[a for p in plugins for a in ("-e", str(p))])
        _suites(session, name, asked=pins, plugins=plugins)

    cell.__doc__ = (f"Every declared minimum (requirements/minimums.txt) with torch {pin.split('==')[1]}, "
                    f"Python {PY_OLDEST}: core and plugin suites (plugins with their own minimums aside).")
    nox.session(python=PYTHON, name=name, tags=tags, default=False)(cell)
    MATRIX_CELLS[name] = [f"{name}: tests"] + [f"{name}: {_row_name(p)}" for p in plugins]


_minimums_cell("2.13")
_minimums_cell("2.3")  # torch's declared minimum (TorchAdapter.min_version: uint16/32/64 tensors exist from 2.3)
_minimums_cell("2.11")  # the GPU test host's torch


_OTHER_FRAMEWORKS = {"cupy-cuda12x", "jax", "jaxlib", "dask", "distributed", "matplotlib"}


def _plugin_minimums_cell(plugin: Path) -> None:
    """A plugin that raises a core minimum (requirements/minimums-<plugin>.txt): its suite on its own pins."""
    name = f"minimums-{plugin.name.removeprefix('arrayferry-')}"

    def cell(session: nox.Session) -> None:
        # only what the plugin and its peers need: the other frameworks' minimums may not import
        # beside the plugin's raised ones (CuPy 13.0 is built against NumPy 1)
        pins = [p for p in _minimums(TORCH_DEFAULT, plugin=plugin) if _pin_name(p) not in _OTHER_FRAMEWORKS]
        session.install(*pins, "-e", ".[test]", "-e", str(plugin))
        _suites(session, name, asked=pins, plugins=[plugin], core=False)

    cell.__doc__ = f"The {plugin.name} plugin's suite on its own minimums ({_own_minimums(plugin).relative_to(ROOT)})."
    nox.session(python=PYTHON, name=name, tags=["matrix", "minimums"], default=False)(cell)
    MATRIX_CELLS[name] = [f"{name}: {_row_name(plugin)}"]


for _p in _plugin_dirs():
    if _own_minimums(_p).exists():
        _plugin_minimums_cell(_p)


@nox.session(python=PYTHON_NEWEST, tags=["matrix", "newest", "big"], default=False)
def newest(session: nox.Session) -> None:
    """The newest release of every framework (resolved now, unpinned), Python 3.12: core and plugin suites."""
    # The machine's pip configuration may cap torch at a release on its disk: lifted here, so
    # "newest" is what the index serves today (a CUDA build of several GB, run on the CPU).
    session.env["PIP_CONSTRAINT"] = os.devnull
    plugins = [a for p in _plugin_dirs() for a in ("-e", str(p))]
    session.install("--upgrade", "--upgrade-strategy", "eager", *NEWEST, "-e", ".[test,plot]", *plugins)
    _suites(session, "newest", asked=NEWEST)


MATRIX_CELLS["newest"] = ["newest: tests"] + [f"newest: {_row_name(p)}" for p in _plugin_dirs()]


#: What the GPU test host runs (scripts/gpu-check), here on the CPU: the same releases, so a failure
#: there that is not about the GPU shows here first.
GPU_HOST = ["numpy==2.5.2", "torch==2.11.0", "jax==0.11.2", "jaxlib==0.11.2", "cupy-cuda13x==14.2.0"]


@nox.session(python=PYTHON_NEWEST, name="gpu-host-versions", tags=["matrix", "big"], default=False)
def gpu_host_versions(session: nox.Session) -> None:
    """The GPU test host's releases (Python 3.12, torch 2.11.0, NumPy 2.5.2, JAX 0.11.2, CuPy 14.2.0) on the CPU."""
    plugins = [a for p in _plugin_dirs() for a in ("-e", str(p))]
    session.install(*GPU_HOST, "-e", ".[test]", *plugins)
    _suites(session, "gpu-host-versions", asked=GPU_HOST)


MATRIX_CELLS["gpu-host-versions"] = (["gpu-host-versions: tests"]
                                     + [f"gpu-host-versions: {_row_name(p)}" for p in _plugin_dirs()])


@nox.session(python=PYTHON, name="tests(numpy='2.0', torch='2.13')", tags=["matrix", "core"], default=False)
def tests_numpy20(session: nox.Session) -> None:
    """Core suite on the first NumPy 2 release line (legacy DLPack, ``__array__(copy=)``) and torch 2.13.0."""
    asked = ["numpy==2.0.*", TORCH_DEFAULT]
    session.install(*asked, "-e", ".[test]")
    _pytest(session, "tests(numpy='2.0', torch='2.13')", "tests", asked=asked)


MATRIX_CELLS["tests(numpy='2.0', torch='2.13')"] = ["tests(numpy='2.0', torch='2.13')"]


@nox.session(python=False, default=False)
def matrix(session: nox.Session) -> None:
    """Run every matrix session (or those named after --), then write docs/matrix.md; fails if one failed."""
    wanted = list(session.posargs) or list(MATRIX_CELLS)
    unknown = [c for c in wanted if c not in MATRIX_CELLS]
    if unknown:
        session.error(f"unknown cells {unknown}; known: {list(MATRIX_CELLS)}")
    MATRIX_DIR.mkdir(parents=True, exist_ok=True)
    failed = []
    for cell in wanted:
        rows = MATRIX_CELLS[cell]
        for row in rows:
            slug = _slug(row)
            for stale in (MATRIX_DIR / f"{slug}.json", MATRIX_DIR / f"{slug}.xml"):
                stale.unlink(missing_ok=True)
        session.log(f"matrix: running {cell}")
        started = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", cell], cwd=ROOT)
        seconds = time.monotonic() - started
        for row in rows:
            summary = MATRIX_DIR / f"{_slug(row)}.json"
            data = json.loads(summary.read_text()) if summary.exists() else {"cell": row, "tests": 0}
            data.update({"rc": rc, "session": cell, "session_seconds": round(seconds, 1)})
            data.setdefault("finished", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
            if not summary.exists():
                data["note"] = ("the session failed before pytest ran (install?): see the nox log" if rc
                                else "the session ran no pytest (skipped?): see the nox log")
                data["skipped_session"] = rc == 0
            summary.write_text(json.dumps(data, indent=2))
        if rc != 0:
            failed.append(cell)
    subprocess.check_call([sys.executable, str(ROOT / "scripts" / "matrix_report.py"), "render",
                           "--results", str(MATRIX_DIR), "--out", str(REPORT),
                           "--cells", json.dumps([r for rows in MATRIX_CELLS.values() for r in rows])], cwd=ROOT)
    session.log(f"wrote {REPORT.relative_to(ROOT)}")
    if failed:
        session.error(f"failing cells: {', '.join(failed)}")


# -- packaging -------------------------------------------------------------------------------------
DIST = ROOT / "dist"


@nox.session(python=PYTHON, default=False)
def build(session: nox.Session) -> None:
    """sdist and wheel of arrayferry and every plugin into dist/, checked by twine and check-wheel-contents."""
    session.install("build", "twine", "check-wheel-contents")
    shutil.rmtree(DIST, ignore_errors=True)
    for project in [ROOT, *_plugin_dirs()]:
        session.run("python", "-m", "build", "--outdir", str(DIST), str(project))
    session.run("twine", "check", "--strict", *sorted(str(f) for f in DIST.iterdir()))
    session.run("check-wheel-contents", *sorted(str(f) for f in DIST.glob("*.whl")))


@nox.session(python=PYTHON, default=False)
def install(session: nox.Session) -> None:
    """Fresh virtual environments installed from dist/ as a user would; every install hint run as written."""
    if not any(DIST.glob("arrayferry-*.whl")):
        session.error("dist/ has no wheels: run `nox -s build` first")
    session.run("python", "scripts/install_check.py", "--dist", str(DIST), *session.posargs)


# -- GPU hosts, benchmarks, docs -------------------------------------------------------------------
@nox.session(name="tests-cuda", python=PYTHON, default=False, tags=["gpu"])
def tests_cuda(session: nox.Session) -> None:
    """GPU tests only (pytest -m "cuda or multigpu"), on a CUDA build of torch plus CuPy."""
    # torch 2.14.1 is built against CUDA 13 (its nvidia-*-cu13 wheels): CuPy and cuda-core match it
    # cuda-core does not import without cuda-bindings: its cu13 extra brings the matching one
    session.install("torch==2.14.1", "cupy-cuda13x", "cuda-core[cu13]", "-e", ".[test]")
    _pytest(session, "tests-cuda", "tests", extra=("-m", "cuda or multigpu"))


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (benchmarks/run.py), printed as ratios against the native calls; args after -- pass through."""
    session.install("-r", str(REQ / "ci.txt"))
    session.run("python", "benchmarks/run.py", *session.posargs)


DOC_GENERATORS = ["gen_hook_docs.py", "gen_cli_docs.py", "gen_versions_table.py", "gen_bench_docs.py"]


@nox.session(python=PYTHON, default=False)
def docs(session: nox.Session) -> None:
    """Build the site strictly and check it: generated pages up to date, then scripts/check_site.py
    over the HTML (links, anchors, images, no raw reST or Markdown, one entry per public name)."""
    session.install("-e", ".[docs]")
    for gen in DOC_GENERATORS:
        session.run("python", f"scripts/{gen}", "--check")
    session.run("mkdocs", "build", "--strict", *session.posargs)
    session.run("python", "scripts/check_site.py", "site")


@nox.session(name="docs-screenshots", python=PYTHON, default=False)
def docs_screenshots(session: nox.Session) -> None:
    """On request: build the site and screenshot every page at 1280 px in headless Chromium
    (screenshots/; needs Debian's chromium: apt-get install chromium). Args after -- pass to
    scripts/screenshot_site.py (e.g. pages: api/ frameworks/jax/)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")
    session.run("python", "scripts/screenshot_site.py", "--site", "site", "--out", "screenshots", *session.posargs)


@nox.session(name="docs-install", python=PYTHON, default=False)
def docs_install(session: nox.Session) -> None:
    """On request: every pip command of docs/install.md installs for real into a fresh venv, then
    `arrayferry info --devices` checks it (slow: torch and CuPy are large)."""
    session.install("-r", str(REQ / "ci.txt"))
    session.run("python", "-m", "pytest", "tests/test_install_docs.py", "-p", "no:cacheprovider", *session.posargs,
                env={"ARRAYFERRY_TEST_INSTALL": "1"})
