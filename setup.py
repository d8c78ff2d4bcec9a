"""The one compiled part of arrayferry: ``arrayferry._speedups``, the range-checked cast in one pass.

Everything else is in ``pyproject.toml``. The extension is optional: where it cannot be built (no
C compiler), installing still succeeds and ``arrayferry._hostops`` checks casts with NumPy, block
by block, as before (slower, same results and errors). See docs/benchmarks.md, "Casts".
"""

import sys

from setuptools import Extension, setup

# -O3 vectorises the kernels (GCC's -O2 keeps most loops scalar); MSVC takes its own flags.
args = [] if sys.platform == "win32" else ["-O3"]

setup(ext_modules=[Extension("arrayferry._speedups", ["src/arrayferry/_speedups.c"], extra_compile_args=args, optional=True)])
