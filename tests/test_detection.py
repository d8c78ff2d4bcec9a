"""``framework_of``, ``device_of``, ``frameworks()`` and ``Device``: detection without surprises."""

from __future__ import annotations

import array
import sys
from typing import Any

import numpy as np
import pytest

import arrayferry as af
from arrayferry._registry import Registry

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: np.zeros(3), "numpy"),
        (lambda: np.zeros((0, 3)), "numpy"),
        (lambda: np.array(1.0), "numpy"),
        (lambda: np.ma.zeros(3), "numpy"),  # detected; converting it raises (see test_errors)
        (lambda: np.zeros(2).view(np.recarray), "numpy"),
        (lambda: np.broadcast_to(np.zeros(1), (3,)), "numpy"),
        (lambda: torch.zeros(3), "torch"),
        (lambda: torch.nn.Parameter(torch.zeros(2)), "torch"),
        (lambda: torch.zeros(2).to_sparse(), "torch"),
        (lambda: torch.empty(2, device="meta"), "torch"),
        # objects no plugin owns, read through a protocol (tests/test_protocol_sources.py)
        (lambda: [1.0, 2.0], "python"),
        (lambda: (1, 2), "python"),
        (lambda: 3.5, "python"),
        (lambda: None, None),
        (lambda: "numpy", None),
        (lambda: object(), None),
        (lambda: np.float64(1.0), "numpy"),  # a NumPy scalar: read as a 0-d array (a copy)
        (lambda: np.dtype("f4"), None),
        (lambda: array.array("d", [1.0]), "buffer"),
        (lambda: memoryview(b"abc"), "buffer"),
        (lambda: np, None),
        (lambda: torch.float32, None),
    ],
    ids=lambda v: "" if callable(v) else str(v),
)
def test_framework_of(make: Any, expected: str | None) -> None:
    obj = make()
    assert af.framework_of(obj) == expected
    assert af.framework_of(obj) == expected  # cached answer agrees


def test_framework_of_asks_only_imported_frameworks() -> None:
    """An adapter whose module is not imported is never asked (so nothing gets imported)."""
    asked: list[type] = []

    class Spy(af.Adapter):
        name = "spy"
        module = "arrayferry_no_such_module_xyz"

        def owns(self, tp: type) -> bool:
            asked.append(tp)
            return True

        def describe(self, x: Any) -> af.ArrayInfo:  # the required protocol; never called here
            raise AssertionError("not called")

        def export_host(self, x: Any) -> Any:
            return x

        def import_host(self, arr: Any) -> Any:
            return arr

    class Plugin:
        @af.hookimpl
        def arrayferry_adapters(self) -> list[af.Adapter]:
            return [Spy()]

    reg = Registry(autoload=False)
    reg.register(Plugin(), "spy-plugin")
    assert reg.adapter_for_type(list) is None
    assert asked == []
    assert reg.adapter_for_type(np.ndarray).name == "numpy"
    assert "arrayferry_no_such_module_xyz" not in sys.modules


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: np.zeros(3), "cpu"),
        (lambda: np.broadcast_to(np.zeros(1), (3,)), "cpu"),
        (lambda: torch.zeros(3), "cpu"),
        (lambda: torch.zeros(3, requires_grad=True), "cpu"),
        (lambda: torch.empty(3, device="meta"), "meta"),
    ],
    ids=["numpy", "numpy-readonly", "torch", "torch-grad", "torch-meta"],
)
def test_device_of(make: Any, expected: str) -> None:
    d = af.device_of(make())
    assert isinstance(d, af.Device) and str(d) == expected
    assert d == expected and d == af.Device(expected)


def test_device_of_unknown_objects_raises() -> None:
    with pytest.raises(af.UnknownFrameworkError):
        af.device_of(object())
    assert af.device_of([1, 2]) == af.Device("cpu")  # a list is read on the host


@pytest.mark.parametrize(
    ("spec", "text", "type_", "index"),
    [
        ("cpu", "cpu", "cpu", None),
        ("cpu:0", "cpu", "cpu", None),
        ("CUDA", "cuda", "cuda", None),
        ("cuda:1", "cuda:1", "cuda", 1),
        ("gpu:2", "cuda:2", "cuda", 2),
        (af.Device("cuda", 0), "cuda:0", "cuda", 0),
    ],
)
def test_device_parsing(spec: Any, text: str, type_: str, index: int | None) -> None:
    d = af.Device.parse(spec)
    assert (str(d), d.type, d.index) == (text, type_, index)
    assert repr(d) == f"Device({text!r})"
    assert hash(d) == hash(af.Device(type_, index))


def test_device_parses_torch_devices() -> None:
    assert af.Device.parse(torch.device("cpu")) == af.Device("cpu")
    assert af.Device.parse(torch.device("cuda", 1)) == "cuda:1"


def test_device_values() -> None:
    assert af.Device("cpu", 0) == af.Device("cpu") and af.Device("cpu").is_host
    assert not af.Device("cuda").is_host
    assert af.Device("cuda", 3).dlpack == (2, 3)
    assert af.Device.from_dlpack((1, 0)) == "cpu"
    assert af.Device.from_dlpack((2, 1)) == af.Device("cuda", 1)
    with pytest.raises(AttributeError):
        af.Device("cpu").foo = 1  # type: ignore[attr-defined]
    for bad in (("", None), ("cuda", -1), ("cuda", True)):
        with pytest.raises(af.DeviceError):
            af.Device(*bad)
    with pytest.raises(af.DeviceError):
        af.Device.from_dlpack((99, 0))
    assert af.Device("cuda", 1) != "not a device"


def test_frameworks_reports_numpy_and_torch() -> None:
    infos = {f.name: f for f in af.frameworks()}
    assert {"numpy", "torch"} <= set(infos)
    np_info, t_info = infos["numpy"], infos["torch"]
    assert isinstance(np_info, af.FrameworkInfo)
    assert np_info.installed and np_info.imported and np_info.version == np.__version__
    assert t_info.installed and t_info.imported and t_info.version == torch.__version__
    assert (np_info.plugin, t_info.plugin) == ("numpy", "torch")
    assert (np_info.module, t_info.module) == ("numpy", "torch")
    assert np_info.devices is None  # not probed unless asked
    assert str(t_info) == f"torch {torch.__version__} (plugin torch)"


def test_frameworks_probe_devices() -> None:
    infos = {f.name: f for f in af.frameworks(probe_devices=True)}
    assert infos["numpy"].devices == ("cpu",)
    assert infos["torch"].devices is not None and infos["torch"].devices[0] == "cpu"
    if not torch.cuda.is_available():
        assert infos["torch"].devices == ("cpu",)


def test_frameworks_lists_registered_but_missing_frameworks() -> None:
    class Ghost(af.Adapter):
        name = "ghost"
        module = "arrayferry_ghost_module_xyz"

        def owns(self, tp: type) -> bool:
            return False

        def describe(self, x: Any) -> af.ArrayInfo:  # the required protocol; never called here
            raise AssertionError("not called")

        def export_host(self, x: Any) -> Any:
            return x

        def import_host(self, arr: Any) -> Any:
            return arr

    class Plugin:
        @af.hookimpl
        def arrayferry_adapters(self) -> list[af.Adapter]:
            return [Ghost()]

    name = af.register_plugin(Plugin(), "ghost-plugin")
    try:
        infos = {f.name: f for f in af.frameworks()}
        g = infos["ghost"]
        assert (g.installed, g.imported, g.version, g.plugin) == (False, False, None, "ghost-plugin")
        assert str(g) == "ghost not installed (plugin ghost-plugin)"
    finally:
        af.unregister_plugin(name)
    assert "ghost" not in {f.name for f in af.frameworks()}
