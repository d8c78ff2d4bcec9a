"""``shares_memory(a, b)``: do two arrays of any registered frameworks overlap in memory?

Exact, not bounds-based: each array is described by its device, the address of its first
element, its shape, its byte strides and its itemsize; the two sets of bytes are compared with
NumPy's exact solver (``numpy.shares_memory`` with ``max_work=MAY_SHARE_EXACT``) run on address-only NumPy
views that are never read. So interleaved views (``x[::2]`` and ``x[1::2]``) do not share
memory, although their bounds overlap. Arrays on different devices never share memory; empty
arrays share nothing.

Where the layout comes from, in order:

1. the adapter's optional ``byte_strides(x)`` method (plugins may define it);
2. the object's ``__array_interface__`` or ``__cuda_array_interface__``;
3. a ``stride()`` method counted in elements (PyTorch's convention);
4. a C-contiguous array, by the adapter's ``describe``: strides follow from the shape;
5. the object's ``__dlpack__`` capsule, read in place (never consumed).

An array made of other arrays (a dask array) is asked part by part: its adapter's optional
``memory_parts(x)`` returns the arrays it holds in memory now (a dask graph's materialised
chunks: ``from_array`` views, persisted results); a chunk that is still a task holds no memory,
so a lazy graph shares memory with nothing.

The address comes from ``Adapter.data_pointer`` (or the same sources). When neither is known,
:class:`UnsupportedArrayError` says so; arrayferry never guesses.
"""

from __future__ import annotations

from typing import Any

from ._adapter import Adapter
from ._errors import UnsupportedArrayError, format_message

__all__ = ["shares_memory"]


class _Layout:
    __slots__ = ("ptr", "shape", "strides", "itemsize")

    def __init__(self, ptr: int, shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> None:
        self.ptr = ptr
        self.shape = shape
        self.strides = strides
        self.itemsize = itemsize


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    out = []
    acc = itemsize
    for n in reversed(shape):
        out.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(out))


def _interface_layout(x: Any) -> _Layout | None:
    tp = type(x)
    for attr in ("__array_interface__", "__cuda_array_interface__"):
        if not hasattr(tp, attr):
            continue
        try:
            iface = getattr(x, attr)
        except Exception:
            continue
        import numpy as np

        shape = tuple(int(s) for s in iface["shape"])
        itemsize = np.dtype(iface["typestr"]).itemsize
        strides = iface.get("strides")
        st = tuple(int(s) for s in strides) if strides is not None else _c_strides(shape, itemsize)
        return _Layout(int(iface["data"][0]), shape, st, itemsize)
    return None


def _dlpack_layout(x: Any) -> _Layout | None:
    if not hasattr(type(x), "__dlpack__"):
        return None
    from ._dlpack_abi import dl_tensor

    capsule = None
    for kwargs in ({"max_version": (1, 0)}, {}):
        try:
            capsule = x.__dlpack__(**kwargs)
            break
        except Exception:
            continue
    if capsule is None:
        return None
    try:
        t = dl_tensor(capsule)
    except ValueError:
        return None
    nd = t.ndim
    shape = tuple(int(t.shape[i]) for i in range(nd))
    itemsize = max(1, t.dtype.bits * t.dtype.lanes // 8)
    strides = (tuple(int(t.strides[i]) * itemsize for i in range(nd)) if t.strides
               else _c_strides(shape, itemsize))
    layout = _Layout(int(t.data or 0) + int(t.byte_offset), shape, strides, itemsize)
    del capsule  # unconsumed: its destructor calls the producer's deleter
    return layout


def _layout(a: Adapter, x: Any) -> _Layout:
    ptr = a.data_pointer(x)
    lay: _Layout | None = None
    custom = getattr(a, "byte_strides", None)
    if callable(custom):
        st = custom(x)
        if st is not None and ptr is not None:
            info = a.describe(x)
            lay = _Layout(ptr, tuple(info.shape), tuple(st), info.itemsize)
    if lay is None:
        lay = _interface_layout(x)
    if lay is None and callable(getattr(x, "stride", None)) and callable(getattr(x, "element_size", None)) and ptr is not None:
        try:
            isz = int(x.element_size())
            lay = _Layout(ptr, tuple(int(s) for s in x.shape), tuple(int(s) * isz for s in x.stride()), isz)
        except Exception:
            lay = None
    if lay is None and ptr is not None:
        info = a.describe(x)
        if info.layout == "contiguous" and info.itemsize:
            lay = _Layout(ptr, tuple(info.shape), _c_strides(tuple(info.shape), info.itemsize), info.itemsize)
    if lay is None:
        lay = _dlpack_layout(x)
    if lay is None:
        raise UnsupportedArrayError(
            format_message(
                f"shares_memory cannot tell where a {a.name} array ({type(x).__qualname__}) keeps its data.",
                ["no data_pointer from its adapter, no array interface, no strides, no readable DLPack capsule"],
                hint=f"the {a.name} plugin can define Adapter.data_pointer(x) and byte_strides(x) to answer this",
            )
        )
    if ptr is not None:
        lay.ptr = int(ptr)
    return lay


class _AddressOnly:
    """An ``__array_interface__`` over an address: NumPy builds a view it never reads."""

    def __init__(self, lay: _Layout) -> None:
        self.__array_interface__ = {
            "shape": lay.shape,
            "typestr": f"|V{lay.itemsize}",
            "data": (lay.ptr, True),
            "strides": lay.strides,
            "version": 3,
        }


def shares_memory(a: Any, b: Any) -> bool:
    """True when arrays ``a`` and ``b`` (any registered frameworks) have at least one byte in common.

    Exact: it compares the sets of bytes the two arrays address (pointer, shape, strides,
    itemsize) with NumPy's exact overlap solver, not just their bounds, so ``x[::2]`` and
    ``x[1::2]`` do not share memory. Arrays on different devices never share memory (host
    devices such as JAX's ``cpu:1`` all count as host memory); empty arrays share nothing.
    Nothing is copied or read.

    A dask array is asked chunk by chunk: the chunks its graph holds in memory (views made by
    ``from_array``, results of ``persist()``) are compared; chunks still to be computed hold no
    memory.

    Objects no plugin owns are compared through the protocol they are read by (a memoryview, an
    object with ``__dlpack__`` ...); a list or a scalar holds no array memory and shares none.

    :raises UnknownFrameworkError: ``a`` or ``b`` is neither an array of a registered framework
        nor an object read through a protocol.
    :raises UnsupportedArrayError: a framework gives no way to learn the array's address.
    """
    from . import _api

    sa = _api._TYPES.get(type(a)) or _api._source_adapter(a)
    sb = _api._TYPES.get(type(b)) or _api._source_adapter(b)
    if getattr(sa, "reads_by_copy", None) or getattr(sb, "reads_by_copy", None):
        return False  # a list, a Python or NumPy scalar: values, not memory an array can address
    for ad, x, other in ((sa, a, b), (sb, b, a)):
        parts = getattr(ad, "memory_parts", None)
        if callable(parts):  # an array made of other arrays (dask chunks): any part that overlaps
            return any(shares_memory(p, other) for p in parts(x))
    da, db = _api.adapter_device_of(sa, a), _api.adapter_device_of(sb, b)
    if da != db and not (da.is_host and db.is_host):  # JAX's cpu:1 is host memory like cpu
        return False
    la, lb = _layout(sa, a), _layout(sb, b)
    if 0 in la.shape or 0 in lb.shape or not la.ptr or not lb.ptr:
        return False  # empty, or no data at all (e.g. torch's meta device)
    import numpy as np

    va = np.asarray(_AddressOnly(la))
    vb = np.asarray(_AddressOnly(lb))
    return bool(np.shares_memory(va, vb, max_work=-1))  # -1: numpy.MAY_SHARE_EXACT
