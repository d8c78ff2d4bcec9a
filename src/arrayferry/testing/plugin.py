"""pytest entry point of the conformance kit (filled in by the plugins issue)."""
