"""The JAX plugin against real JAX, NumPy and PyTorch: each JAX trap, devices, dtypes, copy policy.

Sharing is checked with data pointers (``unsafe_buffer_pointer()``, ``data_ptr()``,
``__array_interface__``) and, where one side is writable, by writing through it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import arrayferry as af
import numpy as np
import pytest

from conftest import buffer_at

ml_dtypes = pytest.importorskip("ml_dtypes")

SPECIALS = [np.nan, -0.0, np.inf, -np.inf, 0.0, 1.5, -2.25, 3.0e4]


def jptr(j: Any) -> int:
    return int(j.unsafe_buffer_pointer())


def nptr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal dtype, shape and bytes (NaN payloads and the sign of zero included)."""
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


def _complexify(v: np.ndarray) -> np.ndarray:
    """For complex dtypes, put the special values in the imaginary parts too (reversed)."""
    if v.dtype.kind == "c":
        v = v.copy()
        v.imag = v.real[::-1]
    return v


def host(x: Any) -> np.ndarray:
    """Read any array back as NumPy without arrayferry (the oracle)."""
    if type(x).__module__.startswith("torch"):
        import torch

        if x.dtype == torch.bfloat16:
            return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return x.numpy()
    return np.asarray(x)


# ------------------------------------------------------------------------------------------------
# registration


def test_plugin_joins_through_the_entry_point_without_importing_jax() -> None:
    code = textwrap.dedent(
        """
        import sys, numpy as np, arrayferry as af
        import arrayferry_jax
        assert "jax" not in sys.modules, "importing the plugin imported jax"
        assert af.framework_of(np.zeros(2)) == "numpy"
        names = {f.name: f.plugin for f in af.frameworks()}
        assert names.get("jax") == "jax", names
        assert "jax" not in sys.modules, "registry or detection imported jax"
        assert not [b for b in af.broken_plugins() if b[0] == "jax"], af.broken_plugins()
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_detection_and_device_of(jax: Any) -> None:
    j = jax.device_put(np.arange(3.0, dtype=np.float32), jax.devices()[2])
    assert af.framework_of(j) == "jax"
    assert af.device_of(j) == af.Device("cpu", 2)
    assert str(af.device_of(jax.numpy.ones(2))) == "cpu"


# ------------------------------------------------------------------------------------------------
# trap 1: torch.asarray(jax) reads bytes as flat float32; JAX buffers are immutable


def test_jax_to_torch_keeps_shape_and_dtype_and_copies(jax: Any, torch: Any) -> None:
    j = jax.numpy.arange(12, dtype=jax.numpy.int32).reshape(3, 4)
    p = af.plan(j, "torch")
    t = af.convert(j, "torch")
    assert t.dtype == torch.int32 and tuple(t.shape) == (3, 4)
    same_bits(t.numpy(), np.arange(12, dtype=np.int32).reshape(3, 4))
    assert not p.zero_copy
    assert t.data_ptr() != jptr(j)
    t[0, 0] = 42  # the torch tensor is writable and independent: the JAX array is untouched
    assert int(j[0, 0]) == 0


def test_jax_to_torch_copy_false_raises_and_says_why(jax: Any, torch: Any) -> None:
    j = jax.numpy.arange(4, dtype=jax.numpy.float32)
    with pytest.raises(af.CopyRequiredError) as ei:
        af.convert(j, "torch", copy=False)
    msg = str(ei.value)
    assert "read-only" in msg and "always writable" in msg
    assert msg.splitlines()[-1].startswith("Hint:")


def test_jax_to_numpy_aliases_read_only(jax: Any) -> None:
    j = jax.numpy.arange(6, dtype=jax.numpy.float32)
    p = af.plan(j, "numpy", copy=False)
    a = af.convert(j, "numpy", copy=False)
    assert p.zero_copy and nptr(a) == jptr(j)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 1.0
    c = af.convert(j, "numpy", copy=True)
    assert c.flags.writeable and nptr(c) != jptr(j)
    c[0] = 99.0
    assert float(j[0]) == 0.0


# ------------------------------------------------------------------------------------------------
# trap 2: silent 64-bit narrowing while jax_enable_x64 is off


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_integer_narrowing_refused_without_x64(jax: Any, dtype: str) -> None:
    a = np.array([2**40, 2**62 + 1, 7], dtype=dtype)
    with pytest.raises(af.LossyConversionError) as ei:
        af.convert(a, "jax")
    assert "narrow" in str(ei.value) and str(ei.value).splitlines()[-1].startswith("Hint:")
    small = np.array([1, 2, 3], dtype=dtype)
    narrow = "int32" if dtype == "int64" else "uint32"
    j = af.convert(small, "jax", dtype=narrow)  # asked for: allowed
    same_bits(np.asarray(j), small.astype(narrow))


def test_torch_int64_refused_without_x64(jax: Any, torch: Any) -> None:
    with pytest.raises(af.LossyConversionError):
        af.convert(torch.tensor([2**40, 2**63 - 1]), "jax")


@pytest.mark.parametrize(("dtype", "narrow"), [("float64", "float32"), ("complex128", "complex64")])
def test_float_narrowing_warns_and_is_in_the_plan(jax: Any, dtype: str, narrow: str) -> None:
    vals = _complexify(np.array(SPECIALS + [1e-300, 1.0 / 3.0], dtype=dtype))
    p = af.plan(vals, "jax")
    assert p.dtype == narrow
    assert any("narrow" in n for n in p.notes)
    assert "warn" in [s.name for s in p.steps]
    with pytest.warns(af.LossyConversionWarning, match="narrowed"):
        j = af.convert(vals, "jax")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = vals.astype(narrow)
    same_bits(np.asarray(j), want)


def test_x64_on_keeps_64_bit_types_and_plans_are_not_reused() -> None:
    code = textwrap.dedent(
        """
        import warnings
        import numpy as np, jax, arrayferry as af
        warnings.simplefilter("error")
        a = np.array([2**40, 2**63 - 1, -2**63], dtype=np.int64)
        try:
            af.convert(a, "jax")
        except af.LossyConversionError:
            pass
        else:
            raise SystemExit("x64 off: int64 was not refused")
        jax.config.update("jax_enable_x64", True)
        j = af.convert(a, "jax")  # same signature as before: the cached refusal must not be reused
        assert j.dtype == np.int64, j.dtype
        assert np.asarray(j).tobytes() == a.tobytes()
        f = np.array([np.nan, -0.0, 1e-300, np.inf])
        jf = af.convert(f, "jax")
        assert jf.dtype == np.float64 and np.asarray(jf).tobytes() == f.tobytes()
        c = np.array([1 + 2j, -0.0 - 1e-300j])
        assert np.asarray(af.convert(c, "jax")).tobytes() == c.tobytes()
        assert af.plan(a, "jax").dtype == "int64"
        print("ok")
        """
    )
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------------------------------
# trap 3: zero-copy only at 64-byte alignment


@pytest.mark.parametrize("offset", [0, 64, 4, 8, 16, 32])
@pytest.mark.parametrize("dtype", ["float32", "int32", "uint8", "bool", "complex64", "float16", "bfloat16"])
def test_numpy_to_jax_zero_copy_exactly_when_aligned(jax: Any, at: Any, dtype: str, offset: int) -> None:
    dt = np.dtype(getattr(ml_dtypes, dtype)) if dtype == "bfloat16" else np.dtype(dtype)
    if offset % dt.itemsize:
        pytest.skip("offset below the dtype's own alignment")
    a = at(np.arange(24).reshape(4, 6).astype(dt), offset)
    aligned = offset % 64 == 0
    assert not af.plan(a, "jax").zero_copy  # writable memory: copy=None copies (JAX arrays are immutable)
    ro = a.view()
    ro.flags.writeable = False  # read-only memory: aliased exactly when aligned
    p = af.plan(ro, "jax")
    assert p.zero_copy is aligned
    j = af.convert(ro, "jax")
    assert (jptr(j) == nptr(a)) is aligned
    same_bits(np.asarray(j), a)
    if aligned:
        assert jptr(af.convert(a, "jax", copy=False)) == nptr(a)  # copy=False aliases writable memory
        with pytest.raises(af.CopyRequiredError, match="64-byte"):
            af.convert(at(a, 4 if dt.itemsize <= 4 else 8), "jax", copy=False)
    else:
        with pytest.raises(af.CopyRequiredError, match="64-byte"):
            af.convert(a, "jax", copy=False)


def test_cached_plans_follow_alignment_per_call(jax: Any, at: Any) -> None:
    """Same signature, different alignment: the cached convert path must re-plan (refine_key)."""
    vals = np.arange(10, dtype=np.float32)
    for offset in (0, 4, 0, 8, 64, 12):
        a = at(vals, offset)
        ro = a.view()
        ro.flags.writeable = False  # JAX may alias it under copy=None
        j = af.convert(ro, "jax")
        assert (jptr(j) == nptr(a)) is (offset % 64 == 0)
        if offset % 64 == 0:  # shared: a write into NumPy shows in JAX
            a[0] = 123.0
            assert float(np.asarray(j)[0]) == 123.0
        else:
            a[0] = 123.0
            assert float(np.asarray(j)[0]) == 0.0


@pytest.mark.parametrize("offset", [0, 4])
def test_torch_to_jax_alignment(jax: Any, torch: Any, offset: int) -> None:
    base = torch.arange(20, dtype=torch.float32)
    t = base[offset // 4:offset // 4 + 12]
    assert (t.data_ptr() % 64 == 0) is (offset == 0)
    assert not af.plan(t, "jax").zero_copy  # torch memory is writable: copy=None copies
    if offset:
        with pytest.raises(af.CopyRequiredError, match="64-byte"):
            af.plan(t, "jax", copy=False)
        j = af.convert(t, "jax")
    else:
        p = af.plan(t, "jax", copy=False)
        j = af.convert(t, "jax", copy=False)
        assert p.zero_copy
    assert (jptr(j) == t.data_ptr()) is (offset == 0)
    same_bits(np.asarray(j), t.numpy())


# ------------------------------------------------------------------------------------------------
# trap 4: legacy DLPack (read-only numpy cannot travel), compact strides only


def test_read_only_numpy_goes_by_device_put_not_dlpack(jax: Any, at: Any) -> None:
    a = at(np.arange(8, dtype=np.float32))
    a.flags.writeable = False
    try:  # the trap itself: BufferError up to jax 0.10 with NumPy 2.4; jax 0.12 with NumPy 2.5 imports it
        native = jax.dlpack.from_dlpack(a)
    except BufferError:
        pass
    else:
        same_bits(np.asarray(native), a)
    p = af.plan(a, "jax")
    assert p.route == "host" and p.zero_copy
    assert any(r == "dlpack" and "read-only" in why for r, why in p.refused)
    j = af.convert(a, "jax", copy=False)
    assert jptr(j) == nptr(a)
    same_bits(np.asarray(j), a)


def _layouts(at: Any) -> dict[str, np.ndarray]:
    base = at(np.arange(24, dtype=np.float32).reshape(4, 6) - 7.5)
    return {
        "negative": base[::-1],
        "negative-cols": base[:, ::-1],
        "step2": base[:, ::2],
        "broadcast": np.broadcast_to(at(np.arange(6, dtype=np.float32)), (4, 6)),
        "fortran": base.T,
    }


@pytest.mark.parametrize("layout", ["negative", "negative-cols", "step2", "broadcast", "fortran"])
@pytest.mark.parametrize("copy", [None, True, False])
def test_strided_numpy_into_jax(jax: Any, at: Any, layout: str, copy: bool | None) -> None:
    a = _layouts(at)[layout]
    # A compact transposed view can be aliased over DLPack when aligned; the others need a copy.
    can_alias = layout == "fortran"
    if copy is False and not can_alias:
        with pytest.raises(af.CopyRequiredError):
            af.convert(a, "jax", copy=False)
        return
    p = af.plan(a, "jax", copy=copy)
    j = af.convert(a, "jax", copy=copy)
    same_bits(np.asarray(j), a)
    shared = jptr(j) == nptr(a)
    assert p.zero_copy is shared
    assert shared is (can_alias and copy is False)  # copy=None copies writable memory into JAX
    if can_alias and copy is False:
        assert p.route == "dlpack"
        # a column-major JAX array leaves JAX by a copy into row-major order, and the plan says so
        back = af.plan(j, "numpy")
        assert not back.zero_copy and back.steps[0].name == "relayout"
        b = af.convert(j, "numpy")
        assert nptr(b) != jptr(j)
        same_bits(b, a)


# ------------------------------------------------------------------------------------------------
# devices: four host devices


def test_numpy_to_jax_lands_on_requested_device_zero_copy(jax: Any, at: Any) -> None:
    a = at(np.arange(12, dtype=np.float32))
    for dev in ("cpu:2", af.Device("cpu", 1), jax.devices()[3]):
        j = af.convert(a, "jax", device=dev, copy=False)
        want = af.Device.parse(dev) if not isinstance(dev, af.Device) else dev
        assert j.devices() == {jax.devices()[want.index or 0]}
        assert af.device_of(j) == want
        assert jptr(j) == nptr(a)  # host devices share RAM: device_put aliases aligned memory
        same_bits(np.asarray(j), a)


def test_jax_device_objects_parse(jax: Any) -> None:
    assert af.Device.parse(jax.devices()[2]) == af.Device("cpu", 2)
    assert af.Device.parse(jax.devices()[0]) == af.Device("cpu")


def test_torch_to_jax_on_another_device(jax: Any, torch: Any) -> None:
    t = torch.arange(6, dtype=torch.float32)
    j = af.convert(t, "jax", device="cpu:2")
    assert j.devices() == {jax.devices()[2]}
    same_bits(np.asarray(j), t.numpy())


def test_example_jax_array_as_target_gives_its_device(jax: Any, torch: Any) -> None:
    """``to=`` an example array: its framework and its device (cpu:2 here), unless device= is given."""
    ex = jax.device_put(np.zeros(1, np.float32), jax.devices()[2])
    t = torch.tensor(SPECIALS, dtype=torch.float32)
    p = af.plan(t, ex)
    assert p.target == "jax" and str(p.device) == "cpu:2"
    j = af.convert(t, ex)
    assert j.devices() == {jax.devices()[2]}
    same_bits(np.asarray(j), t.numpy())
    k = af.convert(t, ex, device="cpu:1")
    assert k.devices() == {jax.devices()[1]}
    n = af.convert(j, np.zeros(1))  # back to NumPy by example: "cpu" is NumPy's one host device
    same_bits(n, t.numpy())
    same_bits(af.convert(j, "numpy", device="cpu"), t.numpy())
    u = af.convert(j, torch.zeros(1))
    assert isinstance(u, torch.Tensor) and str(u.device) == "cpu"
    same_bits(u.numpy(), t.numpy())
    assert af.convert(j, "jax", device="cpu").devices() == {jax.devices()[2]}  # JAX stays on cpu:2
    assert af.convert_tree({"w": t}, ex)["w"].devices() == {jax.devices()[2]}


@pytest.mark.parametrize("copy", [None, True, False])
def test_jax_cross_device_is_a_transfer(jax: Any, copy: bool | None) -> None:
    j = jax.device_put(np.array(SPECIALS, dtype=np.float32), jax.devices()[1])
    if copy is False:
        with pytest.raises(af.CopyRequiredError):
            af.convert(j, "jax", device="cpu:3", copy=False)
        return
    p = af.plan(j, "jax", device="cpu:3", copy=copy)
    assert not p.zero_copy and p.copies == 1
    if copy is None:
        assert p.route == "native"
        assert [s.name for s in p.steps] == ["to_device"] and p.steps[0].transfer
    # copy=True may instead copy once on the host and let cpu:3 alias that fresh copy
    k = af.convert(j, "jax", device="cpu:3", copy=copy)
    assert k.devices() == {jax.devices()[3]} and jptr(k) != jptr(j)
    same_bits(np.asarray(k), np.asarray(j))


def test_jax_on_device_to_numpy_and_torch(jax: Any, torch: Any) -> None:
    j = jax.device_put(np.array(SPECIALS, dtype=np.float32), jax.devices()[2])
    a = af.convert(j, "numpy")
    assert nptr(a) == jptr(j) and not a.flags.writeable
    t = af.convert(j, "torch")
    same_bits(t.numpy(), np.asarray(j))
    assert t.data_ptr() != jptr(j)


@pytest.mark.parametrize("device", ["cpu:9", "cuda", "cuda:1", "tpu"])
def test_unavailable_device_is_a_device_error(jax: Any, device: str) -> None:
    with pytest.raises(af.DeviceError) as ei:
        af.convert(np.zeros(3, np.float32), "jax", device=device)
    msg = str(ei.value)
    assert device in msg and "cpu:3" in msg and msg.splitlines()[-1].startswith("Hint:")


# ------------------------------------------------------------------------------------------------
# bfloat16


def test_bfloat16_numpy_and_jax(jax: Any, at: Any) -> None:
    a = at(np.array(SPECIALS, dtype=ml_dtypes.bfloat16))
    j = af.convert(a, "jax", copy=False)
    assert j.dtype == jax.numpy.bfloat16 and jptr(j) == nptr(a)
    same_bits(np.asarray(j), a)
    back = af.convert(j, "numpy")
    assert back.dtype == np.dtype(ml_dtypes.bfloat16) and nptr(back) == jptr(j)
    same_bits(back, a)


def test_bfloat16_torch_and_jax(jax: Any, torch: Any) -> None:
    bits = np.array(SPECIALS, dtype=ml_dtypes.bfloat16)
    t = torch.from_numpy(bits.view(np.int16)).clone().view(torch.bfloat16)
    p = af.plan(t, "jax", copy=False)
    j = af.convert(t, "jax", copy=False)
    assert p.route == "dlpack" and p.zero_copy and jptr(j) == t.data_ptr()
    same_bits(np.asarray(j), bits)
    t2 = af.convert(j, "torch")
    assert t2.dtype == torch.bfloat16 and t2.data_ptr() != jptr(j)
    same_bits(host(t2), bits)


# ------------------------------------------------------------------------------------------------
# bit-for-bit round trips under every copy policy


DTYPES = ["float32", "float16", "complex64", "int8", "uint16", "int32", "uint32", "bool"]


def _values(dtype: str) -> np.ndarray:
    if dtype == "bool":
        return np.array([True, False, True, True, False, False])
    if dtype.startswith(("float", "complex")):
        return _complexify(np.array(SPECIALS[:6], dtype=dtype))
    info = np.iinfo(dtype)
    return np.array([info.min, info.max, 0, 1, info.max // 3, info.min // 5 if info.min else 9], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("copy", [None, True, False])
@pytest.mark.parametrize("shape", [(6,), (2, 3), ()])
def test_numpy_jax_numpy(jax: Any, at: Any, dtype: str, copy: bool | None, shape: tuple[int, ...]) -> None:
    vals = _values(dtype)
    vals = vals[0] if shape == () else vals.reshape(shape)
    a = at(np.asarray(vals))
    j = af.convert(a, "jax", copy=copy)
    assert (jptr(j) == nptr(a)) is (copy is False)  # copy=None copies writable memory into JAX
    same_bits(np.asarray(j), a)
    b = af.convert(j, "numpy", copy=copy)
    same_bits(b, a)
    assert (nptr(b) == jptr(j)) is (copy is not True)
    assert b.flags.writeable is (copy is True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("copy", [None, True, False])
def test_torch_jax_torch(jax: Any, torch: Any, dtype: str, copy: bool | None) -> None:
    t = torch.from_numpy(_values(dtype).reshape(2, 3)).clone()  # torch's allocator: 64-byte aligned
    assert t.data_ptr() % 64 == 0
    j = af.convert(t, "jax", copy=copy)
    assert (jptr(j) == t.data_ptr()) is (copy is False)  # torch memory is writable: copy=None copies
    same_bits(np.asarray(j), t.numpy())
    if copy is False:
        with pytest.raises(af.CopyRequiredError):
            af.convert(j, "torch", copy=False)
        return
    t2 = af.convert(j, "torch", copy=copy)
    assert t2.data_ptr() != jptr(j)
    same_bits(t2.numpy(), t.numpy())


def test_empty_arrays(jax: Any, torch: Any) -> None:
    for dt in ("float32", "int32", "bool"):
        a = np.zeros((0, 3), dtype=dt)
        j = af.convert(a, "jax")
        assert j.shape == (0, 3) and str(j.dtype) == dt
        assert af.convert(j, "torch").shape == (0, 3)
        assert af.convert(j, "numpy").shape == (0, 3)


# ------------------------------------------------------------------------------------------------
# jax -> jax


def test_jax_identity_copy_and_cast(jax: Any) -> None:
    jnp = jax.numpy
    j = jnp.array(np.array(SPECIALS, dtype=np.float32))
    assert af.convert(j, "jax") is j
    assert af.convert(j, "jax", copy=False) is j
    c = af.convert(j, "jax", copy=True)
    assert jptr(c) != jptr(j)
    same_bits(np.asarray(c), np.asarray(j))
    h = af.convert(j, "jax", dtype="float16")
    same_bits(np.asarray(h), np.asarray(j).astype(np.float16))
    h2 = af.convert(j, "jax", dtype=jnp.bfloat16)
    same_bits(np.asarray(h2), np.asarray(j).astype(ml_dtypes.bfloat16))
    with pytest.raises(af.CopyRequiredError):
        af.convert(j, "jax", dtype="float16", copy=False)
    with pytest.raises(af.LossyConversionError, match="NaN or infinity"):
        af.convert(j, "jax", dtype="int32")
    i = af.convert(jnp.array([1.7, -2.5, 3.0]), "jax", dtype="int32")
    same_bits(np.asarray(i), np.array([1, -2, 3], dtype=np.int32))


def test_jax_cannot_be_asked_for_64_bit_without_x64(jax: Any) -> None:
    with pytest.raises(af.UnsupportedDTypeError, match="float64"):
        af.convert(jax.numpy.ones(3), "jax", dtype="float64")


# ------------------------------------------------------------------------------------------------
# arrays that cannot leave JAX


def test_traced_and_deleted_arrays_are_refused(jax: Any) -> None:
    seen: list[BaseException] = []

    @jax.jit
    def f(x: Any) -> Any:
        try:
            af.convert(x, "numpy")
        except af.UnsupportedArrayError as exc:
            seen.append(exc)
        return x

    f(jax.numpy.ones(3))
    assert seen and "traced" in str(seen[0]) and str(seen[0]).splitlines()[-1].startswith("Hint:")
    d = jax.numpy.ones(3)
    d.delete()
    with pytest.raises(af.UnsupportedArrayError, match="deleted"):
        af.convert(d, "numpy")


def _public_calls() -> list[Any]:
    return [
        ("convert", lambda v: af.convert(v, "numpy")),
        ("plan", lambda v: af.plan(v, "torch")),
        ("device_of", af.device_of),
        ("shares_memory", lambda v: af.shares_memory(v, np.ones(3))),
        ("shares_memory-self", lambda v: af.shares_memory(v, v)),
        ("export_dlpack", af.export_dlpack),
    ]


def test_every_public_call_on_a_traced_or_deleted_array_raises_our_error(jax: Any) -> None:
    """No public function lets JAX's ConcretizationTypeError (or a deleted buffer's RuntimeError) escape."""
    calls = _public_calls()
    seen: dict[str, BaseException | None] = {}

    @jax.jit
    def f(x: Any) -> Any:
        assert af.framework_of(x) == "jax"  # answers without touching the data
        for name, call in calls:
            try:
                call(x)
                seen[name] = None
            except BaseException as exc:  # noqa: BLE001 - the type is what is tested
                seen[name] = exc
        return x

    f(jax.numpy.ones(3))
    d = jax.numpy.ones(3)
    d.delete()
    for name, call in calls:
        with pytest.raises(af.UnsupportedArrayError, match="deleted") as ei:
            call(d)
        assert str(ei.value).splitlines()[-1].startswith("Hint:"), name
    for name, exc in seen.items():
        assert isinstance(exc, af.UnsupportedArrayError), (name, exc)
        assert "traced" in str(exc) and str(exc).splitlines()[-1].startswith("Hint:"), name


def test_non_native_byte_order_is_swapped(jax: Any) -> None:
    a = np.array(SPECIALS, dtype=">f4")
    j = af.convert(a, "jax")
    same_bits(np.asarray(j), a.astype("<f4"))
    assert not af.plan(a, "jax").zero_copy


def test_buffer_at_helper_really_misaligns() -> None:
    assert buffer_at((3,), np.float32, 4).ctypes.data % 64 == 4


# ------------------------------------------------------------------------------------------------
# plans are right for every alignment and layout (both directions)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _numpy_views(draw: st.DrawFn) -> np.ndarray:
    """A view of a buffer placed at a chosen offset from a 64-byte boundary, of one layout class
    drawn evenly (C order, Fortran order, permuted axes, steps, negative steps, broadcast, byte
    strides that are not a multiple of the itemsize), length-1 axes included, read-only or not."""
    dt = np.dtype(draw(st.sampled_from(["float32", "int16", "uint8", "complex64", "float64", "bool"])))
    kind = draw(st.sampled_from(["C", "F", "permuted", "steps", "negative", "broadcast", "odd"]))
    ndim = draw(st.integers(2 if kind in ("F", "permuted") else 1, 3))
    shape = [draw(st.integers(1, 4)) for _ in range(ndim)]
    offset = draw(st.sampled_from([0, 64, dt.itemsize, 8, 16, 32, 48]))
    steps = [1] * ndim
    if kind == "steps":
        steps = [draw(st.sampled_from([1, 2, 3])) for _ in range(ndim)]
    elif kind == "negative":
        steps = [draw(st.sampled_from([1, -1, -2])) for _ in range(ndim)]
    base_shape = tuple(n * abs(k) for n, k in zip(shape, steps, strict=True))
    base = buffer_at(base_shape, dt, offset)
    base[...] = np.arange(base.size).reshape(base_shape).astype(dt)
    x = base[tuple(slice(None, None, k) for k in steps)]
    if kind == "F":
        x = buffer_at(tuple(reversed(shape)), dt, offset)
        x[...] = np.arange(x.size).reshape(x.shape).astype(dt)
        x = x.T  # Fortran order, starting at the chosen offset
    elif kind == "permuted":
        x = x.transpose(draw(st.permutations(list(range(ndim)))))
    elif kind == "broadcast":
        x = np.broadcast_to(x[:1], (3, *x.shape[1:]))
    elif kind == "odd" and dt.itemsize > 1:
        raw = buffer_at((64 * dt.itemsize,), np.uint8, offset)
        x = np.lib.stride_tricks.as_strided(raw[: dt.itemsize].view(dt), shape=tuple(shape),
                                            strides=tuple(draw(st.integers(1, 3 * dt.itemsize)) for _ in shape))
    if x.flags.writeable and draw(st.booleans()):
        x.flags.writeable = False
    return x


def _shares(x: np.ndarray, y: Any) -> bool:
    return af.shares_memory(x, y)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(x=_numpy_views(), copy=st.sampled_from([None, False, True]))
def test_plans_into_and_out_of_jax_are_honest(jax: Any, x: np.ndarray, copy: bool | None) -> None:
    """plan.zero_copy is exactly whether memory is shared, whatever the alignment and layout, into
    JAX and back out of the result; copy=None never lets JAX alias writable memory."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", af.LossyConversionWarning)  # float64 without x64
        try:
            p = af.plan(x, "jax", copy=copy)
        except af.CopyRequiredError:
            assert copy is False and not af.plan(x, "jax").zero_copy
            return
        try:
            j = af.convert(x, "jax", copy=copy)
        except af.LossyConversionError:
            # float64 into JAX without x64 narrows: values float32 cannot hold (the odd-strided views
            # read arbitrary bytes) are refused by the default casting policy, never turned into inf
            with np.errstate(all="ignore"):
                narrowed = np.ascontiguousarray(x).astype(p.dtype)
            assert p.dtype != x.dtype.name, p.explain()
            assert np.count_nonzero(~np.isfinite(narrowed)) > np.count_nonzero(~np.isfinite(x)), p.explain()
            return
    if p.dtype == x.dtype.name:
        same_bits(np.asarray(j), np.ascontiguousarray(x))
    assert _shares(x, j) is p.zero_copy, p.explain()
    if copy is None and x.flags.writeable:
        assert not p.zero_copy, p.explain()
    for to in ("numpy", "torch"):
        back = af.plan(j, to)
        y = af.convert(j, to)
        assert _shares(j, y) is back.zero_copy, back.explain()
        same_bits(np.asarray(af.convert(y, "numpy")), np.asarray(j))


def test_matrix_with_jax_is_the_same_table_every_run(jax: Any) -> None:
    """Routes, zero-copy and steps of every numpy<->jax cell are the same on every run, and every
    plan said truthfully whether memory would be shared."""
    from arrayferry._matrix import run_matrix

    def cells() -> list[tuple[Any, ...]]:
        res = run_matrix(["numpy", "jax"], repeat=1)
        for r in res.rows:
            assert r.plan_honest is not False, (r.source, r.target, r.case, r.steps)
            assert r.values_ok is not False, (r.source, r.target, r.case, r.reason)
        return [(r.source, r.target, r.case, r.status, r.route, r.zero_copy, tuple(r.steps)) for r in res.rows]

    first = cells()
    assert ("numpy", "jax", "unaligned") in {c[:3] for c in first}
    for _ in range(3):
        assert cells() == first


@pytest.mark.parametrize("offset", [0, 4])
def test_empty_unaligned_array_under_copy_false_and_then_a_full_one(jax: Any, offset: int) -> None:
    """An empty array has nothing to copy: copy=False takes it wherever it points. The plan made
    for it is never reused for a non-empty array of the same signature."""
    raw = buffer_at((64,), np.float32, offset)
    empty = raw[:0]
    assert nptr(empty) % 64 == offset
    assert af.plan(empty, "jax", copy=False).zero_copy
    assert af.convert(empty, "jax", copy=False).shape == (0,)
    af.convert(empty, "jax")  # caches the copy=None plan for this signature
    full = buffer_at((1,), np.float32, 0)
    full[0] = 1.5
    j = af.convert(full, "jax")
    assert jptr(j) != nptr(full)  # writable memory is copied under copy=None
    full[0] = 2.5
    assert float(np.asarray(j)[0]) == 1.5


def test_narrowing_warning_names_the_conversion_gives_a_hint_and_points_at_the_caller(jax: Any) -> None:
    """The LossyConversionWarning says what happened to the data, how to avoid it, and is
    attributed to the caller's line on every path (convert, plan.execute, convert_tree, @accepts)."""
    import inspect

    x = np.array([1.0 + 2**-30, 1e30])  # precision lost, no overflow
    here = inspect.currentframe()
    assert here is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = here.f_lineno + 1
        af.convert(x, "jax")
        af.plan(x, "jax").execute(x)
        af.convert_tree({"a": [x]}, "jax")
        af.accepts("jax")(lambda v: v)(x)
    ours = [w for w in caught if w.category is af.LossyConversionWarning]
    assert len(ours) == 4
    for k, w in enumerate(ours):
        assert w.category is af.LossyConversionWarning
        assert (w.filename, w.lineno) == (__file__, first + k)
        lines = str(w.message).splitlines()
        assert lines[0].startswith("numpy float64 values were narrowed to float32 converting to jax")
        assert "a warning is raised" not in str(w.message)
        assert lines[-1].startswith("Hint: pass dtype='float32'") and "64-bit" in lines[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", af.LossyConversionWarning)
        af.convert(x, "jax", dtype="float32")  # asking for it: no warning
