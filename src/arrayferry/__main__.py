"""``python -m arrayferry``: the same as the ``arrayferry`` command."""

from .cli import main

raise SystemExit(main())
