"""arrayferry-pyarrow: the Apache Arrow (pyarrow) plugin for arrayferry.

Installed with arrayferry's ``pyarrow`` extra (or ``pip install -e plugins/arrayferry-pyarrow``),
it joins arrayferry through the ``arrayferry.plugins`` entry point (name ``pyarrow``); nothing
needs importing by hand. Importing this module imports neither pyarrow nor NumPy.

>>> import arrayferry as af
>>> col = af.convert(np.arange(4.0), "pyarrow")          # doctest: +SKIP  (a pyarrow.Array, zero-copy)
>>> t = af.convert(col, "torch")                         # doctest: +SKIP  (a copy: Arrow memory is immutable)
>>> print(af.plan(pa.chunked_array([...]), "numpy").explain())  # doctest: +SKIP

See :mod:`arrayferry_pyarrow._adapter` for the pyarrow traps the adapter routes around.
"""

from __future__ import annotations

from arrayferry import Adapter, hookimpl

from ._adapter import ARROW_DTYPES, ArrowAdapter, from_numpy

__all__ = ["ARROW_DTYPES", "ArrowAdapter", "arrayferry_adapters", "from_numpy"]
__version__ = "0.1.0"


@hookimpl
def arrayferry_adapters() -> list[Adapter]:
    """The Arrow adapter (creating it imports nothing)."""
    return [ArrowAdapter()]
