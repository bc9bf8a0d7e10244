"""Puts the checkout root on `sys.path` for a benchmark run as a file.

`python benchmarks/kernel_bench.py` runs with `benchmarks/`, not the
checkout root, as `sys.path[0]`, and the wheel (and so the editable install)
holds `s4jax` alone: the folders beside it (`configs`, `data_pipelines`,
`harness`, `deploy`) would not be importable. Each benchmark therefore
starts with

  if not __package__:  # Run as a file: see benchmarks/_checkout.py.
    import _checkout  # noqa: F401

which finds this module next to it and puts the root first on `sys.path`.
`launch/_checkout.py` does the same for the command-line tools and says why
this way.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# With libtpu installed (the `[tpu]` extra) but no TPU here, JAX would log
# libtpu's start-up errors before it falls back to the CPU or GPU.
from harness import runtime  # noqa: E402

runtime.quiet_libtpu_without_chips()
