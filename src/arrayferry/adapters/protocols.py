"""Sources no plugin owns: objects that speak an array protocol, NumPy and Python scalars, lists.

The registry tries these adapters only for a type that no registered adapter owns (registered
types never reach them), in this order, and remembers the answer per type:

==========================  ======================  ===========================================
``framework_of``            objects                 how the data is read
==========================  ======================  ===========================================
``"numpy"``                 NumPy scalars           ``numpy.asarray``: a 0-d copy
``"pandas"``                ``Series``/``DataFrame`` ``__array__(copy=False)`` after checks
``"xarray"``                ``DataArray``           its data (``__array__``); labels dropped
``"dlpack"``                ``__dlpack__`` +        ``numpy.from_dlpack``, or the target's own
                            ``__dlpack_device__``,  ``from_dlpack`` (zero-copy, any device)
                            bare DLPack capsules
``"cuda_array_interface"``  ``__cuda_array_interface__``  the target's ``from_cai`` (CUDA only)
``"array_interface"``       ``__array_interface__`` a NumPy view of the described memory
``"array"``                 ``__array__``           ``__array__(copy=False)`` (zero-copy) or a copy
``"buffer"``                ``memoryview``, ``bytes``,  a NumPy view of the buffer (bytes as uint8)
                            ``bytearray``, ``array.array``
``"python"``                ``bool``/``int``/``float``/``complex``, nested ``list``/``tuple``
                                                    ``numpy.asarray``: a copy
==========================  ======================  ===========================================

These are sources only: ``convert(x, "buffer")`` raises :class:`UnknownFrameworkError`.
Every one is described through the NumPy adapter (``adapter_named("numpy")``), so read-only memory,
byte order, strides and alignment follow NumPy's rules; what only a copy can read (a list, a
scalar, an ``__array__`` that cannot share) is a ``prepare`` step the plan names.

Creating these adapters and asking ``owns`` imports nothing (pandas and xarray types are
recognised only once their modules are imported).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable
from typing import Any

from arrayferry.plugin import (
    CPU,
    Adapter,
    ArrayFerryError,
    ArrayInfo,
    Device,
    DeviceError,
    LossyConversionError,
    Step,
    UnsupportedArrayError,
    UnsupportedDTypeError,
    adapter_named,
    adapters,
    format_message,
    read_dlpack_capsule,
)

__all__ = ["PROTOCOL_ADAPTERS", "PROTOCOL_NAMES", "protocol_adapter_for_type"]

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


def _np() -> Any:
    import numpy

    return numpy


_NUMPY: list[Adapter] = []


def _numpy() -> Adapter:
    """The NumPy adapter, which describes the NumPy views every protocol source is read through
    (looked up once: the built-in NumPy adapter is stateless, and a lookup costs a microsecond)."""
    if not _NUMPY:
        _NUMPY.append(adapter_named("numpy"))
    return _NUMPY[0]


def _qualname(x: Any) -> str:
    tp = type(x)
    mod = tp.__module__
    return tp.__qualname__ if mod == "builtins" else f"{mod}.{tp.__qualname__}"


def _problem_info(name: str, cls: type[Exception], msg: str) -> ArrayInfo:
    """An ``ArrayInfo`` that only carries a problem: the planner raises it before anything else."""
    return ArrayInfo(framework=name, dtype="unknown", shape=(), problem=(cls, msg))


class ProtocolAdapter(Adapter):
    """Base of the source-only adapters: each reads an object as a NumPy array on the host.

    A subclass defines ``owns`` and ``view`` (a NumPy array of ``x`` without copying, or raise);
    one that must copy to read (lists, scalars) sets ``reads_by_copy`` and says why.
    """

    module = "numpy"  # reading any of these objects needs NumPy; nothing is imported to detect them
    distribution = "numpy"
    install_hint = "numpy"
    host_export = True
    #: What the object offers, for messages (``"__array_interface__"`` ...).
    protocol = ""
    #: Why reading it needs a copy (``None``: ``view`` never copies).
    reads_by_copy: str | None = None
    #: What reading drops (labels ...), said in the plan's read step.
    drops: str = ""

    # -- reading ---------------------------------------------------------------------------
    def view(self, x: Any) -> Any:
        """A NumPy array of ``x``'s data: a view unless ``reads_by_copy``."""
        raise NotImplementedError

    def _read(self, x: Any) -> Any:
        np = _np()
        if type(x) is np.ndarray:  # made by one of this adapter's own steps
            return x
        return self.view(x)

    def raised(self, x: Any, exc: Exception) -> tuple[type[Exception], str]:
        """The problem for an object whose protocol call raised ``exc``."""
        return (UnsupportedArrayError, format_message(
            f"Cannot read {_qualname(x)} through its {self.protocol or self.name}: the call raised "
            f"{type(exc).__name__}: {exc}",
            hint="check that the object is a valid array (numpy.asarray(x) shows the same error), or convert it "
            "with its own library first"))

    def _try_read(self, x: Any) -> Any:
        """The NumPy view, or an ``ArrayInfo`` carrying the problem."""
        try:
            return self._read(x)
        except ArrayFerryError as exc:
            return _problem_info(self.name, type(exc), str(exc))
        except Exception as exc:
            cls, msg = self.raised(x, exc)
            return _problem_info(self.name, cls, msg)

    # -- description -----------------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        return False

    def describe(self, x: Any) -> ArrayInfo:
        v = self._try_read(x)
        if isinstance(v, ArrayInfo):
            return v
        return self.info_of(x, v)

    def info_of(self, x: Any, v: Any) -> ArrayInfo:
        info = _numpy().describe(v).with_(framework=self.name)
        if self.reads_by_copy is not None and type(x) is not _np().ndarray:
            info = info.with_(flags=info.flags | {"read_by_copy"})
        return info

    def signature(self, x: Any) -> Hashable:
        v = self._try_read(x)
        if isinstance(v, ArrayInfo):
            return (type(x), "problem", v.problem[0] if v.problem else None)
        return (type(x), _numpy().signature(v), self.reads_by_copy is not None and type(x) is not _np().ndarray)

    def device_of(self, x: Any) -> Device:
        return CPU

    def data_pointer(self, x: Any) -> int | None:
        if self.reads_by_copy is not None:
            return None  # every read makes new memory: nothing to share
        return _numpy().data_pointer(self._read(x))

    def byte_strides(self, x: Any) -> tuple[int, ...] | None:
        """Strides in bytes of the memory ``x`` exposes (``arrayferry.shares_memory`` reads them)."""
        if self.reads_by_copy is not None:
            return None
        return tuple(int(s) for s in self._read(x).strides)

    # -- export ----------------------------------------------------------------------------
    def prepare(self, info: ArrayInfo) -> list[Step]:
        if "read_by_copy" not in info.flags:
            return []
        return [Step("read", f"read the {self.protocol} into a new NumPy array ({self.reads_by_copy})",
                     self.read_step, copies=True)]

    def read_step(self, x: Any) -> Any:
        """The ``read`` step's function (a subclass may reuse what ``signature`` just read)."""
        return self._read(x)

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy", flags=info.flags - {"read_by_copy"})

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        return self._read

    def export_host(self, x: Any) -> Any:
        return self._read(x)

    # -- operations a route may ask of a source (on the NumPy array read from it) -----------
    def copy(self, x: Any) -> Any:
        return _np().array(self._read(x), copy=True)

    def cast(self, x: Any, dtype: str) -> Any:
        return _numpy().cast(self._read(x), dtype)

    def checked_cast(self, x: Any, src: str, dst: str, mode: str | None) -> Any:
        return _numpy().checked_cast(self._read(x), src, dst, mode)

    def to_host(self, x: Any) -> Any:
        return self.copy(x)


# ------------------------------------------------------------------------------------------------
# scalars and nested sequences


def _leaves(x: Any) -> Any:
    """Every non-sequence item of nested lists/tuples, depth first."""
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        else:
            yield v


def _huge_int(x: Any) -> int | None:
    """The first Python int in ``x`` (a scalar or nested sequence) outside int64, or ``None``."""
    for v in _leaves(x):
        if isinstance(v, int) and not isinstance(v, bool) and not _INT64_MIN <= v <= _INT64_MAX:
            return v
    return None


def _what(x: Any) -> str:
    return f"a Python {type(x).__name__}" if not isinstance(x, (list, tuple)) else f"a nested {type(x).__name__}"


def read_python(x: Any) -> Any:
    """``numpy.asarray(x)`` for Python scalars and nested lists/tuples, refusing what NumPy would
    read as object or string arrays, and ints outside int64 (NumPy would pick uint64, float64 or
    object for them). Raises arrayferry's typed errors."""
    np = _np()
    try:
        a = np.asarray(x)
    except ValueError as exc:
        if "inhomogeneous" in str(exc) or "sequence" in str(exc):
            raise UnsupportedArrayError(format_message(
                f"Cannot read {_what(x)} as one array: its rows have different lengths (a ragged list).",
                [f"numpy.asarray raised ValueError: {exc}"],
                hint="pad the rows to one length first, or convert each row on its own "
                "([arrayferry.convert(row, to) for row in x])")) from exc
        raise UnsupportedArrayError(format_message(
            f"Cannot read {_what(x)} as an array.", [f"numpy.asarray raised ValueError: {exc}"],
            hint="build the array yourself with numpy.asarray(x, dtype=...) and convert that")) from exc
    except OverflowError as exc:
        raise LossyConversionError(format_message(
            f"Cannot read {_what(x)} as an array: a value does not fit any NumPy integer type.",
            [f"numpy.asarray raised OverflowError: {exc}"],
            hint="Python ints are read as int64: pass values within [-2**63, 2**63 - 1], or floats")) from exc
    except Exception as exc:
        raise UnsupportedArrayError(format_message(
            f"Cannot read {_what(x)} as an array.", [f"numpy.asarray raised {type(exc).__name__}: {exc}"],
            hint="convert the items to numbers or host arrays first")) from exc
    kind = a.dtype.kind
    # NumPy reads an int outside int64 as uint64, object (below -2**63, or beyond 2**64), or float64
    # (>= 2**63 among other ints): look for one only then
    # (np.fmax skips NaN, which would hide the int in max())
    if kind == "u" or kind == "O" or (kind == "f" and a.size and np.fmax.reduce(a, axis=None) >= 2.0**63):
        big = _huge_int(x)
        if big is not None:
            raise LossyConversionError(format_message(
                f"Cannot read {_what(x)} as an array: the int {big} does not fit int64, the type arrayferry reads "
                f"Python ints as (NumPy would read it as {a.dtype}, changing the type{' or wrapping' if kind == 'u' else ''}).",
                hint="pass values within [-2**63, 2**63 - 1]; for unsigned 64-bit data build the array yourself: "
                "numpy.asarray(x, dtype=numpy.uint64)"))
    if kind == "O":
        odd = next((v for v in _leaves(x) if not isinstance(v, (bool, int, float, complex)) and not hasattr(v, "dtype")), None)
        what = f"{type(odd).__name__} {odd!r:.40}" if odd is not None else "items NumPy cannot combine"
        raise UnsupportedDTypeError(format_message(
            f"Cannot read {_what(x)} as a numeric array: it holds {what}, so NumPy would make an object array.",
            hint="replace the non-numbers first (None by float('nan'), strings by float(s)), or build the array "
            "yourself with numpy.asarray(x, dtype=...)"))
    if kind not in "biufc":
        raise UnsupportedDTypeError(format_message(
            f"Cannot read {_what(x)} as a numeric array: NumPy reads its items as {a.dtype} "
            "(strings or other non-numbers among them).",
            hint="convert the items to numbers first (float(s) for numeric strings), or build the array yourself "
            "with numpy.asarray(x, dtype=...)"))
    return a


class PythonAdapter(ProtocolAdapter):
    """``bool``, ``int``, ``float``, ``complex`` and nested ``list``/``tuple`` of them, read as NumPy
    reads them: bool -> bool, int -> int64, float -> float64, complex -> complex128, mixed items
    promoted by NumPy's rules (``[1, 2.5]`` -> float64, ``[True, 2]`` -> int64)."""

    name = "python"
    protocol = "Python scalar or nested sequence"
    reads_by_copy = "a copy: Python objects are not array memory"

    def owns(self, tp: type) -> bool:
        return tp in (bool, int, float, complex, list, tuple)

    def view(self, x: Any) -> Any:
        return read_python(x)

    # ``convert`` computes the signature right before it runs the plan: the array the signature
    # read is kept (per thread) and taken by the plan's ``read`` step, so a list is read once per
    # conversion, not twice. The signature always reads afresh (a list may have changed since the
    # last call), and only the ``read`` step, run right after it, takes the kept array.
    def signature(self, x: Any) -> Hashable:
        try:
            a = read_python(x)
        except ArrayFerryError as exc:
            _kept.slot = None
            return (type(x), "problem", type(exc))
        _kept.slot = (x, a)
        return (type(x), _numpy().signature(a), True)

    def read_step(self, x: Any) -> Any:
        slot = getattr(_kept, "slot", None)
        _kept.slot = None
        if slot is not None and slot[0] is x:
            return slot[1]
        return read_python(x)


_kept = threading.local()


class NumpyScalarAdapter(ProtocolAdapter):
    """NumPy scalars (``numpy.float32(3.5)``, ``numpy.bool_(True)`` ...): a 0-d array of their type."""

    name = "numpy"
    protocol = "NumPy scalar"
    reads_by_copy = "a copy: a NumPy scalar is an immutable value, not array memory"

    def owns(self, tp: type) -> bool:
        np = sys.modules.get("numpy")
        return np is not None and issubclass(tp, np.generic)

    def view(self, x: Any) -> Any:
        return _np().asarray(x)


# ------------------------------------------------------------------------------------------------
# memory protocols


class _Interface:
    """Holds an ``__array_interface__`` dict (and its owner, alive): NumPy then reads exactly it."""

    __slots__ = ("__array_interface__", "owner")

    def __init__(self, interface: Any, owner: Any) -> None:
        self.__array_interface__ = interface
        self.owner = owner


class ArrayInterfaceAdapter(ProtocolAdapter):
    """Objects with ``__array_interface__`` (v3): a NumPy view of the memory it describes, read-only
    when its ``data`` says so."""

    name = "array_interface"
    protocol = "__array_interface__"

    def owns(self, tp: type) -> bool:
        return hasattr(tp, "__array_interface__")

    def view(self, x: Any) -> Any:
        iface = x.__array_interface__
        if not isinstance(iface, dict):
            raise TypeError(f"__array_interface__ is a {type(iface).__name__}, not a dict")
        return _np().asarray(_Interface(iface, x))


class BufferAdapter(ProtocolAdapter):
    """The buffer protocol: ``memoryview``, ``bytes`` and ``bytearray`` (as uint8), ``array.array``,
    and on Python >= 3.12 any type with ``__buffer__``. A NumPy view of the buffer: read-only when the
    buffer is (bytes, read-only memoryviews), its format's byte order and strides kept."""

    name = "buffer"
    protocol = "buffer protocol"

    def owns(self, tp: type) -> bool:
        if issubclass(tp, (memoryview, bytes, bytearray)) or hasattr(tp, "__buffer__"):
            return True
        array = sys.modules.get("array")
        return array is not None and issubclass(tp, array.array)

    def view(self, x: Any) -> Any:
        return _np().asarray(x if isinstance(x, memoryview) else memoryview(x))


def _accepts_copy(tp: type) -> bool:
    """Whether ``tp.__array__`` takes ``copy=`` (NumPy 2's protocol), read from its signature."""
    import inspect

    try:
        method: Any = tp.__array__  # type: ignore[attr-defined]
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return True  # a C method: assume NumPy 2's protocol, and fall back if it refuses
    return "copy" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class ArrayMethodAdapter(ProtocolAdapter):
    """Objects with ``__array__``. ``__array__(copy=False)`` shares the object's memory or raises
    (NumPy 2's protocol): when it shares, the plan is zero-copy; when it raises, ``__array__()``
    builds a new array, a copy the plan names. An old ``__array__`` without ``copy=`` may or may not
    share: its result is copied, so that the plan never claims independence it cannot promise."""

    name = "array"
    protocol = "__array__"

    def owns(self, tp: type) -> bool:
        return hasattr(tp, "__array__")

    def mode(self, x: Any) -> tuple[str, Any]:
        """``("view", a)`` when ``__array__(copy=False)`` shares, ``("copy", a)`` when the object must
        build a new array, ``("legacy", a)`` for an ``__array__`` without ``copy=``."""
        np = _np()
        if type(x) is np.ndarray:
            return ("view", x)
        if _accepts_copy(type(x)):
            try:
                return ("view", self._checked(x, x.__array__(copy=False)))
            except ValueError:
                return ("copy", self._checked(x, x.__array__()))
        return ("legacy", self._checked(x, x.__array__()))

    def _checked(self, x: Any, a: Any) -> Any:
        if not isinstance(a, _np().ndarray):
            raise TypeError(f"__array__ returned {type(a).__qualname__}, not a numpy.ndarray")
        return a

    def view(self, x: Any) -> Any:
        return self.mode(x)[1]

    def _try_mode(self, x: Any) -> tuple[str, Any]:
        try:
            return self.mode(x)
        except ArrayFerryError as exc:
            return ("problem", _problem_info(self.name, type(exc), str(exc)))
        except Exception as exc:
            cls, msg = self.raised(x, exc)
            return ("problem", _problem_info(self.name, cls, msg))

    def describe(self, x: Any) -> ArrayInfo:
        mode, v = self._try_mode(x)
        if mode == "problem":
            assert isinstance(v, ArrayInfo)
            return v
        info = _numpy().describe(v).with_(framework=self.name)
        if mode != "view":
            info = info.with_(flags=info.flags | {f"array_{mode}"})
        return info

    def signature(self, x: Any) -> Hashable:
        mode, v = self._try_mode(x)
        if mode == "problem":
            return (type(x), "problem", v.problem[0] if v.problem else None)
        return (type(x), mode, _numpy().signature(v), *self.extra_signature(x))

    def extra_signature(self, x: Any) -> tuple[Any, ...]:
        return ()

    def data_pointer(self, x: Any) -> int | None:
        mode, v = self._try_mode(x)
        return _numpy().data_pointer(v) if mode == "view" else None

    def byte_strides(self, x: Any) -> tuple[int, ...] | None:
        mode, v = self._try_mode(x)
        return tuple(int(s) for s in v.strides) if mode == "view" else None

    def _fresh(self, x: Any) -> Any:
        """A new C-contiguous, writable array of ``x``'s data that nothing else holds."""
        mode, a = self.mode(x)
        f = a.flags
        if mode == "copy" and f.owndata and f.writeable and f.c_contiguous and f.aligned:
            return a
        # an old __array__, or one that refused copy=False and still returned a view (pandas'
        # Arrow-backed columns hand out read-only views of Arrow memory): copy it
        return _np().array(a, copy=True, order="C")

    def prepare(self, info: ArrayInfo) -> list[Step]:
        if self.drops and not {"array_copy", "array_legacy"} & info.flags:
            return [Step("read", f"{self.protocol}(copy=False) shares the object's memory (no copy){self.drops}",
                         self.view)]
        if "array_copy" in info.flags:
            return [Step("read", f"{self.protocol}() builds a new array (a copy: __array__(copy=False) "
                         f"said it cannot share the object's memory){self.drops}", self._fresh, copies=True)]
        if "array_legacy" in info.flags:
            return [Step("read", f"{self.protocol}() and a copy of its result (this __array__ takes no copy=, "
                         f"so whether it shares the object's memory is unknown){self.drops}", self._fresh, copies=True)]
        return []

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy", flags=info.flags - {"array_copy", "array_legacy"})

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        return self.view



# ------------------------------------------------------------------------------------------------
# dataframes and labelled arrays


def _pandas_hint(fill: str) -> str:
    return (f"choose what a missing value becomes: x.to_numpy(dtype='float64', na_value=float('nan')), "
            f"or x.fillna({fill}) first")


class PandasAdapter(ArrayMethodAdapter):
    """A numeric pandas ``Series`` or ``DataFrame`` (one dtype for all columns): its values, the index
    and column labels dropped. Missing values of nullable dtypes (``Int64``, ``Float64``,
    ``boolean``, ``int64[pyarrow]`` ...) are refused, as are datetime, categorical, string and
    object columns, and frames whose columns differ in dtype (NumPy's promotion would change them)."""

    name = "pandas"
    protocol = "pandas __array__"
    drops = "; the index and column labels are dropped"

    def owns(self, tp: type) -> bool:
        pd = sys.modules.get("pandas")
        return pd is not None and issubclass(tp, (pd.Series, pd.DataFrame))

    def _dtypes(self, x: Any) -> list[Any]:
        pd = sys.modules["pandas"]
        if isinstance(x, pd.DataFrame):
            return list(dict.fromkeys(x.dtypes.tolist()))
        return [x.dtype]

    def extra_signature(self, x: Any) -> tuple[Any, ...]:
        return (tuple(str(d) for d in self._dtypes(x)),)

    def mode(self, x: Any) -> tuple[str, Any]:
        if type(x) is not _np().ndarray:
            self._check(x)
        return super().mode(x)

    def _check(self, x: Any) -> None:
        np = _np()
        pd = sys.modules["pandas"]
        kind = "DataFrame" if isinstance(x, pd.DataFrame) else "Series"
        dts = self._dtypes(x)
        if len(dts) > 1:
            raise UnsupportedDTypeError(format_message(
                f"Cannot convert a pandas DataFrame with columns of several dtypes ({', '.join(map(str, dts))}): "
                "reading it as one array would promote them to a common type (DataFrame.to_numpy does so silently).",
                hint="choose the type: x.to_numpy(dtype='float64'), or convert the columns one by one (x['a'])"))
        for dt in dts:
            if isinstance(dt, pd.CategoricalDtype):
                raise UnsupportedDTypeError(format_message(
                    f"Cannot convert a categorical pandas {kind}: its values are labels, and __array__ "
                    "would silently give the categories' values (or objects).",
                    hint="choose what to convert: x.cat.codes (the integer codes) or x.astype('float64') (the values)"))
            if isinstance(dt, np.dtype):
                if dt.kind not in "biufc":
                    raise UnsupportedDTypeError(format_message(
                        f"Cannot convert a pandas {kind} of dtype {dt}: only boolean, integer, floating and complex "
                        "columns have an array counterpart.",
                        hint="convert it to numbers first, e.g. x.astype('float64') (for datetimes: "
                        "x.astype('int64'), the count of their unit since 1970)"))
                continue
            numpy_dtype = getattr(dt, "numpy_dtype", None)
            if not isinstance(numpy_dtype, np.dtype) or numpy_dtype.kind not in "biufc":
                raise UnsupportedDTypeError(format_message(
                    f"Cannot convert a pandas {kind} of dtype {dt}: only boolean, integer, floating and complex "
                    "columns have an array counterpart.",
                    hint="convert it to numbers first, e.g. x.astype('float64')"))
            missing = int(x.isna().to_numpy().sum())
            if missing:
                raise UnsupportedArrayError(format_message(
                    f"Cannot convert a pandas {kind} of nullable dtype {dt} with {missing} missing value(s): other "
                    "frameworks have no missing value, and __array__ would silently turn them into NaN "
                    "(and integers into floats).",
                    hint=_pandas_hint("False" if numpy_dtype.kind == "b" else "0")))


class XarrayAdapter(ArrayMethodAdapter):
    """An xarray ``DataArray``: its data, through ``__array__`` (dims, coordinates and attributes are
    dropped, and the plan says so)."""

    name = "xarray"
    protocol = "DataArray.__array__"
    drops = "; its dims, coordinates and attributes are dropped"

    def owns(self, tp: type) -> bool:
        xr = sys.modules.get("xarray")
        return xr is not None and issubclass(tp, xr.DataArray)


# ------------------------------------------------------------------------------------------------
# DLPack and the CUDA array interface


class _Capsule:
    """A bare DLPack capsule made a DLPack producer: ``__dlpack__`` hands it out (once: consuming it
    renames it ``used_dltensor``)."""

    __slots__ = ("capsule", "device")

    def __init__(self, capsule: Any, device: tuple[int, int]) -> None:
        self.capsule = capsule
        self.device = device

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None, copy: Any = None) -> Any:
        if copy:
            raise BufferError("a bare DLPack capsule cannot be copied by its producer")
        return self.capsule


def _is_capsule(tp: type) -> bool:
    return tp.__name__ == "PyCapsule" and tp.__module__ == "builtins"


def _capsule_of(x: Any) -> Any:
    """A capsule of ``x`` (versioned when the producer can) to describe it; never consumed."""
    if _is_capsule(type(x)):
        return x
    try:
        return x.__dlpack__(max_version=(1, 0))
    except TypeError:  # a producer of DLPack < 1.0: no max_version
        return x.__dlpack__()


#: flags of a fallback protocol's description that mean its read must copy
_FALLBACK_COPIES = frozenset({"array_copy", "array_legacy", "read_by_copy"})

_DLPACK_HOST = (1, 3)  # kDLCPU, kDLCUDAHost (pinned: host-readable)


class DLPackAdapter(ProtocolAdapter):
    """Objects with ``__dlpack__`` and ``__dlpack_device__`` (versioned or legacy capsules), and bare
    DLPack capsules (consumed once). Host memory is read with ``numpy.from_dlpack``; every target with
    a ``from_dlpack`` consumes the object itself (zero-copy, also on CUDA). The read-only flag of a
    versioned capsule is kept; a legacy capsule cannot carry it, so host memory from one is read-only
    (as ``numpy.from_dlpack`` reads it): torch, whose tensors are always writable, gets a copy. A
    producer that refuses to export (``BufferError``: NumPy < 2.1 exports no read-only array) is
    read through the next protocol the object offers, a step the plan names."""

    name = "dlpack"
    protocol = "__dlpack__"
    dlpack_export = True

    def owns(self, tp: type) -> bool:
        return (hasattr(tp, "__dlpack__") and hasattr(tp, "__dlpack_device__")) or _is_capsule(tp)

    def _meta(self, x: Any) -> Any:
        try:
            capsule = _capsule_of(x)
        except ArrayFerryError:
            raise
        except Exception as exc:
            cls, msg = self.raised(x, exc)
            raise cls(msg) from exc
        try:
            return read_dlpack_capsule(capsule)
        except ValueError as exc:
            consumed = "used_" in str(exc)
            raise UnsupportedArrayError(format_message(
                f"Cannot read {_qualname(x)} through DLPack: "
                + ("its capsule was consumed already (a DLPack capsule can be read once)." if consumed
                   else f"{'__dlpack__ returned' if not _is_capsule(type(x)) else 'it is'} no DLPack capsule ({exc})."),
                hint="export a fresh capsule (x.__dlpack__()) for each conversion, or pass the array itself instead of "
                "its capsule" if consumed else "check the object's __dlpack__ (numpy.from_dlpack(x) shows the same error)")) from exc

    def _device(self, code: tuple[int, int]) -> Device:
        if code[0] in _DLPACK_HOST:
            return CPU
        try:
            return Device.from_dlpack(code)
        except ArrayFerryError:
            raise
        except Exception as exc:
            raise DeviceError(format_message(
                f"DLPack device {code} is not one arrayferry knows.", [f"{type(exc).__name__}: {exc}"],
                hint="convert the array on its own device with its framework, or copy it to the host first")) from exc

    def _fallback(self, tp: type) -> ProtocolAdapter | None:
        """The protocol adapter that would read ``tp`` were it not for ``__dlpack__`` (the next in
        :data:`PROTOCOL_ADAPTERS` that owns it, Python sequences aside), or ``None``."""
        later = PROTOCOL_ADAPTERS[PROTOCOL_ADAPTERS.index(self) + 1:] if self in PROTOCOL_ADAPTERS else ()
        for a in later:
            if isinstance(a, PythonAdapter):
                continue
            try:
                if a.owns(tp):
                    return a
            except Exception:
                continue
        return None

    def _refused(self, x: Any) -> tuple[ProtocolAdapter, str] | None:
        """``(fallback, why)`` when ``x.__dlpack__`` refuses to export (``BufferError``: NumPy < 2.1
        exports no read-only array) and ``x`` offers another protocol to read it through."""
        if _is_capsule(type(x)) or type(x) is _Capsule:
            return None
        fb = self._fallback(type(x))
        if fb is None:
            return None
        try:
            _capsule_of(x)
        except BufferError as exc:
            return fb, f"BufferError: {exc}"
        except Exception:
            return None
        return None

    def _meta_or_fallback(self, x: Any) -> tuple[Any, ProtocolAdapter | None]:
        """``(capsule metadata, None)``, or ``(None, fallback)`` where the producer refused to export
        (one ``__dlpack__`` call either way: the fallback is looked for only after a refusal)."""
        try:
            return self._meta(x), None
        except ArrayFerryError as exc:
            if isinstance(exc.__cause__, BufferError):
                refused = self._refused(x)
                if refused is not None:
                    return None, refused[0]
            raise

    def describe(self, x: Any) -> ArrayInfo:
        np = _np()
        if type(x) is np.ndarray:
            return _numpy().describe(x).with_(framework=self.name)
        try:
            m, fb = self._meta_or_fallback(x)
            if fb is not None:  # read through the other protocol (the plan's read step says so)
                info = fb.describe(x)
                return info if info.problem else info.with_(framework=self.name, flags=info.flags | {"dlpack_refused"})
            device = self._device(m.device)
        except ArrayFerryError as exc:
            return _problem_info(self.name, type(exc), str(exc))
        if m.dtype is None:
            code, bits, lanes = m.dtype_code
            return _problem_info(self.name, UnsupportedDTypeError, format_message(
                f"Cannot convert {_qualname(x)}: its DLPack type (code {code}, {bits} bits, {lanes} lane(s)) has no "
                "arrayferry dtype.", hint="cast it to a boolean, integer, floating or complex type with its own library first"))
        if device.type not in ("cpu", "cuda"):
            return _problem_info(self.name, DeviceError, format_message(
                f"Cannot convert {_qualname(x)}: it lives on {device} (DLPack device {m.device}), which arrayferry "
                "does not reach.", hint="copy it to the host or a CUDA device with its own library first"))
        layout = self.numpy_layout(m.strides, m.shape, _contiguous(m.shape, m.strides, m.itemsize, reverse=True),
                                   _contiguous(m.shape, m.strides, m.itemsize, reverse=False))
        # a legacy capsule cannot say whether its memory may be written: NumPy reads host memory
        # from one as read-only, and so does arrayferry (never a writable alias of read-only memory)
        readonly = m.readonly or (device.is_host and not m.versioned)
        flags = self.stride_flags(m.strides, m.shape, m.itemsize)
        if _is_capsule(type(x)):
            flags = flags | {"bare_capsule"}
        return ArrayInfo(framework=self.name, dtype=m.dtype, shape=m.shape, device=device, readonly=readonly,
                         layout=layout, aligned=m.pointer % min(m.itemsize, 8) == 0 if m.itemsize else True,
                         flags=flags, itemsize=m.itemsize)

    def signature(self, x: Any) -> Hashable:
        info = self.describe(x)
        return (type(x), info.dtype, info.device, info.readonly, info.layout, info.aligned, info.flags,
                info.problem[0] if info.problem else None)

    def device_of(self, x: Any) -> Device:
        if _is_capsule(type(x)):
            return self._device(self._meta(x).device)
        return self._device(tuple(x.__dlpack_device__()))

    def data_pointer(self, x: Any) -> int | None:
        if _is_capsule(type(x)):
            return None  # reading it is fine, but a capsule is no array to compare afterwards
        m, fb = self._meta_or_fallback(x)
        return fb.data_pointer(x) if fb is not None else int(m.pointer)

    def byte_strides(self, x: Any) -> tuple[int, ...] | None:
        if _is_capsule(type(x)):
            return None
        m, fb = self._meta_or_fallback(x)
        return fb.byte_strides(x) if fb is not None else tuple(m.strides)

    def _producer(self, x: Any) -> Any:
        if type(x) is _Capsule:
            return x
        if _is_capsule(type(x)):
            return _Capsule(x, self._meta(x).device)
        return x

    def view(self, x: Any) -> Any:
        try:
            return _np().from_dlpack(self._producer(x))
        except BufferError:
            refused = self._refused(x)
            if refused is None:
                raise
            return refused[0].view(x)
        except (RuntimeError, ValueError) as exc:  # a capsule consumed since the plan was made
            if "used_dltensor" in str(exc) or "consumed" in str(exc):
                raise UnsupportedArrayError(format_message(
                    f"Cannot read {_qualname(x)} through DLPack: its capsule was consumed already.",
                    hint="export a fresh capsule (x.__dlpack__()) for each conversion")) from exc
            raise

    def supports_dtype(self, dtype: str, device: Device) -> bool:
        return device.is_host  # casts in the source run in NumPy, on the host

    def prepare(self, info: ArrayInfo) -> list[Step]:
        if "dlpack_refused" in info.flags:
            copies = bool(_FALLBACK_COPIES & info.flags)
            return [Step("read", "its __dlpack__ refuses to export this memory (BufferError: NumPy < 2.1 exports no "
                         "read-only array over DLPack), so it is read through the object's other protocol"
                         + (" into a new NumPy array (that protocol cannot promise to share)" if copies else
                            " without copying"),
                         self._read_refused_copy if copies else self._read_refused, copies=copies)]
        if "bare_capsule" in info.flags:
            return [Step("wrap_capsule", "hand the bare DLPack capsule to the consumer as a DLPack producer "
                         "(no copy; the capsule is consumed: it can be converted once)", self._producer)]
        return []

    def _read_refused(self, x: Any) -> Any:
        """The NumPy array of an object whose ``__dlpack__`` refused (a view: no copy)."""
        np = _np()
        if type(x) is np.ndarray:
            return x
        refused = self._refused(x)
        if refused is None:
            return self.view(x)
        fb = refused[0]
        if isinstance(fb, ArrayMethodAdapter):
            return fb.mode(x)[1]
        return fb.view(x)

    def _read_refused_copy(self, x: Any) -> Any:
        """A new C-contiguous array of an object whose ``__dlpack__`` refused and whose other
        protocol cannot promise to share (an ``__array__`` that copies or takes no ``copy=``)."""
        refused = self._refused(x)
        if refused is not None and isinstance(refused[0], ArrayMethodAdapter):
            return refused[0]._fresh(x)
        return _np().array(self._read_refused(x), copy=True, order="C")

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy", flags=info.flags - {"dlpack_refused"} - _FALLBACK_COPIES)

    def to_host(self, x: Any) -> Any:
        return _to_host_through(x, "from_dlpack", self._producer(x))


def _contiguous(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int, *, reverse: bool) -> bool:
    expect = itemsize
    order = range(len(shape) - 1, -1, -1) if reverse else range(len(shape))
    if 0 in shape:
        return True
    for i in order:
        if shape[i] != 1 and strides[i] != expect:
            return False
        expect *= shape[i]
    return True


def _to_host_through(x: Any, method: str, producer: Any) -> Any:
    """A host NumPy copy of device memory, made by a registered framework that can consume it
    (torch, then CuPy): ``method`` is ``"from_dlpack"`` or ``"from_cai"``."""
    for name in ("torch", "cupy"):
        a = adapters().get(name)
        if a is None or not a.is_installed():
            continue
        native = getattr(a, method)(producer)
        host = a.to_host(native)
        return _np().array(a.export_host(host), copy=False)
    raise DeviceError(format_message(
        f"Cannot copy {_qualname(x)} from the GPU to the host: no installed framework here can read it.",
        hint="install torch or cupy with CUDA support, or copy the data to the host with the object's own library"))


_CAI_TYPES = {"b1": "bool", "i1": "int8", "i2": "int16", "i4": "int32", "i8": "int64", "u1": "uint8", "u2": "uint16",
              "u4": "uint32", "u8": "uint64", "f2": "float16", "f4": "float32", "f8": "float64", "c8": "complex64",
              "c16": "complex128"}


class CudaArrayInterfaceAdapter(ProtocolAdapter):
    """Objects with ``__cuda_array_interface__`` (v3, Numba's device arrays ...): CUDA memory that
    torch and CuPy wrap without copying (ordered after the interface's ``stream``); a host target
    gets a copy through torch or CuPy. The device index is the current CUDA device's unless the
    object's ``__dlpack_device__`` says otherwise."""

    name = "cuda_array_interface"
    protocol = "__cuda_array_interface__"
    cai_export = True
    host_export = True

    def owns(self, tp: type) -> bool:
        return hasattr(tp, "__cuda_array_interface__")

    def describe(self, x: Any) -> ArrayInfo:
        try:
            iface = x.__cuda_array_interface__
            typestr = str(iface["typestr"])
            shape = tuple(int(s) for s in iface["shape"])
            ptr, readonly = iface["data"]
            strides_ = iface.get("strides")
        except Exception as exc:
            cls, msg = self.raised(x, exc)
            return _problem_info(self.name, cls, msg)
        order, code = typestr[0], typestr[1:]
        dtype = _CAI_TYPES.get(code)
        if dtype is None:
            return _problem_info(self.name, UnsupportedDTypeError, format_message(
                f"Cannot convert {_qualname(x)}: its __cuda_array_interface__ typestr {typestr!r} has no arrayferry dtype.",
                hint="cast it to a boolean, integer, floating or complex type with its own library first"))
        itemsize = int(code[1:])
        strides = tuple(int(s) for s in strides_) if strides_ is not None else _c_strides(shape, itemsize)
        byteorder = "=" if order in "|=" or (order == "<") == (sys.byteorder == "little") else order
        layout = self.numpy_layout(strides, shape, _contiguous(shape, strides, itemsize, reverse=True),
                                   _contiguous(shape, strides, itemsize, reverse=False))
        return ArrayInfo(framework=self.name, dtype=dtype, shape=shape, device=self.device_of(x), readonly=bool(readonly),
                         layout=layout, byteorder=byteorder, aligned=int(ptr or 0) % min(itemsize, 8) == 0,
                         flags=self.stride_flags(strides, shape, itemsize), itemsize=itemsize)

    def signature(self, x: Any) -> Hashable:
        info = self.describe(x)
        return (type(x), info.dtype, info.device, info.readonly, info.layout, info.byteorder, info.aligned, info.flags,
                info.problem[0] if info.problem else None)

    def device_of(self, x: Any) -> Device:
        get = getattr(x, "__dlpack_device__", None)
        if get is not None:
            try:
                code = tuple(get())
                if code[0] == 2:
                    return Device("cuda", int(code[1]))
            except Exception:
                pass
        return Device("cuda")

    def data_pointer(self, x: Any) -> int | None:
        return int(x.__cuda_array_interface__["data"][0] or 0)

    def byte_strides(self, x: Any) -> tuple[int, ...] | None:
        iface = x.__cuda_array_interface__
        shape = tuple(int(s) for s in iface["shape"])
        strides = iface.get("strides")
        return tuple(int(s) for s in strides) if strides is not None else _c_strides(shape, int(iface["typestr"][2:]))

    def supports_dtype(self, dtype: str, device: Device) -> bool:
        return device.is_host

    def to_host(self, x: Any) -> Any:
        return _to_host_through(x, "from_cai", x)


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    acc, out = itemsize, []
    for n in reversed(shape):
        out.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(out))


# ------------------------------------------------------------------------------------------------
# the order the registry tries them in

PROTOCOL_ADAPTERS: tuple[ProtocolAdapter, ...] = (
    NumpyScalarAdapter(),
    PandasAdapter(),
    XarrayAdapter(),
    DLPackAdapter(),
    CudaArrayInterfaceAdapter(),
    ArrayInterfaceAdapter(),
    ArrayMethodAdapter(),
    BufferAdapter(),
    PythonAdapter(),
)
"""Tried in this order (fidelity first) for types no registered adapter owns."""

PROTOCOL_NAMES: frozenset[str] = frozenset(a.name for a in PROTOCOL_ADAPTERS) - {"numpy"}
"""The names ``framework_of`` gives these sources (``"numpy"`` is the NumPy adapter's own name)."""


def protocol_adapter_for_type(tp: type) -> Adapter | None:
    """The first protocol adapter that reads objects of type ``tp``, or ``None`` (imports nothing)."""
    for a in PROTOCOL_ADAPTERS:
        try:
            if a.owns(tp):
                return a
        except Exception:
            continue
    return None
