"""Unoptimised XLA compiles for test modules whose cost is compilation.

`jax_disable_most_optimizations` skips XLA's expensive passes: a program
compiles several times faster and may run slower. Modules that check the
numerics of small models (against NumPy, float64 references or another JAX
path compiled the same way) use it for all their tests:

  @pytest.fixture(scope='module', autouse=True)
  def _fast_compiles():
    with fast_compiles.unoptimised():
      yield

Not for tests that time programs or compare against XLA-optimised output.
The flag is not part of JAX's compilation cache keys: what a module compiles
under it stays unoptimised for the rest of the process (numerically the
same program, up to float rounding).
tests/conftest.py does the same for every module of tests/training/ and
tests/harness/.
"""

import contextlib

import jax

_FLAG = 'jax_disable_most_optimizations'


@contextlib.contextmanager
def unoptimised():
  """XLA compiles with most optimisations off, restored on exit."""
  before = jax.config.read(_FLAG)
  jax.config.update(_FLAG, True)
  try:
    yield
  finally:
    jax.config.update(_FLAG, before)
