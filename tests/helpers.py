"""Shared assertions for arrayferry's test suite: memory sharing, bitwise equality, error layout.

Everything here talks to the real frameworks directly (never through arrayferry), so a test that
uses these helpers checks arrayferry against an independent account of the result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np

__all__ = [
    "ML_DTYPE_BITS",
    "assert_bitwise_equal",
    "assert_error_layout",
    "assert_independent",
    "assert_values_equal",
    "assert_write_through",
    "data_pointer",
    "dtype_name",
    "is_torch",
    "memory_range",
    "numpy_bits",
    "run_python",
    "shares_memory",
    "size_of",
]

#: ml_dtypes formats and the integer type of the same width used to read their bits.
ML_DTYPE_BITS = {
    "bfloat16": "int16",
    "float8_e4m3fn": "uint8",
    "float8_e5m2": "uint8",
    "float8_e4m3fnuz": "uint8",
    "float8_e5m2fnuz": "uint8",
}


def is_torch(x: Any) -> bool:
    """True for a torch tensor (torch imported only if it already is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def data_pointer(x: Any) -> int:
    """Address of the first element of a NumPy array or torch tensor."""
    if is_torch(x):
        return int(x.data_ptr())
    return int(x.__array_interface__["data"][0])


def size_of(x: Any) -> int:
    """Number of elements."""
    return int(x.numel()) if is_torch(x) else int(x.size)


def memory_range(x: Any) -> tuple[int, int]:
    """The half-open byte interval ``[lo, hi)`` an array's elements occupy (empty arrays: ``(p, p)``)."""
    if is_torch(x):
        item = x.element_size()
        shape, strides = tuple(x.shape), tuple(s * item for s in x.stride())
    else:
        item = x.dtype.itemsize
        shape, strides = x.shape, x.strides
    base = data_pointer(x)
    if any(n == 0 for n in shape):
        return base, base
    lo = hi = base
    for n, s in zip(shape, strides, strict=True):
        if s >= 0:
            hi += (n - 1) * s
        else:
            lo += (n - 1) * s
    return lo, hi + item


def shares_memory(a: Any, b: Any) -> bool:
    """True when the byte ranges of ``a`` and ``b`` overlap (both non-empty).

    Conversions either alias the input or write a fresh allocation, so overlap of the ranges is
    the same as sharing for the pairs the tests compare.
    """
    lo1, hi1 = memory_range(a)
    lo2, hi2 = memory_range(b)
    if lo1 == hi1 or lo2 == hi2:
        return False
    return lo1 < hi2 and lo2 < hi1


def numpy_bits(x: Any) -> np.ndarray:
    """A C-contiguous, native-byte-order NumPy copy of ``x``'s values (bits untouched).

    torch tensors are read with torch's own calls (conj/neg bits resolved, ml_dtypes formats read
    as same-width integers and viewed back), never through arrayferry.
    """
    if is_torch(x):
        import torch

        t = x.detach().resolve_conj().resolve_neg().contiguous()
        name = str(t.dtype)[6:]
        if name in ML_DTYPE_BITS:
            import ml_dtypes

            ints = t.view(getattr(torch, ML_DTYPE_BITS[name])).numpy().copy()
            return ints.view(np.dtype(getattr(ml_dtypes, name)))
        return t.numpy().copy()
    a = np.array(x, copy=True, order="C")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def dtype_name(x: Any) -> str:
    """Canonical dtype name of a NumPy array or torch tensor (``'float32'``, ``'bfloat16'``...)."""
    if is_torch(x):
        return str(x.dtype)[6:]
    return str(x.dtype.newbyteorder("=").name) if x.dtype.kind != "V" else str(x.dtype.name)


def assert_bitwise_equal(expected: Any, got: Any) -> None:
    """Same shape, same dtype name and the same bytes (NaN payloads, -0.0 and inf included)."""
    e, g = numpy_bits(expected), numpy_bits(got)
    assert g.shape == e.shape, f"shape {g.shape} != {e.shape}"
    assert g.dtype == e.dtype, f"dtype {g.dtype} != {e.dtype}"
    assert g.tobytes() == e.tobytes(), f"values differ bitwise:\n expected {e!r}\n got      {g!r}"


def assert_values_equal(expected: Any, got: Any) -> None:
    """Same shape and dtype; NaN where expected has NaN (any payload), every other value bit for bit.

    For results of *casts*, whose NaN payloads are the casting library's choice (torch turns a
    float32 NaN into bfloat16 0xFFFF, ml_dtypes into 0x7FC0). -0.0 and inf are still exact.
    """
    e, g = numpy_bits(expected), numpy_bits(got)
    assert g.shape == e.shape and g.dtype == e.dtype, (g.shape, g.dtype, e.shape, e.dtype)
    parts = [(e.real, g.real), (e.imag, g.imag)] if e.dtype.kind == "c" else [(e, g)]
    for ep, gp in parts:
        if ep.dtype.kind == "f" or ep.dtype.name in ML_DTYPE_BITS:
            e32, g32 = ep.astype(np.float64), gp.astype(np.float64)
            nan = np.isnan(e32)
            assert np.array_equal(nan, np.isnan(g32)), f"NaN positions differ:\n {e!r}\n {g!r}"
            ep, gp = ep[~nan], gp[~nan]
        assert np.ascontiguousarray(ep).tobytes() == np.ascontiguousarray(gp).tobytes(), f"values differ:\n {e!r}\n {g!r}"


def _first_index(x: Any) -> tuple[int, ...]:
    return (0,) * (x.dim() if is_torch(x) else x.ndim)


_INT_OF_WIDTH = {1: "int8", 2: "int16", 4: "int32", 8: "int64"}


def _flip_first(x: Any) -> None:
    """Change the bits of the first element of ``x`` through its own framework (no arrayferry)."""
    idx = _first_index(x)
    if is_torch(x):
        import torch

        t = x.detach()
        if t.dtype == torch.bool:
            t[idx] = not bool(t[idx])
        elif t.element_size() in _INT_OF_WIDTH and not (t.is_conj() or t.is_neg()):
            v = t.view(getattr(torch, _INT_OF_WIDTH[t.element_size()]))
            v[idx] = v[idx] ^ 1
        elif t.is_complex():
            t[idx] = 7 + 7j if complex(t[idx]) != 7 + 7j else 1 + 1j
        else:  # a real tensor with the neg bit (c.conj().imag)
            t[idx] = 1.0 if float(t[idx]) != 1.0 else 2.0
        return
    if x.dtype == np.bool_:
        x[idx] = not x[idx]
    elif x.dtype.itemsize in _INT_OF_WIDTH:
        v = x.view(np.dtype(_INT_OF_WIDTH[x.dtype.itemsize]))
        v[idx] = v[idx] ^ 1
    else:
        x[idx] = 7 + 7j if complex(x[idx]) != 7 + 7j else 1 + 1j


def assert_write_through(src: Any, result: Any) -> None:
    """Writing into ``result`` changes ``src``: the memory really is shared (non-empty arrays)."""
    before = numpy_bits(src).tobytes()
    _flip_first(result)
    assert numpy_bits(src).tobytes() != before, "a write into the result did not reach the source"


def assert_independent(src: Any, result: Any) -> None:
    """Writing into ``result`` leaves ``src`` unchanged (non-empty, writable results)."""
    before = numpy_bits(src).tobytes()
    _flip_first(result)
    assert numpy_bits(src).tobytes() == before, "a write into the copy changed the source"


def assert_error_layout(exc: BaseException, *words: str) -> None:
    """An arrayferry error whose message contains ``words`` (case-insensitive) and ends with ``Hint:``."""
    import arrayferry as af

    assert isinstance(exc, af.ArrayFerryError), f"{type(exc).__name__} is not an ArrayFerryError: {exc}"
    msg = str(exc)
    low = msg.lower()
    for w in words:
        assert w.lower() in low, f"{w!r} not in message:\n{msg}"
    last = msg.strip().splitlines()[-1]
    assert last.startswith("Hint: ") and len(last) > len("Hint: ") + 5, f"last line is not a hint:\n{msg}"


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the same venv); returns the completed process."""
    full_env = dict(os.environ)
    full_env.pop("PYTHONSTARTUP", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=full_env, check=False
    )
