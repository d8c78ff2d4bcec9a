"""Type checkers see ``convert(x, "torch")`` as ``torch.Tensor`` and ``convert(x, "numpy")`` as an ndarray.

mypy runs in a subprocess on a small snippet that uses ``reveal_type``; the test reads mypy's
notes. The package ships ``py.typed``. (Slow: mypy reads torch's annotations on a cold cache.)
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import arrayferry

SNIPPET = '''
import numpy as np
import arrayferry as af

x = np.zeros(3)
reveal_type(af.convert(x, "torch"))
reveal_type(af.convert(x, "numpy"))
reveal_type(af.convert(x, "np"))
reveal_type(af.convert(x, "pytorch", copy=False))
reveal_type(af.convert(x, "jax"))
target: str = "torch"
reveal_type(af.convert(x, target))
reveal_type(af.convert_tree({"a": x}, "torch"))
reveal_type(af.shares_memory(x, x))
reveal_type(af.plan_tree([x], "torch"))
reveal_type(af.converter("torch")(x))
reveal_type(af.converter("np", copy=True)(x))
reveal_type(af.converter(target))
'''

EXPECTED = [
    r"torch\._tensor\.Tensor|torch\.Tensor",
    r"numpy\.ndarray\[.*\]",
    r"numpy\.ndarray\[.*\]",
    r"torch\._tensor\.Tensor|torch\.Tensor",
    r"jax.*Array|Any",  # jax.Array when jax is installed, Any otherwise
    r"Any",
    r"Any",
    r"(builtins\.)?bool",
    r"arrayferry\._tree\.TreePlan",
    r"torch\._tensor\.Tensor|torch\.Tensor",
    r"numpy\.ndarray\[.*\]",
    r"def \(Any\) -> Any",
]


def test_py_typed_is_shipped() -> None:
    assert (Path(arrayferry.__file__).parent / "py.typed").is_file()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_convert_overloads_reveal_types(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    cache = Path(__file__).resolve().parent.parent / ".mypy_cache"
    env = {**os.environ, "MYPYPATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--ignore-missing-imports", "--cache-dir", str(cache),
         "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}", str(snippet)],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )
    notes = re.findall(r'Revealed type is "([^"]+)"', proc.stdout)
    assert len(notes) == len(EXPECTED), proc.stdout + proc.stderr
    for got, want in zip(notes, EXPECTED, strict=True):
        assert re.fullmatch(want, got), (got, want, proc.stdout)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert not errors, proc.stdout
