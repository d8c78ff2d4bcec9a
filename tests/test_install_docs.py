"""Every command on docs/install.md is run.

Two depths, so the default suite stays offline and quick:

* **Every run** (default suite): the page's ``pip wheel`` command builds this checkout's wheels
  (arrayferry and the three plugins) into a temporary folder, then each ``pip install`` command
  is resolved with ``--dry-run --no-index`` against those wheels and this environment (the
  local wheels replace the index's ``arrayferry*`` distributions). That checks the extras exist,
  their requirements (the exact ``torch==2.13.0`` pin included) are consistent and resolvable,
  and the editable/checkout forms build. A command that needs a distribution this environment
  does not have (``cupy-cuda13x``) skips, naming it. ``arrayferry info --devices`` runs.
* **On request** (``ARRAYFERRY_TEST_INSTALL=1``, which ``nox -s docs-install`` sets): each
  ``pip install`` command really installs into a fresh virtual environment (package index
  reachable; this checkout's wheels instead of the index's arrayferry), then
  ``arrayferry info --devices --json`` runs there and must list the frameworks the command
  promised. Slow: torch and CuPy are large.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "install.md"
PLUGINS = ["arrayferry-jax", "arrayferry-dask", "arrayferry-array-api-strict"]
REAL_INSTALL = os.environ.get("ARRAYFERRY_TEST_INSTALL") == "1"
#: what ``arrayferry info`` must report as installed after each extra (the real-install test)
PROMISES = {
    "torch": {"torch"},
    "jax": {"jax"},
    "dask": {"dask"},
    "array-api-strict": {"array_api_strict"},
    "all": {"torch", "cupy"},
}


def page_commands() -> list[str]:
    """The commands in the page's ``bash`` blocks, one per line, comments removed."""
    text = PAGE.read_text(encoding="utf-8")
    out: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():  # a trailing backslash continues the line
            words = shlex.split(line, comments=True)
            if words:
                out.append(shlex.join(words))
    return out


COMMANDS = page_commands()
PIP_INSTALLS = [c for c in COMMANDS if c.startswith("pip install ")]
#: readable test ids (pytest falls back to cmdN for some strings)
IDS = [re.sub(r"[^\w.,=\[\]-]+", "_", c.removeprefix("pip install ")).strip("_") for c in PIP_INSTALLS]


def test_the_page_has_only_commands_this_test_runs() -> None:
    kinds = {c.split()[0] + " " + c.split()[1] for c in COMMANDS}
    assert kinds <= {"pip install", "pip wheel", "arrayferry info"}, kinds
    assert len(PIP_INSTALLS) >= 10 and any(c.startswith("pip wheel") for c in COMMANDS)
    assert "arrayferry info --devices" in COMMANDS


def _setuptools_builds_offline() -> str | None:
    """Why this environment cannot build the wheels without an index, or ``None``."""
    try:
        found = version("setuptools")
    except PackageNotFoundError:
        return "setuptools is not installed (the test extra brings it)"
    major, minor = (int(p) for p in re.findall(r"\d+", found)[:2])
    return None if (major, minor) >= (70, 1) else f"setuptools {found} < 70.1 has no built-in bdist_wheel"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout's packaging files and sources: setuptools leaves build/ and
    *.egg-info/ beside the sources it builds, and they must not land in the real one."""
    root = tmp_path_factory.mktemp("checkout")
    junk = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*cache", "tests", "benchmarks")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, root / name)
    for name in ("src", "plugins"):
        shutil.copytree(ROOT / name, root / name, ignore=junk)
    return root


@pytest.fixture(scope="module")
def wheels(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's ``pip wheel`` command, offline, writing into a temporary folder."""
    why = _setuptools_builds_offline()
    if why:
        pytest.skip(f"cannot build wheels offline: {why}; pip install 'setuptools>=70.1'")
    (cmd,) = [c for c in COMMANDS if c.startswith("pip wheel ")]
    dist = tmp_path_factory.mktemp("dist")
    args = shlex.split(cmd)[2:]
    args[args.index("-w") + 1] = str(dist)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-index", *args],
                       cwd=checkout, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    names = sorted(p.name.split("-")[0] for p in dist.glob("*.whl"))
    assert names == ["arrayferry", "arrayferry_array_api_strict", "arrayferry_dask", "arrayferry_jax"]
    return dist


def _wheel(dist: Path, project: str) -> Path:
    (w,) = dist.glob(project.replace("-", "_") + "-*.whl")
    return w


def localized(cmd: str, dist: Path, root: Path = ROOT) -> list[str]:
    """``pip install`` arguments with this checkout's wheels (and paths under ``root``) in place
    of the index's distributions."""
    out: list[str] = []
    args = shlex.split(cmd)[2:]
    for i, a in enumerate(args):
        m = re.fullmatch(r"(arrayferry(?:-[a-z-]+)?)(\[[a-z,-]+\])?", a)
        if m and m.group(1) in ("arrayferry", *PLUGINS):
            out.append(f"{a} @ {_wheel(dist, m.group(1)).as_uri()}")
        elif i > 0 and args[i - 1] == "-e":  # ".", ".[test]", "plugins/..." are relative to the checkout
            out.append(str(root) + a[1:] if a == "." or a.startswith(".[") else str(root / a))
        elif i > 0 and args[i - 1] == "--find-links":
            out.append(str(dist))
        else:
            out.append(a)
    return out


def _missing_here(stderr: str) -> str | None:
    m = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)", stderr)
    if not m:
        return None
    name = m.group(1)
    try:
        version(name)
    except PackageNotFoundError:
        return name
    return None


@pytest.mark.parametrize("cmd", PIP_INSTALLS, ids=IDS)
def test_pip_command_resolves_offline(cmd: str, wheels: Path, checkout: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation",
                        "--find-links", str(wheels), "--report", str(report), *localized(cmd, wheels, checkout)],
                       cwd=checkout, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and (name := _missing_here(r.stderr)):
        pytest.skip(f"{name} is not installed here and the offline check cannot fetch it "
                    "(nox -s docs-install installs it for real)")
    if r.returncode != 0 and "ResolutionImpossible" in r.stderr and ("[torch" in cmd or "[all" in cmd):
        try:
            installed = version("torch")
        except PackageNotFoundError:
            installed = None
        if installed is not None and not installed.startswith("2.13.0"):
            # e.g. the GPU test host (torch 2.11, Python 3.12): no torch 2.13.0 wheel to resolve offline
            pytest.skip(f"torch {installed} is installed here and no torch==2.13.0 wheel can be found offline "
                        "(nox -s docs-install installs it for real)")
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    json.loads(report.read_text())  # pip wrote its resolution report
    assert "does not provide the extra" not in r.stdout + r.stderr, r.stderr  # pip only warns on unknown extras
    if "[torch" in cmd or "[all" in cmd:  # the extra's torch requirement was resolved, and it is the pin
        assert "torch==2.13.0" in r.stdout, r.stdout[-3000:]


def test_torch_is_pinned_exactly_in_every_extra(wheels: Path) -> None:
    """The page says the ``torch`` extra pins torch==2.13.0: the built wheels' metadata says so too."""
    torch_reqs: list[str] = []
    for w in wheels.glob("*.whl"):
        with zipfile.ZipFile(w) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            for line in z.read(meta).decode().splitlines():
                if line.startswith("Requires-Dist: torch"):
                    torch_reqs.append(line)
    assert torch_reqs, "no wheel requires torch"
    for line in torch_reqs:
        assert re.match(r"Requires-Dist: torch==2\.13\.0\s*;", line), line
    assert "pins **`torch==2.13.0` exactly**" in PAGE.read_text(encoding="utf-8")


def _arrayferry_cli(python: str | Path) -> list[str]:
    return [str(python), "-m", "arrayferry"]


def test_arrayferry_info_devices_runs() -> None:
    script = Path(sys.executable).parent / "arrayferry"
    cmd = [str(script)] if script.exists() else _arrayferry_cli(sys.executable)
    r = subprocess.run([*cmd, "info", "--devices"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("arrayferry ") and "Frameworks:" in r.stdout and "devices" in r.stdout
    assert "numpy" in r.stdout and "(devices not probed" not in r.stdout


@pytest.mark.skipif(not REAL_INSTALL, reason="installs into fresh venvs: set ARRAYFERRY_TEST_INSTALL=1 "
                                             "(nox -s docs-install)")
@pytest.mark.slow
@pytest.mark.parametrize("cmd", PIP_INSTALLS, ids=IDS)
def test_pip_command_installs_into_a_fresh_venv(cmd: str, wheels: Path, checkout: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--find-links", str(wheels),
                        *localized(cmd, wheels, checkout)], cwd=checkout, capture_output=True, text=True, timeout=1800, env=env)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "does not provide the extra" not in r.stdout + r.stderr, r.stderr
    info = subprocess.run([*_arrayferry_cli(py), "info", "--devices", "--json"], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    installed = {f["name"] for f in data["frameworks"] if f["installed"]}
    assert "numpy" in installed
    for extra, frameworks in PROMISES.items():
        if re.search(rf"\[[a-z,-]*\b{re.escape(extra)}\b", cmd):
            assert frameworks <= installed, (cmd, installed)
    if re.search(r"\[[a-z,-]*\btorch\b", cmd):
        torch = next(f for f in data["frameworks"] if f["name"] == "torch")
        assert torch["version"].split("+")[0] == "2.13.0", torch
    assert not [p for p in data["plugins"] if p["status"] == "broken"], data["plugins"]
