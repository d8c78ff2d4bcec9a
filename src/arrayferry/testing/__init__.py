"""The conformance kit for plugin authors: a pytest plugin that runs arrayferry's adapter contract.

How to switch it on
===================

The kit ships with arrayferry and is registered through pytest's ``pytest11`` entry point, so it
is loaded in every pytest run where arrayferry is installed, **and does nothing** until one of
these names the frameworks to check:

* command line: ``pytest --arrayferry-conformance=jax`` (several: ``=jax,torch``);
* ini file (``pyproject.toml`` ``[tool.pytest.ini_options]``, ``pytest.ini``, ...)::

      [tool.pytest.ini_options]
      arrayferry_conformance = "jax"

With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, load it explicitly: ``pytest -p
arrayferry.testing.plugin --arrayferry-conformance=jax`` or, in a ``conftest.py``,
``pytest_plugins = ["arrayferry.testing.plugin"]`` (both also work when it is autoloaded).

When switched on, pytest collects the contract module :mod:`arrayferry.testing.contract` in
addition to your own tests. Its items are named ``...contract.py::test_NAME[FRAMEWORK-...]`` and
check, for each framework named:

* detection without import (in a subprocess), ``framework_of`` and ``device_of``;
* round trips to and from every peer framework over the standard cases (every numeric dtype,
  0-d, empty, strided, negative strides, transposed, read-only, NaN/inf/-0.0), bit for bit,
  under ``copy=None/False/True``, sharing checked by data pointers and by writing through;
* plan honesty: memory is shared exactly when ``plan.zero_copy``; ``copy=False`` raises
  :class:`arrayferry.CopyRequiredError` exactly when the ``copy=None`` plan copies;
* the signature captures everything ``describe`` reports (two arrays with one signature must
  get one plan);
* clear errors for dtypes the framework cannot hold (``UnsupportedDTypeError`` /
  ``LossyConversionError``, or a ``LossyConversionWarning`` for float narrowing; never a silent
  change).

Other options (each also an ini key with ``-`` replaced by ``_``):

``--arrayferry-peers=numpy,torch``
    the frameworks to convert to and from (default: every registered framework that is
    installed). A peer that is not registered or not installed skips with the reason.
``--arrayferry-device=cpu[,cuda:0]`` (ini ``arrayferry_devices``)
    devices to place the framework's arrays on (default ``cpu``); a device the framework cannot
    reach now skips with the reason.

The kit only uses public API: :func:`arrayferry.convert`, :func:`arrayferry.plan`,
``Adapter.describe``, ``Adapter.signature``, ``Adapter.data_pointer`` and ``Adapter.supports_dtype``
/ ``default_dtype_for``. See ``docs/plugins.md`` ("Running the conformance kit").
"""

from __future__ import annotations

__all__: list[str] = []
