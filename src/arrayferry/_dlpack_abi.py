"""The DLPack C structures (``dlpack.h``) as ctypes, to read a capsule in place.

Used to read layouts (``shares_memory``) and, in tests, to relabel a real capsule's device. Never
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
    "capsule_name",
    "capsule_pointer",
    "dl_tensor",
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
