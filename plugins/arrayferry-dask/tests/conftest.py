"""Fixtures for the Dask plugin's tests: modules, a subprocess runner, one shared LocalCluster."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def da() -> Any:
    """``dask.array`` (skips when dask is not installed)."""
    return pytest.importorskip("dask.array")


@pytest.fixture(scope="session")
def torch() -> Any:
    """The ``torch`` module (skips when not installed)."""
    return pytest.importorskip("torch")


@pytest.fixture(scope="session")
def run_python() -> Any:
    """``run_python(code)``: run code in a fresh interpreter of this venv."""

    def run(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop("ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD", None)
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout, env=env)

    return run


@pytest.fixture(scope="module", params=[pytest.param(False, id="threads"),
                                        pytest.param(True, id="processes", marks=pytest.mark.slow)])
def client(request: pytest.FixtureRequest, da: Any) -> Iterator[Any]:
    """A real ``distributed`` client on a LocalCluster: 2 workers, 1 thread each.

    Workers run in this process (``processes=False``, quick: torch is already imported) and,
    marked ``slow``, as 2 separate processes (the chunk converter is pickled, every worker
    imports arrayferry, its plugins and torch itself). Work stealing is off so that a task runs where its input chunk is (the behaviour the
    tests check is the scheduler's data locality, not stealing's load balancing).
    """
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.work-stealing": False}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=request.param,
                                           dashboard_address=None, silence_logs=40)
        c = distributed.Client(cluster)
        try:
            yield c
        finally:
            c.close()
            cluster.close()
