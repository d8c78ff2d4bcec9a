"""The PyTorch adapter (CPU and CUDA tensors).

Constraints it declares to the planner, each a trap of torch's own conversion calls:

* torch cannot represent negative strides: ``torch.from_numpy`` raises and ``torch.from_dlpack``
  aborts the whole process (SIGABRT) on them, so such memory is always copied first;
* torch tensors are always writable: read-only memory is copied, never aliased;
* ``requires_grad`` tensors are detached (no copy); the conjugate and negative bits are
  resolved (a copy), because DLPack silently drops the negative bit;
* bfloat16 and float8 cross to NumPy by reinterpreting the bits (16- or 8-bit integer views) as
  ``ml_dtypes`` types, never through a float32 round trip.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from arrayferry.plugin import (
    CPU,
    ITEMSIZE,
    ML_DTYPES,
    NPY_ALIGNED,
    NPY_C_CONTIGUOUS,
    NPY_F_CONTIGUOUS,
    NPY_OWNDATA,
    NPY_WRITEABLE,
    Adapter,
    ArgumentError,
    ArrayInfo,
    Device,
    DeviceError,
    Step,
    UnsupportedArrayError,
    UnsupportedDTypeError,
    adapter_named,
    check_cast_values,
    device_check,
    format_message,
    guarded_call,
    hookimpl,
    host_cast,
    kind_of,
    numpy_dtype,
)

_BITS_VIEW = {1: "uint8", 2: "int16"}


def _torch() -> Any:
    mod = sys.modules.get("torch")
    if mod is None:  # torch as a target before the user imported it: import it now (or raise with a hint)
        mod = TorchAdapter().namespace()
    return mod


_NEED = NPY_WRITEABLE | NPY_ALIGNED  # what torch.from_numpy does not check itself
_M = _NEED | NPY_OWNDATA | NPY_C_CONTIGUOUS | NPY_F_CONTIGUOUS
# writable, aligned, owning contiguous data: any dtype, complex included (one set lookup)
_GOOD = frozenset(_NEED | NPY_OWNDATA | c for c in (NPY_C_CONTIGUOUS, NPY_F_CONTIGUOUS, NPY_C_CONTIGUOUS | NPY_F_CONTIGUOUS))


class _Refused(Exception):
    """The direct call's guard refuses an array: arrayferry plans it instead."""


def _from_numpy_direct(from_numpy: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``torch.from_numpy`` behind the checks it lacks (see ``Adapter.direct_call``).

    ``torch.from_numpy`` raises for negative strides, strides that are not a multiple of the
    itemsize, a byte order other than the machine's and every dtype torch lacks: each of those
    has another plan. It does not refuse read-only memory (it warns and aliases it writably) or
    memory NumPy calls aligned that torch does not (a complex view at an offset of one
    component: writing into it crashes the process), so those are refused here: NumPy's
    WRITEABLE and ALIGNED flags, and for a complex dtype an array owning contiguous data (see
    ``arrayferry.adapters.numpy``). A view with a negative stride is refused here too, although
    ``torch.from_numpy`` would raise: arrayferry never hands torch a negative stride (its DLPack
    twin aborts the process on them, and the suite checks no native call is reached with one).
    One flags read for an array owning its data, no Python signature.
    """

    def views(x: Any, _need: int = _NEED, _from_numpy: Callable[[Any], Any] = from_numpy) -> Any:
        # not writable, aligned, owning contiguous data: a view (or refused)
        n = x.flags.num
        if n & _need == _need and x.dtype.kind != "c":
            st = x.strides  # a view: never hand torch a negative stride (see above)
            if not st or min(st) >= 0:
                return _from_numpy(x)
        raise _Refused

    # the common array (writable, aligned, owning contiguous data) without a Python frame
    return guarded_call(from_numpy, operator.attrgetter("flags.num"), _M, _GOOD, views)


def _detach(t: Any) -> Any:
    return t.detach()


def _leaf_requiring_grad(t: Any) -> Any:
    return t.detach().requires_grad_(True)


def _resolve_bits(t: Any) -> Any:
    return t.resolve_conj().resolve_neg()


class TorchAdapter(Adapter):
    name = "torch"
    module = "torch"
    aliases = ("pytorch", "pt")
    distribution = "torch"
    #: The oldest torch whose routes the planner can serve, by capability: uint16/uint32/uint64
    #: tensors (every canonical dtype maps to ``torch.<name>``) first exist in 2.3; everything else
    #: the routes call (``from_dlpack``, ``resolve_conj``/``resolve_neg``, ``ExternalStream``) is
    #: older. The nox cell ``minimums(torch='2.3')`` runs the suites on it (docs/matrix.md).
    min_version = "2.3"
    # pinned: an open requirement takes the newest CUDA build, several GB (CPU-only builds: docs/install.md)
    install_hint = "'torch==2.13.0'"
    readonly_capable = False
    host_export = True
    host_import = True
    dlpack_export = True
    dlpack_import = True
    #: ``__cuda_array_interface__`` (CUDA tensors): the second zero-copy route to/from CuPy.
    cai_export = True
    cai_import = True
    target_options: ClassVar[Mapping[str, str]] = MappingProxyType({
        "requires_grad": "True: the result is a new leaf tensor that requires grad (floating and complex dtypes); "
                         "False: it does not (detached); shares memory as without the option",
    })
    target_option_examples: ClassVar[Mapping[str, tuple[Any, ...]]] = MappingProxyType({"requires_grad": (True, False)})
    array_api_namespace = "array_api_compat.torch"

    def native_call(self, source: str, target: str) -> tuple[str, Callable[[Any], Any]] | None:
        torch = _torch()
        if target == "torch":
            if source == "numpy":
                return "torch.from_numpy", torch.from_numpy
            if source == "object":  # a list, a buffer, a protocol object
                return "torch.asarray", torch.asarray
            return "torch.from_dlpack", torch.from_dlpack
        if target == "numpy":
            return "Tensor.numpy()", torch.Tensor.numpy
        return None

    def direct_call(self, tp: type, source: str, target: str, device: Device | None = None,
                    ) -> Callable[[Any], Any] | None:
        # Exact types only: a subclass may override the calls (__torch_function__, np.matrix).
        # Both calls stay on the host: they serve no device or the host asked for.
        torch = sys.modules.get("torch")
        if torch is None or (device is not None and not device.is_host):
            return None
        if source == "torch" and target == "numpy" and tp is torch.Tensor:
            # Tensor.numpy() raises for every tensor whose plan is another route: CUDA and meta,
            # requires_grad, the conjugate and negative bits, sparse, nested, quantized, and the
            # dtypes NumPy lacks (bfloat16, float8, complex32); it returns the view the plan returns
            return torch.Tensor.numpy  # type: ignore[no-any-return,attr-defined]
        np = sys.modules.get("numpy")
        if source == "numpy" and target == "torch" and np is not None and tp is np.ndarray:
            return _from_numpy_direct(torch.from_numpy)
        return None

    # -- detection -------------------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        return issubclass(tp, _torch().Tensor)

    def signature(self, t: Any) -> Hashable:
        try:
            contiguous = t.is_contiguous()
        except RuntimeError:  # sparse CSR/CSC/BSR tensors have no is_contiguous; describe() reports them
            contiguous = None
        if t.is_nested:
            contiguous = "nested"
        dt = t.dtype
        # only complex tensors can carry the conjugate bit: skip the call (40 ns) for the rest;
        # CPU tensors stand as True instead of a device object (cheaper to read, hash and compare)
        return (type(t), dt, t.is_cpu or t.device, t.layout, t.requires_grad, dt.is_complex and t.is_conj(),
                t.is_neg(), contiguous)

    def describe(self, t: Any) -> ArrayInfo:
        torch = _torch()
        dname = str(t.dtype)[6:]
        dev = t.device
        device = Device(dev.type, dev.index)
        problem: tuple[type[Exception], str] | None = None
        if t.is_nested:
            return ArrayInfo(
                framework="torch", dtype=dname, shape=(), device=device, itemsize=t.element_size(),
                problem=(
                    UnsupportedArrayError,
                    format_message(
                        f"Cannot convert a nested (ragged) torch tensor ({dname}): its rows have different shapes, so it is not one array.",
                        hint="convert its components (t.unbind()) one by one, or pad it (t.to_padded_tensor(0.0))",
                    ),
                ),
            )
        if t.is_quantized:
            problem = (
                UnsupportedDTypeError,
                format_message(
                    f"Cannot convert a quantized torch tensor ({dname}, shape {tuple(t.shape)}): its integers mean nothing without the scale and zero point.",
                    hint="call t.dequantize() for real values, or t.int_repr() for the raw integers",
                ),
            )
        elif t.layout != torch.strided:
            problem = (
                UnsupportedArrayError,
                format_message(
                    f"Cannot convert a torch tensor with layout {t.layout} ({dname}, shape {tuple(t.shape)}): only strided (dense) tensors hold their data as an array.",
                    hint="call t.to_dense() first (it copies)",
                ),
            )
        elif dev.type == "meta":
            problem = (
                DeviceError,
                format_message(
                    f"Cannot convert a torch tensor on the meta device ({dname}, shape {tuple(t.shape)}): meta tensors have no data.",
                    hint="materialise it on a real device first (e.g. torch.empty_like(t, device='cpu'))",
                ),
            )
        flags = set()
        if t.requires_grad:
            flags.add("requires_grad")
        if t.is_conj():
            flags.add("conj")
        if t.is_neg():
            flags.add("neg")
        return ArrayInfo(
            framework="torch",
            dtype=dname,
            shape=tuple(t.shape),
            device=device,
            readonly=False,
            layout="contiguous" if problem is None and t.is_contiguous() else "strided",
            itemsize=t.element_size(),
            flags=frozenset(flags),
            problem=problem,
        )

    def device_of(self, t: Any) -> Device:
        dev = t.device
        return Device(dev.type, dev.index)

    def data_pointer(self, t: Any) -> int | None:
        return int(t.data_ptr())

    def parse_device(self, obj: Any) -> Device | None:
        torch = _torch()
        if isinstance(obj, torch.device):
            return Device(obj.type, obj.index)
        return None

    def parse_dtype(self, obj: Any) -> str | None:
        torch = _torch()
        if isinstance(obj, torch.dtype):
            name = str(obj)[6:]
            return name if name in ITEMSIZE else None
        return None

    # -- devices ---------------------------------------------------------------------------
    def devices(self) -> list[Device]:
        torch = self.namespace()
        out = [CPU]
        try:
            if torch.cuda.is_available():
                out.extend(Device("cuda", i) for i in range(torch.cuda.device_count()))
        except Exception:
            pass
        return out

    def check_device(self, device: Device) -> None:
        if device.type == "cpu":
            if device.index is not None:
                raise DeviceError(
                    format_message(
                        f"torch has a single CPU device; device {str(device)!r} was asked for.",
                        hint="use device='cpu'",
                    )
                )
            return
        torch = self.namespace()
        if device.type == "cuda":
            cuda_build = getattr(torch.version, "cuda", None) or getattr(torch.version, "hip", None)
            if not cuda_build:
                raise DeviceError(
                    format_message(
                        f"no CUDA device available: torch {torch.__version__} is a CPU build (torch.version.cuda is None); asked for device {str(device)!r}.",
                        hint="install a CUDA build of torch on a machine with a GPU, or use device='cpu'",
                    )
                )
            try:
                available = bool(torch.cuda.is_available())
                count = int(torch.cuda.device_count()) if available else 0
            except Exception as exc:  # broken driver: report, never leak
                raise DeviceError(
                    format_message(
                        f"no CUDA device available: asking torch for CUDA devices failed; asked for {str(device)!r}.",
                        [f"torch.cuda.is_available() raised {type(exc).__name__}: {exc}"],
                        hint="check the NVIDIA driver (nvidia-smi), or use device='cpu'",
                    )
                ) from exc
            if not available:
                raise DeviceError(
                    format_message(
                        f"no CUDA device available: torch {torch.__version__} was built with CUDA {torch.version.cuda} but torch.cuda.is_available() is False (no driver or no GPU); asked for {str(device)!r}.",
                        hint="run on a machine with an NVIDIA GPU and driver, or use device='cpu'",
                    )
                )
            if device.index is not None and device.index >= count:
                raise DeviceError(
                    format_message(
                        f"CUDA device {device.index} does not exist; torch sees {count} device(s); asked for {str(device)!r}.",
                        hint=f"use an index below {count}",
                    )
                )
            return
        if device.type == "meta":
            raise DeviceError(format_message("the meta device holds no data; arrayferry cannot place arrays there.", hint="use 'cpu' or 'cuda'"))
        raise DeviceError(
            format_message(
                f"torch device type {device.type!r} is not supported by arrayferry's torch adapter (asked for {str(device)!r}).",
                hint="use 'cpu' or 'cuda[:N]'",
            )
        )

    # -- routes ----------------------------------------------------------------------------
    def prepare(self, info: ArrayInfo) -> list[Step]:
        steps = []
        if "requires_grad" in info.flags:
            steps.append(Step("detach", "detach from autograd (t.detach(), no copy; gradients do not flow into the result)", _detach))
        if "conj" in info.flags or "neg" in info.flags:
            bits = " and ".join(b for b in ("conj", "neg") if b in info.flags)
            steps.append(Step("resolve_bits", f"materialise the lazy {bits} bit (a copy; DLPack and NumPy would drop or refuse it)",
                              _resolve_bits, copies=True))
        return steps

    def host_info(self, info: ArrayInfo) -> ArrayInfo:
        return info.with_(framework="numpy", readonly=False)

    def host_exporter(self, info: ArrayInfo) -> Callable[[Any], Any]:
        torch = _torch()
        if info.dtype in ML_DTYPES:
            bits = getattr(torch, _BITS_VIEW[ITEMSIZE[info.dtype]])
            npdt = numpy_dtype(info.dtype)

            def export_bits(t: Any) -> Any:
                return t.view(bits).numpy().view(npdt)

            return export_bits
        return torch.Tensor.numpy  # type: ignore[no-any-return]

    def export_host(self, t: Any) -> Any:
        return self.host_exporter(self.describe(t))(t)

    def host_import_refusals(self, info: ArrayInfo) -> list[str]:
        out = []
        if info.layout == "negative":
            out.append("torch cannot represent negative strides (torch.from_numpy raises; torch.from_dlpack aborts the process)")
        if info.readonly:
            out.append("torch tensors are always writable: aliasing read-only memory would let writes through")
        if info.byteorder != "=":
            out.append("torch holds native byte order only (a byte swap is needed)")
        if "odd_strides" in info.flags:
            out.append("torch counts strides in elements, and a stride of this array is not a multiple of its itemsize "
                       "(a field of a structured array, an as_strided view)")
        if not info.aligned and info.dtype.startswith("complex"):
            # torch.from_numpy takes it, but c10::complex<T> is alignas(2 * sizeof(T)): writing into a
            # misaligned complex128 tensor crashed the process (SIGSEGV, torch 2.13, numpy 1.26 and 2.4)
            out.append("torch's complex types assume aligned memory (writing into a misaligned complex tensor can crash the process)")
        return out

    def host_importer(self, info: ArrayInfo) -> Callable[[Any], Any]:
        torch = _torch()
        if info.dtype in ML_DTYPES:
            np = sys.modules["numpy"]
            npbits = np.dtype(_BITS_VIEW[ITEMSIZE[info.dtype]])
            tdt = getattr(torch, info.dtype)

            def import_bits(a: Any) -> Any:
                return torch.from_numpy(a.view(npbits)).view(tdt)

            return import_bits
        if "odd_unit_strides" in info.flags:
            np = sys.modules["numpy"]
            as_strided = np.lib.stride_tricks.as_strided

            def import_normalised(a: Any) -> Any:
                # torch.from_numpy checks the strides of length-1 axes (and of empty arrays) too:
                # give them C strides (no copy)
                st, acc, empty = [], a.itemsize, 0 in a.shape
                for n, s in zip(reversed(a.shape), reversed(a.strides), strict=True):
                    st.append(s if n > 1 and not empty else acc)
                    acc *= max(n, 1)
                return torch.from_numpy(as_strided(a, strides=tuple(reversed(st)), writeable=a.flags.writeable))

            return import_normalised
        if info.dtype == "uint64":
            np = sys.modules["numpy"]
            u64 = np.dtype(np.uint64)

            def import_uint64(a: Any) -> Any:
                # NumPy has two uint64 types on LP64 platforms (ulong 'L', ulonglong 'Q': array.array('Q'),
                # memoryview format 'Q'); torch.from_numpy accepts only the first: view as it (no copy)
                return torch.from_numpy(a if a.dtype.char == u64.char else a.view(u64.newbyteorder(a.dtype.byteorder)))

            return import_uint64
        return torch.from_numpy  # type: ignore[no-any-return]

    def import_host(self, arr: Any) -> Any:
        return self.host_importer(adapter_named("numpy").describe(arr))(arr)

    def dlpack_import_refusals(self, info: ArrayInfo) -> list[str]:
        out = self.host_import_refusals(info)
        if info.dtype in ML_DTYPES and info.dtype != "bfloat16":
            out.append(f"DLPack has no {info.dtype} type code")
        return out

    def from_dlpack(self, x: Any) -> Any:
        # torch passes its current stream on the producer's device; convert(stream=S) replaces it by S
        from arrayferry.plugin import consume_dlpack, with_requested_stream  # streams load with the first DLPack import

        return consume_dlpack("torch", _torch().from_dlpack, with_requested_stream(x))

    def cai_import_refusals(self, info: ArrayInfo) -> list[str]:
        out = self.host_import_refusals(info)
        if info.device.type != "cuda":
            out.append(f"torch wraps __cuda_array_interface__ memory on CUDA devices only, not {info.device}")
        return out

    def from_cai(self, x: Any) -> Any:
        """Wrap ``x.__cuda_array_interface__`` (no copy) after making the consumer stream wait on the producer's."""
        from arrayferry import device_of  # public API: the source adapter knows where x lives
        from arrayferry.plugin import producer_stream, requested_stream, torch_stream_context

        torch = _torch()
        idx = device_of(x).index or 0
        cai = x.__cuda_array_interface__
        prod = producer_stream(x, cai)
        spec = requested_stream()
        if prod is not None and (spec is None or spec.handle != -1):
            with torch_stream_context(idx):
                consumer = torch.cuda.current_stream(idx)
                if (int(consumer.cuda_stream) or 1) != prod:
                    ev = torch.cuda.Event()
                    ev.record(torch.cuda.default_stream(idx) if prod == 1 else torch.cuda.ExternalStream(prod, device=idx))
                    consumer.wait_event(ev)
        # an explicit device: older torch placed CAI tensors on the default device, not the pointer's
        return torch.as_tensor(x, device=torch.device("cuda", idx))

    def apply_options(self, steps: list[Step], options: Mapping[str, Any], info: ArrayInfo) -> list[Step]:
        """``requires_grad=``: the result, detached (a new tensor sharing its memory, so the caller's
        own tensor is never changed), then marked as requiring grad or not."""
        flag = options["requires_grad"]
        if not isinstance(flag, bool):
            raise ArgumentError(format_message(
                f"Target option requires_grad={flag!r} is not a bool.",
                hint="pass requires_grad=True (a leaf tensor that requires grad) or requires_grad=False",
            ))
        if flag and kind_of(info.dtype) not in "fc":
            raise ArgumentError(format_message(
                f"Target option requires_grad=True asks torch for a {info.dtype} tensor that requires grad; "
                "only floating and complex tensors can.",
                hint="pass dtype='float32' (or another floating dtype) as well, or leave requires_grad out",
            ))
        if flag:
            return [*steps, Step("requires_grad", "a new leaf tensor sharing the memory (detach), marked "
                                 "requires_grad=True: gradients stop there", _leaf_requiring_grad)]
        return [*steps, Step("detach", "a tensor sharing the memory that does not require grad (detach)", _detach)]

    # -- native operations -----------------------------------------------------------------
    def copy(self, t: Any) -> Any:
        if t.is_cuda:
            from arrayferry.plugin import torch_stream_context
            with torch_stream_context(t.device.index):
                return t.clone(memory_format=_torch().contiguous_format)
        return t.clone(memory_format=_torch().contiguous_format)

    def cast(self, t: Any, dtype: str) -> Any:
        torch = _torch()
        if t.is_complex() and not getattr(torch, dtype).is_complex:
            t = t.real  # what the cast keeps anyway (values were checked), without torch's UserWarning
        if dtype == "float16" and t.dtype in (torch.float64, torch.float32):
            # torch rounds float64 through float32 and sets its own NaN payloads: NumPy's bits instead
            if t.is_cuda:
                from arrayferry.plugin import torch_stream_context
                with torch_stream_context(t.device.index):
                    return exact_float16(torch, t)
            return exact_float16(torch, t)
        if t.is_cuda:
            from arrayferry.plugin import torch_stream_context
            with torch_stream_context(t.device.index):
                return t.to(getattr(torch, dtype))
        return t.to(getattr(torch, dtype))

    def cast_differs(self, src: str, dst: str, device: Device) -> str | None:
        if dst == "float16" and src in ("float32", "float64", "complex64", "complex128"):
            return None  # cast() rounds once, as NumPy does, and writes NumPy's NaN bits (exact_float16)
        if kind_of(src) in "fc" and (dst in ("float16", "bfloat16") or dst.startswith("float8")):
            # measured on torch 2.13 CPU: float64 -> float16 rounds through float32 (double
            # rounding: 61 of 10^6 normal values differ in the last bit); float32 -> float16 and
            # -> bfloat16 set their own NaN payloads
            return (f"torch rounds {src} to {dst} through float32 (double rounding) and sets its own NaN "
                    "payloads, so the last bit can differ from NumPy's direct cast")
        if src == "float16" and kind_of(dst) in "fc":
            # measured on torch 2.13 CPU: float16 NaN 0x7e00 widens to float32 0x7fffffff (NumPy:
            # 0x7fc00000); payloads 0x7c01, 0x7d00 differ for float64 and complex too
            return (f"torch widens float16 NaN to {dst} with its own payload where NumPy keeps the payload's bits")
        return None

    def checked_cast(self, t: Any, src: str, dst: str, mode: str | None) -> Any:
        if t.device.type == "cpu" and (mode is not None or dst == "float16"):
            # (float16: NumPy's cast is the reference and, on a CPU, faster than exact_float16)
            # NumPy casts exactly as torch does for the pairs torch is trusted with (cast_differs),
            # and fuses the value check into the cast: one pass instead of two
            host = self.host_exporter(self.describe(t))(t)
            return self.host_importer(self.describe(t).with_(dtype=dst))(host_cast(host, src, dst, mode, shape=tuple(t.shape)))
        if mode is not None:
            self.check_cast(t, src, dst, mode)
        return self.cast(t, dst)

    def cast_differs_unchecked(self, src: str, dst: str, device: Device) -> str | None:
        if src.startswith(("float", "bfloat", "complex")) and dst.startswith(("int", "uint")):
            # torch 2.13 CPU: 2**31 + 1.5 (float64) -> uint8 gives 1 where NumPy gives 0
            return ("torch's result for NaN, infinity and out-of-range floats to integers (undefined in C) "
                    "is not NumPy's, and casting='unsafe' asks for NumPy's")
        return None

    def check_cast(self, t: Any, src: str, dst: str, mode: str = "range") -> None:
        if t.numel() == 0 or t.is_meta:  # a meta tensor has no values to lose
            return
        if t.device.type == "cpu":
            check_cast_values(self.host_exporter(self.describe(t))(t), src, dst, mode=mode)
            return
        torch = _torch()
        if t.is_cuda:
            from arrayferry.plugin import torch_stream_context
            with torch_stream_context(t.device.index):
                device_check(t, src, dst, mode, _TorchOps(torch))
        else:
            device_check(t, src, dst, mode, _TorchOps(torch))

    def to_host(self, t: Any) -> Any:
        if t.is_cuda:
            # a blocking copy (non_blocking=False) queued on the requested or current stream: the
            # host result is complete when this returns
            from arrayferry.plugin import torch_stream_context
            with torch_stream_context(t.device.index):
                return t.to("cpu")
        return t.to("cpu")

    def to_device(self, t: Any, device: Device) -> Any:
        if device.type == "cuda":
            from arrayferry.plugin import torch_stream_context
            with torch_stream_context(device.index):
                return t.to(_torch().device(str(device)))
        return t.to(_torch().device(str(device)))


def exact_float16(torch: Any, t: Any) -> Any:
    """Cast the real float64 or float32 tensor ``t`` to float16 with NumPy's bits, in torch ops only
    (so on the tensor's device: a CUDA tensor is narrowed before it is moved).

    torch's own float64 -> float16 cast rounds through float32 (two roundings: 1 + 2**-11 + 2**-40
    becomes 1.0 where NumPy gives 1 + 2**-10), and both its casts quiet NaN payloads that NumPy
    keeps. Here float64 is first rounded to float32 *to odd* (truncated toward zero, the lowest
    mantissa bit set when inexact), which keeps enough information (24 >= 2 * 11 + 2 bits) for the
    final round-to-nearest to float16 to equal one direct rounding; this holds for float16
    subnormals and for values beyond float32's range (truncated to its largest finite value, which
    float16 rounds to infinity as a direct cast would). NaN gets NumPy's bits: the sign, and
    ``0x7c00 + (mantissa >> (52 - 10))`` (``>> 13`` from float32), kept a NaN."""
    if t.dtype == torch.float64:
        y = t.to(torch.float32)
        back = y.to(torch.float64)
        # where rounding went away from zero (overflow to infinity included), one step back toward
        # zero: the bits are sign and magnitude, so the int32 pattern minus 1 (y is not 0 there);
        # then the sticky bit where inexact (NaN too: replaced below)
        yi = y.view(torch.int32) - (back.abs() > t.abs()).to(torch.int32)
        y = (yi | (back != t).to(torch.int32)).view(torch.float32)
        del back, yi
    else:
        y = t
    h = y.to(torch.float16)
    nan = torch.isnan(t)
    if not t.is_meta and bool(nan.any()):  # NaN bits computed for the NaN elements only (no full-size int64 temporaries)
        if t.dtype == torch.float64:
            bits = t[nan].view(torch.int64)
            sig = (bits & 0x000FFFFFFFFFFFFF) >> 42
        else:
            bits = t[nan].view(torch.int32).to(torch.int64)
            sig = (bits & 0x007FFFFF) >> 13
        w = (sig + (sig == 0).to(torch.int64) + 0x7C00) + (bits < 0).to(torch.int64) * 0x8000
        w = torch.where(w >= 0x8000, w - 0x10000, w).to(torch.int16)  # as int16 bits
        h.view(torch.int16)[nan] = w
    return h


class _TorchOps:
    """The few tensor operations ``arrayferry.plugin.device_check`` needs, done by torch on the tensor's device."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch

    def size(self, t: Any) -> int:
        return int(t.numel())

    def any_imag(self, t: Any) -> bool:
        return bool((t.imag != 0).any())

    def real(self, t: Any) -> Any:
        return t.real

    def parts(self, t: Any) -> Any:
        return self.torch.view_as_real(t.resolve_conj()) if t.is_complex() else t

    def extremes(self, t: Any) -> tuple[Any, Any]:
        torch = self.torch
        t = t.reshape(-1)
        if t.dtype == torch.bool:
            t = t.to(torch.uint8)
        elif t.dtype in (torch.uint16, torch.uint32):  # no min/max kernels for these: exact in int64
            t = t.to(torch.int64)
        elif t.dtype == torch.uint64:  # read as int64: values >= 2**63 are the negative ones
            i = t.view(torch.int64)
            neg = i < 0
            big, small = i[neg], i[~neg]
            lo = int(small.min()) if small.numel() else int(big.min()) + 2**64
            hi = int(big.max()) + 2**64 if big.numel() else int(small.max())
            return lo, hi
        lo, hi = torch.aminmax(t)
        return lo.item(), hi.item()

    def finite(self, t: Any) -> Any:
        return t[self.torch.isfinite(t)]

    def roundtrip_equal(self, t: Any, dst: str) -> bool:
        torch = self.torch
        if dst == "bool":
            return True  # as NumPy's same_value: non-zero is True
        target = getattr(torch, dst)
        if t.is_complex() and not target.is_complex:
            if bool((t.imag != 0).any()):
                return False
            t = t.real
        out = t.to(target)
        # compare as numbers in a type that holds both exactly enough: float64/complex128 for
        # floats, int64 for integers (uint64 beyond 2**63 compared through its float64 value)
        wide = torch.complex128 if (t.is_complex() or out.is_complex()) else (
            torch.float64 if (t.is_floating_point() or out.is_floating_point()) else torch.int64)
        a, b = t.to(wide), out.to(wide)
        same = a == b
        if wide != torch.int64:
            same |= torch.isnan(a) & torch.isnan(b)
        if wide != torch.int64 and not (t.is_floating_point() or t.is_complex()):
            # integers rounded by the float64 promotion too: they must also come back exactly
            same &= out.real.to(t.dtype) == t if out.is_complex() else out.to(t.dtype) == t
        if t.dtype == torch.uint64 or out.dtype == torch.uint64:
            o = out.real if out.is_complex() else out
            same &= (t.to(torch.float64) >= 0) == (o.to(torch.float64) >= 0)
        return bool(same.all())


@hookimpl
def arrayferry_adapters() -> list[Adapter]:
    return [TorchAdapter()]
