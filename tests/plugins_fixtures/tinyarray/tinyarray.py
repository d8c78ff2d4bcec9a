"""tinyarray: a minimal n-dimensional array over a byte buffer (the "framework" of the worked example)."""

from __future__ import annotations

from typing import Any

__all__ = ["TinyArray"]


class TinyArray:
    """C-contiguous data in any buffer (``bytearray``, NumPy array, ...), a dtype name and a shape."""

    def __init__(self, buffer: Any, dtype: str, shape: tuple[int, ...]) -> None:
        view = memoryview(buffer)  # read-only if the buffer is
        if view.nbytes == 0:  # memoryview cannot cast empty n-d views
            view = memoryview(b"" if view.readonly else bytearray())
        self.buffer = view.cast("B")  # flat bytes, C order
        self.dtype = dtype
        self.shape = tuple(shape)

    @property
    def readonly(self) -> bool:
        return self.buffer.readonly
