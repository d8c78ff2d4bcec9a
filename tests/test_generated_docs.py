"""Generated documentation pages: up to date, rendering as Markdown, and their commands run.

* docs/cli.md equals ``scripts/gen_cli_docs.py``'s output, and every example on it runs;
* docs/install.md's versions table equals ``scripts/gen_versions_table.py``'s output;
* docs/hooks.md (``scripts/gen_hook_docs.py``, checked for staleness in test_kit.py) holds
  Markdown, not reST, and unquoted annotations;
* ``scripts/matrix_report.py render`` on a small synthetic results folder: a summary narrow
  enough for a 1280 px window, code names in backticks, details per cell;
* ``arrayferry matrix --plot FILE --plot-split`` (the command docs/concepts.md runs) writes one
  readable picture per source framework.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def _script(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, **kw)  # type: ignore[call-overload]


# -- the CLI reference -----------------------------------------------------------------------------


def test_cli_page_is_generated_from_the_parser() -> None:
    r = _run([sys.executable, str(SCRIPTS / "gen_cli_docs.py"), "--check"])
    assert r.returncode == 0, r.stderr + " (run: python scripts/gen_cli_docs.py)"


def test_cli_page_lists_every_option_of_the_parser() -> None:
    import argparse

    from arrayferry.cli import _parser

    text = (ROOT / "docs" / "cli.md").read_text()
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        assert f"## `arrayferry {name}`" in text
        for action in sp._actions:
            for opt in action.option_strings:
                assert f"`{opt}" in text, (name, opt)


def test_stale_cli_page_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _script("gen_cli_docs")
    page = tmp_path / "cli.md"
    page.write_text("# old\n")
    monkeypatch.setattr(gen, "OUT", page)
    monkeypatch.setattr(sys, "argv", ["gen_cli_docs.py", "--check"])
    assert gen.main() == 1  # type: ignore[attr-defined]
    monkeypatch.setattr(sys, "argv", ["gen_cli_docs.py"])
    assert gen.main() == 0 and page.read_text() == gen.render()  # type: ignore[attr-defined]


def _cli_examples() -> list[str]:
    return [cmd for cmd, _ in _script("gen_cli_docs").EXAMPLES]  # type: ignore[attr-defined]


@pytest.mark.parametrize("cmd", _cli_examples())
def test_cli_example_runs(cmd: str) -> None:
    words = shlex.split(cmd)
    assert words[0] in ("arrayferry", "python") and (words[0] == "arrayferry" or words[1:3] == ["-m", "arrayferry"])
    args = words[1:] if words[0] == "arrayferry" else words[3:]
    r = _run([sys.executable, "-m", "arrayferry", *args])
    assert r.returncode == 0, r.stderr
    if "--json" in args:
        data = json.loads(r.stdout)
        assert isinstance(data, dict) and data
    elif args == ["--version"]:
        assert re.fullmatch(r"arrayferry \d+\.\d+\.\d+\S*\n", r.stdout)
    else:
        assert r.stdout.startswith("arrayferry ")


# -- the versions table ----------------------------------------------------------------------------


def test_install_versions_table_is_generated() -> None:
    r = _run([sys.executable, str(SCRIPTS / "gen_versions_table.py"), "--check"])
    assert r.returncode == 0, r.stderr


def test_versions_table_reads_every_adapter_minimum() -> None:
    gen = _script("gen_versions_table")
    found = gen.adapters()  # type: ignore[attr-defined]
    from arrayferry.adapters.numpy import NumpyAdapter
    from arrayferry.adapters.torch import TorchAdapter

    assert found["numpy"]["min_version"] == NumpyAdapter.min_version
    assert found["torch"]["min_version"] == TorchAdapter.min_version
    assert set(found) >= {"numpy", "torch", "cupy", "jax", "dask", "array_api_strict"}
    table = gen.render()  # type: ignore[attr-defined]
    for name, a in found.items():
        assert f"(`{a['distribution']}`) | {a['min_version']} |" in table, name
    assert "`torch==2.13.0`" in table


# -- hook reference --------------------------------------------------------------------------------


def test_hook_reference_is_markdown() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # outside code blocks
    for rest in (":param ", ":returns:", ".. versionadded::", ":func:`", ":class:`", "``"):
        assert rest not in prose, rest
    assert "-> 'list[Adapter]'" not in text and "-> list[Adapter]" in text
    assert "parse_device(self, obj: Any) -> Device | None" in text  # annotations unquoted


def test_rst_to_markdown_converts_what_docstrings_use() -> None:
    gen = _script("gen_hook_docs")
    doc = '''Turn a thing into a :class:`arrayferry.Device`, ``x`` or :func:`~arrayferry.convert`.

    :param obj: what the user passed
        as ``device=``.
    :param other: more.
    :returns: a ``Device``.
    :raises DeviceError: when unknown.

    Example::

        hook(obj)

    .. versionadded:: 0.1
    '''
    md = gen.rst_to_markdown(doc)  # type: ignore[attr-defined]
    assert md.splitlines()[0] == "Turn a thing into a `arrayferry.Device`, `x` or `arrayferry.convert`."
    assert "**Parameters:**\n\n- `obj`: what the user passed as `device=`.\n- `other`: more." in md
    assert "**Returns:** a `Device`." in md and "**Raises** `DeviceError`: when unknown." in md
    assert "Example:\n\n```text\nhook(obj)\n```" in md
    assert md.endswith("*New in version 0.1*")


# -- the test matrix page --------------------------------------------------------------------------


def _synthetic_results(tmp_path: Path) -> Path:
    res = tmp_path / "matrix"
    res.mkdir()
    cells = [
        {"cell": "tests(numpy='1.26', torch='2.13')", "tests": 10, "passed": 8, "failed": 1, "errors": 0,
         "skipped": 1, "xfailed": 0, "junit_seconds": 3.2, "wall_seconds": 9.5, "rc": 1, "pytest_rc": 1,
         "python": "3.11.7", "versions": {"numpy": "1.26.4", "torch": "2.13.0+cpu"},
         "finished": "2026-11-22 01:45 UTC",
         "capabilities": {"numpy": "numpy 1.26.4: __dlpack__(stream) answers legacy; __array__ copy= no"},
         "skip_reasons": {"could not import 'array_api_strict': no module": 1},
         "failing": ["tests/test_x.py::test_y (failure: assert x.__dlpack__ is *bad*)"]},
        {"cell": "plugins-dask", "tests": 5, "passed": 5, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0,
         "junit_seconds": 1.0, "pytest_rc": 0, "rc": 0, "python": "3.11.7", "versions": {"dask": "2026.8.0"}},
    ]
    for i, c in enumerate(cells):
        (res / f"c{i}.json").write_text(json.dumps(c))
    (res / "c0.versions.json").write_text(json.dumps({"python": "3.11.7"}))  # ignored by render
    return res


def test_matrix_render_fits_and_renders(tmp_path: Path) -> None:
    report = _script("matrix_report")
    res = _synthetic_results(tmp_path)
    out = tmp_path / "matrix.md"
    assert report.main(["render", "--results", str(res), "--out", str(out),  # type: ignore[attr-defined]
                        "--cells", json.dumps(["plugins-dask", "tests(numpy='1.26', torch='2.13')", "never-run"]),
                        "--committed", str(tmp_path / "committed")]) == 0
    text = out.read_text()
    header = next(ln for ln in text.splitlines() if ln.startswith("| cell |"))
    assert header.count("|") - 1 <= 7, header  # 7 columns: fits a 1280 px window
    rows = [ln for ln in text.splitlines() if ln.startswith("| [")]
    assert rows[0].startswith("| [plugins-dask](#cell-plugins-dask) | passed | 5 | 0 |")
    assert rows[1].startswith("| [tests(numpy='1.26', torch='2.13')](#cell-tests-numpy-1-26-torch-2-13) | **FAILED** |")
    assert all(len(r) < 140 for r in rows), rows  # versions and dates are below, not in the table
    assert "### `tests(numpy='1.26', torch='2.13')` { #cell-tests-numpy-1-26-torch-2-13 }" in text
    assert "- Versions: Python 3.11.7; numpy 1.26.4, torch 2.13.0+cpu" in text
    assert "- Run: 2026-11-22 01:45 UTC (pytest 3.2 s, session 9.5 s)" in text
    # code names in backticks: no bare __dlpack__ left to be read as bold
    assert "`__dlpack__(stream)` answers legacy; `__array__` copy= no" in text
    assert "could not import `'array_api_strict'`: no module" in text
    outside_code = re.sub(r"`[^`\n]*`", "", text)
    assert "__dlpack__" not in outside_code and "__array__" not in outside_code
    assert "- Failing: `tests/test_x.py::test_y (failure: assert x.__dlpack__ is *bad*)`" in text
    assert "Not run yet: `never-run`." in text


def test_md_text_escapes_what_is_not_code() -> None:
    md_text = _script("matrix_report").md_text  # type: ignore[attr-defined]
    assert md_text("a *b* | c, e.g. <d>") == "a \\*b\\* \\| c, e.g. &lt;d&gt;"
    assert md_text("see cupy.cuda.runtime.getDeviceCount() and `kept_as_is`") == \
        "see `cupy.cuda.runtime.getDeviceCount()` and `kept_as_is`"
    assert md_text("torch 2.13.0+cpu") == "torch 2.13.0+cpu"


# -- the matrix pictures ---------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_plot_split_writes_one_readable_picture_per_source(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")
    png = tmp_path / "m.png"
    r = _run([sys.executable, "-m", "arrayferry", "matrix", "--frameworks", "numpy,torch", "--repeat", "1",
              "--plot", str(png), "--plot-split"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["m-numpy.png", "m-torch.png", "m.png"]
    assert f"heat map written to {png}, {tmp_path / 'm-numpy.png'}, {tmp_path / 'm-torch.png'}" in r.stdout
    w, h = _png_size(tmp_path / "m-numpy.png")
    assert w < 1000 and h > 300, (w, h)  # one target column: narrow, so the page shows it near full size


def test_plot_split_needs_plot() -> None:
    r = _run([sys.executable, "-m", "arrayferry", "matrix", "--frameworks", "numpy,torch", "--plot-split"])
    assert r.returncode == 2
    assert r.stderr.strip() == ("arrayferry: error: --plot-split needs --plot FILE.png; "
                                "Hint: arrayferry matrix --plot matrix.png --plot-split")
