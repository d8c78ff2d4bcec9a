"""A plugin module that fails to import."""

raise ImportError("broken_import fails at import on purpose")
