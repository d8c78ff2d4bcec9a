"""Negotiation: build candidate routes, refuse those that break a constraint or the copy policy,
pick the cheapest, and cache the result per signature.

Three route kinds exist:

``native``
    source and target are the same framework: identity, or the framework's own cast/copy/move.
``host``
    the source exports a NumPy view of host memory (``__array__``/buffer protocol, or a native
    call such as ``Tensor.numpy()``), fix-ups that need a copy run once on that view (one
    ``np.array(..., copy=True)`` does byte swap, contiguity, cast and read-only at once), then the
    target aliases it (``torch.from_numpy`` ...). Device memory is staged through the host.
``dlpack``
    the target consumes the source's ``__dlpack__`` (the only zero-copy route between devices).

Costs: copies first, then device transfers, then the number of steps, then route preference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ._adapter import CPU, Adapter, ArrayInfo, Step, identity
from ._device import Device
from ._dtypes import ITEMSIZE, ML_DTYPES, is_narrowing, kind_of, numpy_dtype
from ._errors import (
    ArgumentError,
    ArrayFerryError,
    CopyRequiredError,
    DeviceError,
    LossyConversionError,
    LossyConversionWarning,
    UnsupportedDTypeError,
    format_message,
)
from ._hostops import host_copy_step

__all__ = ["Plan", "build_template", "Template"]

_ROUTE_ORDER = {"native": 0, "host": 1, "dlpack": 2, "cai": 3}


def _policy(copy: bool | None) -> str:
    return {None: "copy=None (alias when possible)", False: "copy=False (never copy)", True: "copy=True (always independent)"}[copy]


@dataclass(frozen=True)
class Template:
    """A plan without an array: what :func:`convert` caches per signature."""

    source: ArrayInfo
    target: str
    device: Device
    dtype: str
    copy: bool | None
    route: str
    steps: tuple[Step, ...]
    refused: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]
    run: Callable[[Any], Any]

    @property
    def zero_copy(self) -> bool:
        return not any(s.copies for s in self.steps)


class Plan:
    """A conversion plan: the steps, why, and what they cost. Nothing has moved yet.

    ``plan.zero_copy`` is True exactly when the result will share memory with the input.
    Call ``plan.execute(x)`` (or ``plan(x)``) to run it on ``x`` or any array with the same
    signature.
    """

    __slots__ = ("_t", "_key", "_adapter", "_stream")

    def __init__(self, template: Template, adapter: Adapter, key: Hashable, stream: Any = None) -> None:
        from ._cuda import parse_stream

        self._t = template
        self._adapter = adapter
        self._key = key
        self._stream = parse_stream(stream)

    @property
    def stream(self) -> Any:
        """The parsed ``stream=`` (a ``StreamSpec`` with the DLPack handle), or ``None``."""
        return self._stream

    # -- what the plan is ----------------------------------------------------------------------
    @property
    def zero_copy(self) -> bool:
        """True when the result shares memory with the input."""
        return self._t.zero_copy

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps in order; each has ``name``, ``description`` and ``copies``."""
        return self._t.steps

    @property
    def route(self) -> str:
        """``"native"``, ``"host"`` or ``"dlpack"``."""
        return self._t.route

    @property
    def refused(self) -> tuple[tuple[str, str], ...]:
        """Routes considered and not taken, with the reason."""
        return self._t.refused

    @property
    def notes(self) -> tuple[str, ...]:
        """Remarks such as a float narrowing the target forced."""
        return self._t.notes

    @property
    def source(self) -> ArrayInfo:
        """The description of the source array."""
        return self._t.source

    @property
    def target(self) -> str:
        return self._t.target

    @property
    def device(self) -> Device:
        return self._t.device

    @property
    def dtype(self) -> str:
        return self._t.dtype

    @property
    def copy(self) -> bool | None:
        return self._t.copy

    @property
    def copies(self) -> int:
        """How many steps copy the data."""
        return sum(1 for s in self._t.steps if s.copies)

    @property
    def nbytes_moved(self) -> int:
        """Bytes written by copying steps (an upper bound, from the source's shape)."""
        info = self._t.source
        total = 0
        n = info.size
        for s in self._t.steps:
            if s.copies:
                total += n * ITEMSIZE.get(self._t.dtype, info.itemsize or 1)
        return total

    def explain(self) -> str:
        """A readable account: every step, why, bytes moved, routes refused and why."""
        t = self._t
        lines = [
            f"Plan: {t.source.summary()}",
            f"  -> {t.target} on {t.device} as {t.dtype}, {_policy(t.copy)}",
            f"Route: {t.route}; {'zero-copy (the result shares memory with the input)' if self.zero_copy else f'{self.copies} copy step(s), about {_fmt_bytes(self.nbytes_moved)} written'}",
            "Steps:",
        ]
        if not t.steps:
            lines.append("  (none: the input is returned as it is)")
        for i, s in enumerate(t.steps, 1):
            tag = "copy, transfer" if s.transfer else ("copy" if s.copies else "no copy")
            lines.append(f"  {i}. {s.name} [{tag}]: {s.description}")
        if t.refused:
            lines.append("Routes not taken:")
            lines.extend(f"  - {r}: {why}" for r, why in t.refused)
        if t.notes:
            lines.append("Notes:")
            lines.extend(f"  - {n}" for n in t.notes)
        if self._stream is not None:
            lines.append(f"Stream: {self._stream}: device work runs on it and DLPack exports are ordered before it; "
                         "the result is safe to use on it (see docs/devices.md)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self._t.steps) or "identity"
        return f"<Plan {self._t.source.framework}->{self._t.target} route={self._t.route} zero_copy={self.zero_copy} steps=[{names}]>"

    def __str__(self) -> str:
        return self.explain()

    # -- running it ----------------------------------------------------------------------------
    def execute(self, x: Any) -> Any:
        """Run the plan on ``x``; ``x`` must have the signature the plan was made for."""
        try:
            sig = self._adapter.signature(x)
        except Exception as exc:
            raise ArrayFerryError(
                format_message(
                    f"This plan was made for {self._t.source.summary()}; it cannot run on {type(x).__qualname__}.",
                    [f"{self._adapter.name} could not describe the object: {exc!r}"],
                    hint="make a new plan with arrayferry.plan(x, ...)",
                )
            ) from exc
        if sig != self._key:
            raise ArrayFerryError(
                format_message(
                    f"This plan was made for {self._t.source.summary()}; the array given differs.",
                    [f"given: {self._adapter.describe(x).summary()}"],
                    hint="make a new plan with arrayferry.plan(x, ...)",
                )
            )
        if self._stream is not None:
            from ._cuda import using_stream

            with using_stream(self._stream):
                return run_template(self._t, x)
        return run_template(self._t, x)

    __call__ = execute


def run_template(t: Template, x: Any) -> Any:
    try:
        return t.run(x)
    except ArrayFerryError:
        raise
    except Exception as exc:
        raise failure(t, exc) from exc


def failure(t: Template, exc: Exception) -> Exception:
    """The error to raise when running ``t`` raised ``exc``: our own errors pass through, foreign
    ones become an :class:`ArrayFerryError` naming the route (the plan should have predicted them)."""
    if isinstance(exc, ArrayFerryError):
        return exc
    return ArrayFerryError(
        format_message(
            f"Converting {t.source.summary()} to {t.target} failed while running the {t.route} route.",
            [f"steps: {', '.join(s.name for s in t.steps) or 'identity'}", f"{type(exc).__name__}: {exc}"],
            hint="this is a bug in arrayferry or a plugin (the plan should have predicted it); please report it",
        )
    )


def _fmt_bytes(n: int) -> str:
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{int(v)} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{n} B"


def _compose(steps: list[Step]) -> Callable[[Any], Any]:
    fns = [s.fn for s in steps if s.fn is not identity]
    if not fns:
        return _identity
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f, g = fns

        def run2(x: Any) -> Any:
            return g(f(x))

        return run2

    def run(x: Any) -> Any:
        for fn in fns:
            x = fn(x)
        return x

    return run


def _identity(x: Any) -> Any:
    return x


# ------------------------------------------------------------------------------------------------
# the planner


class _Refusal(Exception):
    def __init__(self, reason: str, dtype_problem: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dtype_problem = dtype_problem


def resolve_device(info: ArrayInfo, tgt: Adapter, src: Adapter, device: Any) -> Device:
    if device is None:
        # the source's device, its kind, then wherever the target puts arrays by default
        # (the host for most; the current CUDA device for CuPy, which holds no host memory)
        cands = [info.device, Device(info.device.type), tgt.home_device]
        last: Exception | None = None
        first_device_error: Exception | None = None  # why a GPU candidate failed says more than "not cpu"
        for d in dict.fromkeys(cands):
            try:
                tgt.check_device(d)
                return d
            except DeviceError as exc:
                last = exc
                if not d.is_host and first_device_error is None:
                    first_device_error = exc
        assert last is not None
        raise first_device_error or last
    d = Device.parse(device)
    if d.index is None and d.type == info.device.type and info.device.index is not None:
        d = info.device  # "cuda" for an array already on a GPU means "stay on that GPU"
    tgt.check_device(d)
    return d


def build_template(
    src: Adapter, info: ArrayInfo, tgt: Adapter, device: Any, dtype: Any, copy: bool | None
) -> Template:
    """Plan the conversion of an array described by ``info`` (raises the right error if none)."""
    from ._dtypes import canonical_name

    if copy not in (None, True, False):
        raise ArgumentError(
            format_message(
                f"copy must be None, True or False; got {copy!r}.",
                ["None: alias when possible; False: never copy (CopyRequiredError); True: always independent memory"],
                hint="pass copy=None, copy=False or copy=True",
            )
        )
    from ._capabilities import check_min_version  # remembered per (framework, version): cheap

    check_min_version(src)
    if tgt is not src:
        check_min_version(tgt)
    if info.problem is not None:
        cls, msg = info.problem
        raise cls(msg)
    tdev = resolve_device(info, tgt, src, device)
    notes: list[str] = []
    if dtype is not None:
        tdt = canonical_name(dtype)
        if not tgt.supports_dtype(tdt, tdev):
            raise UnsupportedDTypeError(
                format_message(
                    f"{tgt.name} cannot hold {tdt} arrays on {tdev} (asked for with dtype=).",
                    [f"source: {info.summary()}"],
                    hint="choose another dtype",
                )
            )
    elif info.dtype not in ITEMSIZE:
        if src is not tgt:
            raise UnsupportedDTypeError(
                format_message(
                    f"Cannot convert a {info.framework} array of dtype {info.dtype} to {tgt.name}.",
                    ["only boolean, integer, floating and complex dtypes can cross frameworks "
                     "(object, string, structured, datetime and extended-precision dtypes cannot)"],
                    hint="convert the data to a numeric dtype first (e.g. x.astype('float64'))",
                )
            )
        tdt = info.dtype
    else:
        tdt = tgt.default_dtype_for(info.dtype, tdev)
        if tdt != info.dtype:
            if is_narrowing(info.dtype, tdt) and kind_of(info.dtype) in "iub":
                raise LossyConversionError(
                    format_message(
                        f"{tgt.name} on {tdev} cannot hold {info.dtype}; it would narrow to {tdt}, which can change values.",
                        [f"source: {info.summary()}"],
                        hint=f"pass dtype='{tdt}' to accept the narrowing, or enable 64-bit types in {tgt.name}",
                    )
                )
            notes.append(f"{tgt.name} cannot hold {info.dtype} on {tdev}: values are narrowed to {tdt} (a warning is raised)")
    explicit_cast = dtype is not None and tdt != info.dtype

    builders: list[tuple[str, Callable[[], list[Step]]]] = []
    if src is tgt:
        builders.append(("native", lambda: _native_route(src, info, tdev, tdt, copy, explicit_cast)))
    if src.host_export and tgt.host_import:
        builders.append(("host", lambda: _host_route(src, info, tgt, tdev, tdt, copy, explicit_cast)))
    if src.dlpack_export and tgt.dlpack_import:
        builders.append(("dlpack", lambda: _dlpack_route(src, info, tgt, tdev, tdt, copy, explicit_cast)))
    if src.cai_export and tgt.cai_import:
        builders.append(("cai", lambda: _dlpack_route(src, info, tgt, tdev, tdt, copy, explicit_cast, via="cai")))

    ok: list[tuple[tuple[int, int, int, int], str, list[Step]]] = []
    refused: list[tuple[str, str]] = []
    dtype_problems: list[str] = []
    for name, build in builders:
        try:
            steps = [s for s in build() if s.fn is not identity]
        except _Refusal as r:
            refused.append((name, r.reason))
            if r.dtype_problem:
                dtype_problems.append(r.reason)
            continue
        n_copy = sum(1 for s in steps if s.copies)
        if copy is False and n_copy:
            refused.append((name, "needs a copy: " + "; ".join(s.description for s in steps if s.copies)))
            continue
        cost = (n_copy, sum(1 for s in steps if s.transfer), len(steps), _ROUTE_ORDER[name] - tgt.priority)
        ok.append((cost, name, steps))

    asked = (
        f"Convert {info.summary()} to {tgt.name} on {tdev} as {tdt} with {_policy(copy)}."
    )
    if not ok:
        tried = [f"{r}: {why}" for r, why in refused] or ["no route connects these frameworks"]
        # A dtype problem on one route is the error unless copy=False is what blocked another route
        # (e.g. torch bf16 -> numpy without ml_dtypes: host lacks ml_dtypes, np.from_dlpack refuses bf16).
        copy_blocked = copy is False and any(why.startswith("needs a copy") for _, why in refused)
        if dtype_problems and not copy_blocked:
            raise UnsupportedDTypeError(format_message(asked, tried, hint=_dtype_hint(info.dtype, tdt)))
        if copy is False:
            if tdev != info.device and (not info.device.is_host or not tdev.is_host):
                where = "host memory" if info.device.is_host else f"device memory on {info.device}"
                tried.append(f"{where} cannot be aliased by {tgt.name} on {tdev}: moving between devices always copies")
            raise CopyRequiredError(
                format_message(asked, tried, hint="use copy=None to allow a copy when one is needed")
            )
        raise ArrayFerryError(format_message(asked, tried, hint="install a plugin that bridges these frameworks"))
    ok.sort(key=lambda c: c[0])
    best, route, steps = ok[0]
    for cost, other, osteps in ok[1:]:
        if cost[:3] == best[:3]:
            refused.append((other, f"works at the same cost ({_describe_cost(osteps)}); "
                                   f"the {route} route is preferred into {tgt.name}"))
        else:
            refused.append((other, f"works but costs more ({_describe_cost(osteps)})"))
    if notes and kind_of(info.dtype) in "fc" and tdt != info.dtype and dtype is None:
        steps = [*steps, _warn_step(notes[-1])]
    return Template(
        source=info,
        target=tgt.name,
        device=tdev,
        dtype=tdt,
        copy=copy,
        route=route,
        steps=tuple(steps),
        refused=tuple(refused),
        notes=tuple(notes),
        run=_compose(steps),
    )


def _dtype_hint(src: str, dst: str) -> str:
    if src in ML_DTYPES or dst in ML_DTYPES:
        return "pip install 'ml_dtypes>=0.4' (NumPy needs it for bfloat16 and float8 types)"
    return "pass dtype= with a type both frameworks support"


def _describe_cost(steps: list[Step]) -> str:
    n = sum(1 for s in steps if s.copies)
    return f"{n} copy step(s), {len(steps)} step(s)" if n else f"zero-copy in {len(steps)} step(s)"


def _warn_step(msg: str) -> Step:
    def warn(x: Any) -> Any:
        warnings.warn(msg, LossyConversionWarning, stacklevel=4)
        return x

    return Step("warn", "warn that floats were narrowed", warn)


def _mover(adapter: Adapter, device: Device) -> Callable[[Any], Any]:
    def move(x: Any) -> Any:
        return adapter.to_device(x, device)

    return move


def _cast_step(src: Adapter, s_dt: str, d_dt: str, check: bool) -> Step:
    if check and (kind_of(s_dt) in "fc" and kind_of(d_dt) in "iub" or kind_of(s_dt) == "c" and kind_of(d_dt) != "c"):
        def cast(x: Any) -> Any:
            src.check_cast(x, s_dt, d_dt)
            return src.cast(x, d_dt)
    else:
        def cast(x: Any) -> Any:
            return src.cast(x, d_dt)
    return Step("cast", f"cast {s_dt} to {d_dt} ({src.name})", cast, copies=True)


def _native_route(src: Adapter, info: ArrayInfo, tdev: Device, tdt: str, copy: bool | None, explicit_cast: bool) -> list[Step]:
    steps: list[Step] = []
    if tdev != info.device:
        steps.append(Step("to_device", f"move from {info.device} to {tdev} ({src.name})",
                          _mover(src, tdev), copies=True, transfer=True))
    if tdt != info.dtype:
        steps.append(_cast_step(src, info.dtype, tdt, explicit_cast))
    if copy and not steps:
        steps.append(Step("copy", f"copy ({src.name}), because copy=True", src.copy, copies=True))
    return steps


def _host_route(
    src: Adapter, info: ArrayInfo, tgt: Adapter, tdev: Device, tdt: str, copy: bool | None, explicit_cast: bool
) -> list[Step]:
    for name in (info.dtype, tdt):
        if name not in ITEMSIZE:  # structured, object, datetime ...: only the framework's own ops (native route)
            raise _Refusal(f"the host route carries canonical dtypes only, not {name}", dtype_problem=True)
        if name in ML_DTYPES:
            try:
                numpy_dtype(name)
            except UnsupportedDTypeError as exc:
                raise _Refusal(f"NumPy needs ml_dtypes for {name}, which is not installed ({exc.args[0].splitlines()[0]})", dtype_problem=True) from None
    steps = list(src.prepare(info))
    cur = info
    if steps:
        cur = cur.with_(flags=frozenset())
        if any(s.copies for s in steps):
            # fresh memory: ``extra`` (facts about the source's memory, from refine_key) no longer applies
            cur = cur.with_(layout="contiguous", readonly=False, aligned=True, extra=())
    if not cur.device.is_host:
        steps.append(Step("to_host", f"stage from {cur.device} into host memory ({src.name})", src.to_host,
                          copies=True, transfer=True))
        cur = cur.with_(device=CPU, layout="contiguous", readonly=False, aligned=True, extra=())
    hinfo = src.host_info(cur)
    if hinfo.problem is not None:
        raise _Refusal(hinfo.problem[1])
    steps.append(Step("export_host", f"view as NumPy without copying ({src.name})", src.host_exporter(hinfo)))
    if tdev.is_host:
        # the target's import lands directly on this host device (JAX has several CPU devices)
        hinfo = hinfo.with_(device=tdev)
    reasons = tgt.host_import_refusals(hinfo)
    if tdt != hinfo.dtype:
        reasons = [*reasons, f"cast {hinfo.dtype} to {tdt}"]
    copied_already = any(s.copies for s in steps)
    # an import that copies anyway (dask's from_array, JAX on unaligned memory) already gives
    # independent memory: copy=True must not add a second copy before it
    if copy and not copied_already and tdev.is_host and not reasons and not tgt.import_copies(hinfo):
        reasons.append("copy=True asks for independent memory")
    if reasons:
        steps.append(host_copy_step(hinfo.dtype, tdt, reasons, check_values=explicit_cast))
        hinfo = hinfo.with_(dtype=tdt, layout="contiguous", readonly=False, aligned=True, byteorder="=",
                            itemsize=ITEMSIZE.get(tdt, hinfo.itemsize), extra=())
        still = tgt.host_import_refusals(hinfo)
        if still:
            raise _Refusal("; ".join(still))
    again = tgt.import_copies(hinfo)
    steps.append(Step("import_host", f"{tgt.name} takes the NumPy memory " + (f"(copies: {again})" if again else "without copying"),
                      tgt.host_importer(hinfo), copies=bool(again),
                      # a copying import onto another host device (JAX cpu:3 -> cpu:1) is a transfer
                      transfer=bool(again) and tdev != cur.device))
    if not tdev.is_host:
        steps.append(Step("to_device", f"transfer from the host to {tdev} ({tgt.name})",
                          _mover(tgt, tdev), copies=True, transfer=True))
    return steps


def _dlpack_route(src: Adapter, info: ArrayInfo, tgt: Adapter, tdev: Device, tdt: str, copy: bool | None,
                  explicit_cast: bool, via: str = "dlpack") -> list[Step]:
    """The ``dlpack`` route, or with ``via="cai"`` the ``cai`` route (``__cuda_array_interface__``:
    device memory only, same device; adapters opt in with ``cai_export``/``cai_import`` and
    implement ``from_cai`` and ``cai_import_refusals``)."""
    if via == "cai":
        if info.device.is_host or tdev.is_host:
            raise _Refusal("__cuda_array_interface__ describes device memory; "
                           + ("the source is in host memory" if info.device.is_host else f"the target is on {tdev}"))
        if info.dtype in ML_DTYPES:
            raise _Refusal(f"__cuda_array_interface__ has no type string for {info.dtype}", dtype_problem=True)
    if info.dtype not in ITEMSIZE or tdt not in ITEMSIZE:
        raise _Refusal(f"DLPack has no type code for {info.dtype if info.dtype not in ITEMSIZE else tdt}", dtype_problem=True)
    if info.dtype in ML_DTYPES and info.dtype != "bfloat16":
        raise _Refusal(f"DLPack has no {info.dtype} type code", dtype_problem=True)
    if info.byteorder != "=":
        raise _Refusal("DLPack only carries native byte order")
    steps = list(src.prepare(info))
    cur = info
    if steps:
        cur = cur.with_(flags=frozenset())
        if any(s.copies for s in steps):
            cur = cur.with_(layout="contiguous", readonly=False, aligned=True, extra=())
    if tdt != cur.dtype:
        steps.append(_cast_step(src, cur.dtype, tdt, explicit_cast))
        cur = cur.with_(dtype=tdt, layout="contiguous", readonly=False, aligned=True, extra=())
    if cur.device != tdev and tdev.is_host and not cur.device.is_host:
        steps.append(Step("to_host", f"stage from {cur.device} into host memory ({src.name})", src.to_host,
                          copies=True, transfer=True))
        cur = cur.with_(device=CPU, layout="contiguous", readonly=False, aligned=True, extra=())
    import_refusals = tgt.cai_import_refusals if via == "cai" else tgt.dlpack_import_refusals
    refusals = import_refusals(cur)
    if refusals:
        if any(s.copies for s in steps):
            raise _Refusal("; ".join(refusals))
        steps.append(Step("copy", f"copy in {src.name} first ({'; '.join(refusals)})", src.copy, copies=True))
        cur = cur.with_(layout="contiguous", readonly=False, aligned=True, extra=())
        again = import_refusals(cur)
        if again:
            raise _Refusal(f"{'; '.join(refusals)} (and a copy first would not help: {'; '.join(again)})")
    if via == "cai":
        steps.append(Step("from_cai", f"{tgt.name} wraps the source's __cuda_array_interface__ without copying "
                          "(ordered after the producer's stream)", tgt.from_cai))
    else:
        steps.append(Step("from_dlpack", f"{tgt.name} consumes the DLPack capsule without copying", tgt.from_dlpack))
    if cur.device != tdev:
        steps.append(Step("to_device", f"transfer from {cur.device} to {tdev} ({tgt.name})",
                          _mover(tgt, tdev), copies=True, transfer=True))
    if copy and not any(s.copies for s in steps):
        steps.append(Step("copy", f"copy ({tgt.name}), because copy=True", tgt.copy, copies=True))
    return steps
