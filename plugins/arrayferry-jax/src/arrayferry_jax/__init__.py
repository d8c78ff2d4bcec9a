"""arrayferry-jax: the JAX plugin for arrayferry.

Installed with ``pip install 'arrayferry[jax]'`` (or ``pip install -e plugins/arrayferry-jax``),
it joins arrayferry through the ``arrayferry.plugins`` entry point (name ``jax``); nothing needs
importing by hand. Importing this module imports neither JAX nor pluggy.

>>> import arrayferry as af
>>> j = af.convert(np_array, "jax", device="cpu:2")   # doctest: +SKIP
>>> print(af.plan(j, "torch").explain())              # doctest: +SKIP

See :mod:`arrayferry_jax._adapter` for the JAX traps the adapter routes around.
"""

from __future__ import annotations

from arrayferry import Adapter, hookimpl

from ._adapter import ALIGNMENT, NARROW_WITHOUT_X64, JaxAdapter

__all__ = ["ALIGNMENT", "NARROW_WITHOUT_X64", "JaxAdapter", "arrayferry_adapters"]
__version__ = "0.1.0"


@hookimpl
def arrayferry_adapters() -> list[Adapter]:
    """The JAX adapter (creating it imports nothing)."""
    return [JaxAdapter()]
