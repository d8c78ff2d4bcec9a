"""What each installed framework version does with DLPack, probed: the answers the planner uses.

Read-only memory may cross DLPack only in a versioned capsule carrying the read-only flag, and
releases differ: NumPy 1.26 exports legacy capsules only, NumPy 2.x versioned ones with the flag;
torch's ``from_dlpack`` asks for versioned capsules, JAX's for legacy ones. Rather than
hard-coding "is this NumPy 2?", the planner asks :func:`dlpack_readonly_reason`, which reads
:func:`capabilities`. Nothing else is probed: an answer no decision reads is not kept.

Rules:

* Nothing is probed at import. A framework is probed the first time an answer is needed, and
  the answer is cached per ``(framework, version)``: upgrading a framework in a running process
  (rare, but tests do it in subprocesses) gives a fresh probe.
* Each answer is ``True`` (yes), ``False`` (no) or ``None`` (unknown: not probed, or the probe
  failed for a reason that shows nothing). Producer answers come from a real array of that
  framework (one its adapter ``owns``, made by ``import_host`` of a 2-element NumPy array): a
  device-only framework (CuPy) whose ``import_host`` hands back NumPy memory is moved to its
  ``home_device`` first, and without a device its answers stay unknown instead of describing
  NumPy.
* A probe never raises: what could not be shown stays ``None`` and the exception text is kept
  in :attr:`Capabilities.errors`. ``dlpack_readonly_reason`` refuses on an unknown export or
  request answer, saying the answer is unknown.
* Tests read and override the cache: :func:`cached`, :func:`set_capabilities`,
  :func:`override` (a context manager) and :func:`clear`.

:func:`check_min_version` (in :mod:`arrayferry._versions`, re-exported here) is the run-time half
of the supported-versions contract: the first time an adapter is used, an installed framework
older than ``Adapter.min_version`` is refused with :class:`~arrayferry.UnknownFrameworkError` and
a hint to upgrade.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ._versions import check_min_version, parse_version

if TYPE_CHECKING:
    from ._adapter import Adapter

__all__ = [
    "Capabilities",
    "capabilities",
    "cached",
    "check_min_version",
    "clear",
    "dlpack_readonly_reason",
    "override",
    "parse_version",
    "set_capabilities",
]

#: DLPack's flag bit for read-only memory (``DLPACK_FLAG_BITMASK_READ_ONLY``), versioned capsules only.
DLPACK_FLAG_READ_ONLY = 1

@dataclass(frozen=True)
class Capabilities:
    """What one framework version does with DLPack, as probed: only the answers a decision uses.

    ``readonly_export``: its arrays can leave over DLPack read-only, flagged as such (a versioned
    capsule with the read-only bit); ``requests_versioned``: its ``from_dlpack`` asks producers
    for a versioned capsule (it passes ``max_version``), the only kind that carries the flag;
    ``readonly_import``: a capsule flagged read-only gives a read-only result. Together they
    decide whether read-only memory may cross DLPack (:func:`dlpack_readonly_reason`, whose text
    ``explain()`` shows among the routes not taken). ``capsule_version``: the capsule its
    ``__dlpack__`` answers ``max_version=(1, 0)`` with (``None``: legacy), quoted in that text.

    Each answer is ``True`` (yes), ``False`` (no) or ``None`` (unknown: not probed, or the probe
    failed for a reason that shows nothing). An unknown ``readonly_export`` or
    ``requests_versioned`` refuses the route and says so; ``readonly_import`` is probed for NumPy
    only (the framework whose arrays carry a read-only flag of their own): elsewhere ``None`` does
    not refuse, and the target adapter's own refusals (``readonly_capable``) decide.
    """

    framework: str
    version: str | None
    readonly_export: bool | None = None
    requests_versioned: bool | None = None
    readonly_import: bool | None = None
    capsule_version: tuple[int, int] | None = None
    errors: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def summary(self) -> str:
        """One line for ``arrayferry info``, the matrix report and docs."""

        def word(v: bool | None) -> str:
            return "unknown" if v is None else "yes" if v else "no"

        cap = "" if self.capsule_version is None else " (capsule {}.{})".format(*self.capsule_version)
        return (f"{self.framework} {self.version}: read-only DLPack export {word(self.readonly_export)}"
                f"{cap}; from_dlpack requests versioned {word(self.requests_versioned)}; "
                f"honours the read-only flag {word(self.readonly_import)}")


_CACHE: dict[tuple[str, str | None], Capabilities] = {}
_LOCK = threading.RLock()


def _version_of(name: str, adapter: Adapter | None) -> str | None:
    if adapter is not None:
        return adapter.version()
    mod = sys.modules.get(name)
    v = getattr(mod, "__version__", None)
    return v if isinstance(v, str) else None


def _adapter_named(name: str) -> Adapter:
    from ._registry import registry

    return registry().adapter_named(name)


def capabilities(framework: str | Adapter) -> Capabilities:
    """The probed capabilities of ``framework`` (a name or an adapter), cached per version."""
    from ._adapter import Adapter

    adapter = framework if isinstance(framework, Adapter) else None
    name = framework.name if isinstance(framework, Adapter) else framework
    if adapter is None:
        adapter = _adapter_named(name)
    key = (name, _version_of(name, adapter))
    got = _CACHE.get(key)
    if got is not None:
        return got
    with _LOCK:
        got = _CACHE.get(key)
        if got is None:
            got = _probe(adapter, key[1])
            _CACHE[key] = got
    return got


def cached() -> dict[tuple[str, str | None], Capabilities]:
    """A copy of the cache: ``{(framework, version): Capabilities}``."""
    return dict(_CACHE)


def set_capabilities(caps: Capabilities) -> None:
    """Store ``caps`` as the answer for ``(caps.framework, caps.version)`` (tests, plugins)."""
    _CACHE[(caps.framework, caps.version)] = caps


def clear() -> None:
    """Forget every probe (the next question probes again)."""
    _CACHE.clear()


@contextmanager
def override(framework: str, **changes: Any) -> Iterator[Capabilities]:
    """Within the block, ``capabilities(framework)`` answers with ``changes`` applied.

    The planner caches plans, so the plan cache is cleared on entry and on exit (through the
    registry's change listeners: this module sits below the public API and never imports it).
    """
    from ._registry import registry

    clear_cache = registry().notify
    adapter = _adapter_named(framework)
    real = capabilities(adapter)
    key = (framework, real.version)
    fake = replace(real, **changes)
    _CACHE[key] = fake
    clear_cache()
    try:
        yield fake
    finally:
        _CACHE[key] = real
        clear_cache()


# ------------------------------------------------------------------------------------------
# probing


def _capsule_info(capsule: Any) -> tuple[tuple[int, int] | None, int | None]:
    """(version, flags) of a DLPack capsule; ``(None, None)`` for a legacy one."""
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    name = get_name(capsule)
    if name != b"dltensor_versioned":
        return None, None
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype = ctypes.c_void_p
    get_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
    ptr = get_ptr(capsule, name)
    if not ptr:
        return None, None
    major, minor = (ctypes.c_uint32 * 2).from_address(ptr)
    # DLManagedTensorVersioned: version (2 x uint32), manager_ctx (void*), deleter (fn*), flags (uint64)
    flags = ctypes.c_uint64.from_address(ptr + 8 + 2 * ctypes.sizeof(ctypes.c_void_p)).value
    return (int(major), int(minor)), int(flags)


class _Spy:
    """A DLPack producer wrapping a NumPy array that records what a consumer asks for."""

    def __init__(self, arr: Any) -> None:
        self.arr = arr
        self.asked: dict[str, Any] | None = None

    def __dlpack_device__(self) -> Any:
        return self.arr.__dlpack_device__()

    def __dlpack__(self, **kwargs: Any) -> Any:
        if self.asked is None:
            self.asked = dict(kwargs)
        try:
            return self.arr.__dlpack__(**kwargs)
        except TypeError:  # an older NumPy that knows fewer keywords: a legacy capsule
            return self.arr.__dlpack__()


def _consumer(adapter: Adapter) -> Callable[..., Any] | None:
    """The adapter's DLPack consumer (``Adapter.dlpack_consumer``, default ``<module>:from_dlpack``)."""
    import importlib

    spec = adapter.dlpack_consumer or f"{adapter.module}:from_dlpack"
    modname, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(modname)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj if callable(obj) else None


def _probe(adapter: Adapter, version: str | None) -> Capabilities:
    import numpy as np

    name = adapter.name
    errors: list[tuple[str, str]] = []
    base = np.arange(2, dtype=np.float32)
    fields: dict[str, Any] = {}

    # producer: the capsule a real array of the framework answers with (quoted in refusals)
    x = _sample(adapter, base, errors)
    dl = getattr(x, "__dlpack__", None) if x is not None else None
    if dl is not None:
        try:
            try:
                cap = dl(max_version=(1, 0))
            except TypeError:
                cap = dl()
            fields["capsule_version"] = _capsule_info(cap)[0]
            del cap
            if fields["capsule_version"] is None:
                fields["readonly_export"] = False  # a legacy capsule has no read-only flag
        except Exception as exc:
            errors.append(("capsule", f"{type(exc).__name__}: {exc}"))
    elif x is not None:
        fields["readonly_export"] = False  # a real array without __dlpack__ exports nothing

    # consumer: does from_dlpack ask for a versioned capsule? (unknown when it refused the host
    # producer before asking, as a device-only framework does)
    consume = _consumer(adapter)
    if consume is not None:
        spy = _Spy(base.copy())
        try:
            consume(spy)
        except Exception as exc:
            errors.append(("from_dlpack(spy)", f"{type(exc).__name__}: {exc}"))
        fields["requests_versioned"] = None if spy.asked is None else spy.asked.get("max_version") is not None
    else:
        fields["requests_versioned"] = False  # no from_dlpack: it asks for nothing

    if name == "numpy":
        fields.update(_numpy_readonly(errors))
    return Capabilities(name, version, errors=tuple(errors), **fields)


def _sample(adapter: Adapter, base: Any, errors: list[tuple[str, str]]) -> Any:
    """A 2-element float32 array of ``adapter``'s framework, or ``None`` (answers stay unknown).

    ``import_host`` of a device-only framework may hand back the NumPy array itself (CuPy holds
    no host memory): that is moved to the adapter's ``home_device`` when one is available, and
    never probed in the framework's name.
    """
    try:
        adapter.namespace()
        x = adapter.import_host(base.copy())
    except Exception as exc:
        errors.append(("sample", f"{type(exc).__name__}: {exc}"))
        return None
    if _owned(adapter, x):
        return x
    try:
        moved = adapter.to_device(x, adapter.home_device)
    except Exception as exc:
        errors.append(("sample", f"import_host gave a {type(x).__qualname__}, not a {adapter.name} array, and "
                                 f"to_device({adapter.home_device}) raised {type(exc).__name__}: {exc}"))
        return None
    if _owned(adapter, moved):
        return moved
    errors.append(("sample", f"no {adapter.name} array could be made (got a {type(moved).__qualname__})"))
    return None


def _owned(adapter: Adapter, x: Any) -> bool:
    try:
        return bool(adapter.owns(type(x)))
    except Exception:
        return False


def _numpy_readonly(errors: list[tuple[str, str]]) -> dict[str, Any]:
    """NumPy has read-only arrays: can it export them over DLPack, and does it honour the flag?"""
    import numpy as np

    ro = np.arange(2, dtype=np.float32)
    ro.flags.writeable = False
    out: dict[str, Any] = {"readonly_export": False, "readonly_import": None}
    try:
        cap = ro.__dlpack__(max_version=(1, 0))
        _, flags = _capsule_info(cap)
        del cap
        out["readonly_export"] = bool(flags is not None and flags & DLPACK_FLAG_READ_ONLY)
    except Exception as exc:
        errors.append(("readonly __dlpack__", f"{type(exc).__name__}: {exc}"))
    if out["readonly_export"]:
        try:
            out["readonly_import"] = not np.from_dlpack(ro).flags.writeable
        except Exception as exc:
            errors.append(("readonly from_dlpack", f"{type(exc).__name__}: {exc}"))
    return out


def dlpack_readonly_reason(source: str, target: str) -> str | None:
    """Why read-only memory of ``source`` cannot travel to ``target`` over DLPack, or ``None``.

    Read-only memory may cross only in a versioned capsule carrying the read-only flag: the
    producer must export it (``readonly_export``) and the consumer must ask for a versioned
    capsule (``requests_versioned``) and honour the flag (``readonly_import``, where known).
    """
    try:
        src, tgt = capabilities(source), capabilities(target)
    except Exception as exc:  # unknown framework (a protocol source's producer): refuse rather than guess
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"DLPack capabilities unknown ({type(exc).__name__}: {first})"
    if src.readonly_export is None:
        return f"whether {source} {src.version} exports read-only memory over DLPack is unknown (not probed)"
    if not src.readonly_export:
        return (f"{source} {src.version} cannot export read-only memory over DLPack "
                f"(needs a versioned capsule with the read-only flag; it answers "
                f"{'legacy' if src.capsule_version is None else src.capsule_version})")
    if tgt.requests_versioned is None:
        return (f"whether {target} {tgt.version}'s from_dlpack asks for versioned capsules is unknown "
                "(the probe could not show it)")
    if not tgt.requests_versioned:
        return (f"{target} {tgt.version}'s from_dlpack asks for legacy capsules, which cannot mark memory read-only")
    if tgt.readonly_import is False:
        return f"{target} {tgt.version} ignores DLPack's read-only flag"
    return None
