"""Install arrayferry from dist/ as a user would, and run every install command the hints and docs give.

Run by ``nox -s install`` after ``nox -s build`` (standard library only)::

    python scripts/install_check.py --dist dist [--only NAME ...] [--list] [--keep]

Each scenario makes a fresh virtual environment under ``.nox/install-check/`` (removed when the
scenario ends unless ``--keep``: several hold a torch of about 1 GB) and uses pip
exactly as written in the hint or the doc; ``dist/`` is added to pip's find-links through the
environment (``PIP_FIND_LINKS``), which is how an index serves arrayferry and its plugins once
published: the extras ``jax``, ``dask`` and ``array-api-strict`` name plugin distributions that
only exist in ``dist/`` until then. Hint scenarios provoke the error, take the ``pip install``
command out of its ``Hint:`` line, run it, and repeat the call, which must then succeed.

Afterwards every ``pip install`` command found in README.md, docs/ and the plugins' READMEs that
no scenario ran is run, in turn, in one more fresh environment from the repository root. ``--list`` prints the
commands the hints and docs contain (tests/test_packaging.py checks them without installing).
Exit status 1 when anything failed; a summary table is printed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".nox" / "install-check"

#: ``pip install`` and its arguments, up to the end of the command (``&&``, ``;``, ``#``, ``(``, a backtick).
PIP_RE = re.compile(r"pip install((?:\s+(?:'[^'\n]*'|\"[^\"\n]*\"|[A-Za-z0-9_.\-\[\],=<>/~*+:]+))+)")

# Python run inside a scenario's venv: prints "OK <what>" or the error type and its message.
CONVERT = """
import sys, numpy as np, arrayferry as af
x = np.arange(6, dtype=np.float32).reshape(2, 3)
to = sys.argv[1]
try:
    y = af.convert(x, to)
    back = af.convert(y, "numpy", copy=True)
    assert back.dtype == np.float32 and back.shape == (2, 3) and (back == x).all(), back
    print("OK", af.framework_of(y), type(y).__module__, af.plan(x, to).route)
except Exception as exc:
    print("ERR", type(exc).__name__); print(exc)
"""
BF16 = """
import torch, arrayferry as af
t = torch.tensor([1.5, -0.0, float("inf")], dtype=torch.bfloat16)
try:
    a = af.convert(t, "numpy")
    assert str(a.dtype) == "bfloat16" and a.tobytes() == t.view(torch.int16).numpy().tobytes()
    print("OK", a.dtype)
except Exception as exc:
    print("ERR", type(exc).__name__); print(exc)
"""
FROM_JAX = """
import jax.numpy as jnp, numpy as np, arrayferry as af
x = jnp.arange(4, dtype=jnp.float32)
try:
    a = af.convert(x, "numpy")
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0] and a.dtype == np.float32
    print("OK", af.framework_of(x), "writable" if a.flags.writeable else "read-only")
except Exception as exc:
    print("ERR", type(exc).__name__); print(exc)
"""
NAMESPACE = """
import numpy as np, arrayferry as af
try:
    ns = af.namespace_for("numpy", np.ones(2))
    print("OK", ns.__name__)
except Exception as exc:
    print("ERR", type(exc).__name__); print(exc)
"""


class Failed(Exception):
    pass


class Env:
    """A fresh virtual environment for one scenario."""

    def __init__(self, name: str, dist: Path) -> None:
        self.name = name
        self.path = WORK / name
        shutil.rmtree(self.path, ignore_errors=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(self.path)
        self.env = dict(os.environ)
        self.env.pop("PYTHONPATH", None)
        self.env.pop("VIRTUAL_ENV", None)
        links = self.env.get("PIP_FIND_LINKS", "")
        self.env["PIP_FIND_LINKS"] = f"{links} {dist.resolve()}".strip()
        self.env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{self.env.get('PATH', '')}"
        self.ran: list[str] = []

    def sh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell command as typed, with this venv's bin/ first on PATH (so ``pip`` is its pip)."""
        print(f"  [{self.name}] $ {command}", flush=True)
        r = subprocess.run(command, shell=True, cwd=ROOT, env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise Failed(f"`{command}` exited {r.returncode}:\n{(r.stdout + r.stderr)[-3000:]}")
        return r

    def pip(self, command: str) -> None:
        """Run a ``pip install ...`` command as written."""
        self.sh(command)
        self.ran.append(normalize(command))

    def py(self, code: str, *args: str) -> tuple[bool, str]:
        r = subprocess.run([str(self.path / "bin" / "python"), "-c", code, *args], cwd=self.path, env=self.env,
                           capture_output=True, text=True)
        out = r.stdout.strip()
        if r.returncode != 0 or not out:
            raise Failed(f"python exited {r.returncode}: {(r.stdout + r.stderr)[-3000:]}")
        return out.startswith("OK"), out

    def expect_ok(self, code: str, *args: str) -> str:
        ok, out = self.py(code, *args)
        if not ok:
            raise Failed(f"expected success, got: {out}")
        print(f"    {out.splitlines()[0]}")
        return out

    def follow_hint(self, code: str, *args: str, error: str, command: str) -> None:
        """``code`` must fail with ``error`` whose Hint names ``command``; run it; ``code`` must then work."""
        ok, out = self.py(code, *args)
        if ok:
            raise Failed(f"expected {error}, but it worked: {out}")
        kind = out.splitlines()[0].removeprefix("ERR ").strip()
        hint = [ln for ln in out.splitlines() if "Hint:" in ln]
        if kind != error or not hint:
            raise Failed(f"expected {error} with a Hint, got: {out}")
        commands = [normalize(m.group(0)) for m in PIP_RE.finditer(hint[-1])]
        if normalize(command) not in commands:
            raise Failed(f"the hint does not give `{command}`: {hint[-1]}")
        print(f"    {error}: {hint[-1].strip()}")
        self.pip(command)
        self.expect_ok(code, *args)


def normalize(command: str) -> str:
    m = PIP_RE.search(command)
    if m is None:
        return command.strip()
    return "pip install " + " ".join(shlex.split(m.group(1)))


def hint_commands() -> list[str]:
    """Every ``pip install`` command that arrayferry's and the plugins' hints can print."""
    found: set[str] = set()
    for f in [*ROOT.glob("src/arrayferry/**/*.py"), *ROOT.glob("plugins/*/src/**/*.py")]:
        text = f.read_text()
        for m in PIP_RE.finditer(text):
            if "{" not in m.group(0):
                found.add(normalize(m.group(0)))
    return sorted(found)


def doc_commands() -> list[tuple[str, str]]:
    """(file, command) for every ``pip install`` command in README.md, docs/ and the plugins' READMEs."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted(ROOT.glob("plugins/*/README.md"))]
    out = []
    for f in files:
        if f.name == "matrix.md":  # generated: quotes pytest skip reasons
            continue
        for line in f.read_text().splitlines():
            for m in PIP_RE.finditer(line):
                out.append((str(f.relative_to(ROOT)), normalize(m.group(0))))
    return out


# -- scenarios --------------------------------------------------------------------------------------
def bare(dist: Path) -> list[str]:
    """arrayferry alone, then each missing piece installed by the command its error's hint gives."""
    e = Env("bare", dist)
    e.pip("pip install arrayferry")
    e.expect_ok(CONVERT, "numpy")
    e.follow_hint(CONVERT, "torch", error="UnknownFrameworkError", command="pip install 'torch==2.13.0'")
    e.follow_hint(BF16, error="UnsupportedDTypeError", command="pip install 'ml_dtypes>=0.4'")
    e.follow_hint(CONVERT, "jax", error="UnknownFrameworkError", command="pip install 'arrayferry[jax]'")
    e.follow_hint(NAMESPACE, error="ArrayFerryError", command="pip install 'array-api-compat>=1.12'")
    # the CLI's --plot without matplotlib
    r = e.sh("arrayferry matrix --frameworks numpy,torch --repeat 1 --plot m.png", check=False)
    if r.returncode == 0 or "Hint: pip install 'arrayferry[plot]'" not in r.stderr + r.stdout:
        raise Failed(f"--plot without matplotlib: expected the plot hint, got rc {r.returncode}: {r.stderr[-800:]}")
    e.pip("pip install 'arrayferry[plot]'")
    e.sh("arrayferry matrix --frameworks numpy,torch --repeat 1 --plot .nox/install-check/bare/m.png")
    return e.ran


def unregistered_jax(dist: Path) -> list[str]:
    """A JAX array handed over before the JAX plugin is installed: read through its DLPack protocol
    (read-only: JAX arrays are immutable); once ``arrayferry[jax]`` is installed, the plugin takes it."""
    e = Env("unregistered-jax", dist)
    e.pip("pip install arrayferry")
    e.sh("pip install 'jax>=0.4.30'")
    out = e.expect_ok(FROM_JAX)
    if out.split()[1:3] != ["dlpack", "read-only"]:
        raise Failed(f"without the JAX plugin, expected the DLPack protocol source and a read-only result, got: {out}")
    e.pip("pip install 'arrayferry[jax]'")
    out = e.expect_ok(FROM_JAX)
    if out.split()[1] != "jax":
        raise Failed(f"with the JAX plugin installed, expected framework_of to say jax, got: {out}")
    return e.ran


def extra(name: str, target: str, framework_dist: str, hint: str) -> object:
    def scenario(dist: Path) -> list[str]:
        e = Env(f"extra-{name}", dist)
        e.pip(f"pip install 'arrayferry[{name}]'")
        e.expect_ok(CONVERT, target)
        e.sh(f"pip uninstall -y {framework_dist}")
        e.follow_hint(CONVERT, target, error="UnknownFrameworkError", command=hint)
        return e.ran

    scenario.__name__ = f"extra_{name}"
    scenario.__doc__ = f"pip install 'arrayferry[{name}]' converts; without {framework_dist} the hint reinstalls it."
    return scenario


def too_old(dist: Path) -> list[str]:
    """A framework older than the adapter's min_version: the upgrade hint, run as written."""
    e = Env("too-old", dist)
    e.pip("pip install 'arrayferry[array-api-strict]'")
    e.sh("pip install 'array-api-strict==2.2'")  # below the declared minimum, 2.3 (pip warns)
    e.follow_hint(CONVERT, "array_api_strict", error="UnknownFrameworkError",
                  command="pip install --upgrade 'array-api-strict>=2.3'")
    return e.ran


def cupy(dist: Path) -> list[str]:
    """CuPy's hint installs CuPy; without a GPU, planning works and converting says why not."""
    e = Env("cupy", dist)
    e.pip("pip install arrayferry")
    ok, out = e.py(CONVERT, "cupy")
    if ok or "pip install 'cupy-cuda12x>=13.0'" not in out:
        raise Failed(f"expected the CuPy install hint, got: {out}")
    e.pip("pip install 'cupy-cuda12x>=13.0'")
    ok, out = e.py(CONVERT, "cupy")
    if ok:  # a GPU machine: fine
        return e.ran
    if "cannot be imported" in out or "DeviceError" not in out.splitlines()[0]:
        raise Failed(f"after installing CuPy, expected a DeviceError (no GPU), got: {out}")
    print(f"    {out.splitlines()[0]} (no GPU here: CuPy imports, the device is refused)")
    return e.ran


def all_extras(dist: Path) -> list[str]:
    """The remaining extras install as written: ``all`` (torch, cupy, plot, array-api-compat)."""
    e = Env("extra-all", dist)
    e.pip("pip install 'arrayferry[all]'")
    e.expect_ok(CONVERT, "torch")
    e.expect_ok(NAMESPACE)
    return e.ran


#: Doc commands that .ci/run itself runs as written (README command 2).
RUN_BY_CI = {"pip install -r requirements/ci.txt"}

SCENARIOS = {
    "bare": bare,
    "unregistered-jax": unregistered_jax,
    "extra-jax": extra("jax", "jax", "jax", "pip install 'jax>=0.4.30'"),
    "extra-dask": extra("dask", "dask", "dask", "pip install 'dask[array]>=2025.2'"),
    "extra-array-api-strict": extra("array-api-strict", "array_api_strict", "array-api-strict",
                                    "pip install 'array-api-strict>=2.3'"),
    "extra-torch": extra("torch", "torch", "torch", "pip install 'torch==2.13.0'"),
    "extra-pyarrow": extra("pyarrow", "pyarrow", "pyarrow", "pip install 'pyarrow>=18.0'"),
    "too-old": too_old,
    "cupy": cupy,
    "extra-all": all_extras,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dist", type=Path, default=ROOT / "dist")
    ap.add_argument("--only", nargs="*", help=f"scenarios to run (default: all): {', '.join(SCENARIOS)}, docs")
    ap.add_argument("--list", action="store_true", help="print the hint and doc commands, install nothing")
    ap.add_argument("--keep", action="store_true", help="keep each scenario's venv under .nox/install-check/")
    a = ap.parse_args(argv)
    if a.list:
        for c in hint_commands():
            print(f"hint\t{c}")
        for f, c in doc_commands():
            print(f"{f}\t{c}")
        return 0
    wanted = a.only or [*SCENARIOS, "docs"]
    results: list[tuple[str, str, float]] = []
    ran: set[str] = set()
    for name in wanted:
        if name == "docs":
            continue
        started = time.monotonic()
        print(f"== {name}: {(SCENARIOS[name].__doc__ or '').strip()}", flush=True)
        try:
            ran.update(SCENARIOS[name](a.dist))  # type: ignore[operator]
            results.append((name, "passed", time.monotonic() - started))
        except Failed as exc:
            print(f"  FAILED: {exc}", flush=True)
            results.append((name, "FAILED", time.monotonic() - started))
        finally:
            if not a.keep:  # one scenario's venv on disk at a time (several hold a torch of ~1 GB)
                shutil.rmtree(WORK, ignore_errors=True)
    if "docs" in wanted:
        # one fresh environment, the commands in turn, each exactly as the doc writes it
        todo = [(f, c) for f, c in sorted(set(doc_commands())) if c not in ran and c not in RUN_BY_CI]
        env = Env("docs", a.dist) if todo else None
        for f, command in todo:
            if command in ran:
                continue
            started = time.monotonic()
            print(f"== docs: {command} ({f})", flush=True)
            try:
                env.pip(command)  # type: ignore[union-attr]
                ran.add(command)
                results.append((f"{f}: {command}", "passed", time.monotonic() - started))
            except Failed as exc:
                print(f"  FAILED: {exc}", flush=True)
                results.append((f"{f}: {command}", "FAILED", time.monotonic() - started))
        if not a.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    print("\nscenario | result | seconds")
    for name, res, s in results:
        print(f"{name} | {res} | {s:.0f}")
    failed = [n for n, r, _ in results if r != "passed"]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
