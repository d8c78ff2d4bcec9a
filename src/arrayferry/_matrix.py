"""The conversion matrix behind ``arrayferry matrix``: routes, zero-copy and timings, as data.

For every ordered pair of installed frameworks and a set of typical cases (contiguous, strided,
negative stride, Fortran order, read-only, broadcast, big-endian, bfloat16, int64, 0-d, torch
``requires_grad`` and conjugate-bit tensors), :func:`run_matrix` records

* the route :func:`arrayferry.plan` chooses, whether it is zero-copy, its steps;
* whether :func:`arrayferry.convert` returned the right values and dtype (bit for bit) and shared
  memory exactly when the plan said so;
* the median time of ``convert`` and of the framework's own fastest call for that pair
  (``torch.from_numpy``, ``Tensor.numpy``, ``np.asarray``, ``jnp.asarray`` ...), or why the
  native call could not be timed: it raised, returned wrong values or a different dtype, handed
  out a writable alias of read-only memory or an immutable (JAX) array aliasing writable memory,
  or is known to abort the process (then it is not run).

Cases are built in NumPy and carried into the source framework with arrayferry itself, except
where the framework has a direct constructor for the case (torch: ``expand`` for broadcasting,
``requires_grad``, ``conj()``). A case the source framework cannot hold is reported as ``n/a``.

This module imports frameworks only when :func:`run_matrix` runs; formatting lives in
``arrayferry.cli``.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .testing.cases import Case, cases_for  # the one case catalogue; importing it imports no framework

__all__ = ["CASES", "SOURCE_CASES", "Case", "SourceCase", "SourceTarget", "MatrixResult", "Row", "native_call",
           "run_matrix", "source_targets", "usable_frameworks"]


# ------------------------------------------------------------------------------------------------
# cases: the matrix's rows of the one case catalogue (arrayferry.testing.cases)

CASES: tuple[Case, ...] = cases_for("matrix")


# ------------------------------------------------------------------------------------------------
# sources no plugin owns (``arrayferry matrix --sources``): each converted into every usable framework


def _np() -> Any:
    import numpy as np

    return np


def _base() -> Any:
    """The catalogue's (64, 64) float32 data (NaN, +-inf, -0.0 first), 64-byte aligned."""
    from .testing.cases import _grid

    return _grid()



class _DLPackOnly:
    """Only ``__dlpack__``/``__dlpack_device__``, forwarded to a NumPy array."""

    def __init__(self, a: Any) -> None:
        self._a = a

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return self._a.__dlpack_device__()


class _InterfaceOnly:
    """Only ``__array_interface__``, forwarded to a NumPy array."""

    def __init__(self, a: Any) -> None:
        self._a = a

    @property
    def __array_interface__(self) -> Any:
        return self._a.__array_interface__


class _ArrayOnly:
    """Only NumPy 2's ``__array__`` (shares when asked ``copy=False``), forwarded to a NumPy array."""

    def __init__(self, a: Any) -> None:
        self._a = a

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return self._a.copy() if copy else self._a


@dataclass(frozen=True)
class SourceCase:
    """An object no plugin owns: ``build()`` returns it, ``reference()`` the NumPy array it holds."""

    name: str
    description: str
    build: Callable[[], Any]
    reference: Callable[[Any], Any]


def _pandas_series() -> Any:
    import pandas as pd

    return pd.Series(_base()[0].astype("float64"))


def _xarray() -> Any:
    import xarray as xr

    return xr.DataArray(_base(), dims=("y", "x"))


SOURCE_CASES: tuple[SourceCase, ...] = (
    SourceCase("list", "nested list of Python floats (64, 64)", lambda: _base().astype("float64").tolist(),
               lambda x: _np().asarray(x)),
    SourceCase("float", "a Python float (-0.0)", lambda: -0.0, lambda x: _np().asarray(x)),
    SourceCase("numpy scalar", "numpy.float32(-0.0)", lambda: _np().float32(-0.0), lambda x: _np().asarray(x)),
    SourceCase("memoryview", "memoryview of C-contiguous float32 (64, 64)", lambda: memoryview(_base()),
               lambda x: _np().asarray(x)),
    SourceCase("bytes", "bytes (read-only uint8)", lambda: bytes(range(256)) * 16,
               lambda x: _np().frombuffer(x, dtype="uint8")),
    SourceCase("array.array", "array.array('d') of 4096 floats", lambda: __import__("array").array("d", _base().ravel().astype("float64")),
               lambda x: _np().asarray(memoryview(x))),
    SourceCase("__dlpack__", "an object with only __dlpack__ (float32 (64, 64))", lambda: _DLPackOnly(_base()),
               lambda x: _np().from_dlpack(x)),
    SourceCase("__array_interface__", "an object with only __array_interface__", lambda: _InterfaceOnly(_base()),
               lambda x: _np().asarray(x)),
    SourceCase("__array__", "an object with only __array__ (NumPy 2 protocol)", lambda: _ArrayOnly(_base()),
               lambda x: _np().asarray(x)),
    SourceCase("pandas Series", "pandas Series of float64 (64,)", _pandas_series, lambda x: x.to_numpy()),
    SourceCase("xarray DataArray", "xarray DataArray of float32 (64, 64)", _xarray, lambda x: x.values),
)


@dataclass(frozen=True)
class SourceTarget:
    """What ``--sources`` converts into: a registered framework by name, an example array of one
    (``to=y``: its framework and device), the array-API namespace of one (``array_api_compat``'s,
    which keeps the framework's adapter) or a namespace no plugin registers (the generic target)."""

    label: str  #: the row's ``target``: ``"torch"``, ``"like torch"``, ``"array_api_compat.torch"`` ...
    to: Any  #: what ``convert``'s ``to=`` gets
    kind: str  #: ``"framework"``, ``"example"``, ``"namespace"`` (a registered framework's) or ``"generic namespace"``
    native: tuple[str, Callable[[Any], Any]] | None  #: the target's own call that reads any object


def source_targets(names: Sequence[str]) -> list[SourceTarget]:
    """The targets ``--sources`` converts into, for the usable frameworks ``names``: each framework,
    an example array of each (a 1-element float32 array made by arrayferry), each one's
    ``array_api_compat`` namespace (when array_api_compat is installed and knows it), and
    :func:`arrayferry.testing.cases.array_api_namespace` (a namespace no plugin registers)."""
    import importlib.util

    import arrayferry as af

    from .testing.cases import array_api_namespace

    out = [SourceTarget(fw, fw, "framework", source_native_call(fw)) for fw in names]
    examples: list[tuple[str, Any]] = []
    for fw in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y = af.convert(_np().zeros(1, dtype="float32"), fw)
        except Exception:
            continue
        examples.append((fw, y))
        out.append(SourceTarget(f"like {fw}", y, "example", source_native_call(fw)))
    if importlib.util.find_spec("array_api_compat") is not None:
        import array_api_compat

        seen: set[str] = set()
        for fw, y in examples:
            try:
                ns = array_api_compat.array_namespace(y)
            except Exception:
                continue
            label = getattr(ns, "__name__", None) or f"{fw} namespace"
            if label in seen or label in names:
                continue
            seen.add(label)
            fn = getattr(ns, "asarray", None)
            out.append(SourceTarget(label, ns, "namespace", (f"{label}.asarray", fn) if callable(fn) else None))
    ns = array_api_namespace()
    out.append(SourceTarget(ns.__name__, ns, "generic namespace", (f"{ns.__name__}.asarray", ns.asarray)))
    return out


def _source_cell(case: SourceCase, tgt: SourceTarget, repeat: int) -> Row:
    import arrayferry as af

    from ._registry import registry

    try:
        x = case.build()
        ref = _np().ascontiguousarray(case.reference(x))
    except Exception as exc:
        return Row("?", tgt.label, case.name, status="n/a", reason=f"cannot build it here: {_first_line(exc)}")
    src = af.framework_of(x) or "?"
    row = Row(src, tgt.label, case.name, status="ok")
    try:
        p = af.plan(x, tgt.to)
    except af.ArrayFerryError as exc:
        row.status = "error" if type(exc) is af.ArrayFerryError else "refused"
        row.reason = _first_line(exc)
        return row
    row.route, row.zero_copy, row.steps = p.route, p.zero_copy, [s.name for s in p.steps]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = af.convert(x, tgt.to)
        except Exception as exc:
            row.status, row.reason = "error", _first_line(exc)
            return row
        expected = ref
        if p.dtype != p.source.dtype:
            from ._dtypes import numpy_dtype

            expected = ref.astype(numpy_dtype(p.dtype))
            row.reason = f"planned narrowing {p.source.dtype} -> {p.dtype} (warned)"
        diff = _same(expected, _to_numpy(out))
        if diff is None and tgt.kind != "generic namespace":
            want = registry().adapter_named(tgt.to)  # the framework's adapter must have made it
            if registry().adapter_for_type(type(out)) is not want:
                diff = f"the result is a {type(out).__module__}.{type(out).__qualname__}, not a {want.name} array"
        row.values_ok = diff is None
        if diff:
            row.reason = f"convert returned wrong data: {diff}"
        pin, pout = _pointer(x), _pointer(out)
        if pin is not None and pout is not None and p.source.size:
            row.plan_honest = (pin == pout) == p.zero_copy
        row.convert_us = time_call(lambda: af.convert(x, tgt.to), repeat) * 1e6
    _native(row, x, p.source, ref, p.target, repeat, nat=tgt.native)
    return row


def source_native_call(tgt: str) -> tuple[str, Callable[[Any], Any]] | None:
    """The target framework's own call that reads any object no plugin owns (a list, a buffer, a
    protocol object): its adapter's ``native_call("object", tgt)``, else the module's ``asarray``."""
    from ._registry import registry

    a = registry().adapter_named(tgt)
    found = a.native_call("object", tgt)
    if found is not None:
        return found
    mod = sys.modules.get(a.module)
    if mod is not None and hasattr(mod, "asarray"):
        return f"{tgt}.asarray", mod.asarray
    return None


# ------------------------------------------------------------------------------------------------
# native calls


def native_call(src: str, tgt: str) -> tuple[str, Callable[[Any], Any]] | None:
    """The framework's own fastest call from ``src`` arrays to ``tgt``: ``(label, function)``.

    Each adapter names its own (``Adapter.native_call``): the source's adapter is asked first,
    then the target's; otherwise the target module's ``from_dlpack``, else its ``asarray``.
    """
    from ._registry import registry

    reg = registry()
    for name in (src, tgt):
        found = reg.adapter_named(name).native_call(src, tgt)
        if found is not None:
            return found
    mod = sys.modules.get(reg.adapter_named(tgt).module)
    if mod is not None and hasattr(mod, "from_dlpack"):
        return f"{tgt}.from_dlpack", mod.from_dlpack
    if mod is not None and hasattr(mod, "asarray"):
        return f"{tgt}.asarray", mod.asarray
    return None


def _native_danger(src_info: Any, tgt: str, label: str) -> str | None:
    """Why a native call must not be run at all (it would abort the process)."""
    if tgt == "torch" and src_info.layout == "negative" and label != "torch.from_numpy":
        return "not run: torch's DLPack/asarray import of negative strides aborts the process (SIGABRT)"
    return None


# ------------------------------------------------------------------------------------------------
# results


@dataclass
class Row:
    """One cell of the matrix: (source, target, case)."""

    source: str
    target: str
    case: str
    #: ``"ok"``, ``"n/a"`` (the source cannot hold the case), ``"refused"`` (arrayferry refused on
    #: purpose with a typed error, e.g. LossyConversionError) or ``"error"`` (anything else raised)
    status: str
    reason: str | None = None
    route: str | None = None
    zero_copy: bool | None = None
    steps: list[str] = field(default_factory=list)
    #: convert's result matched the source bit for bit with the expected dtype
    values_ok: bool | None = None
    #: memory was shared exactly when the plan said so (``None``: no pointer to compare)
    plan_honest: bool | None = None
    convert_us: float | None = None
    native: str | None = None
    #: ``"ok"``, ``"fails"`` (raised), ``"wrong"`` (wrong values/dtype or unsafe alias),
    #: ``"not run"`` (known to abort the process) or ``"none"`` (no native call known)
    native_status: str | None = None
    native_note: str | None = None
    native_us: float | None = None

    @property
    def ratio(self) -> float | None:
        """``convert`` time over the native call's time."""
        if self.convert_us is None or not self.native_us:
            return None
        return self.convert_us / self.native_us

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


@dataclass
class MatrixResult:
    """Everything ``arrayferry matrix`` reports."""

    frameworks: dict[str, str | None]
    skipped: dict[str, str]
    cases: list[tuple[str, str]]
    rows: list[Row]
    repeat: int
    environment: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "frameworks": self.frameworks,
            "skipped": self.skipped,
            "cases": [{"name": n, "description": d} for n, d in self.cases],
            "repeat": self.repeat,
            "rows": [r.to_dict() for r in self.rows],
        }


# ------------------------------------------------------------------------------------------------
# running it


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def usable_frameworks(only: Sequence[str] | None = None) -> tuple[dict[str, str | None], dict[str, str]]:
    """Import the installed frameworks (or those named in ``only``) and try to make an array in each.

    :returns: ``({name: version}, {skipped name: reason})``.
    :raises arrayferry.UnknownFrameworkError: a name in ``only`` is not registered.
    """
    import numpy as np

    import arrayferry as af

    from ._registry import registry

    reg = registry()
    names = list(only) if only else sorted(reg.adapters)
    adapters = [reg.adapter_named(n) for n in names]  # raises UnknownFrameworkError
    usable: dict[str, str | None] = {}
    skipped: dict[str, str] = {}
    probe = np.arange(4, dtype=np.float32)
    for a in adapters:
        if a.name in usable or a.name in skipped:
            continue
        if not a.is_installed():
            skipped[a.name] = f"not installed ({a.install_command()})"
            continue
        try:
            a.namespace()
        except Exception as exc:
            skipped[a.name] = f"import {a.module} failed: {_first_line(exc.__cause__ or exc)}"
            continue
        if a.name != "numpy":
            try:
                af.convert(probe, a.name)
            except Exception as exc:
                skipped[a.name] = f"cannot create arrays here: {_first_line(exc)}"
                continue
        usable[a.name] = a.version()
    return usable, skipped


def _build(case: Case, fw: str) -> tuple[Any, str | None]:
    """The case as an array of ``fw``, or ``(None, reason)`` when ``fw`` cannot hold it."""
    import arrayferry as af

    from ._registry import registry

    try:
        if fw in case.native:
            x = case.native[fw]()
        elif fw == case.source:
            x = case.make()[0]
        elif case.source != "numpy":
            return None, f"only {case.source} arrays have this state"
        else:
            x = case.numpy()
            if fw != "numpy":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    x = af.convert(x, fw)
    except Exception as exc:
        return None, f"{fw} cannot hold it: {_first_line(exc)}"
    info = registry().adapter_named(fw).describe(x)
    if not case.holds(info):
        return None, f"{fw} cannot hold it (it becomes {info.summary()})"
    return x, None


def _unwrapped(x: Any) -> Any:
    """The NumPy array inside an array of the generic test namespace (a ``NamespaceArray`` offers
    only ``__dlpack__``, and NumPy < 2.1 exports no read-only array over DLPack); else ``x``."""
    from .testing.cases import NamespaceArray

    return x.a if type(x) is NamespaceArray else x


def _to_numpy(x: Any) -> Any:
    import numpy as np

    import arrayferry as af

    a = af.convert(_unwrapped(x), "numpy", copy=True)
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


def _same(ref: Any, got: Any) -> str | None:
    """``None`` when ``got`` holds exactly ``ref`` (dtype, shape, bytes); else what differs."""
    if ref.dtype != got.dtype:
        return f"dtype {ref.dtype} became {got.dtype}"
    if ref.shape != got.shape:
        return f"shape {ref.shape} became {got.shape}"
    if ref.tobytes() != got.tobytes():
        return "values differ"
    return None


def _pointer(x: Any) -> int | None:
    from ._registry import registry

    x = _unwrapped(x)
    reg = registry()
    a = reg.adapter_for_type(type(x)) or reg.protocol_adapter_for_type(type(x))
    if a is None:
        return None
    try:
        return a.data_pointer(x)
    except Exception:
        return None


def _readonly_of(x: Any) -> bool | None:
    from ._registry import registry

    x = _unwrapped(x)
    reg = registry()
    a = reg.adapter_for_type(type(x)) or reg.protocol_adapter_for_type(type(x))
    try:
        return bool(a.describe(x).readonly) if a is not None else None
    except Exception:
        return None


def time_call(fn: Callable[[], Any], repeat: int, budget: float = 2e-4) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` batches of at least ``budget`` seconds."""
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-8)
    number = max(1, min(20000, int(budget / one)))
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def _cell(src: str, tgt: str, case: Case, repeat: int) -> Row:
    import arrayferry as af

    from ._registry import registry

    row = Row(src, tgt, case.name, status="ok")
    x, why = _build(case, src)
    if x is None:
        row.status, row.reason = "n/a", why
        return row
    src_info = registry().adapter_named(src).describe(x)
    try:
        p = af.plan(x, tgt)
    except af.ArrayFerryError as exc:
        row.status = "error" if type(exc) is af.ArrayFerryError else "refused"
        row.reason = _first_line(exc)
        return row
    except Exception as exc:
        row.status, row.reason = "error", _first_line(exc)
        return row
    row.route, row.zero_copy, row.steps = p.route, p.zero_copy, [s.name for s in p.steps]
    ref = _to_numpy(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = af.convert(x, tgt)
        except Exception as exc:
            row.status, row.reason = "error", _first_line(exc)
            return row
        expected = ref
        if p.dtype != src_info.dtype:  # a narrowing the plan announced (e.g. JAX without x64)
            from ._dtypes import numpy_dtype

            expected = ref.astype(numpy_dtype(p.dtype))
            row.reason = f"planned narrowing {src_info.dtype} -> {p.dtype} (warned)"
        diff = _same(expected, _to_numpy(out))
        row.values_ok = diff is None
        if diff:
            row.reason = f"convert returned wrong data: {diff}"
        pin, pout = _pointer(x), _pointer(out)
        if pin is not None and pout is not None and src_info.size:
            row.plan_honest = (pin == pout) == p.zero_copy
        row.convert_us = time_call(lambda: af.convert(x, tgt), repeat) * 1e6
    _native(row, x, src_info, ref, tgt, repeat)
    return row


def _native(row: Row, x: Any, src_info: Any, ref: Any, tgt: str, repeat: int,
            nat: tuple[str, Callable[[Any], Any]] | None | bool = False) -> None:
    if nat is False:
        nat = native_call(row.source, tgt)
    assert nat is not True
    if nat is None:
        row.native_status, row.native_note = "none", "no native call known for this pair"
        return
    label, fn = nat
    row.native = label
    danger = _native_danger(src_info, tgt, label)
    if danger:
        row.native_status, row.native_note = "not run", danger
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn(x)
            got = _to_numpy(out)
        except Exception as exc:
            row.native_status, row.native_note = "fails", _first_line(exc)
            return
    diff = _same(ref, got)
    if diff:
        row.native_status, row.native_note = "wrong", f"wrong result: {diff}"
        return
    if src_info.readonly and _pointer(out) is not None and _pointer(out) == _pointer(x) and _readonly_of(out) is False:
        row.native_status, row.native_note = "wrong", "unsafe: writable alias of read-only memory"
        return
    from ._errors import ArrayFerryError
    from ._registry import registry

    try:
        immutable = registry().adapter_named(tgt).immutable
    except ArrayFerryError:  # a namespace no plugin registers (its arrays' mutability is unknown)
        immutable = False
    if (immutable and not src_info.readonly and src_info.size
            and _pointer(out) is not None and _pointer(out) == _pointer(x)):
        row.native_status, row.native_note = "wrong", (
            f"unsafe: an immutable {tgt} array aliasing writable memory (a later write to the source changes it)")
        return
    row.native_status = "ok"
    if caught:
        row.native_note = f"warns: {str(caught[0].message).splitlines()[0][:80]}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row.native_us = time_call(lambda: fn(x), repeat) * 1e6


def run_matrix(
    frameworks: Sequence[str] | None = None,
    *,
    cases: Sequence[str] | None = None,
    repeat: int = 5,
    progress: Callable[[str], None] | None = None,
    sources: bool = False,
) -> MatrixResult:
    """Run the matrix over every ordered pair of usable frameworks.

    :param frameworks: names to restrict to (default: every installed, registered framework).
    :param cases: case names to restrict to (default: all of :data:`CASES`).
    :param repeat: timing batches per measurement (the median is reported).
    :param progress: called with a short text before each pair.
    :param sources: also convert each of :data:`SOURCE_CASES` (objects no plugin owns: lists,
        scalars, buffers, protocol objects, pandas and xarray) into every usable framework; their
        rows name the protocol as the source (``"buffer"``, ``"python"`` ...). ``cases`` may then
        name source cases too.
    :raises arrayferry.UnknownFrameworkError: an unknown framework name.
    :raises ValueError: an unknown case name.
    """
    import platform

    import arrayferry as af

    chosen = list(CASES)
    chosen_sources = list(SOURCE_CASES) if sources else []
    if cases:
        known = {c.name: c for c in CASES}
        known_sources = {c.name: c for c in SOURCE_CASES} if sources else {}
        bad = [c for c in cases if c not in known and c not in known_sources]
        if bad:
            raise ValueError(f"unknown case(s) {', '.join(bad)}; known: {', '.join([*known, *known_sources])}\n"
                             f"Hint: choose cases from the known ones, e.g. cases=['contiguous', 'strided']")
        chosen = [known[c] for c in cases if c in known]
        chosen_sources = [known_sources[c] for c in cases if c in known_sources]
    usable, skipped = usable_frameworks(frameworks)
    names = list(usable)
    rows: list[Row] = []
    for src in names:
        for tgt in names:
            if src == tgt:
                continue
            if progress:
                progress(f"{src} -> {tgt}")
            for case in chosen:
                rows.append(_cell(src, tgt, case, repeat))
    for target in source_targets(names) if chosen_sources else ():
        if progress:
            progress(f"sources no plugin owns -> {target.label}")
        for scase in chosen_sources:
            rows.append(_source_cell(scase, target, repeat))
    env = {
        "arrayferry": af.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(_cpu_count()),
    }
    described = [(c.name, c.description) for c in chosen] + [(c.name, c.description) for c in chosen_sources]
    return MatrixResult(usable, skipped, described, rows, repeat, env)


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
