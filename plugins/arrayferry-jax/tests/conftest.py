"""Test set-up for arrayferry-jax: four JAX host devices, aligned/misaligned NumPy buffers.

``XLA_FLAGS`` must be set before JAX is imported anywhere in the process, so it is set here, at
conftest import, before any test module imports jax.
"""

from __future__ import annotations

import os

# On a GPU host JAX would take 75 % of the GPU at its first use, leaving too little for torch and
# CuPy in the same process (the GPU tests move arrays between all three): allocate on demand.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

_FLAG = "--xla_force_host_platform_device_count=4"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ALIGN = 64


def buffer_at(shape: tuple[int, ...], dtype: Any, offset: int) -> np.ndarray:
    """A writable C-contiguous array whose data pointer is ``offset`` bytes past a 64-byte boundary."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    raw = np.empty(n + 2 * ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN + offset
    out = raw[start:start + n].view(dt).reshape(shape)
    assert out.ctypes.data % ALIGN == offset % ALIGN
    return out


@pytest.fixture
def at() -> Callable[..., np.ndarray]:
    """``at(values, offset)``: a copy of ``values`` placed ``offset`` bytes past a 64-byte boundary."""

    def make(values: Any, offset: int = 0) -> np.ndarray:
        src = np.asarray(values)
        out = buffer_at(src.shape, src.dtype, offset)
        out[...] = src
        return out

    return make


@pytest.fixture(scope="session")
def jax() -> Any:
    jax = pytest.importorskip("jax")
    if len(jax.devices("cpu")) < 4:
        pytest.skip("JAX started before XLA_FLAGS could ask for 4 host devices")
    return jax


@pytest.fixture(scope="session")
def torch() -> Any:
    return pytest.importorskip("torch")
