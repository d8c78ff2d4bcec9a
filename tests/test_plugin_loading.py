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
