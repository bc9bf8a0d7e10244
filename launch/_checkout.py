"""Puts the checkout root on `sys.path` for a tool run as a file.

The wheel installs `s4jax` alone. The research folders beside it
(`configs`, `data_pipelines`, `harness`, `deploy`, `launch`) are used from a
checkout, as the README's commands do: `python launch/train.py ...`. Python
runs such a file with its own folder (`launch/`), not the checkout root, as
`sys.path[0]`, and the editable install (`pip install -e .`) maps only the
packages the wheel ships, so the folders beside `launch/` would not be
importable. Each tool therefore starts with

  if not __package__:  # Run as a file: see launch/_checkout.py.
    import _checkout  # noqa: F401

which finds this module next to it and puts the root first on `sys.path`.
Imported as `launch.<tool>` (`python -m launch.train` from the root, or the
tests) the root is on the path already, and this module is not imported.

One small module per folder of programs (`launch/`, `benchmarks/`) keeps
this out of the wheel, out of `site-packages` (no `.pth` file that would put
every checkout folder on every interpreter's path) and out of the user's
environment (no `PYTHONPATH` to set).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
