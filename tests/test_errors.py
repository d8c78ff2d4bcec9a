"""Bad input gets a typed arrayferry error: the right class, a message naming what was asked and
what was tried, and a last line starting ``Hint:``. Never a leaking framework error, a segfault,
a silent wrong value or a silently dropped mask."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from helpers import assert_error_layout, run_python

import arrayferry as af

torch = pytest.importorskip("torch")


# -- the hierarchy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (af.CopyRequiredError, BufferError),
        (af.UnsupportedDTypeError, TypeError),
        (af.UnsupportedArrayError, TypeError),
        (af.UnknownFrameworkError, TypeError),
        (af.DeviceError, ValueError),
        (af.LossyConversionError, ValueError),
        (af.PluginError, Exception),
    ],
)
def test_every_error_is_an_arrayferry_error_and_the_builtin(cls: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(cls, af.ArrayFerryError) and issubclass(cls, builtin)


# -- arrays that can never leave their framework ---------------------------------------------

_UNCONVERTIBLE: list[tuple[str, Callable[[], Any], type[Exception], tuple[str, ...], tuple[str, ...]]] = [
    # id, builder, error class, words in the message, targets
    ("torch-sparse-coo", lambda: torch.eye(3).to_sparse(), af.UnsupportedArrayError, ("sparse_coo", "to_dense"), ("numpy", "torch")),
    ("torch-sparse-csr", lambda: torch.eye(3).to_sparse_csr(), af.UnsupportedArrayError, ("sparse_csr", "to_dense"), ("numpy", "torch")),
    ("torch-meta", lambda: torch.empty(3, device="meta"), af.DeviceError, ("meta", "no data"), ("numpy",)),
    ("np-masked", lambda: np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]), af.UnsupportedArrayError,
     ("masked", "mask", "filled"), ("numpy", "torch")),
    ("np-masked-nomask", lambda: np.ma.masked_array([1.0, 2.0]), af.UnsupportedArrayError, ("masked",), ("torch",)),
    ("np-object", lambda: np.array([1, "a", None], dtype=object), af.UnsupportedDTypeError, ("object", "numeric"), ("torch",)),
    ("np-structured", lambda: np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]), af.UnsupportedDTypeError,
     ("('a', '<f4')", "numeric"), ("torch",)),
    ("np-datetime64", lambda: np.arange(3).astype("datetime64[ns]"), af.UnsupportedDTypeError, ("datetime64[ns]",), ("torch",)),
    ("np-timedelta64", lambda: np.arange(3).astype("timedelta64[s]"), af.UnsupportedDTypeError, ("timedelta64[s]",), ("torch",)),
    ("np-str", lambda: np.array(["a", "bc"]), af.UnsupportedDTypeError, ("<U2",), ("torch",)),
    ("np-bytes", lambda: np.array([b"a", b"bc"]), af.UnsupportedDTypeError, ("|S2",), ("torch",)),
    ("np-void", lambda: np.zeros(3, "V4"), af.UnsupportedDTypeError, ("V4",), ("torch",)),
    ("np-longdouble", lambda: np.zeros(3, np.longdouble), af.UnsupportedDTypeError, ("float128",), ("torch",)),
]


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")
@pytest.mark.parametrize("copy_policy", [None, False, True], ids=lambda c: f"copy={c}")
@pytest.mark.parametrize(("make", "cls", "words", "targets"), [u[1:] for u in _UNCONVERTIBLE], ids=[u[0] for u in _UNCONVERTIBLE])
def test_unconvertible_arrays_raise_typed_errors(
    make: Callable[[], Any], cls: type[Exception], words: tuple[str, ...], targets: tuple[str, ...], copy_policy: bool | None
) -> None:
    for to in targets:
        x = make()
        for fn in (af.plan, af.convert):
            with pytest.raises(cls) as ei:
                fn(x, to, copy=copy_policy)
            assert type(ei.value) is cls  # the most specific class, not a subclass of something else
            assert_error_layout(ei.value, *words)


@pytest.mark.parametrize("copy_policy", [None, False, True])
@pytest.mark.parametrize("dtype", [None, "float64", "int32", "float16"])
def test_meta_tensor_into_torch_on_meta_is_torchs_own_business(copy_policy: bool | None, dtype: str | None) -> None:
    """torch -> torch on the meta device moves nothing: identity, copy and cast are torch's own."""
    m = torch.empty(3, 4, device="meta")
    if copy_policy is False and dtype is not None:  # a cast is a copy, even of nothing
        with pytest.raises(af.CopyRequiredError):
            af.convert(m, "torch", copy=False, dtype=dtype)
        return
    p = af.plan(m, "torch", copy=copy_policy, dtype=dtype)
    assert p.route == "native"
    out = af.convert(m, "torch", copy=copy_policy, dtype=dtype)
    assert out.is_meta and out.shape == (3, 4)
    assert out.dtype == (getattr(torch, dtype) if dtype else torch.float32)
    assert (out is m) is (copy_policy is not True and dtype is None)
    for dev in ("meta", torch.device("meta")):
        assert af.convert(m, "torch", device=dev).is_meta
    with pytest.raises(af.DeviceError, match="meta"):  # leaving meta needs data it does not have
        af.convert(m, "torch", device="cpu")


def test_masked_array_mask_is_never_dropped() -> None:
    m = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    for to in ("torch", "numpy"):
        with pytest.raises(af.UnsupportedArrayError):
            af.convert(m, to)
    # the documented way out works and is explicit about what masked entries become
    t = af.convert(m.filled(np.nan), "torch")
    assert torch.isnan(t[1]) and t[0] == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.array([1, "a", None], dtype=object),
        lambda: np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]),
        lambda: np.arange(3).astype("datetime64[D]"),
        lambda: np.array(["x", "yz"]),
        lambda: np.zeros(2, np.longdouble),
    ],
    ids=["object", "structured", "datetime64", "str", "longdouble"],
)
def test_numpy_only_dtypes_stay_numpy(make: Callable[[], Any]) -> None:
    """Within NumPy nothing needs converting: such arrays alias (or copy with copy=True)."""
    x = make()
    y = af.convert(x, "numpy")
    assert y is x or np.shares_memory(x, y)
    z = af.convert(x, "numpy", copy=True)
    assert z.dtype == x.dtype and not np.shares_memory(x, z)
    assert z.tobytes() == x.tobytes()


# -- devices -------------------------------------------------------------------------------------

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is available here")


@no_cuda
@pytest.mark.parametrize(
    "device",
    ["cuda", "cuda:0", "cuda:1", "gpu", "CUDA:0", af.Device("cuda", 1), "torch-device"],
    ids=str,
)
@pytest.mark.parametrize("src_fw", ["numpy", "torch"])
def test_cuda_target_without_cuda_is_a_device_error(device: Any, src_fw: str) -> None:
    if device == "torch-device":
        device = torch.device("cuda")
    x = np.arange(3.0) if src_fw == "numpy" else torch.arange(3.0)
    for fn in (af.plan, af.convert):
        with pytest.raises(af.DeviceError) as ei:
            fn(x, "torch", device=device)
        assert not isinstance(ei.value, AssertionError)
        assert_error_layout(ei.value, "no CUDA device available")


@no_cuda
def test_cuda_errors_are_not_assertion_errors_with_copy_policies() -> None:
    for copy_policy in (None, False, True):
        try:
            af.convert(torch.zeros(2), "torch", device="cuda", copy=copy_policy)
        except AssertionError:  # torch's own "Torch not compiled with CUDA enabled"
            pytest.fail("torch's AssertionError leaked")
        except af.DeviceError:
            pass


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_numpy_target_refuses_devices(device: str) -> None:
    with pytest.raises(af.DeviceError) as ei:
        af.convert(torch.zeros(2), "numpy", device=device)
    assert_error_layout(ei.value, "numpy", device)


@pytest.mark.parametrize("device", ["cuda:x", ":1", "", object()], ids=["cuda:x", ":1", "empty", "object"])
def test_unparseable_devices(device: Any) -> None:
    with pytest.raises(af.DeviceError) as ei:
        af.convert(np.zeros(2), "torch", device=device)
    assert_error_layout(ei.value)


def test_cpu_device_spellings_work() -> None:
    x = np.arange(3.0)
    for device in ("cpu", "CPU", "cpu:0", af.Device("cpu"), torch.device("cpu")):
        t = af.convert(x, "torch", device=device)
        assert t.device.type == "cpu" and t.data_ptr() == x.ctypes.data


# -- unknown things -----------------------------------------------------------------------------


class _MyList(list):  # type: ignore[type-arg]
    """A list subclass: no protocol adapter reads it (only list and tuple themselves)."""


class _MyInt(int):
    pass


@pytest.mark.parametrize("obj", [None, "abc", object(), {"a": 1}, _MyList([1.0]), _MyInt(3)],
                         ids=["None", "str", "object", "dict", "list-subclass", "int-subclass"])
def test_unknown_source_objects(obj: Any) -> None:
    """Objects no plugin owns and no protocol reads (lists, scalars, buffers ... are read: see
    tests/test_protocol_sources.py)."""
    with pytest.raises(af.UnknownFrameworkError) as ei:
        af.convert(obj, "torch")
    assert isinstance(ei.value, TypeError)
    assert_error_layout(ei.value, "no registered framework", type(obj).__qualname__)
    with pytest.raises(af.UnknownFrameworkError):
        af.plan(obj, "numpy")
    with pytest.raises(af.UnknownFrameworkError):
        af.device_of(obj)


@pytest.mark.parametrize("to", ["tensorflow", "nump", "", 42, json], ids=["tensorflow", "nump", "empty", "42", "json-module"])
def test_unknown_targets(to: Any) -> None:
    with pytest.raises(af.UnknownFrameworkError) as ei:
        af.convert(np.zeros(2), to)
    assert_error_layout(ei.value, "unknown target framework", "numpy", "torch")


@pytest.mark.parametrize("dtype", ["float31", "quaternion", object()], ids=["float31", "quaternion", "object"])
def test_unknown_dtypes(dtype: Any) -> None:
    with pytest.raises(af.UnsupportedDTypeError) as ei:
        af.convert(np.zeros(2), "torch", dtype=dtype)
    assert_error_layout(ei.value)


def test_copy_false_error_lists_every_route() -> None:
    x = np.arange(6.0)[::-1]
    with pytest.raises(af.CopyRequiredError) as ei:
        af.convert(x, "torch", copy=False)
    msg = str(ei.value)
    assert "numpy float64 (6,)" in msg and "negative" in msg  # what was asked
    assert "host:" in msg and "dlpack:" in msg  # what was tried
    assert_error_layout(ei.value, "copy=None")


# -- ml_dtypes missing (simulated in a fresh interpreter) ----------------------------------------

_NO_ML_DTYPES = r"""
import sys, json
sys.modules["ml_dtypes"] = None          # import ml_dtypes now raises ImportError
import numpy as np, torch
import arrayferry as af

out = {}
def record(key, fn):
    try:
        r = fn()
        out[key] = ["ok", str(getattr(r, "dtype", type(r)))]
    except Exception as e:
        out[key] = [type(e).__name__, str(e), [c.__name__ for c in type(e).__mro__]]

t = torch.tensor([1.5, -0.0], dtype=torch.bfloat16)
for copy in (None, False, True):
    record(f"plan-{copy}", lambda: af.plan(t, "numpy", copy=copy))
    record(f"convert-{copy}", lambda: af.convert(t, "numpy", copy=copy))
record("numpy-dtype-bf16", lambda: af.convert(np.zeros(2, np.float32), "numpy", dtype="bfloat16"))
record("torch-to-numpy-dtype-bf16", lambda: af.convert(torch.zeros(2), "numpy", dtype="bfloat16"))
record("torch-to-torch", lambda: af.convert(t, "torch"))
record("numpy-to-torch-as-bf16", lambda: af.convert(np.zeros(2, np.float32), "torch", dtype="bfloat16"))
print(json.dumps(out))
"""


def test_missing_ml_dtypes_gives_unsupported_dtype_error_with_hint() -> None:
    proc = run_python(_NO_ML_DTYPES)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    must_fail = [k for k in out if k.startswith(("plan-", "convert-"))] + ["numpy-dtype-bf16", "torch-to-numpy-dtype-bf16"]
    for key in must_fail:
        name, msg, mro = out[key]
        assert name == "UnsupportedDTypeError", (key, out[key])
        assert "TypeError" in mro and "ArrayFerryError" in mro
        assert "bfloat16" in msg and "ml_dtypes" in msg, msg
        assert msg.strip().splitlines()[-1].startswith("Hint: pip install 'ml_dtypes>=0.4'"), msg
    # torch alone, and torch's own cast, need no ml_dtypes
    assert out["torch-to-torch"] == ["ok", "torch.bfloat16"]


# -- running out of memory is not a bug ---------------------------------------------------------

_HUGE = 2**41  # elements: 16 TiB as float64, refused by the allocator at once (nothing is written)


def _huge_numpy() -> np.ndarray:
    return np.broadcast_to(np.float64(1.5), (_HUGE,))  # 8 bytes of real memory


def _through(kind: str, x: Any, to: str) -> Any:
    if kind == "convert":
        return af.convert(x, to, copy=True)
    if kind == "plan":
        return af.plan(x, to, copy=True).execute(x)
    if kind == "tree":
        return af.convert_tree({"a": [x]}, to, copy=True)
    return af.accepts(to, copy=True)(lambda a: a)(x)


@pytest.mark.parametrize("kind", ["convert", "plan", "tree", "accepts"])
@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_out_of_memory_stays_a_memory_error_with_the_route_as_a_note(kind: str, to: str) -> None:
    x = _huge_numpy()
    with pytest.raises(MemoryError) as ei:
        _through(kind, x, to)
    assert not isinstance(ei.value, af.ArrayFerryError)
    notes = getattr(ei.value, "__notes__", [])
    assert notes and notes[0].startswith("arrayferry: raised while converting numpy float64"), notes
    assert len(notes) == (2 if kind == "tree" else 1), notes  # convert_tree adds the leaf's path
    assert f"to {to} on cpu by the" in notes[0] and "route (steps:" in notes[0]
    assert "bug" not in str(ei.value) + notes[0]


def test_torch_allocator_failure_passes_through_with_a_note() -> None:
    t = torch.ones(1).expand(_HUGE)  # torch's own allocator refuses the clone
    with pytest.raises(RuntimeError, match="allocate memory") as ei:
        af.convert(t, "torch", copy=True)
    assert not isinstance(ei.value, af.ArrayFerryError)
    assert "by the native route" in ei.value.__notes__[0]


def test_resource_error_classification() -> None:
    from arrayferry._plan import is_resource_error

    assert is_resource_error(MemoryError())
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError  # torch.OutOfMemoryError: 2.5+
    assert is_resource_error(oom("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_resource_error(RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 8 bytes"))
    assert not is_resource_error(RuntimeError("given numpy array strides not a multiple of the element byte size"))
    assert not is_resource_error(ValueError("out of memory"))
    cupy = pytest.importorskip("cupy")
    assert is_resource_error(cupy.cuda.memory.OutOfMemoryError(1 << 40, 0, 0))


# -- every error ends with a Hint line -----------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: af.Device("cuda", -1),
        lambda: af.Device("", None),
        lambda: af.Device(3),  # type: ignore[arg-type]
        lambda: af.Device("cuda", True),  # type: ignore[arg-type]
        lambda: af.Device("cuda", 1.0),  # type: ignore[arg-type]
        lambda: af.Device.from_dlpack((99, 0)),
        lambda: af.Device.from_dlpack(("cuda", 0)),  # type: ignore[arg-type]
        lambda: af.Device.from_dlpack(()),  # type: ignore[arg-type]
        lambda: af.Device("vulkan2").dlpack,
        lambda: af.Device.parse("cuda:x"),
        lambda: af.Device.parse(object()),
    ],
    ids=["negative-index", "empty-type", "int-type", "bool-index", "float-index", "dlpack-99", "dlpack-str",
         "dlpack-empty", "no-dlpack-code", "parse-bad-string", "parse-object"],
)
def test_device_errors_end_with_a_hint(call: Callable[[], Any]) -> None:
    with pytest.raises(af.DeviceError) as ei:
        call()
    assert_error_layout(ei.value)


def test_every_message_arrayferry_builds_has_a_hint() -> None:
    """Static check over the core and the plugins: every call of the message builders
    (``format_message``, the plugins' ``_msg``/``_message``) passes a hint."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = [*(root / "src" / "arrayferry").rglob("*.py"), *(root / "plugins").glob("*/src/**/*.py")]
    missing = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in ("format_message", "_msg", "_message") and len(node.args) < 3 and not any(
                    k.arg == "hint" for k in node.keywords
                ):
                    missing.append(f"{f.relative_to(root)}:{node.lineno}")
    assert not missing, f"messages without a hint: {missing}"


@pytest.mark.parametrize(
    ("obj", "first"),
    [
        (_MyList([1.0, -0.0]), "x is a _MyList, not an array: numpy.asarray(x)"),
        (_MyInt(3), "x is a Python _MyInt, not an array: numpy.asarray(x)"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_subclasses_of_lists_and_scalars_get_the_right_first_hint(obj: Any, first: str) -> None:
    """Lists, tuples and scalars themselves are read (a copy, see tests/test_protocol_sources.py);
    a subclass is not (it may mean more than its items), and its hint is not 'pip install a
    plugin' (which cannot help), but what does: numpy.asarray, which works."""
    for call in (lambda: af.convert(obj, "torch"), lambda: af.plan(obj, "numpy"), lambda: af.device_of(obj)):
        with pytest.raises(af.UnknownFrameworkError) as ei:
            call()
        hint = str(ei.value).splitlines()[-1]
        assert hint.startswith("Hint: " + first), hint
        assert "pip install" not in hint
    t = af.convert(np.asarray(obj), "torch")  # the hint's advice, followed
    assert t.tolist() == np.asarray(obj).tolist()
    if isinstance(obj, (list, tuple)):
        nested = af.convert_tree([np.asarray(obj)], "torch")
        assert isinstance(nested[0], torch.Tensor)


@pytest.mark.parametrize("obj", [[1.0, -0.0], (1, 2), 3, 2.5, True, 1j, np.float64(-0.0), np.int8(-3), np.bool_(True),
                                 np.complex64(1j)], ids=lambda v: type(v).__name__)
def test_lists_and_scalars_are_read_as_numpy_reads_them(obj: Any) -> None:
    ref = np.asarray(obj)
    t = af.convert(obj, "torch")
    assert t.numpy().tobytes() == ref.tobytes() and t.numpy().dtype == ref.dtype and tuple(t.shape) == ref.shape
    assert af.device_of(obj) == af.Device("cpu")
