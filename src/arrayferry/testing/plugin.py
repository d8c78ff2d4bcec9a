"""pytest entry point of the conformance kit (see :mod:`arrayferry.testing` for how to switch it on).

Registered through pytest's ``pytest11`` entry point, so it is loaded wherever arrayferry is
installed. Until ``--arrayferry-conformance`` (or the ini key ``arrayferry_conformance``) names a
framework it only adds its options: no fixtures, no items, no imports of arrayferry's registry or
of any framework. When switched on it adds the items of the contract
module (:mod:`arrayferry.testing.contract`) to the session, under the node id
``arrayferry/testing/contract.py::...`` (``-k`` and ``-m`` select among them as usual).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

__all__ = ["CONTRACT_MODULE", "contract_path", "selected", "pytest_addoption", "pytest_configure",
           "pytest_collection_modifyitems", "pytest_report_header", "NODE_ID"]

CONTRACT_MODULE = "arrayferry.testing.contract"
#: Node id prefix of the contract's items (``arrayferry/testing/contract.py::test_...[...]``).
NODE_ID = "arrayferry/testing/contract.py"

_OPTIONS = {
    # dest / ini key: (command-line flag, metavar, help)
    "arrayferry_conformance": (
        "--arrayferry-conformance",
        "NAME[,NAME]",
        "run arrayferry's adapter contract against these frameworks (switches the kit on)",
    ),
    "arrayferry_peers": (
        "--arrayferry-peers",
        "NAME[,NAME]",
        "frameworks to convert to and from in the contract (default: every installed registered framework)",
    ),
    "arrayferry_devices": (
        "--arrayferry-device",
        "DEVICE[,DEVICE]",
        "devices to place the framework's arrays on in the contract (default: cpu)",
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the kit's command-line options and ini keys (this is all the kit does when off)."""
    group = parser.getgroup("arrayferry", "arrayferry conformance kit (arrayferry.testing)")
    for dest, (flag, metavar, text) in _OPTIONS.items():
        group.addoption(flag, dest=dest, default=None, metavar=metavar, help=text)
        parser.addini(dest, f"{text} (ini form of {flag})", default="")


def selected(config: pytest.Config, key: str) -> list[str]:
    """The comma-separated values of option ``key``: the command line wins over the ini file."""
    value = config.getoption(key, default=None)
    if value is None:
        value = config.getini(key)
    if isinstance(value, list):
        value = ",".join(value)
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def contract_path() -> str:
    """File path of the contract module, found without importing it."""
    spec = importlib.util.find_spec(CONTRACT_MODULE)
    assert spec is not None and spec.origin is not None, f"{CONTRACT_MODULE} is missing from the installation"
    return spec.origin


def pytest_configure(config: pytest.Config) -> None:
    """When switched on, have pytest rewrite the contract's asserts (so failures show values)."""
    if selected(config, "arrayferry_conformance"):
        pytest.register_assert_rewrite(CONTRACT_MODULE)


# tryfirst: before pytest's own -k / -m deselection, so those apply to the contract's items too
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """When switched on, collect the contract module and add its items after the session's own."""
    if not selected(config, "arrayferry_conformance"):
        return
    module = pytest.Module.from_parent(session, path=Path(contract_path()), nodeid=NODE_ID)
    items.extend(session.genitems(module))


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """One header line naming what the kit checks (nothing when it is off)."""
    names = selected(config, "arrayferry_conformance")
    if not names:
        return None
    peers = selected(config, "arrayferry_peers") or ["every installed framework"]
    devices = selected(config, "arrayferry_devices") or ["cpu"]
    return [f"arrayferry conformance kit: {', '.join(names)} (peers: {', '.join(peers)}; devices: {', '.join(devices)})"]
