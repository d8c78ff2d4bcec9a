"""arrayferry plugin for tinyarray. Importing this module imports neither tinyarray nor NumPy."""

from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import Any

import arrayferry as af

HELD = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"}


class TinyAdapter(af.Adapter):
    name = "tinyarray"
    module = "tinyarray"
    install_hint = "tinyarray"
    readonly_capable = True  # a TinyArray over read-only memory stays read-only

    def owns(self, tp: type) -> bool:  # only called once tinyarray is in sys.modules
        return issubclass(tp, sys.modules["tinyarray"].TinyArray)

    def signature(self, x: Any) -> Hashable:  # everything describe() reports, shape aside
        return (type(x), x.dtype, x.buffer.readonly)

    def describe(self, x: Any) -> af.ArrayInfo:
        itemsize = 1 if x.dtype == "bool" else int("".join(c for c in x.dtype if c.isdigit())) // 8
        return af.ArrayInfo("tinyarray", x.dtype, x.shape, readonly=x.buffer.readonly, itemsize=itemsize)

    def data_pointer(self, x: Any) -> int | None:
        return int(self.export_host(x).__array_interface__["data"][0])

    def supports_dtype(self, dtype: str, device: af.Device) -> bool:
        return dtype in HELD  # float16 and complex are refused with UnsupportedDTypeError

    def export_host(self, x: Any) -> Any:  # a NumPy view, never a copy
        import numpy as np

        return np.frombuffer(x.buffer, dtype=x.dtype).reshape(x.shape)

    def host_import_refusals(self, info: af.ArrayInfo) -> list[str]:
        out = []
        if info.layout != "contiguous":
            out.append("tinyarray holds C-contiguous memory only")
        if info.byteorder != "=":
            out.append("tinyarray holds native byte order only")
        return out

    def import_host(self, arr: Any) -> Any:  # aliases arr (the planner made it acceptable)
        return self.namespace().TinyArray(arr, arr.dtype.name, arr.shape)  # imports tinyarray

    def copy(self, x: Any) -> Any:
        return type(x)(bytearray(x.buffer), x.dtype, x.shape)

    def cast(self, x: Any, dtype: str) -> Any:
        return self.import_host(self.export_host(x).astype(dtype))


@af.hookimpl
def arrayferry_adapters() -> list[af.Adapter]:
    return [TinyAdapter()]
