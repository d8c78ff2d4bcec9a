"""mkdocs hook: render the Sphinx roles of arrayferry's docstrings (``:func:`convert```) as code.

The docstrings use reStructuredText roles so that ``help()`` reads well; mkdocstrings leaves the
role names in the HTML (``:func:<code>convert</code>``). This hook drops the role name and keeps
the code span. It is listed under ``hooks:`` in ``mkdocs.yml`` and excluded from the site.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|exc|data|obj|const):(<code>)~?")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Strip reST role prefixes in front of code spans."""
    return _ROLE.sub(r"\1", html)
