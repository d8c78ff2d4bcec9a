"""Fixtures of the core suite: the conversion matrix (case x target x copy policy) and guards.

The matrix fixtures come from ``tests/cases.py``. Cases with negative strides are *risky*: if
arrayferry ever handed one to ``torch.from_dlpack`` the process would abort (SIGABRT) and take
pytest with it, so a session fixture first converts every risky case in a subprocess, with
``torch.from_numpy`` / ``torch.from_dlpack`` wrapped to report (and refuse) a negative-stride
argument. Only when that subprocess passes do risky cases run in-process.

Shared assertions live in ``tests/helpers.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cases import CASES, COPY_POLICIES, ML_DTYPES, TARGETS, Case  # noqa: E402
from helpers import run_python  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_ML_DTYPES = importlib.util.find_spec("ml_dtypes") is not None

__all__ = ["HAVE_ML_DTYPES", "HAVE_TORCH", "matrix_cases", "matrix_targets"]


def _usable(c: Case) -> bool:
    if c.source == "torch" and not HAVE_TORCH:
        return False
    if not HAVE_ML_DTYPES and any(m in c.id for m in (*ML_DTYPES, "bf16")):
        return False
    return True


def matrix_cases() -> list[Case]:
    """The cases the installed frameworks can build."""
    return [c for c in CASES if _usable(c)]


def matrix_targets() -> list[str]:
    """The targets installed here."""
    return [t for t in TARGETS if t != "torch" or HAVE_TORCH]


_GUARD = r"""
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import torch
import arrayferry as af
from cases import CASES

reached = []

def guard(name, fn):
    def wrapped(x, *args, **kwargs):
        st = getattr(x, "strides", None)
        if st is None and hasattr(x, "__array_interface__"):
            st = x.__array_interface__.get("strides")
        if st and min(st) < 0:
            reached.append(name)
            print("REACHED", name, "with strides", st, flush=True)
            raise SystemExit(3)
        return fn(x, *args, **kwargs)
    return wrapped

torch.from_numpy = guard("torch.from_numpy", torch.from_numpy)
torch.from_dlpack = guard("torch.from_dlpack", torch.from_dlpack)

for case in [c for c in CASES if c.risky]:
    for to in ("torch", "numpy"):
        for copy in (None, False, True):
            x, _ = case.make()
            try:
                af.plan(x, to, copy=copy)
                af.convert(x, to, copy=copy)
                # the torch result, converted back and converted again (plan cache hit)
                af.convert(x, to, copy=copy)
            except af.CopyRequiredError:
                assert copy is False, (case.id, to, copy)
            print("ok", case.id, to, copy, flush=True)
print("DONE")
"""


@pytest.fixture(scope="session")
def negative_strides_safe() -> str:
    """Fail (without running in-process) if any negative-stride case reaches a native torch import.

    Returns the subprocess's report: one ``ok CASE TARGET COPY`` line per conversion, then ``DONE``.
    """
    if not HAVE_TORCH:
        return ""
    proc = run_python(_GUARD.format(tests=str(Path(__file__).parent)))
    if proc.returncode != 0 or "DONE" not in proc.stdout:
        pytest.fail(
            "converting negative-stride arrays in a subprocess failed "
            f"(return code {proc.returncode}; -6 is SIGABRT):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}",
            pytrace=False,
        )
    return proc.stdout


@pytest.fixture(params=matrix_cases(), ids=lambda c: c.id)
def case(request: pytest.FixtureRequest) -> Case:
    """Every source case; risky ones only after the subprocess guard passed."""
    c: Case = request.param
    if c.risky:
        request.getfixturevalue("negative_strides_safe")
    return c


@pytest.fixture(params=matrix_targets())
def target(request: pytest.FixtureRequest) -> str:
    """A target framework name."""
    return str(request.param)


@pytest.fixture(params=COPY_POLICIES, ids=lambda c: f"copy={c}")
def copy_policy(request: pytest.FixtureRequest) -> Any:
    """``copy=None``, ``False`` or ``True``."""
    return request.param

