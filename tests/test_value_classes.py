"""The value classes on the first conversion's path (``Step``, ``ArrayInfo``, ``Template``) are frozen
dataclasses whose ``__init__``, ``__repr__``, ``__eq__`` and ``__hash__`` are written out (so that
making the classes compiles nothing): they must be the methods ``@dataclass(frozen=True)`` generates
from the same fields. A field added without its method lines fails here."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrayferry import ArrayInfo, Device, Step, identity
from arrayferry._plan import Template

CLASSES = [Step, ArrayInfo, Template]

#: Values any field may take (hashable, of several types; some equal to each other: 1 == True).
POOL: list[Any] = [0, 1, True, False, -0.0, "a", "b", "", None, (), ("x",), (("k", 1),), frozenset(),
                   frozenset({"conj"}), identity, abs, Device("cpu"), Device("cuda", 1), (2, 3)]


def generated(cls: type) -> type:
    """The class ``@dataclass(frozen=True)`` makes from ``cls``'s fields, under the same name."""
    specs = []
    for f in dataclasses.fields(cls):
        kw: dict[str, Any] = {"repr": f.repr, "compare": f.compare, "hash": f.hash}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        if f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        specs.append((f.name, f.type, dataclasses.field(**kw)))
    ref: type = dataclasses.make_dataclass(cls.__name__, specs, frozen=True)
    ref.__qualname__ = cls.__qualname__
    return ref


def values(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    required = {f.name: st.sampled_from(POOL) for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    optional = {f.name: st.sampled_from(POOL) for f in dataclasses.fields(cls) if f.name not in required}
    return st.fixed_dictionaries(required, optional=optional)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_is_a_frozen_dataclass_with_the_generated_signature(cls: type) -> None:
    ref = generated(cls)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    sig = [(p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()]
    assert sig == [(p.name, p.kind, p.default) for p in inspect.signature(ref).parameters.values()]
    assert cls.__match_args__ == ref.__match_args__  # type: ignore[attr-defined]
    for name in ("__init__", "__repr__", "__eq__", "__hash__"):
        assert name in vars(cls), name  # written out in the class, not left to object's


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_methods_are_the_generated_ones(cls: type, data: st.DataObject) -> None:
    ref = generated(cls)
    ka, kb = data.draw(values(cls)), data.draw(values(cls))
    a, b, ra, rb = cls(**ka), cls(**kb), ref(**ka), ref(**kb)
    assert repr(a) == repr(ra) and repr(b) == repr(rb)
    assert (a == b) == (ra == rb) and (a != b) == (ra != rb)
    assert hash(a) == hash(ra) and hash(b) == hash(rb)
    assert a == cls(**ka) and hash(a) == hash(cls(**ka))
    assert a.__eq__(ra) is NotImplemented and a != ra  # another class is never equal, as generated
    for f in dataclasses.fields(cls):
        assert getattr(a, f.name) is getattr(ra, f.name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(a, f.name, 1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(a, f.name)
    name = data.draw(st.sampled_from([f.name for f in dataclasses.fields(cls)]))
    new = data.draw(st.sampled_from(POOL))
    assert dataclasses.replace(a, **{name: new}) == cls(**{**ka, name: new})
    assert repr(dataclasses.replace(a, **{name: new})) == repr(dataclasses.replace(ra, **{name: new}))
