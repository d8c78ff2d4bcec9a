"""Chunk-wise conversion: a dask array of NumPy chunks becomes one of torch (or any) chunks, lazily.

``convert_chunks(x, "torch")`` adds one ``map_blocks`` layer whose task for each chunk calls
:func:`arrayferry.convert` on that chunk. Each task depends on exactly one input chunk, so the
scheduler runs it on the worker that already holds the chunk: nothing crosses the network, and
every worker uses arrayferry's own (cached) plans for the conversion, zero-copy where the plan
allows (NumPy to torch shares the chunk's memory on the worker).
"""

from __future__ import annotations

import sys
from typing import Any

import arrayferry

__all__ = ["ChunkConverter", "chunk_framework", "convert_chunks", "from_array"]


def _msg(asked: str, tried: list[str] | tuple[str, ...] = (), hint: str | None = None) -> str:
    lines = [asked, *(f"  - {t}" for t in tried)]
    if hint:
        lines.append(f"Hint: {hint}")
    return "\n".join(lines)


def _is_dask_array(x: Any) -> bool:
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


def _require_dask_array(x: Any, what: str) -> None:
    if not _is_dask_array(x):
        tp = type(x)
        raise arrayferry.UnsupportedArrayError(
            _msg(
                f"{what} takes a dask array; got {tp.__module__}.{tp.__qualname__}.",
                hint="build one with arrayferry_dask.from_array(x, chunks=...)",
            )
        )


def chunk_framework(x: Any) -> str:
    """The arrayferry framework name of ``x``'s chunks (from its ``_meta``), e.g. ``"numpy"``."""
    _require_dask_array(x, "chunk_framework")
    name = arrayferry.framework_of(x._meta)
    if name is None:
        tp = type(x._meta)
        raise arrayferry.UnknownFrameworkError(
            _msg(
                f"The chunks of this dask array are {tp.__module__}.{tp.__qualname__}, which no registered framework owns.",
                hint="install or register the arrayferry plugin for that framework",
            )
        )
    return name


def _token(obj: Any) -> str:
    if obj is None or isinstance(obj, (str, bool)):
        return repr(obj)
    name = getattr(obj, "__name__", None)
    if isinstance(name, str):
        return name
    return f"{type(obj).__module__}.{type(obj).__qualname__}:{obj!s}"


class ChunkConverter:
    """The function each ``map_blocks`` task runs: ``arrayferry.convert(chunk, to, ...)``.

    Picklable by reference (it holds only the conversion arguments), so it runs on any worker
    where arrayferry and the target framework are installed.
    """

    __slots__ = ("to", "device", "dtype", "copy", "casting")

    def __init__(self, to: Any, device: Any = None, dtype: Any = None, copy: bool | None = None,
                 casting: str | None = None) -> None:
        self.to = to
        self.device = device
        self.dtype = dtype
        self.copy = copy
        self.casting = casting

    def __call__(self, block: Any) -> Any:
        return arrayferry.convert(block, self.to, device=self.device, dtype=self.dtype, copy=self.copy,
                                  casting=self.casting)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.to, self.device, self.dtype, self.copy, self.casting)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.to, self.device, self.dtype, self.copy = state[:4]
        self.casting = state[4] if len(state) > 4 else None

    def __dask_tokenize__(self) -> tuple[str, ...]:
        return ("arrayferry-convert", _token(self.to), _token(self.device), _token(self.dtype), repr(self.copy),
                repr(self.casting))

    def __repr__(self) -> str:
        return (f"ChunkConverter(to={self.to!r}, device={self.device!r}, dtype={self.dtype!r}, copy={self.copy!r}, "
                f"casting={self.casting!r})")


def convert_chunks(
    x: Any, to: Any, *, device: Any = None, dtype: Any = None, copy: bool | None = None, name: str | None = None,
    casting: str | None = None,
) -> Any:
    """Convert every chunk of the dask array ``x`` to framework ``to``, lazily, where it lives.

    :param x: a ``dask.array.Array`` whose chunks belong to a registered framework.
    :param to: the chunks' new framework (``"torch"``, ``"numpy"``, ...), as for :func:`arrayferry.convert`.
    :param device: passed to :func:`arrayferry.convert` for every chunk.
    :param dtype: passed to :func:`arrayferry.convert` for every chunk.
    :param copy: passed to :func:`arrayferry.convert` for every chunk.
    :param casting: passed to :func:`arrayferry.convert` for every chunk (the casting policy's value
        check runs on each chunk where it is computed).
    :param name: the new graph layer's name (default: derived from the inputs).
    :returns: a dask array of the same shape and chunks whose chunks are ``to`` arrays; its
        ``_meta`` is an empty ``to`` array. Nothing is computed until you compute or persist it.
    :raises arrayferry.ArrayFerryError: the error :func:`arrayferry.convert` raises for an empty
        chunk of the same dtype (unknown target, unsupported dtype, ...), at once, before any task runs.
    """
    _require_dask_array(x, "convert_chunks")
    meta = arrayferry.convert(x._meta, to, device=device, dtype=dtype, casting=casting)
    fn = ChunkConverter(to, device, dtype, copy, casting)
    kwargs: dict[str, Any] = {"meta": meta}
    if name is not None:
        kwargs["name"] = name
    else:  # dask appends a hash of the inputs and of ``fn`` (``__dask_tokenize__``)
        kwargs["token"] = f"arrayferry-to-{arrayferry.framework_of(meta)}"
    return x.map_blocks(fn, **kwargs)


def from_array(x: Any, chunks: Any = "auto", *, dtype: Any = None, name: str | None = None) -> Any:
    """Build a dask array from an array of any registered framework, with the chunks you choose.

    ``x`` is first viewed (or, when it must, copied) as NumPy with :func:`arrayferry.convert`,
    then handed to ``dask.array.from_array``, which copies it into the graph. A dask array is
    rechunked instead.

    :param chunks: anything ``dask.array.from_array`` accepts (``"auto"``, ``1000``, ``(100, 50)``,
        ``((60, 40), (50,))``, ...).
    :param dtype: cast on the way (checked by arrayferry: no NaN to integers, no silent narrowing).
    """
    import importlib

    da: Any = importlib.import_module("dask.array")
    if _is_dask_array(x):
        out = x if dtype is None else arrayferry.convert(x, "dask", dtype=dtype)
        return out.rechunk(chunks)
    host = arrayferry.convert(x, "numpy", dtype=dtype)
    kwargs: dict[str, Any] = {"chunks": chunks}
    if name is not None:
        kwargs["name"] = name
    return da.from_array(host, **kwargs)
