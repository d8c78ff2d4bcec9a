"""The core names no framework that a plugin provides: what it knows of one comes from its adapter.

``src/arrayferry`` outside the built-in adapters (``adapters/``: NumPy, PyTorch, CuPy) must not
name JAX, Dask, array-api-strict or PyArrow in code that runs: no import of them, no identifier,
no string that is the framework's name or a module path in it (``"jax.numpy"``,
``"jax.dlpack:from_dlpack"``). Docstrings, comments, messages that mention them (an install hint
``pip install 'arrayferry[jax]'``) and type annotations (``convert``'s overload that returns
``jax.Array`` to static checkers; nothing runs) are allowed. The array-API namespace, the DLPack
consumer the capability probe calls and the matrix's native calls are adapter attributes
(``Adapter.array_api_namespace``, ``Adapter.dlpack_consumer``, ``Adapter.native_call``).
"""

from __future__ import annotations

import ast
import importlib
import pathlib
from typing import Any

import pytest

import arrayferry as af

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "arrayferry"
PLUGIN_FRAMEWORKS = ("jax", "jaxlib", "dask", "array_api_strict", "pyarrow")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _names_a_framework(text: str) -> str | None:
    for fw in PLUGIN_FRAMEWORKS:
        if text == fw or text.startswith((fw + ".", fw + ":")):
            return fw
    return None


def plugin_names_in(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each place ``source`` names a plugin framework in code that runs."""
    tree = ast.parse(source)
    skip: set[int] = set()  # ids of nodes not to look into: docstrings, annotations, TYPE_CHECKING
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                skip.add(id(first))
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skip.add(id(node))  # attribute docstrings (a bare string after an assignment)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None and a.annotation is not None:
                    skip.add(id(a.annotation))
            if node.returns is not None:
                skip.add(id(node.returns))
        if isinstance(node, ast.AnnAssign):
            skip.add(id(node.annotation))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skip.update(id(n) for n in node.body)
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if id(node) in skip:
            return
        what = None
        if isinstance(node, ast.Import):
            what = next((f"import {a.name}" for a in node.names if _names_a_framework(a.name)), None)
        elif isinstance(node, ast.ImportFrom) and not node.level and _names_a_framework(node.module or ""):
            what = f"from {node.module} import ..."
        elif isinstance(node, ast.Name) and node.id in PLUGIN_FRAMEWORKS:
            what = f"name {node.id}"
        elif isinstance(node, ast.Attribute) and node.attr in PLUGIN_FRAMEWORKS:
            what = f"attribute .{node.attr}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _names_a_framework(node.value):
            what = f"string {node.value!r}"
        if what is not None:
            found.append((getattr(node, "lineno", 0), what))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _core_files() -> list[pathlib.Path]:
    return sorted(p for p in SRC.rglob("*.py") if "adapters" not in p.relative_to(SRC).parts)


def test_the_check_covers_the_core() -> None:
    names = {p.relative_to(SRC).as_posix() for p in _core_files()}
    assert {"_api.py", "_capabilities.py", "_decorator.py", "_matrix.py", "_plan.py", "cli.py",
            "testing/contract.py"} <= names
    assert not any(n.startswith("adapters/") for n in names)


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: p.relative_to(SRC).as_posix())
def test_core_names_no_plugin_framework(path: pathlib.Path) -> None:
    assert plugin_names_in(path.read_text()) == []


def test_the_check_finds_what_the_core_used_to_name() -> None:
    source = '''
"""Docstrings may say jax.numpy."""
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import jax
_NAMESPACE_MODULES = {"jax": "jax.numpy", "torch": "array_api_compat.torch"}
_CONSUMERS = {"jax": "jax.dlpack:from_dlpack"}
HINT = "pip install 'arrayferry[jax]'"
def native(tgt: "jax.Array") -> "jax.Array":
    import dask.array
    from pyarrow import compute
    if tgt == "array_api_strict":
        return sys.modules["jax"].numpy.asarray
    return dask
'''
    assert plugin_names_in(source) == [
        (6, "string 'jax'"), (6, "string 'jax.numpy'"),
        (7, "string 'jax'"), (7, "string 'jax.dlpack:from_dlpack'"),
        (10, "import dask.array"), (11, "from pyarrow import ..."),
        (12, "string 'array_api_strict'"), (13, "string 'jax'"),
        (14, "name dask"),
    ]


# ------------------------------------------------------------------------------------------------
# what the core used to name comes from adapter attributes


def _registry() -> Any:
    from arrayferry._registry import registry

    return registry()


def _with_attribute(attr: str) -> list[str]:
    return sorted(n for n, a in _registry().adapters.items() if getattr(a, attr))


@pytest.mark.parametrize("name", _with_attribute("array_api_namespace"))
def test_namespace_for_reads_the_adapter_attribute(name: str) -> None:
    from arrayferry import _decorator

    adapter = _registry().adapter_named(name)
    pytest.importorskip("array_api_compat")
    try:
        want = importlib.import_module(adapter.array_api_namespace)
    except ImportError as exc:
        pytest.skip(f"{adapter.array_api_namespace} cannot be imported here: {exc}")
    _decorator._NS_CACHE.pop(name, None)
    assert af.namespace_for(name) is want


def test_a_framework_without_a_namespace_attribute_is_refused_naming_those_with_one() -> None:
    from arrayferry.plugin import Adapter

    class Bare(Adapter):
        name = "bare_ns_fw"
        module = "json"

        def owns(self, tp: type) -> bool:
            return False

        def describe(self, x: Any) -> Any:
            raise AssertionError("not called")

        def export_host(self, x: Any) -> Any:
            return x

        def import_host(self, arr: Any) -> Any:
            return arr

    class Plugin:
        @af.hookimpl
        def arrayferry_adapters(self) -> list[Adapter]:
            return [Bare()]

    pytest.importorskip("array_api_compat")
    pname = af.register_plugin(Plugin(), "bare-ns-plugin")
    try:
        with pytest.raises(af.ArrayFerryError, match="bare_ns_fw(.|\n)*known without an array[^\n]*numpy(.|\n)*Hint:"):
            af.namespace_for("bare_ns_fw")
    finally:
        af.unregister_plugin(pname)


#: The matrix's native calls as the core used to table them (label per (source, target)).
NATIVE_LABELS = {
    ("numpy", "torch"): "torch.from_numpy",
    ("torch", "numpy"): "Tensor.numpy()",
    ("numpy", "jax"): "jnp.asarray",
    ("torch", "jax"): "jax.dlpack.from_dlpack",
    ("jax", "torch"): "torch.from_dlpack",
    ("numpy", "array_api_strict"): "xs.asarray",
    ("torch", "array_api_strict"): "xs.from_dlpack",
    ("array_api_strict", "torch"): "torch.from_dlpack",
    ("numpy", "dask"): "da.from_array",
    ("torch", "dask"): "da.from_array",
    ("dask", "torch"): "torch.from_numpy(x.compute())",
    ("jax", "numpy"): "np.asarray",
    ("dask", "numpy"): "np.asarray",
    ("jax", "dask"): "da.from_array",
    ("dask", "jax"): "jnp.asarray",
    ("jax", "array_api_strict"): "array_api_strict.from_dlpack",
}


@pytest.mark.parametrize(("src", "tgt"), sorted(NATIVE_LABELS))
def test_native_calls_come_from_the_adapters(src: str, tgt: str) -> None:
    from arrayferry._matrix import native_call

    for fw in (src, tgt):
        if fw not in _registry().adapters:
            pytest.skip(f"{fw} is not registered")
        pytest.importorskip(_registry().adapter_named(fw).module)
        _registry().adapter_named(fw).namespace()
    if tgt == "dask" or src == "dask":
        pytest.importorskip("dask.array")
    got = native_call(src, tgt)
    assert got is not None
    label, fn = got
    assert label == NATIVE_LABELS[(src, tgt)]
    assert callable(fn)
