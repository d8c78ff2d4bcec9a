"""arrayferry's conformance kit (``arrayferry.testing``) run against the Dask plugin.

The kit is switched on in a separate pytest process so that it neither depends on nor changes
the options of the session running this suite (which may be the core's ``pytest tests plugins``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PEERS = "numpy,torch,dask"


@pytest.mark.slow
def test_conformance_kit_passes(tmp_path: Path) -> None:
    pytest.importorskip("dask.array")
    pytest.importorskip("torch")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), "--arrayferry-conformance=dask", f"--arrayferry-peers={PEERS}",
         str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    tail = r.stdout[-3000:] + r.stderr[-2000:]
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " failed" not in r.stdout, tail
