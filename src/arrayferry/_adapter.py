"""The adapter protocol: what a framework plugin tells the planner, and the operations it runs.

An :class:`Adapter` describes one framework. The planner never calls a framework directly: it
asks adapters to *describe* an array (an :class:`ArrayInfo`), to say which routes they can take
part in and why they refuse others, and it composes their operations into a plan.

Rules every adapter follows (checked by the conformance kit, ``arrayferry.testing``):

* Creating an adapter imports nothing. ``owns`` is only called when ``module`` is already in
  ``sys.modules``; the other methods only when converting an array of that framework, or into it.
* ``describe`` and ``signature`` agree: two arrays with the same signature get the same plan,
  so the signature must capture everything ``describe`` reports except shape and strides' values.
* ``export_host`` never copies; ``import_host`` aliases its argument unless ``import_copies``
  said it would copy. Any fix-up that needs a copy is planned by the core as a separate step.
* A framework whose arrays are always writable (``readonly_capable = False``) must never be
  handed read-only memory to alias: list it in ``host_import_refusals``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType, ModuleType
from typing import Any, ClassVar

from ._device import Device
from ._errors import DeviceError, UnsupportedDTypeError, format_message
from ._step import Step, identity

__all__ = ["Adapter", "ArrayInfo", "Step", "CPU", "LAYOUTS", "ROUTE_METHODS", "identity", "check_protocol", "protocol_gaps", "WAYS_IN", "WAYS_OUT", "NPY_C_CONTIGUOUS", "NPY_F_CONTIGUOUS",
           "NPY_OWNDATA", "NPY_ALIGNED", "NPY_WRITEABLE"]


CPU = Device("cpu")
"""The host device, ``Device("cpu")``: ``ArrayInfo.device``'s default."""

_NO_FLAGS: frozenset[str] = frozenset()
_ODD = frozenset({"odd_strides"})
_ODD_UNIT = frozenset({"odd_unit_strides"})

LAYOUTS = ("contiguous", "fortran", "strided", "broadcast", "negative")
"""The values of ``ArrayInfo.layout``, from most to least convenient."""

# NumPy's array flag bits, as ``ndarray.flags.num`` reports them (NumPy's C API
# ``NPY_ARRAY_*``): reading one int is cheaper than four ``flags`` attribute lookups.
NPY_C_CONTIGUOUS = 0x1
"""``ndarray.flags.num`` bit: C-contiguous (``NPY_ARRAY_C_CONTIGUOUS``)."""
NPY_F_CONTIGUOUS = 0x2
"""``ndarray.flags.num`` bit: Fortran-contiguous (``NPY_ARRAY_F_CONTIGUOUS``)."""
NPY_OWNDATA = 0x4
"""``ndarray.flags.num`` bit: the array owns its memory (``NPY_ARRAY_OWNDATA``)."""
NPY_ALIGNED = 0x100
"""``ndarray.flags.num`` bit: every element is aligned for its dtype (``NPY_ARRAY_ALIGNED``)."""
NPY_WRITEABLE = 0x400
"""``ndarray.flags.num`` bit: writable (``NPY_ARRAY_WRITEABLE``); clear for read-only memory."""


ROUTE_METHODS: dict[str, tuple[str, ...]] = {
    "host_export": ("export_host", "host_exporter"),
    "host_import": ("import_host", "host_importer"),
    "dlpack_import": ("from_dlpack",),
    "cai_import": ("from_cai",),
}
"""Each route flag of :class:`Adapter` and the methods, any one of which implements it."""


def _declared(cls: type, flag: str) -> type | None:
    """The class below :class:`Adapter` in ``cls``'s MRO that sets ``flag`` by hand, or ``None``."""
    for klass in cls.__mro__:
        if klass is Adapter or klass is object:
            return None
        if flag in vars(klass) and flag not in vars(klass).get("_auto_routes", ()):
            return klass
    return None


def _overrides(cls: type, method: str) -> bool:
    """Whether ``cls`` (or a base below :class:`Adapter`) overrides ``Adapter.method``."""
    return getattr(cls, method, None) is not getattr(Adapter, method)


def unimplemented_routes(adapter: Adapter) -> list[tuple[str, tuple[str, ...]]]:
    """``(flag, methods)`` for each route ``adapter`` declares but implements by none of ``methods``."""
    cls = type(adapter)
    out = []
    for flag, methods in ROUTE_METHODS.items():
        if getattr(adapter, flag) and not any(
            getattr(cls, m, None) is not getattr(Adapter, m) or m in vars(adapter) for m in methods
        ):
            out.append((flag, methods))
    return out


#: The ways out of a framework and the ways in: an adapter needs at least one of each.
WAYS_OUT = ("host_export", "dlpack_export", "cai_export")
WAYS_IN = ("host_import", "dlpack_import", "cai_import")


def protocol_gaps(adapter: Adapter) -> list[str]:
    """What ``adapter`` lacks of the required protocol, one line each (empty: nothing).

    Required: a ``name`` and a ``module``; ``owns`` (which types are its arrays) and ``describe``
    (``signature`` defaults to one built from ``describe``); at least one way out (``host_export``,
    ``dlpack_export`` or ``cai_export``) and one way in (``host_import``, ``dlpack_import`` or
    ``cai_import``); and every route it declares implemented (:data:`ROUTE_METHODS`).
    """
    cls = type(adapter)
    gaps = []
    for attr, what in (("name", "the framework name users pass as to="),
                       ("module", "the top-level module whose import means arrays may exist")):
        value = getattr(adapter, attr, None)
        if not isinstance(value, str) or not value:
            gaps.append(f"required: {attr} ({what}) is {value!r}")
    for method, what in (("owns", "which types are this framework's arrays"),
                         ("describe", "an ArrayInfo for an array; signature defaults to one built from it")):
        if not (_overrides(cls, method) or method in vars(adapter)):
            gaps.append(f"required: {method} is not implemented ({what})")
    for ways, word in ((WAYS_OUT, "out"), (WAYS_IN, "in")):
        if not any(getattr(adapter, flag) for flag in ways):
            gaps.append(f"required: a way {word}: none of {', '.join(ways)} is offered "
                        f"(implement {' or '.join(ROUTE_METHODS[ways[0]])}, or opt in to a DLPack / CUDA array interface route)")
    for flag, methods in unimplemented_routes(adapter):
        need = methods[0] if len(methods) == 1 else " or ".join(methods)
        gaps.append(f"capability: {flag} = True, but {need} is not implemented (Adapter's default raises NotImplementedError)")
    if getattr(adapter, "target_options", None) and not _overrides(cls, "apply_options"):
        gaps.append(f"target_options: {', '.join(adapter.target_options)}, but apply_options is not implemented "
                    "(Adapter's default raises NotImplementedError)")
    if getattr(adapter, "source_options", None) and not _overrides(cls, "source_step"):
        gaps.append(f"source_options: {', '.join(adapter.source_options)}, but source_step is not implemented "
                    "(Adapter's default raises NotImplementedError)")
    return gaps


def check_protocol(adapter: Adapter, plugin: str) -> None:
    """Raise a several-line :class:`PluginError` naming everything ``adapter`` lacks of the protocol."""
    gaps = protocol_gaps(adapter)
    if not gaps:
        return
    from ._errors import PluginError

    name = getattr(adapter, "name", None)
    raise PluginError(
        format_message(
            f"Adapter {name!r} does not meet the adapter protocol.",
            [f"plugin: {plugin}", f"adapter: {type(adapter).__qualname__} (name {name!r})", *gaps],
            hint="implement what is listed (docs/plugins.md, \"The Adapter\"), or remove the route flags it "
            "names (unset, a route follows the methods the adapter overrides)",
        )
    )


@dataclass(frozen=True, init=False, repr=False, eq=False)  # methods written out: see _step.Step
class ArrayInfo:
    """What the planner knows about an array: everything a plan depends on.

    ``layout`` is one of ``"contiguous"`` (C order), ``"fortran"``, ``"strided"`` (positive
    strides, gaps), ``"broadcast"`` (some stride 0), ``"negative"`` (some stride < 0).
    ``flags`` holds framework states that a route must resolve: ``"requires_grad"``,
    ``"conj"``, ``"neg"``; and two memory facts (see :meth:`Adapter.stride_flags`):
    ``"odd_strides"`` (an axis longer than 1 has a stride that is not a multiple of the itemsize:
    DLPack cannot express it and only NumPy-backed arrays can hold it, so other targets need a
    copy) and ``"odd_unit_strides"`` (only length-1 axes, or axes of an empty array, have such strides: harmless, but an
    importer that checks every stride, such as ``torch.from_numpy``, must normalise them first). ``problem`` is set when the array cannot leave its framework at all
    (sparse, masked, meta ...): ``(error class, message)``.
    """

    framework: str
    dtype: str
    shape: tuple[int, ...]
    device: Device = CPU
    readonly: bool = False
    layout: str = "contiguous"
    byteorder: str = "="
    aligned: bool = True
    flags: frozenset[str] = _NO_FLAGS
    itemsize: int = 0
    problem: tuple[type[Exception], str] | None = None
    extra: tuple[tuple[str, Any], ...] = ()

    def __init__(self, framework: str, dtype: str, shape: tuple[int, ...], device: Device = CPU, readonly: bool = False,
                 layout: str = "contiguous", byteorder: str = "=", aligned: bool = True,
                 flags: frozenset[str] = _NO_FLAGS, itemsize: int = 0,
                 problem: tuple[type[Exception], str] | None = None, extra: tuple[tuple[str, Any], ...] = ()) -> None:
        _set = object.__setattr__
        _set(self, "framework", framework)
        _set(self, "dtype", dtype)
        _set(self, "shape", shape)
        _set(self, "device", device)
        _set(self, "readonly", readonly)
        _set(self, "layout", layout)
        _set(self, "byteorder", byteorder)
        _set(self, "aligned", aligned)
        _set(self, "flags", flags)
        _set(self, "itemsize", itemsize)
        _set(self, "problem", problem)
        _set(self, "extra", extra)

    def __repr__(self) -> str:
        return (f"{self.__class__.__qualname__}(framework={self.framework!r}, dtype={self.dtype!r}, shape={self.shape!r}, "
                f"device={self.device!r}, readonly={self.readonly!r}, layout={self.layout!r}, "
                f"byteorder={self.byteorder!r}, aligned={self.aligned!r}, flags={self.flags!r}, "
                f"itemsize={self.itemsize!r}, problem={self.problem!r}, extra={self.extra!r})")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return ((self.framework, self.dtype, self.shape, self.device, self.readonly, self.layout, self.byteorder,
                     self.aligned, self.flags, self.itemsize, self.problem, self.extra)
                    == (other.framework, other.dtype, other.shape, other.device, other.readonly,
                        other.layout, other.byteorder, other.aligned, other.flags, other.itemsize,
                        other.problem, other.extra))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.framework, self.dtype, self.shape, self.device, self.readonly, self.layout, self.byteorder,
                     self.aligned, self.flags, self.itemsize, self.problem, self.extra))

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    def with_(self, **changes: Any) -> ArrayInfo:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def summary(self) -> str:
        """One line: ``numpy float32 (3, 4) cpu, C-contiguous, writable``."""
        bits = [self.framework, self.dtype if self.byteorder == "=" else f"{self.dtype} ({'big' if self.byteorder == '>' else 'little'}-endian)",
                str(self.shape), str(self.device), self.layout,
                "read-only" if self.readonly else "writable"]
        if not self.aligned:
            bits.append("misaligned")
        bits.extend(sorted(self.flags))
        return " ".join(bits[:4]) + ", " + ", ".join(bits[4:])


class Adapter:
    """Base class for a framework adapter; subclass it in a plugin.

    Override what differs from the defaults below; every default documents itself.
    """

    #: Framework name used in ``convert(x, to=...)`` and ``framework_of``.
    name: str = ""
    #: Top-level module whose presence in ``sys.modules`` means arrays may exist.
    module: str = ""
    #: Other names accepted for ``to=``.
    aliases: tuple[str, ...] = ()
    #: Distribution name for the installed version (``importlib.metadata``).
    distribution: str | None = None
    #: Oldest supported version (checked with a clear message when the adapter is first used).
    min_version: str | None = None
    #: What hints tell users to type after ``pip install`` (quoted for the shell) to get a supported
    #: release of the framework; ``None`` means ``'<distribution>>=<min_version>'``.
    install_hint: str | None = None
    #: True when a zero-copy result can be made read-only or the framework never writes in place.
    readonly_capable: bool = False
    #: True when the framework's arrays are immutable by contract (JAX): an array aliasing memory
    #: that something else may write would change under it (undefined behaviour for JAX). With
    #: ``copy=None`` the planner then copies writable memory instead of aliasing it; read-only
    #: memory is still aliased, and ``copy=False`` aliases writable memory on the caller's word
    #: (the plan says so in its notes).
    immutable: bool = False
    #: True when the framework holds every NumPy dtype (datetime, string, object, structured ...)
    #: on the host, as NumPy and Dask do: such arrays may then cross the host route between two
    #: frameworks that both say so (the others hold the numeric dtypes only).
    numpy_dtypes: bool = False
    # Routes this adapter can take part in. The import and host-export flags, left unset, follow
    # what the subclass implements (``ROUTE_METHODS``); set to True without those methods, the
    # adapter is refused at registration with a PluginError naming what is missing; set to False,
    # the route is not offered even when implemented.
    #: The host route out (``export_host``): unset, True when the subclass overrides
    #: ``export_host`` or ``host_exporter``.
    host_export: bool = False
    #: The host route in (``import_host``): unset, True when the subclass overrides
    #: ``import_host`` or ``host_importer``.
    host_import: bool = False
    #: The arrays speak ``__dlpack__``: opt in (no adapter method implements it).
    dlpack_export: bool = False
    #: DLPack in (``from_dlpack``): unset, True when the subclass overrides ``from_dlpack``.
    dlpack_import: bool = False
    #: The arrays expose ``__cuda_array_interface__`` (v3), a second zero-copy route between CUDA
    #: frameworks: opt in.
    cai_export: bool = False
    #: ``__cuda_array_interface__`` in (``from_cai``): unset, True when the subclass overrides
    #: ``from_cai``.
    cai_import: bool = False
    #: Bigger is preferred among equally cheap routes into this framework.
    priority: int = 0
    #: Where results go when ``device=`` is not given and the source's device cannot hold them:
    #: the host for most frameworks; CuPy, which holds no host memory, says ``Device("cuda")``
    #: (the current CUDA device).
    home_device: Device = CPU
    #: True when plans into this framework depend on more than the source's signature
    #: (e.g. JAX aliases only 64-byte aligned memory); then ``refine_key`` is called per conversion.
    refines: bool = False
    #: The keyword options ``convert(x, to=<this framework>, **options)`` accepts, each name with a
    #: one-line description (shown when an unknown option is refused), e.g.
    #: ``{"chunks": "the dask chunks of the result ..."}``. An adapter that declares options
    #: implements :meth:`apply_options`; anything else passed to ``convert`` raises ``ArgumentError``.
    target_options: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: Values of each target option that the conformance kit (``arrayferry.testing``) converts with,
    #: to check the option is applied (the plan records it and changes, values survive bit for bit);
    #: every declared option needs at least one, e.g. ``{"chunks": ((2, 2), "auto", -1)}``.
    target_option_examples: ClassVar[Mapping[str, tuple[Any, ...]]] = MappingProxyType({})
    #: The keyword options ``convert(x, to, **options)`` accepts when ``x`` is this framework's
    #: array, whatever ``to`` is: how to read the source (Arrow's ``fill_null=``: what nulls
    #: become), each name with a one-line description. An adapter that declares them implements
    #: :meth:`source_step`. A name that is also a target option of ``to`` goes to the target.
    source_options: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: The module that is this framework's array-API namespace, importable without an array of it
    #: (``"array_api_compat.torch"``): what :func:`arrayferry.namespace_for` and ``@accepts``
    #: use when no array argument names the namespace. ``None``: none is known without an array.
    array_api_namespace: str | None = None
    #: The framework's DLPack consumer as ``"module:attribute.path"``, which the capability probe
    #: calls to see whether it asks producers for versioned capsules. ``None``:
    #: ``"<module>:from_dlpack"`` (nothing is probed when that does not exist).
    dlpack_consumer: str | None = None
    # route flags this class computed itself (unset by hand), so that a subclass recomputes them
    _auto_routes: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        auto = set()
        for flag, methods in ROUTE_METHODS.items():
            if _declared(cls, flag) is None:  # unset: the route follows what is implemented
                setattr(cls, flag, any(_overrides(cls, m) for m in methods))
                auto.add(flag)
        cls._auto_routes = frozenset(auto)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- identity ---------------------------------------------------------------------------
    def namespace(self) -> ModuleType:
        """Import and return the framework's module (only called when converting)."""
        mod = sys.modules.get(self.module)
        if mod is not None:
            return mod
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            from ._errors import UnknownFrameworkError

            raise UnknownFrameworkError(
                format_message(
                    f"Framework {self.name!r} is registered but its module {self.module!r} cannot be imported.",
                    [f"import {self.module} raised {type(exc).__name__}: {exc}"],
                    hint=self.install_command(),
                )
            ) from exc

    def install_command(self, upgrade: bool = False) -> str:
        """The pip command a hint gives to install (or upgrade to) a supported release of the framework."""
        req = self.install_hint
        if req is None:
            dist = self.distribution or self.module
            req = f"'{dist}>={self.min_version}'" if self.min_version else dist
        return f"pip install {'--upgrade ' if upgrade else ''}{req}"

    def is_installed(self) -> bool:
        """True when the framework could be imported (checked without importing it)."""
        if self.module in sys.modules:
            return True
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def version(self) -> str | None:
        """The installed version, or ``None``."""
        mod = sys.modules.get(self.module)
        v = getattr(mod, "__version__", None) if mod is not None else None
        if isinstance(v, str):
            return v
        try:
            from importlib.metadata import PackageNotFoundError, version

            return version(self.distribution or self.module)
        except (PackageNotFoundError, ValueError):
            return None

    def devices(self) -> list[Device]:
        """Devices this framework can place arrays on right now."""
        return [CPU]

    def native_call(self, source: str, target: str) -> tuple[str, Callable[[Any], Any]] | None:
        """The framework's own fastest call from ``source`` arrays to ``target`` ones, one of the two
        being this framework: ``(label, function)``, or ``None`` for no opinion.

        ``arrayferry matrix`` times it next to ``convert`` and checks its values, dtype and
        aliasing. The matrix asks the source's adapter first (a framework whose arrays need a step
        of their own, as Dask's ``compute()``), then the target's, then falls back to the target
        module's ``from_dlpack`` or ``asarray``. ``source == "object"`` asks for the call that reads
        any object no plugin owns (a list, a buffer, a ``__dlpack__`` object), for the matrix's
        ``--sources`` table; the fallback is the target module's ``asarray``. Called only by the
        matrix: it may import.
        """
        return None

    def direct_call(self, tp: type, source: str, target: str, device: Device | None = None,
                    ) -> Callable[[Any], Any] | None:
        """Optional, for the hot path: one call converting arrays of type ``tp`` (framework
        ``source``) to ``target`` under the default options (``convert(x, target)``: no
        ``dtype``, ``copy``, ``casting`` or target options) and ``device`` (``None``: none asked
        for; else the device asked for, e.g. the host when ``@accepts`` sends results back to a
        NumPy caller), one of the two frameworks being this one; ``None`` (the default) for none.

        The contract, which ``arrayferry.testing`` checks on every case of the catalogue: for
        every array of type ``tp`` the call either **raises** (any exception) or returns exactly
        what the planned route returns (the same type, dtype, shape, values and memory sharing,
        and no warning). The framework's own checks usually do most of it (``Tensor.numpy()``
        refuses CUDA, autograd, the conjugate and negative bits, sparse, nested and dtypes NumPy
        lacks: every tensor whose plan is another route); a cheap guard in front does the rest
        (``torch.from_numpy`` behind a test of NumPy's WRITEABLE and ALIGNED flags, since it
        aliases read-only memory writably).

        The plan cache calls it first, before reading the array's signature, and plans as usual
        when it raises; after 16 refusals under one options key and source type it is no
        longer tried (until the cache is cleared), so arrays it always refuses cost one
        refused call only a few times. ``plan()`` and ``explain()`` are unchanged: the direct
        call *is* the planned route of every array it accepts. Asked of the source's adapter,
        then the target's, once per options key and source type.
        """
        return None

    # -- detection and description -----------------------------------------------------------
    def owns(self, tp: type) -> bool:
        """Whether arrays of type ``tp`` belong to this framework (``self.module`` is imported)."""
        return False

    #: Optional, for the hot path: a callable without a Python frame (an ``operator.attrgetter``)
    #: whose key is looked up before ``signature`` is called. Where :meth:`fast_key_complete` says
    #: the key alone decides the signature, the plan cache keeps the signature's plan under the key
    #: too; for other keys ``signature`` is computed on every call, as without a fast key.
    fast_key: Callable[[Any], Hashable] | None = None

    def fast_key_complete(self, key: Any) -> bool:
        """Whether every array with this :attr:`fast_key` has the same :meth:`signature`."""
        return False

    def signature(self, x: Any) -> Hashable:
        """A cheap hashable key: arrays with equal keys get the same plan. Default: ``describe``."""
        info = self.describe(x)
        return (type(x), info.dtype, info.device, info.readonly, info.layout, info.byteorder,
                info.aligned, info.flags, info.problem)

    def describe(self, x: Any) -> ArrayInfo:
        """Describe ``x`` (dtype, shape, device, layout, read-only, flags)."""
        raise NotImplementedError

    def refine_key(self, source: Adapter, x: Any) -> tuple[tuple[str, Any], ...]:
        """Extra facts about ``x`` that plans into this framework depend on (``refines = True``).

        The result is stored as ``ArrayInfo.extra`` and keys the plan cache, e.g.
        ``(("aligned64", True),)`` computed from ``source.data_pointer(x)``. The planner clears
        ``extra`` (to ``()``) once a step has copied the data into fresh memory, since the facts no
        longer apply; host copies (``host_copy`` steps) are 64-byte aligned.
        """
        return ()

    def data_pointer(self, x: Any) -> int | None:
        """Address of ``x``'s first element, or ``None`` when unknown."""
        return None

    def device_of(self, x: Any) -> Device:
        """The device ``x`` lives on."""
        return self.describe(x).device

    def parse_device(self, obj: Any) -> Device | None:
        """This framework's device object as a :class:`Device`, or ``None`` if not recognised.

        The one way a framework's devices are read: ``device=`` and ``Device.parse`` ask each
        adapter whose module is imported, in turn (strings and ``Device`` never get here)."""
        return None

    def parse_dtype(self, obj: Any) -> str | None:
        """This framework's dtype object as a canonical name, or ``None``.

        The one way a framework's dtypes are read: ``dtype=`` asks each adapter whose module is
        imported, in turn (names, Python types and NumPy and torch dtypes never get here)."""
        return None

    # -- what the target can hold ------------------------------------------------------------
    def check_cast(self, x: Any, src: str, dst: str, mode: str = "range") -> None:
        """Raise :class:`LossyConversionError` if casting ``x`` from ``src`` to ``dst`` would change
        values the casting policy forbids: ``mode="range"`` (the default policy) refuses NaN or
        infinity to integers, values outside the target's range and non-zero imaginary parts to
        real types; ``mode="exact"`` (``casting="same_value"``) refuses any change. Default:
        checks through ``export_host`` on host arrays (see :mod:`arrayferry._hostops`)."""
        from ._hostops import check_cast_values

        if self.describe(x).device.is_host:
            check_cast_values(self.export_host(x), src, dst, mode=mode)

    def checked_cast(self, x: Any, src: str, dst: str, mode: str | None) -> Any:
        """``cast`` after ``check_cast`` (when ``mode`` is not ``None``); override to fuse the two."""
        if mode is not None:
            self.check_cast(x, src, dst, mode)
        return self.cast(x, dst)

    def cast_differs(self, src: str, dst: str, device: Device) -> str | None:
        """Why this framework's ``cast`` from ``src`` to ``dst`` on ``device`` can give other bits
        than NumPy's cast of the same values (rounding, flushed subnormals, NaN payloads, refused
        pairs), or ``None`` when it matches NumPy bit for bit. The planner then casts on the host
        (NumPy, with ml_dtypes) or in the other framework instead. Default: ``None``."""
        return None

    def cast_differs_unchecked(self, src: str, dst: str, device: Device) -> str | None:
        """Like :meth:`cast_differs`, for values the default casting policy refuses and
        ``casting="unsafe"`` lets through (NaN, infinity and out-of-range floats to integers,
        which C leaves undefined: frameworks differ from NumPy there). Default: ``None``."""
        return None

    def dtype_hint(self, dtype: str, device: Device) -> str | None:
        """A hint for when ``dtype`` is asked for and this framework cannot hold it on ``device``
        (e.g. JAX without x64: enable it, or ask for the 32-bit type); ``None`` for the generic one."""
        return None

    def check_device(self, device: Device) -> None:
        """Raise :class:`DeviceError` unless arrays can be placed on ``device`` now.

        Default: the host only, which has a single device (``"cpu:2"`` is refused rather than
        silently placed on ``"cpu"``).
        """
        if device.type == "cpu" and device.index is not None:
            raise DeviceError(
                format_message(
                    f"{self.name} has a single host device; device {str(device)!r} was asked for.",
                    hint="use device='cpu' (only JAX-style frameworks have several host devices)",
                )
            )
        if device.type != "cpu":
            raise DeviceError(
                format_message(
                    f"{self.name} arrays live on the host; device {str(device)!r} was asked for.",
                    hint="convert to a framework with device support (torch, cupy, jax) or use device='cpu'",
                )
            )

    def supports_dtype(self, dtype: str, device: Device) -> bool:
        """Whether this framework can hold ``dtype`` on ``device``."""
        return True

    def default_dtype_for(self, dtype: str, device: Device) -> str:
        """The dtype this framework stores ``dtype`` as when the user gives none.

        Return ``dtype`` itself when it is supported; a different name only when the framework
        cannot hold it (the planner then refuses integer narrowing and warns on float narrowing).
        """
        if self.supports_dtype(dtype, device):
            return dtype
        raise UnsupportedDTypeError(
            format_message(
                f"{self.name} cannot hold {dtype} arrays on {device}.",
                [f"{self.name}.supports_dtype({dtype!r}, {str(device)!r}) is False"],
                hint=f"pass dtype= with a type {self.name} supports, or convert to another framework",
            )
        )

    # -- routes ------------------------------------------------------------------------------
    def prepare(self, info: ArrayInfo) -> list[Step]:
        """Steps that make an array of this framework exportable (detach, resolve bits)."""
        return []

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        """Describe what ``export_host`` returns for an array described by ``info``."""
        return info.with_(framework="numpy")

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        """The function the plan calls to export arrays like ``info`` (default ``export_host``).

        Override to pick a specialised function once per signature instead of branching on
        every call (e.g. a bfloat16 reinterpreting view).
        """
        return self.export_host

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        """The function the plan calls to import NumPy arrays like ``info`` (default ``import_host``)."""
        return self.import_host

    def export_host(self, x: Any) -> Any:
        """A NumPy view of ``x``'s host memory, no copy; read-only when the memory is."""
        raise NotImplementedError

    def host_import_refusals(self, info: ArrayInfo) -> list[str]:
        """Reasons ``import_host`` cannot alias a NumPy array described by ``info``.

        For the import methods (``host_import_refusals``, ``import_copies``, ``host_importer``),
        ``info.device`` is the host device the result must land on (``cpu``, or ``cpu:N`` for a
        framework with several host devices such as JAX); the NumPy array itself is in host memory.
        """
        return []

    def import_copies(self, info: ArrayInfo) -> str | None:
        """If ``import_host`` copies this (already acceptable) array anyway, say why."""
        return None

    def import_host(self, arr: Any) -> Any:
        """A native array aliasing the NumPy array ``arr`` (on the CPU)."""
        raise NotImplementedError

    def dlpack_import_refusals(self, info: ArrayInfo) -> list[str]:
        """Reasons ``from_dlpack`` cannot alias an array described by ``info``."""
        return []

    def from_dlpack(self, x: Any) -> Any:
        """A native array aliasing ``x`` (any ``__dlpack__`` producer) on the same device."""
        raise NotImplementedError

    def cai_import_refusals(self, info: ArrayInfo) -> list[str]:
        """Reasons ``from_cai`` cannot alias an array described by ``info`` (``cai_import``)."""
        return []

    def from_cai(self, x: Any) -> Any:
        """A native array wrapping ``x.__cuda_array_interface__`` (same device, no copy)."""
        raise NotImplementedError

    def source_step(self, x: Any, options: Mapping[str, Any], info: ArrayInfo) -> tuple[Step, ArrayInfo]:
        """The step that applies source ``options`` (named in :attr:`source_options`) to arrays like
        ``x`` (described by ``info``), and the description of what it returns.

        The step runs first, on the source array, and returns an array of this framework that the
        rest of the plan (built from the returned description) converts: e.g. Arrow's
        ``fill_null`` returns an Arrow array without nulls (``info.with_(problem=None)``), a copy
        (``Step(..., copies=True)``, so ``copy=False`` refuses it). ``x`` is the array the plan is
        made for (validate values against it); a cached plan runs the step on other arrays with
        the same signature. Raise :class:`ArgumentError` (with a ``Hint:``) for a value that
        cannot be applied. Default: raises ``NotImplementedError`` (declare no source options).
        """
        raise NotImplementedError(f"{type(self).__qualname__} declares source_options but does not implement source_step")

    def apply_options(self, steps: list[Step], options: Mapping[str, Any], info: ArrayInfo) -> list[Step]:
        """The steps of a route into this framework, rewritten to honour ``options`` (target options).

        Called once per route the planner considers, only with options named in
        :attr:`target_options` (and at least one of them). ``steps`` ends with the step that makes
        this framework's array (``import_host``, ``from_dlpack``, a cast, or nothing for the
        identity); ``info`` describes the result (this framework, its dtype and device, and the
        shape of the array the plan is made for: a cached plan also runs on arrays of other
        shapes, so work that depends on the shape belongs in a step's function). Return the new
        list: replace the last step by one that takes the options (``dataclasses.replace``), or
        append a step that applies them. Raise :class:`ArgumentError` (with a ``Hint:``) for a value
        the framework cannot take. Default: raises ``NotImplementedError`` (declare no options).
        """
        raise NotImplementedError(f"{type(self).__qualname__} declares target_options but does not implement apply_options")

    # -- native operations -------------------------------------------------------------------
    def copy(self, x: Any) -> Any:
        """An independent copy of ``x``."""
        raise NotImplementedError

    def cast(self, x: Any, dtype: str) -> Any:
        """``x`` converted to ``dtype`` (a new array)."""
        raise NotImplementedError

    def to_host(self, x: Any) -> Any:
        """A copy of ``x`` in host memory, same framework."""
        raise NotImplementedError

    def to_device(self, x: Any, device: Device) -> Any:
        """A copy of the host array ``x`` on ``device``."""
        raise NotImplementedError

    # -- helpers for subclasses --------------------------------------------------------------
    @staticmethod
    def stride_flags(strides: tuple[int, ...], shape: tuple[int, ...], itemsize: int) -> frozenset[str]:
        """``{"odd_strides"}``, ``{"odd_unit_strides"}`` or nothing, from byte strides (see :class:`ArrayInfo`).

        A structured array's field (``a["i"]`` of ``[("i", "<i4"), ("c", "i1")]``, strides ``(5,)``)
        or an ``as_strided`` view can have strides that are not a multiple of the itemsize.
        """
        if itemsize <= 1:
            return _NO_FLAGS
        odd_unit = False
        empty = 0 in shape  # no stride of an empty array is ever used
        for s, n in zip(strides, shape, strict=True):
            if s % itemsize:
                if n > 1 and not empty:
                    return _ODD
                odd_unit = True
        return _ODD_UNIT if odd_unit else _NO_FLAGS

    @staticmethod
    def numpy_layout(strides: tuple[int, ...], shape: tuple[int, ...], c: bool, f: bool) -> str:
        """Layout class of a strided array (see :class:`ArrayInfo`)."""
        if c:
            return "contiguous"
        if f:
            return "fortran"
        if any(s < 0 for s in strides):  # torch refuses negative strides even on length-1 axes
            return "negative"
        if any(s == 0 for s, n in zip(strides, shape, strict=True) if n > 1):
            return "broadcast"
        return "strided"
