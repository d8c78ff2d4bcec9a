"""One case catalogue: the arrays arrayferry's test suite, the conformance kit and ``arrayferry matrix`` convert.

Each :class:`Case` builds a *fresh* source array (NumPy, or torch for states only torch arrays
have) together with the values it must hold, computed with NumPy alone from the same raw data, so
a test compares a conversion's result with an independent reference. The metadata says what a
correct conversion must do with it: ``copy_to`` names the targets that cannot alias the array
(a copy is needed even with ``copy=None``) and ``why`` a word the plan's explanation or the
``CopyRequiredError`` uses for the reason; ``readonly`` and ``risky`` (negative strides, which
abort torch's own importers) mark the hazards.

Who draws on which cases:

* arrayferry's own suite (``tests/``) converts every case to every target under every copy policy;
* the conformance kit (:mod:`arrayferry.testing.contract`) takes the cases whose ``uses`` holds
  ``"kit"`` (:func:`cases_for`): every numeric dtype, 0-d, empty, strided, negative strides,
  transposed, broadcast, read-only; it builds each in the framework under test with ``view``
  applied to ``base`` where the framework can express the view natively;
* ``arrayferry matrix`` takes those whose ``uses`` holds ``"matrix"``, in catalogue order; it
  carries each into every framework and reports ``n/a`` where ``holds`` says the property did
  not survive; ``native`` builds a case directly in a framework (torch's ``expand``).

Importing this module imports no framework; building a case imports NumPy (and torch for a
torch case).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALL_DTYPES",
    "CASES",
    "CORE_DTYPES",
    "Case",
    "EXTENDED_DTYPES",
    "case_named",
    "cases_for",
    "array_api_namespace",
    "np_asarray",
    "np_dtype",
    "np_from_dlpack",
    "sample",
]

#: dtypes NumPy and torch share natively.
CORE_DTYPES: tuple[str, ...] = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
#: the ml_dtypes formats the cases hold (NumPy knows them through ml_dtypes only; torch natively).
EXTENDED_DTYPES: tuple[str, ...] = ("bfloat16", "float8_e4m3fn", "float8_e5m2")
ALL_DTYPES: tuple[str, ...] = CORE_DTYPES + EXTENDED_DTYPES

_BITS = {"bfloat16": "int16", "float8_e4m3fn": "uint8", "float8_e5m2": "uint8"}
_N = 64  # the matrix's (64, 64) float32: 16 KiB, small enough that timings show overhead, not bandwidth


def _np() -> Any:
    import numpy as np

    return np


def _torch() -> Any:
    import torch

    return torch


def np_dtype(name: str) -> Any:
    """NumPy dtype for a canonical name (ml_dtypes for the extended formats)."""
    np = _np()
    if name in EXTENDED_DTYPES:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


def _float_values(name: str) -> list[Any]:
    np = _np()
    vals: list[Any] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5, -2.25, 3.0e-3, 100.0]
    if name == "float32":  # a NaN with a non-default payload: copies must keep it bit for bit
        vals.insert(1, np.array([0x7FC00123], dtype=np.uint32).view(np.float32)[0])
    if name == "float64":
        vals.insert(1, np.array([0x7FF8000000000123], dtype=np.uint64).view(np.float64)[0])
        vals.append(1e300)
    return vals


def sample(name: str, shape: tuple[int, ...]) -> Any:
    """A C-contiguous NumPy array of ``shape`` holding the awkward values of dtype ``name``.

    Floats cycle through NaN (also with a payload), +-inf, -0.0 and ordinary values; integers
    through their extremes, 0 and -1; complex numbers mix them in both parts.
    """
    np = _np()
    n = int(np.prod(shape, dtype=np.int64))
    dt = np_dtype(name)
    if name == "bool":
        flat = np.resize(np.array([True, False, False, True, True]), n)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        base = [info.min, info.max, 0, 1, info.max // 3, info.min // 2 if info.min else 7]
        if info.min:
            base.append(-1)
        flat = np.resize(np.array(base, dtype=dt), n)
    elif dt.kind == "c":
        part = np.float32 if name == "complex64" else np.float64
        re = np.resize(np.array(_float_values(str(np.dtype(part))), dtype=part), n)
        im = np.resize(np.array([-0.0, 2.0, np.nan, -np.inf, 0.5, 0.0], dtype=part), n)
        flat = np.empty(n, dtype=dt)
        flat.real, flat.imag = re, im
    elif name in EXTENDED_DTYPES:
        flat = np.resize(np.array(_float_values("float32"), dtype=np.float32), n).astype(dt)
    else:
        flat = np.resize(np.array(_float_values(name), dtype=dt), n)
    return np.array(flat.reshape(shape), order="C", copy=True)


def _anything(info: Any) -> bool:
    return True


@dataclass(frozen=True)
class Case:
    """One source array of the catalogue."""

    name: str
    description: str
    #: a fresh ``(source array, NumPy reference values)`` pair; the array belongs to ``source``
    build: Callable[[], tuple[Any, Any]] = field(repr=False)
    source: str = "numpy"
    #: the canonical dtype of the source array
    dtype: str = "float32"
    #: the consumers besides arrayferry's own suite (which takes every case): ``"kit"``, ``"matrix"``
    uses: frozenset[str] = frozenset()
    #: targets that cannot alias this array (a copy even with ``copy=None``)
    copy_to: frozenset[str] = frozenset()
    #: a word the explanation / CopyRequiredError uses for the reason of that copy
    why: str = ""
    readonly: bool = False
    #: negative strides: arrayferry's suite converts these in a guarded subprocess first
    risky: bool = False
    #: the matrix: does an ``ArrayInfo`` still show the property once carried into a framework?
    holds: Callable[[Any], bool] = field(default=_anything, repr=False)
    #: framework name -> builder of the case directly in that framework (the matrix)
    native: Mapping[str, Callable[[], Any]] = field(default_factory=dict, repr=False)
    #: the kit: a plain C-contiguous NumPy array and the view of it that is this case, so that a
    #: framework that can express the view builds it natively
    base: Callable[[], Any] | None = field(default=None, repr=False)
    view: Callable[[Any], Any] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        """The case's name (pytest ids)."""
        return self.name

    def make(self) -> tuple[Any, Any]:
        """A fresh ``(source array, reference values)`` pair."""
        return self.build()

    def numpy(self) -> Any:
        """The case as a fresh NumPy array (``source == "numpy"`` only)."""
        if self.source != "numpy":
            raise ValueError(f"case {self.name!r} is a {self.source} array; use make()")
        return self.build()[0]

    def needs_copy(self, target: str) -> bool:
        """True when converting to ``target`` must copy even with ``copy=None``."""
        return target in self.copy_to


# ------------------------------------------------------------------------------------------------
# builders


def _placed(a: Any, offset: int = 0) -> Any:
    """``a`` copied ``offset`` bytes past a 64-byte boundary.

    Placement is controlled because some zero-copy routes depend on it (JAX aliases host memory
    only at 64-byte alignment): the same versions must give the same matrix on every run.
    """
    np = _np()
    raw = np.empty(a.nbytes + 128, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _grid(dtype: str = "float32", offset: int = 0) -> Any:
    """The matrix's (64, 64) data: NaN, +-inf and -0.0 first, then ordinary values."""
    np = _np()
    a = np.arange(_N * _N, dtype=np.float64).reshape(_N, _N) - 100.5
    a[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    return _placed(a.astype(np_dtype(dtype)), offset)


def _ref(a: Any) -> Any:
    """The reference of a NumPy array: its values in fresh C-contiguous native-order memory."""
    np = _np()
    return np.array(a, dtype=a.dtype.newbyteorder("=") if a.dtype.kind != "V" else a.dtype, order="C", copy=True)


def _same(make: Callable[[], Any]) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        a = make()
        return a, _ref(a)

    return build


def _viewed(base: Callable[[], Any], view: Callable[[Any], Any], readonly: bool = False) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        a = view(base())
        if readonly:
            a.setflags(write=False)
        return a, _ref(a)

    return build


def _readonly(a: Any) -> Any:
    a.setflags(write=False)
    return a


def _misaligned(name: str, n: int) -> tuple[Any, Any]:
    """A view at byte offset 1 of a uint8 buffer, holding ``sample(name, (n,))``."""
    np = _np()
    ref = sample(name, (n,))
    buf = np.zeros(ref.nbytes + 1, dtype=np.uint8)
    view = buf[1:].view(ref.dtype)
    view[...] = ref
    return view, ref


def _complex128_at_8() -> tuple[Any, Any]:
    """complex128 at an 8-byte offset: NumPy calls it aligned (to one float64), torch needs 16."""
    np = _np()
    ref = sample("complex128", (4,))
    base = np.zeros(2 * ref.size + 1, dtype=np.float64)
    view = base[1:].view(np.complex128)
    view[...] = ref
    return view, ref


def _complex128_field() -> tuple[Any, Any]:
    """A complex128 field of a 24-byte record: stride 24, every other element 8 bytes off."""
    np = _np()
    ref = sample("complex128", (4,))
    rec = np.zeros(4, dtype=[("a", "f8"), ("c", "c16")])
    rec["c"] = ref
    return rec["c"], ref


def _torch_from(ref: Any) -> Any:
    """A torch tensor holding ``ref``'s values in fresh memory (bits copied, ml_dtypes via ints)."""
    torch = _torch()
    name = ref.dtype.name
    if name in _BITS:
        return torch.from_numpy(ref.view(_BITS[name]).copy()).view(getattr(torch, name))
    return torch.from_numpy(ref.copy())


def _tcase(ref_fn: Callable[[], Any], op: Callable[[Any], Any] = lambda t: t,
           ref_op: Callable[[Any], Any] = lambda a: a) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        np = _np()
        data = ref_fn()
        return op(_torch_from(data)), np.array(ref_op(data), order="C", copy=True)

    return build


def _torch_misaligned() -> tuple[Any, Any]:
    view, ref = _misaligned("float32", 6)
    return _torch().from_numpy(view), ref


def _torch_grid(dtype: str = "float32") -> Any:
    return _torch().from_numpy(_grid(dtype))


def _grad() -> tuple[Any, Any]:
    a = _grid()  # the tensor aliases the placed memory (see _placed)
    return _torch().from_numpy(a).requires_grad_(True), _ref(a)


def _conj() -> tuple[Any, Any]:
    a = _grid("complex64")
    return _torch().from_numpy(a).conj(), _ref(a.conj())


def _int64_grid() -> Any:
    np = _np()
    a = np.arange(_N * _N, dtype=np.int64).reshape(_N, _N) * (2**40 + 1)
    a[0, :2] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max]
    return _placed(a)


def _sampler(name: str, shape: tuple[int, ...]) -> Callable[[], Any]:
    return lambda: sample(name, shape)


def _big_endian(name: str) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        ref = sample(name, (2, 3))
        return ref.astype(ref.dtype.newbyteorder(">")), ref

    return build


def _broadcast(a: Any) -> Any:
    return _np().broadcast_to(a[0], a.shape)


_TORCH = frozenset({"torch"})
_NUMPY = frozenset({"numpy"})
_KIT = frozenset({"kit"})
_MATRIX = frozenset({"matrix"})
_BOTH = frozenset({"kit", "matrix"})
_NEGATIVE = {"copy_to": _TORCH, "why": "negative strides", "risky": True}
_READONLY = {"copy_to": _TORCH, "why": "read-only", "readonly": True}


def _np_case(name: str, description: str, build: Callable[[], tuple[Any, Any]], dtype: str, **kw: Any) -> Case:
    return Case(name, description, build, "numpy", dtype, **kw)


def _t_case(name: str, description: str, build: Callable[[], tuple[Any, Any]], dtype: str, **kw: Any) -> Case:
    return Case(name, description, build, "torch", dtype, **kw)


def _matrix_cases() -> list[Case]:
    """The matrix's rows, in the order its report shows them (the kit shares five of them)."""
    return [
        _np_case("contiguous", "C-contiguous float32 (64, 64)", _same(_grid), "float32", uses=_MATRIX,
                 holds=lambda i: i.layout == "contiguous" and i.dtype == "float32" and not i.flags),
        _np_case("strided", "every other column, x[:, ::2]", _viewed(_grid, lambda a: a[:, ::2]), "float32",
                 uses=_BOTH, base=_grid, view=lambda a: a[:, ::2], holds=lambda i: i.layout == "strided"),
        _np_case("negative", "negative stride, x[::-1]", _viewed(_grid, lambda a: a[::-1]), "float32",
                 uses=_BOTH, base=_grid, view=lambda a: a[::-1], holds=lambda i: i.layout == "negative", **_NEGATIVE),
        _np_case("fortran", "Fortran order, x.T / t.T", _viewed(_grid, lambda a: a.T), "float32", uses=_BOTH,
                 base=_grid, view=lambda a: a.T, holds=lambda i: i.layout in ("fortran", "strided"),
                 native={"torch": lambda: _torch_grid().T}),
        _np_case("readonly", "read-only memory (writeable=False)", _same(lambda: _readonly(_grid())), "float32",
                 uses=_BOTH, holds=lambda i: i.readonly, **_READONLY),
        _np_case("broadcast", "stride 0, np.broadcast_to / Tensor.expand", _viewed(_grid, _broadcast), "float32",
                 uses=_BOTH, base=_grid, view=_broadcast, holds=lambda i: i.layout in ("broadcast", "strided"),
                 native={"torch": lambda: _torch_grid()[0].expand(_N, _N)}, **_READONLY),
        _np_case("unaligned", "C-contiguous float32, 4 bytes past a 64-byte boundary",
                 _same(lambda: _grid(offset=4)), "float32", uses=_MATRIX,
                 holds=lambda i: i.layout == "contiguous" and i.dtype == "float32" and not i.flags),
        _np_case("big-endian", "big-endian float32 ('>f4')", _same(lambda: _grid(">f4")), "float32", uses=_MATRIX,
                 holds=lambda i: i.byteorder != "=", copy_to=_TORCH, why="byte order"),
        _np_case("bfloat16", "bfloat16 (ml_dtypes in NumPy)", _same(lambda: _grid("bfloat16")), "bfloat16",
                 uses=_BOTH, holds=lambda i: i.dtype == "bfloat16"),
        _np_case("int64", "C-contiguous int64", _same(_int64_grid), "int64", uses=_BOTH,
                 holds=lambda i: i.dtype == "int64"),
        _np_case("0-d", "0-d float64 array", _same(lambda: _placed(_np().array(-0.0))), "float64", uses=_BOTH,
                 holds=lambda i: i.shape == ()),
        _t_case("requires_grad", "torch tensor with requires_grad=True", _grad, "float32", uses=_MATRIX,
                holds=lambda i: "requires_grad" in i.flags),
        _t_case("conj", "torch complex64 tensor with the conjugate bit set", _conj, "complex64", uses=_MATRIX, holds=lambda i: "conj" in i.flags, copy_to=_NUMPY, why="conj"),
    ]


def _numpy_cases() -> list[Case]:
    kit_dtypes = {d for d in CORE_DTYPES if d != "int64"}  # int64 and bfloat16: the matrix's cases above
    out = [_np_case(d, f"C-contiguous {d} (3, 4), edge values", _same(_sampler(d, (3, 4))), d,
                    uses=_KIT if d in kit_dtypes else frozenset())
           for d in ALL_DTYPES if d not in ("int64", "bfloat16")]
    out += [
        _np_case("int64-extremes", "C-contiguous int64 (3, 4), extremes", _same(lambda: sample("int64", (3, 4))), "int64"),
        _np_case("bfloat16-edges", "C-contiguous bfloat16 (3, 4), edge values",
                 _same(lambda: sample("bfloat16", (3, 4))), "bfloat16"),
        _np_case("0d-int", "0-d int64, its minimum", _same(lambda: _np().array(_np().iinfo(_np().int64).min)), "int64"),
        _np_case("empty", "empty float32 (0, 3)", _same(lambda: _np().zeros((0, 3), dtype=_np().float32)), "float32",
                 uses=_KIT),
        _np_case("fortran-float64", "np.asfortranarray float64", _same(lambda: _np().asfortranarray(sample("float64", (3, 4)))),
                 "float64"),
        _np_case("fortran-complex", "np.asfortranarray complex64",
                 _same(lambda: _np().asfortranarray(sample("complex64", (2, 5)))), "complex64"),
        _np_case("slice", "x[::2, 1::2] int32", _same(lambda: sample("int32", (4, 6))[::2, 1::2]), "int32"),
        _np_case("slice-3d", "x[:, 1:3, ::2] float32", _same(lambda: sample("float32", (3, 4, 5))[:, 1:3, ::2]), "float32"),
        _np_case("transposed", "x.transpose(2, 0, 1) float32",
                 _same(lambda: sample("float32", (2, 3, 4)).transpose(2, 0, 1)), "float32"),
        # a writable stride-0 view: torch can hold it as it is
        _np_case("stride0-writable", "writable stride-0 float64 view",
                 _same(lambda: _np().lib.stride_tricks.as_strided(sample("float64", (4,)), (3, 4), (0, 8), writeable=True)),
                 "float64"),
        # torch takes misaligned real types as they are; its complex types assume alignment to the
        # whole element (a write into a misaligned complex128 tensor segfaults), so those are copied
        _np_case("misaligned-f4", "float32 at byte offset 1", lambda: _misaligned("float32", 6), "float32"),
        _np_case("misaligned-f8", "float64 at byte offset 1", lambda: _misaligned("float64", 5), "float64"),
        _np_case("misaligned-i2", "int16 at byte offset 1", lambda: _misaligned("int16", 5), "int16"),
        _np_case("misaligned-c8", "complex64 at byte offset 1", lambda: _misaligned("complex64", 3), "complex64",
                 copy_to=_TORCH, why="aligned"),
        _np_case("misaligned-c16", "complex128 at byte offset 1", lambda: _misaligned("complex128", 3), "complex128",
                 copy_to=_TORCH, why="aligned"),
        _np_case("c16-offset8", "complex128 at an 8-byte offset", _complex128_at_8, "complex128",
                 copy_to=_TORCH, why="aligned"),
        _np_case("c16-in-record", "complex128 field of a 24-byte record", _complex128_field, "complex128",
                 copy_to=_TORCH, why="aligned"),
        _np_case("negative-1d", "float64 x[::-1]", _same(lambda: sample("float64", (6,))[::-1]), "float64", **_NEGATIVE),
        _np_case("negative-2d", "int16 x[:, ::-1]", _viewed(lambda: sample("int16", (3, 4)), lambda a: a[:, ::-1]),
                 "int16", uses=_KIT, base=lambda: sample("int16", (3, 4)), view=lambda a: a[:, ::-1], **_NEGATIVE),
        _np_case("negative-step2", "complex64 x[::-1, ::-2]", _same(lambda: sample("complex64", (3, 8))[::-1, ::-2]),
                 "complex64", **_NEGATIVE),
        # NumPy flags it C-contiguous; torch still refuses the stride
        _np_case("negative-len1", "float32 (1, 4)[::-1]", _same(lambda: sample("float32", (1, 4))[::-1]), "float32",
                 **_NEGATIVE),
        _np_case("negative-len1-strided", "float64 x[::2, :1][:, ::-1]",
                 _same(lambda: sample("float64", (3, 4))[::2, :1][:, ::-1]), "float64", **_NEGATIVE),
        _np_case("readonly-strided", "read-only int32 x[::2]",
                 _viewed(lambda: sample("int32", (3, 4)), lambda a: a[::2], readonly=True), "int32", uses=_KIT,
                 **_READONLY),
        _np_case("readonly-fortran", "read-only Fortran-order int64",
                 _same(lambda: _readonly(_np().asfortranarray(sample("int64", (3, 4))))), "int64", **_READONLY),
        _np_case("readonly-negative", "read-only uint8 x[::-1]", _same(lambda: _readonly(sample("uint8", (5,)))[::-1]),
                 "uint8", risky=True, **_READONLY),
        _np_case("bf16-strided", "bfloat16 x[::2, ::3]", _same(lambda: sample("bfloat16", (4, 6))[::2, ::3]), "bfloat16"),
        _np_case("bf16-readonly", "read-only bfloat16", _same(lambda: _readonly(sample("bfloat16", (5,)))), "bfloat16",
                 **_READONLY),
        _np_case("bf16-negative", "bfloat16 x[::-1]", _same(lambda: sample("bfloat16", (5,))[::-1]), "bfloat16",
                 **_NEGATIVE),
    ]
    for d in ("float32", "int64", "complex128", "uint16", "float64"):
        out.append(_np_case(
            f"bigendian-{d}", f"big-endian {d}",
            _big_endian(d),
            d, copy_to=_TORCH, why="byte order"))
    out.append(_np_case(
        "bigendian-strided", "big-endian float32 x[::2, 1:]",
        lambda: (sample("float32", (4, 4)).astype(">f4")[::2, 1:], sample("float32", (4, 4))[::2, 1:]),
        "float32", copy_to=_TORCH, why="byte order"))
    return out


def _torch_cases() -> list[Case]:
    out = [_t_case(f"torch-{d}", f"torch {d} (3, 4), edge values", _tcase(_sampler(d, (3, 4))), d)
           for d in ALL_DTYPES]
    np = _np
    out += [
        _t_case("torch-0d", "0-d float32 tensor", _tcase(lambda: np().array(-0.0, dtype=np().float32)), "float32"),
        _t_case("torch-empty", "empty float64 tensor", _tcase(lambda: np().zeros((0, 3), dtype=np().float64)), "float64"),
        _t_case("torch-transposed", "t.t()", _tcase(lambda: sample("float64", (3, 4)), lambda t: t.t(), lambda a: a.T),
                "float64"),
        _t_case("torch-permuted", "t.permute(2, 0, 1)", _tcase(lambda: sample("int32", (2, 3, 4)),
                lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)), "int32"),
        _t_case("torch-slice", "t[::2, 1::2]", _tcase(lambda: sample("float32", (4, 6)), lambda t: t[::2, 1::2],
                lambda a: a[::2, 1::2]), "float32"),
        _t_case("torch-offset", "t[2:]", _tcase(lambda: sample("int64", (5,)), lambda t: t[2:], lambda a: a[2:]), "int64"),
        _t_case("torch-expand", "t.expand(3, 4)", _tcase(lambda: sample("float32", (4,)), lambda t: t.expand(3, 4),
                lambda a: np().broadcast_to(a, (3, 4))), "float32"),
        _t_case("torch-bf16-transposed", "bfloat16 t.t()", _tcase(lambda: sample("bfloat16", (3, 4)), lambda t: t.t(),
                lambda a: a.T), "bfloat16"),
        _t_case("torch-requires_grad-strided", "requires_grad, then [::2]", _tcase(lambda: sample("float64", (4, 4)),
                lambda t: t.requires_grad_()[::2], lambda a: a[::2]), "float64"),
        _t_case("torch-conj-edges", "complex64 (2, 3) edge values, conjugate bit",
                _tcase(lambda: sample("complex64", (2, 3)), lambda t: t.conj(), lambda a: a.conj()), "complex64",
                copy_to=_NUMPY, why="conj"),
        _t_case("torch-conj-requires_grad", "requires_grad, then conj()", _tcase(lambda: sample("complex128", (4,)),
                lambda t: t.requires_grad_().conj(), lambda a: a.conj()), "complex128", copy_to=_NUMPY, why="conj"),
        _t_case("torch-neg", "[1+2j, 3-4j].conj().imag (negative bit)",
                _tcase(lambda: np().array([1 + 2j, 3 - 4j], dtype=np().complex64), lambda t: t.conj().imag,
                       lambda a: -a.imag), "float32", copy_to=_NUMPY, why="neg"),
        _t_case("torch-neg-2d", "complex128 (2, 3) conj().imag", _tcase(lambda: sample("complex128", (2, 3)),
                lambda t: t.conj().imag, lambda a: -a.imag), "float64", copy_to=_NUMPY, why="neg"),
        _t_case("torch-misaligned", "float32 tensor at byte offset 1", _torch_misaligned, "float32"),
    ]
    return out


#: The catalogue: the matrix's rows first (in report order), then the NumPy and torch cases.
CASES: tuple[Case, ...] = tuple(_matrix_cases() + _numpy_cases() + _torch_cases())

_BY_NAME = {c.name: c for c in CASES}
assert len(_BY_NAME) == len(CASES), "case names must be unique"


def cases_for(use: str) -> tuple[Case, ...]:
    """The cases one consumer draws on, in catalogue order: ``"kit"`` or ``"matrix"``."""
    if use not in ("kit", "matrix"):
        raise ValueError(f"unknown consumer {use!r}: 'kit' or 'matrix' (arrayferry's own suite takes every case)")
    return tuple(c for c in CASES if use in c.uses)


def case_named(name: str) -> Case:
    """The case called ``name`` (``"negative"``, ``"torch-neg"``, ...); ``KeyError`` when none is."""
    return _BY_NAME[name]


# ------------------------------------------------------------------------------------------------
# an array-API namespace no plugin registers (a target for the matrix and the suite)


class NamespaceArray:
    """An array of :func:`array_api_namespace`: a NumPy array in a wrapper that offers only
    ``__dlpack__``/``__dlpack_device__`` and ``__array_namespace__`` (no registered framework)."""

    def __init__(self, a: Any, ns: Any) -> None:
        self.a = a
        self._ns = ns

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return self.a.__dlpack_device__()

    def __array_namespace__(self, api_version: str | None = None) -> Any:
        return self._ns

    def __repr__(self) -> str:
        return f"NamespaceArray({self.a!r})"


def _numpy_at_least(major: int, minor: int) -> bool:
    v = _np().__version__.split(".")
    return (int(v[0]), int(v[1])) >= (major, minor)


def np_asarray(obj: Any, copy: bool | None = None) -> Any:
    """``numpy.asarray(obj, copy=copy)`` with the array API (2023.12) ``copy=`` semantics on every
    supported NumPy: NumPy 2 has them; NumPy 1.x has no ``copy=`` keyword, so they are emulated
    (``copy=True``: ``numpy.array(obj, copy=True)``; ``copy=False``: ``numpy.asarray(obj)``, and
    ``ValueError`` where that had to allocate new memory, as NumPy 2 raises)."""
    np = _np()
    if _numpy_at_least(2, 0):
        return np.asarray(obj, copy=copy)
    if copy:
        return np.array(obj, copy=True)
    out = np.asarray(obj)
    if copy is False and out is not obj and out.flags.owndata:
        raise ValueError("Unable to avoid copy while creating an array as requested.")
    return out


def np_from_dlpack(x: Any, copy: bool | None = None) -> Any:
    """``numpy.from_dlpack(x, copy=copy)`` on every supported NumPy: before 2.1 ``from_dlpack``
    takes no ``copy=`` and always imports without copying, so ``copy=True`` copies the import."""
    np = _np()
    if _numpy_at_least(2, 1):
        return np.from_dlpack(x, copy=copy)
    out = np.from_dlpack(x)
    return out.copy() if copy else out


def array_api_namespace(name: str = "arrayferry_minixp") -> Any:
    """A small, real array-API namespace over NumPy that no plugin registers: a module ``name`` with
    the standard's dtype objects, ``asarray(obj, /, *, copy=None)`` and ``from_dlpack(x, /, *,
    copy=None)`` (the 2023.12 signatures, which honour ``copy=False``); its arrays are
    :class:`NamespaceArray`. ``arrayferry.convert(x, to=array_api_namespace())`` exercises the
    generic namespace target (``arrayferry matrix --sources`` converts into one)."""
    import types

    np = _np()
    m = types.ModuleType(name)
    m.__doc__ = "an array-API namespace over NumPy (arrayferry.testing.cases.array_api_namespace)"
    for d in CORE_DTYPES:
        setattr(m, d, np.dtype(d))

    def asarray(obj: Any, /, *, copy: bool | None = None) -> NamespaceArray:
        return NamespaceArray(np_asarray(obj.a if isinstance(obj, NamespaceArray) else obj, copy=copy), m)

    def from_dlpack(x: Any, /, *, copy: bool | None = None) -> NamespaceArray:
        return NamespaceArray(np_from_dlpack(x, copy=copy), m)

    m.asarray = asarray  # type: ignore[attr-defined]
    m.from_dlpack = from_dlpack  # type: ignore[attr-defined]
    return m
