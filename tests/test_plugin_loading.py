"""Plugin loading through real entry points: broken plugins are reported by name, the rest keep working.

Distributions are written into a temporary directory (a ``.dist-info`` with ``entry_points.txt``,
as pip would) and each check runs in a fresh interpreter with that directory on ``sys.path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugins_fixtures.helpers import FIXTURES, make_dist, run_python

import arrayferry as af
from arrayferry._registry import Registry

TINY = FIXTURES / "tinyarray"
ENTRY_POINTS = {
    "broken_import": "broken_import",
    "raising_hook": "broken:raising_hook",
    "misspelled_hook": "broken:misspelled_hook",
    "absent_framework": "broken:absent_framework",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the tinyarray plugin and the broken fixture plugins, each its own distribution."""
    d = tmp_path_factory.mktemp("site")
    make_dist(d, "arrayferry-tinyarray", {"tinyarray": "arrayferry_tinyarray"},
              [TINY / "tinyarray.py", TINY / "arrayferry_tinyarray.py"])
    for name, value in ENTRY_POINTS.items():
        make_dist(d, f"af-fixture-{name.replace('_', '-')}", {name: value},
                  [FIXTURES / "broken.py", FIXTURES / "broken_import.py"])
    return d


PROBE = """
import json, sys
import numpy as np
import arrayferry as af
x = np.arange(6, dtype=np.float32).reshape(2, 3)
out = {"broken": dict(af.broken_plugins()), "frameworks": {f.name: f.installed for f in af.frameworks()}}
out["framework_of"] = af.framework_of(x)
t = af.convert(x, "torch")
out["torch_ok"] = t.tolist() == x.tolist()
if "tinyarray" in out["frameworks"]:
    tiny = af.convert(x, "tinyarray")
    out["tiny_zero_copy"] = af.plan(x, "tinyarray").zero_copy
    out["tiny_back"] = af.convert(tiny, "numpy").tolist() == x.tolist()
    out["tiny_to_torch"] = af.convert(tiny, "torch").tolist() == x.tolist()
for name in ("raising_hook", "absentfw"):
    try:
        af.convert(x, name)
        out[name] = None
    except af.ArrayFerryError as exc:
        out[name] = [type(exc).__name__, str(exc)]
out["absent_imported"] = "af_fixture_absent_framework" in sys.modules
print(json.dumps(out))
"""


_PROBES: dict[tuple[str, bool, str], dict] = {}


def _probe(site: Path, autoload: bool = True, extra: str = "") -> dict:
    """Run PROBE in a fresh interpreter (once per setting: each start imports torch)."""
    key = (str(site), autoload, extra)
    if key not in _PROBES:
        res = run_python(["-c", extra + PROBE], site, autoload=autoload)
        assert res.returncode == 0, res.stderr
        _PROBES[key] = json.loads(res.stdout.strip().splitlines()[-1])
    return _PROBES[key]


def test_broken_plugins_reported_by_name_and_others_work(site: Path) -> None:
    got = _probe(site)
    broken = got["broken"]
    assert set(broken) == {"broken_import", "raising_hook", "misspelled_hook"}
    assert broken["broken_import"] == "ImportError: broken_import fails at import on purpose"
    assert "RuntimeError in arrayferry_adapters: raising_hook fails inside its hook on purpose" in broken["raising_hook"]
    assert "rule broken: no hook named 'arrayferry_adaptors'" in broken["misspelled_hook"]
    # conversions between the other frameworks keep working, the entry-point plugin included
    assert got["framework_of"] == "numpy"
    assert got["torch_ok"] and got["tiny_back"] and got["tiny_to_torch"]
    assert got["tiny_zero_copy"] is True
    assert got["frameworks"]["tinyarray"] is True


def test_broken_plugin_used_explicitly_raises_plugin_error(site: Path) -> None:
    kind, msg = _probe(site)["raising_hook"]
    assert kind == "PluginError"
    assert "'raising_hook'" in msg and "is broken" in msg and "raising_hook fails inside its hook on purpose" in msg
    assert msg.splitlines()[-1].startswith("Hint:")


def test_plugin_of_absent_framework_costs_nothing(site: Path) -> None:
    got = _probe(site)
    assert got["frameworks"]["absentfw"] is False  # registered, reported as not installed
    assert got["absent_imported"] is False  # never imported, not even when asked for by name
    kind, msg = got["absentfw"]
    assert kind == "UnknownFrameworkError"
    assert "af_fixture_absent_framework" in msg and msg.splitlines()[-1].startswith("Hint:")


def test_autoload_disabled_by_environment(site: Path) -> None:
    got = _probe(site, autoload=False)
    assert got["broken"] == {}
    assert "tinyarray" not in got["frameworks"] and "absentfw" not in got["frameworks"]
    assert got["torch_ok"]


def test_register_plugin_by_hand(site: Path) -> None:
    got = _probe(site, autoload=False, extra="import arrayferry, arrayferry_tinyarray\n"
                 "arrayferry.register_plugin(arrayferry_tinyarray)\n")
    assert got["frameworks"]["tinyarray"] is True
    assert got["tiny_back"] and got["tiny_to_torch"] and got["tiny_zero_copy"] is True


@pytest.fixture
def fixtures_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TINY))
    monkeypatch.syspath_prepend(str(FIXTURES))


def _lines(exc: BaseException) -> list[str]:
    return str(exc).splitlines()


@pytest.mark.usefixtures("fixtures_path")
def test_register_plugin_whose_hook_raises() -> None:
    import broken

    reg = Registry(autoload=False)
    with pytest.raises(af.PluginError) as info:
        reg.register(broken.raising_hook, name="raising_hook")
    lines = _lines(info.value)
    assert lines[0] == "Plugin 'raising_hook' was registered but its hook failed."
    assert "raising_hook fails inside its hook on purpose" in lines[1]
    assert lines[-1].startswith("Hint:")
    assert [b.name for b in reg.broken] == ["raising_hook"]
    assert "numpy" in reg.adapters and "raising_hook" not in reg.pm.list_name_plugin()[0]


class _WrongArgs:
    @af.hookimpl
    def arrayferry_adapters(self, flavour: str) -> list[af.Adapter]:
        return []


class _Fewer:
    @af.hookimpl
    def arrayferry_adapters(self) -> list[af.Adapter]:  # a plugin with no adapters: allowed
        return []


class _OldParseHook:
    @af.hookimpl
    def arrayferry_parse_device(self, obj: object) -> None:
        return None


class _OldDtypeHook:
    @af.hookimpl
    def arrayferry_parse_dtype(self, obj: object) -> None:
        return None


@pytest.mark.usefixtures("fixtures_path")
@pytest.mark.parametrize(
    ("make", "hook", "signature", "rule"),
    [
        (lambda: __import__("broken").misspelled_hook, "arrayferry_adaptors", "arrayferry_adaptors()",
         "no hook named 'arrayferry_adaptors' is specified (known hooks: arrayferry_adapters"),
        (_WrongArgs, "arrayferry_adapters", "arrayferry_adapters(flavour: 'str')",
         "Argument(s) {'flavour'} are declared in the hookimpl but can not be found in the hookspec"),
        (_OldParseHook, "arrayferry_parse_device", "arrayferry_parse_device(obj)",
         "the hook 'arrayferry_parse_device' was removed (one extension mechanism per job): a framework's "
         "device objects are read by its adapter's parse_device(obj) method"),
        (_OldDtypeHook, "arrayferry_parse_dtype", "arrayferry_parse_dtype(obj)",
         "the hook 'arrayferry_parse_dtype' was removed (one extension mechanism per job): a framework's "
         "dtype objects are read by its adapter's parse_dtype(obj) method"),
    ],
    ids=["unknown-hook", "wrong-arguments", "removed-parse-device", "removed-parse-dtype"],
)
def test_validation_errors_are_plugin_errors(make, hook: str, signature: str, rule: str) -> None:  # type: ignore[no-untyped-def]
    reg = Registry(autoload=False)
    before = set(reg.adapters)
    with pytest.raises(af.PluginError) as info:
        reg.register(make(), name="bad")
    lines = _lines(info.value)
    assert lines[0] == "Plugin 'bad' does not match arrayferry's hook specifications."
    assert lines[1].startswith("  - plugin: bad (")
    assert lines[2] == f"  - hook: {hook}"
    assert lines[3].startswith(f"  - signature: {signature}")
    assert lines[4].startswith(f"  - rule broken: {rule}")
    assert lines[-1].startswith("Hint:")
    assert not reg.pm.has_plugin("bad") and set(reg.adapters) == before
    assert reg.register(_Fewer(), name="fewer") == "fewer"


# ------------------------------------------------------------------------------------------------
# entry-point plugins load on first need (a type, name, device or dtype the built-ins do not know,
# or a listing), and then the registry is the one an eager load would have made

LAZY = """
import json, sys
import importlib.metadata as md
scans = []
_entry_points = md.entry_points
def counting(**kw):
    scans.append(kw.get("group"))
    return _entry_points(**kw)
md.entry_points = counting
import numpy as np
import arrayferry as af
from arrayferry._registry import registry
PLUGIN_MODULES = ("arrayferry_tinyarray", "broken", "broken_import", "arrayferry_jax",
                  "arrayferry.adapters.torch", "arrayferry.adapters.cupy")  # torch is not imported yet
x = np.arange(6, dtype=np.float32)
y = af.convert(x, "numpy")  # built-ins only: no scan, no plugin imported
out = {"before": {"scans": len(scans), "plugins": sorted(m for m in PLUGIN_MODULES if m in sys.modules),
                  "same": y is x, "describe": af.framework_of(x), "plan": af.plan(x, "np").zero_copy}}
numpy_adapter = registry().adapter_named("numpy")
TRIGGER
out["after"] = {"scans": len(scans), "tiny_loaded": "arrayferry_tinyarray" in sys.modules,
                "adapters": list(registry().adapters), "broken": sorted(dict(af.broken_plugins())),
                "numpy_kept": registry().adapter_named("numpy") is numpy_adapter}
print(json.dumps(out))
"""

TRIGGERS = {
    # a type no built-in owns: the plugin that owns it is found
    "type": "import tinyarray\n"
            "tiny = tinyarray.TinyArray(np.arange(6, dtype=np.float32), 'float32', (6,))\n"
            "out['value'] = af.convert(tiny, 'numpy').tolist()\n",
    # a name no built-in has
    "name": "out['value'] = np.asarray(af.convert(x, 'tinyarray').buffer.cast('f')).tolist()\n",
    "listing": "out['value'] = sorted(f.name for f in af.frameworks())\n",
    "broken": "out['value'] = sorted(dict(af.broken_plugins()))\n",
    "register": "import arrayferry_tinyarray\n"
                "try:\n"
                "    af.register_plugin(arrayferry_tinyarray, name='tinyarray')\n"
                "except af.PluginError as exc:\n"
                "    out['value'] = str(exc).splitlines()[0]\n",
}


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_entry_point_plugins_load_on_first_need(site: Path, trigger: str) -> None:
    res = run_python(["-c", LAZY.replace("TRIGGER", TRIGGERS[trigger])], site)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["before"] == {"scans": 0, "plugins": [], "same": True, "describe": "numpy", "plan": True}
    after = got["after"]
    assert after["scans"] == 1  # the distributions are scanned once
    assert after["tiny_loaded"] and after["numpy_kept"]
    assert after["adapters"][:3] == ["numpy", "torch", "cupy"] and "tinyarray" in after["adapters"]
    assert after["broken"] == ["broken_import", "misspelled_hook", "raising_hook"]
    # every trigger gives the registry an eager load gives (the listing loads everything first)
    if trigger == "listing":
        assert got["value"] == sorted(after["adapters"])
    else:
        listing = run_python(["-c", LAZY.replace("TRIGGER", TRIGGERS["listing"])], site)
        assert listing.returncode == 0, listing.stderr
        assert json.loads(listing.stdout.strip().splitlines()[-1])["after"]["adapters"] == after["adapters"]
    if trigger in ("type", "name"):
        assert got["value"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    if trigger == "register":  # the entry point was loaded first, as with an eager registry
        assert "already" in got["value"] or "Cannot register" in got["value"]


def test_device_object_of_a_plugin_framework_loads_the_plugins() -> None:
    pytest.importorskip("jax")
    pytest.importorskip("arrayferry_jax")
    code = ("import sys, jax, arrayferry as af\n"
            "assert 'arrayferry_jax' not in sys.modules\n"
            "d = af.Device.parse(jax.devices('cpu')[0])\n"
            "print(d, 'arrayferry_jax' in sys.modules)\n")
    res = run_python(["-c", code], None)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["cpu", "True"]  # read by the JAX adapter: no built-in knows the object


def test_a_later_adapter_cannot_take_an_earlier_ones_name_module_or_alias() -> None:
    from arrayferry.adapters.numpy import NumpyAdapter

    class MaskedView(NumpyAdapter):  # another adapter over the numpy module (say, masked arrays)
        name = "npmasked"
        aliases = ("np", "masked")

    class _Plugin:
        @af.hookimpl
        def arrayferry_adapters(self) -> list[af.Adapter]:
            return [MaskedView()]

    reg = Registry(autoload=False)
    reg.register(_Plugin(), name="masked")
    numpy_adapter = reg.adapters["numpy"]
    assert type(numpy_adapter) is NumpyAdapter
    assert reg.adapter_named("numpy") is numpy_adapter  # not taken over through MaskedView.module
    assert reg.adapter_named("np") is numpy_adapter  # nor through its alias
    assert type(reg.adapter_named("npmasked")) is MaskedView and type(reg.adapter_named("masked")) is MaskedView
    np = pytest.importorskip("numpy")
    assert reg.adapter_for_type(np.ndarray) is numpy_adapter


def test_hook_discovery_matches_pluggys_own() -> None:
    """The registry's PluginManager reads a module's hooks without getattr_static, with pluggy's answers."""
    import functools
    import sys
    import types

    import pluggy

    from arrayferry._registry import _manager_class

    mod = types.ModuleType("fake_plugin")
    exec(
        "import arrayferry as af, functools\n"
        "@af.hookimpl\n"
        "def arrayferry_adapters(): return []\n"
        "@af.hookimpl(specname='arrayferry_adapters')\n"
        "def other_name(): return []\n"
        "def plain(): pass\n"
        "@af.hookimpl\n"
        "def __dunder__(): return []\n"
        "class K:\n"
        "    @af.hookimpl\n"
        "    def arrayferry_adapters(self): return []\n"
        "    @staticmethod\n"
        "    @af.hookimpl\n"
        "    def s(): return []\n"
        "bound = K().arrayferry_adapters\n"
        "stat = staticmethod(arrayferry_adapters)\n"
        "clsm = classmethod(af.hookimpl(lambda cls: []))\n"
        "part = functools.partial(arrayferry_adapters)\n"
        "wrapped = functools.wraps(arrayferry_adapters)(lambda: [])\n"
        "number = 3\n",
        mod.__dict__,
    )
    import arrayferry.adapters.cupy
    import arrayferry.adapters.numpy
    import arrayferry.adapters.torch

    plugins: list[object] = [mod, mod.K, mod.K(), arrayferry.adapters.numpy, arrayferry.adapters.torch,
                             arrayferry.adapters.cupy, functools, sys]
    plugins += [sys.modules[m] for m in ("arrayferry_jax", "arrayferry_dask", "arrayferry_pyarrow",
                                         "arrayferry_array_api_strict") if m in sys.modules]
    ours = _manager_class()("arrayferry")
    theirs = pluggy.PluginManager("arrayferry")
    hooks = 0
    for plugin in plugins:
        for name in dir(plugin):
            got = ours.parse_hookimpl_opts(plugin, name)
            assert got == theirs.parse_hookimpl_opts(plugin, name), (plugin, name)
            hooks += got is not None
    assert hooks >= 12  # the marked functions above, and each built-in's arrayferry_adapters


def test_builtins_of_frameworks_not_imported_register_on_first_need() -> None:
    """numpy and torch imported: their adapters register with the registry; CuPy's on first need."""
    code = ("import sys, numpy as np, torch, arrayferry as af\n"
            "from arrayferry._registry import registry\n"
            "t = af.convert(np.arange(3, dtype=np.float32), 'torch')\n"
            "before = 'arrayferry.adapters.cupy' in sys.modules\n"
            "torch_adapter = registry().adapter_named('torch')\n"
            "cp = registry().adapter_named('cp')\n"
            "print(before, cp.name, 'cupy' in sys.modules, registry().adapter_named('torch') is torch_adapter,\n"
            "      list(registry().adapters)[:3] == ['numpy', 'torch', 'cupy'], t.tolist() == [0.0, 1.0, 2.0])\n")
    res = run_python(["-c", code], None)
    assert res.returncode == 0, res.stderr
    # the alias found the adapter, which imported nothing; the others kept their identity and order
    assert res.stdout.split() == ["False", "cupy", "False", "True", "True", "True"]


def test_threads_asking_at_once_all_see_the_plugins(site: Path) -> None:
    """Threads that need the plugins at the same time wait for the one loading them: none sees a
    half-loaded registry (an unknown type, or a cached "no adapter")."""
    code = ("import threading, numpy as np, arrayferry as af, tinyarray\n"
            "tiny = tinyarray.TinyArray(np.arange(6, dtype=np.float32), 'float32', (6,))\n"
            "barrier = threading.Barrier(8)\n"
            "got = []\n"
            "def work():\n"
            "    barrier.wait()\n"
            "    try:\n"
            "        got.append((af.framework_of(tiny), af.convert(tiny, 'numpy').tolist()))\n"
            "    except Exception as exc:\n"
            "        got.append((type(exc).__name__, str(exc)))\n"
            "ts = [threading.Thread(target=work) for _ in range(8)]\n"
            "[t.start() for t in ts]\n"
            "[t.join() for t in ts]\n"
            "print(sorted(set(map(repr, got))))\n")
    res = run_python(["-c", code], site)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == repr([repr(("tinyarray", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))])
