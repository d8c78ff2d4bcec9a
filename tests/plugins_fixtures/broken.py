"""Deliberately broken arrayferry plugins, one per entry point (see tests/test_plugin_loading.py, test_kit.py).

Each variant of the tinyarray adapter breaks one rule of the contract; the kit must fail it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from arrayferry_tinyarray import TinyAdapter

import arrayferry as af


class LyingAdapter(TinyAdapter):
    """Claims ``import_host`` aliases (``import_copies`` says nothing) but copies."""

    def import_host(self, arr: Any) -> Any:
        return self.namespace().TinyArray(bytearray(arr.tobytes()), arr.dtype.name, arr.shape)


class BlindSignatureAdapter(TinyAdapter):
    """Its signature omits the read-only flag, so read-only and writable arrays share one plan."""

    def signature(self, x: Any) -> Hashable:
        return (type(x), x.dtype)


class IgnoredOptionAdapter(TinyAdapter):
    """Declares a target option and applies nothing: the plan with it is the plan without it."""

    target_options = {"scale": "multiply the values (declared, never applied)"}  # noqa: RUF012
    target_option_examples = {"scale": (2,)}  # noqa: RUF012

    def apply_options(self, steps: list[af.Step], options: Any, info: af.ArrayInfo) -> list[af.Step]:
        return steps


class CarelessDirectAdapter(TinyAdapter):
    """Its direct call to NumPy copies, where the plan's route aliases."""

    def direct_call(self, tp: type, source: str, target: str, device: Any = None) -> Any:
        if source == "tinyarray" and target == "numpy":
            return lambda x: self.export_host(x).copy()
        return None


class careless_direct:  # noqa: N801
    @staticmethod
    @af.hookimpl
    def arrayferry_adapters() -> list[af.Adapter]:
        return [CarelessDirectAdapter()]


class lying:  # noqa: N801 - entry-point objects
    @staticmethod
    @af.hookimpl
    def arrayferry_adapters() -> list[af.Adapter]:
        return [LyingAdapter()]


class blind_signature:  # noqa: N801
    @staticmethod
    @af.hookimpl
    def arrayferry_adapters() -> list[af.Adapter]:
        return [BlindSignatureAdapter()]


class raising_hook:  # noqa: N801
    @staticmethod
    @af.hookimpl
    def arrayferry_adapters() -> list[af.Adapter]:
        raise RuntimeError("raising_hook fails inside its hook on purpose")


class misspelled_hook:  # noqa: N801
    @staticmethod
    @af.hookimpl
    def arrayferry_adaptors() -> list[af.Adapter]:
        return []


class AbsentAdapter(af.Adapter):
    """An adapter for a framework that is not installed (module ``af_fixture_absent_framework``)."""

    name = "absentfw"
    module = "af_fixture_absent_framework"

    def owns(self, tp: type) -> bool:
        return False

    def describe(self, x: Any) -> af.ArrayInfo:  # the required protocol; never called
        raise AssertionError("not called")

    def export_host(self, x: Any) -> Any:
        return x

    def import_host(self, arr: Any) -> Any:
        return arr


class absent_framework:  # noqa: N801
    @staticmethod
    @af.hookimpl
    def arrayferry_adapters() -> list[af.Adapter]:
        return [AbsentAdapter()]


class ignored_option:  # noqa: N801
    @staticmethod
    @af.hookimpl
    def arrayferry_adapters() -> list[af.Adapter]:
        return [IgnoredOptionAdapter()]
