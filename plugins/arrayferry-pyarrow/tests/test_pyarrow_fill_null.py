"""``fill_null=``: the Arrow plugin's source option (what each null becomes), against real pyarrow.

Values are compared bit for bit with ``pyarrow.compute.fill_null`` (NaN payloads, -0.0 and
infinities included); the fill is a copy the plan names, so ``copy=False`` refuses it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import arrayferry as af
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
torch = pytest.importorskip("torch")
if not entry_points(group="arrayferry.plugins", name="pyarrow"):
    pytest.skip("arrayferry-pyarrow is not installed (pip install -e plugins/arrayferry-pyarrow)",
                allow_module_level=True)

NUMERIC = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"]


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _expected(x, value) -> np.ndarray:
    return x.fill_null(pa.scalar(value, type=x.type)).to_numpy(zero_copy_only=False)


@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("target", ["numpy", "torch"])
def test_nulls_become_the_fill_value_bit_for_bit(dtype: str, target: str) -> None:
    x = pa.array([1, None, 3, None], type=pa.from_numpy_dtype(np.dtype(dtype)))
    out = af.convert(x, target, fill_null=7)
    got = out if target == "numpy" else out.numpy()
    assert got.dtype == np.dtype(dtype) and got.shape == (4,)
    assert _bits(got) == _bits(_expected(x, 7))
    with pytest.raises(af.UnsupportedArrayError, match="null"):  # without the option: refused, as before
        af.convert(x, target)


@pytest.mark.parametrize("fill", [-0.0, float("nan"), float("inf"), -float("inf")])
def test_special_fill_values_keep_their_bits(fill: float) -> None:
    x = pa.array([1.5, None, -2.0], type=pa.float64())
    got = af.convert(x, "numpy", fill_null=fill)
    assert _bits(got) == _bits(_expected(x, fill))
    assert np.signbit(got[1]) == np.signbit(fill)


def test_chunked_arrays_are_filled_across_chunks() -> None:
    x = pa.chunked_array([[1.0, None], [None, 4.0]])
    t = af.convert(x, "torch", fill_null=-1.0)
    assert t.tolist() == [1.0, -1.0, -1.0, 4.0] and t.dtype == torch.float64


def test_the_fill_is_a_planned_copy_and_copy_false_refuses_it() -> None:
    x = pa.array([1.0, None])
    p = af.plan(x, "numpy", fill_null=0.0)
    assert not p.zero_copy and p.steps[0].name == "fill_null" and p.steps[0].copies
    assert "fill_null=0.0" in p.explain() and p.options == {"fill_null": 0.0}
    with pytest.raises(af.CopyRequiredError) as info:
        af.convert(x, "numpy", fill_null=0.0, copy=False)
    assert "fill_null" in str(info.value) and str(info.value).splitlines()[-1].startswith("Hint:")
    out = af.convert(x, "numpy", fill_null=0.0, copy=True)
    assert out.flags.writeable and out.tolist() == [1.0, 0.0]


def test_an_array_without_nulls_stays_zero_copy_with_the_option() -> None:
    x = pa.array([1.0, 2.0])
    p = af.plan(x, "numpy", fill_null=0.0)
    assert p.zero_copy and p.steps[0].name == "fill_null" and not p.steps[0].copies
    out = af.convert(x, "numpy", fill_null=0.0)
    assert out.__array_interface__["data"][0] == x.buffers()[1].address


def test_plans_are_cached_per_fill_value_and_per_null_state() -> None:
    x = pa.array([1.0, None])
    assert af.convert(x, "numpy", fill_null=1.0).tolist() == [1.0, 1.0]
    assert af.convert(x, "numpy", fill_null=2.0).tolist() == [1.0, 2.0]  # not the 1.0 plan
    assert af.convert(x, "numpy", fill_null=2).tolist() == [1.0, 2.0]
    assert af.convert(pa.array([3.0, 4.0]), "numpy", fill_null=2.0).tolist() == [3.0, 4.0]
    assert af.convert(pa.array([None, 4.0]), "numpy", fill_null=2.0).tolist() == [2.0, 4.0]


@pytest.mark.parametrize(("dtype", "value"), [("uint8", -1), ("int8", 300), ("int64", "zero"), ("bool", 2.5)])
def test_a_value_the_type_cannot_hold_is_an_argument_error(dtype: str, value: object) -> None:
    x = pa.array([None, None], type=pa.from_numpy_dtype(np.dtype(dtype)))
    with pytest.raises(af.ArgumentError) as info:
        af.convert(x, "numpy", fill_null=value)
    msg = str(info.value)
    assert f"fill_null={value!r} cannot fill an Arrow array of type" in msg
    assert msg.splitlines()[-1].startswith("Hint:")


def test_fixed_shape_tensors_are_refused_with_a_hint() -> None:
    typ = pa.fixed_shape_tensor(pa.float32(), (2,))
    x = pa.ExtensionArray.from_storage(typ, pa.array([[1, 2], None], pa.list_(pa.float32(), 2)))
    with pytest.raises(af.ArgumentError, match="fill_null= applies to pyarrow Array and ChunkedArray"):
        af.convert(x, "numpy", fill_null=0.0)


def test_other_sources_ignore_it_and_say_so_unknown_names_still_fail() -> None:
    a = np.arange(3.0)
    out = af.convert(a, "numpy", fill_null=0.0)
    assert np.shares_memory(out, a)
    assert "does not apply to numpy arrays" in af.plan(a, "torch", fill_null=0.0).explain()
    with pytest.raises(af.ArgumentError, match="fill_nul"):
        af.convert(a, "numpy", fill_nul=0.0)
    tree = af.convert_tree({"col": pa.array([None, 2.0]), "w": a}, "torch", fill_null=-1.0)
    assert tree["col"].tolist() == [-1.0, 2.0] and tree["w"].tolist() == [0.0, 1.0, 2.0]
    tp = af.plan_tree({"col": pa.array([None, 2.0]), "w": a}, "torch", fill_null=-1.0)
    assert [leaf.plan.steps[0].name for leaf in tp.leaves][:1] == ["fill_null"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)), min_size=0, max_size=30),
       st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from(["numpy", "torch"]))
def test_fill_agrees_with_pyarrow_for_any_float_column(values: list, fill: float, target: str) -> None:
    x = pa.array(values, type=pa.float32())
    out = af.convert(x, target, fill_null=fill)
    got = out if target == "numpy" else out.numpy()
    assert got.dtype == np.float32 and _bits(got) == _bits(_expected(x, fill))


def test_minus_zero_and_zero_fills_get_their_own_plans() -> None:
    x = pa.array([None], type=pa.float32())
    assert not np.signbit(af.convert(x, "numpy", fill_null=0.0)[0])
    assert np.signbit(af.convert(x, "numpy", fill_null=-0.0)[0])  # -0.0 == 0.0, but not the same plan
