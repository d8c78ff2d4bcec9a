"""The conformance kit for plugin authors (a pytest plugin): see ``docs/plugins.md``."""
