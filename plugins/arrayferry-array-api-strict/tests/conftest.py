"""Fixtures for the array-api-strict plugin's tests: framework modules, the subprocess guard.

Converting an array-api-strict array with a negative stride through torch's own calls aborts
the process, so before any in-process test converts such an array to torch, the session
fixture ``negative_strides_safe`` runs the same conversions in a subprocess with
``torch.from_dlpack`` / ``torch.from_numpy`` / ``torch.as_tensor`` / ``torch.asarray`` wrapped to
refuse (exit code 3) a negative-stride argument. If that fails, the in-process tests fail with
its output instead of aborting pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest


@pytest.fixture(scope="session")
def xs() -> Any:
    """The ``array_api_strict`` module (skips when not installed)."""
    return pytest.importorskip("array_api_strict")


@pytest.fixture(scope="session")
def torch() -> Any:
    """The ``torch`` module (skips when not installed)."""
    return pytest.importorskip("torch")


def _run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (this venv), returning the completed process."""
    env = dict(os.environ)
    env.pop("ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="session")
def run_python() -> Any:
    """``run_python(code)``: run code in a fresh interpreter, return the ``CompletedProcess``."""
    return _run_python


GUARD = r"""
import numpy as np, torch, array_api_strict as xs, arrayferry as af

def guard(name, fn):
    def wrapped(x, *args, **kwargs):
        a = np.from_dlpack(x) if hasattr(x, "__dlpack__") and not isinstance(x, torch.Tensor) else None
        st = getattr(a, "strides", None) or getattr(x, "strides", None)
        if isinstance(st, tuple) and st and min(st) < 0:
            print("REACHED", name, "with strides", st, flush=True)
            raise SystemExit(3)
        return fn(x, *args, **kwargs)
    return wrapped

for n in ("from_dlpack", "from_numpy", "as_tensor", "asarray"):
    setattr(torch, n, guard("torch." + n, getattr(torch, n)))
"""


@pytest.fixture(scope="session")
def negative_strides_safe(torch: Any) -> None:
    """Prove in a subprocess that negative-stride xs arrays never reach torch's aborting calls."""
    code = GUARD + r"""
base = np.arange(24, dtype=np.float32).reshape(4, 6)
views = [base[::-1], base[:, ::-1], base[::-2, ::-3], base[::-1][:1], base[::-1].T]
for v in views:
    x = xs.asarray(v)
    for copy in (None, True, False):
        try:
            t = af.convert(x, "torch", copy=copy)
        except af.CopyRequiredError:
            assert copy is False
            continue
        assert np.array_equal(t.numpy(), v), (t, v)
print("OK")
"""
    r = _run_python(code)
    if r.returncode != 0 or "OK" not in r.stdout:
        pytest.fail(f"negative-stride guard failed (rc={r.returncode}):\n{r.stdout}\n{r.stderr}")
