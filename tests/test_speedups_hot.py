"""The compiled hot path (``arrayferry._speedups.Hot``) and guard (``Guarded``, behind
``arrayferry.plugin.guarded_call``): what they do themselves, and that everything they do not do
goes back to Python (misses, keywords, refusals, failures), BaseExceptions passing through.

The conversions themselves are tested through ``convert``/``converter`` everywhere else, with and
without the extension (tests/test_fused_cast.py runs those suites with ARRAYFERRY_NO_SPEEDUPS=1).
"""

from __future__ import annotations

import inspect
import operator
from typing import Any

import numpy as np
import pytest

import arrayferry as af
from arrayferry import _api, _hostops
from arrayferry.plugin import guarded_call

mod = _hostops._speedups()
pytestmark = pytest.mark.skipif(mod is None, reason="arrayferry._speedups is not built here")


class Box:
    """An object of our own, converted by plain Python callables below."""

    def __init__(self, v: int) -> None:
        self.v = v


def _hot(direct: Any = None, run: Any = None) -> tuple[Any, list[tuple[str, Any]]]:
    calls: list[tuple[str, Any]] = []

    def slow(*a: Any, **kw: Any) -> Any:
        calls.append(("slow", (a, kw)))
        return "slow"

    def refused(*a: Any) -> Any:
        calls.append(("refused", a))
        return "refused"

    types: dict[type, Any] = {}
    runs = {} if run is None else {"k": run}
    types[Box] = (lambda x: "k", runs, None, runs, direct)
    return mod.Hot(types, None, slow, refused), calls


def test_direct_call_answers_and_refusals_go_to_python() -> None:
    hot, calls = _hot(direct=lambda b: b.v * 2)
    assert hot(Box(21)) == 42 and calls == []

    def refuse(b: Box) -> Any:
        raise ValueError("not this one")

    hot, calls = _hot(direct=refuse)
    assert hot(Box(1)) == "refused" and calls[0][0] == "refused"


def test_run_by_key_misses_keywords_and_failures_go_to_python() -> None:
    hot, calls = _hot(run=lambda b: b.v + 1)
    assert hot(Box(1)) == 2 and calls == []
    assert hot(3) == "slow"  # no entry for int
    assert hot(Box(1), copy=True) == "slow" and calls[-1][1][1] == {"copy": True}
    assert hot() == "slow" and hot(1, 2) == "slow"

    def boom(b: Box) -> Any:
        raise RuntimeError("fails")

    hot, calls = _hot(run=boom)
    assert hot(Box(1)) == "slow"  # Python runs it again and words the failure


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_pass_through(exc: type[BaseException]) -> None:
    def raise_it(b: Box) -> Any:
        raise exc

    for hot, _ in (_hot(direct=raise_it), _hot(run=raise_it)):
        with pytest.raises(exc):
            hot(Box(1))


def test_exported_convert_is_the_documented_function() -> None:
    assert type(af.convert) is mod.Hot
    assert repr(af.convert) == "<compiled function convert>"
    assert inspect.signature(af.convert) == inspect.signature(_api.convert)
    assert af.convert.__doc__ == _api.convert.__doc__ and af.convert.__wrapped__ is _api.convert
    x = np.arange(3.0)
    with pytest.raises(TypeError, match=r"convert\(\) takes 2 positional arguments but 3 were given"):
        af.convert(x, "torch", "cpu")  # type: ignore[misc]
    with pytest.raises(af.UnknownFrameworkError):
        af.convert(x, "no-such-framework")
    with pytest.raises(af.UnknownFrameworkError):  # an unhashable target goes to Python, which says what it is
        af.convert(x, ["numpy"])

    class Holder:
        conv = af.convert  # not bound as a method

    assert Holder().conv(x, "numpy") is x


def test_guarded_call() -> None:
    seen: list[Any] = []

    def fallback(x: Any) -> Any:
        seen.append(x)
        return "fallback"

    class F:
        def __init__(self, n: int) -> None:
            self.n = n

    g = guarded_call(lambda x: ("call", x.n), operator.attrgetter("n"), 0b1100, [0b0100, 0b1000], fallback)
    assert g(F(0b0101)) == ("call", 0b0101)  # masked: 0b0100
    assert g(F(0b1111)) == "fallback" and g(F(0)) == "fallback" and len(seen) == 2
    with pytest.raises(TypeError, match="one array"):
        g()
    with pytest.raises(ValueError, match="at most 16"):
        guarded_call(print, print, 1, range(17), print)
    with pytest.raises(AttributeError):
        g(object())  # the key's own error: the direct call raises, which refuses


def test_compiled_walk() -> None:
    from collections import namedtuple

    from arrayferry import _tree

    kinds = {dict: "dict", list: "list", tuple: "tuple", Box: "array", str: "leaf", int: "leaf"}
    names = ("array", "leaf", "dict", "list", "tuple")
    tree = {"a": [Box(1), (Box(2), "s")], "b": 3, "c": {}}
    out = mod.walk(tree, lambda b: b.v * 10, kinds, names, 10)
    assert out == {"a": [10, (20, "s")], "b": 3, "c": {}} and out is not tree and out["c"] is not tree["c"]
    with pytest.raises(mod.WalkFallback):  # a type not classified yet
        mod.walk([1.5], lambda b: b, kinds, names, 10)
    pair = namedtuple("pair", "x y")
    with pytest.raises(mod.WalkFallback):  # another container: the Python walk
        mod.walk([pair(Box(1), 2)], lambda b: b, {**kinds, pair: "namedtuple"}, names, 10)
    with pytest.raises(mod.WalkFallback):  # deeper than the limit
        mod.walk([[[Box(1)]]], lambda b: b, kinds, names, 2)

    def boom(b: Box) -> Any:
        raise ValueError("leaf failed")

    with pytest.raises(ValueError, match="leaf failed"):  # passed on: convert_tree walks again for the path
        mod.walk({"a": Box(1)}, boom, kinds, names, 10)
    # through convert_tree: namedtuples, dict subclasses and failures take the Python walk
    import collections

    x = np.arange(3.0)
    t = af.convert_tree([pair(x, 1), collections.OrderedDict(k=x)], "numpy")
    assert type(t[0]) is pair and t[0].x is x and type(t[1]) is collections.OrderedDict
    with pytest.raises(af.CopyRequiredError, match=r"\[1\]\['k'\]"):
        ro = np.arange(3.0)
        ro.flags.writeable = False
        af.convert_tree([x, {"k": ro}], "torch", copy=False)
    assert _tree._compiled_walk() is mod.walk
