"""Shared test setup: fast XLA compiles for the training-loop tests.

Modules under `tests/training/` and `tests/harness/` run toy models, which
need no XLA optimisation, and share one compile cache (a module that
reads optimised programs sets `OPTIMISED_XLA = True`). The settings are
restored after each module, so tests elsewhere in the same session run with
JAX's defaults.

The suite runs on the CPU. With libtpu installed (the `[tpu]` extra), JAX
would otherwise start a TPU runtime in every test process, each of which
locks libtpu against the compile-only TPU tests of the others (pytest-xdist
workers, subprocesses).
"""

import os
import pathlib

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')

import jax  # noqa: E402  (after the environment above)
import pytest  # noqa: E402

_FAST_DIRS = ('training', 'harness')
_SETTINGS = (
  'jax_disable_most_optimizations',
  'jax_compilation_cache_dir',
  'jax_persistent_cache_min_compile_time_secs',
  'jax_persistent_cache_min_entry_size_bytes',
)


@pytest.fixture(scope='session')
def _xla_cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('xla_cache'))


@pytest.fixture(scope='module', autouse=True)
def _fast_compiles(request):
  """Toy models need no XLA optimisation; identical steps compile once."""
  if pathlib.Path(str(request.path)).parent.name not in _FAST_DIRS or getattr(
    request.module, 'OPTIMISED_XLA', False
  ):
    yield
    return
  _xla_cache_dir = request.getfixturevalue('_xla_cache_dir')
  saved = {name: jax.config.values[name] for name in _SETTINGS}
  jax.config.update('jax_disable_most_optimizations', True)
  jax.config.update('jax_compilation_cache_dir', _xla_cache_dir)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  yield
  for name, value in saved.items():
    jax.config.update(name, value)
