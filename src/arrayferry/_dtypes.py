"""Canonical dtype names shared by every adapter.

Adapters translate their own dtype objects to and from these names, so the planner compares
plain strings. Names follow NumPy / the array API (``"float32"``, ``"complex64"``, ...) plus the
``ml_dtypes`` names for the formats NumPy lacks natively (``"bfloat16"``, ``"float8_e4m3fn"``, ...).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._errors import UnsupportedDTypeError, format_message

__all__ = [
    "CANONICAL",
    "ITEMSIZE",
    "ML_DTYPES",
    "canonical_name",
    "is_narrowing",
    "kind_of",
    "numpy_dtype",
    "numpy_dtype_name",
    "set_framework_parser",
]

# How a framework's own dtype object (``jnp.bfloat16``'s dtype, an array-api-strict dtype, ...)
# becomes a canonical name. These helpers sit below the registry and never import it: the package
# wires the registry's ``parse_dtype`` (which asks each adapter's ``parse_dtype``) in when it loads.
_framework_parser: Callable[[Any], str | None] | None = None


def set_framework_parser(fn: Callable[[Any], str | None] | None) -> None:
    """Install how :func:`canonical_name` reads a framework's dtype object (``None``: none is read).

    ``arrayferry/__init__.py`` installs the registry's adapter-by-adapter parser; tests may swap it.
    """
    global _framework_parser
    _framework_parser = fn

ITEMSIZE: dict[str, int] = {
    "bool": 1,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "complex64": 8,
    "complex128": 16,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1,
}
"""Bytes per element of each canonical dtype name (the keys, in :data:`CANONICAL` order)."""
CANONICAL: tuple[str, ...] = tuple(ITEMSIZE)
"""Every dtype name arrayferry understands, in a fixed order: ``bool``, the signed and unsigned
integers, ``float16``, ``bfloat16``, ``float32``, ``float64``, ``complex64``, ``complex128`` and the
four ``float8`` formats. ``dtype=`` accepts these names (or any framework's dtype object), and
``Adapter.parse_dtype`` returns one of them."""

ML_DTYPES: frozenset[str] = frozenset(
    {"bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"}
)
"""The canonical dtypes NumPy only knows through the ``ml_dtypes`` package (``numpy_dtype``
imports it for them; DLPack has a type code for ``bfloat16`` only)."""

_ALIASES = {
    "float": "float64",
    "double": "float64",
    "half": "float16",
    "int": "int64",
    "long": "int64",
    "complex": "complex128",
    "cfloat": "complex64",
    "cdouble": "complex128",
    "bf16": "bfloat16",
    "f2": "float16",
    "f4": "float32",
    "f8": "float64",
    "c8": "complex64",
    "c16": "complex128",
    "i1": "int8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "u1": "uint8",
    "u2": "uint16",
    "u4": "uint32",
    "u8": "uint64",
    "b1": "bool",
    "?": "bool",
}
_PY_TYPES = {bool: "bool", int: "int64", float: "float64", complex: "complex128"}


def kind_of(name: str) -> str:
    """``"b"`` bool, ``"i"`` signed, ``"u"`` unsigned, ``"f"`` real float, ``"c"`` complex."""
    if name == "bool":
        return "b"
    if name.startswith("int"):
        return "i"
    if name.startswith("uint"):
        return "u"
    if name.startswith("complex"):
        return "c"
    if name.startswith(("float", "bfloat")):
        return "f"
    return "?"


def is_narrowing(src: str, dst: str) -> bool:
    """True when ``dst`` cannot hold every value of ``src`` of the same kind (int64 to int32, ...)."""
    if src == dst or src not in ITEMSIZE or dst not in ITEMSIZE:
        return False
    ks, kd = kind_of(src), kind_of(dst)
    if ks in "iu" and kd in "iu":
        if ks == kd:
            return ITEMSIZE[dst] < ITEMSIZE[src]
        if ks == "u":  # unsigned to signed needs one more bit
            return ITEMSIZE[dst] <= ITEMSIZE[src]
        return True  # signed to unsigned loses negatives
    if ks == kd and ks in "fc":
        return ITEMSIZE[dst] < ITEMSIZE[src]
    if ks == "c" and kd != "c":
        return True
    if ks == "f" and kd in "iub":
        return True
    return False


def canonical_name(obj: Any) -> str:
    """The canonical name of a dtype given as a string, a Python type or any framework's dtype."""
    if isinstance(obj, str):
        text = obj.strip()
        low = text.lower()
        if low in ITEMSIZE:
            return low
        if low.startswith("torch."):
            low = low[6:]
            if low in ITEMSIZE:
                return low
        if low in _ALIASES:
            return _ALIASES[low]
        if text[:1] in "<>=|" and text[1:].lower() in _ALIASES:
            return _ALIASES[text[1:].lower()]
        raise UnsupportedDTypeError(
            format_message(
                f"Unknown dtype name {obj!r}.",
                [f"known names: {', '.join(CANONICAL)}"],
                hint="use one of the names above, or pass a framework dtype object",
            )
        )
    if isinstance(obj, type) and obj in _PY_TYPES:
        return _PY_TYPES[obj]
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.dtype):
            return numpy_dtype_name(obj)
        if isinstance(obj, type) and issubclass(obj, np.generic):
            return numpy_dtype_name(np.dtype(obj))
    text = str(obj)
    if text.startswith("torch.") and text[6:] in ITEMSIZE:
        return text[6:]
    found = _framework_parser(obj) if _framework_parser is not None else None
    if found is not None:
        return found
    raise UnsupportedDTypeError(
        format_message(
            f"Cannot interpret {obj!r} (type {type(obj).__qualname__}) as a dtype.",
            hint="pass a dtype name such as 'float32' or a NumPy / framework dtype",
        )
    )


def numpy_dtype_name(dt: Any) -> str:
    """Name of a NumPy dtype, or its ``str`` (``'<M8[ns]'``, ``'|V8'``, ...) when not canonical."""
    name: str = dt.name
    if name in ITEMSIZE and dt.kind in "biufcV":
        # ml_dtypes register as kind 'V'; structured dtypes (also 'V') have names like 'void64'.
        return name
    return str(dt)


def numpy_dtype(name: str) -> Any:
    """The NumPy dtype for a canonical name; imports ``ml_dtypes`` for the formats NumPy lacks."""
    import numpy as np

    if name in ML_DTYPES:
        try:
            import ml_dtypes
        except ImportError:
            raise UnsupportedDTypeError(
                format_message(
                    f"NumPy has no {name} dtype without the ml_dtypes package.",
                    [f"{name} arrays are handed to NumPy as ml_dtypes.{name} (bits reinterpreted, no copy)"],
                    hint="pip install 'ml_dtypes>=0.4'",
                )
            ) from None
        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)
