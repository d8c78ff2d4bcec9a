"""arrayferry plugin for Dask arrays.

* ``arrayferry.convert(dask_array, "numpy" | "torch" | ...)`` materialises the array (one
  ``compute()``; the plan's ``materialise`` step names the chunks and bytes). It always copies,
  so ``copy=False`` raises :class:`arrayferry.CopyRequiredError`.
* ``arrayferry.convert(array, "dask")`` builds a dask array with automatic chunks;
  :func:`from_array` chooses the chunks.
* :func:`convert_chunks` converts chunk by chunk, lazily, on the workers holding the chunks.

Importing this module imports neither dask nor any array framework.
"""

from __future__ import annotations

from ._adapter import DaskAdapter, arrayferry_adapters, materialise
from ._chunks import ChunkConverter, chunk_framework, convert_chunks, from_array

__all__ = [
    "ChunkConverter",
    "DaskAdapter",
    "__version__",
    "arrayferry_adapters",
    "chunk_framework",
    "convert_chunks",
    "from_array",
    "materialise",
]

__version__ = "0.1.0"
