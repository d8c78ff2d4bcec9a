"""Tiny plugin distributions used by the plugin-loading and kit tests (see ``make_dist``)."""
