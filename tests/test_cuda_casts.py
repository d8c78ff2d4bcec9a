"""Casts around device transfers on a real GPU (skipped without one): the narrowing cast runs on
the GPU before the device -> host transfer, and the values are NumPy's cast bit for bit.

The same placement is tested at plan level without a GPU in ``tests/test_cast_placement.py``
(torch FakeTensorMode tensors on ``cuda:1``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import arrayferry as af

pytestmark = pytest.mark.cuda

torch = pytest.importorskip("torch")


@pytest.fixture
def cuda() -> Any:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch sees none)")
    return torch.device("cuda", 0)


def _bits(t: Any) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


@pytest.mark.parametrize("dst", ["float32", "int32", "int16", "uint8", "float16"])
def test_gpu_narrowing_cast_matches_numpy(cuda: Any, dst: str) -> None:
    a = np.array([0.0, -0.0, 1.5, -2.75, 100.25, 1e-40, 65504.0, 3.0], dtype=np.float64)
    if dst in ("int32", "int16", "uint8"):
        a = np.abs(a[np.isfinite(a)]).round(2)
    t = torch.from_numpy(a).to(cuda)
    p = af.plan(t, "numpy", dtype=dst)
    names = [s.name for s in p.steps]
    # float16 too: the adapter rounds once on the GPU (exact_float16), not through float32 as torch's cast
    assert names[:2] == ["cast", "to_host"], p.explain()
    got = af.convert(t, "numpy", dtype=dst)
    assert got.dtype == np.dtype(dst) and got.tobytes() == a.astype(dst).tobytes()


def test_gpu_float16_cast_rounds_once_and_keeps_numpys_nan_bits(cuda: Any) -> None:
    """Values torch's own cast rounds twice (1 + 2**-11 + 2**-40), float16 subnormals, overflow
    (casting='unsafe'), beyond float32's range, and NaN payloads: NumPy's bits from the GPU cast."""
    vals = [1 + 2.0**-11 + 2.0**-40, 2.0**-25 + 2.0**-60, -(2.0**-24) * 1.5, 65519.99, 65520.0, 1e300, -1e-300,
            -0.0, float("inf")]
    a = np.concatenate([np.array(vals), np.array([0x7FF0000000000001, 0xFFF8000000000123], dtype=np.uint64).view(np.float64)])
    t = torch.from_numpy(a).to(cuda)
    assert [s.name for s in af.plan(t, "numpy", dtype="float16", casting="unsafe").steps][:2] == ["cast", "to_host"]
    got = af.convert(t, "numpy", dtype="float16", casting="unsafe")
    with np.errstate(all="ignore"):
        want = a.astype(np.float16)
    assert got.view(np.uint16).tolist() == want.view(np.uint16).tolist()
    with pytest.raises(af.LossyConversionError, match="float16"):
        af.convert(t, "numpy", dtype="float16")
    f = torch.from_numpy(a[:4].astype(np.float32)).to(cuda)  # float32 -> float16 on the GPU: same bits
    assert af.convert(f, "numpy", dtype="float16").view(np.uint16).tolist() == a[:4].astype(np.float32).astype(np.float16).view(np.uint16).tolist()


def test_gpu_out_of_range_cast_raises_unless_unsafe(cuda: Any) -> None:
    t = torch.tensor([1e10, -1.0], dtype=torch.float64, device=cuda)
    with pytest.raises(af.LossyConversionError, match="outside int32's range"):
        af.convert(t, "numpy", dtype="int32")
    with pytest.raises(af.LossyConversionError, match="outside uint8's range"):
        af.convert(t[1:], "torch", dtype="uint8")
    with pytest.raises(af.LossyConversionError, match="NaN or infinity"):
        af.convert(torch.tensor([float("nan")], device=cuda), "torch", dtype="int64")
    y = af.convert(t[1:], "torch", dtype="uint8", casting="unsafe")
    assert y.device.type == "cuda" and y.dtype == torch.uint8


def test_gpu_cast_on_device_stays_on_device(cuda: Any) -> None:
    t = torch.arange(6, dtype=torch.float64, device=cuda)
    p = af.plan(t, "torch", dtype="float32")
    assert [s.name for s in p.steps] == ["cast"] and not any(s.transfer for s in p.steps), p.explain()
    y = af.convert(t, "torch", dtype="float32")
    assert y.device == t.device and _bits(y) == np.arange(6, dtype=np.float32).tobytes()
