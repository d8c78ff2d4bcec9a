"""What the protocol fallback costs (issue 13, "Cost").

Registered types never reach the protocol adapters: converting NumPy, torch, JAX, Dask and
array-api-strict arrays works with the protocol lookup made to raise, both warm (every cache
filled) and cold (a registered type never seen before, every cache emptied). An object no
plugin owns is detected once per type: the protocol module's lookup runs once for each new type,
however many conversions, ``framework_of`` and ``plan`` calls follow, also for a type no protocol
reads (refused each time, detected once). The timings are in ``docs/benchmarks.md`` (the
``protocols`` block, measured in the same run as the registered zero-copy rows).
"""

from __future__ import annotations

import array
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import arrayferry as af
from arrayferry._registry import registry
from arrayferry.adapters import protocols

torch = pytest.importorskip("torch")


def _registered_arrays() -> list[tuple[str, Callable[[], Any]]]:
    """(target, maker) of an array of each registered, installed framework (16 float32 values)."""
    base = np.arange(16, dtype=np.float32)
    out: list[tuple[str, Callable[[], Any]]] = [("numpy", lambda: base.copy()),
                                                ("torch", lambda: torch.arange(16, dtype=torch.float32))]
    if importlib.util.find_spec("jax") is not None and "jax" in registry().adapters:
        import jax.numpy as jnp

        out.append(("jax", lambda: jnp.arange(16, dtype=jnp.float32)))
    if importlib.util.find_spec("dask") is not None and "dask" in registry().adapters:
        import dask.array as da

        out.append(("dask", lambda: da.arange(16, dtype="float32", chunks=8)))
    if importlib.util.find_spec("array_api_strict") is not None and "array_api_strict" in registry().adapters:
        import array_api_strict as xps

        out.append(("array_api_strict", lambda: xps.arange(16, dtype=xps.float32)))
    return out


def _forbid_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the protocol lookup was consulted for a registered type")

    monkeypatch.setattr(protocols, "protocol_adapter_for_type", boom)
    monkeypatch.setattr(type(registry()), "protocol_adapter_for_type", boom)


def _all_pairs() -> None:
    arrays = _registered_arrays()
    names = [n for n, _ in arrays]
    for src, make in arrays:
        for tgt in names:
            x = make()
            out = af.convert(x, tgt)
            assert af.framework_of(out) == tgt
            back = af.convert(out, "numpy", copy=True)
            assert back.dtype == np.float32 and back.tobytes() == np.arange(16, dtype=np.float32).tobytes()
            assert af.framework_of(x) == src
            af.plan(x, tgt)


def test_registered_types_never_consult_the_protocol_lookup_warm(monkeypatch: pytest.MonkeyPatch) -> None:
    _all_pairs()  # warm every cache
    _forbid_protocols(monkeypatch)
    _all_pairs()
    # convert_tree and the converter take the same path
    tree = af.convert_tree({"a": np.ones(3, np.float32), "b": [torch.zeros(2)]}, "torch")
    assert isinstance(tree["a"], torch.Tensor) and isinstance(tree["b"][0], torch.Tensor)
    assert isinstance(af.converter("torch")(np.ones(2)), torch.Tensor)


def test_registered_types_never_consult_the_protocol_lookup_cold(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered framework's type never seen before (subclasses), every cache emptied."""

    class FreshArray(np.ndarray):
        pass

    class FreshTensor(torch.Tensor):
        pass

    _forbid_protocols(monkeypatch)
    af.clear_cache()
    registry().type_cache.clear()
    registry().protocol_cache.clear()
    _all_pairs()
    a = np.arange(6, dtype=np.float64).view(FreshArray)
    assert af.framework_of(a) == "numpy"
    t = af.convert(a, "torch")
    assert t.data_ptr() == a.ctypes.data  # zero-copy, as for a plain ndarray
    ft = torch.arange(4, dtype=torch.int32).as_subclass(FreshTensor)
    assert af.framework_of(ft) == "torch"
    assert af.convert(ft, "numpy").tolist() == [0, 1, 2, 3]


def test_an_unknown_type_is_detected_once_per_type(monkeypatch: pytest.MonkeyPatch) -> None:
    real = protocols.protocol_adapter_for_type
    calls: list[type] = []

    def counting(tp: type) -> Any:
        calls.append(tp)
        return real(tp)

    monkeypatch.setattr(protocols, "protocol_adapter_for_type", counting)
    af.clear_cache()
    registry().type_cache.clear()
    registry().protocol_cache.clear()

    class Opaque:  # no protocol at all: refused every time, detected once
        pass

    class Wrapped:  # only __array_interface__
        def __init__(self) -> None:
            self.a = np.arange(4.0)

        @property
        def __array_interface__(self) -> Any:
            return self.a.__array_interface__

    objs = [[1.0, 2.0], memoryview(np.arange(4.0)), array.array("d", [1.0, 2.0]), b"abcd", np.float32(3.5),
            Wrapped()]
    for _ in range(5):
        for o in objs:
            assert af.framework_of(o) is not None
            af.plan(o, "torch")
            af.convert(o, "torch")
            af.convert(o, "numpy")
        with pytest.raises(af.UnknownFrameworkError, match="Hint:"):
            af.convert(Opaque(), "torch")
        assert af.framework_of(Opaque()) is None
    seen = [type(o) for o in objs] + [Opaque]
    assert sorted(calls, key=id) == sorted(seen, key=id), calls  # each type once, nothing else
