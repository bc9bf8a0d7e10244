"""Puts the checkout root on `sys.path` for a figure script run as a file.

`python docs/figures/make_spectrograms.py` runs with `docs/figures/` as
`sys.path[0]`, and the editable install holds `s4jax` alone, so the research
folders (`data_pipelines`, `harness`) would not be importable. A script that
needs them starts with

  if not __package__:  # Run as a file: see docs/figures/_checkout.py.
    import _checkout  # noqa: F401

`launch/_checkout.py` does the same for the command-line tools and says why
this way.
"""

import os
import sys

ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# With libtpu installed (the `[tpu]` extra) but no TPU here, JAX would log
# libtpu's start-up errors before it falls back to the CPU or GPU.
from harness import runtime  # noqa: E402

runtime.quiet_libtpu_without_chips()
