"""shares_memory across frameworks: exact overlap (not bounds), devices, errors.

The expected answers come from NumPy's own ``np.shares_memory`` on the NumPy views that the
pairs were built from, or from writing through one side and reading the other; arrayferry's
answer must agree with both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import arrayferry as af

torch = pytest.importorskip("torch")

BASE_SHAPE = (4, 6)

# Pairs of views of one buffer, as NumPy expressions over `b`: (name, left, right).
VIEW_PAIRS: list[tuple[str, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = [
    ("same", lambda b: b, lambda b: b),
    ("row-vs-row", lambda b: b[0], lambda b: b[1]),
    ("row-vs-block", lambda b: b[1], lambda b: b[1:3, 2:4]),
    ("interleaved-cols", lambda b: b[:, ::2], lambda b: b[:, 1::2]),
    ("interleaved-rows", lambda b: b[::2], lambda b: b[1::2]),
    ("transpose", lambda b: b.T, lambda b: b[3]),
    ("reversed", lambda b: b[::-1], lambda b: b[0, 5:]),
    ("reversed-disjoint", lambda b: b[::-1][:2], lambda b: b[:2]),
    ("disjoint-halves", lambda b: b[:2], lambda b: b[2:]),
    ("empty", lambda b: b[:0], lambda b: b),
    ("step3-vs-step2", lambda b: b.reshape(-1)[::3], lambda b: b.reshape(-1)[1::2]),
    ("step4-vs-step2", lambda b: b.reshape(-1)[1::4], lambda b: b.reshape(-1)[::2]),
]


def as_framework(v: np.ndarray, fw: str) -> Any:
    """The same memory in framework ``fw`` (built with the framework's own calls)."""
    if fw == "numpy":
        return v
    if fw == "torch":
        if any(s < 0 for s in v.strides):
            # torch cannot hold negative strides: use the flipped tensor over the same memory
            axes = [i for i, s in enumerate(v.strides) if s < 0]
            base = v[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(v.ndim))]
            return torch.from_numpy(base).flip(axes)  # flip copies: the memory is new
        return torch.from_numpy(v)
    raise AssertionError(fw)


@pytest.fixture(params=["numpy", "torch"])
def left_fw(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=["numpy", "torch"])
def right_fw(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.uint8])
@pytest.mark.parametrize(("name", "left", "right"), VIEW_PAIRS, ids=[p[0] for p in VIEW_PAIRS])
def test_agrees_with_numpy_exact(name: str, left: Any, right: Any, dtype: Any, left_fw: str, right_fw: str) -> None:
    b = np.arange(np.prod(BASE_SHAPE), dtype=dtype).reshape(BASE_SHAPE)
    lv, rv = left(b), right(b)
    expected = bool(np.shares_memory(lv, rv))
    a = as_framework(lv, left_fw)
    c = as_framework(rv, right_fw)
    if (left_fw == "torch" and any(s < 0 for s in lv.strides)) or (right_fw == "torch" and any(s < 0 for s in rv.strides)):
        expected = False  # the torch side is a flipped copy: new memory, shares nothing with the buffer
    assert af.shares_memory(a, c) is expected
    assert af.shares_memory(c, a) is expected


def test_bounds_overlap_is_not_sharing() -> None:
    x = np.arange(10.0)
    # the bounds of x[::2] and x[1::2] overlap, the bytes do not
    assert af.shares_memory(torch.from_numpy(x)[::2], x[1::2]) is False
    assert af.shares_memory(torch.from_numpy(x)[::2], x[2::4]) is True


def test_itemsize_differs() -> None:
    x = np.zeros(4, dtype=np.float64)
    bytes_view = x.view(np.uint8)[9:10]  # second float's second byte
    t = torch.from_numpy(x)
    assert af.shares_memory(t[1], bytes_view) is True
    assert af.shares_memory(t[0], bytes_view) is False
    assert af.shares_memory(t[2:], bytes_view) is False


def test_agrees_with_write_through() -> None:
    x = np.arange(12.0).reshape(3, 4)
    for out in (af.convert(x, "torch"), af.convert(x, "torch", copy=True), af.convert(x[::-1], "torch"),
                af.convert(x.T, "torch")):
        before = x.copy()
        with torch.no_grad():
            out[(0,) * out.ndim] += 100
        written = not np.array_equal(before, x)
        x[...] = before
        assert af.shares_memory(out, x) is written


def test_torch_states_share_memory() -> None:
    t = torch.arange(4.0, requires_grad=True)
    assert af.shares_memory(t, t.detach()) is True
    assert af.shares_memory(t, t.detach().numpy()) is True
    c = torch.tensor([1 + 2j, 3 - 4j])
    assert af.shares_memory(c, c.conj()) is True  # lazy conjugate bit: same memory
    assert af.shares_memory(c.conj().imag, c) is True
    assert af.shares_memory(c, c.conj().resolve_conj()) is False


def test_different_devices_never_share() -> None:
    meta = torch.empty(3, device="meta")
    assert af.shares_memory(meta, np.zeros(3)) is False
    assert af.shares_memory(meta, meta) is False  # meta tensors have no data


def test_unknown_objects_are_errors() -> None:
    with pytest.raises(af.UnknownFrameworkError, match="builtins.object"):
        af.shares_memory(object(), np.zeros(2))


def test_protocol_sources() -> None:
    """Objects no plugin owns: a buffer is compared by its memory, a list holds none."""
    x = np.arange(6.0)
    assert af.shares_memory(memoryview(x)[::2], x) is True
    assert af.shares_memory(memoryview(x[::2]), x[1::2]) is False  # interleaved, exactly
    assert af.shares_memory([1.0, 2.0], x) is False
    assert af.shares_memory(x, 3.0) is False and af.shares_memory(np.float64(1.0), x) is False

    class OnlyDLPack:
        def __init__(self, a: np.ndarray) -> None:
            self._a = a

        def __dlpack__(self, **kwargs: Any) -> Any:
            return self._a.__dlpack__(**kwargs)

        def __dlpack_device__(self) -> Any:
            return self._a.__dlpack_device__()

    class OnlyInterface:
        def __init__(self, a: np.ndarray) -> None:
            self._a = a

        @property
        def __array_interface__(self) -> Any:
            return self._a.__array_interface__

    for wrap in (OnlyDLPack, OnlyInterface):
        assert af.shares_memory(wrap(x[::2]), x[2:3]) is True
        assert af.shares_memory(wrap(x[::2]), x[1::2]) is False
        t = af.convert(wrap(x), "torch")
        if wrap is OnlyDLPack and np.lib.NumpyVersion(np.__version__) < "2.1.0":
            # NumPy < 2.1 exports legacy capsules, read as read-only memory: torch gets a copy
            assert af.shares_memory(t, wrap(x)) is False
            t = af.convert(OnlyDLPack(torch.from_numpy(x)), "torch")  # torch's capsules are versioned
        assert af.shares_memory(t, wrap(x)) is True


def test_readonly_and_broadcast() -> None:
    x = np.arange(3.0)
    b = np.broadcast_to(x, (4, 3))
    assert af.shares_memory(b, x) is True
    assert af.shares_memory(b, np.arange(3.0)) is False
    t = af.convert(b, "torch")  # read-only: copied
    assert af.shares_memory(t, x) is False


def test_plugin_frameworks_if_installed() -> None:
    names = {f.name for f in af.frameworks() if f.installed}
    checked = 0
    if "array_api_strict" in names:
        xs = pytest.importorskip("array_api_strict")
        a = xs.asarray(np.arange(6.0))
        n = af.convert(a, "numpy")
        assert af.shares_memory(a, n) == bool(np.shares_memory(n, np.from_dlpack(a)))
        assert af.shares_memory(a, np.arange(6.0)) is False
        checked += 1
    if "jax" in names:
        jnp = pytest.importorskip("jax.numpy")
        j = jnp.arange(6.0)
        n = af.convert(j, "numpy")
        assert af.shares_memory(j, n) is bool(np.shares_memory(n, np.asarray(j)))
        assert af.shares_memory(j, np.arange(6.0)) is False
        checked += 1
    if not checked:
        pytest.skip("no plugin framework (array_api_strict, jax) is installed")


def _cuda_count() -> int:
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


@pytest.mark.cuda
@pytest.mark.skipif(_cuda_count() < 1, reason="needs a CUDA GPU (torch sees none)")
def test_cuda_views_and_host_copies() -> None:
    t = torch.arange(16.0, device="cuda")
    assert af.shares_memory(t, t[3:5]) is True
    assert af.shares_memory(t[::2], t[1::2]) is False
    assert af.shares_memory(t, t.cpu()) is False  # different devices
    n = af.convert(t, "numpy")
    assert af.shares_memory(n, t) is False and n.tolist() == list(range(16))
    names = {f.name for f in af.frameworks() if f.installed}
    if "cupy" in names:
        c = af.convert(t, "cupy")
        assert af.shares_memory(c, t) is af.plan(t, "cupy").zero_copy


@pytest.mark.multigpu
@pytest.mark.skipif(_cuda_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_never_share() -> None:
    a = torch.arange(4.0, device="cuda:0")
    b = af.convert(a, "torch", device="cuda:1")
    assert af.shares_memory(a, b) is False
    assert af.shares_memory(b, b[1:]) is True


def test_jax_host_devices_count_as_host() -> None:
    """JAX's cpu:1 is host memory: a NumPy view of it shares memory (checked in a subprocess)."""
    if "jax" not in {f.name for f in af.frameworks() if f.installed}:
        pytest.skip("the jax plugin or jax is not installed")
    import subprocess
    import sys

    code = (
        "import os\n"
        "os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'\n"
        "import jax, jax.numpy as jnp, numpy as np, arrayferry as af\n"
        "x = jax.device_put(jnp.arange(6.0), jax.devices()[1])\n"
        "n = af.convert(x, 'numpy')\n"
        "assert str(af.device_of(x)) == 'cpu:1'\n"
        "assert af.shares_memory(x, n) is bool(np.shares_memory(n, np.asarray(x))) is af.plan(x, 'numpy').zero_copy\n"
        "assert af.shares_memory(x, np.arange(6.0)) is False\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@st.composite
def view_of(draw: Any, base: np.ndarray) -> np.ndarray:
    """A random basic-slicing view (steps of either sign, transposes, reinterpreted bytes)."""
    index = []
    for n in base.shape:
        start = draw(st.integers(0, n - 1))
        stop = draw(st.integers(start, n))
        step = draw(st.sampled_from([1, 2, 3, -1, -2]))
        index.append(slice(start, stop, step) if step > 0 else slice(stop - 1 if stop > start else start, start - 1 if start else None, step))
    v = base[tuple(index)]
    if draw(st.booleans()):
        v = v.T
    return v


@hypothesis.settings(max_examples=100, deadline=None, derandomize=True)
@hypothesis.given(data=st.data(), torch_side=st.booleans())
def test_random_views_agree_with_numpy(data: Any, torch_side: bool) -> None:
    base = np.arange(5 * 7, dtype=np.int32).reshape(5, 7)
    a = data.draw(view_of(base))
    b = data.draw(view_of(base))
    expected = bool(np.shares_memory(a, b))
    left: Any = a
    if torch_side and all(s >= 0 for s in a.strides):
        left = torch.from_numpy(a)  # the same memory, seen by torch
    assert af.shares_memory(left, b) is expected
