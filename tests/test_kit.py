"""The conformance kit (``arrayferry.testing``): off unless switched on, passes for the core's
frameworks and the worked example, and FAILS adapters that break the contract.

Each kit run is a real ``pytest`` subprocess in a temporary directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from plugins_fixtures.helpers import FIXTURES, make_dist, run_python

TINY = FIXTURES / "tinyarray"
TINY_MODULES = [TINY / "tinyarray.py", TINY / "arrayferry_tinyarray.py"]


def _pytest(tmp: Path, *args: str, path: Path | None = None, autoload: bool = True):  # type: ignore[no-untyped-def]
    (tmp / "test_own.py").write_text("def test_own():\n    pass\n")
    return run_python(["-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(tmp),
                       "-q", "-rfs", *args], path, cwd=tmp, autoload=autoload)


def _summary(out: str) -> dict[str, int]:
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|deselected)", out.splitlines()[-1])}


def test_kit_does_nothing_unless_switched_on(tmp_path: Path) -> None:
    res = _pytest(tmp_path, "--collect-only")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "test_own.py::test_own" in res.stdout and "contract" not in res.stdout
    assert "1 test collected" in res.stdout
    helptext = _pytest(tmp_path, "--help").stdout
    for opt in ("--arrayferry-conformance", "--arrayferry-peers", "--arrayferry-device"):
        assert opt in helptext


@pytest.mark.parametrize("how", ["autoload", "-p", "ini"])
def test_kit_switches_on(tmp_path: Path, how: str) -> None:
    args = ["--collect-only", "-k", "detection"]
    if how == "ini":
        (tmp_path / "pytest.ini").write_text("[pytest]\narrayferry_conformance = numpy\n")
    else:
        args.append("--arrayferry-conformance=numpy")
    if how == "-p":
        args[:0] = ["-p", "arrayferry.testing.plugin"]
    res = _pytest(tmp_path, *args, autoload=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "arrayferry/testing/contract.py::test_detection_without_import[numpy]" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_kit_passes_for_core_frameworks(tmp_path: Path, framework: str) -> None:
    res = _pytest(tmp_path, f"--arrayferry-conformance={framework}", "--arrayferry-peers=numpy,torch",
                  "--arrayferry-device=cpu,cuda:0", autoload=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    counts = _summary(res.stdout)
    assert counts["passed"] > 200 and "failed" not in counts
    # a device the framework cannot reach skips with a reason, never fails
    if framework == "torch":
        assert "torch cannot use device 'cuda:0' here" in out


@pytest.mark.slow
def test_kit_plans_driverless_cupy(tmp_path: Path) -> None:
    """CuPy without a GPU goes through the kit like numpy and torch: what needs no device runs
    (detection without import, refusals of non-numeric dtypes, the unreachable-device checks on
    ``cpu`` and ``cuda:0``) and passes; the rest skips with the reason. On the GPU test host
    ``scripts/gpu-check`` runs the same kit on ``cuda:0``, where the round trips run too."""
    from cuda_support import cupy_without_driver

    if not cupy_without_driver():
        pytest.skip("needs CuPy installed without a usable GPU (pip install '.[test-devices]')")
    res = _pytest(tmp_path, "--arrayferry-conformance=cupy", "--arrayferry-peers=numpy,torch,cupy",
                  "--arrayferry-device=cpu,cuda:0", "-rA", autoload=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    passed = set(re.findall(r"^PASSED arrayferry/testing/contract\.py::(\S+)", res.stdout, re.M))
    must = {"test_detection_without_import[cupy]", "test_unreachable_device_refused[cupy-cpu]",
            "test_unreachable_device_refused[cupy-cuda:0]"} | {
        f"test_non_numeric_dtypes_refused[cupy-{k}]" for k in ("object", "datetime64", "structured", "string")}
    assert must <= passed, sorted(must - passed)
    assert "cupy cannot use device 'cuda:0' here: CuPy is installed but no CUDA driver/device is available" in out


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worked example of docs/plugins.md installed with pip, like a user would."""
    target = tmp_path_factory.mktemp("tiny_site")
    res = run_python(["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                      "--target", str(target), str(TINY)], None)
    assert res.returncode == 0, res.stderr
    assert (target / "arrayferry_tinyarray.py").exists()
    return target


@pytest.mark.slow
def test_kit_passes_for_worked_example(tmp_path: Path, tiny_site: Path) -> None:
    res = _pytest(tmp_path, "--arrayferry-conformance=tinyarray", "--arrayferry-peers=numpy,torch,tinyarray",
                  path=tiny_site)
    assert res.returncode == 0, res.stdout + res.stderr
    counts = _summary(res.stdout)
    assert counts["passed"] > 300 and "failed" not in counts


@pytest.mark.parametrize(
    ("variant", "failing", "message"),
    [
        ("lying", "test_round_trip_in[tinyarray-numpy-cpu-float32-copy=None]",
         "plan.zero_copy is True but the data pointers are different"),
        ("blind_signature", "test_signature_captures_plan[tinyarray-cpu]",
         "the signature must capture everything the plan depends on"),
        ("careless_direct", "test_direct_call[tinyarray-numpy-cpu-float32]",
         "tinyarray -> numpy direct call (device=None) on case 'float32': shares memory False, the plan's result True"),
        ("ignored_option", "test_target_options[tinyarray]",
         "the plan with scale=2 is the plan without it: the option is not applied"),
    ],
)
def test_kit_fails_broken_adapters(tmp_path: Path, variant: str, failing: str, message: str) -> None:
    site = make_dist(tmp_path / "site", f"af-fixture-{variant}", {variant: f"broken:{variant}"},
                     [*TINY_MODULES, FIXTURES / "broken.py"])
    run = tmp_path / "run"
    run.mkdir()
    res = _pytest(run, "--arrayferry-conformance=tinyarray", "--arrayferry-peers=numpy,tinyarray", path=site)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"FAILED arrayferry/testing/contract.py::{failing}" in res.stdout
    assert message in res.stdout


def test_docs_example_is_the_tested_plugin() -> None:
    """Every ``<!-- file: NAME -->`` block of docs/plugins.md equals the fixture distribution's file."""
    text = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    assert {name for name, _ in blocks} == {"tinyarray.py", "arrayferry_tinyarray.py", "pyproject.toml"}
    for name, body in blocks:
        assert body == (TINY / name).read_text(), f"docs/plugins.md's {name} differs from {TINY / name}"


def test_hook_reference_is_up_to_date() -> None:
    root = Path(__file__).parent.parent
    res = run_python([str(root / "scripts" / "gen_hook_docs.py"), "--check"], None)
    assert res.returncode == 0, res.stderr + " (run: python scripts/gen_hook_docs.py)"
