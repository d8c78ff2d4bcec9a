"""The conformance kit for plugin authors: a pytest plugin that runs arrayferry's adapter contract.

How to switch it on
===================

The kit ships with arrayferry and is registered through pytest's ``pytest11`` entry point, so it
is loaded in every pytest run where arrayferry is installed, **and does nothing** until one of
these names the frameworks to check:

* command line: ``pytest --arrayferry-conformance=jax`` (several: ``=jax,torch``);
* ini file (``pyproject.toml`` ``[tool.pytest.ini_options]``, ``pytest.ini``, ...)::

      [tool.pytest.ini_options]
      arrayferry_conformance = "jax"

With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, load it explicitly: ``pytest -p
arrayferry.testing.plugin --arrayferry-conformance=jax`` or, in a ``conftest.py``,
``pytest_plugins = ["arrayferry.testing.plugin"]`` (both also work when it is autoloaded).

When switched on, pytest collects the contract module :mod:`arrayferry.testing.contract` in
addition to your own tests. Its items are named ``...contract.py::test_NAME[FRAMEWORK-...]`` and
check, for each framework named:

* detection without import (in a subprocess), ``framework_of`` and ``device_of``;
* round trips to and from every peer framework over the standard cases (every numeric dtype,
  0-d, empty, strided, negative strides, transposed, read-only, NaN/inf/-0.0), bit for bit,
  under ``copy=None/False/True``, sharing checked by data pointers and by writing through;
* plan honesty: memory is shared exactly when ``plan.zero_copy``; ``copy=False`` raises
  :class:`arrayferry.CopyRequiredError` exactly when the ``copy=None`` plan copies;
* the signature captures everything ``describe`` reports (two arrays with one signature must
  get one plan);
* clear errors for dtypes the framework cannot hold (``UnsupportedDTypeError`` /
  ``LossyConversionError``, or a ``LossyConversionWarning`` for float narrowing; never a silent
  change);
* ``dtype=`` casts within the framework give NumPy's bits for every pair of dtypes it holds
  (a framework cast that differs must be declared in ``Adapter.cast_differs``).

Other options (each also an ini key with ``-`` replaced by ``_``):

``--arrayferry-peers=numpy,torch``
    the frameworks to convert to and from (default: every registered framework that is
    installed). A peer that is not registered or not installed skips with the reason.
``--arrayferry-device=cpu[,cuda:0]`` (ini ``arrayferry_devices``)
    devices to place the framework's arrays on (default ``cpu``); a device the framework cannot
    reach now skips with the reason.

The kit only uses public API: :func:`arrayferry.convert`, :func:`arrayferry.plan`,
``Adapter.describe``, ``Adapter.signature``, ``Adapter.data_pointer`` and ``Adapter.supports_dtype``
/ ``default_dtype_for``. See ``docs/plugins.md`` ("Running the conformance kit").

Running it from another test suite
==================================

A plugin whose suite also runs under someone else's pytest options (the core runs
``pytest tests plugins``) can run the kit in a separate pytest process instead::

    from arrayferry.testing import assert_conformance

    @pytest.mark.slow
    def test_conformance_kit_passes(tmp_path):
        assert_conformance("jax", peers=["numpy", "torch", "jax"], workdir=tmp_path)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConformanceRun", "assert_conformance", "run_conformance"]


@dataclass(frozen=True)
class ConformanceRun:
    """The outcome of :func:`run_conformance`: pytest's exit code and output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def passed(self) -> bool:
        """True when pytest exited 0 and ran at least one contract test, none failing."""
        return self.returncode == 0 and " passed" in self.stdout and " failed" not in self.stdout

    def tail(self, n: int = 3000) -> str:
        """The end of the output, for assertion messages."""
        return self.stdout[-n:] + self.stderr[-n // 2:]


def run_conformance(
    framework: str,
    *,
    peers: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
    workdir: str | Path,
    extra_args: Sequence[str] = (),
    timeout: float = 600,
) -> ConformanceRun:
    """Run the kit against ``framework`` in a fresh pytest process (its own empty ini file in
    ``workdir``, so no outer configuration leaks in) and return the outcome."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    ini = work / "pytest.ini"
    ini.write_text("[pytest]\n")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ini), "--rootdir", str(work),
           f"--arrayferry-conformance={framework}"]
    if peers is not None:
        cmd.append(f"--arrayferry-peers={','.join(peers)}")
    if devices is not None:
        cmd.append(f"--arrayferry-device={','.join(devices)}")
    cmd += [*extra_args, str(work)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return ConformanceRun(r.returncode, r.stdout, r.stderr)


def assert_conformance(framework: str, **kwargs: object) -> ConformanceRun:
    """:func:`run_conformance`, failing the calling test (``AssertionError`` with the output's
    tail) unless the kit passed."""
    run = run_conformance(framework, **kwargs)  # type: ignore[arg-type]
    assert run.passed, f"the conformance kit failed for {framework!r}:\n{run.tail()}"
    return run
