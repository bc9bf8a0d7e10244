"""PyTorch's default initialisers, for layers ported from PyTorch code.

PyTorch initialises `nn.Linear` and `nn.Conv1d` weights with
`kaiming_uniform_(a=sqrt(5))` and their biases uniformly, both in
`+-1/sqrt(fan_in)` (fan_in = input channels x kernel size / groups).

* `torch_uniform(fan_in)`: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for any
  parameter (the bias rule; the weight rule has the same bounds);
* `torch_kernel_init`: the weight rule as a Flax initialiser that reads the
  fan-in from the kernel shape (`variance_scaling(1/3, 'fan_in',
  'uniform')`, the same distribution as `torch_uniform`, other draws).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
  'torch_kernel_init',
  'torch_uniform',
]

torch_kernel_init = nn.initializers.variance_scaling(
  1.0 / 3.0, 'fan_in', 'uniform'
)


def torch_uniform(fan_in: int) -> nn.initializers.Initializer:
  """`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: PyTorch's bias (and weight) bounds.

  Args:
    fan_in: inputs per output unit of the layer the parameter belongs to.

  Returns:
    An initialiser `init(key, shape, dtype=float32)`.
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init
