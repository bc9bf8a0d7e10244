"""S4Layer's DPLR (Cauchy + Woodbury) and S4D kernels compile for a TPU.

A forward and backward pass of each kernel mode is lowered for a
compile-only TPU v5e chip: complex64 arithmetic, FFTs and the Cauchy
reduction must all have TPU lowerings, with no complex128 and no host
callback in the program.
"""

import jax
import jax.numpy as jnp
import pytest

from harness import accelerators
from s4jax.layers import s4
from tests import tpu_target

tpu_target.skip_module_without_libtpu()


@pytest.mark.parametrize('mode', ['s4', 's4d'])
def test_s4_layer_gradient_compiles_for_tpu(mode):
  (device,) = accelerators.tpu_devices('v5e:1x1')
  layer = s4.S4Layer(d_state=16, mode=mode)
  x = jnp.zeros((2, 512, 8), jnp.float32)
  params = jax.eval_shape(layer.init, jax.random.key(0), x)

  def loss(p, x):
    return jnp.mean(layer.apply(p, x) ** 2)

  sharding = jax.sharding.SingleDeviceSharding(device)
  args = jax.tree.map(
    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding),
    (params, x),
  )
  compiled = jax.jit(jax.grad(loss)).lower(*args).compile()
  text = compiled.as_text()
  assert 'c128' not in text and 'f64' not in text, 'double precision on TPU'
  assert 'callback' not in text.lower(), 'host callback in a TPU program'
  assert compiled.memory_analysis().argument_size_in_bytes > 0
