"""``@arrayferry.accepts``: arguments converted in, results converted back, metadata kept."""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import pytest

import arrayferry as af

torch = pytest.importorskip("torch")


def ptr(x: Any) -> int:
    return int(x.data_ptr()) if isinstance(x, torch.Tensor) else int(x.__array_interface__["data"][0])


# A function written in torch records what it was given.
SEEN: list[Any] = []


@af.accepts("torch")
def scale_and_stats(x, y=None, *, factor=2.0):  # type: ignore[no-untyped-def]
    """Scale ``x``; return it with its mean and ``y`` as given."""
    SEEN[:] = [x, y]
    return x * factor, {"mean": x.mean(), "y": y}, "label"


@pytest.fixture(params=["numpy", "torch"])
def caller_fw(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def make(fw: str, values: Any, dtype: Any = np.float64) -> Any:
    a = np.asarray(values, dtype=dtype)
    return a if fw == "numpy" else torch.from_numpy(a)


def framework(x: Any) -> str:
    return "torch" if isinstance(x, torch.Tensor) else "numpy" if isinstance(x, np.ndarray) else type(x).__name__


def test_arguments_in_results_back(caller_fw: str) -> None:
    x = make(caller_fw, [1.0, -0.0, np.inf, np.nan])
    y = make(caller_fw, [3, 4], np.int32)
    scaled, stats, label = scale_and_stats(x, y, factor=3.0)
    # inside, torch tensors aliasing the caller's memory (zero-copy both ways here)
    assert all(isinstance(a, torch.Tensor) for a in SEEN)
    assert ptr(SEEN[0]) == ptr(x) and ptr(SEEN[1]) == ptr(y)
    # results in the caller's framework, values bit for bit
    assert framework(scaled) == caller_fw and framework(stats["y"]) == caller_fw
    assert framework(stats["mean"]) == caller_fw and label == "label"
    got = np.asarray(scaled)
    assert got.dtype == np.float64
    assert got[0] == 3.0 and got[1] == 0 and np.signbit(got[1]) and np.isinf(got[2]) and np.isnan(got[3])
    assert ptr(stats["y"]) == ptr(y)  # passed through untouched: the same memory comes back
    assert np.isnan(np.asarray(stats["mean"]))


def test_metadata_kept() -> None:
    assert scale_and_stats.__name__ == "scale_and_stats"
    assert scale_and_stats.__doc__ == "Scale ``x``; return it with its mean and ``y`` as given."
    assert str(inspect.signature(scale_and_stats)) == "(x, y=None, *, factor=2.0)"
    assert scale_and_stats.__wrapped__.__name__ == "scale_and_stats"  # type: ignore[attr-defined]


class Model:
    def __init__(self) -> None:
        self.calls = 0

    @af.accepts("numpy")
    def forward(self, x):  # type: ignore[no-untyped-def]
        self.calls += 1
        assert isinstance(x, np.ndarray)
        return x + 1

    @classmethod
    @af.accepts("numpy")
    def build(cls, x):  # type: ignore[no-untyped-def]
        assert cls is Model and isinstance(x, np.ndarray)
        return x * 2

    @staticmethod
    @af.accepts("numpy")
    def helper(x):  # type: ignore[no-untyped-def]
        return x - 1


def test_methods() -> None:
    m = Model()
    out = m.forward(torch.arange(3))
    assert isinstance(out, torch.Tensor) and out.tolist() == [1, 2, 3] and m.calls == 1
    assert Model.build(torch.ones(2)).tolist() == [2.0, 2.0]
    assert Model.helper(torch.ones(2)).tolist() == [0.0, 0.0]
    assert str(inspect.signature(Model.forward)) == "(self, x)"


def test_dataclass_self_is_not_converted() -> None:
    import dataclasses

    @dataclasses.dataclass
    class Layer:
        w: Any

        @af.accepts("torch")
        def apply(self, x):  # type: ignore[no-untyped-def]
            assert isinstance(self.w, np.ndarray)  # self left alone
            return x * torch.from_numpy(self.w)

    layer = Layer(np.full(2, 3.0))
    assert layer.apply(np.ones(2)).tolist() == [3.0, 3.0]


def test_args_selects_parameters() -> None:
    @af.accepts("torch", args=["x"])
    def f(x, mask):  # type: ignore[no-untyped-def]
        assert isinstance(x, torch.Tensor) and isinstance(mask, np.ndarray)
        return x[torch.from_numpy(mask)]

    out = f(np.arange(4.0), np.array([True, False, True, False]))
    assert isinstance(out, np.ndarray) and out.tolist() == [0.0, 2.0]


def test_nested_and_varargs() -> None:
    @af.accepts("torch")
    def total(*arrays, weights=None):  # type: ignore[no-untyped-def]
        assert all(isinstance(a, torch.Tensor) for a in arrays)
        assert isinstance(weights["w"], torch.Tensor)
        return [sum(arrays) * weights["w"]]

    out = total(np.ones(2), np.ones(2), weights={"w": np.full(2, 0.5)})
    assert isinstance(out, list) and isinstance(out[0], np.ndarray) and out[0].tolist() == [1.0, 1.0]


def test_mixed_frameworks_error_and_first() -> None:
    with pytest.raises(af.MixedFrameworksError) as ei:
        scale_and_stats(np.ones(2), torch.ones(2))
    msg = str(ei.value)
    assert "scale_and_stats (written for torch) was called with arrays from several frameworks" in msg
    assert "numpy: first in argument 'x'" in msg and "torch: first in argument 'y'" in msg
    assert msg.splitlines()[-1].startswith("Hint:") and 'mixed="first"' in msg
    assert isinstance(ei.value, TypeError)

    @af.accepts("torch", mixed="first")
    def add(a, b):  # type: ignore[no-untyped-def]
        return a + b

    assert isinstance(add(np.ones(2), torch.ones(2)), np.ndarray)
    assert isinstance(add(torch.ones(2), np.ones(2)), torch.Tensor)


def test_like_chooses_where_results_go() -> None:
    @af.accepts("numpy", like="ref", mixed="first")
    def f(x, ref):  # type: ignore[no-untyped-def]
        return x + ref

    assert isinstance(f(np.ones(2), torch.ones(2)), torch.Tensor)


def test_copy_policy_passes_through() -> None:
    def body(x):  # type: ignore[no-untyped-def]
        x += 1  # mutates its argument
        return x

    x = np.zeros(3)
    af.accepts("torch")(body)(x)
    assert x.tolist() == [1.0, 1.0, 1.0]  # copy=None aliases: the caller sees the write
    x = np.zeros(3)
    af.accepts("torch", copy=True)(body)(x)
    assert x.tolist() == [0.0, 0.0, 0.0]  # copy=True: the function got its own memory
    with pytest.raises(af.CopyRequiredError, match="copy=False"):
        af.accepts("torch", copy=False)(body)(np.arange(3.0)[::-1])


def test_namespace_from_array_api_compat() -> None:
    compat = pytest.importorskip("array_api_compat")

    @af.accepts("torch")
    def norm(x, xp=None):  # type: ignore[no-untyped-def]
        assert xp is compat.array_namespace(x)
        return xp.sqrt(xp.sum(x * x))

    assert float(norm(np.array([3.0, 4.0]))) == 5.0

    @af.accepts("numpy")
    def zeros(n, *, xp):  # type: ignore[no-untyped-def]
        return xp.zeros(n)

    out = zeros(2)  # no array argument: the framework's compat namespace, results as they are
    assert isinstance(out, np.ndarray) and out.tolist() == [0.0, 0.0]
    mine = object()

    @af.accepts("numpy")
    def given(x, xp=None):  # type: ignore[no-untyped-def]
        return xp

    assert given(np.ones(1), xp=mine) is mine


def test_no_array_arguments_returns_result_as_is() -> None:
    @af.accepts("torch")
    def make_tensor(n):  # type: ignore[no-untyped-def]
        return torch.zeros(n)

    assert isinstance(make_tensor(2), torch.Tensor)


def test_convert_results_false() -> None:
    @af.accepts("torch", convert_results=False)
    def f(x):  # type: ignore[no-untyped-def]
        return x

    assert isinstance(f(np.ones(1)), torch.Tensor)


def test_bad_configuration() -> None:
    with pytest.raises(af.ArrayFerryError, match=re.escape("accepts(mixed='sometimes') is not a known rule")):
        af.accepts("torch", mixed="sometimes")
    with pytest.raises(af.ArrayFerryError, match="does not have: z"):
        af.accepts("torch", args=["z"])(lambda x: x)
    with pytest.raises(af.ArrayFerryError, match="has no such parameter"):
        af.accepts("torch", like="z")(lambda x: x)
    with pytest.raises(af.UnknownFrameworkError, match="Unknown target framework 'torchh'"):
        af.accepts("torchh")(lambda x: x)(np.ones(1))


def test_results_go_back_to_the_callers_device() -> None:
    """A JAX caller on host device cpu:1 gets its results on cpu:1 (real placement, subprocess)."""
    if "jax" not in {f.name for f in af.frameworks() if f.installed}:
        pytest.skip("the jax plugin or jax is not installed")
    import subprocess
    import sys

    code = (
        "import os\n"
        "os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'\n"
        "import jax, jax.numpy as jnp, numpy as np, arrayferry as af\n"
        "d1 = jax.devices()[1]\n"
        "@af.accepts('numpy')\n"
        "def f(a, b):\n"
        "    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)\n"
        "    return {'sum': a + b, 'pair': (a * 2, 'text')}\n"
        "x = jax.device_put(jnp.arange(4.0), d1)\n"
        "out = f(x, x)\n"
        "for r in (out['sum'], out['pair'][0]):\n"
        "    assert isinstance(r, jax.Array) and r.devices() == {d1}, r.devices()\n"
        "assert out['sum'].tolist() == [0.0, 2.0, 4.0, 6.0] and out['pair'][1] == 'text'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")
def test_function_runs_on_gpu_results_come_home() -> None:
    @af.accepts("torch", device="cuda")
    def double(x):  # type: ignore[no-untyped-def]
        assert x.is_cuda
        return x * 2

    out = double(np.arange(3.0))
    assert isinstance(out, np.ndarray) and out.tolist() == [0.0, 2.0, 4.0]


# -- async functions, generators and async generators --------------------------------------------


def test_async_def_results_go_back_to_the_caller_framework() -> None:
    import asyncio
    import inspect

    @af.accepts("torch")
    async def double(x: Any) -> Any:
        assert isinstance(x, torch.Tensor)
        await asyncio.sleep(0)
        return {"y": x * 2, "n": 3}

    assert inspect.iscoroutinefunction(double) and double.__name__ == "double"
    out = asyncio.run(double(np.array([1.5, -0.0])))
    assert isinstance(out["y"], np.ndarray) and out["y"].tolist() == [3.0, -0.0] and out["n"] == 3
    with pytest.raises(af.MixedFrameworksError):
        asyncio.run(_mixed_sum())


async def _mixed_sum() -> Any:
    @af.accepts("torch")
    async def two(a: Any, b: Any) -> Any:
        return a + b

    return await two(np.ones(2), torch.ones(2))


def test_async_generator_yields_in_the_caller_framework_and_forwards_asend_and_athrow() -> None:
    import asyncio
    import inspect

    seen: list[Any] = []

    @af.accepts("torch")
    async def running_sum(x: Any) -> Any:
        total = x * 0
        while True:
            try:
                step = yield total
            except ValueError:
                total = x * 0  # reset
                continue
            seen.append(step)
            total = total + x * (step or 1)

    assert inspect.isasyncgenfunction(running_sum)

    async def main() -> list[Any]:
        g = running_sum(np.array([1.0, 2.0]))
        out = [await g.__anext__(), await g.asend(2), await g.asend(3), await g.athrow(ValueError())]
        await g.aclose()
        return out

    out = asyncio.run(main())
    assert all(isinstance(v, np.ndarray) for v in out)
    assert [v.tolist() for v in out] == [[0.0, 0.0], [2.0, 4.0], [5.0, 10.0], [0.0, 0.0]]
    assert seen == [2, 3]


def test_generator_yields_and_returns_in_the_caller_framework() -> None:
    import inspect

    @af.accepts("torch")
    def gen(x: Any) -> Any:
        got = yield x + 1
        yield x * got
        return x - 1

    assert inspect.isgeneratorfunction(gen)
    g = gen(np.array([1.0]))
    first = next(g)
    second = g.send(4)
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert all(isinstance(v, np.ndarray) for v in (first, second, stop.value.value))
    assert (first.tolist(), second.tolist(), stop.value.value.tolist()) == ([2.0], [4.0], [0.0])
