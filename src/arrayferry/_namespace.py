"""Any array-API namespace as a target: ``convert(x, to=ns)`` for a namespace no plugin registers.

A namespace the registry knows (``array_api_compat.numpy``, ``array_api_compat.torch``,
``array_api_strict``, ``jax.numpy``, ...) keeps its framework's own adapter (see
``Registry.adapter_named``); any other object offering the array API's ``asarray`` and/or
``from_dlpack`` gets a :class:`NamespaceAdapter`: a host-only target whose plans stay honest.

Zero-copy is planned only where it is guaranteed: the namespace's ``asarray(x, copy=False)`` (or
``from_dlpack(x, copy=False)``, the array API 2023.12 signature) must forbid a copy, and a probe
made once per namespace (a 4-element NumPy array) must not see it copy. A namespace whose call
takes no ``copy=`` (an older array API) or copies anyway is handed a private copy instead (the
plan names that copy), so ``copy=True`` always gives independent memory and ``copy=False``
raises :class:`CopyRequiredError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._adapter import Adapter, ArrayInfo
from ._device import Device

if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ["NamespaceAdapter", "is_namespace", "namespace_name"]

_FUNCS = ("asarray", "from_dlpack")


def is_namespace(obj: Any) -> bool:
    """Whether ``obj`` offers the array API's ``asarray`` or ``from_dlpack`` (and is no string)."""
    return not isinstance(obj, str) and any(callable(getattr(obj, f, None)) for f in _FUNCS)


def namespace_name(ns: Any) -> str:
    name = getattr(ns, "__name__", None)
    if isinstance(name, str) and name:
        return name
    return f"{type(ns).__module__}.{type(ns).__qualname__}"


def _pointer(r: Any) -> int | None:
    """The address of ``r``'s first element through a NumPy view (DLPack or ``__array__``), or
    ``None`` when NumPy cannot view it without copying."""
    import numpy as np

    try:
        v = np.from_dlpack(r)
    except Exception:
        try:
            v = np.asarray(r, copy=False)
        except TypeError:  # NumPy 1.x: no copy= keyword; a result that owns new memory is a copy
            try:
                v = np.asarray(r)
            except Exception:
                return None
            if v is not r and v.flags.owndata:
                return None
        except Exception:
            return None
    return int(v.__array_interface__["data"][0])


def _probe(fn: Any) -> tuple[str, str]:
    """How ``fn(x, copy=False)`` treats NumPy memory: ``("alias", why)`` when it takes ``copy=`` and
    a probe saw it alias; ``("private", why)`` when it must be handed a private copy."""
    import numpy as np

    a = np.arange(4.0)
    try:
        r = fn(a, copy=False)
    except TypeError as exc:  # no copy= keyword: the array API before 2023.12
        try:
            fn(a)
        except Exception as exc2:
            return "broken", f"it raised {type(exc2).__name__}: {exc2}"
        return "private", f"it takes no copy= (array API before 2023.12: {type(exc).__name__}: {exc}), so it may copy or alias"
    except Exception as exc:  # refuses copy=False for plain NumPy memory, or fails altogether
        try:
            fn(a)
        except Exception as exc2:
            return "broken", f"it raised {type(exc2).__name__}: {exc2}"
        return "private", f"it refused copy=False for NumPy memory ({type(exc).__name__}: {exc})"
    p = _pointer(r)
    if p is None:
        return "alias", ("it takes copy=False, which the array API (2023.12) forbids to copy (the result "
                         "could not be inspected: the namespace's word is taken)")
    if p != a.__array_interface__["data"][0]:
        return "private", "its copy=False copied NumPy memory in a probe (it does not honour copy=False)"
    return "alias", "it takes copy=False, which the array API (2023.12) forbids to copy, and a probe saw it alias NumPy memory"


class NamespaceAdapter(Adapter):
    """A target for an array-API namespace no registered adapter owns (host memory only)."""

    host_import = True
    dlpack_import = True

    def __init__(self, ns: Any) -> None:
        self.ns = ns
        self.name = namespace_name(ns)
        self.module = self.name
        self.calls: dict[str, tuple[str, str]] = {}
        for f in _FUNCS:
            fn = getattr(ns, f, None)
            if callable(fn):
                self.calls[f] = _probe(fn)
        self.calls = {f: c for f, c in self.calls.items() if c[0] != "broken"}
        # the host route always works (a private copy where nothing aliases); the dlpack route only
        # where from_dlpack(copy=False) is trusted
        self.host_import = bool(self.calls)
        # (copy=True on that route copies the result with asarray(copy=True): both must take copy=)
        self.dlpack_import = self._alias("from_dlpack") and self._alias("asarray")
        alias = [f for f in _FUNCS if self.calls.get(f, ("", ""))[0] == "alias"]
        self._host_call = alias[0] if alias else next(iter(self.calls), "asarray")
        self._host_fn: Any = getattr(ns, self._host_call, None)

    def __repr__(self) -> str:
        return f"<NamespaceAdapter {self.name!r}>"

    # -- identity ----------------------------------------------------------------------------
    def namespace(self) -> Any:
        if not self.calls:
            from ._errors import UnknownFrameworkError, format_message

            raise UnknownFrameworkError(
                format_message(
                    f"The namespace {self.name} cannot be a target: its asarray/from_dlpack fail on a NumPy array.",
                    hint="pass a registered framework's name, or a namespace whose asarray(x) takes NumPy arrays",
                )
            )
        return self.ns

    def is_installed(self) -> bool:
        return True

    def version(self) -> str | None:
        v = getattr(self.ns, "__version__", None)
        return v if isinstance(v, str) else None

    # -- what it can hold ------------------------------------------------------------------
    def supports_dtype(self, dtype: str, device: Device) -> bool:
        """The dtypes the namespace names (``ns.float32`` ...: the array API's dtype objects)."""
        return getattr(self.ns, dtype, None) is not None

    def cast_differs(self, src: str, dst: str, device: Device) -> str | None:
        return f"arrayferry does not know how {self.name} casts; NumPy casts on the host instead"

    # -- routes ------------------------------------------------------------------------------
    def _alias(self, f: str) -> bool:
        return self.calls.get(f, ("", ""))[0] == "alias"

    def host_import_refusals(self, info: ArrayInfo) -> list[str]:
        out: list[str] = []
        if not self._alias(self._host_call):
            return out  # the importer copies anyway (import_copies)
        if info.readonly:
            out.append(f"the memory is read-only, and arrayferry cannot tell whether {self.name} arrays keep it so")
        if info.layout != "contiguous" or info.flags:
            out.append(f"{self.name}.{self._host_call}(copy=False) is only known to alias C-contiguous memory")
        if info.byteorder != "=" or not info.aligned:
            out.append("the array API has no non-native byte order or misaligned memory")
        return out

    def import_copies(self, info: ArrayInfo) -> str | None:
        if self._alias(self._host_call):
            return None
        return f"{self.name}.{self._host_call} is handed a private copy: {self.calls[self._host_call][1]}"

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        fn = self._host_fn
        if self._alias(self._host_call):
            def alias(arr: Any) -> Any:
                return fn(arr, copy=False)

            return alias

        def private(arr: Any) -> Any:
            import numpy as np

            # fresh, C-contiguous, native byte order (the array API has no other), writable
            return fn(np.array(arr, dtype=arr.dtype.newbyteorder("="), order="C", copy=True))

        return private

    def import_host(self, arr: Any) -> Any:
        return self.host_importer(ArrayInfo(self.name, "float64", ()))(arr)

    def dlpack_import_refusals(self, info: ArrayInfo) -> list[str]:
        out: list[str] = []
        if info.readonly:
            out.append(f"the memory is read-only, and arrayferry cannot tell whether {self.name} arrays keep it so")
        if info.layout != "contiguous" or info.flags:
            out.append(f"{self.name}.from_dlpack(copy=False) is only known to alias C-contiguous memory")
        return out

    def from_dlpack(self, x: Any) -> Any:
        return self.ns.from_dlpack(x, copy=False)

    def copy(self, x: Any) -> Any:
        """``asarray(x, copy=True)`` (the dlpack route's copy=True; offered only where asarray takes copy=)."""
        return self.ns.asarray(x, copy=True)

    # -- what the plan says --------------------------------------------------------------------
    def plan_notes(self, t: Any) -> tuple[str, ...]:
        """Which call makes the result, and why the plan may call it zero-copy (or not); ``t`` is the
        plan's template (its ``steps``)."""
        calls = {s.name for s in t.steps}
        if "from_dlpack" in calls:
            f = "from_dlpack"
            call = f"{self.name}.from_dlpack(x, copy=False)"
        else:
            f = self._host_call
            call = (f"{self.name}.{f}(numpy_array, copy=False)" if self._alias(f)
                    else f"{self.name}.{f}(private_numpy_copy)")
        return (f"{self.name} is an array-API namespace no plugin registers: the result is made by {call} "
                f"({self.calls[f][1]}); it lives in host memory",)
