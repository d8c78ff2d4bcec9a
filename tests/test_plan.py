"""Plans: what they say (steps, explanation, costs) and that they run on what they were made for.

The matrix in ``test_convert.py`` already checks, for every case, that ``plan.zero_copy`` equals
what ``convert`` does. This file checks the rest of the Plan object, the plan cache (plans keyed
by signature must not depend on shape or strides), and the planner's rules on narrowing.
"""

from __future__ import annotations

import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest
from cases import Case, sample
from helpers import assert_bitwise_equal, numpy_bits, shares_memory

import arrayferry as af
from arrayferry._plan import build_template
from arrayferry.adapters.numpy import NumpyAdapter

torch = pytest.importorskip("torch")


# -- what a plan says ----------------------------------------------------------------------------


def test_issue_example_negative_strides() -> None:
    """``af.plan(np_array[::-1], "torch")``: not zero-copy; make contiguous, then alias."""
    x = np.arange(12.0)[::-1]
    p = af.plan(x, "torch")
    assert p.zero_copy is False and p.route == "host"
    assert [s.name for s in p.steps] == ["host_copy", "import_host"]
    assert [s.copies for s in p.steps] == [True, False]
    text = p.explain()
    assert "negative strides" in text and "C-contiguous" in text
    assert "1 copy step(s), about 96 B written" in text
    assert p.copies == 1 and p.nbytes_moved == x.nbytes


def test_explain_names_every_step_route_and_refusal(case: Case, target: str) -> None:
    x, _ = case.make()
    p = af.plan(x, target)
    text = p.explain()
    assert text == str(p)
    lines = text.splitlines()
    assert lines[0].startswith("Plan: ") and p.source.summary() in lines[0]
    assert f"-> {target} on cpu as {p.dtype}, copy=None" in lines[1]
    assert lines[2].startswith(f"Route: {p.route}; ")
    assert ("zero-copy" in lines[2]) is p.zero_copy
    for i, s in enumerate(p.steps, 1):
        assert isinstance(s, af.Step) and s.name and s.description
        assert f"{i}. {s.name} [" in text and s.description in text
        assert str(s) == f"{s.name}: {s.description}"
    if not p.steps:
        assert "(none: the input is returned as it is)" in text
    for route, why in p.refused:
        assert f"- {route}: {why}" in text
    assert repr(p).startswith(f"<Plan {case.source}->{target} route={p.route} zero_copy={p.zero_copy}")


def test_copy_true_copies_exactly_once(case: Case, target: str) -> None:
    """``copy=True`` adds one copy when none is planned, and never a second one."""
    x, _ = case.make()
    assert af.plan(x, target, copy=True).copies == 1
    assert af.plan(x, target).copies == (1 if case.needs_copy(target) else 0)


def test_plan_attributes() -> None:
    x = sample("float32", (3, 4))
    p = af.plan(x, "torch", dtype="float64", copy=None)
    assert (p.target, p.device, p.dtype, p.copy) == ("torch", af.Device("cpu"), "float64", None)
    assert p.source.framework == "numpy" and p.source.dtype == "float32" and p.source.shape == (3, 4)
    assert p.nbytes_moved == 12 * 8  # the cast writes float64
    assert "cast float32 to float64" in p.explain()


def test_requires_grad_plan_records_detach_as_no_copy() -> None:
    t = torch.ones(3, requires_grad=True)
    p = af.plan(t, "numpy")
    assert [(s.name, s.copies) for s in p.steps] == [("detach", False), ("export_host", False)]
    assert p.zero_copy and "detach" in p.explain() and "requires_grad" in p.explain()


@pytest.mark.parametrize("make", [lambda: torch.tensor([1 + 2j]).conj(), lambda: torch.tensor([1 + 2j]).conj().imag],
                         ids=["conj", "neg"])
def test_conj_and_neg_bits_are_resolved_as_a_copy_step(make: Any) -> None:
    t = make()
    p = af.plan(t, "numpy")
    resolve = [s for s in p.steps if s.name == "resolve_bits"]
    assert len(resolve) == 1 and resolve[0].copies and p.copies == 1
    with pytest.raises(af.CopyRequiredError, match="resolve|conj|neg"):
        af.plan(t, "numpy", copy=False)


def test_refused_routes_say_why() -> None:
    p = af.plan(np.arange(4.0), "torch")
    refused = dict(p.refused)
    assert "dlpack" in refused and "same cost" in refused["dlpack"] and "host route is preferred" in refused["dlpack"]
    ro = np.arange(4.0)
    ro.setflags(write=False)
    with pytest.raises(af.CopyRequiredError) as ei:
        af.plan(ro, "torch", copy=False)
    assert "read-only" in str(ei.value) and "host:" in str(ei.value)


# -- plans move no data ----------------------------------------------------------------------------


def test_plan_moves_no_data() -> None:
    """Planning an 8 MiB array that needs a copy allocates nothing like 8 MiB; converting does."""
    x = np.ones(1 << 20)[::-1]  # 8 MiB, negative strides: a copy for torch
    tracemalloc.start()
    try:
        af.plan(x, "torch")
        _, peak_plan = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        t = af.convert(x, "torch")
        _, peak_convert = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_plan < (1 << 20), peak_plan
    assert peak_convert >= x.nbytes, peak_convert
    assert t[0].item() == 1.0


# -- execute ---------------------------------------------------------------------------------------


def test_execute_runs_the_plan_on_arrays_with_the_same_signature(case: Case, target: str) -> None:
    x, ref = case.make()
    p = af.plan(x, target)
    y = p.execute(x)
    assert_bitwise_equal(ref, y)
    if ref.size:
        assert shares_memory(x, y) is p.zero_copy
    x2, ref2 = case.make()  # a different array, same signature
    assert_bitwise_equal(ref2, p(x2))


@pytest.mark.parametrize(
    ("make_other", "why"),
    [
        (lambda: np.arange(4, dtype=np.float32), "dtype"),
        (lambda: np.arange(8.0)[::-1], "negative layout"),
        (lambda: np.asfortranarray(np.ones((2, 3))), "layout"),
        (lambda: np.broadcast_to(np.arange(2.0), (3, 2)), "read-only broadcast"),
        (lambda: np.arange(4.0).astype(">f8"), "byte order"),
        (lambda: torch.arange(4.0, dtype=torch.float64), "framework"),
        (lambda: [1.0, 2.0], "a list"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_execute_refuses_arrays_with_another_signature(make_other: Any, why: str) -> None:
    p = af.plan(np.arange(4.0), "torch")
    with pytest.raises(af.ArrayFerryError) as ei:
        p.execute(make_other())
    assert "This plan was made for numpy float64" in str(ei.value)
    assert str(ei.value).splitlines()[-1].startswith("Hint: make a new plan")


def test_readonly_flag_is_part_of_the_signature() -> None:
    p = af.plan(np.arange(4.0), "torch")
    ro = np.arange(4.0)
    ro.setflags(write=False)
    with pytest.raises(af.ArrayFerryError):
        p.execute(ro)


# -- the plan cache ----------------------------------------------------------------------------------


@pytest.mark.parametrize("to", ["torch", "numpy"])
def test_cached_plans_do_not_depend_on_shape_or_strides(to: str) -> None:
    """Arrays of one signature but many shapes and strides all convert correctly from one cached plan."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal(4 * 6 * 5).reshape(4, 6, 5)
    views = [base[::2], base[:, ::3], base[1:, :, ::2], base[:, 1:4, 1:], base.transpose(2, 0, 1)[:, ::2]]
    views += [v[..., 0] for v in views]
    af.clear_cache()
    for v in views:
        y = af.convert(v, to)
        assert_bitwise_equal(v, y)
        assert shares_memory(v, y)


@pytest.mark.parametrize("first_readonly", [True, False])
def test_cache_tells_readonly_from_writable(first_readonly: bool) -> None:
    writable = np.arange(5.0)
    readonly = np.arange(5.0)
    readonly.setflags(write=False)
    order = [readonly, writable] if first_readonly else [writable, readonly]
    for a in order:
        t = af.convert(a, "torch")
        assert shares_memory(a, t) is a.flags.writeable


def test_cache_tells_positive_from_negative_strides() -> None:
    fwd = np.arange(6.0).reshape(2, 3)[:, ::2]
    back = np.arange(6.0).reshape(2, 3)[:, ::-2]
    for a in (fwd, back, fwd, back):
        t = af.convert(a, "torch")
        assert_bitwise_equal(a, t)
        assert shares_memory(a, t) is (a is fwd)


def test_cache_tells_complex_alignment_apart() -> None:
    """complex128 at a 16-byte boundary aliases; at an 8-byte one (NumPy: aligned) it must copy."""
    base = np.zeros(2 * 4 + 2)
    start = 0 if base.ctypes.data % 16 == 0 else 1
    good = base[start:start + 8].view(np.complex128)
    bad = base[start + 1:start + 9].view(np.complex128)
    assert good.flags.aligned and bad.flags.aligned  # NumPy cannot tell them apart
    for a, ok in ((good, True), (bad, False), (good, True), (bad, False)):
        assert af.plan(a, "torch").zero_copy is ok
        t = af.convert(a, "torch")
        assert shares_memory(a, t) is ok
        t[0] = 1 + 1j  # safe either way: torch got aligned memory


def test_clear_cache_keeps_results_identical() -> None:
    x = sample("int16", (3, 3))
    before = af.convert(x, "torch")
    af.clear_cache()
    after = af.convert(x, "torch")
    assert before.data_ptr() == after.data_ptr() == x.ctypes.data


# -- the planner's rules on dtypes the target cannot hold --------------------------------------------


class _NoInt64NoFloat64(NumpyAdapter):
    """A real NumPy adapter that, like JAX with x64 off, stores 64-bit types as 32-bit ones."""

    name = "numpy32"
    _NARROW = {"int64": "int32", "uint64": "uint32", "float64": "float32", "complex128": "complex64"}

    def supports_dtype(self, dtype: str, device: af.Device) -> bool:
        return dtype not in self._NARROW

    def default_dtype_for(self, dtype: str, device: af.Device) -> str:
        return self._NARROW.get(dtype, dtype)


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_integer_narrowing_without_dtype_is_refused(dtype: str) -> None:
    src, tgt = NumpyAdapter(), _NoInt64NoFloat64()
    x = sample(dtype, (4,))
    with pytest.raises(af.LossyConversionError) as ei:
        build_template(src, src.describe(x), tgt, None, None, None)
    msg = str(ei.value)
    assert dtype in msg and "narrow" in msg
    assert msg.splitlines()[-1].startswith("Hint: pass dtype=")


def test_float_narrowing_warns_and_is_noted() -> None:
    src, tgt = NumpyAdapter(), _NoInt64NoFloat64()
    x = np.array([1.5, np.nan, -0.0, 1e300])
    t = build_template(src, src.describe(x), tgt, None, None, None)
    assert t.dtype == "float32" and any("narrowed" in n for n in t.notes)
    with pytest.raises(af.LossyConversionError, match=r"1e\+300 is beyond float32's largest finite value"):
        t.run(x)  # the narrowing may round, never overflow to inf unless casting='unsafe'
    t = build_template(src, src.describe(x), tgt, None, None, None, casting="unsafe")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = t.run(x)
    assert any(issubclass(w.category, af.LossyConversionWarning) for w in caught)
    assert y.dtype == np.float32
    got = numpy_bits(y)
    assert np.isnan(got[1]) and np.signbit(got[2]) and np.isinf(got[3]) and got[0] == 1.5


def test_explicit_dtype_accepts_the_narrowing() -> None:
    src, tgt = NumpyAdapter(), _NoInt64NoFloat64()
    x = np.array([1, -(2**31), 2**31 - 1], dtype=np.int64)
    t = build_template(src, src.describe(x), tgt, None, "int32", None)
    assert t.dtype == "int32" and any(s.copies for s in t.steps)
    assert t.run(x).tolist() == x.tolist()
    with pytest.raises(af.UnsupportedDTypeError, match="int64"):
        build_template(src, src.describe(x), tgt, None, "int64", None)
