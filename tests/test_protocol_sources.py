"""Sources no plugin owns: protocol objects, buffers, NumPy and Python scalars, nested lists.

Every object here is real: the protocol classes forward exactly one protocol of a real NumPy array
or torch tensor, so memory sharing is checked with pointers and by writing through one side and
reading the other.
"""

from __future__ import annotations

import array
import math
import struct
import sys
from typing import Any

import numpy as np
import pytest
from helpers import assert_error_layout

import arrayferry as af
from arrayferry.plugin import read_dlpack_capsule

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------------------------------------
# objects that offer exactly one protocol


class OnlyDLPack:
    """``__dlpack__`` and ``__dlpack_device__`` of a real array, nothing else."""

    def __init__(self, a: Any) -> None:
        self._a = a

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return self._a.__dlpack_device__()


class LegacyDLPack(OnlyDLPack):
    """A DLPack < 1.0 producer: ``__dlpack__`` takes no ``max_version`` and returns a legacy capsule."""

    def __dlpack__(self, stream: Any = None) -> Any:  # type: ignore[override]
        return self._a.__dlpack__()


class OnlyArrayInterface:
    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    @property
    def __array_interface__(self) -> dict[str, Any]:
        return self._a.__array_interface__


class OnlyArray:
    """NumPy 2's ``__array__``: shares when asked ``copy=False``."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return self._a.copy()
        return self._a


class CopyingArray(OnlyArray):
    """An ``__array__`` that must build its array (it refuses ``copy=False``, as NumPy 2 asks)."""

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("cannot share: the data is computed")
        return self._a * 1


class LegacyArray(OnlyArray):
    """An old ``__array__`` without ``copy=`` that returns its own memory."""

    def __array__(self, dtype: Any = None) -> np.ndarray:  # type: ignore[override]
        return self._a


class Raising:
    @property
    def __array_interface__(self) -> dict[str, Any]:
        raise RuntimeError("the device is gone")


class RaisingArray:
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        raise RuntimeError("lazy computation failed")


class RaisingDLPack:
    def __dlpack__(self, **kwargs: Any) -> Any:
        raise BufferError("cannot export: it is being written")

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


#: NumPy < 2.1's ``ndarray.__dlpack__`` takes no ``max_version`` (DLPack < 1.0): a wrapper of a NumPy
#: array is then a legacy producer, whose host memory arrayferry reads as read-only; and such a
#: NumPy refuses to export a read-only array at all (BufferError). torch makes versioned capsules.
NUMPY_VERSIONED_DLPACK = np.lib.NumpyVersion(np.__version__) >= "2.1.0"


def _ptr(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return int(x.data_ptr())
    return int(np.asarray(x).__array_interface__["data"][0])


# ------------------------------------------------------------------------------------------------
# detection


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: OnlyDLPack(np.arange(3.0)), "dlpack"),
        (lambda: OnlyArrayInterface(np.arange(3.0)), "array_interface"),
        (lambda: OnlyArray(np.arange(3.0)), "array"),
        (lambda: memoryview(b"abc"), "buffer"),
        (lambda: bytearray(b"abc"), "buffer"),
        (lambda: b"abc", "buffer"),
        (lambda: array.array("d", [1.0]), "buffer"),
        (lambda: [1.0, 2.0], "python"),
        (lambda: (1, 2), "python"),
        (lambda: 3, "python"),
        (lambda: 3.5, "python"),
        (lambda: True, "python"),
        (lambda: 1j, "python"),
        (lambda: np.float32(3.5), "numpy"),
        (lambda: np.bool_(True), "numpy"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_framework_of_names_the_protocol(make: Any, name: str) -> None:
    x = make()
    assert af.framework_of(x) == name
    assert af.framework_of(x) == name  # cached per type


def test_registered_types_never_reach_the_protocols() -> None:
    """A NumPy array offers every protocol, a tensor DLPack: their own adapters answer, and the
    protocol cache never sees their types."""
    from arrayferry._registry import registry

    af.convert(np.zeros(2), "torch")
    af.convert(torch.zeros(2), "numpy")
    af.convert([1.0], "torch")
    cache = registry().protocol_cache
    assert np.ndarray not in cache and torch.Tensor not in cache
    assert list in cache
    assert af.framework_of(np.zeros(2)) == "numpy" and af.framework_of(torch.zeros(2)) == "torch"


def test_protocol_types_stay_out_of_the_hot_path_table() -> None:
    """Lists, tuples and scalars stay containers and plain leaves for convert_tree."""
    from arrayferry import _api

    af.convert([1.0, 2.0], "torch")
    af.convert(3, "torch")
    assert list not in _api._TYPES and int not in _api._TYPES
    out = af.convert_tree({"w": [np.ones(2)], "n": 3, "lr": 0.5}, "torch")
    assert isinstance(out["w"], list) and isinstance(out["w"][0], torch.Tensor)
    assert out["n"] == 3 and type(out["n"]) is int and out["lr"] == 0.5


def test_an_object_with_no_protocol_is_still_unknown() -> None:
    class Nothing:
        pass

    with pytest.raises(af.UnknownFrameworkError) as ei:
        af.convert(Nothing(), "torch")
    assert_error_layout(ei.value, "no registered framework", "protocols the object offers: none", "pip install")
    assert af.framework_of(Nothing()) is None
    assert af.framework_of(None) is None and af.framework_of("abc") is None


@pytest.mark.parametrize("make", [lambda: range(4), lambda: iter([0, 1, 2, 3]), lambda: (i for i in range(4)),
                                  lambda: {0: 0, 1: 0, 2: 0, 3: 0}.keys(), lambda: __import__("collections").deque(range(4))],
                         ids=["range", "iterator", "generator", "dict_keys", "deque"])
def test_iterables_that_are_not_sequences_are_refused_with_a_hint_that_works(make: Any) -> None:
    """NumPy reads only lists and tuples as nested sequences: other iterables are refused (no
    object array, no silent 0-d), and the hint's ``convert(list(x), to)`` gives the values."""
    with pytest.raises(af.UnknownFrameworkError) as ei:
        af.convert(make(), "torch")
    assert_error_layout(ei.value, "no registered framework", "an iterable but not an array",
                        "arrayferry.convert(list(x), to)")
    assert "pip install" not in str(ei.value)
    out = af.convert(list(make()), "torch")
    assert out.dtype == torch.int64 and out.tolist() == [0, 1, 2, 3]


def test_a_string_is_refused_with_a_hint_that_works() -> None:
    x = "1.5 -0.0 inf"
    with pytest.raises(af.UnknownFrameworkError) as ei:
        af.convert(x, "torch")
    assert_error_layout(ei.value, "no registered framework", "x is a str", "[float(s) for s in x.split()]")
    out = af.convert([float(s) for s in x.split()], "numpy")
    assert out.dtype == np.float64 and out.tobytes() == np.array([1.5, -0.0, np.inf]).tobytes()


@pytest.mark.parametrize("to", ["dlpack", "buffer", "python", "array", "array_interface", "cuda_array_interface",
                                "pandas", "xarray"])
def test_protocols_are_not_targets(to: str) -> None:
    with pytest.raises(af.UnknownFrameworkError) as ei:
        af.convert(np.zeros(2), to)
    assert_error_layout(ei.value, "names a kind of source", "not a target", "registered frameworks", "convert(x, 'numpy')")
    # the hint's advice works: a NumPy array offers every protocol
    a = af.convert(memoryview(bytearray(b"ab")), "numpy")
    assert af.framework_of(memoryview(a)) == "buffer" and a.__dlpack__ is not None and a.__array_interface__


# ------------------------------------------------------------------------------------------------
# memory protocols: zero-copy, read-only, layout


@pytest.mark.parametrize("wrap", [OnlyDLPack, OnlyArrayInterface, OnlyArray,
                                  lambda a: memoryview(a), lambda a: a.data],
                         ids=["dlpack", "array_interface", "array", "memoryview", "ndarray.data"])
@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_writable_memory_is_shared(wrap: Any, to: str) -> None:
    base = np.arange(6.0).reshape(2, 3)
    x = wrap(base)
    p = af.plan(x, to)
    if wrap is OnlyDLPack and not NUMPY_VERSIONED_DLPACK:
        # NumPy < 2.1 exports legacy capsules only: read-only aliasing into NumPy, a copy into torch
        assert p.source.readonly and p.zero_copy == (to == "numpy"), p.explain()
        y = af.convert(x, to)
        assert (_ptr(y) == _ptr(base)) == (to == "numpy")
        if to == "numpy":
            assert not y.flags.writeable
        # the same memory from a versioned producer (torch) is shared writably
        x = OnlyDLPack(torch.from_numpy(base))
        p = af.plan(x, to)
    assert p.zero_copy, p.explain()
    y = af.convert(x, to)
    assert _ptr(y) == _ptr(base)
    if wrap is OnlyDLPack and to == "numpy" and not NUMPY_VERSIONED_DLPACK:
        # NumPy 1.x's from_dlpack asks for a legacy capsule and marks every import read-only
        assert not y.flags.writeable
        base[1, 2] = -0.0
    else:
        y[1, 2] = -0.0
    assert math.copysign(1.0, base[1, 2]) == -1.0  # written through the result, read in the source
    assert math.copysign(1.0, float(y[1, 2])) == -1.0
    base[0, 0] = 42.0
    assert float(y[0, 0]) == 42.0
    assert af.shares_memory(x, y) if to == "torch" else True


def test_legacy_capsules_of_host_memory_are_read_only() -> None:
    """A legacy capsule cannot say whether its memory may be written: NumPy reads it read-only, and
    torch (always writable) gets a copy; a versioned one from the same writable array is aliased."""
    base = np.arange(3.0)
    x = LegacyDLPack(base)
    p = af.plan(x, "numpy")
    assert p.source.readonly and p.zero_copy
    n = af.convert(x, "numpy")
    assert _ptr(n) == _ptr(base) and not n.flags.writeable
    t = af.convert(x, "torch")
    assert not af.plan(x, "torch").zero_copy and _ptr(t) != _ptr(base)
    t[0] = 5.0
    assert base[0] == 0.0
    assert af.plan(OnlyDLPack(torch.from_numpy(base)), "torch").zero_copy  # torch's capsules are versioned
    if NUMPY_VERSIONED_DLPACK:  # so are NumPy >= 2.1's (older ones make legacy ones only)
        assert af.plan(OnlyDLPack(base), "torch").zero_copy


@pytest.mark.parametrize("wrap", [OnlyDLPack, OnlyArrayInterface, OnlyArray, lambda a: memoryview(a)],
                         ids=["dlpack", "array_interface", "array", "memoryview"])
def test_readonly_memory_is_never_aliased_writably(wrap: Any) -> None:
    base = np.arange(4.0)
    base.flags.writeable = False
    x = wrap(base)
    if wrap is OnlyDLPack and not NUMPY_VERSIONED_DLPACK:
        # NumPy < 2.1 refuses to export read-only memory over DLPack (no read-only flag before 1.0):
        # nothing can be read, and arrayferry says why instead of aliasing it
        for to in ("numpy", "torch"):
            with pytest.raises(af.UnsupportedArrayError) as ei:
                af.convert(x, to)
            assert_error_layout(ei.value, "OnlyDLPack", "__dlpack__", "BufferError")
        return
    assert af.plan(x, "numpy").source.readonly
    n = af.convert(x, "numpy")
    assert not n.flags.writeable  # aliased, still read-only
    t = af.convert(x, "torch")
    assert _ptr(t) != _ptr(base)
    t[0] = 7.0
    assert base[0] == 0.0
    with pytest.raises(af.CopyRequiredError):
        af.convert(x, "torch", copy=False)


def test_legacy_producer_of_read_only_memory_is_refused_by_the_producer() -> None:
    base = np.arange(2.0)
    base.flags.writeable = False
    with pytest.raises(af.UnsupportedArrayError) as ei:
        af.convert(LegacyDLPack(base), "torch")
    assert_error_layout(ei.value, "LegacyDLPack", "__dlpack__", "BufferError")


class RefusingDLPack(OnlyDLPack):
    """A DLPack producer that refuses read-only memory, as NumPy < 2.1 does (it has no read-only
    flag to export): NumPy's own ``__dlpack__`` there, the same refusal emulated on newer NumPy."""

    def __dlpack__(self, **kwargs: Any) -> Any:
        if isinstance(self._a, np.ndarray) and not self._a.flags.writeable and NUMPY_VERSIONED_DLPACK:
            raise BufferError("Cannot export readonly array since signalling readonly is unsupported by DLPack.")
        return self._a.__dlpack__(**kwargs)


class RefusingDLPackAndInterface(RefusingDLPack, OnlyArrayInterface):
    pass


class RefusingDLPackAndArray(RefusingDLPack, OnlyArray):
    pass


class RefusingDLPackAndCopyingArray(RefusingDLPack, CopyingArray):
    pass


@pytest.mark.parametrize("cls, shared", [(RefusingDLPackAndInterface, True), (RefusingDLPackAndArray, True),
                                         (RefusingDLPackAndCopyingArray, False)],
                         ids=["array_interface", "array", "copying array"])
def test_refused_dlpack_export_falls_back_to_another_protocol(cls: Any, shared: bool) -> None:
    """A producer that refuses to export read-only memory over DLPack (BufferError) is read through
    the other protocol it offers; the plan says so, and read-only memory stays read-only."""
    base = np.array([np.nan, -0.0, np.inf, 1.5])
    base.flags.writeable = False
    x = cls(base)
    with pytest.raises(BufferError):
        x.__dlpack__()
    p = af.plan(x, "numpy")
    # (an __array__ that must copy is described by the new array it builds: writable)
    assert p.source.readonly == shared and p.zero_copy == shared, p.explain()
    assert "its __dlpack__ refuses to export this memory (BufferError" in p.explain()
    n = af.convert(x, "numpy")
    assert n.tobytes() == base.tobytes() and (_ptr(n) == _ptr(base)) == shared
    if shared:
        assert not n.flags.writeable
        assert af.shares_memory(x, base) is True
    t = af.convert(x, "torch")
    assert not af.plan(x, "torch").zero_copy and _ptr(t) != _ptr(base)
    t[0] = 7.0
    assert math.isnan(base[0])
    with pytest.raises(af.CopyRequiredError):
        af.convert(x, "torch", copy=False)
    # writable memory is not refused: DLPack is read as before
    w = cls(np.arange(3.0))
    assert "dlpack_refused" not in af.plan(w, "numpy").explain()
    # an object with nothing else to offer is refused, naming the producer's error
    with pytest.raises(af.UnsupportedArrayError) as ei:
        af.convert(RefusingDLPack(base), "numpy")
    assert_error_layout(ei.value, "RefusingDLPack", "__dlpack__", "BufferError")


def test_numpy_ulonglong_reaches_torch() -> None:
    """NumPy's second uint64 type (ulonglong, 'Q': array.array('Q'), memoryview format 'Q') is one
    torch.from_numpy refuses: viewed as uint64 first, no copy."""
    a = np.array([1, 2**64 - 1], dtype="Q")
    t = af.convert(a, "torch")
    assert t.dtype == torch.uint64 and t.data_ptr() == a.ctypes.data
    assert af.convert(t, "numpy").view(np.uint64).tolist() == [1, 2**64 - 1]


def test_bytes_are_read_only_uint8_and_bytearray_is_writable() -> None:
    b = b"\x00\x01\xff"
    n = af.convert(b, "numpy")
    assert n.dtype == np.uint8 and n.tolist() == [0, 1, 255] and not n.flags.writeable
    t = af.convert(b, "torch")
    t[0] = 9
    assert b == b"\x00\x01\xff"
    assert not af.plan(b, "torch").zero_copy
    ba = bytearray(b"\x00\x01\xff")
    t = af.convert(ba, "torch")
    assert t.dtype == torch.uint8 and af.plan(ba, "torch").zero_copy
    t[0] = 200
    assert ba[0] == 200
    ro = memoryview(ba).toreadonly()
    t2 = af.convert(ro, "torch")
    t2[1] = 77
    assert ba[1] == 1


def test_array_array_keeps_its_type_and_is_shared() -> None:
    for code, dt in [("d", np.float64), ("f", np.float32), ("i", np.intc), ("b", np.int8), ("Q", np.uint64)]:
        a = array.array(code, [1, 2, 3])
        t = af.convert(a, "torch")
        assert t.dtype == torch.from_numpy(np.zeros(1, dt)).dtype
        t[0] = 5
        assert a[0] == 5


def test_non_contiguous_memoryview() -> None:
    base = np.arange(10.0)
    mv = memoryview(base)[::2]
    p = af.plan(mv, "numpy")
    assert p.source.layout == "strided" and p.zero_copy
    n = af.convert(mv, "numpy")
    assert n.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0] and n.strides == (16,)
    t = af.convert(mv, "torch")
    assert t.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert t.stride() == (2,) and t.data_ptr() == base.ctypes.data  # torch views strided memory


def test_big_endian_buffer_is_swapped_by_a_copy() -> None:
    be = np.array([1.5, -0.0, np.inf, np.nan], dtype=">f8")
    mv = memoryview(be)
    assert mv.format == ">d"
    p = af.plan(mv, "torch")
    assert p.source.byteorder == ">" and not p.zero_copy
    t = af.convert(mv, "torch")
    assert t.dtype == torch.float64
    assert t.numpy().tobytes() == be.astype("<f8").tobytes()  # bit for bit: -0.0 and NaN kept
    n = af.convert(mv, "numpy")  # NumPy holds big-endian: aliased
    assert n.dtype == np.dtype(">f8") and _ptr(n) == _ptr(be)


def test_buffer_of_a_format_numpy_has_no_dtype_for() -> None:
    mv = memoryview(struct.pack("<3s", b"abc")).cast("c")
    with pytest.raises(af.UnsupportedDTypeError) as ei:
        af.convert(mv, "torch")
    assert_error_layout(ei.value, "dtype")


@pytest.mark.parametrize("obj", [Raising(), RaisingArray(), RaisingDLPack()], ids=["array_interface", "array", "dlpack"])
def test_a_protocol_call_that_raises_is_a_typed_error(obj: Any) -> None:
    for call in (lambda: af.convert(obj, "torch"), lambda: af.plan(obj, "numpy")):
        with pytest.raises(af.UnsupportedArrayError) as ei:
            call()
        assert_error_layout(ei.value, type(obj).__qualname__, "raised")


# ------------------------------------------------------------------------------------------------
# __array__: views, copies, old-style


def test_array_that_copies_says_so_and_copy_false_refuses() -> None:
    base = np.arange(3.0)
    x = CopyingArray(base)
    p = af.plan(x, "torch")
    assert not p.zero_copy and p.steps[0].name == "read" and "__array__(copy=False)" in p.steps[0].description
    t = af.convert(x, "torch")
    t[0] = 5.0
    assert base[0] == 0.0
    with pytest.raises(af.CopyRequiredError):
        af.convert(x, "torch", copy=False)


def test_old_style_array_is_copied_so_copy_true_holds() -> None:
    base = np.arange(3.0)
    x = LegacyArray(base)
    p = af.plan(x, "numpy")
    assert not p.zero_copy and "takes no copy=" in p.explain()
    n = af.convert(x, "numpy")
    n[0] = 9.0
    assert base[0] == 0.0  # independent, as the plan says
    n2 = af.convert(x, "numpy", copy=True)
    assert _ptr(n2) != _ptr(base)


def test_copy_true_is_independent_for_every_protocol() -> None:
    base = np.arange(4.0)
    for x in [OnlyDLPack(base), OnlyArrayInterface(base), OnlyArray(base), memoryview(base)]:
        for to in ("numpy", "torch"):
            y = af.convert(x, to, copy=True)
            y[0] = 100.0
            assert base[0] == 0.0, (type(x), to)


# ------------------------------------------------------------------------------------------------
# DLPack: devices, capsules, read-only flag


def test_dlpack_from_torch_is_consumed_by_torch_directly() -> None:
    src = torch.arange(4.0)
    x = OnlyDLPack(src)
    p = af.plan(x, "torch")
    assert p.route == "dlpack" and p.zero_copy
    t = af.convert(x, "torch")
    assert t.data_ptr() == src.data_ptr()
    t[1] = -0.0
    assert math.copysign(1.0, float(src[1])) == -1.0


def test_dlpack_casts_on_the_host() -> None:
    x = OnlyDLPack(np.array([1.5, -2.5]))
    t = af.convert(x, "torch", dtype="float32")
    assert t.dtype == torch.float32 and t.tolist() == [1.5, -2.5]
    with pytest.raises(af.LossyConversionError):
        af.convert(OnlyDLPack(np.array([np.nan])), "torch", dtype="int32")


def test_versioned_capsule_read_only_flag_is_kept() -> None:
    versioned = read_dlpack_capsule(torch.arange(3.0).__dlpack__(max_version=(1, 0)))
    assert versioned.versioned and not versioned.readonly and versioned.dtype == "float32"
    base = np.arange(3.0)
    base.flags.writeable = False
    if not NUMPY_VERSIONED_DLPACK:  # NumPy < 2.1: legacy capsules only, and none of read-only memory
        with pytest.raises(TypeError):
            base.__dlpack__(max_version=(1, 0))
        with pytest.raises(BufferError):
            base.__dlpack__()
        legacy = read_dlpack_capsule(np.arange(2, dtype=np.int16).__dlpack__())
        assert not legacy.versioned and legacy.dtype == "int16" and legacy.itemsize == 2
        return
    cap = base.__dlpack__(max_version=(1, 0))
    info = read_dlpack_capsule(cap)
    assert info.readonly and info.versioned and info.dtype == "float64" and info.shape == (3,)
    assert info.pointer == base.ctypes.data and info.device == (1, 0) and info.strides == (8,)
    legacy = read_dlpack_capsule(np.arange(2, dtype=np.int16).__dlpack__())
    assert not legacy.versioned and legacy.dtype == "int16" and legacy.itemsize == 2


def test_bare_capsule_converts_once_then_refuses() -> None:
    src = torch.arange(3.0)
    cap = torch.utils.dlpack.to_dlpack(src)
    assert af.framework_of(cap) == "dlpack"
    p = af.plan(cap, "numpy")
    assert p.zero_copy and "wrap_capsule" in [s.name for s in p.steps]
    n = af.convert(cap, "numpy")
    assert _ptr(n) == src.data_ptr() and n.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(af.UnsupportedArrayError) as ei:
        af.convert(cap, "numpy")
    assert_error_layout(ei.value, "consumed already", "fresh capsule")
    # a legacy capsule cannot say its memory is writable: torch gets a copy; a versioned one is aliased
    t = torch.arange(2.0)
    assert not af.plan(torch.utils.dlpack.to_dlpack(t), "torch").zero_copy
    cap2 = t.__dlpack__(max_version=(1, 0))
    assert read_dlpack_capsule(cap2).versioned
    assert af.plan(cap2, "torch").zero_copy
    tt = af.convert(cap2, "torch")
    assert tt.data_ptr() == t.data_ptr()
    tt[0] = 4.0
    assert float(t[0]) == 4.0


def test_dlpack_object_returning_a_consumed_capsule() -> None:
    cap = np.arange(2.0).__dlpack__()
    np.from_dlpack(OnlyDLPackCapsule(cap))  # consumes it

    with pytest.raises(af.UnsupportedArrayError) as ei:
        af.convert(OnlyDLPackCapsule(cap), "torch")
    assert_error_layout(ei.value, "consumed already")


class OnlyDLPackCapsule:
    def __init__(self, cap: Any) -> None:
        self.cap = cap

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.cap

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


class FakeDevice(OnlyDLPack):
    """A real capsule whose device says another accelerator (Vulkan): described, refused."""

    def __dlpack_device__(self) -> tuple[int, int]:
        return (7, 0)

    def __dlpack__(self, **kwargs: Any) -> Any:
        from arrayferry._dlpack_abi import dl_tensor

        cap = self._a.__dlpack__(**kwargs)
        dl_tensor(cap).device.device_type = 7
        return cap


def test_dlpack_on_a_device_arrayferry_does_not_reach() -> None:
    x = FakeDevice(np.arange(2.0))
    with pytest.raises(af.DeviceError) as ei:
        af.convert(x, "numpy")
    assert_error_layout(ei.value, "vulkan")


# ------------------------------------------------------------------------------------------------
# NumPy and Python scalars, nested sequences


@pytest.mark.parametrize(
    ("x", "dtype"),
    [(True, "bool"), (3, "int64"), (-2**63, "int64"), (2.5, "float64"), (-0.0, "float64"), (1 + 2j, "complex128"),
     (np.float32(3.5), "float32"), (np.int8(-3), "int8"), (np.bool_(True), "bool"), (np.complex64(1j), "complex64"),
     (np.float16(-0.0), "float16")],
    ids=lambda v: repr(v),
)
@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_scalars_become_0d_arrays_of_their_type(x: Any, dtype: str, to: str) -> None:
    p = af.plan(x, to)
    assert p.source.dtype == dtype and p.source.shape == () and not p.zero_copy
    assert "read" in p.steps[0].name and "copy" in p.steps[0].description
    y = af.convert(x, to)
    ref = np.asarray(x, dtype=af.plugin.numpy_dtype(dtype))
    got = np.asarray(y) if to == "numpy" else y.numpy()
    assert got.shape == () and got.dtype == ref.dtype and got.tobytes() == ref.tobytes()
    assert isinstance(y, np.ndarray if to == "numpy" else torch.Tensor)


def test_lists_read_as_numpy_reads_them() -> None:
    assert af.convert([True, False], "torch").dtype == torch.bool
    assert af.convert([1, 2], "torch").dtype == torch.int64
    assert af.convert([1, 2.5], "torch").dtype == torch.float64
    assert af.convert([True, 2], "torch").tolist() == [1, 2]
    assert af.convert(((1, 2), (3, 4)), "numpy").shape == (2, 2)
    e = af.convert([], "numpy")
    assert e.shape == (0,) and e.dtype == np.float64  # NumPy's reading of an empty list
    t = af.convert([[1.0, -0.0], [math.inf, math.nan]], "torch")
    assert t.numpy().tobytes() == np.array([[1.0, -0.0], [math.inf, math.nan]]).tobytes()
    with pytest.raises(af.CopyRequiredError) as ei:
        af.convert([1.0], "numpy", copy=False)
    assert_error_layout(ei.value, "read", "python")


def test_a_list_is_read_afresh_each_time() -> None:
    xs = [1.0, 2.0]
    a = af.convert(xs, "torch")
    xs[0] = 5.0
    b = af.convert(xs, "torch")
    assert a.tolist() == [1.0, 2.0] and b.tolist() == [5.0, 2.0]


def test_a_list_changed_after_planning_is_read_as_it_is_now() -> None:
    """The array a signature read is reused by the conversion that follows it, never by a later one."""
    xs = [1.0, 2.0]
    p = af.plan(xs, "numpy")
    xs[0] = 7.0
    assert p.execute(xs).tolist() == [7.0, 2.0]
    xs[1] = 8.0
    assert af.convert(xs, "numpy").tolist() == [7.0, 8.0]
    af.plan(xs, "torch")
    xs.append(9.0)
    a = af.convert(xs, "numpy")
    b = af.convert(xs, "numpy")
    assert a.tolist() == [7.0, 8.0, 9.0] and b.tolist() == [7.0, 8.0, 9.0]
    assert _ptr(a) != _ptr(b)  # each conversion its own array
    a[0] = 0.0
    assert b[0] == 7.0


def test_ragged_lists_are_refused_with_a_hint() -> None:
    x = [[1, 2], [3]]
    with pytest.raises(af.UnsupportedArrayError) as ei:
        af.convert(x, "torch")
    assert_error_layout(ei.value, "ragged", "different lengths", "convert each row")
    rows = [af.convert(row, "torch") for row in x]  # the hint, followed
    assert [r.tolist() for r in rows] == [[1, 2], [3]]


@pytest.mark.parametrize("x", [[1, "a"], ["1.5", 2.0], [1, None], [[1], [object()]], [1, b"x"]],
                         ids=["str", "numeric-str", "None", "object", "bytes"])
def test_mixed_non_numeric_items_are_refused(x: Any) -> None:
    with pytest.raises((af.UnsupportedDTypeError, af.UnsupportedArrayError)) as ei:
        af.convert(x, "torch")
    assert_error_layout(ei.value, "cannot read")
    with pytest.raises(af.ArrayFerryError):
        af.plan(x, "numpy")


def test_hint_for_non_numbers_works() -> None:
    x = [1, None, "2.5"]
    fixed = [float("nan") if v is None else float(v) for v in x]  # what the hint says to do
    assert np.isnan(af.convert(fixed, "numpy")[1])


@pytest.mark.parametrize("x", [2**63, -(2**63) - 1, [1, 2**63], [2**64], [1.5, 2**70], [[0], [2**63]],
                               [math.nan, 2**63], [[math.nan], [2**63]], [math.inf, 2**63]],
                         ids=["2**63", "-2**63-1", "mixed", "2**64", "float-and-huge", "nested", "nan-hides-max",
                              "nan-nested", "inf"])
def test_ints_outside_int64_raise_instead_of_wrapping(x: Any) -> None:
    with pytest.raises(af.LossyConversionError) as ei:
        af.convert(x, "torch")
    assert_error_layout(ei.value, "does not fit int64")
    with pytest.raises(af.LossyConversionError):
        af.plan(x, "numpy")


def test_hint_for_unsigned_ints_works() -> None:
    x = [1, 2**63]
    t = af.convert(np.asarray(x, dtype=np.uint64), "numpy")  # the hint's command
    assert t.dtype == np.uint64 and int(t[1]) == 2**63


def test_python_floats_that_are_large_are_fine() -> None:
    t = af.convert([1e300, -1e19, 2.0**64], "torch")
    assert t.dtype == torch.float64 and t.tolist() == [1e300, -1e19, 2.0**64]


# ------------------------------------------------------------------------------------------------
# hypothesis: nested lists of numbers, every target


hyp = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TARGETS = ["numpy", "torch", "jax", "dask", "array_api_strict", "pyarrow"]


def _available(to: str) -> bool:
    try:
        af.plugin.adapter_named(to).namespace()
    except Exception:
        return False
    return True


_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def nested(draw: Any) -> tuple[Any, np.ndarray]:
    shape = draw(st.lists(st.integers(0, 3), min_size=0, max_size=3))
    if 0 in shape:  # [] has no inner axes: NumPy reads any empty nesting as far as its first 0
        shape = shape[: shape.index(0) + 1]
    kind = draw(st.sampled_from(["f", "i", "b", "c"])) if 0 not in shape else "f"  # [] reads as float64
    elem = {"f": _floats, "i": _ints, "b": st.booleans(),
            "c": st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=1e6)}[kind]
    n = int(np.prod(shape)) if shape else 1
    flat = draw(st.lists(elem, min_size=n, max_size=n))
    ref = np.array(flat, dtype={"f": np.float64, "i": np.int64, "b": np.bool_, "c": np.complex128}[kind]).reshape(shape)
    value: Any = ref.tolist() if shape else flat[0]
    if draw(st.booleans()) and shape:
        value = _tuplify(value)
    return value, ref


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(i) for i in v) if isinstance(v, list) else v


def _to_numpy(y: Any, to: str) -> np.ndarray:
    if to == "pyarrow":
        return np.asarray(af.convert(y, "numpy"))
    if to == "dask":
        return np.asarray(y.compute())
    return np.asarray(af.convert(y, "numpy")) if to not in ("numpy",) else np.asarray(y)


@pytest.mark.parametrize("to", _TARGETS)
@pytest.mark.filterwarnings("ignore::arrayferry.LossyConversionWarning")
@settings(max_examples=40, deadline=None)
@given(case=nested())
def test_nested_lists_bit_for_bit(to: str, case: tuple[Any, np.ndarray]) -> None:
    if not _available(to):
        pytest.skip(f"{to} is not available")
    value, ref = case
    try:
        p = af.plan(value, to)
        y = af.convert(value, to)
    except af.UnsupportedDTypeError:
        assert to == "pyarrow" and ref.dtype.kind == "c"  # Arrow has no complex type
        return
    except af.LossyConversionError:
        assert to == "jax" and ref.dtype.itemsize >= 8  # no x64: 64-bit ints refused, floats out of float32's range
        return
    except af.UnsupportedArrayError:
        assert to == "pyarrow" and ref.ndim == 0 and ref.dtype == np.bool_  # no 0-d boolean container
        return
    assert p.source.dtype == af.plugin.numpy_dtype_name(ref.dtype) and p.source.shape == ref.shape
    assert not p.zero_copy
    got = _to_numpy(y, to)
    if p.dtype != p.source.dtype:  # a target that narrows (warned): compare with NumPy's cast
        ref = ref.astype(got.dtype)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert got.tobytes() == ref.tobytes()


# ------------------------------------------------------------------------------------------------
# cache and cost


def test_detection_is_cached_per_type_and_cleared_with_plugins() -> None:
    from arrayferry._registry import registry

    class Fresh(OnlyArray):
        pass

    reg = registry()
    assert Fresh not in reg.protocol_cache
    af.convert(Fresh(np.zeros(2)), "numpy")
    assert reg.protocol_cache[Fresh].name == "array"
    reg._collect()
    assert Fresh not in reg.protocol_cache


def test_protocol_module_imports_no_framework() -> None:
    from helpers import run_python

    code = (
        "import sys, arrayferry as af\n"
        "assert af.framework_of([1, 2]) == 'python' and af.framework_of(b'x') == 'buffer'\n"
        "assert af.framework_of(3.5) == 'python'\n"
        "bad = [m for m in ('numpy', 'torch', 'jax', 'pandas', 'xarray', 'array') if m in sys.modules]\n"
        "print(bad)\n"
    )
    r = run_python(code, env={"ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert r.returncode == 0, r.stderr
    # pluggy < 1.5 imports importlib.metadata, whose email.utils imports socket and so the stdlib
    # array module: that one import is pluggy's (checked in a bare interpreter), none is arrayferry's
    pluggy = run_python("import sys, pluggy\nprint('array' in sys.modules)\n")
    assert pluggy.returncode == 0, pluggy.stderr
    assert r.stdout.strip() == ("['array']" if pluggy.stdout.strip() == "True" else "[]")


def test_python_3_12_buffer_types() -> None:
    if sys.version_info < (3, 12):
        pytest.skip("__buffer__ is Python >= 3.12")

    class Buf:
        def __init__(self) -> None:
            self.b = bytearray(b"\x01\x02")

        def __buffer__(self, flags: int) -> memoryview:
            return memoryview(self.b)

    x = Buf()
    assert af.framework_of(x) == "buffer"
    assert af.convert(x, "numpy").tolist() == [1, 2]


# ------------------------------------------------------------------------------------------------
# devices: described and planned here (NO_GPU.md: relabelled capsules, interfaces never read);
# the conversions themselves are `cuda` tests


class OnlyCAI:
    """Only ``__cuda_array_interface__`` (v3). Over a torch CUDA tensor in the `cuda` tests; here
    over a host array's address, which is described and planned, never read."""

    def __init__(self, interface: dict[str, Any], owner: Any) -> None:
        self._iface = interface
        self._owner = owner

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return self._iface


def _cai_of_host(a: np.ndarray, readonly: bool = False, typestr: str | None = None) -> OnlyCAI:
    ai = a.__array_interface__
    return OnlyCAI({"shape": a.shape, "typestr": typestr or ai["typestr"], "data": (ai["data"][0], readonly),
                    "strides": ai["strides"], "version": 3, "stream": None}, a)


def test_cuda_array_interface_is_described_and_planned() -> None:
    base = np.zeros((3, 4), dtype=np.float32)[:, ::2]
    x = _cai_of_host(base, readonly=True)
    assert af.framework_of(x) == "cuda_array_interface"
    info = af.plan(x, "numpy").source
    assert info.device.type == "cuda" and info.dtype == "float32" and info.shape == (3, 2)
    assert info.layout == "strided" and info.readonly
    p = af.plan(x, "numpy")
    assert p.route == "host" and [s.name for s in p.steps][0] == "to_host" and p.steps[0].transfer
    with pytest.raises(af.UnsupportedDTypeError) as ei:
        af.plan(_cai_of_host(base, typestr="<V4"), "numpy")
    assert_error_layout(ei.value, "typestr", "<V4")
    with pytest.raises(af.UnknownFrameworkError):
        af.convert(base, "cuda_array_interface")


def test_dlpack_object_on_a_cuda_device_is_described_and_planned() -> None:
    from cuda_support import ClaimsDevice

    x = ClaimsDevice(np.arange(6.0).reshape(2, 3), (2, 1))
    assert af.framework_of(x) == "dlpack"
    assert af.device_of(x) == af.Device("cuda", 1)
    p = af.plan(x, "numpy")
    assert p.source.device == af.Device("cuda", 1) and p.source.shape == (2, 3)
    assert p.steps[0].name == "to_host" and p.steps[0].transfer and not p.zero_copy


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")


@pytest.mark.cuda
@needs_cuda
def test_cuda_dlpack_object_to_torch_is_zero_copy_and_to_numpy_a_transfer() -> None:
    src = torch.arange(6.0, device="cuda").reshape(2, 3)
    x = OnlyDLPack(src)
    p = af.plan(x, "torch")
    assert p.route == "dlpack" and p.zero_copy and p.device == af.Device("cuda", 0)
    t = af.convert(x, "torch")
    assert t.data_ptr() == src.data_ptr() and t.is_cuda
    n = af.convert(x, "numpy")
    assert n.tolist() == src.cpu().tolist()


@pytest.mark.cuda
@needs_cuda
def test_cuda_array_interface_object_to_torch_is_zero_copy() -> None:
    src = torch.arange(4.0, device="cuda")
    x = OnlyCAI(src.__cuda_array_interface__, src)
    p = af.plan(x, "torch")
    assert p.route == "cai" and p.zero_copy
    t = af.convert(x, "torch")
    assert t.data_ptr() == src.data_ptr()
    t[0] = -1.0
    assert float(src[0]) == -1.0
    assert af.convert(x, "numpy").tolist() == [-1.0, 1.0, 2.0, 3.0]


_huge = st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1))


@settings(max_examples=100, deadline=None)
@given(before=st.lists(st.one_of(_ints, _floats, st.booleans()), max_size=4), big=_huge,
       after=st.lists(_ints, max_size=4), nest=st.booleans())
def test_any_int_outside_int64_raises_never_wraps(before: list[Any], big: int, after: list[Any], nest: bool) -> None:
    """Wherever an int outside int64 sits (alone, among ints, floats or bools, nested), the read
    raises LossyConversionError: NumPy would wrap it (uint64), round it (float64) or make an object
    array."""
    items = [*before, big, *after]
    value: Any = [[v] for v in items] if nest else items
    with pytest.raises(af.LossyConversionError) as ei:
        af.convert(value, "numpy")
    assert "does not fit int64" in str(ei.value)


def test_cai_v3_stream_field_names_the_producer_stream() -> None:
    """CAI v3: ``stream`` is the stream the producer ordered its work on (``None``: nothing to wait
    for); an interface without the field (v2) from an object no framework owns names none."""
    from arrayferry._cuda import producer_stream

    x = _cai_of_host(np.zeros(3, np.float32))
    assert producer_stream(x, {**x.__cuda_array_interface__, "stream": 7}) == 7
    assert producer_stream(x, x.__cuda_array_interface__) is None  # "stream": None
    v2 = {k: v for k, v in x.__cuda_array_interface__.items() if k != "stream"}
    assert producer_stream(x, {**v2, "version": 2}) is None


@pytest.mark.cuda
@needs_cuda
def test_cai_v3_object_with_a_busy_producer_stream_is_waited_for() -> None:
    """A protocol object whose v3 interface names a producer stream still running: the torch
    result (zero-copy) is read on torch's current stream only after the producer's work."""
    busy = getattr(torch.cuda, "_sleep", None)
    if busy is None:
        pytest.skip("torch.cuda._sleep (a GPU busy-wait used to delay the producer) is not available")
    n = 1 << 22
    src = torch.zeros(n, device="cuda")
    torch.cuda.synchronize()
    producer = torch.cuda.Stream()
    with torch.cuda.stream(producer):
        busy(200_000_000)  # about 0.1 s: long enough for a missing wait to read zeros
        src.fill_(4.0)
    x = OnlyCAI({**src.__cuda_array_interface__, "version": 3, "stream": int(producer.cuda_stream)}, src)
    p = af.plan(x, "torch")
    assert p.route == "cai" and p.zero_copy
    t = af.convert(x, "torch")
    assert t.data_ptr() == src.data_ptr()
    assert float(t.sum()) == 4.0 * n  # the current stream waited for the fill
