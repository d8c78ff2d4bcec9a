"""Write plugin distributions into a directory the way pip would (``.dist-info`` with entry points)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["FIXTURES", "make_dist", "run_python"]

FIXTURES = Path(__file__).parent


def make_dist(target: Path, name: str, entry_points: dict[str, str], modules: list[Path]) -> Path:
    """Install a distribution ``name`` into ``target``: copy ``modules``, write METADATA and entry_points.txt."""
    target.mkdir(parents=True, exist_ok=True)
    for m in modules:
        shutil.copy(m, target / m.name)
    info = target / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    lines = ["[arrayferry.plugins]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return target


def run_python(args: list[str], path: Path | None, cwd: Path | None = None, autoload: bool = True,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with ``path`` first on ``sys.path``; entry-point autoload on or off."""
    env = dict(os.environ)
    env.pop("ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD", None)
    if not autoload:
        env["ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
