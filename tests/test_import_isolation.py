"""``import arrayferry`` imports no framework and not pluggy; detection never imports one.

Each check runs in a fresh interpreter (this process has torch imported already). Import *time*
is a benchmark (``nox -s bench``), never asserted here.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import run_python

HEAVY = ("torch", "jax", "jaxlib", "cupy", "dask", "distributed", "array_api_strict", "ml_dtypes", "tensorflow",
         "cuda")

_PROBE = r"""
import json, sys
HEAVY = {heavy!r}
BASELINE = set(sys.modules)  # what the interpreter itself loaded (site hooks import the 'cuda' namespace)

def loaded():
    new = {{m.split(".")[0] for m in set(sys.modules) - BASELINE}}
    return sorted(new & (set(HEAVY) | {{"pluggy", "numpy"}}))

steps = {{}}
{body}
print(json.dumps(steps))
"""


def _probe(body: str, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    proc = run_python(_PROBE.format(heavy=HEAVY, body=body), env=env)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(params=["autoload", "no-autoload"])
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    """With entry-point plugins (whatever is installed here) and with autoload switched off."""
    return {"ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD": "1"} if request.param == "no-autoload" else {}


def test_import_arrayferry_imports_nothing_heavy(env: dict[str, str]) -> None:
    steps = _probe(
        "import arrayferry\n"
        "steps['import'] = loaded()\n"
        "arrayferry.Device('cuda', 1); arrayferry.ArrayFerryError; arrayferry.CANONICAL_DTYPES\n"
        "steps['values'] = loaded()\n",
        env,
    )
    assert steps["import"] == [], "import arrayferry pulled in: " + ", ".join(steps["import"])
    assert steps["values"] == []


def test_detection_on_numpy_imports_no_other_framework(env: dict[str, str]) -> None:
    steps = _probe(
        "import numpy as np\n"
        "import arrayferry as af\n"
        "x = np.zeros(3)\n"
        "steps['framework_of'] = [af.framework_of(x)] + loaded()\n"
        "steps['unknown'] = [str(af.framework_of([1, 2]))] + loaded()\n"
        "steps['device_of'] = [str(af.device_of(x))] + loaded()\n"
        "steps['plan'] = [str(af.plan(x, 'numpy').zero_copy)] + loaded()\n"
        "steps['convert'] = [type(af.convert(x, 'numpy', copy=True)).__name__] + loaded()\n"
        "steps['frameworks'] = [str(sorted(f.name for f in af.frameworks()))[:0]] + loaded()\n",
        env,
    )
    assert steps["framework_of"] == ["numpy", "numpy", "pluggy"]
    assert steps["unknown"] == ["python", "numpy", "pluggy"]  # a list: read through NumPy when converted
    assert steps["device_of"] == ["cpu", "numpy", "pluggy"]
    assert steps["plan"] == ["True", "numpy", "pluggy"]
    assert steps["convert"] == ["ndarray", "numpy", "pluggy"]
    assert steps["frameworks"] == ["", "numpy", "pluggy"], "frameworks() must not import what it lists"


needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


@needs_torch
def test_converting_to_torch_imports_torch_on_demand() -> None:
    """A numpy array converts to torch even if the user never imported torch."""
    steps = _probe(
        "import numpy as np\n"
        "import arrayferry as af\n"
        "x = np.arange(3.0)\n"
        "t = af.convert(x, 'torch')\n"
        "steps['t'] = [type(t).__module__, str(t.data_ptr() == x.ctypes.data)]\n"
    )
    assert steps["t"] == ["torch", "True"]


@needs_torch
def test_framework_of_torch_after_importing_torch() -> None:
    steps = _probe(
        "import arrayferry as af\n"
        "steps['none'] = [str(af.framework_of([]))] + loaded()\n"
        "import torch\n"
        "steps['torch'] = [af.framework_of(torch.zeros(1))]\n",
        {"ARRAYFERRY_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert steps["none"] == ["python", "pluggy"]  # named without importing NumPy
    assert steps["torch"] == ["torch"]


def _speedups_built() -> bool:
    import importlib.util
    import os

    return importlib.util.find_spec("arrayferry._speedups") is not None and not os.environ.get("ARRAYFERRY_NO_SPEEDUPS")


def test_first_zero_copy_conversion_loads_only_what_it_needs() -> None:
    """The first ``convert(x, "torch")`` with numpy and torch imported loads the planner, the registry
    and the two adapters it uses: not the entry-point plugins (loaded on first need), not CuPy's
    adapter (its framework is not imported), not the streams/CUDA helpers, DLPack capsule reader,
    capability probes, tree walker or protocols adapter (the routes that need them load them).
    Its time is a benchmark (``first_call``); this keeps what it loads from growing unnoticed."""
    proc = run_python(
        "import json, sys, numpy as np, torch\n"
        "import arrayferry as af\n"
        "t = af.convert(np.arange(4, dtype=np.float32), 'torch')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('arrayferry'))))\n"
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == sorted([
        "arrayferry", "arrayferry._errors", "arrayferry._device", "arrayferry._dtypes", "arrayferry._api",
        "arrayferry._adapter", "arrayferry._step", "arrayferry._plan", "arrayferry._hostops", "arrayferry._registry",
        "arrayferry._versions", "arrayferry.hookspecs", "arrayferry.plugin", "arrayferry._markers",
        "arrayferry.adapters", "arrayferry.adapters.numpy", "arrayferry.adapters.torch",
        # the compiled hot path, where pip built it (docs/install.md)
        *(["arrayferry._speedups"] if _speedups_built() else []),
    ])
