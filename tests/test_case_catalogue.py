"""One case catalogue (arrayferry.testing.cases) serves the kit, the suite and ``arrayferry matrix``.

The consumers hold the catalogue's own objects (not copies of a list), and every case keeps its
word: the array belongs to ``source`` with ``dtype``, the reference holds its values bit for bit,
the flags (read-only, negative strides) describe the array, and the kit's ``view`` of ``base`` is
the case itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arrayferry.testing import cases as catalogue

HAVE_ML_DTYPES = True
try:
    import ml_dtypes  # noqa: F401
except ImportError:
    HAVE_ML_DTYPES = False


def _buildable(c: catalogue.Case) -> bool:
    if c.source == "torch":
        pytest.importorskip("torch")
    if not HAVE_ML_DTYPES and c.dtype in catalogue.EXTENDED_DTYPES:
        pytest.skip("needs ml_dtypes")
    return True


def _numpy_of(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x
    import arrayferry as af

    return af.convert(x, "numpy", copy=True)


def _bits(a: Any) -> tuple[str, tuple[int, ...], bytes]:
    a = np.asarray(a)
    if a.dtype.kind != "V":
        a = a.astype(a.dtype.newbyteorder("="))
    return a.dtype.name, a.shape, np.ascontiguousarray(a).tobytes()


def test_every_consumer_holds_the_catalogues_own_cases() -> None:
    import cases as suite

    from arrayferry._matrix import CASES as MATRIX
    from arrayferry.testing.contract import CASES as KIT

    assert suite.CASES is catalogue.CASES
    assert all(c is catalogue.case_named(c.name) for c in (*MATRIX, *KIT))
    assert MATRIX == catalogue.cases_for("matrix")
    assert {c.name for c in KIT} <= {c.name for c in catalogue.cases_for("kit")}
    # the matrix's rows, in report order (docs/matrix.md and docs/cli.md are rendered from them)
    assert [c.name for c in MATRIX] == ["contiguous", "strided", "negative", "fortran", "readonly", "broadcast",
                                        "unaligned", "big-endian", "bfloat16", "int64", "0-d", "requires_grad", "conj"]
    kit = {c.name for c in catalogue.cases_for("kit")}
    assert set(catalogue.CORE_DTYPES) | {"bfloat16", "0-d", "empty", "strided", "negative", "fortran", "broadcast",
                                         "readonly"} <= kit
    assert len({c.name for c in catalogue.CASES}) == len(catalogue.CASES)
    with pytest.raises(ValueError, match="'kit' or 'matrix'"):
        catalogue.cases_for("tests")
    with pytest.raises(KeyError):
        catalogue.case_named("no-such-case")


@pytest.mark.parametrize("case", catalogue.CASES, ids=lambda c: c.name)
def test_each_case_keeps_its_word(case: catalogue.Case) -> None:
    _buildable(case)
    from arrayferry.plugin import adapter_named

    x, ref = case.make()
    info = adapter_named(case.source).describe(x)
    assert info.framework == case.source
    assert info.dtype == case.dtype
    assert _bits(_numpy_of(x)) == _bits(ref)
    assert isinstance(ref, np.ndarray) and ref.dtype.isnative
    assert info.readonly is case.readonly
    assert (info.layout == "negative") is case.risky or case.name == "negative-len1"  # NumPy calls (1, 4)[::-1] C-contiguous
    assert case.holds(info), info
    assert (case.why != "") is bool(case.copy_to)
    x2, _ = case.make()
    if x2 is not None and info.size:
        assert adapter_named(case.source).data_pointer(x2) != adapter_named(case.source).data_pointer(x)  # fresh


@pytest.mark.parametrize("case", [c for c in catalogue.CASES if c.view is not None], ids=lambda c: c.name)
def test_the_kits_view_of_base_is_the_case(case: catalogue.Case) -> None:
    _buildable(case)
    assert case.base is not None and case.view is not None
    assert _bits(case.view(case.base())) == _bits(case.numpy())


def test_a_torch_case_is_no_numpy_array() -> None:
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="torch array; use make"):
        catalogue.case_named("conj").numpy()
