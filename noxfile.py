"""nox sessions for arrayferry: lint, types, tests, the version matrix, benchmarks, docs.

Everyday sessions (run by a bare ``nox``): ``lint``, ``typecheck``, ``tests``.

Documentation: ``docs`` (strict build, generated pages up to date, scripts/check_site.py over
the HTML; run by CI), and on request ``docs-screenshots`` (every page in headless Chromium at
1280 px) and ``docs-install`` (docs/install.md's pip commands in fresh virtual environments).

The version matrix: one session per cell, named so that a cell runs alone::

    nox -s "tests(numpy='1.26', torch='2.13')"     # core suite, NumPy 1.26, torch 2.13.0
    nox -s "plugins-jax(jax='0.4.30')"             # the JAX plugin's suite on JAX 0.4.30
    nox -t matrix                                  # every cell (no report)
    nox -s matrix                                  # every cell, then docs/matrix.md
    nox -s matrix -- "tests(numpy='1.26', torch='2.13')" plugins-dask   # some cells, report all results kept

Each cell writes pytest's JUnit XML and a summary to ``.nox/matrix/``; ``matrix`` renders every
summary found there into ``docs/matrix.md`` (so cells run one at a time accumulate) and fails
when any cell it ran failed. torch is always pinned exactly: 2.13.0 is the CPU wheel on local
disk, 2.14.1 a CUDA build that also runs on CPU (about 5.5 GB installed: its cells carry the
``big`` tag, and CI does not run them). Virtual environments are reused (``reuse_venv``);
``venv`` is the backend because uv does not see the local torch wheel.
"""

from __future__ import annotations

import json
import re
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
PYTHON = "3.11"

# -- the matrix ------------------------------------------------------------------------------------
#: numpy spec per short name: the oldest supported, the first 2.x, and the newest.
NUMPY = {"1.26": "numpy==1.26.*", "2.0": "numpy==2.0.*", "2.4": "numpy==2.4.*"}
NUMPY_NEWEST = "2.4"
#: torch, always pinned exactly.
TORCH = {"2.13": "torch==2.13.0", "2.14.1": "torch==2.14.1"}
TORCH_DEFAULT = "2.13"
#: Core cells (numpy, torch). torch 2.14.1 is 5.5 GB: one cell only, tagged ``big``.
CORE_CELLS = [("1.26", "2.13"), ("2.0", "2.13"), ("2.4", "2.13"), ("2.4", "2.14.1")]
BIG_TORCH = {"2.14.1"}
#: JAX releases the JAX plugin's suite runs on (jax and jaxlib pinned together), each with the
#: NumPy it runs with: the plugin's declared minimum (arrayferry-jax's ``min_version``) and the newest.
JAX = {"0.4.30": "2.0", "0.10.2": NUMPY_NEWEST}
#: Plugin directory -> (session base name, framework requirements).
PLUGINS = {
    "arrayferry-jax": ("plugins-jax", None),  # parametrized over JAX
    "arrayferry-array-api-strict": ("plugins-array-api-strict", ["array-api-strict"]),
    "arrayferry-dask": ("plugins-dask", ["dask[array,distributed]"]),
    "arrayferry-pyarrow": ("plugins-pyarrow", ["pyarrow"]),
}
#: What the default ``tests`` session adds so every plugin suite can run.
PLUGIN_FRAMEWORKS = ["jax", "array-api-strict", "dask[array,distributed]", "pyarrow"]

MATRIX_CELLS: list[str] = []


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")


def _plugin_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def _install_core(session: nox.Session, numpy: str, torch: str) -> None:
    session.install(NUMPY[numpy], TORCH[torch], "-e", ".[test]")


def _pytest(session: nox.Session, cell: str, *paths: str, extra: tuple[str, ...] = ()) -> None:
    """Run pytest through scripts/matrix_report.py: JUnit XML plus a summary for the matrix report."""
    MATRIX_DIR.mkdir(parents=True, exist_ok=True)
    slug = _slug(cell)
    versions = str(MATRIX_DIR / f"{slug}.versions.json")
    session.run("python", "scripts/matrix_report.py", "versions", "--out", versions)
    session.run("python", "scripts/matrix_report.py", "pytest", "--junit", str(MATRIX_DIR / f"{slug}.xml"),
                "--versions", versions, "--out", str(MATRIX_DIR / f"{slug}.json"), cell, "--",
                *paths, *extra, *session.posargs)


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
    session.install("mypy", NUMPY[NUMPY_NEWEST], "-e", ".[test]")  # pytest: arrayferry.testing is typed against it
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Default environment: newest NumPy, torch 2.13.0, every plugin and its framework; core and plugin suites."""
    _install_core(session, NUMPY_NEWEST, TORCH_DEFAULT)
    plugins = _plugin_dirs()
    if plugins:
        session.install(*PLUGIN_FRAMEWORKS, *[a for p in plugins for a in ("-e", str(p))])
    suites = ["tests"] + [str(p / "tests") for p in plugins if (p / "tests").is_dir()]
    failed = []
    for suite in suites:  # every suite runs; the session fails at the end if any failed
        session.log(f"pytest {suite}")
        if subprocess.call([str(Path(session.bin) / "python"), "-m", "pytest", suite, *session.posargs], cwd=ROOT):
            failed.append(suite)
    if failed:
        session.error(f"failing suites: {', '.join(failed)}")


def _core_cell(numpy: str, torch: str) -> None:
    name = f"tests(numpy='{numpy}', torch='{torch}')"
    tags = ["matrix", "core"] + (["big"] if torch in BIG_TORCH else [])

    def cell(session: nox.Session) -> None:
        _install_core(session, numpy, torch)
        _pytest(session, name, "tests")

    cell.__doc__ = f"Core suite on NumPy {numpy} and torch {TORCH[torch].split('==')[1]}."
    nox.session(python=PYTHON, name=name, tags=tags, default=False)(cell)
    MATRIX_CELLS.append(name)


for _np, _torch in CORE_CELLS:
    _core_cell(_np, _torch)


def _plugin_cell(dirname: str, name: str, frameworks: list[str], doc: str, numpy: str = NUMPY_NEWEST) -> None:
    def cell(session: nox.Session) -> None:
        path = ROOT / "plugins" / dirname
        if not (path / "pyproject.toml").is_file():
            _skip(session, name, f"plugins/{dirname} does not exist in this checkout")
        session.install(NUMPY[numpy], TORCH[TORCH_DEFAULT], "-e", ".[test]", *frameworks, "-e", str(path))
        _pytest(session, name, str(path / "tests"))

    cell.__doc__ = doc
    nox.session(python=PYTHON, name=name, tags=["matrix", "plugins"], default=False)(cell)
    MATRIX_CELLS.append(name)


for _dir, (_base, _fw) in PLUGINS.items():
    if _fw is None:  # JAX: one cell per release
        for _jax, _jnp in JAX.items():
            _plugin_cell(_dir, f"{_base}(jax='{_jax}')", [f"jax=={_jax}", f"jaxlib=={_jax}"],
                         f"The JAX plugin's suite on JAX {_jax} (NumPy {_jnp}).", numpy=_jnp)
    else:
        _plugin_cell(_dir, _base, _fw, f"The {_dir} plugin's suite.")

# plugins added later without an entry above still get a session
for _p in _plugin_dirs():
    if _p.name not in PLUGINS:
        _plugin_cell(_p.name, "plugins-" + _p.name.removeprefix("arrayferry-"), [], f"The {_p.name} plugin's suite.")


@nox.session(python=False, default=False)
def matrix(session: nox.Session) -> None:
    """Run every matrix cell (or those named after --), then write docs/matrix.md; fails if a cell failed."""
    wanted = list(session.posargs) or MATRIX_CELLS
    unknown = [c for c in wanted if c not in MATRIX_CELLS]
    if unknown:
        session.error(f"unknown cells {unknown}; known: {MATRIX_CELLS}")
    MATRIX_DIR.mkdir(parents=True, exist_ok=True)
    failed = []
    for cell in wanted:
        slug = _slug(cell)
        for stale in (MATRIX_DIR / f"{slug}.json", MATRIX_DIR / f"{slug}.xml"):
            stale.unlink(missing_ok=True)
        session.log(f"matrix: running {cell}")
        started = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", cell], cwd=ROOT)
        seconds = time.monotonic() - started
        summary = MATRIX_DIR / f"{slug}.json"
        data = json.loads(summary.read_text()) if summary.exists() else {"cell": cell, "tests": 0}
        data.update({"rc": rc, "wall_seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        if not summary.exists():
            data["note"] = ("the session failed before pytest ran (install?): see the nox log" if rc
                            else "the session ran no pytest (skipped?): see the nox log")
            data["skipped_session"] = rc == 0
        summary.write_text(json.dumps(data, indent=2))
        if rc != 0:
            failed.append(cell)
    subprocess.check_call([sys.executable, str(ROOT / "scripts" / "matrix_report.py"), "render",
                           "--results", str(MATRIX_DIR), "--out", str(REPORT),
                           "--cells", json.dumps(MATRIX_CELLS)], cwd=ROOT)
    session.log(f"wrote {REPORT.relative_to(ROOT)}")
    if failed:
        session.error(f"failing cells: {', '.join(failed)}")


# -- GPU hosts, benchmarks, docs -------------------------------------------------------------------
@nox.session(name="tests-cuda", python=PYTHON, default=False, tags=["gpu"])
def tests_cuda(session: nox.Session) -> None:
    """GPU tests only (pytest -m "cuda or multigpu"), on a CUDA build of torch plus CuPy."""
    # torch 2.14.1 is built against CUDA 13 (its nvidia-*-cu13 wheels): CuPy and cuda-core match it
    # cuda-core does not import without cuda-bindings: its cu13 extra brings the matching one
    session.install(NUMPY[NUMPY_NEWEST], TORCH["2.14.1"], "cupy-cuda13x", "cuda-core[cu13]", "-e", ".[test]")
    _pytest(session, "tests-cuda", "tests", extra=("-m", "cuda or multigpu"))


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (benchmarks/run.py), printed as ratios against the native calls; args after -- pass through."""
    session.install(NUMPY[NUMPY_NEWEST], TORCH[TORCH_DEFAULT], "-e", ".[test,plot]")
    plugins = _plugin_dirs()
    if plugins:
        session.install(*PLUGIN_FRAMEWORKS, *[a for p in plugins for a in ("-e", str(p))])
    session.run("python", "benchmarks/run.py", *session.posargs)


DOC_GENERATORS = ["gen_hook_docs.py", "gen_cli_docs.py", "gen_versions_table.py"]


@nox.session(python=PYTHON, default=False)
def docs(session: nox.Session) -> None:
    """Build the site strictly and check it: generated pages up to date, then scripts/check_site.py
    over the HTML (links, anchors, images, no raw reST or Markdown, one entry per public name)."""
    session.install(NUMPY[NUMPY_NEWEST], "-e", ".[docs]")
    for gen in DOC_GENERATORS:
        session.run("python", f"scripts/{gen}", "--check")
    session.run("mkdocs", "build", "--strict", *session.posargs)
    session.run("python", "scripts/check_site.py", "site")


@nox.session(name="docs-screenshots", python=PYTHON, default=False)
def docs_screenshots(session: nox.Session) -> None:
    """On request: build the site and screenshot every page at 1280 px in headless Chromium
    (screenshots/; needs Debian's chromium: apt-get install chromium). Args after -- pass to
    scripts/screenshot_site.py (e.g. pages: api/ frameworks/jax/)."""
    session.install(NUMPY[NUMPY_NEWEST], "-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")
    session.run("python", "scripts/screenshot_site.py", "--site", "site", "--out", "screenshots", *session.posargs)


@nox.session(name="docs-install", python=PYTHON, default=False)
def docs_install(session: nox.Session) -> None:
    """On request: every pip command of docs/install.md installs for real into a fresh venv, then
    `arrayferry info --devices` checks it (slow: torch and CuPy are large)."""
    _install_core(session, NUMPY_NEWEST, TORCH_DEFAULT)
    session.install(*PLUGIN_FRAMEWORKS)
    session.run("python", "-m", "pytest", "tests/test_install_docs.py", "-p", "no:cacheprovider", *session.posargs,
                env={"ARRAYFERRY_TEST_INSTALL": "1"})
