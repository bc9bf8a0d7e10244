"""Tests of `s4jax.models.summary`: parameter counts and the MAC tracer."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.models import s4m_blocks, summary


class _Net(nn.Module):
  """Dense -> Conv (k 3, 2 groups) -> LayerNorm -> depthwise conv -> Dense."""

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(8, name='inp')(x)
    x = nn.Conv(6, (3,), feature_group_count=2, padding='SAME', name='conv')(x)
    x = nn.LayerNorm(name='norm')(x)
    x = s4m_blocks.DepthwiseConv1d(kernel_size=5, name='dw')(x)
    return nn.Dense(2, use_bias=False, name='out')(x)


def _traced(bucket=None):
  x = jax.ShapeDtypeStruct((2, 10, 4), jnp.float32)
  variables = jax.eval_shape(_Net().init, jax.random.key(0), x)
  return summary.trace_macs(_Net(), variables, x, bucket=bucket), variables


def test_trace_macs_follows_the_closed_forms_per_layer():
  got, _ = _traced()
  rows = 2 * 10  # batch * time
  want = {
    'inp': rows * 4 * 8,
    'conv': rows * 3 * (8 // 2) * 6,
    'norm': 5 * rows * 6,  # scale and bias: 5 per element
    'dw': rows * 6 * 5,  # the module's own `macs` rule
    'out': rows * 6 * 2,
  }
  want['total'] = sum(want.values())
  assert got == want, f'expected {want}, got {got}'


def test_trace_macs_buckets_sum_and_skip_layers():
  def kind(layer, path):
    del path
    if isinstance(layer, nn.Dense):
      return 'dense'
    return None if isinstance(layer, nn.LayerNorm) else 'conv'

  got, _ = _traced(kind)
  rows = 2 * 10
  want = {
    'dense': rows * 4 * 8 + rows * 6 * 2,
    'conv': rows * 3 * 4 * 6 + rows * 6 * 5,
  }
  want['total'] = sum(want.values())
  assert got == want, f'expected {want}, got {got}'


def test_parameter_counts_by_module_and_in_total():
  _, variables = _traced()
  by_module = summary.params_by_module(variables['params'])
  want = {
    'inp': 4 * 8 + 8,
    'conv': 3 * (8 // 2) * 6 + 6,
    'norm': 2 * 6,
    'dw': 5 * 6 + 6,
    'out': 6 * 2,
  }
  assert by_module == want, f'expected {want}, got {by_module}'
  total = summary.count_params(variables['params'])
  assert total == sum(want.values()), (total, sum(want.values()))


def test_param_differences_names_missing_extra_and_reshaped_leaves():
  a = {'enc': {'kernel': np.zeros((3, 4)), 'bias': np.zeros(4)}}
  b = {'enc': {'kernel': np.zeros((3, 5))}, 'dec': {'kernel': np.zeros(2)}}
  got = summary.param_differences(a, b)
  want = [
    '1 missing from the file: dec/kernel (2,)',
    '1 not in the model: enc/bias (4,)',
    '1 of another shape or dtype: enc/kernel is (3, 4) float64, the model '
    'wants (3, 5) float64',
  ]
  assert got == want, f'expected {want}, got {got}'
  assert summary.param_differences(a, a) == [], 'identical trees differ'


@pytest.mark.parametrize('stride, k, pad', [(2, 4, 1), (3, 5, 0)])
def test_conv_transpose_macs_rule_counts_input_frames(stride, k, pad):
  layer = s4m_blocks.ConvTranspose1d(
    features=3, kernel_size=k, stride=stride, padding=pad
  )
  x = jax.ShapeDtypeStruct((2, 7, 4), jnp.float32)
  variables = jax.eval_shape(layer.init, jax.random.key(0), x)
  got = summary.trace_macs(layer, variables, x)['total']
  assert got == 2 * 7 * k * 4 * 3, f'expected {2 * 7 * k * 4 * 3}, got {got}'
