"""Every code example in ``docs/*.md`` runs: one test per page, its blocks in order.

What is run, per page, in one namespace (like a notebook):

* ```` ```python ```` blocks are executed;
* ```` ```pycon ```` blocks (``>>>`` sessions) are checked with doctest (``ELLIPSIS`` and
  ``IGNORE_EXCEPTION_DETAIL`` on; a traceback's last line is compared up to ``...``);
* other languages (``text``, ``bash``, ``toml``...) are not run.

HTML comments on the lines right above a block change how it is run:

* ``<!-- requires: cuda -->``, ``<!-- requires: jax, multigpu -->``: skip the block, with the
  reason, unless each requirement is met. ``cuda`` needs a CUDA device (torch or CuPy),
  ``multigpu`` two; any other word is a module that must be importable, and when it names an
  arrayferry framework, that framework must be registered. This is the only way to skip a block:
  for GPU code and plugins that are not installed.
* ``<!-- file: NAME.py -->``: also write the block to ``NAME.py`` in a temporary directory on
  ``sys.path`` (so later blocks can import it), then run it like any python block.

Each page runs in a temporary working directory; plugins a page registers are unregistered and
modules it wrote are forgotten afterwards.
"""

from __future__ import annotations

import doctest
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import arrayferry as af

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

_FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_COMMENT = re.compile(r"^\s*<!--\s*(?P<key>[\w-]+)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    requires: list[str] = field(default_factory=list)
    file: str | None = None


def extract(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the markers right above each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip()
        lang = info.split()[0].lower() if info else ""
        markers: dict[str, str] = {}
        j = i - 1
        while j >= 0 and _COMMENT.match(lines[j]):
            c = _COMMENT.match(lines[j])
            assert c is not None
            markers.setdefault(c["key"], c["value"] or "")
            j -= 1
        body: list[str] = []
        k = i + 1
        while k < len(lines) and not (lines[k].strip().startswith(fence[0] * len(fence)) and not lines[k].strip().strip(fence[0])):
            body.append(lines[k][len(m["indent"]):] if lines[k].startswith(m["indent"]) else lines[k])
            k += 1
        requires = [r.strip() for r in markers.get("requires", "").split(",") if r.strip()]
        blocks.append(Block(path.name, i + 2, lang, "\n".join(body) + "\n", requires, markers.get("file") or None))
        i = k + 1
    return blocks


def missing(requirement: str) -> str | None:
    """Why ``requirement`` is not met here, or ``None``."""
    if requirement in ("cuda", "gpu", "multigpu"):
        need = 2 if requirement == "multigpu" else 1
        count = 0
        if importlib.util.find_spec("torch") is not None:
            import torch

            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count < need and importlib.util.find_spec("cupy") is not None:
            try:
                import cupy

                count = max(count, cupy.cuda.runtime.getDeviceCount())
            except Exception:
                pass
        return None if count >= need else f"needs {need} CUDA device(s), found {count}"
    try:
        found = importlib.util.find_spec(requirement) is not None
    except (ImportError, ValueError):
        found = False
    known = {f.name: f for f in af.frameworks()}
    if requirement in known:
        return None if known[requirement].installed else f"framework {requirement!r} is not installed"
    if not found:
        return f"module {requirement!r} is not installed"
    return None


def _plugin_names() -> set[str]:
    from arrayferry._registry import registry

    return {name for name, _ in registry().pm.list_name_plugin()}


def run_page(path: Path, tmp_path: Path) -> tuple[int, list[str]]:
    """Run a page's examples; returns (blocks run, skip reasons)."""
    ns: dict[str, Any] = {"__name__": "__docs__"}
    ran, skipped = 0, []
    for block in extract(path):
        if block.lang not in ("python", "py", "python3", "pycon"):
            continue
        reasons = [r for r in (missing(req) for req in block.requires) if r]
        if reasons:
            skipped.append(f"{block.page}:{block.line}: {'; '.join(reasons)}")
            continue
        where = f"{block.page}:{block.line}"
        if block.file:
            (tmp_path / block.file).write_text(block.code, encoding="utf-8")
        if block.lang == "pycon":
            test = doctest.DocTestParser().get_doctest(block.code, ns, where, str(path), block.line - 1)
            out: list[str] = []
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL)
            result = runner.run(test, out=out.append, clear_globs=False)
            if result.failed:
                pytest.fail(f"doctest in {where} failed:\n" + "".join(out), pytrace=False)
        else:
            try:
                exec(compile(block.code, where, "exec"), ns)
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, pytest.skip.Exception)):
                    raise
                tb = "".join(traceback.format_exception(exc))
                numbered = "\n".join(f"{n:4d} | {text}" for n, text in enumerate(block.code.splitlines(), block.line))
                pytest.fail(f"example {where} raised:\n{numbered}\n\n{tb}", pytrace=False)
        ran += 1
    return ran, skipped


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(tmp_path))
    before_plugins = _plugin_names()
    before_modules = set(sys.modules)
    try:
        ran, skipped = run_page(page, tmp_path)
    finally:
        for name in _plugin_names() - before_plugins:
            af.unregister_plugin(name)
        for name in set(sys.modules) - before_modules:
            mod = sys.modules.get(name)
            if str(getattr(mod, "__file__", "") or "").startswith(str(tmp_path)):
                del sys.modules[name]
    if not ran and skipped:
        pytest.skip("; ".join(skipped))
    if not ran:
        pytest.skip(f"{page.name} has no python examples")


def test_extractor_reads_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n<!-- requires: cuda, jax -->\n```python\nx = 1\n```\n\n"
        "<!-- file: mod.py -->\n```python title=\"mod.py\"\nY = 2\n```\n\n"
        "```text\nnot code\n```\n\n````pycon\n>>> 1 + 1\n2\n````\n",
        encoding="utf-8",
    )
    blocks = extract(page)
    assert [(b.lang, b.line, b.requires, b.file) for b in blocks] == [
        ("python", 5, ["cuda", "jax"], None),
        ("python", 10, [], "mod.py"),
        ("text", 14, [], None),
        ("pycon", 18, [], None),
    ]
    assert blocks[1].code == "Y = 2\n" and blocks[3].code == ">>> 1 + 1\n2\n"


def test_a_failing_example_fails(tmp_path: Path) -> None:
    page = tmp_path / "bad.md"
    page.write_text("```python\nassert 1 == 2, 'docs are wrong'\n```\n", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="bad.md:2 raised"):
        run_page(page, tmp_path)
    page.write_text("```pycon\n>>> 1 + 1\n3\n```\n", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="doctest in bad.md:2 failed"):
        run_page(page, tmp_path)


def test_missing_requirements_are_named() -> None:
    assert missing("no_such_module_xyz") == "module 'no_such_module_xyz' is not installed"
    assert missing("numpy") is None
