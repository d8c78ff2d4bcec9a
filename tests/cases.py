"""The case generator behind the conversion matrix (issue 2, "Behaviour the plan must get right").

Each :class:`Case` builds a *fresh* source array (NumPy or torch) together with the values it
must hold, computed with NumPy alone from the same raw data, so a test compares arrayferry's
result with an independent reference. ``copy_to`` names the targets that cannot alias the
source (a copy is needed even with ``copy=None``), and ``why`` is a word the plan's explanation
or the ``CopyRequiredError`` must use to say why.

Cases are data, not tests: ``tests/test_convert.py`` crosses them with the targets and copy
policies, ``tests/test_plan.py`` and the subprocess guard in ``conftest.py`` reuse them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ALL_DTYPES",
    "CORE_DTYPES",
    "Case",
    "ML_DTYPES",
    "NUMPY_CASES",
    "TORCH_CASES",
    "CASES",
    "TARGETS",
    "COPY_POLICIES",
    "case_by_id",
    "np_dtype",
    "sample",
]

TARGETS = ("numpy", "torch")
COPY_POLICIES = (None, False, True)

#: dtypes NumPy and torch share natively.
CORE_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
#: formats NumPy knows through ml_dtypes only; torch has them natively.
ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")
ALL_DTYPES = CORE_DTYPES + ML_DTYPES

_BITS = {"bfloat16": "int16", "float8_e4m3fn": "uint8", "float8_e5m2": "uint8"}


def np_dtype(name: str) -> np.dtype[Any]:
    """NumPy dtype for a canonical name (ml_dtypes for the extended formats)."""
    if name in ML_DTYPES:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


# A NaN with a non-default payload: copies must keep it bit for bit.
_NAN32_PAYLOAD = np.array([0x7FC00123], dtype=np.uint32).view(np.float32)[0]
_NAN64_PAYLOAD = np.array([0x7FF8000000000123], dtype=np.uint64).view(np.float64)[0]


def _float_values(name: str) -> list[Any]:
    vals: list[Any] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5, -2.25, 3.0e-3, 100.0]
    if name == "float32":
        vals.insert(1, _NAN32_PAYLOAD)
    if name == "float64":
        vals.insert(1, _NAN64_PAYLOAD)
        vals.append(1e300)
    return vals


def sample(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous array of ``shape`` holding the awkward values of dtype ``name``.

    Floats cycle through NaN (also with a payload), +-inf, -0.0 and ordinary values; integers
    through their extremes, 0 and -1; complex numbers mix them in both parts.
    """
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
    elif name in ML_DTYPES:
        flat = np.resize(np.array(_float_values("float32"), dtype=np.float32), n).astype(dt)
    else:
        flat = np.resize(np.array(_float_values(name), dtype=dt), n)
    return np.array(flat.reshape(shape), order="C", copy=True)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _misaligned(name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A view at byte offset 1 of a uint8 buffer, holding ``sample(name, (n,))``."""
    ref = sample(name, (n,))
    buf = np.zeros(ref.nbytes + 1, dtype=np.uint8)
    view = buf[1:].view(ref.dtype)
    view[...] = ref
    assert not view.flags.aligned or ref.dtype.itemsize == 1
    return view, ref


def _complex128_at_8() -> tuple[np.ndarray, np.ndarray]:
    """complex128 at an 8-byte offset: NumPy calls it aligned (to one float64), torch needs 16."""
    ref = sample("complex128", (4,))
    base = np.zeros(2 * ref.size + 1, dtype=np.float64)
    view = base[1:].view(np.complex128)
    view[...] = ref
    return view, ref


def _complex128_field() -> tuple[np.ndarray, np.ndarray]:
    """A complex128 field of a 24-byte record: stride 24, every other element 8 bytes off."""
    ref = sample("complex128", (4,))
    rec = np.zeros(4, dtype=[("a", "f8"), ("c", "c16")])
    rec["c"] = ref
    return rec["c"], ref


def _torch_from(ref: np.ndarray) -> Any:
    """A torch tensor holding ``ref``'s values in fresh memory (bits copied, ml_dtypes via ints)."""
    import torch

    name = ref.dtype.name
    if name in _BITS:
        return torch.from_numpy(ref.view(_BITS[name]).copy()).view(getattr(torch, name))
    return torch.from_numpy(ref.copy())


@dataclass(frozen=True)
class Case:
    """One source array of the matrix."""

    id: str
    source: str
    build: Callable[[], tuple[Any, np.ndarray]] = field(repr=False)
    #: targets that cannot alias this array (a copy even with copy=None)
    copy_to: frozenset[str] = frozenset()
    #: a word the explanation / CopyRequiredError uses for the reason of the copy
    why: str = ""
    #: negative strides: guarded by the subprocess check in conftest before running in-process
    risky: bool = False
    readonly: bool = False

    def make(self) -> tuple[Any, np.ndarray]:
        """A fresh ``(source array, reference values)`` pair."""
        return self.build()

    def needs_copy(self, target: str) -> bool:
        """True when converting to ``target`` must copy even with ``copy=None``."""
        return target in self.copy_to


def _np(id: str, build: Callable[[], tuple[Any, np.ndarray]], **kw: Any) -> Case:
    return Case(f"np-{id}", "numpy", build, **kw)


def _t(id: str, build: Callable[[], tuple[Any, np.ndarray]], **kw: Any) -> Case:
    return Case(f"torch-{id}", "torch", build, **kw)


def _same(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return a, a.copy()


_TORCH_ONLY = frozenset({"torch"})
_NUMPY_ONLY = frozenset({"numpy"})


def _numpy_cases() -> list[Case]:
    out = [_np(f"{d}", lambda d=d: _same(sample(d, (3, 4)))) for d in ALL_DTYPES]
    out += [
        _np("0d", lambda: _same(np.array(-0.0))),
        _np("0d-int", lambda: _same(np.array(np.iinfo(np.int64).min))),
        _np("empty", lambda: _same(np.zeros((0, 3), dtype=np.float32))),
        _np("fortran", lambda: _same(np.asfortranarray(sample("float64", (3, 4))))),
        _np("fortran-complex", lambda: _same(np.asfortranarray(sample("complex64", (2, 5))))),
        _np("slice", lambda: _same(sample("int32", (4, 6))[::2, 1::2])),
        _np("slice-3d", lambda: _same(sample("float32", (3, 4, 5))[:, 1:3, ::2])),
        _np("transposed", lambda: _same(sample("float32", (2, 3, 4)).transpose(2, 0, 1))),
        _np(
            "broadcast",  # np.broadcast_to is read-only: torch would alias it writable
            lambda: _same(np.broadcast_to(sample("float32", (4,)), (3, 4))),
            copy_to=_TORCH_ONLY, why="read-only", readonly=True,
        ),
        _np(
            "stride0-writable",  # a writable stride-0 view: torch can hold it as it is
            lambda: _same(np.lib.stride_tricks.as_strided(sample("float64", (4,)), (3, 4), (0, 8), writeable=True)),
        ),
        # torch takes misaligned real types as they are; its complex types assume alignment to the
        # whole element (a write into a misaligned complex128 tensor segfaults), so those are copied
        _np("misaligned-f4", lambda: _misaligned("float32", 6)),
        _np("misaligned-f8", lambda: _misaligned("float64", 5)),
        _np("misaligned-i2", lambda: _misaligned("int16", 5)),
        _np("misaligned-c8", lambda: _misaligned("complex64", 3), copy_to=_TORCH_ONLY, why="aligned"),
        _np("misaligned-c16", lambda: _misaligned("complex128", 3), copy_to=_TORCH_ONLY, why="aligned"),
        _np("c16-offset8", _complex128_at_8, copy_to=_TORCH_ONLY, why="aligned"),
        _np("c16-in-record", _complex128_field, copy_to=_TORCH_ONLY, why="aligned"),
        _np("negative", lambda: _same(sample("float64", (6,))[::-1]),
            copy_to=_TORCH_ONLY, why="negative strides", risky=True),
        _np("negative-2d", lambda: _same(sample("int16", (3, 4))[:, ::-1]),
            copy_to=_TORCH_ONLY, why="negative strides", risky=True),
        _np("negative-step2", lambda: _same(sample("complex64", (3, 8))[::-1, ::-2]),
            copy_to=_TORCH_ONLY, why="negative strides", risky=True),
        _np(
            "negative-len1",  # NumPy flags it C-contiguous; torch still refuses the stride
            lambda: _same(sample("float32", (1, 4))[::-1]),
            copy_to=_TORCH_ONLY, why="negative strides", risky=True,
        ),
        _np(
            "negative-len1-strided",
            lambda: _same(sample("float64", (3, 4))[::2, :1][:, ::-1]),
            copy_to=_TORCH_ONLY, why="negative strides", risky=True,
        ),
        _np("readonly", lambda: _same(_readonly(sample("float32", (3, 4)))),
            copy_to=_TORCH_ONLY, why="read-only", readonly=True),
        _np("readonly-fortran", lambda: _same(_readonly(np.asfortranarray(sample("int64", (3, 4))))),
            copy_to=_TORCH_ONLY, why="read-only", readonly=True),
        _np("readonly-negative", lambda: _same(_readonly(sample("uint8", (5,)))[::-1]),
            copy_to=_TORCH_ONLY, why="read-only", readonly=True, risky=True),
        _np("bf16-strided", lambda: _same(sample("bfloat16", (4, 6))[::2, ::3])),
        _np("bf16-readonly", lambda: _same(_readonly(sample("bfloat16", (5,)))),
            copy_to=_TORCH_ONLY, why="read-only", readonly=True),
        _np("bf16-negative", lambda: _same(sample("bfloat16", (5,))[::-1]),
            copy_to=_TORCH_ONLY, why="negative strides", risky=True),
    ]
    for d in ("float32", "int64", "complex128", "uint16", "float64"):
        out.append(
            _np(
                f"bigendian-{d}",
                lambda d=d: (sample(d, (2, 3)).astype(np.dtype(d).newbyteorder(">")), sample(d, (2, 3))),
                copy_to=_TORCH_ONLY, why="byte order",
            )
        )
    out.append(
        _np("bigendian-strided", lambda: (sample("float32", (4, 4)).astype(">f4")[::2, 1:], sample("float32", (4, 4))[::2, 1:]),
            copy_to=_TORCH_ONLY, why="byte order")
    )
    return out


def _tcase(ref_fn: Callable[[], np.ndarray], op: Callable[[Any], Any], ref_op: Callable[[np.ndarray], np.ndarray]
           ) -> Callable[[], tuple[Any, np.ndarray]]:
    def build() -> tuple[Any, np.ndarray]:
        data = ref_fn()
        return op(_torch_from(data)), np.array(ref_op(data), order="C", copy=True)

    return build


def _ident(x: Any) -> Any:
    return x


def _torch_cases() -> list[Case]:
    out = [_t(f"{d}", _tcase(lambda d=d: sample(d, (3, 4)), _ident, _ident)) for d in ALL_DTYPES]
    out += [
        _t("0d", _tcase(lambda: np.array(-0.0, dtype=np.float32), _ident, _ident)),
        _t("empty", _tcase(lambda: np.zeros((0, 3), dtype=np.float64), _ident, _ident)),
        _t("transposed", _tcase(lambda: sample("float64", (3, 4)), lambda t: t.t(), lambda a: a.T)),
        _t("permuted", _tcase(lambda: sample("int32", (2, 3, 4)), lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1))),
        _t("slice", _tcase(lambda: sample("float32", (4, 6)), lambda t: t[::2, 1::2], lambda a: a[::2, 1::2])),
        _t("offset", _tcase(lambda: sample("int64", (5,)), lambda t: t[2:], lambda a: a[2:])),
        _t("expand", _tcase(lambda: sample("float32", (4,)), lambda t: t.expand(3, 4), lambda a: np.broadcast_to(a, (3, 4)))),
        _t("bf16-transposed", _tcase(lambda: sample("bfloat16", (3, 4)), lambda t: t.t(), lambda a: a.T)),
        _t("requires_grad", _tcase(lambda: sample("float32", (3, 4)), lambda t: t.requires_grad_(), _ident)),
        _t("requires_grad-strided", _tcase(lambda: sample("float64", (4, 4)), lambda t: t.requires_grad_()[::2],
                                            lambda a: a[::2])),
        _t("conj", _tcase(lambda: sample("complex64", (2, 3)), lambda t: t.conj(), np.conj),
           copy_to=_NUMPY_ONLY, why="conj"),
        _t("conj-requires_grad", _tcase(lambda: sample("complex128", (4,)), lambda t: t.requires_grad_().conj(), np.conj),
           copy_to=_NUMPY_ONLY, why="conj"),
        _t("neg", _tcase(lambda: np.array([1 + 2j, 3 - 4j], dtype=np.complex64), lambda t: t.conj().imag,
                         lambda a: -a.imag),
           copy_to=_NUMPY_ONLY, why="neg"),
        _t("neg-2d", _tcase(lambda: sample("complex128", (2, 3)), lambda t: t.conj().imag, lambda a: -a.imag),
           copy_to=_NUMPY_ONLY, why="neg"),
    ]

    def misaligned() -> tuple[Any, np.ndarray]:
        import torch

        view, ref = _misaligned("float32", 6)
        return torch.from_numpy(view), ref

    out.append(_t("misaligned", misaligned))
    return out


NUMPY_CASES: tuple[Case, ...] = tuple(_numpy_cases())
TORCH_CASES: tuple[Case, ...] = tuple(_torch_cases())
CASES: tuple[Case, ...] = NUMPY_CASES + TORCH_CASES


def case_by_id(case_id: str) -> Case:
    """Look a case up by its id (``"np-negative"``, ``"torch-conj"``, ...)."""
    for c in CASES:
        if c.id == case_id:
            return c
    raise KeyError(case_id)
