"""The suite's view of the one case catalogue, :mod:`arrayferry.testing.cases`.

The cases themselves (each a fresh source array, NumPy or torch, with reference values computed by
NumPy alone, and what a correct conversion must do with it) live in the public catalogue that the
conformance kit and ``arrayferry matrix`` also draw on. The suite takes every case:
``tests/test_convert.py`` crosses them with :data:`TARGETS` and :data:`COPY_POLICIES`,
``tests/test_plan.py`` and the subprocess guard in ``conftest.py`` reuse them.
"""

from __future__ import annotations

from arrayferry.testing.cases import ALL_DTYPES, CASES, CORE_DTYPES, EXTENDED_DTYPES, Case, case_named, np_dtype, sample

__all__ = [
    "ALL_DTYPES",
    "CORE_DTYPES",
    "Case",
    "ML_DTYPES",
    "NUMPY_CASES",
    "TORCH_CASES",
    "CASES",
    "TARGETS",
    "COPY_POLICIES",
    "case_by_id",
    "np_dtype",
    "sample",
]

TARGETS = ("numpy", "torch")
COPY_POLICIES = (None, False, True)

NUMPY_CASES: tuple[Case, ...] = tuple(c for c in CASES if c.source == "numpy")
TORCH_CASES: tuple[Case, ...] = tuple(c for c in CASES if c.source == "torch")
case_by_id = case_named
ML_DTYPES = EXTENDED_DTYPES
