"""The CuPy adapter: arrays in CUDA device memory.

What it tells the planner:

* CuPy arrays never live on the host. Reaching NumPy is a staging copy (``x.get()``, a
  transfer); coming from the host is a transfer (``cupy.asarray`` inside
  ``cupy.cuda.Device(i)``). Neither is ever called zero-copy.
* Between CuPy and torch CUDA tensors on the same device, DLPack is the zero-copy route
  (``cupy.from_dlpack`` / ``torch.from_dlpack``, each passing its current stream, or the stream
  given to ``convert(stream=...)``); ``__cuda_array_interface__`` is the second zero-copy route,
  planned as the ``cai`` route and used when DLPack is refused.
* ``device=`` is honoured with ``cupy.cuda.Device(i)``; CuPy cannot hold host memory, so the
  default target device of a host array is the current CUDA device.
* CuPy installed without a driver imports fine; the first device call raises
  ``CUDARuntimeError`` (status 35). Planning probes the driver (``getDeviceCount``) only when a
  conversion needs CuPy, and every failure is a :class:`arrayferry.DeviceError`.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from arrayferry.plugin import (
    ITEMSIZE,
    ML_DTYPES,
    Adapter,
    ArrayFerryError,
    ArrayInfo,
    Device,
    DeviceError,
    UnsupportedDTypeError,
    device_check,
    format_message,
    hookimpl,
    identity,
    numpy_dtype,
    numpy_dtype_name,
)

__all__ = ["CupyAdapter", "arrayferry_adapters"]

_F = TypeVar("_F", bound=Callable[..., Any])
_NO_DRIVER = "CuPy is installed but no CUDA driver/device is available"
_HINT = "run on a machine with an NVIDIA GPU and driver (check nvidia-smi), or convert to numpy/torch on the CPU"


def _cp() -> Any:
    return sys.modules["cupy"]


def _mapped(fn: _F) -> _F:
    """Report CUDA failures inside an operation as DeviceError (never a leaking CUDARuntimeError)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ArrayFerryError:
            raise
        except Exception as exc:
            from arrayferry.plugin import device_error_from, is_cuda_error  # CUDA helpers load with the first failure

            if is_cuda_error(exc):
                raise device_error_from(exc, f"{_NO_DRIVER}, or a CUDA call failed in cupy ({fn.__name__}).", _HINT) from exc
            raise

    return wrapper  # type: ignore[return-value]


def _on(device_index: int | None) -> contextlib.AbstractContextManager[Any]:
    """``cupy.cuda.Device(i)`` as a context, or a no-op for "the current device"."""
    if device_index is None:
        return contextlib.nullcontext()
    return _cp().cuda.Device(device_index)  # type: ignore[no-any-return]


class CupyAdapter(Adapter):
    """CuPy ``ndarray`` (CUDA or ROCm device memory)."""

    name = "cupy"
    module = "cupy"
    aliases = ("cp",)
    distribution = "cupy-cuda12x"
    min_version = "13.0"
    readonly_capable = False
    host_export = True
    host_import = True
    dlpack_export = True
    dlpack_import = True
    #: ``__cuda_array_interface__``: the second zero-copy route between device frameworks.
    cai_export = True
    cai_import = True
    #: CuPy holds no host memory: a host array goes to the current CUDA device by default.
    home_device = Device("cuda")
    array_api_namespace = "array_api_compat.cupy"

    # -- identity ----------------------------------------------------------------------------
    def version(self) -> str | None:
        mod = sys.modules.get("cupy")
        v = getattr(mod, "__version__", None)
        if isinstance(v, str):
            return v
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x", "cupy-rocm-6-0", "cupy-rocm-5-0"):
            try:
                return version(dist)
            except PackageNotFoundError:
                continue
        return None

    @staticmethod
    def _dev_type() -> str:
        return "rocm" if getattr(_cp().cuda.runtime, "is_hip", False) else "cuda"

    # -- detection ---------------------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        return issubclass(tp, _cp().ndarray)

    def _layout(self, x: Any) -> str:
        flags = x.flags
        c, f = flags.c_contiguous, flags.f_contiguous
        st = x.strides
        if (c or f) and st and min(st) < 0:  # contiguous flags ignore length-1 axes
            return "negative"
        return self.numpy_layout(st, x.shape, c, f)

    def signature(self, x: Any) -> Hashable:
        return (type(x), x.dtype, x.data.device_id, self._layout(x))

    def describe(self, x: Any) -> ArrayInfo:
        dt = x.dtype
        return ArrayInfo(
            framework="cupy",
            dtype=numpy_dtype_name(dt),
            shape=tuple(x.shape),
            device=Device(self._dev_type(), int(x.data.device_id)),
            readonly=False,
            layout=self._layout(x),
            itemsize=dt.itemsize,
        )

    def device_of(self, x: Any) -> Device:
        return Device(self._dev_type(), int(x.data.device_id))

    def data_pointer(self, x: Any) -> int | None:
        return int(x.data.ptr)

    def parse_device(self, obj: Any) -> Device | None:
        if isinstance(obj, _cp().cuda.Device):
            return Device(self._dev_type(), int(obj.id))
        return None

    # -- devices -----------------------------------------------------------------------------
    def _device_count(self, asked: str) -> int:
        cp = self.namespace()
        try:
            return int(cp.cuda.runtime.getDeviceCount())
        except Exception as exc:  # CUDARuntimeError status 35 without a driver, 100 without a GPU
            from arrayferry.plugin import device_error_from

            raise device_error_from(
                exc, f"{_NO_DRIVER}; asked for device {asked!r} (cupy.cuda.runtime.getDeviceCount() failed).", _HINT
            ) from exc

    def devices(self) -> list[Device]:
        try:
            n = self._device_count("any")
        except DeviceError:
            return []
        return [Device(self._dev_type(), i) for i in range(n)]

    def check_device(self, device: Device) -> None:
        if device.type == "cpu":
            raise DeviceError(
                format_message(
                    "CuPy arrays live in CUDA device memory; device 'cpu' was asked for.",
                    hint="convert to numpy (or torch) for host memory, or ask for device='cuda' / 'cuda:N'",
                )
            )
        kind = self._dev_type() if "cupy" in sys.modules else "cuda"
        if device.type != kind:
            raise DeviceError(
                format_message(
                    f"CuPy cannot place arrays on {str(device)!r}; this CuPy build uses {kind} devices.",
                    hint=f"use device='{kind}' or '{kind}:N'",
                )
            )
        n = self._device_count(str(device))
        if n == 0:
            raise DeviceError(format_message(f"{_NO_DRIVER}: the driver reports 0 devices; asked for {str(device)!r}.", hint=_HINT))
        if device.index is not None and device.index >= n:
            raise DeviceError(
                format_message(
                    f"CUDA device {device.index} does not exist; CuPy sees {n} device(s); asked for {str(device)!r}.",
                    hint=f"use an index below {n}",
                )
            )

    def supports_dtype(self, dtype: str, device: Device) -> bool:
        return dtype in ITEMSIZE and dtype not in ML_DTYPES

    def default_dtype_for(self, dtype: str, device: Device) -> str:
        if self.supports_dtype(dtype, device):
            return dtype
        raise UnsupportedDTypeError(
            format_message(
                f"CuPy cannot hold {dtype} arrays (on {device}).",
                ["CuPy supports bool, integer, float16/32/64 and complex64/128 dtypes"],
                hint="pass dtype='float32' (or another supported dtype) to cast on the way",
            )
        )

    # -- routes ------------------------------------------------------------------------------
    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy")

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        # The planner stages CuPy memory with ``to_host`` first, which already returns NumPy.
        return identity

    def export_host(self, x: Any) -> Any:
        np = sys.modules["numpy"]
        if isinstance(x, np.ndarray):
            return x
        raise DeviceError(
            format_message(
                f"CuPy memory on {self.device_of(x)} cannot be viewed from the host without a copy.",
                hint="stage it with x.get() (arrayferry.convert(x, 'numpy') plans that copy)",
            )
        )

    def host_import_refusals(self, info: ArrayInfo) -> list[str]:
        out = []
        if info.byteorder != "=":
            out.append("CuPy holds native byte order only (a byte swap is needed)")
        if info.dtype in ML_DTYPES:
            out.append(f"CuPy has no {info.dtype} dtype")
        return out

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        # NumPy memory stays as it is; the planner's ``to_device`` step does the one transfer.
        return identity

    def import_host(self, arr: Any) -> Any:
        return arr

    def dlpack_import_refusals(self, info: ArrayInfo) -> list[str]:
        out = []
        if info.device.type not in ("cuda", "rocm", "cuda_managed"):
            out.append(f"CuPy cannot alias memory on {info.device} (cupy.from_dlpack takes device memory only)")
        if info.dtype in ML_DTYPES:
            out.append(f"CuPy has no {info.dtype} dtype")
        if info.readonly:
            # e.g. a JAX array on the GPU (immutable): cupy.from_dlpack would hand out a writable alias
            out.append("CuPy arrays are always writable: aliasing read-only memory would let writes through")
        return out

    def from_dlpack(self, x: Any) -> Any:
        from arrayferry.plugin import consume_dlpack, with_requested_stream  # streams load with the first CuPy route

        return consume_dlpack("cupy", _cp().from_dlpack, with_requested_stream(x))

    def cai_import_refusals(self, info: ArrayInfo) -> list[str]:
        return self.dlpack_import_refusals(info)

    @_mapped
    def from_cai(self, x: Any) -> Any:
        """Wrap ``x.__cuda_array_interface__`` without copying, after ordering against its stream."""
        from arrayferry.plugin import (
            CAIView,
            cupy_external_stream,
            cupy_stream,
            cupy_stream_context,
            producer_stream,
            requested_stream,
        )

        cp = _cp()
        cai = dict(x.__cuda_array_interface__)
        prod = producer_stream(x, cai)
        spec = requested_stream()
        if prod is not None and (spec is None or spec.handle != -1):
            requested = cupy_stream(None)
            consumer = requested if requested is not None else cp.cuda.get_current_stream()
            with cupy_stream_context(None):
                if int(consumer.ptr or 1) != prod:
                    ev = cp.cuda.Event(disable_timing=True)
                    ev.record(cupy_external_stream(prod))
                    consumer.wait_event(ev)
        cai["stream"] = None  # ordered above; CuPy must not synchronise the host again
        return cp.asarray(CAIView(x, cai))

    # -- native operations -------------------------------------------------------------------
    @_mapped
    def copy(self, x: Any) -> Any:
        from arrayferry.plugin import cupy_stream_context

        idx = int(x.data.device_id)
        with _on(idx), cupy_stream_context(idx):  # ndarray.copy copies onto the *current* device
            return x.copy()

    @_mapped
    def cast(self, x: Any, dtype: str) -> Any:
        from arrayferry.plugin import cupy_stream_context

        idx = int(x.data.device_id)
        with _on(idx), cupy_stream_context(idx):
            return x.astype(numpy_dtype(dtype))

    def cast_differs_unchecked(self, src: str, dst: str, device: Device) -> str | None:
        if src.startswith(("float", "bfloat", "complex")) and dst.startswith(("int", "uint")):
            # as for torch (2**31 + 1.5 to uint8: 1 where NumPy gives 0); CUDA's conversions saturate
            return ("CuPy's result for NaN, infinity and out-of-range floats to integers (undefined in C) "
                    "is not NumPy's, and casting='unsafe' asks for NumPy's")
        return None

    @_mapped
    def check_cast(self, x: Any, src: str, dst: str, mode: str = "range") -> None:
        from arrayferry.plugin import cupy_stream_context

        idx = int(x.data.device_id)
        with _on(idx), cupy_stream_context(idx):
            device_check(x, src, dst, mode, _CupyOps(_cp()))

    @_mapped
    def to_host(self, x: Any) -> Any:
        from arrayferry.plugin import cupy_stream

        idx = int(x.data.device_id)
        with _on(idx):
            # blocking copy on the requested (or current) stream: the host result is complete on return
            return x.get(stream=cupy_stream(idx), order="C")

    @_mapped
    def to_device(self, x: Any, device: Device) -> Any:
        from arrayferry.plugin import cupy_stream_context

        cp = _cp()
        with _on(device.index), cupy_stream_context(device.index):
            if isinstance(x, cp.ndarray):
                return x.copy()  # onto the current device; CuPy copies between devices itself
            return cp.asarray(x)


class _CupyOps:
    """The few array operations ``arrayferry.plugin.device_check`` needs, done by CuPy on the device."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp

    def size(self, x: Any) -> int:
        return int(x.size)

    def any_imag(self, x: Any) -> bool:
        return bool((x.imag != 0).any())

    def real(self, x: Any) -> Any:
        return x.real

    def parts(self, x: Any) -> Any:
        return self.cp.concatenate([x.real.ravel(), x.imag.ravel()])

    def extremes(self, x: Any) -> tuple[Any, Any]:
        return x.min().item(), x.max().item()

    def finite(self, x: Any) -> Any:
        return x[self.cp.isfinite(x)]

    def roundtrip_equal(self, x: Any, dst: str) -> bool:
        back = x.astype(numpy_dtype(dst)).astype(x.dtype)
        same = back == x
        if x.dtype.kind in "fc":
            same |= self.cp.isnan(x) & self.cp.isnan(back)
        return bool(same.all())


@hookimpl
def arrayferry_adapters() -> list[Adapter]:
    return [CupyAdapter()]
