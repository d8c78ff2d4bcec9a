"""Check the built documentation site (``mkdocs build`` output) as a browser would read it.

Usage: ``python scripts/check_site.py [SITE_DIR]`` (default ``site``); exit 1 on any problem.

Checks, over every HTML page:

* every local link (``href``) resolves to a file of the site, and its ``#anchor`` to an ``id`` on
  that page;
* every image (``img src``) exists;
* no raw reStructuredText in the text a reader sees (``:param x:``, ``:returns:``, ``:func:`x```,
  ``.. versionadded::``, double backticks) and no unrendered Markdown (``**bold**``,
  ``[text](link)``, table rows ``| --- |``, a leftover ``{ #id }``, a bold word that is a dunder
  name used in the site's code: ``__dlpack__`` written without backticks), outside code blocks;
* every public name (``arrayferry.__all__``, ``arrayferry.testing.__all__`` and
  ``arrayferry.plugin.__all__``) has exactly one entry: one element with ``id="arrayferry.NAME"``
  in the whole site; a name ``arrayferry.plugin`` shares with ``arrayferry`` (the same object)
  has its entry as ``arrayferry.NAME``.

``nox -s docs`` runs it after ``mkdocs build --strict``; tests/test_check_site.py checks the
checker on small hand-made sites.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: Elements whose text is code or machinery, not prose.
SKIP_TEXT = {"code", "pre", "script", "style", "kbd", "samp", "textarea"}
RAW_REST = [
    (re.compile(r":(?:param|returns?|raises?|rtype|type)\b[^:\n]{0,40}:"), "reST field (:param x: / :returns:)"),
    (re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|exc|data|obj|const):`"), "reST role (:func:`x`)"),
    (re.compile(r"(?:^|\s)\.\. (?:[a-z-]+)::(?:\s|$)", re.M), "reST directive (.. versionadded::)"),
    (re.compile(r"``[^`\s]"), "reST literal (``x``)"),
]
RAW_MD = [
    (re.compile(r"\*\*\S[^*\n]*\*\*"), "unrendered Markdown bold (**x**)"),
    (re.compile(r"\]\((?:[^)\s]+)\)"), "unrendered Markdown link ([x](y))"),
    (re.compile(r"\|\s*-{3,}\s*\|"), "unrendered Markdown table (| --- |)"),
    (re.compile(r"\{\s*#[\w.-]+\s*\}"), "unrendered attribute list ({ #id })"),
]
#: ``__dlpack__`` written without backticks renders as bold "dlpack".
_STRONG = re.compile(r"<strong>([A-Za-z]\w*)</strong>")
_DUNDER = re.compile(r"__([A-Za-z]\w*?)__")


@dataclass
class Page:
    path: Path
    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    strong: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.page.ids.add(a["id"] or "")
        if a.get("name") and tag == "a":
            self.page.ids.add(a["name"] or "")
        if tag == "a" and a.get("href") is not None:
            self.page.links.append(a["href"] or "")
        if tag == "link" and a.get("href") and a.get("rel") in ("stylesheet", "icon", "shortcut icon"):
            self.page.links.append(a["href"] or "")
        if tag == "img" and a.get("src") is not None:
            self.page.images.append(a["src"] or "")
        if tag == "script" and a.get("src"):
            self.page.links.append(a["src"] or "")
        if tag in SKIP_TEXT:
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP_TEXT and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.page.text.append(data)
        else:
            self.page.code.append(data)


def load(site: Path) -> dict[Path, Page]:
    pages: dict[Path, Page] = {}
    for f in sorted(site.rglob("*.html")):
        page = Page(f)
        html = f.read_text(encoding="utf-8", errors="replace")
        _Parser(page).feed(html)
        page.strong = _STRONG.findall(html)
        pages[f.resolve()] = page
    return pages


def _target(site: Path, page: Path, url: str) -> tuple[Path | None, str]:
    """The file a local ``url`` on ``page`` points to (``None`` for external ones), and its fragment."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
        return None, ""
    path = unquote(parts.path)
    if not path:
        target = page
    elif path.startswith("/"):
        target = (site / path.lstrip("/")).resolve()
    else:
        target = (page.parent / path).resolve()
    if target.is_dir() or path.endswith("/"):
        target = target / "index.html"
    return target, unquote(parts.fragment)


def check(site: Path, public_names: list[str] | None = None) -> tuple[list[str], dict[str, int]]:
    """Problems found in ``site``, and counts of what was checked."""
    site = site.resolve()
    pages = load(site)
    problems: list[str] = []
    stats = Counter[str]()
    dunders = {m for p in pages.values() for m in _DUNDER.findall("".join(p.code))}
    for path, page in pages.items():
        rel = path.relative_to(site)
        for url in page.links:
            target, frag = _target(site, path, url)
            if target is None:
                stats["external links (not checked)"] += 1
                continue
            stats["local links"] += 1
            if not target.exists():
                problems.append(f"{rel}: broken link {url!r} (no {target.relative_to(site) if target.is_relative_to(site) else target})")
                continue
            if frag:
                stats["anchors"] += 1
                ids = pages[target].ids if target in pages else set()
                if target.suffix == ".html" and frag not in ids:
                    problems.append(f"{rel}: broken anchor {url!r} (no id {frag!r} on {target.relative_to(site)})")
        for src in page.images:
            target, _ = _target(site, path, src)
            if target is None:
                continue
            stats["images"] += 1
            if not target.exists():
                problems.append(f"{rel}: missing image {src!r}")
        if rel.parts[0] in ("assets", "search") or rel.name == "404.html":
            continue
        text = "".join(page.text)
        stats["pages"] += 1
        for word in page.strong:
            if word in dunders:
                problems.append(f"{rel}: bold {word!r}: __{word}__ written without backticks")
        for pattern, what in RAW_REST + RAW_MD:
            for m in pattern.finditer(text):
                line = text[max(0, m.start() - 40):m.end() + 40].replace("\n", " ").strip()
                problems.append(f"{rel}: {what}: ...{line}...")
    if public_names is not None:
        seen = Counter(i for p in pages.values() for i in p.ids)
        for name in public_names:
            stats["public names"] += 1
            n = seen[name]
            if n != 1:
                where = [str(p.relative_to(site)) for p, pg in pages.items() if name in pg.ids]
                problems.append(f"public name {name}: {n} entries (id={name!r}) {'in ' + ', '.join(where) if where else ''}".rstrip())
    return problems, dict(stats)


def public_names() -> list[str]:
    """``arrayferry.NAME`` for every name in ``arrayferry.__all__``, ``arrayferry.testing.NAME``
    for ``arrayferry.testing.__all__`` and ``arrayferry.plugin.NAME`` for the names of
    ``arrayferry.plugin.__all__`` that ``arrayferry`` does not export (the shared ones are the same
    objects, documented once as ``arrayferry.NAME``)."""
    import arrayferry
    import arrayferry.plugin
    import arrayferry.testing

    shared = set(arrayferry.__all__)
    return ([f"arrayferry.{n}" for n in arrayferry.__all__]
            + [f"arrayferry.testing.{n}" for n in arrayferry.testing.__all__]
            + [f"arrayferry.plugin.{n}" for n in arrayferry.plugin.__all__ if n not in shared])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("site", nargs="?", default="site", type=Path, help="the built site (default: site)")
    ap.add_argument("--no-names", action="store_true", help="skip the public-name check")
    a = ap.parse_args(argv)
    if not (a.site / "index.html").exists():
        print(f"{a.site}/index.html not found: run mkdocs build first", file=sys.stderr)
        return 1
    problems, stats = check(a.site, None if a.no_names else public_names())
    print("checked: " + ", ".join(f"{v} {k}" for k, v in stats.items()))
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
