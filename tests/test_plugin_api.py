"""The plugin API is the only door: built-in adapters, plugins and the kit use nothing private.

``arrayferry.adapters``, every ``plugins/*/src`` package and ``arrayferry.testing`` may import
``arrayferry``, ``arrayferry.plugin`` and ``arrayferry.testing`` (plus frameworks, the stdlib and
their own modules). The check walks each file's AST, so imports inside functions count too, and
so do ``arrayferry._x`` names in code strings run in a subprocess.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import arrayferry
import arrayferry.plugin

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = ("arrayferry", "arrayferry.plugin", "arrayferry.testing")


def checked_files() -> list[Path]:
    """Every file held to the rule: the built-in adapters, the plugins' sources and the kit."""
    files = sorted((ROOT / "src" / "arrayferry" / "adapters").glob("*.py"))
    files += sorted((ROOT / "src" / "arrayferry" / "testing").rglob("*.py"))
    files += sorted(ROOT.glob("plugins/*/src/**/*.py"))
    return files


def _package_of(path: Path) -> str:
    """Dotted package a file belongs to (``arrayferry.adapters``, ``arrayferry_jax`` ...)."""
    parts = path.relative_to(ROOT).parts
    src = len(parts) - 1 - parts[::-1].index("src")  # the last "src" directory
    return ".".join(parts[src + 1:-1])


def _allowed(module: str) -> bool:
    if module != "arrayferry" and not module.startswith("arrayferry."):
        return True  # frameworks, the stdlib, the plugin's own modules
    return module in ALLOWED or module.startswith("arrayferry.testing.")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def private_imports(path: Path, package: str | None = None) -> list[str]:
    """``file:line: module`` for each import of arrayferry beyond the plugin API in ``path``
    (``package``: the dotted package relative imports resolve against; default from the path)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path) if package is None else package
    rel = _rel(path)
    out: list[str] = []
    for node in ast.walk(tree):  # module level, functions, methods, conditionals alike
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod]
            if mod in ALLOWED:  # `from arrayferry import _registry` reaches a private module too
                names += [f"{mod}.{a.name}" for a in node.names if a.name.startswith("_") and a.name != "__version__"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # code run in a subprocess (``python -c``) is held to the same rule
            names = [w.rstrip(".,;:()'\"") for w in node.value.replace("\n", " ").split()
                     if w.startswith("arrayferry._")]
        else:
            continue
        for name in names:
            if not _allowed(name):
                out.append(f"{rel}:{node.lineno}: {name}")
    return out


def redeclared_tables(path: Path) -> list[str]:
    """Module-level assignments to a name the plugin API already provides (``ML_DTYPES = ...``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    public = {n for n in arrayferry.plugin.__all__ if n.isupper()}
    rel = _rel(path)
    out = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            if isinstance(t, ast.Name) and t.id in public:
                out.append(f"{rel}:{node.lineno}: {t.id} (use arrayferry.plugin.{t.id})")
    return out


def test_the_rule_covers_the_builtins_plugins_and_kit() -> None:
    names = {str(p.relative_to(ROOT)) for p in checked_files()}
    for must in ("src/arrayferry/adapters/numpy.py", "src/arrayferry/adapters/torch.py",
                 "src/arrayferry/adapters/cupy.py", "src/arrayferry/testing/contract.py",
                 "plugins/arrayferry-jax/src/arrayferry_jax/_adapter.py",
                 "plugins/arrayferry-array-api-strict/src/arrayferry_array_api_strict/__init__.py",
                 "plugins/arrayferry-dask/src/arrayferry_dask/_chunks.py",
                 "plugins/arrayferry-pyarrow/src/arrayferry_pyarrow/_adapter.py"):
        assert must in names


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_uses_only_the_plugin_api(path: Path) -> None:
    bad = private_imports(path)
    assert not bad, "imports beyond arrayferry, arrayferry.plugin and arrayferry.testing:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_table_the_core_keeps_is_redeclared(path: Path) -> None:
    bad = redeclared_tables(path)
    assert not bad, "tables re-declared instead of imported from arrayferry.plugin:\n" + "\n".join(bad)


def test_the_checker_finds_function_level_relative_and_string_imports(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import sys\n"
        "import numpy\n"
        "from arrayferry.plugin import Adapter\n"
        "from arrayferry import Device, _registry\n"
        "from .numpy import NumpyAdapter\n"
        "def f():\n"
        "    from .._hostops import host_cast\n"
        "    import arrayferry._cuda as c\n"
        "    return 'from arrayferry._dtypes import kind_of'\n"
        "ML_DTYPES = frozenset()\n",
        encoding="utf-8",
    )
    bad = private_imports(planted, package="arrayferry.adapters")
    tables = redeclared_tables(planted)
    rel = str(planted)
    assert sorted(bad) == [
        f"{rel}:4: arrayferry._registry",
        f"{rel}:5: arrayferry.adapters.numpy",
        f"{rel}:7: arrayferry._hostops",
        f"{rel}:8: arrayferry._cuda",
        f"{rel}:9: arrayferry._dtypes",
    ]
    assert tables == [f"{rel}:10: ML_DTYPES (use arrayferry.plugin.ML_DTYPES)"]


# ------------------------------------------------------------------------------------------------
# the module itself


def test_every_name_is_a_re_export_of_one_core_object() -> None:
    """``arrayferry.plugin`` defines nothing it could duplicate: each name is the core's own object."""
    plugin = arrayferry.plugin
    assert len(set(plugin.__all__)) == len(plugin.__all__)
    private = {m: importlib.import_module(f"arrayferry.{m}") for m in
               ("_adapter", "_capabilities", "_cuda", "_device", "_dlpack_abi", "_dtypes", "_errors", "_hostops", "_markers")}
    own = {"adapters", "adapter_named"}  # the registry, read-only: defined here
    for name in plugin.__all__:
        obj = getattr(plugin, name)
        if name in own:
            assert obj.__module__ == "arrayferry.plugin"
            continue
        homes = [m for m, mod in private.items() if any(v is obj for k, v in vars(mod).items() if not k.startswith("__"))]
        assert homes, f"arrayferry.plugin.{name} is not an object of a core module"
        if name in arrayferry.__all__:
            assert getattr(arrayferry, name) is obj, name


def test_names_shared_with_arrayferry_are_the_same_objects() -> None:
    assert arrayferry.plugin.CANONICAL_DTYPES is arrayferry.CANONICAL_DTYPES
    for name in ("Adapter", "ArrayInfo", "Step", "identity", "Device", "hookimpl", "PluginError"):
        assert getattr(arrayferry.plugin, name) is getattr(arrayferry, name)


def test_plugins_share_the_cores_tables() -> None:
    jax_adapter = pytest.importorskip("arrayferry_jax._adapter")
    assert jax_adapter.ML_DTYPES is arrayferry.plugin.ML_DTYPES
    xs = pytest.importorskip("arrayferry_array_api_strict")
    assert xs._WRITEABLE == arrayferry.plugin.NPY_WRITEABLE == 0x400


def test_flag_bits_are_numpys() -> None:
    np = pytest.importorskip("numpy")
    a = np.zeros((2, 3))
    p = arrayferry.plugin
    assert a.flags.num & p.NPY_C_CONTIGUOUS and not a.flags.num & p.NPY_F_CONTIGUOUS
    assert a.flags.num & p.NPY_OWNDATA and a.flags.num & p.NPY_ALIGNED and a.flags.num & p.NPY_WRITEABLE
    a.flags.writeable = False
    assert not a.flags.num & p.NPY_WRITEABLE
    assert a.T.flags.num & p.NPY_F_CONTIGUOUS and not a.T.flags.num & p.NPY_OWNDATA


def test_numpy_dtype_and_name_round_trip() -> None:
    np = pytest.importorskip("numpy")
    p = arrayferry.plugin
    for name in p.CANONICAL_DTYPES:
        if name in p.ML_DTYPES:
            pytest.importorskip("ml_dtypes")
        dt = p.numpy_dtype(name)
        assert p.numpy_dtype_name(dt) == name
        assert dt.itemsize == p.ITEMSIZE[name]
    assert p.numpy_dtype_name(np.dtype([("i", "<i4")])) == str(np.dtype([("i", "<i4")]))


def test_registry_view_is_read_only_and_names_resolve() -> None:
    p = arrayferry.plugin
    view = p.adapters()
    assert view["numpy"] is p.adapter_named("np")
    with pytest.raises(TypeError):
        view["x"] = view["numpy"]  # type: ignore[index]
    with pytest.raises(arrayferry.UnknownFrameworkError, match="Hint:"):
        p.adapter_named("no-such-framework")
