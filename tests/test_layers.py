"""The import layers of ``src/arrayferry`` (docs/architecture.md, "Layers"), and no import cycles.

Every import counts: module-level, function-level and ``TYPE_CHECKING`` ones. A module may import
modules of its own layer or of a lower one, never a higher one, and the imports form no cycle.
A new module must be placed in :data:`LAYERS` (the test says so), so the map stays whole.

A lower layer that needs something from a higher one gets it injected: ``Device.parse`` and
``canonical_name`` read framework objects through a parser the package installs
(``set_framework_parser``), and ``_capabilities.override`` clears cached plans through the
registry's change listeners.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
PACKAGE = "arrayferry"

#: Bottom first. Names are module paths relative to the package ("" is the package itself).
LAYERS: list[tuple[str, frozenset[str]]] = [
    ("values", frozenset({"_errors", "_markers", "_dlpack_abi", "_step", "_device", "_dtypes", "_speedups"})),
    ("protocol", frozenset({"_adapter", "_hostops", "_cuda", "hookspecs"})),
    ("registry", frozenset({"_registry", "_broken", "_namespace"})),
    ("planner", frozenset({"_capabilities", "_plan", "_versions"})),
    ("plugin API", frozenset({"plugin"})),
    ("public API", frozenset({"_api", "_frameworks", "_shares"})),
    ("tree and decorator", frozenset({"_tree", "_decorator"})),
    ("package", frozenset({""})),
    ("tools and plugins", frozenset({"_matrix", "cli", "__main__", "testing", "testing.cases", "testing.contract", "testing.plugin",
                                     "adapters", "adapters.numpy", "adapters.torch", "adapters.cupy",
                                     "adapters.protocols"})),
]


def _modules(root: pathlib.Path = SRC) -> dict[str, pathlib.Path]:
    """``{"arrayferry._api": path, ...}`` for every module of the package."""
    out = {}
    # a compiled module (``_speedups``) stands here by its stub
    stubs = [p for p in (root / PACKAGE).rglob("*.pyi") if not p.with_suffix(".py").exists()]
    for path in sorted([*(root / PACKAGE).rglob("*.py"), *stubs]):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(modname: str, source: str, is_package: bool, known: set[str]) -> set[tuple[str, int]]:
    """``(module, line)`` for every import of the package's modules in ``source``, at any depth."""
    pkg = modname if is_package else modname.rpartition(".")[0]
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.add((alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            for alias in node.names:  # ``from . import hookspecs`` imports a module, not a name
                sub = f"{target}.{alias.name}"
                found.add((sub if sub in known else target, node.lineno))
    return found


def import_graph(root: pathlib.Path = SRC) -> dict[str, set[tuple[str, int]]]:
    mods = _modules(root)
    known = set(mods)
    return {m: {(t, ln) for t, ln in imports_of(m, p.read_text(), p.name == "__init__.py", known) if t != m}
            for m, p in mods.items()}


def _layer_index() -> dict[str, int]:
    index = {}
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            index[f"{PACKAGE}.{n}" if n else PACKAGE] = i
    return index


def layer_violations(graph: dict[str, set[tuple[str, int]]]) -> list[str]:
    index = _layer_index()
    bad = []
    for mod, edges in sorted(graph.items()):
        for target, line in sorted(edges):
            if target in index and index[target] > index[mod]:
                bad.append(f"{mod} (layer {LAYERS[index[mod]][0]!r}) imports {target} "
                           f"(layer {LAYERS[index[target]][0]!r}) at line {line}")
    return bad


def cycles(graph: dict[str, set[tuple[str, int]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    succ = {m: sorted({t for t, _ in e if t in graph}) for m, e in graph.items()}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(succ):
        if v not in order:
            visit(v)
    return out


def test_every_module_has_a_layer() -> None:
    index = _layer_index()
    missing = sorted(set(_modules()) - set(index))
    assert not missing, f"place these modules in LAYERS (tests/test_layers.py) and docs/architecture.md: {missing}"
    gone = sorted(set(index) - set(_modules()))
    assert not gone, f"LAYERS names modules that no longer exist: {gone}"


def test_imports_go_down_the_layers() -> None:
    assert layer_violations(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_function_level_and_type_checking_imports_are_seen() -> None:
    graph = import_graph()
    # _adapter imports _hostops inside Adapter.check_cast only; hookspecs imports _adapter under
    # TYPE_CHECKING only; the package imports the registry inside functions only.
    assert "arrayferry._hostops" in {t for t, _ in graph["arrayferry._adapter"]}
    assert "arrayferry._adapter" in {t for t, _ in graph["arrayferry.hookspecs"]}
    assert "arrayferry._registry" in {t for t, _ in graph["arrayferry"]}
    assert "arrayferry.hookspecs" in {t for t, _ in graph["arrayferry._registry"]}  # ``from . import hookspecs``


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: pathlib.Path) -> None:
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_device.py").write_text("def parse(obj):\n    from ._registry import registry\n    return registry()\n")
    (pkg / "_registry.py").write_text("from ._device import parse\n")
    graph = import_graph(tmp_path)
    assert layer_violations(graph) == [
        "arrayferry._device (layer 'values') imports arrayferry._registry (layer 'registry') at line 2"]
    assert cycles(graph) == [["arrayferry._device", "arrayferry._registry"]]


def test_device_parse_reads_framework_devices_through_the_injected_parser() -> None:
    """``Device.parse(torch.device)`` works because the package wired the registry in; with no
    parser installed the value type reads strings only and refuses the object with a typed error."""
    import arrayferry as af
    from arrayferry import _device

    torch = pytest.importorskip("torch")
    assert af.Device.parse(torch.device("cpu")) == af.Device("cpu")
    assert af.Device.parse(torch.device("cuda", 1)) == af.Device("cuda", 1)
    saved = _device._framework_parser
    _device.set_framework_parser(None)
    try:
        assert af.Device.parse("cuda:1") == af.Device("cuda", 1)
        with pytest.raises(af.DeviceError, match="as a device(.|\\n)*Hint:"):
            af.Device.parse(torch.device("cpu"))
    finally:
        _device.set_framework_parser(saved)


def test_canonical_name_reads_framework_dtypes_through_the_injected_parser() -> None:
    import arrayferry as af
    from arrayferry import _dtypes

    xp = pytest.importorskip("array_api_strict")
    if "array_api_strict" not in {f.name for f in af.frameworks()}:
        pytest.skip("the array-api-strict plugin is not registered")
    assert _dtypes.canonical_name(xp.float32) == "float32"
    saved = _dtypes._framework_parser
    _dtypes.set_framework_parser(None)
    try:
        assert _dtypes.canonical_name("float32") == "float32"
        with pytest.raises(af.UnsupportedDTypeError, match="as a dtype(.|\\n)*Hint:"):
            _dtypes.canonical_name(xp.float32)
    finally:
        _dtypes.set_framework_parser(saved)


def test_the_layers_table_in_the_docs_matches_the_map() -> None:
    """docs/architecture.md's "Layers" table names the same layers, in order, with the same modules."""
    import re

    text = (SRC.parent / "docs" / "architecture.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    known = {m.removeprefix(PACKAGE).removeprefix(".") for m in _modules()}
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("layer", "---"):
            continue
        names = {"" if n == PACKAGE else n for n in re.findall(r"`([\w.]+)`", cells[1])}
        rows.append((cells[0], frozenset(n for n in names if n in known)))
    assert rows == LAYERS
