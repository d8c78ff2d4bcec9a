"""Direct calls (``Adapter.direct_call``): the hot path's one native call, tried before any
signature is read, must return what the planned route returns or raise, for every array.

torch's two: ``Tensor.numpy`` (torch -> numpy, guarded by torch's own checks) and
``torch.from_numpy`` behind NumPy's WRITEABLE/ALIGNED flags (numpy -> torch). Checked on every
case of the catalogue, on the tensors torch itself refuses to hand to NumPy, and on generated
NumPy views (hypothesis); then the plan cache's use of them: taken, dropped after repeated
refusals, restored by ``clear_cache``, and never a writable alias of read-only memory.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import arrayferry as af  # noqa: E402
from arrayferry import _api  # noqa: E402
from arrayferry.plugin import adapter_named  # noqa: E402
from arrayferry.testing.cases import CASES  # noqa: E402


def _direct(x: Any, target: str) -> Callable[[Any], Any] | None:
    src = adapter_named(af.framework_of(x) or "")
    tgt = adapter_named(target)
    fn = src.direct_call(type(x), src.name, tgt.name)
    if fn is None and tgt is not src:
        fn = tgt.direct_call(type(x), src.name, tgt.name)
    return fn


def _bits(a: Any) -> tuple[str, tuple[int, ...], bytes]:
    a = af.convert(a, "numpy") if not isinstance(a, np.ndarray) else a
    if a.dtype.kind == "V" or a.dtype.name in ("bfloat16",) or "float8" in a.dtype.name:
        a = a.view(f"u{a.dtype.itemsize}")
    return (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())


def _check(x: Any, target: str) -> str:
    """Run ``x``'s direct call to ``target`` against the plan; ``"refused"`` or ``"same"``."""
    fn = _direct(x, target)
    assert fn is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            got = fn(x)
        except Exception:
            return "refused"
    want = af.plan(x, target).execute(x)
    assert type(got) is type(want)
    assert str(got.dtype) == str(want.dtype)
    assert tuple(got.shape) == tuple(want.shape)
    assert _bits(got) == _bits(want)
    assert af.shares_memory(got, x) == af.shares_memory(want, x)
    return "same"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_catalogue_cases(case: Any) -> None:
    x, _ = case.make()
    if isinstance(x, np.ndarray) and type(x) is np.ndarray:
        outcome = _check(x, "torch")
        # the guard refuses what torch.from_numpy would alias wrongly
        if not x.flags.writeable:
            assert outcome == "refused"
    elif type(x) is torch.Tensor:
        _check(x, "numpy")
    else:
        pytest.skip(f"no direct call for {type(x).__qualname__}")


def _tensors() -> dict[str, Callable[[], Any]]:
    def inference() -> Any:
        with torch.inference_mode():
            return torch.arange(6.0)

    return {
        "float32": lambda: torch.arange(6.0),
        "bool": lambda: torch.tensor([True, False]),
        "uint16": lambda: torch.arange(6).to(torch.uint16),
        "uint64": lambda: torch.arange(6).to(torch.uint64),
        "bfloat16": lambda: torch.arange(6.0, dtype=torch.bfloat16),
        "float8": lambda: torch.arange(6.0).to(torch.float8_e4m3fn),
        "complex32": lambda: torch.zeros(3, dtype=torch.complex32),
        "complex64": lambda: torch.tensor([1 + 2j, -0.0 - 1j], dtype=torch.complex64),
        "requires_grad": lambda: torch.arange(6.0, requires_grad=True),
        "conj": lambda: torch.tensor([1 + 2j], dtype=torch.complex64).conj(),
        "neg": lambda: torch.tensor([1 + 2j], dtype=torch.complex64).conj().imag,
        "transposed": lambda: torch.arange(12.0).reshape(3, 4).T,
        "expanded": lambda: torch.arange(3.0).reshape(3, 1).expand(3, 4),
        "offset": lambda: torch.arange(12.0)[5:],
        "empty": lambda: torch.zeros(0, 3),
        "scalar": lambda: torch.tensor(-0.0),
        "inference": inference,
        "meta": lambda: torch.empty(3, device="meta"),
        "sparse": lambda: torch.arange(4.0).to_sparse(),
        "sparse_csr": lambda: torch.eye(3).to_sparse_csr(),
        "quantized": lambda: torch.quantize_per_tensor(torch.arange(4.0), 0.5, 0, torch.quint8),
        "nested": lambda: torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)]),
    }


@pytest.mark.parametrize("name", sorted(_tensors()))
def test_tensors_to_numpy(name: str) -> None:
    """Every kind of tensor: Tensor.numpy() either refuses or gives exactly the plan's result,
    and convert (the hot path, which tries it first) agrees with the plan in every case."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nested warns that it is a prototype
        t = _tensors()[name]()
    try:
        planned = af.plan(t, "numpy")
    except af.ArrayFerryError as exc:
        with pytest.raises(type(exc)):
            af.convert(t, "numpy")
        assert _check(t, "numpy") == "refused"
        return
    outcome = _check(t, "numpy")
    if name in ("float32", "bool", "uint16", "uint64", "complex64", "transposed", "expanded", "offset", "empty", "scalar",
                "inference"):
        assert outcome == "same" and planned.zero_copy
    else:
        assert outcome == "refused"
    for _ in range(3):  # through the hot path: the direct call first, the plan after a refusal
        got = af.convert(t, "numpy")
        want = planned.execute(t)
        assert _bits(got) == _bits(want) and af.shares_memory(got, t) == af.shares_memory(want, t)


_DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16",
           "float32", "float64", "complex64", "complex128", "longdouble", "datetime64[s]", "U2", "bfloat16"]


def _values(dtype: str, n: int) -> Any:
    if dtype == "bfloat16":
        return (np.arange(n, dtype=np.float32) - 2.5).astype(ml_dtypes.bfloat16)
    dt = np.dtype(dtype)
    if dt.kind in "MU":
        return np.arange(n).astype(dt)
    a = (np.arange(n) % 7 * 3 - 5).astype(dt)
    if dt.kind in "fc" and n > 2:
        a[0], a[1] = np.nan, -0.0
    return a


@st.composite
def _numpy_views(draw: st.DrawFn) -> Any:
    dtype = draw(st.sampled_from(_DTYPES))
    rows, cols = draw(st.integers(0, 4)), draw(st.integers(1, 5))
    base = _values(dtype, rows * cols).reshape(rows, cols)
    view = draw(st.sampled_from(["plain", "T", "step", "reverse", "column", "row1", "byteswap", "offset", "fortran"]))
    if view == "T":
        base = base.T
    elif view == "step":
        base = base[:, ::2]
    elif view == "reverse":
        base = base[::-1]
    elif view == "column":
        base = base[:, :1]
    elif view == "row1":
        base = base[:1]
    elif view == "byteswap" and base.dtype.kind in "iufc" and base.dtype.itemsize > 1:
        base = base.astype(base.dtype.newbyteorder())
    elif view == "offset" and base.size:
        raw = np.zeros(base.nbytes + base.dtype.itemsize, np.uint8)
        off = draw(st.integers(1, base.dtype.itemsize)) if base.dtype.itemsize > 1 else 1
        base = raw[off:off + base.nbytes].view(base.dtype).reshape(base.shape)
        base[...] = _values(dtype, base.size).reshape(base.shape)
    elif view == "fortran":
        base = np.asfortranarray(base)
    if draw(st.booleans()):
        base.flags.writeable = False
    return base


@settings(max_examples=300, deadline=None)
@given(_numpy_views())
def test_numpy_views_to_torch(x: Any) -> None:
    """Any NumPy array: the guarded torch.from_numpy refuses or matches the plan; convert never
    aliases read-only memory writably."""
    _check(x, "torch")
    try:
        want = af.plan(x, "torch").execute(x)
    except af.ArrayFerryError as exc:
        with pytest.raises(type(exc)):
            af.convert(x, "torch")
        return
    got = af.convert(x, "torch")
    assert _bits(got) == _bits(want)
    shared = af.shares_memory(got, x)
    assert shared == af.shares_memory(want, x)
    if not x.flags.writeable:
        assert not shared


def test_hot_path_takes_the_direct_call() -> None:
    af.clear_cache()
    x = np.arange(6, dtype=np.float32)
    t = af.convert(x, "torch")
    assert t.data_ptr() == x.ctypes.data
    assert _api._CACHE["torch"][np.ndarray][4] is not None
    back = af.convert(t, "numpy")
    assert back.ctypes.data == x.ctypes.data
    assert _api._CACHE["numpy"][torch.Tensor][4] is torch.Tensor.numpy
    # options other than the defaults plan as before: no direct call under their key
    af.convert(x, "torch", copy=False)
    key = _api.options_key("torch", copy=False)
    assert _api._CACHE[key][np.ndarray][4] is None
    # a converter shares the entry
    conv = af.converter("torch")
    assert conv(x).data_ptr() == x.ctypes.data
    # the host asked for by name (as @accepts sends results back to a NumPy caller): direct too;
    # a device the direct calls do not serve: planned
    assert af.convert(t, "numpy", device="cpu").ctypes.data == x.ctypes.data
    assert _api._CACHE[_api.options_key("numpy", device="cpu")][torch.Tensor][4] is torch.Tensor.numpy
    with pytest.raises(af.DeviceError):
        af.convert(x, "torch", device="cuda")
    assert _api._CACHE[_api.options_key("torch", device="cuda")][np.ndarray][4] is None


def test_refusals_drop_the_direct_call_until_the_cache_is_cleared() -> None:
    af.clear_cache()
    plain = torch.arange(4.0)
    af.convert(plain, "numpy")
    assert _api._CACHE["numpy"][torch.Tensor][4] is not None
    grad = torch.arange(4.0, requires_grad=True)
    for i in range(_api._MAX_REFUSALS):
        out = af.convert(grad, "numpy")
        assert out.ctypes.data == grad.data_ptr() and not out.flags.owndata  # detached, no copy
        dropped = _api._CACHE["numpy"][torch.Tensor][4] is None
        assert dropped == (i == _api._MAX_REFUSALS - 1)
    assert af.convert(plain, "numpy").ctypes.data == plain.data_ptr()  # still right, through the signature
    conv = af.converter("numpy")
    assert conv(grad).ctypes.data == grad.data_ptr()
    af.clear_cache()
    af.convert(plain, "numpy")
    assert _api._CACHE["numpy"][torch.Tensor][4] is not None


def test_readonly_never_aliased_writably_through_the_hot_path() -> None:
    x = np.arange(6.0)
    x.flags.writeable = False
    for _ in range(3):
        t = af.convert(x, "torch")
        assert t.data_ptr() != x.ctypes.data
        t[0] = 99.0
        assert x[0] == 0.0


def test_complex_view_at_one_component_offset_is_copied() -> None:
    """NumPy calls a complex128 view at an 8-byte offset aligned; torch does not (a write
    into such a tensor crashes): the guard refuses views of complex data, the plan copies."""
    raw = np.zeros(5, np.complex128)
    v = raw.view(np.float64)[1:9].view(np.complex128)
    assert v.flags.aligned and v.ctypes.data % 16 == 8
    assert _direct(v, "torch") is not None
    with pytest.raises(Exception, match=r"^$"):  # the guard's own refusal (no message), not torch's
        _direct(v, "torch")(v)  # type: ignore[misc]
    t = af.convert(v, "torch")
    assert t.data_ptr() % 16 == 0 and t.data_ptr() != v.ctypes.data


def test_convert_keeps_its_documented_signature() -> None:
    assert inspect.signature(af.convert) == inspect.signature(_api.convert)
    assert af.convert.__wrapped__ is _api.convert  # type: ignore[attr-defined]
    assert af.convert.__doc__ == _api.convert.__doc__
    x = np.arange(3.0)
    with pytest.raises(TypeError, match=r"convert\(\) takes 2 positional arguments but 3 were given"):
        af.convert(x, "torch", "cpu")  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"convert\(\) missing 1 required positional argument: 'to'"):
        af.convert(x)  # type: ignore[call-arg]
    # keywords go to the documented function: options, errors and all
    assert af.convert(x, "torch", dtype="float32").dtype == torch.float32
    with pytest.raises(af.ArgumentError, match="no_such_option"):
        af.convert(x, "torch", no_such_option=1)
    assert af.convert(x=x, to="torch").data_ptr() == x.ctypes.data
