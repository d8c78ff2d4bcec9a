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
from typing import Any, NoReturn

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
from ._hostops import casting_refusal, check_mode, host_copy_step, parse_casting

__all__ = ["Plan", "build_template", "check_options", "Template", "failure", "raise_failure", "is_resource_error"]

_ROUTE_ORDER = {"native": 0, "host": 1, "dlpack": 2, "cai": 3}


def _casting_policy(casting: str | None) -> str:
    if casting is None:
        return "casting=None (values out of range raise)"
    if casting == "unsafe":
        return "casting='unsafe' (no value check)"
    if casting == "same_value":
        return "casting='same_value' (every value must survive exactly)"
    return f"casting={casting!r} (NumPy's dtype rule; values out of range raise)"


def _step_bytes(info: ArrayInfo, steps: tuple[Step, ...] | list[Step]) -> list[int]:
    n = info.size
    cur = info.dtype
    out = []
    for s in steps:
        if s.dtype is not None:
            cur = s.dtype
        out.append(n * ITEMSIZE.get(cur, info.itemsize or 1) if s.copies else 0)
    return out


def _policy(copy: bool | None) -> str:
    return {None: "copy=None (alias when possible)", False: "copy=False (never copy)", True: "copy=True (always independent)"}[copy]


@dataclass(frozen=True, init=False, repr=False, eq=False)  # methods written out: see _step.Step
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
    casting: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def __init__(self, source: ArrayInfo, target: str, device: Device, dtype: str, copy: bool | None, route: str,
                 steps: tuple[Step, ...], refused: tuple[tuple[str, str], ...], notes: tuple[str, ...],
                 run: Callable[[Any], Any], casting: str | None = None, options: tuple[tuple[str, Any], ...] = ()) -> None:
        _set = object.__setattr__
        _set(self, "source", source)
        _set(self, "target", target)
        _set(self, "device", device)
        _set(self, "dtype", dtype)
        _set(self, "copy", copy)
        _set(self, "route", route)
        _set(self, "steps", steps)
        _set(self, "refused", refused)
        _set(self, "notes", notes)
        _set(self, "run", run)
        _set(self, "casting", casting)
        _set(self, "options", options)

    def __repr__(self) -> str:
        return (f"{self.__class__.__qualname__}(source={self.source!r}, target={self.target!r}, device={self.device!r}, "
                f"dtype={self.dtype!r}, copy={self.copy!r}, route={self.route!r}, steps={self.steps!r}, "
                f"refused={self.refused!r}, notes={self.notes!r}, run={self.run!r}, casting={self.casting!r}, "
                f"options={self.options!r})")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return ((self.source, self.target, self.device, self.dtype, self.copy, self.route, self.steps, self.refused,
                     self.notes, self.run, self.casting, self.options)
                    == (other.source, other.target, other.device, other.dtype, other.copy,
                        other.route, other.steps, other.refused, other.notes, other.run,
                        other.casting, other.options))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.source, self.target, self.device, self.dtype, self.copy, self.route, self.steps, self.refused,
                     self.notes, self.run, self.casting, self.options))

    @property
    def zero_copy(self) -> bool:
        return not any(s.copies for s in self.steps)

    def step_bytes(self) -> list[int]:
        """Bytes each step writes (0 for steps that do not copy): an upper bound, from the source's
        shape and the dtype each step leaves the data in."""
        return _step_bytes(self.source, self.steps)


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
    def casting(self) -> str | None:
        """The casting policy (``None``: values out of the target's range raise)."""
        return self._t.casting

    @property
    def options(self) -> dict[str, Any]:
        """The target options the plan applies (``convert(x, "dask", chunks=...)``); empty when none."""
        return dict(self._t.options)

    @property
    def nbytes_moved(self) -> int:
        """Bytes written by copying steps: an upper bound of what every step writes, each copy
        counted at the itemsize of the dtype it writes (a cast after a copy, a staging copy
        before a cast ...), from the source's shape."""
        return sum(self._t.step_bytes())

    def explain(self) -> str:
        """A readable account: every step, why, bytes moved, routes refused and why."""
        t = self._t
        lines = [
            f"Plan: {t.source.summary()}",
            f"  -> {t.target} on {t.device} as {t.dtype}, {_policy(t.copy)}"
            + (f", {_casting_policy(t.casting)}" if t.dtype != t.source.dtype else "")
            + (f", options: {', '.join(f'{k}={v!r}' for k, v in t.options)}" if t.options else ""),
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
        raise_failure(t, exc, x)


_NOTHING: Any = object()


def describe_given(t: Template, x: Any) -> str:
    """A summary of the array ``x`` given to a (possibly cached) plan ``t``: its own shape and
    flags, never those of the array the plan was made for."""
    if x is _NOTHING:
        return t.source.summary()
    from ._registry import registry

    try:
        a = registry().adapter_named(t.source.framework)
        return a.describe(x).summary()
    except Exception:
        return f"{t.source.framework} {t.source.dtype} {getattr(x, 'shape', '?')}"


def raise_failure(t: Template, exc: Exception, x: Any = _NOTHING) -> NoReturn:
    """Raise :func:`failure`'s error for ``exc`` (``exc`` itself when it passes through)."""
    err = failure(t, exc, x)
    if err is exc:
        raise exc
    raise err from exc


def is_resource_error(exc: BaseException) -> bool:
    """True for running out of memory: ``MemoryError`` (NumPy's and CuPy's ``OutOfMemoryError``
    are ones), torch's ``OutOfMemoryError`` and CPU allocator failures (``RuntimeError``), XLA's
    ``RESOURCE_EXHAUSTED``."""
    if isinstance(exc, MemoryError):
        return True
    if any(c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc)
    low = text.lower()
    # XLA; torch's CPU allocator ("DefaultCPUAllocator: can't allocate memory"); CUDA allocators
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in low or "allocate memory" in low


def failure(t: Template, exc: Exception, x: Any = _NOTHING) -> Exception:
    """The error to raise when running ``t`` on ``x`` raised ``exc`` (``x`` is described from
    itself, never from the array a cached plan was made for).

    * arrayferry's own errors pass through;
    * running out of memory (:func:`is_resource_error`) passes through as the same exception, so
      ``except MemoryError`` (or ``torch.OutOfMemoryError``) still catches it, with the route
      added as a note (``add_note``);
    * an error raised by the caller's own computation that a step ran (an adapter marks it with
      ``exc.__arrayferry_passthrough__ = True`` and a note, as Dask's ``materialise`` does for
      the graph's tasks) passes through as it is;
    * CUDA itself missing or failing becomes a :class:`DeviceError`;
    * anything else is an :class:`ArrayFerryError` naming the route: the plan should have
      predicted it, so that one is a bug in arrayferry or a plugin.
    """
    if isinstance(exc, ArrayFerryError):
        return exc
    steps = ", ".join(s.name for s in t.steps) or "identity"
    if getattr(exc, "__arrayferry_passthrough__", False):
        # raised by the caller's own computation that a step ran (a dask graph): theirs, as it is
        return exc
    if is_resource_error(exc):
        note = (f"arrayferry: raised while converting {describe_given(t, x)} to {t.target} on {t.device} by the "
                f"{t.route} route (steps: {steps}; about {_fmt_bytes(sum(t.step_bytes()))} written by copying steps)")
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        return exc
    from ._cuda import device_error_from, is_cuda_error

    if is_cuda_error(exc):
        return device_error_from(
            exc, f"Converting {describe_given(t, x)} to {t.target} on {t.device} failed in CUDA ({t.route} route, steps: {steps}).",
            hint="check the GPU and its driver (nvidia-smi), or convert on the host (device='cpu')")
    return ArrayFerryError(
        format_message(
            f"Converting {describe_given(t, x)} to {t.target} failed while running the {t.route} route.",
            [f"steps: {steps}", f"{type(exc).__name__}: {exc}"],
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
        # "cuda" for an array already on a GPU means "stay on that GPU"; "cpu" for an array on JAX's
        # cpu:2 means "stay there" for a target with several host devices, the host for the others
        try:
            tgt.check_device(info.device)
            d = info.device
        except DeviceError:
            if not d.is_host:
                raise
    tgt.check_device(d)
    return d


def check_options(tgt: Adapter, options: Any, src: Adapter | None = None, also: Any = ()) -> None:
    """Raise :class:`ArgumentError` for a name in ``options`` that ``tgt`` does not declare as a
    target option (nor ``src`` as a source option, nor ``also`` names)."""
    sources = src.source_options if src is not None else {}
    unknown = [k for k in options if k not in tgt.target_options and k not in sources and k not in also]
    if not unknown:
        return
    takes = tgt.target_options
    listed = ([f"{tgt.name} takes: " + "; ".join(f"{k} ({d})" for k, d in takes.items())] if takes
              else [f"{tgt.name} takes no target options"])
    if src is not None:
        listed.append(f"{src.name} arrays take: " + "; ".join(f"{k} ({d})" for k, d in sources.items()) if sources
                      else f"{src.name} arrays take no source options")
    raise ArgumentError(
        format_message(
            f"Unknown target option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for {tgt.name} "
            f"(convert(x, {tgt.name!r}, {', '.join(f'{k}=...' for k in unknown)})).",
            listed,
            hint=(f"pass only {', '.join(takes)}" if takes else f"remove {', '.join(unknown)}: {tgt.name} takes only "
                  "device=, dtype=, copy=, stream= and casting=")
            + " (see docs/concepts.md, \"Target options\")",
        )
    )


def build_template(
    src: Adapter, info: ArrayInfo, tgt: Adapter, device: Any, dtype: Any, copy: bool | None,
    casting: str | None = None, options: tuple[tuple[str, Any], ...] = (),
) -> Template:
    """Plan the conversion of an array described by ``info`` (raises the right error if none).

    ``options`` (sorted ``(name, value)`` pairs) are the target options: each route's steps are
    passed through ``tgt.apply_options``.
    """
    from ._dtypes import canonical_name

    if options:
        check_options(tgt, dict(options), src)
    casting = parse_casting(casting)

    if copy not in (None, True, False):
        raise ArgumentError(
            format_message(
                f"copy must be None, True or False; got {copy!r}.",
                ["None: alias when possible; False: never copy (CopyRequiredError); True: always independent memory"],
                hint="pass copy=None, copy=False or copy=True",
            )
        )
    from ._versions import check_min_version  # remembered per (framework, version): cheap

    check_min_version(src)
    if tgt is not src:
        check_min_version(tgt)
    if info.problem is not None:
        cls, msg = info.problem
        # a DeviceError problem (torch's meta device) only forbids leaving that device: within the
        # framework, on the same device, the framework's own identity/cast/copy still apply
        if not (src is tgt and issubclass(cls, DeviceError) and (device is None or Device.parse(device) == info.device)):
            raise cls(msg)
        tdev = info.device
    else:
        if dtype is None and info.dtype not in ITEMSIZE and src is not tgt and not (src.numpy_dtypes and tgt.numpy_dtypes):
            # refused on every device: said before any device is resolved (a host without a GPU
            # would otherwise answer "no device" for an array that could never cross anyway)
            raise UnsupportedDTypeError(
                format_message(
                    f"Cannot convert a {info.framework} array of dtype {info.dtype} to {tgt.name}.",
                    ["only boolean, integer, floating and complex dtypes can cross frameworks "
                     "(object, string, structured, datetime and extended-precision dtypes cannot)"],
                    hint="convert the data to a numeric dtype first (e.g. x.astype('float64'))",
                )
            )
        tdev = resolve_device(info, tgt, src, device)
    notes: list[str] = []
    if dtype is not None:
        tdt = canonical_name(dtype)
        if not tgt.supports_dtype(tdt, tdev):
            raise UnsupportedDTypeError(
                format_message(
                    f"{tgt.name} cannot hold {tdt} arrays on {tdev} (asked for with dtype=).",
                    [f"source: {info.summary()}"],
                    hint=tgt.dtype_hint(tdt, tdev) or "choose another dtype",
                )
            )
    elif info.dtype not in ITEMSIZE:  # same framework, or two that hold every NumPy dtype (others refused above)
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
            notes.append(f"{tgt.name} cannot hold {info.dtype} on {tdev}: values are narrowed to {tdt} "
                         f"(LossyConversionWarning; dtype='{tdt}' narrows without one)")
            narrowing = format_message(
                f"{info.framework} {info.dtype} values were narrowed to {tdt} converting to {tgt.name}: "
                f"{tgt.name} cannot hold {info.dtype} on {tdev}, so values may have lost precision or range.",
                hint=f"pass dtype='{tdt}' to narrow on purpose (no warning), or enable 64-bit types in {tgt.name} "
                "to keep them",
            )
    cast_mode: str | None = None
    if tdt != info.dtype and info.dtype in ITEMSIZE:
        refusal = casting_refusal(info.dtype, tdt, casting)
        if refusal is not None:
            raise LossyConversionError(
                format_message(
                    f"Convert {info.summary()} to {tgt.name} as {tdt}: {refusal}.",
                    hint="pass casting=None (values checked) or casting='unsafe', or ask for another dtype=",
                )
            )
        cast_mode = check_mode(info.dtype, tdt, casting)
    explicit_cast = cast_mode

    builders: list[tuple[str, Callable[[], list[Step]]]] = []
    if src is tgt:
        builders.append(("native", lambda: _native_route(src, info, tdev, tdt, copy, explicit_cast)))
    if src.host_export and tgt.host_import:
        builders.append(("host", lambda: _host_route(src, info, tgt, tdev, tdt, copy, explicit_cast)))
    if src.dlpack_export and tgt.dlpack_import:
        builders.append(("dlpack", lambda: _dlpack_route(src, info, tgt, tdev, tdt, copy, explicit_cast)))
    if src.cai_export and tgt.cai_import:
        builders.append(("cai", lambda: _dlpack_route(src, info, tgt, tdev, tdt, copy, explicit_cast, via="cai")))

    ok: list[tuple[tuple[int, int, int, int, int], str, list[Step]]] = []
    refused: list[tuple[str, str]] = []
    dtype_problems: list[str] = []
    if options:
        out_info = ArrayInfo(framework=tgt.name, dtype=tdt, shape=info.shape, device=tdev, itemsize=ITEMSIZE.get(tdt, info.itemsize))
        opts = dict(options)
        builders = [(name, _with_options(build, tgt, opts, out_info)) for name, build in builders]
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
        moved = sum(b for b, s in zip(_step_bytes(info, steps), steps, strict=True) if s.transfer)
        cost = (n_copy, sum(1 for s in steps if s.transfer), moved, len(steps), _ROUTE_ORDER[name] - tgt.priority)
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
        if cost[:4] == best[:4]:
            refused.append((other, f"works at the same cost ({_describe_cost(osteps)}); "
                                   f"the {route} route is preferred into {tgt.name}"))
        else:
            refused.append((other, f"works but costs more ({_describe_cost(osteps)}{_copy_reasons(osteps)})"))
    if notes and kind_of(info.dtype) in "fc" and tdt != info.dtype and dtype is None:
        steps = [*steps, _warn_step(narrowing)]
    if tgt.immutable and copy is False and not info.readonly:
        notes.append(f"the result aliases writable memory, but {tgt.name} assumes its arrays never change: do not "
                     f"write to the source while the {tgt.name} array is in use (copy=None would copy it)")
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
        casting=casting,
        options=options,
    )


def _with_options(build: Callable[[], list[Step]], tgt: Adapter, opts: dict[str, Any],
                  out_info: ArrayInfo) -> Callable[[], list[Step]]:
    def built() -> list[Step]:
        return tgt.apply_options(build(), opts, out_info)

    return built


def _dtype_hint(src: str, dst: str) -> str:
    if src in ML_DTYPES or dst in ML_DTYPES:
        return "pip install 'ml_dtypes>=0.4' (NumPy needs it for bfloat16 and float8 types)"
    return "pass dtype= with a type both frameworks support"


def _describe_cost(steps: list[Step]) -> str:
    n = sum(1 for s in steps if s.copies)
    return f"{n} copy step(s), {len(steps)} step(s)" if n else f"zero-copy in {len(steps)} step(s)"


def _copy_reasons(steps: list[Step]) -> str:
    """``": why each copy"`` for the copy steps a costlier route would take (a capability answer such
    as "whether X exports read-only memory over DLPack is unknown" shows here), or ``""``."""
    why = [s.description for s in steps if s.copies]
    return ": " + "; ".join(why) if why else ""


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points ``warnings.warn``, called by our caller, at the first frame
    outside arrayferry and its plugins: the user's line, whatever path led here (``convert``,
    ``plan.execute``, ``convert_tree``, ``@accepts``, a plugin calling back into arrayferry)."""
    import sys

    frame = sys._getframe(1)  # the function that will call warnings.warn: stacklevel 1
    level = 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).startswith("arrayferry"):
        frame = frame.f_back
        level += 1
    return level


def _warn_step(msg: str) -> Step:
    def warn(x: Any) -> Any:
        warnings.warn(msg, LossyConversionWarning, stacklevel=_caller_stacklevel())
        return x

    return Step("warn", "warn that floats were narrowed", warn)


def _mover(adapter: Adapter, device: Device) -> Callable[[Any], Any]:
    def move(x: Any) -> Any:
        return adapter.to_device(x, device)

    return move


def _cast_refusal(ad: Adapter, s_dt: str, d_dt: str, device: Device, mode: str | None = "range") -> str | None:
    """Why ``ad`` cannot cast ``s_dt`` to ``d_dt`` on ``device`` exactly as NumPy does, or ``None``.
    ``mode=None`` (no value check, ``casting="unsafe"``) also asks about out-of-range values."""
    for name in (s_dt, d_dt):
        if not ad.supports_dtype(name, device):
            return f"{ad.name} cannot hold {name} on {device}" + (" (no 64-bit types)" if name in _X64 else "")
    why = ad.cast_differs(s_dt, d_dt, device)
    if why is None and mode is None:
        why = ad.cast_differs_unchecked(s_dt, d_dt, device)
    return None if why is None else f"{ad.name}'s cast differs from NumPy's: {why}"


_X64 = frozenset({"int64", "uint64", "float64", "complex128"})


def _cast_step(ad: Adapter, s_dt: str, d_dt: str, mode: str | None, where: str) -> Step:
    """A cast run by ``ad`` (after the value check ``mode`` asks for), guarded: a framework whose
    cast hands back another dtype (a no-op cast, an alias) raises instead of passing it on."""
    describe = ad.describe
    checked_cast = ad.checked_cast

    def cast(x: Any) -> Any:
        out = checked_cast(x, s_dt, d_dt, mode)
        got = describe(out).dtype
        if got != d_dt:
            raise ArrayFerryError(
                format_message(
                    f"{ad.name}'s cast of {describe(x).summary()} to {d_dt} returned {got}; the plan promised {d_dt} in fresh memory.",
                    hint="this is a bug in arrayferry or the plugin (supports_dtype/cast_differs should have said so); please report it",
                )
            )
        return out

    checked = {"range": ", values range-checked", "exact": ", every value checked to survive exactly"}.get(mode or "", "")
    return Step("cast", f"cast {s_dt} to {d_dt} in {ad.name} ({where}{checked})", cast, copies=True, dtype=d_dt)


def _native_route(src: Adapter, info: ArrayInfo, tdev: Device, tdt: str, copy: bool | None, mode: str | None) -> list[Step]:
    steps: list[Step] = []
    dev = info.device
    if tdt == info.dtype:
        if tdev != dev:
            steps.append(_move_step(src, dev, tdev, info.dtype))
        if copy and not steps:
            steps.append(Step("copy", f"copy ({src.name}), because copy=True", src.copy, copies=True))
        return steps
    here = _cast_refusal(src, info.dtype, tdt, dev, mode)
    if tdev == dev:
        if here is not None:
            raise _Refusal(f"{here}; the cast runs on the host instead")
        return [_cast_step(src, info.dtype, tdt, mode, f"on {dev}: {src.name} holds {tdt} and casts as NumPy does")]
    there = _cast_refusal(src, info.dtype, tdt, tdev, mode)
    narrowing = ITEMSIZE.get(tdt, 0) < ITEMSIZE.get(info.dtype, 0)
    holds_source_there = src.supports_dtype(info.dtype, tdev)
    if here is None and (narrowing or there is not None or not holds_source_there):
        why = ("narrowing before the move moves fewer bytes" if narrowing
               else f"{tdev} cannot hold {info.dtype}" if not holds_source_there else f"on {tdev}: {there}")
        return [_cast_step(src, info.dtype, tdt, mode, f"on {dev}, before the move: {why}"),
                _move_step(src, dev, tdev, tdt)]
    if there is None:
        return [_move_step(src, dev, tdev, info.dtype),
                _cast_step(src, info.dtype, tdt, mode, f"on {tdev}, after the move: widening after the move moves fewer bytes"
                           if not narrowing else f"on {tdev}: {here}")]
    raise _Refusal(f"{here}; the cast runs on the host instead")


def _move_step(ad: Adapter, dev: Device, tdev: Device, dtype: str) -> Step:
    return Step("to_device", f"move from {dev} to {tdev} ({ad.name})", _mover(ad, tdev), copies=True, transfer=True)


def _host_route(
    src: Adapter, info: ArrayInfo, tgt: Adapter, tdev: Device, tdt: str, copy: bool | None, mode: str | None
) -> list[Step]:
    for name in (info.dtype, tdt):
        if name not in ITEMSIZE and not (src is not tgt and src.numpy_dtypes and tgt.numpy_dtypes and name == info.dtype == tdt):
            # structured, object, datetime ...: only the framework's own ops (native route), or
            # the host route between frameworks that hold every NumPy dtype (NumPy, Dask)
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
    after_transfer = ""
    if not cur.device.is_host:
        why_not = (_cast_refusal(src, cur.dtype, tdt, cur.device, mode)
                   if tdt != cur.dtype and ITEMSIZE[tdt] < ITEMSIZE[cur.dtype] else "")
        if why_not:
            after_transfer = f" after the transfer, not on {cur.device} ({why_not})"
        if why_not is None:
            # narrow on the device, so that the transfer moves the smaller dtype
            steps.append(_cast_step(src, cur.dtype, tdt, mode,
                                    f"on {cur.device}, before the transfer to the host: narrowing first moves "
                                    f"{ITEMSIZE[tdt]}/{ITEMSIZE[cur.dtype]} of the bytes"))
            cur = cur.with_(dtype=tdt, itemsize=ITEMSIZE[tdt], layout="contiguous", readonly=False, aligned=True, extra=())
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
    # Bound for a device, the target's host import is only a stop before ``to_device``, which copies:
    # that transient alias of read-only memory is read once by the transfer and never handed out, so
    # read-only memory needs no host copy first (one copy in all, not two).
    transient_readonly = not tdev.is_host and hinfo.readonly
    reasons = tgt.host_import_refusals(hinfo.with_(readonly=False) if transient_readonly else hinfo)
    if tdt != hinfo.dtype:
        reasons = [*reasons, f"cast {hinfo.dtype} to {tdt} with NumPy{after_transfer}" + (
            "" if src is not tgt or after_transfer else f": {_cast_refusal(src, hinfo.dtype, tdt, info.device, mode) or 'exact'}")]
    copied_already = any(s.copies for s in steps)
    # an import that copies anyway (dask's from_array, JAX on unaligned memory) already gives
    # independent memory: copy=True must not add a second copy before it
    if copy and not copied_already and tdev.is_host and not reasons and not tgt.import_copies(hinfo):
        reasons.append("copy=True asks for independent memory")
    elif (_protect(tgt, hinfo, copy) and not copied_already and tdev.is_host and not reasons
          and not tgt.import_copies(hinfo)):
        reasons.append(_immutable_reason(tgt))
    if reasons:
        if hinfo.dtype not in ITEMSIZE:
            raise _Refusal(f"{tgt.name} needs a copy ({'; '.join(reasons)}), and the host copy carries canonical "
                           f"dtypes only, not {hinfo.dtype}", dtype_problem=True)
        steps.append(host_copy_step(hinfo.dtype, tdt, reasons, mode=mode if tdt != hinfo.dtype else None))
        hinfo = hinfo.with_(dtype=tdt, layout="contiguous", readonly=False, aligned=True, byteorder="=",
                            itemsize=ITEMSIZE.get(tdt, hinfo.itemsize), extra=(), flags=frozenset())
        still = tgt.host_import_refusals(hinfo)
        if still:
            raise _Refusal("; ".join(still))
    again = tgt.import_copies(hinfo)
    importer = tgt.host_importer(hinfo)
    if transient_readonly and hinfo.readonly:
        importer = _transient_import(importer)
    steps.append(Step("import_host", f"{tgt.name} takes the NumPy memory " + (f"(copies: {again})" if again else "without copying")
                      + ("; read-only memory is only read by the transfer that follows" if transient_readonly and hinfo.readonly else ""),
                      importer, copies=bool(again),
                      # a copying import onto another host device (JAX cpu:3 -> cpu:1) is a transfer
                      transfer=bool(again) and tdev != cur.device))
    if not tdev.is_host:
        steps.append(Step("to_device", f"transfer from the host to {tdev} ({tgt.name})",
                          _mover(tgt, tdev), copies=True, transfer=True))
    return steps


def _transient_import(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` with the frameworks' "not writable" warnings silenced: its result is a transient alias
    of read-only memory that the next step (a transfer to a device) only reads."""

    def import_readonly(a: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not writ", category=UserWarning)
            return fn(a)

    return import_readonly


def _dlpack_route(src: Adapter, info: ArrayInfo, tgt: Adapter, tdev: Device, tdt: str, copy: bool | None,
                  mode: str | None, via: str = "dlpack") -> list[Step]:
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
    late_cast: Step | None = None
    if tdt != cur.dtype:
        why_src = _cast_refusal(src, cur.dtype, tdt, cur.device, mode)
        if why_src is None:
            moving = cur.device != tdev
            steps.append(_cast_step(src, cur.dtype, tdt, mode, f"in the source on {cur.device}"
                                    + (", before the transfer" if moving and ITEMSIZE[tdt] <= ITEMSIZE[cur.dtype] else "")))
            cur = cur.with_(dtype=tdt, itemsize=ITEMSIZE[tdt], layout="contiguous", readonly=False, aligned=True, extra=())
        else:
            why_tgt = _cast_refusal(tgt, cur.dtype, tdt, tdev, mode)
            if why_tgt is not None:
                raise _Refusal(f"neither side casts {cur.dtype} to {tdt} as NumPy does ("
                               + "; ".join(dict.fromkeys((why_src, why_tgt))) + ")")
            late_cast = _cast_step(tgt, cur.dtype, tdt, mode, f"in the target on {tdev}: {why_src}")
    if cur.device != tdev and tdev.is_host and not cur.device.is_host:
        steps.append(Step("to_host", f"stage from {cur.device} into host memory ({src.name})", src.to_host,
                          copies=True, transfer=True))
        cur = cur.with_(device=CPU, layout="contiguous", readonly=False, aligned=True, extra=())
    import_refusals = tgt.cai_import_refusals if via == "cai" else tgt.dlpack_import_refusals
    refusals = import_refusals(cur)
    if "dlpack_refused" in cur.flags:  # the producer's __dlpack__ raised BufferError (NumPy < 2.1, read-only)
        refusals = ["its __dlpack__ refuses to export this memory (BufferError)", *refusals]
    if "odd_strides" in cur.flags:  # the producer's __dlpack__ raises BufferError
        refusals = ["DLPack counts strides in elements, and a stride of this array is not a multiple of "
                    "its itemsize", *(r for r in refusals if "itemsize" not in r)]
    if refusals:
        if any(s.copies for s in steps) or late_cast is not None:
            raise _Refusal("; ".join(refusals))
        steps.append(Step("copy", f"copy in {src.name} first ({'; '.join(refusals)})", src.copy, copies=True))
        cur = cur.with_(layout="contiguous", readonly=False, aligned=True, extra=(), flags=frozenset())
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
    if late_cast is not None:
        steps.append(late_cast)
    if copy and not any(s.copies for s in steps):
        steps.append(Step("copy", f"copy ({tgt.name}), because copy=True", tgt.copy, copies=True))
    elif _protect(tgt, cur, copy) and not any(s.copies for s in steps):
        steps.append(Step("copy", f"copy ({tgt.name}): {_immutable_reason(tgt)}", tgt.copy, copies=True))
    return steps


def _protect(tgt: Adapter, info: ArrayInfo, copy: bool | None) -> bool:
    """Whether ``copy=None`` must copy writable memory rather than hand it to an immutable target."""
    # (not size-dependent: the signature, which keys the plan cache, does not capture emptiness)
    return tgt.immutable and copy is None and not info.readonly


def _immutable_reason(tgt: Adapter) -> str:
    return (f"{tgt.name} arrays are immutable, and aliasing writable memory would let a later write to the "
            f"source change the {tgt.name} array; copy=False aliases it anyway, on your word that nothing writes it")
