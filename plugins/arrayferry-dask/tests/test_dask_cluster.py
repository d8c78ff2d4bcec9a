"""Chunk-wise conversion on a real ``distributed.LocalCluster`` (2 worker processes)."""

from __future__ import annotations

from typing import Any

import arrayferry_dask as afd
import numpy as np
import pytest

import arrayferry as af


def _chunk_types(dask_worker: Any) -> dict[str, str]:
    """Run on each worker: the type of every chunk it holds, by key."""
    return {str(k): f"{type(v).__module__}.{type(v).__qualname__}" for k, v in dask_worker.data.items()}


def _block_index(key: Any) -> tuple[int, ...]:
    return tuple(key[1:])


def test_chunks_convert_on_the_worker_that_holds_them(da: Any, torch: Any, client: Any) -> None:
    from distributed import futures_of, wait

    ref = np.arange(64 * 48, dtype=np.float32).reshape(64, 48) / 7
    ref[0, :4] = [np.nan, -0.0, np.inf, -np.inf]
    x = da.from_array(ref, chunks=(16, 24)).map_blocks(np.negative).persist()  # 8 chunks
    wait(x)
    where_x = {_block_index(k): set(v) for k, v in client.who_has(x).items()}
    assert len(set().union(*where_x.values())) == 2, "chunks should be spread over both workers"

    y = afd.convert_chunks(x, "torch").persist()
    wait(y)
    where_y = {_block_index(k): set(v) for k, v in client.who_has(y).items()}
    assert where_y == where_x  # every chunk was converted where it already was

    holders = client.run(_chunk_types)
    keys_y = {str(f.key) for f in futures_of(y)}
    seen = {k: t for types in holders.values() for k, t in types.items() if k in keys_y}
    assert len(seen) == len(keys_y) == 8
    assert set(seen.values()) == {"torch.Tensor"}

    back = afd.convert_chunks(y, "numpy").persist()
    wait(back)
    where_b = {_block_index(k): set(v) for k, v in client.who_has(back).items()}
    assert where_b == where_x
    assert af.convert(back, "numpy").tobytes() == (-ref).tobytes()
    out = af.convert(y, "torch")  # materialise on the cluster, then torch aliases the result
    assert isinstance(out, torch.Tensor) and out.numpy().tobytes() == (-ref).tobytes()


def test_materialise_uses_the_cluster(da: Any, client: Any) -> None:
    x = da.arange(1000, chunks=100, dtype=np.int64) * 3
    p = af.plan(x, "numpy")
    assert "10 chunk(s)" in p.steps[0].description and "7.8 KiB" in p.steps[0].description
    out = af.convert(x, "numpy")
    assert out.tolist() == list(range(0, 3000, 3))
    assert client.run(lambda dask_worker: len(dask_worker.data) >= 0)  # the workers are alive


@pytest.mark.parametrize("dtype", ["float64", "int8", "complex64", "bool"])
def test_round_trip_values_on_the_cluster(da: Any, torch: Any, client: Any, dtype: str) -> None:
    rng = np.random.default_rng(0)
    ref = (rng.standard_normal((30, 20)) * 50).astype(dtype)
    x = afd.from_array(ref, chunks=(10, 10))
    y = afd.convert_chunks(afd.convert_chunks(x, "torch"), "numpy")
    assert af.convert(y, "numpy").tobytes() == ref.tobytes()
