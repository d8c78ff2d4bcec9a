"""The Dask adapter: ``convert(dask_array, ...)`` materialises, ``convert(x, "dask")`` builds.

A Dask array is a lazy graph of chunks, not memory, so every route in or out of Dask copies:

* **out** (dask to anything): the plan's first step is ``materialise``, one ``compute()`` of the
  graph into a fresh NumPy array (the step names the number of chunks and the bytes). Chunks of
  another framework (torch tensors after :func:`arrayferry_dask.convert_chunks`) are first
  converted to NumPy chunk by chunk, on the workers. ``copy=False`` raises
  :class:`arrayferry.CopyRequiredError`.
* **in** (anything to dask): ``dask.array.from_array(numpy_view, chunks="auto")``, which copies
  its input when the graph is built (``from_array`` calls ``x.copy()``). The plan says so.
  The target option ``chunks=`` chooses the chunks: ``convert(x, "dask", chunks=(5, 5))``
  (anything ``dask.array.from_array`` takes: ``"auto"``, an int, a tuple, a dict, ``-1``).
* **dask to dask**: identity, or a lazy chunk-wise cast / copy (``convert_chunks``).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from arrayferry.plugin import (
    CANONICAL_DTYPES,
    Adapter,
    ArgumentError,
    ArrayInfo,
    Device,
    Step,
    UnsupportedArrayError,
    format_message,
    hookimpl,
    numpy_dtype,
    numpy_dtype_name,
)

__all__ = ["DaskAdapter", "arrayferry_adapters", "dtype_name", "format_bytes"]

_CPU = Device("cpu")


def _msg(asked: str, tried: list[str] | tuple[str, ...] = (), hint: str | None = None) -> str:
    lines = [asked, *(f"  - {t}" for t in tried)]
    if hint:
        lines.append(f"Hint: {hint}")
    return "\n".join(lines)


def format_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            return f"{int(v)} B" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{n} B"


def dtype_name(dt: Any) -> str:
    """Canonical name of a dask array's dtype (a NumPy dtype, or the chunk framework's dtype)."""
    import numpy as np

    if isinstance(dt, np.dtype):
        return numpy_dtype_name(dt)
    text = str(dt).rsplit(".", 1)[-1]
    return text if text in CANONICAL_DTYPES else str(dt)


def _byteorder(dt: Any) -> str:
    import numpy as np

    if not isinstance(dt, np.dtype) or dt.isnative or dt.byteorder in "|=":
        return "="
    return dt.byteorder


def _itemsize(dt: Any) -> int:
    size = getattr(dt, "itemsize", None)
    if isinstance(size, int):
        return size
    return int(getattr(dt, "itemsize", 0) or 0)


def materialise(x: Any) -> Any:
    """Compute a dask array into one fresh NumPy array (chunks of other frameworks via NumPy)."""
    import numpy as np

    if not isinstance(x._meta, np.ndarray):
        from ._chunks import convert_chunks

        x = convert_chunks(x, "numpy")
    try:
        out = x.compute()
    except Exception as exc:
        # the graph's own tasks failed (the caller's computation, or its data): not arrayferry's
        # error to rename; arrayferry re-raises it as it is (see arrayferry._plan.failure)
        exc.add_note(f"arrayferry: raised while computing the dask graph ({x.npartitions} chunk(s)) to convert it")
        try:
            exc.__arrayferry_passthrough__ = True  # type: ignore[attr-defined]
        except AttributeError:  # an exception type without a __dict__
            pass
        raise
    if not isinstance(out, np.ndarray):  # reductions compute to NumPy scalars
        out = np.asarray(out)
    return out


def _materialised(arr: Any) -> Any:
    return arr


def _from_numpy(arr: Any) -> Any:
    # dask cannot size chunks of object arrays automatically: those become one chunk
    return sys.modules["dask.array"].from_array(arr, chunks=-1 if arr.dtype.hasobject else "auto")


class DaskAdapter(Adapter):
    """Adapter for ``dask.array.Array`` (any chunk type arrayferry knows)."""

    name = "dask"
    module = "dask"
    aliases = ("dask.array", "da")
    distribution = "dask"
    # 2025.2: from_array copies its input (2024.12) and a one-chunk compute no longer returns the
    # graph's own array (2025.2): the snapshot this adapter promises
    min_version = "2025.2"
    install_hint = "'dask[array]>=2025.2'"
    #: Dask arrays are immutable: nothing is ever written through one.
    readonly_capable = True
    numpy_dtypes = True  # any NumPy dtype, datetime64 and strings included
    host_export = True
    host_import = True
    dlpack_export = False
    dlpack_import = False
    target_options: ClassVar[Mapping[str, str]] = MappingProxyType({
        "chunks": "the result's chunks, as dask.array.from_array takes them: 'auto', an int, a tuple "
                  "per axis (-1: the whole axis), a dict {axis: size}",
    })
    target_option_examples: ClassVar[Mapping[str, tuple[Any, ...]]] = MappingProxyType({
        "chunks": ((2, 2), 2, "auto", -1, {0: 1}),
    })
    array_api_namespace = "array_api_compat.dask.array"

    def native_call(self, source: str, target: str) -> tuple[str, Callable[[Any], Any]] | None:
        if target == "dask":
            import dask.array as da

            if source == "object":  # a list, a buffer, a protocol object
                return "da.asarray", da.asarray
            return "da.from_array", da.from_array
        if target == "torch":  # torch cannot read a Dask array: compute it first
            import torch

            return "torch.from_numpy(x.compute())", lambda x: torch.from_numpy(x.compute())
        return None

    # -- detection ---------------------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        da = sys.modules.get("dask.array")  # no dask array can exist before dask.array is imported
        return da is not None and issubclass(tp, da.Array)

    def namespace(self) -> Any:
        super().namespace()
        import dask.array

        return dask.array

    def signature(self, x: Any) -> Hashable:
        return (type(x), x.dtype, type(x._meta), _known(x))

    def describe(self, x: Any) -> ArrayInfo:
        dt = x.dtype
        problem = None
        if not _known(x):
            problem = (
                UnsupportedArrayError,
                _msg(
                    f"Cannot convert a dask array of unknown shape {x.shape} (dtype {dt}): its chunk sizes are unknown, so the plan cannot say how much it moves.",
                    hint="call x.compute_chunk_sizes() first (it computes the graph once)",
                ),
            )
        shape = tuple(int(s) for s in x.shape) if _known(x) else tuple(-1 for _ in x.shape)
        return ArrayInfo(
            framework=self.name,
            dtype=dtype_name(dt),
            shape=shape,
            device=_CPU,
            readonly=False,
            layout="contiguous",
            byteorder=_byteorder(dt),
            itemsize=_itemsize(dt),
            problem=problem,
            extra=(("chunks", int(x.npartitions)), ("chunk_type", f"{type(x._meta).__module__}.{type(x._meta).__qualname__}")),
        )

    def device_of(self, x: Any) -> Device:
        return _CPU

    def memory_parts(self, x: Any) -> list[Any]:
        """The arrays ``x``'s graph holds in memory for its chunks, for ``arrayferry.shares_memory``.

        ``from_array`` chunks are views of the source; ``persist()`` stores computed chunks; a chunk
        that is still a task holds no memory yet (a lazy graph shares memory with nothing).
        """
        from dask.core import flatten

        from arrayferry import framework_of

        graph = x.dask
        parts = []
        for key in flatten(x.__dask_keys__()):
            try:
                v = graph[key]
            except KeyError:
                continue
            if type(v).__name__ == "DataNode":  # dask's task spec wraps literal values
                v = getattr(v, "value", v)
            if framework_of(v) is not None and framework_of(v) != self.name:
                parts.append(v)
        return parts

    # -- routes ------------------------------------------------------------------------------
    def prepare(self, info: ArrayInfo) -> list[Step]:
        extra = dict(info.extra)
        n = extra.get("chunks")
        what = f"{n} chunk(s)" if n is not None else "every chunk"
        kind = extra.get("chunk_type", "numpy.ndarray")
        via = "" if kind == "numpy.ndarray" else f", converting {kind} chunks to NumPy on the workers first"
        return [
            Step(
                "materialise",
                f"compute the dask graph: {what}, {format_bytes(max(info.nbytes, 0))}, into one new NumPy array (dask.compute{via})",
                materialise,
                copies=True,
            )
        ]

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy", readonly=False, layout="contiguous", extra=())

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        return _materialised

    def export_host(self, x: Any) -> Any:
        """Only ever called on the result of ``materialise`` (already a NumPy array)."""
        return x

    def import_copies(self, info: ArrayInfo) -> str | None:
        return "dask.array.from_array copies its input into the graph (chunks='auto'; use arrayferry_dask.from_array to choose chunks)"

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        self.namespace()
        return _from_numpy

    def import_host(self, arr: Any) -> Any:
        self.namespace()
        return _from_numpy(arr)

    def apply_options(self, steps: list[Step], options: Mapping[str, Any], info: ArrayInfo) -> list[Step]:
        """``chunks=``: ``from_array`` builds the graph with these chunks (the host route), or a dask
        array is rechunked lazily (dask to dask)."""
        chunks = options["chunks"]
        try:
            dt = numpy_dtype(info.dtype)
        except Exception:  # a dtype NumPy names differently (datetime, strings): sized as float64
            dt = None
        _check_chunks(chunks, info.shape, dt)
        if steps and steps[-1].name == "import_host":
            last = steps[-1]
            return [*steps[:-1], dataclasses.replace(
                last, fn=_FromArray(chunks),
                description=f"dask.array.from_array(chunks={chunks!r}) copies the NumPy memory into the graph")]
        return [*steps, Step("rechunk", f"rechunk to chunks={chunks!r} (lazy: a graph layer, nothing is computed now)",
                             _Rechunk(chunks))]

    # -- native operations (lazy, chunk-wise) ------------------------------------------------
    def copy(self, x: Any) -> Any:
        from ._chunks import chunk_framework, convert_chunks

        return convert_chunks(x, chunk_framework(x), copy=True)

    def cast(self, x: Any, dtype: str) -> Any:
        from ._chunks import chunk_framework, convert_chunks

        return convert_chunks(x, chunk_framework(x), dtype=dtype)

    def check_cast(self, x: Any, src: str, dst: str, mode: str = "range") -> None:
        """Nothing to check eagerly: each chunk's cast is checked by arrayferry on the worker."""

    def checked_cast(self, x: Any, src: str, dst: str, mode: str | None) -> Any:
        """A lazy chunk-wise cast whose chunks carry the casting policy's check (``mode``)."""
        from ._chunks import chunk_framework, convert_chunks

        casting = {None: "unsafe", "range": None, "exact": "same_value"}[mode]
        return convert_chunks(x, chunk_framework(x), dtype=dst, casting=casting)


def _check_chunks(chunks: Any, shape: tuple[int, ...], dtype: Any = None) -> None:
    """Raise ArgumentError unless dask takes ``chunks`` for an array of ``shape`` (``dtype``: a NumPy
    dtype, which sizes ``"auto"`` chunks; ``None`` for float64)."""
    import numpy as np
    from dask.array.core import normalize_chunks

    if isinstance(chunks, (bool, float)) or not isinstance(chunks, (str, int, tuple, list, dict)):
        raise _chunks_error(chunks, shape, f"chunks must be 'auto', an int, a tuple or a dict, not {type(chunks).__name__}")
    if any(s < 0 for s in shape):  # a dask array of unknown shape: refused elsewhere
        return
    if not isinstance(dtype, np.dtype):
        dtype = np.dtype("float64")
    try:
        normalize_chunks(chunks, shape, dtype=dtype)
    except Exception as exc:  # ValueError, TypeError, ZeroDivisionError (chunks=0) ...: a value dask cannot take
        raise _chunks_error(chunks, shape, f"dask.array.core.normalize_chunks raised {type(exc).__name__}: {exc}") from exc


def _chunks_error(chunks: Any, shape: tuple[int, ...], why: str) -> ArgumentError:
    return ArgumentError(format_message(
        f"Target option chunks={chunks!r} does not fit a dask array of shape {shape}.",
        [why],
        hint="pass chunks='auto', an int, -1 (one chunk), a tuple with one entry per axis, or a dict {axis: size}",
    ))


class _FromArray:
    """``dask.array.from_array(arr, chunks=...)``, the chunks checked against each array's shape."""

    __slots__ = ("chunks",)

    def __init__(self, chunks: Any) -> None:
        self.chunks = chunks

    def __call__(self, arr: Any) -> Any:
        _check_chunks(self.chunks, arr.shape, arr.dtype)
        return sys.modules["dask.array"].from_array(arr, chunks=self.chunks)


class _Rechunk:
    """``x.rechunk(chunks)``, the chunks checked against each array's shape."""

    __slots__ = ("chunks",)

    def __init__(self, chunks: Any) -> None:
        self.chunks = chunks

    def __call__(self, x: Any) -> Any:
        shape = tuple(int(s) for s in x.shape) if _known(x) else tuple(-1 for _ in x.shape)
        _check_chunks(self.chunks, shape, x.dtype)
        try:
            return x.rechunk(self.chunks)
        except Exception as exc:  # what from_array takes, rechunk may not (a dict naming no axis)
            raise _chunks_error(self.chunks, shape, f"dask's rechunk raised {type(exc).__name__}: {exc}") from exc


def _known(x: Any) -> bool:
    import math

    return not any(isinstance(s, float) and math.isnan(s) for s in x.shape)


@hookimpl
def arrayferry_adapters() -> list[Adapter]:
    """The Dask adapter (creating it imports nothing)."""
    return [DaskAdapter()]
