"""scripts/check_site.py, the check over the built site, finds what it says it finds.

The real site is checked by ``nox -s docs`` (mkdocs is not installed in the test environment);
here the checker runs on small hand-made sites, one defect at a time, and on a clean one.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _checker() -> object:
    spec = importlib.util.spec_from_file_location("check_site", ROOT / "scripts" / "check_site.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["check_site"] = mod
    spec.loader.exec_module(mod)
    return mod


cs = _checker()

GOOD_INDEX = """<html><head><link rel="stylesheet" href="assets/site.css"></head><body>
<nav><a href="./">Home</a> <a href="api/">API</a> <a href="api/#arrayferry.convert">convert</a>
<a href="https://example.org/x">out</a></nav>
<h1 id="home">Home</h1><p>Some <strong>bold</strong> text and <code>__dlpack__</code>.</p>
<img src="img/m.png" alt="m"><pre><code>:param x: in code is fine ``x`` **y**</code></pre>
</body></html>"""
GOOD_API = """<html><body><h2 id="arrayferry.convert">convert</h2><h2 id="arrayferry.plan">plan</h2>
<a href="../#home">home</a> <a href="#arrayferry.plan">plan</a></body></html>"""


def _site(tmp_path: Path, index: str = GOOD_INDEX, api: str = GOOD_API) -> Path:
    site = tmp_path / "site"
    (site / "api").mkdir(parents=True)
    (site / "img").mkdir()
    (site / "assets").mkdir()
    (site / "index.html").write_text(index)
    (site / "api" / "index.html").write_text(api)
    (site / "img" / "m.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (site / "assets" / "site.css").write_text("")
    return site


NAMES = ["arrayferry.convert", "arrayferry.plan"]


def test_a_clean_site_passes(tmp_path: Path) -> None:
    problems, stats = cs.check(_site(tmp_path), NAMES)  # type: ignore[attr-defined]
    assert problems == []
    assert stats["local links"] == 6 and stats["anchors"] == 3 and stats["images"] == 1
    assert stats["public names"] == 2 and stats["external links (not checked)"] == 1


@pytest.mark.parametrize(("index", "api", "expected"), [
    (GOOD_INDEX.replace('href="api/"', 'href="apii/"'), GOOD_API, "index.html: broken link 'apii/'"),
    (GOOD_INDEX.replace("#arrayferry.convert", "#arrayferry.konvert"), GOOD_API,
     "index.html: broken anchor 'api/#arrayferry.konvert'"),
    (GOOD_INDEX, GOOD_API.replace('href="#arrayferry.plan"', 'href="#nope"'), "broken anchor '#nope'"),
    (GOOD_INDEX.replace("img/m.png", "img/missing.png"), GOOD_API, "index.html: missing image 'img/missing.png'"),
    (GOOD_INDEX.replace("Some", "Some :param obj: the object"), GOOD_API, "reST field"),
    (GOOD_INDEX.replace("Some", "Some .. versionadded:: 0.1\n"), GOOD_API, "reST directive"),
    (GOOD_INDEX.replace("Some", "see :func:`convert`"), GOOD_API, "reST role"),
    (GOOD_INDEX.replace("Some", "a ``literal``"), GOOD_API, "reST literal"),
    (GOOD_INDEX.replace("Some", "a **raw** bold"), GOOD_API, "unrendered Markdown bold"),
    (GOOD_INDEX.replace("Some", "see [the API](api.md)"), GOOD_API, "unrendered Markdown link"),
    (GOOD_INDEX.replace("Some", "| a | b |\n| --- | --- |"), GOOD_API, "unrendered Markdown table"),
    (GOOD_INDEX.replace("Some", "Title { #anchor }"), GOOD_API, "unrendered attribute list"),
    (GOOD_INDEX.replace("Some", "the <strong>dlpack</strong> protocol"), GOOD_API,
     "bold 'dlpack': __dlpack__ written without backticks"),
    (GOOD_INDEX, GOOD_API.replace('id="arrayferry.plan"', 'id="plan"').replace("#arrayferry.plan", "#plan"),
     "public name arrayferry.plan: 0 entries"),
    (GOOD_INDEX.replace('<h1 id="home">', '<h1 id="arrayferry.convert">').replace("../#home", "../"), GOOD_API,
     "public name arrayferry.convert: 2 entries"),
])
def test_each_defect_is_reported(tmp_path: Path, index: str, api: str, expected: str) -> None:
    problems, _ = cs.check(_site(tmp_path, index, api), NAMES)  # type: ignore[attr-defined]
    assert any(expected in p for p in problems), problems


def test_main_exits_1_and_names_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(tmp_path, GOOD_INDEX.replace("img/m.png", "img/gone.png"))
    assert cs.main([str(site), "--no-names"]) == 1  # type: ignore[attr-defined]
    out = capsys.readouterr()
    assert "index.html: missing image 'img/gone.png'" in out.out and "1 problem(s)" in out.err
    assert cs.main([str(tmp_path / "nowhere")]) == 1  # type: ignore[attr-defined]


def test_public_names_cover_all_and_the_kit() -> None:
    import arrayferry
    import arrayferry.plugin
    import arrayferry.testing

    names = cs.public_names()  # type: ignore[attr-defined]
    plugin_only = [n for n in arrayferry.plugin.__all__ if n not in arrayferry.__all__]
    assert len(names) == len(set(names)) == len(arrayferry.__all__) + len(arrayferry.testing.__all__) + len(plugin_only)
    assert {"arrayferry.CANONICAL_DTYPES", "arrayferry.hookimpl", "arrayferry.__version__",
            "arrayferry.testing.assert_conformance", "arrayferry.testing.run_conformance",
            "arrayferry.plugin.ML_DTYPES", "arrayferry.plugin.host_copy_step"} <= set(names)
    # a name both modules export is one object, documented once (as arrayferry.NAME)
    assert "arrayferry.plugin.Adapter" not in names and "arrayferry.Adapter" in names
    for n in arrayferry.plugin.__all__:
        if n in arrayferry.__all__:
            assert getattr(arrayferry.plugin, n) is getattr(arrayferry, n), n


def test_every_public_name_has_a_directive_in_the_api_pages() -> None:
    """The source side of the check: one ``::: arrayferry.NAME`` (or the generated Adapter
    section) per public name across docs/, so the built site's check has something to find."""
    docs = ROOT / "docs"
    text = "\n".join(p.read_text() for p in docs.rglob("*.md"))
    directives = re.findall(r"^::: (arrayferry(?:\.testing|\.plugin)?\.\w+)\s*$", text, flags=re.M)
    anchors = re.findall(r"\{ #(arrayferry\.\w+) \}", text)
    found = directives + anchors
    for name in cs.public_names():  # type: ignore[attr-defined]
        assert found.count(name) == 1, (name, found.count(name))


def test_search_separator_splits_code_identifiers() -> None:
    """mkdocs.yml's search separator splits snake_case, dotted names, dunders and CamelCase,
    so a search for ``shares_memory`` or ``memory`` finds every page that mentions it."""
    config = (ROOT / "mkdocs.yml").read_text()
    m = re.search(r"^\s*separator: '(.+)'\s*$", config, flags=re.M)
    assert m, "no search separator in mkdocs.yml"
    sep = re.compile(m.group(1).replace("''", "'"))

    def tokens(s: str) -> list[str]:
        return [t.lower() for t in sep.split(s) if t]

    assert tokens("shares_memory") == ["shares", "memory"]
    assert tokens("arrayferry.convert(x)") == ["arrayferry", "convert", "x"]
    assert tokens("__dlpack__") == ["dlpack"]
    assert tokens("CopyRequiredError") == ["copy", "required", "error"]
    assert tokens("torch 2.13.0") == ["torch", "2.13.0"]
