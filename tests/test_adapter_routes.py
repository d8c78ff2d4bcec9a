"""An adapter offers the routes it implements, and only those.

Left unset, ``host_export``/``host_import``/``dlpack_import``/``cai_import`` follow the methods an
adapter overrides; declared True without them, the adapter is refused at registration with a
several-line ``PluginError`` naming the adapter, the capability and the missing methods.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np
import pytest

import arrayferry as af
from arrayferry.plugin import ROUTE_METHODS, Adapter, ArrayInfo, PluginError, adapter_named, hookimpl

torch = pytest.importorskip("torch")


class Box:
    """A framework of one class: a NumPy array in a box (this module is its ``module``)."""

    def __init__(self, a: Any) -> None:
        self.a = a


class MinimalAdapter(Adapter):
    """What the issue calls the required protocol: name, owns, describe/signature, one way out, one way in."""

    name = "boxes"
    module = __name__

    def owns(self, tp: type) -> bool:
        return tp is Box

    def describe(self, x: Any) -> ArrayInfo:
        return adapter_named("numpy").describe(x.a).with_(framework=self.name)

    def signature(self, x: Any) -> Hashable:
        return (Box, adapter_named("numpy").signature(x.a))

    def export_host(self, x: Any) -> Any:
        return x.a

    def import_host(self, arr: Any) -> Any:
        return Box(arr)


class ExportOnly(MinimalAdapter):
    """A way out, and no way in: ``host_import`` explicitly off (refused: the protocol needs one)."""

    name = "boxes_out"
    host_import = False


class DeclaresDLPack(MinimalAdapter):
    name = "boxes_dlpack"
    dlpack_import = True  # but no from_dlpack


class DeclaresEverything(Adapter):
    name = "boxes_nothing"
    module = __name__
    host_export = True
    host_import = True
    cai_import = True


def _plugin(*adapters: Adapter) -> Any:
    class Plugin:
        @hookimpl
        def arrayferry_adapters(self) -> list[Adapter]:
            return list(adapters)

    return Plugin()


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for n in names:
        af.unregister_plugin(n)


def test_unset_routes_follow_the_methods() -> None:
    a = MinimalAdapter()
    assert (a.host_export, a.host_import, a.dlpack_import, a.cai_import) == (True, True, False, False)
    assert (a.dlpack_export, a.cai_export) == (False, False)  # opt-in: the arrays speak the protocol
    assert Adapter.host_export is False and Adapter.host_import is False  # the base implements nothing
    assert ExportOnly().host_import is False and ExportOnly().host_export is True
    assert set(ROUTE_METHODS) == {"host_export", "host_import", "dlpack_import", "cai_import"}


def test_a_subclass_recomputes_what_its_base_left_unset() -> None:
    class Bare(Adapter):
        name = "bare"

    class Out(Bare):
        def host_exporter(self, info: ArrayInfo) -> Any:
            return lambda x: x

    class Off(Out):
        host_export = False  # by hand: not offered even though implemented

    assert Bare.host_export is False and Out.host_export is True and Out.host_import is False
    assert Off.host_export is False
    class OffAgain(Off):  # a hand-set value is inherited, not recomputed
        pass

    assert OffAgain.host_export is False


def test_minimal_plugin_converts_through_its_route(registered: list[str]) -> None:
    registered.append(af.register_plugin(_plugin(MinimalAdapter()), name="boxes-plugin"))
    x = np.array([1.5, -0.0, np.nan, np.inf], dtype=np.float32)
    b = af.convert(x, "boxes")
    assert isinstance(b, Box) and b.a is x  # zero-copy both ways: the same memory
    p = af.plan(x, "boxes")
    assert p.zero_copy and "import_host" in p.explain()
    back = af.convert(b, "numpy")
    assert np.shares_memory(back, x)
    t = af.convert(b, "torch")
    t[0] = 7.0  # written through the tensor, read through the box
    assert b.a[0] == 7.0 and np.array_equal(back.view(np.uint32), x.view(np.uint32))
    b2 = af.convert(torch.tensor([1, 2, 3], dtype=torch.int16), "boxes")
    assert b2.a.dtype == np.int16 and b2.a.tolist() == [1, 2, 3]
    assert af.framework_of(b) == "boxes"


def test_minimal_plugin_does_not_offer_routes_it_cannot_run(registered: list[str]) -> None:
    registered.append(af.register_plugin(_plugin(MinimalAdapter()), name="boxes-plugin"))
    t = torch.arange(4.0)
    p = af.plan(t, "boxes")  # torch offers DLPack, boxes does not take it: the host route
    assert p.route == "host" and p.zero_copy
    assert "dlpack" not in [s.name for s in p.steps]
    assert np.shares_memory(af.convert(t, "boxes").a, t.numpy())
    # a route the target withholds (host_import = False, DLPack not implemented) is never taken:
    # with no way in at all, the adapter is refused at registration, never a NotImplementedError later
    with pytest.raises(PluginError) as info:
        af.register_plugin(_plugin(ExportOnly()), name="boxes-out-plugin")
    msg = str(info.value)
    assert "'boxes_out'" in msg.splitlines()[0] and msg.splitlines()[-1].startswith("Hint:")
    assert "required: a way in: none of host_import, dlpack_import, cai_import is offered" in msg
    assert "a way out" not in msg  # it has one
    af.unregister_plugin("boxes-out-plugin")


def test_declared_route_without_its_method_is_refused(registered: list[str]) -> None:
    with pytest.raises(PluginError) as info:
        af.register_plugin(_plugin(DeclaresDLPack()), name="boxes-dlpack-plugin")
    msg = str(info.value)
    lines = msg.splitlines()
    assert len(lines) >= 4 and lines[-1].startswith("Hint:")
    assert "'boxes_dlpack'" in lines[0]
    assert any("plugin: boxes-dlpack-plugin" in ln for ln in lines)
    assert any("DeclaresDLPack" in ln for ln in lines)
    assert any("dlpack_import = True" in ln and "from_dlpack is not implemented" in ln for ln in lines)
    assert ("boxes-dlpack-plugin", msg) in af.broken_plugins()
    assert "boxes_dlpack" not in {f.name for f in af.frameworks()}
    with pytest.raises(af.UnknownFrameworkError):
        adapter_named("boxes_dlpack")
    # the other frameworks keep working
    assert af.convert(np.arange(3), "torch").tolist() == [0, 1, 2]
    af.unregister_plugin("boxes-dlpack-plugin")


def test_every_missing_method_is_named(registered: list[str]) -> None:
    with pytest.raises(PluginError) as info:
        af.register_plugin(_plugin(DeclaresEverything()), name="boxes-nothing-plugin")
    msg = str(info.value)
    assert "host_export = True, but export_host or host_exporter is not implemented" in msg
    assert "host_import = True, but import_host or host_importer is not implemented" in msg
    assert "cai_import = True, but from_cai is not implemented" in msg
    assert "dlpack_import" not in msg
    af.unregister_plugin("boxes-nothing-plugin")


class _Nothing(Adapter):
    """No member of the required protocol at all."""


class _NoDescribe(Adapter):
    name = "boxes_nodescribe"
    module = __name__

    def owns(self, tp: type) -> bool:
        return tp is Box

    def export_host(self, x: Any) -> Any:
        return x.a

    def import_host(self, arr: Any) -> Any:
        return Box(arr)


class _DLPackOnly(MinimalAdapter):
    """No host route either way; DLPack both ways is a way out and a way in: accepted."""

    name = "boxes_dlpack_only"
    host_export = False
    host_import = False
    dlpack_export = True

    def from_dlpack(self, x: Any, device: Any = None, copy: bool | None = None) -> Any:
        return Box(np.from_dlpack(x))


@pytest.mark.parametrize(
    ("adapter", "named", "not_named"),
    [
        (_Nothing(), ["required: name (the framework name users pass as to=) is ''",
                      "required: module (the top-level module whose import means arrays may exist) is ''",
                      "required: owns is not implemented", "required: describe is not implemented",
                      "required: a way out: none of host_export, dlpack_export, cai_export is offered",
                      "required: a way in: none of host_import, dlpack_import, cai_import is offered"], []),
        (_NoDescribe(), ["required: describe is not implemented"], ["required: owns", "a way out", "a way in", "name ("]),
        (ExportOnly(), ["a way in"], ["a way out", "owns", "describe"]),
    ],
    ids=["nothing", "no-describe", "no-way-in"],
)
def test_a_plugin_missing_a_required_member_is_refused_naming_it(
        registered: list[str], adapter: Adapter, named: list[str], not_named: list[str]) -> None:
    before = {f.name for f in af.frameworks()}
    with pytest.raises(PluginError) as info:
        af.register_plugin(_plugin(adapter), name="gappy-plugin")
    msg = str(info.value)
    lines = msg.splitlines()
    assert lines[0] == f"Adapter {adapter.name!r} does not meet the adapter protocol."
    assert "  - plugin: gappy-plugin" in lines and lines[-1].startswith("Hint:")
    for text in named:
        assert any(text in ln for ln in lines), (text, msg)
    for text in not_named:
        assert text not in msg, (text, msg)
    assert ("gappy-plugin", msg) in af.broken_plugins()
    assert {f.name for f in af.frameworks()} == before  # nothing half registered
    af.unregister_plugin("gappy-plugin")


def test_dlpack_both_ways_meets_the_protocol(registered: list[str]) -> None:
    a = _DLPackOnly()
    assert (a.host_export, a.host_import, a.dlpack_export, a.dlpack_import) == (False, False, True, True)
    registered.append(af.register_plugin(_plugin(a), name="boxes-dlpack-only-plugin"))
    assert "boxes_dlpack_only" in {f.name for f in af.frameworks()}
