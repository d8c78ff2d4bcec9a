"""pandas columns and frames, xarray DataArrays as sources (read through ``__array__``, checked).

pandas' own conversions turn missing values of nullable dtypes into NaN (and integers into floats),
categoricals into their categories' values and mixed frames into a common type, silently: each of
these is refused with a hint here, and what converts, converts bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from helpers import assert_error_layout

import arrayferry as af

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")


def _ptr(a: Any) -> int:
    if isinstance(a, torch.Tensor):
        return int(a.data_ptr())
    return int(np.asarray(a).__array_interface__["data"][0])


def test_numeric_series_is_read_without_copying() -> None:
    s = pd.Series([1.5, -0.0, math.inf, math.nan], index=list("abcd"))
    assert af.framework_of(s) == "pandas"
    p = af.plan(s, "numpy")
    assert p.zero_copy and "index and column labels are dropped" in p.explain()
    n = af.convert(s, "numpy")
    assert n.tobytes() == np.array([1.5, -0.0, math.inf, math.nan]).tobytes()
    assert _ptr(n) == _ptr(s.to_numpy())
    assert n.flags.writeable == s.to_numpy().flags.writeable  # pandas' copy-on-write view stays read-only


def test_series_to_torch_copies_read_only_memory() -> None:
    s = pd.Series([1.0, 2.0])
    view = s.__array__(copy=False)
    t = af.convert(s, "torch")
    if not view.flags.writeable:  # pandas >= 3 (copy-on-write): read-only views
        assert not af.plan(s, "torch").zero_copy and t.data_ptr() != _ptr(view)
        t[0] = 9.0
        assert s.iloc[0] == 1.0
    assert t.tolist() == [9.0, 2.0] or t.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(("dtype", "values", "np_dtype"), [
    ("Int64", [1, -2, 2**62], "int64"), ("Float64", [1.5, -0.0], "float64"), ("boolean", [True, False], "bool"),
    ("Int8", [-128, 127], "int8"), ("UInt32", [0, 2**32 - 1], "uint32"),
])
def test_nullable_dtypes_without_missing_values_convert(dtype: str, values: list[Any], np_dtype: str) -> None:
    s = pd.Series(values, dtype=dtype)
    t = af.convert(s, "torch")
    ref = np.array(values, dtype=np_dtype)
    assert t.numpy().dtype == ref.dtype and t.numpy().tobytes() == ref.tobytes()


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "boolean", "int64[pyarrow]", "double[pyarrow]"])
def test_missing_values_are_refused_with_a_hint(dtype: str) -> None:
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    values = [1, None, 3] if dtype != "boolean" else [True, None, False]
    s = pd.Series(values, dtype=dtype)
    for call in (lambda: af.convert(s, "torch"), lambda: af.plan(s, "numpy")):
        with pytest.raises(af.UnsupportedArrayError) as ei:
            call()
        assert_error_layout(ei.value, dtype, "1 missing value", "to_numpy(dtype=", "na_value=", "fillna")
    # the hint, followed: both commands give an array arrayferry converts
    a = af.convert(s.to_numpy(dtype="float64", na_value=float("nan")), "torch")
    assert math.isnan(float(a[1])) and float(a[0]) == 1.0
    fill = False if dtype == "boolean" else 0
    assert f"fillna({fill})" in str(ei.value)
    b = af.convert(s.fillna(fill), "torch")
    assert b.tolist()[1] in (0, 0.0, False)


def test_arrow_backed_column_without_missing_values_is_copied() -> None:
    pytest.importorskip("pyarrow")
    s = pd.Series([1, 2, 3], dtype="int64[pyarrow]")
    p = af.plan(s, "torch")
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        # under NumPy 1.x pandas' Series.__array__(copy=False) asks its Arrow array without copy=
        # (NumPy 1.x has none), which hands out a read-only view of the Arrow buffer: shared, so
        # NumPy aliases it read-only and torch (always writable) gets a copy
        assert not p.zero_copy and "shares the object's memory" in p.explain() and "read-only" in p.explain()
        n = af.convert(s, "numpy", copy=False)
        assert not n.flags.writeable and n.tolist() == [1, 2, 3]
        assert n.ctypes.data == np.asarray(s).ctypes.data  # the Arrow buffer, not a fresh copy
    else:
        assert not p.zero_copy and "__array__(copy=False) said it cannot share" in p.explain()
        with pytest.raises(af.CopyRequiredError):
            af.convert(s, "numpy", copy=False)
    t = af.convert(s, "torch")
    assert t.dtype == torch.int64 and t.tolist() == [1, 2, 3]
    assert t.data_ptr() != np.asarray(s).ctypes.data


@pytest.mark.parametrize(("make", "words"), [
    (lambda: pd.Series(["a", "b"]), ("dtype", "astype('float64')")),
    (lambda: pd.Series([1, "a"], dtype=object), ("object", "astype('float64')")),
    (lambda: pd.Series([1, 2, 1], dtype="category"), ("categorical", "x.cat.codes")),
    (lambda: pd.Series(pd.to_datetime(["2020-01-01"])), ("datetime64", "astype('int64')")),
    (lambda: pd.Series(pd.to_timedelta(["1s"])), ("timedelta64", "astype")),
    (lambda: pd.DataFrame({"a": [1, 2], "b": [1.5, 2.5]}), ("several dtypes", "int64, float64", "to_numpy(dtype='float64')")),
], ids=["str", "object", "category", "datetime", "timedelta", "mixed-frame"])
def test_pandas_hazards_are_refused(make: Any, words: tuple[str, ...]) -> None:
    x = make()
    with pytest.raises((af.UnsupportedDTypeError, af.UnsupportedArrayError)) as ei:
        af.convert(x, "torch")
    assert_error_layout(ei.value, *words)


def test_hints_for_pandas_hazards_work() -> None:
    cat = pd.Series([10, 20, 10], dtype="category")
    assert af.convert(cat.cat.codes, "numpy").tolist() == [0, 1, 0]
    assert af.convert(cat.astype("float64"), "numpy").tolist() == [10.0, 20.0, 10.0]
    dt = pd.Series(pd.to_datetime(["1970-01-01 00:00:01"]))
    assert af.convert(dt.astype("int64"), "numpy").tolist()[0] > 0
    df = pd.DataFrame({"a": [1, 2], "b": [1.5, 2.5]})
    assert af.convert(df.to_numpy(dtype="float64"), "torch").tolist() == [[1.0, 1.5], [2.0, 2.5]]
    assert af.convert(df["a"], "torch").tolist() == [1, 2]
    assert af.convert(pd.Series(["1.5"]).astype("float64"), "numpy").tolist() == [1.5]


def test_single_dtype_frame_keeps_its_layout_and_values() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, -0.0, math.nan]})
    t = af.convert(df, "torch")
    ref = df.to_numpy()
    assert tuple(t.shape) == (3, 2) and t.numpy().tobytes() == np.ascontiguousarray(ref).tobytes() or \
        np.array_equal(t.numpy(), ref, equal_nan=True)
    assert np.array_equal(t.numpy(), ref, equal_nan=True)
    assert math.copysign(1.0, float(t[1, 1])) == -1.0


def test_xarray_data_is_shared_and_labels_dropped() -> None:
    xr = pytest.importorskip("xarray")
    data = np.arange(6.0).reshape(2, 3)
    d = xr.DataArray(data, dims=("x", "y"), coords={"x": [10, 20]}, attrs={"units": "m"})
    assert af.framework_of(d) == "xarray"
    p = af.plan(d, "torch")
    assert p.zero_copy and "dims, coordinates and attributes are dropped" in p.explain()
    t = af.convert(d, "torch")
    assert t.data_ptr() == data.ctypes.data
    t[0, 0] = -1.0
    assert float(d[0, 0]) == -1.0  # the DataArray's own memory
    ro = xr.DataArray(np.frombuffer(b"\x00" * 16, dtype=np.float64))
    t2 = af.convert(ro, "torch")  # read-only memory: copied, never aliased writably
    assert t2.data_ptr() != _ptr(ro.values)


def test_xarray_with_non_numeric_data_is_refused() -> None:
    xr = pytest.importorskip("xarray")
    d = xr.DataArray(np.array(["a", "b"]))
    with pytest.raises(af.UnsupportedDTypeError) as ei:
        af.convert(d, "torch")
    assert_error_layout(ei.value, "dtype")
