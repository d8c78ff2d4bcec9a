"""arrayferry's conformance kit (``arrayferry.testing``) run against the Arrow plugin.

The kit runs in a separate pytest process (``arrayferry.testing.assert_conformance``) so that it
neither depends on nor changes the options of the session running this suite (which may be the
core's ``pytest tests plugins``).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from arrayferry.testing import assert_conformance


@pytest.mark.slow
def test_conformance_kit_passes(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    pytest.importorskip("torch")
    if not entry_points(group="arrayferry.plugins", name="pyarrow"):
        pytest.skip("arrayferry-pyarrow is not installed (pip install -e plugins/arrayferry-pyarrow)")
    peers = ["numpy", "torch", "pyarrow"]
    try:
        import jax  # noqa: F401
    except ImportError:
        pass
    else:
        peers.append("jax")
    assert_conformance("pyarrow", peers=peers, workdir=tmp_path)
