"""The Arrow adapter: what arrayferry's planner needs to know about pyarrow's array containers.

Sources: ``pyarrow.Array`` and ``pyarrow.ChunkedArray`` of boolean, integer and floating types,
``pyarrow.Tensor``, and the fixed-shape tensor extension array (``pyarrow.FixedShapeTensorArray``,
rows of equally shaped tensors, also inside a ``ChunkedArray``).

Targets (``convert(x, "pyarrow")``), chosen by the number of dimensions of the input:

* 1-D: a ``pyarrow.Array`` (numeric arrays alias the input's memory; booleans are bit-packed: a copy);
* N-D (N >= 2): a ``pyarrow.FixedShapeTensorArray`` with ``len == shape[0]`` rows of tensors of
  shape ``shape[1:]``, an Arrow *array* that can be a table column and written to Parquet/IPC
  (zero-copy from C-contiguous numeric memory);
* 0-D: a ``pyarrow.Tensor`` (the only Arrow container with no axis); 0-D booleans are refused,
  since ``pyarrow.Tensor`` has no boolean type.

Each rule below is a trap of pyarrow's own conversion calls (observed with pyarrow 26.0.1):

* **Immutable buffers.** Arrow never writes into a buffer, so every Arrow container is described
  as read-only: NumPy views of it are read-only, torch (whose tensors are always writable) gets a
  copy, and ``copy=False`` into torch raises :class:`arrayferry.CopyRequiredError`.
* **Nulls.** ``to_numpy(zero_copy_only=False)`` turns nulls into NaN (floats) or garbage, and
  ``FixedShapeTensorArray.to_numpy_ndarray`` reads null *values* as 0 without a word. An array with
  any null (in a row or inside a tensor) is refused with :class:`arrayferry.UnsupportedArrayError`
  and a hint (``fill_null``, ``drop_null``, ``pyarrow.compute.is_null`` for a mask).
* **Bit-packed booleans.** Arrow stores one bit per boolean; NumPy and torch one byte. Unpacking
  (Arrow to anything) and packing (anything to Arrow) are copies the plan names.
  ``pa.Tensor.from_numpy(bool)`` silently returns ``uint8``: never used for booleans.
* **Chunked arrays.** Several chunks are several buffers: combining them is a copy the plan names;
  a single chunk is aliased.
* **Byte order.** ``pa.Tensor.from_numpy`` keeps big-endian bytes unswapped (``[0, 1, 2, 3]``
  reads as ``[0, 4.6e-41, ...]``) and ``pa.array`` refuses them: non-native NumPy arrays are
  swapped by the plan's one host copy first.
* **Empty arrays.** ``pa.array`` of an empty torch/JAX array returns the ``null`` type, and
  ``FixedShapeTensorArray.from_numpy_ndarray`` refuses empty input: the import builds buffers with
  the dtype named explicitly (``Array.from_buffers``), so ``(0,)`` and ``(0, 3)`` keep their dtype.
* **DLPack.** ``torch.asarray(pa.Tensor)`` reads the bytes as flat float32, pyarrow's DLPack
  export refuses booleans and nulls with misleading errors, and ``pa.Tensor`` does not flag its
  capsules read-only: the adapter never takes part in DLPack routes; everything goes through
  read-only NumPy views of Arrow memory (zero-copy) and explicit buffers.

Nothing here imports pyarrow at import time: it is imported on first conversion.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from arrayferry.plugin import (
    CANONICAL_DTYPES,
    ITEMSIZE,
    Adapter,
    ArgumentError,
    ArrayInfo,
    Device,
    Step,
    UnsupportedArrayError,
    UnsupportedDTypeError,
    format_message,
)

__all__ = ["ARROW_DTYPES", "ArrowAdapter"]

#: The canonical dtypes Arrow holds as numeric arrays (no complex, no bfloat16/float8).
ARROW_DTYPES: frozenset[str] = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
})

_CPU = Device("cpu")

# ``ArrayInfo.flags`` for Arrow states a route must resolve (by a copy, see ``prepare``)
BITPACKED = "bitpacked"
CHUNKED = "chunked"


def _pa() -> Any:
    return sys.modules["pyarrow"]


def _np() -> Any:
    import numpy

    return numpy


# ------------------------------------------------------------------------------------------------
# types


_NAMES: dict[Any, str] = {}


def _dtype_name(t: Any) -> str:
    """Canonical name of an Arrow value type, or Arrow's own name when it is not numeric."""
    if not _NAMES:
        pa = _pa()
        for name in ARROW_DTYPES:
            _NAMES[pa.from_numpy_dtype(_np().dtype(name))] = name
    return _NAMES.get(t, str(t))


def _arrow_type(name: str) -> Any:
    return _pa().from_numpy_dtype(_np().dtype(name))


def _is_tensor_type(t: Any) -> bool:
    """True for the fixed-shape tensor extension type."""
    return type(t).__name__ == "FixedShapeTensorType"


def _value_type(t: Any) -> Any:
    """The element type: the value type of a fixed-shape tensor type, else ``t``."""
    return t.value_type if _is_tensor_type(t) else t


def _logical_shape(t: Any) -> tuple[int, ...]:
    """The NumPy shape of one tensor of a fixed-shape tensor type (``shape`` is physical)."""
    phys = [int(s) for s in t.shape]
    perm = t.permutation
    if perm is None:
        return tuple(phys)
    return tuple(phys[int(p)] for p in perm)


def _identity_perm(t: Any) -> bool:
    perm = t.permutation
    return perm is None or list(perm) == list(range(len(t.shape)))


def _layout(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> str:
    """Layout class of a strided view (NumPy's rules: axes of length 1 do not count)."""
    def contiguous(order: Iterable[int]) -> bool:
        expect = itemsize
        for i in order:
            if shape[i] != 1 and strides[i] != expect:
                return False
            expect *= shape[i]
        return True

    n = len(shape)
    if any(s == 0 for s in shape) or contiguous(range(n - 1, -1, -1)):
        return "contiguous"
    if contiguous(range(n)):
        return "fortran"
    if any(s == 0 for s, k in zip(strides, shape, strict=True) if k > 1):
        return "broadcast"
    return "strided"


# ------------------------------------------------------------------------------------------------
# reading Arrow memory as NumPy


def _nulls(x: Any) -> int:
    """Nulls in rows and, for fixed-shape tensors, inside the tensors (to_numpy_ndarray reads them as 0)."""
    pa = _pa()
    if isinstance(x, pa.ChunkedArray):
        return sum(_nulls(c) for c in x.iterchunks())
    n = int(x.null_count)
    if isinstance(x, pa.FixedShapeTensorArray):
        n += int(x.storage.flatten().null_count)
    return n


def _view(x: Any) -> Any:
    """A read-only NumPy view of a numeric Arrow container without nulls (never copies)."""
    pa, np = _pa(), _np()
    if isinstance(x, np.ndarray):  # made by a copying ``prepare`` step: fresh, writable
        return x
    if isinstance(x, pa.FixedShapeTensorArray):
        v = x.to_numpy_ndarray()
    elif isinstance(x, pa.ChunkedArray):
        return _view(x.chunk(0))
    elif isinstance(x, pa.Tensor):
        v = x.to_numpy()
    else:
        v = x.to_numpy(zero_copy_only=True)
    if v.flags.writeable:  # pa.Tensor.to_numpy of a mutable tensor: Arrow memory is never handed out writable
        v = v.view()
        v.flags.writeable = False
    return v


def _unpacked(x: Any) -> Any:
    """A fresh, writable, C-contiguous NumPy array with ``x``'s values (booleans unpacked, chunks joined)."""
    pa, np = _pa(), _np()
    if isinstance(x, pa.ChunkedArray):
        t = x.type
        parts = [_unpacked(c) if _dtype_name(_value_type(t)) == "bool" else _view(c) for c in x.iterchunks()]
        if not parts:
            dt = np.dtype(_dtype_name(_value_type(t)))
            return np.empty((0, *_logical_shape(t)) if _is_tensor_type(t) else (0,), dtype=dt)
        if len(parts) == 1 and parts[0].flags.writeable:  # one boolean chunk, unpacked already
            return parts[0]
        return np.concatenate(parts)
    if isinstance(x, pa.FixedShapeTensorArray):
        t = x.type
        flat = x.storage.flatten().to_numpy(zero_copy_only=False, writable=True)
        phys = flat.reshape((len(x), *[int(s) for s in t.shape]))
        if _identity_perm(t):
            return phys
        return np.ascontiguousarray(phys.transpose((0, *[1 + int(p) for p in t.permutation])))
    if isinstance(x, pa.Tensor):
        return np.array(x.to_numpy(), copy=True)
    return x.to_numpy(zero_copy_only=False, writable=True)


def _to_numpy(x: Any) -> Any:
    """A NumPy array with ``x``'s values: a read-only view where Arrow's memory allows one, else a copy."""
    pa = _pa()
    flags = _flags(x)
    if flags:
        return _unpacked(x)
    return _view(x) if not isinstance(x, pa.ChunkedArray) else _view(x.chunk(0))


def _flags(x: Any) -> frozenset[str]:
    pa = _pa()
    out = set()
    if _dtype_name(_value_type(x.type)) == "bool" and not isinstance(x, pa.Tensor):
        out.add(BITPACKED)
    if isinstance(x, pa.ChunkedArray) and x.num_chunks != 1:
        out.add(CHUNKED)
    return frozenset(out)


# ------------------------------------------------------------------------------------------------
# building Arrow containers over NumPy memory


def _values(flat: Any) -> Any:
    """A ``pyarrow.Array`` over the 1-D NumPy array ``flat``: aliases numeric memory, packs booleans (copy)."""
    pa, np = _pa(), _np()
    n = int(flat.shape[0])
    if flat.dtype == np.bool_:
        packed = np.packbits(flat, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(packed)])
    # the type is named explicitly: pa.array() of empty torch/JAX input gives the null type
    return pa.Array.from_buffers(pa.from_numpy_dtype(flat.dtype), n, [None, pa.py_buffer(flat)])


def _tensor_array(arr: Any) -> Any:
    """A ``FixedShapeTensorArray`` of ``arr.shape[0]`` rows over the C-contiguous ``arr`` (empty allowed)."""
    pa = _pa()
    inner = [int(s) for s in arr.shape[1:]]
    size = 1
    for s in inner:
        size *= s
    values = _values(arr.reshape(-1))
    vt = values.type
    storage = pa.Array.from_buffers(pa.list_(vt, size), int(arr.shape[0]), [None], children=[values])
    return pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(vt, inner), storage)


def from_numpy(arr: Any) -> Any:
    """The Arrow container ``convert(arr, "pyarrow")`` returns for the NumPy array ``arr``.

    1-D: ``pyarrow.Array``; N-D: ``FixedShapeTensorArray`` (rows along axis 0); 0-D:
    ``pyarrow.Tensor``. Numeric input must be C-contiguous and in native byte order (the plan
    copies it first otherwise); it is aliased. Booleans are packed into bits (a copy).
    """
    if arr.ndim == 1:
        return _values(arr)
    if arr.ndim == 0:
        if arr.dtype.kind == "b":
            _refuse_0d_bool(arr)
        return _pa().Tensor.from_numpy(arr)
    return _tensor_array(arr)


def _refuse_0d_bool(x: Any) -> Any:
    raise UnsupportedArrayError(format_message(
        "Cannot make a 0-d boolean pyarrow container: Arrow's only container without an axis, "
        "pyarrow.Tensor, has no boolean type (pa.Tensor.from_numpy turns booleans into uint8).",
        hint="reshape to one element first (x.reshape(1)) to get a one-element pyarrow boolean Array"))


def _like(x: Any, arr: Any) -> Any:
    """``arr`` (fresh NumPy memory with ``x``'s shape) as an Arrow container of ``x``'s kind."""
    pa = _pa()
    if isinstance(x, pa.Tensor):
        if arr.dtype.kind == "b":
            raise UnsupportedDTypeError(format_message(
                "pyarrow.Tensor has no boolean type (pa.Tensor.from_numpy turns booleans into uint8).",
                hint="convert to a fixed-shape tensor array or to NumPy first (af.convert(af.convert(t, 'numpy'), 'pyarrow'))"))
        return pa.Tensor.from_numpy(arr)
    if isinstance(x, pa.FixedShapeTensorArray):
        return _tensor_array(arr)
    return _values(arr)


# ------------------------------------------------------------------------------------------------
# the adapter


class ArrowAdapter(Adapter):
    """Adapter for ``pyarrow.Array``, ``ChunkedArray``, ``Tensor`` and ``FixedShapeTensorArray`` (host memory)."""

    name = "pyarrow"
    module = "pyarrow"
    aliases = ("pa", "arrow")
    distribution = "pyarrow"
    min_version = "18.0"
    readonly_capable = True  # Arrow never writes into a buffer
    host_export = True
    host_import = True
    dlpack_export = False  # see the module docstring: NumPy views are exact, pyarrow's DLPack is not
    dlpack_import = False
    priority = 0
    refines = True  # only to refuse 0-d booleans at planning time (see refine_key)
    source_options = MappingProxyType({
        "fill_null": "the value each null becomes (pyarrow.compute.fill_null: a new Arrow array, one copy "
                     "the plan names); for Array and ChunkedArray",
    })

    # -- detection -------------------------------------------------------------------------
    def native_call(self, source: str, target: str) -> tuple[str, Callable[[Any], Any]] | None:
        if target == self.name:
            import pyarrow as pa

            return "pa.array", pa.array  # reads 1-D sequences and arrays (not N-d, not DLPack)
        return None

    def owns(self, tp: type) -> bool:
        pa = _pa()
        return issubclass(tp, (pa.Array, pa.ChunkedArray, pa.Tensor))

    def signature(self, x: Any) -> Hashable:
        pa = _pa()
        if isinstance(x, pa.Tensor):
            return (pa.Tensor, x.type, _layout(tuple(x.shape), tuple(x.strides), x.type.bit_width // 8))
        if isinstance(x, pa.ChunkedArray):
            return (pa.ChunkedArray, x.type, _nulls(x) > 0, min(x.num_chunks, 2))
        if isinstance(x, pa.FixedShapeTensorArray):
            return (type(x), x.type, _nulls(x) > 0)
        return (type(x), x.type, x.null_count > 0)

    def describe(self, x: Any) -> ArrayInfo:
        pa = _pa()
        t = x.type
        vt = _value_type(t)
        dname = _dtype_name(vt)
        if isinstance(x, pa.Tensor):
            shape = tuple(int(s) for s in x.shape)
            layout = _layout(shape, tuple(x.strides), ITEMSIZE.get(dname, 1))
            kind = "pyarrow.Tensor"
        else:
            shape = (len(x), *_logical_shape(t)) if _is_tensor_type(t) else (len(x),)
            layout = "contiguous"
            if _is_tensor_type(t) and not _identity_perm(t):
                perm = [int(p) for p in t.permutation]
                phys = [int(s) for s in t.shape]
                cstr = [0] * len(phys)
                acc = ITEMSIZE.get(dname, 1)
                for i in range(len(phys) - 1, -1, -1):
                    cstr[i] = acc
                    acc *= phys[i]
                layout = _layout(shape, (acc, *[cstr[p] for p in perm]), ITEMSIZE.get(dname, 1))
            kind = f"pyarrow.{type(x).__name__}"
        problem: tuple[type[Exception], str] | None = None
        if dname not in CANONICAL_DTYPES:
            problem = (UnsupportedDTypeError, format_message(
                f"Cannot convert a {kind} of Arrow type {t} {shape}: only boolean, integer and floating-point "
                "Arrow types have an array counterpart in other frameworks.",
                hint="cast it first, e.g. x.cast(pyarrow.float64()) (x.dictionary_decode() for dictionary arrays; "
                "a 'null'-typed array has no dtype at all: build it with the type meant, pa.array([], pa.float32()))"))
        elif not isinstance(x, pa.Tensor):
            nulls = _nulls(x)
            if nulls:
                problem = (UnsupportedArrayError, format_message(
                    f"Cannot convert a {kind} of {dname} {shape} with {nulls} null(s): other frameworks have no "
                    "null, and dropping them silently (pyarrow's to_numpy turns them into NaN, "
                    "FixedShapeTensorArray.to_numpy_ndarray into 0) would change what the data means.",
                    hint="choose what a null becomes: x.fill_null(0) (pyarrow.compute.fill_null), x.drop_null(), "
                    "or convert the mask pyarrow.compute.is_null(x) separately"))
        return ArrayInfo(
            framework="pyarrow",
            dtype=dname,
            shape=shape,
            device=_CPU,
            readonly=True,
            layout=layout,
            flags=_flags(x) if problem is None else frozenset(),
            itemsize=ITEMSIZE.get(dname, 0),
            problem=problem,
        )

    def device_of(self, x: Any) -> Device:
        return _CPU

    def data_pointer(self, x: Any) -> int | None:
        pa = _pa()
        if isinstance(x, pa.ChunkedArray):
            return self.data_pointer(x.chunk(0)) if x.num_chunks else None
        if isinstance(x, pa.Tensor):
            return int(x.to_numpy().__array_interface__["data"][0])
        if isinstance(x, pa.FixedShapeTensorArray):
            x = x.storage.flatten()
        bufs = x.buffers()
        if len(bufs) < 2 or bufs[1] is None:
            return None
        width = int(getattr(x.type, "bit_width", 8))
        return int(bufs[1].address) + (int(x.offset) * width) // 8

    def parse_dtype(self, obj: Any) -> str | None:
        pa = sys.modules.get("pyarrow")
        if pa is not None and isinstance(obj, pa.DataType):
            name = _dtype_name(obj)
            return name if name in ARROW_DTYPES else None
        return None

    def source_step(self, x: Any, options: Mapping[str, Any], info: ArrayInfo) -> tuple[Step, ArrayInfo]:
        """``fill_null=value``: nulls become ``value`` (a new Arrow array) before the conversion."""
        pa = _pa()
        value = options["fill_null"]
        if isinstance(x, pa.Tensor) or _is_tensor_type(x.type):
            raise ArgumentError(format_message(
                f"fill_null= applies to pyarrow Array and ChunkedArray sources, not to a {type(x).__name__}.",
                hint="fill the tensor's storage yourself (x.storage.flatten().fill_null(v)) and rebuild it, or "
                "convert the mask pyarrow.compute.is_null(x) separately"))
        try:
            scalar = pa.scalar(value, type=x.type)
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            raise ArgumentError(format_message(
                f"fill_null={value!r} cannot fill an Arrow array of type {x.type}.",
                [f"pyarrow.scalar({value!r}, type={x.type}) raised {type(exc).__name__}: {exc}"],
                hint=f"pass a value that Arrow type {x.type} holds exactly")) from exc
        if info.dtype not in CANONICAL_DTYPES or info.problem is None:
            # nothing to fill (no null; the signature keeps arrays with nulls apart), or a type that
            # no fill makes convertible: the plan's own error says so
            return Step("fill_null", "no null to fill", lambda y: y, copies=False), info
        return (Step("fill_null", f"nulls become {value!r} (pyarrow.compute.fill_null: a new Arrow array)",
                     lambda y: y.fill_null(scalar), copies=True),
                info.with_(problem=None, flags=_flags(x)))

    def refine_key(self, source: Adapter, x: Any) -> tuple[tuple[str, Any], ...]:
        """Nothing to add to the key (the import follows each array's ndim at run time), but a 0-d
        boolean source is refused here, so that ``plan()`` refuses it too, not only ``convert()``."""
        if source is not self and getattr(x, "ndim", 1) == 0 and source.describe(x).dtype == "bool":
            _refuse_0d_bool(x)
        return ()

    # -- what Arrow can hold ----------------------------------------------------------------
    def supports_dtype(self, dtype: str, device: Device) -> bool:
        return dtype in ARROW_DTYPES

    def default_dtype_for(self, dtype: str, device: Device) -> str:
        if dtype in ARROW_DTYPES:
            return dtype
        if dtype.startswith("complex"):
            hint = "Arrow has no complex type: convert x.real and x.imag separately (two Arrow arrays, or two columns of a table)"
        elif dtype in CANONICAL_DTYPES:
            hint = "Arrow has no such float type: pass dtype='float32' to widen it (exactly, for bfloat16 and float8)"
        else:
            hint = "convert the data to a numeric dtype first"
        raise UnsupportedDTypeError(format_message(f"pyarrow cannot hold {dtype} arrays on {device}.",
                                             [f"Arrow's numeric types: {', '.join(sorted(ARROW_DTYPES))}"], hint=hint))

    # -- export (Arrow is the source) --------------------------------------------------------
    def prepare(self, info: ArrayInfo) -> list[Step]:
        if BITPACKED in info.flags and CHUNKED in info.flags:
            return [Step("unpack_bits", "join the chunks and unpack Arrow's bit-packed booleans into one byte "
                         "per value (copy)", _unpacked, copies=True)]
        if BITPACKED in info.flags:
            return [Step("unpack_bits", "unpack Arrow's bit-packed booleans into one byte per value (copy)",
                         _unpacked, copies=True)]
        if CHUNKED in info.flags:
            return [Step("combine_chunks", "join the chunks of the ChunkedArray (zero or several buffers) into "
                         "one contiguous buffer (copy)", _unpacked, copies=True)]
        return []

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy")

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        return _view  # read-only views of Arrow memory; the arrays a copying prepare step made pass through

    def export_host(self, x: Any) -> Any:
        """A NumPy array of ``x``: a read-only view, except for booleans and several chunks (copies;
        the planner never calls this, it plans those copies as ``prepare`` steps)."""
        return _to_numpy(x)

    # -- import (Arrow is the target) --------------------------------------------------------
    def host_import_refusals(self, info: ArrayInfo) -> list[str]:
        if info.dtype == "bool":
            return []  # packing the bits reads any layout and is a copy anyway
        out = []
        if info.byteorder != "=":
            out.append("Arrow holds native byte order only (pa.Tensor.from_numpy would keep the bytes unswapped "
                       "and misread them; pa.array refuses them)")
        if info.layout != "contiguous":
            out.append(f"Arrow arrays and fixed-shape tensors are C-contiguous buffers (this array is {info.layout})")
        if not info.aligned:
            out.append("Arrow buffers hold aligned values (this array is misaligned)")
        return out

    def import_copies(self, info: ArrayInfo) -> str | None:
        if info.dtype == "bool":
            return "Arrow stores booleans as bits: packing NumPy's one byte per value is a copy"
        return None

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        self.namespace()
        # The container follows the ndim of each array (from_numpy), not the planned shape: a plan
        # made for a 1-D array and executed on a 2-D one (same signature) still builds the right one.
        return from_numpy

    def import_host(self, arr: Any) -> Any:
        self.namespace()
        return from_numpy(arr)

    # -- native operations (Arrow to Arrow keeps the container) ------------------------------
    def copy(self, x: Any) -> Any:
        pa, np = _pa(), _np()
        if isinstance(x, pa.ChunkedArray):
            return pa.chunked_array([self.copy(c) for c in x.iterchunks()], type=x.type)
        return _like(x, np.array(_to_numpy(x), copy=True, order="C"))

    def cast(self, x: Any, dtype: str) -> Any:
        pa, np = _pa(), _np()
        if isinstance(x, pa.ChunkedArray):
            chunks = [self.cast(c, dtype) for c in x.iterchunks()]
            if chunks:
                return pa.chunked_array(chunks)
            t = _arrow_type(dtype)
            if _is_tensor_type(x.type):
                t = pa.fixed_shape_tensor(t, list(x.type.shape), permutation=x.type.permutation)
            return pa.chunked_array([], type=t)
        a = _to_numpy(x)
        if a.dtype.kind == "c":  # not reachable from Arrow data; kept for symmetry with the core's casts
            a = a.real
        return _like(x, np.ascontiguousarray(a.astype(np.dtype(dtype))))
