"""The DLPack C structures (``dlpack.h``) as ctypes, to read a capsule in place.

Used to read layouts (``shares_memory``), to describe ``__dlpack__`` sources no plugin owns
(:func:`read_dlpack_capsule`, public in ``arrayferry.plugin``) and, in tests, to relabel a real
capsule's device. Never
used to build a capsule: a capsule made in Python with a Python destructor is unsafe.
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = [
    "DLDataType",
    "DLDevice",
    "DLManagedTensor",
    "DLManagedTensorVersioned",
    "DLPackVersion",
    "DLTensor",
    "DLPACK_FLAG_READ_ONLY",
    "DLPackCapsuleInfo",
    "capsule_name",
    "capsule_pointer",
    "dl_tensor",
    "read_dlpack_capsule",
]


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    """The legacy (unversioned) managed tensor, capsule name ``dltensor``."""

    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    """The versioned managed tensor (DLPack >= 1.0), capsule name ``dltensor_versioned``."""

    _fields_ = [
        ("version", DLPackVersion),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", DLTensor),
    ]


_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_get_name = ctypes.pythonapi.PyCapsule_GetName
_get_name.restype = ctypes.c_char_p
_get_name.argtypes = [ctypes.py_object]


def capsule_name(capsule: Any) -> bytes:
    """The capsule's name: ``b"dltensor"``, ``b"dltensor_versioned"``, or ``b"used_..."``."""
    name: bytes = _get_name(capsule)
    return name


def capsule_pointer(capsule: Any) -> int:
    """The address the capsule holds (its managed tensor)."""
    ptr: int = _get_pointer(capsule, capsule_name(capsule))
    return ptr


def dl_tensor(capsule: Any) -> DLTensor:
    """The ``DLTensor`` inside an unconsumed capsule, legacy or versioned (a view, not a copy)."""
    name = capsule_name(capsule)
    ptr = capsule_pointer(capsule)
    tensor: DLTensor
    if name == b"dltensor_versioned":
        tensor = DLManagedTensorVersioned.from_address(ptr).dl_tensor
        return tensor
    if name == b"dltensor":
        tensor = DLManagedTensor.from_address(ptr).dl_tensor
        return tensor
    raise ValueError(f"not an unconsumed DLPack capsule: {name!r}")


# ------------------------------------------------------------------------------------------------
# reading a capsule's description (the protocol source adapter describes ``__dlpack__`` objects
# and bare capsules with it, without consuming them)

#: ``DLManagedTensorVersioned.flags`` bit: the memory must not be written (DLPack >= 1.0).
DLPACK_FLAG_READ_ONLY = 1

# (type code, bits) -> canonical dtype name (dlpack.h ``DLDataTypeCode``; lanes must be 1)
_DL_DTYPES: dict[tuple[int, int], str] = {
    (0, 8): "int8", (0, 16): "int16", (0, 32): "int32", (0, 64): "int64",
    (1, 8): "uint8", (1, 16): "uint16", (1, 32): "uint32", (1, 64): "uint64",
    (2, 16): "float16", (2, 32): "float32", (2, 64): "float64",
    (4, 16): "bfloat16",
    (5, 64): "complex64", (5, 128): "complex128",
    (6, 8): "bool",
}


class DLPackCapsuleInfo:
    """What an unconsumed DLPack capsule says about its tensor (read in place, nothing consumed).

    ``dtype`` is a canonical name, or ``None`` when the capsule's type has none (then
    ``dtype_code`` is ``(code, bits, lanes)`` to word an error); ``strides`` are in bytes (C order
    filled in when the capsule has none); ``readonly`` is the versioned capsule's read-only flag
    (``False`` for a legacy capsule, which cannot say); ``device`` is DLPack's ``(type, id)``.
    """

    __slots__ = ("device", "dtype", "dtype_code", "shape", "strides", "itemsize", "pointer", "readonly", "versioned")

    def __init__(self, device: tuple[int, int], dtype: str | None, dtype_code: tuple[int, int, int],
                 shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int, pointer: int,
                 readonly: bool, versioned: bool) -> None:
        self.device = device
        self.dtype = dtype
        self.dtype_code = dtype_code
        self.shape = shape
        self.strides = strides
        self.itemsize = itemsize
        self.pointer = pointer
        self.readonly = readonly
        self.versioned = versioned

    def __repr__(self) -> str:
        return (f"DLPackCapsuleInfo(device={self.device}, dtype={self.dtype or self.dtype_code}, shape={self.shape}, "
                f"strides={self.strides}, readonly={self.readonly}, versioned={self.versioned})")


def read_dlpack_capsule(capsule: Any) -> DLPackCapsuleInfo:
    """Describe an unconsumed DLPack capsule (legacy ``dltensor`` or ``dltensor_versioned``)
    without consuming it: dropping the capsule afterwards calls the producer's deleter as usual.

    Raises ``ValueError`` for a consumed capsule (``used_dltensor...``) or another object.
    """
    try:
        name = capsule_name(capsule)
    except Exception as exc:
        raise ValueError(f"not a PyCapsule: {type(capsule).__qualname__}") from exc
    ptr = capsule_pointer(capsule) if name in (b"dltensor", b"dltensor_versioned") else 0
    if not ptr:
        raise ValueError(f"not an unconsumed DLPack capsule (its name is {name!r})")
    readonly = False
    if name == b"dltensor_versioned":
        managed = DLManagedTensorVersioned.from_address(ptr)
        readonly = bool(managed.flags & DLPACK_FLAG_READ_ONLY)
        t = managed.dl_tensor
    else:
        t = DLManagedTensor.from_address(ptr).dl_tensor
    nd = int(t.ndim)
    code, bits, lanes = int(t.dtype.code), int(t.dtype.bits), int(t.dtype.lanes)
    dtype = _DL_DTYPES.get((code, bits)) if lanes == 1 else None
    itemsize = max(1, bits * lanes // 8)
    shape = tuple(int(t.shape[i]) for i in range(nd))
    if t.strides:
        strides = tuple(int(t.strides[i]) * itemsize for i in range(nd))
    else:
        acc, out = itemsize, []
        for n in reversed(shape):
            out.append(acc)
            acc *= max(n, 1)
        strides = tuple(reversed(out))
    return DLPackCapsuleInfo((int(t.device.device_type), int(t.device.device_id)), dtype, (code, bits, lanes),
                             shape, strides, itemsize, int(t.data or 0) + int(t.byte_offset), readonly,
                             name == b"dltensor_versioned")
