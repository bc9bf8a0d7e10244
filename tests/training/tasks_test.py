"""Tests for s4jax.training.tasks: batch layout, dtype switch, loss, init."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.training import tasks, testing
from tests.training import toy_config


@pytest.mark.parametrize(
  'task, keys',
  [
    ('enhancement', ('noisy', 'clean', 'estimate')),
    ('separation', ('mixture', 'sources', 'estimates')),
  ],
)
def test_batch_keys_follow_the_task(task, keys):
  t = tasks.create_task(toy_config.get_config(f'task={task}'))
  got = (t.input_key, t.target_key, t.output_key)
  assert got == keys, f'expected {keys}, got {got}'


def test_unknown_task_is_refused_naming_it():
  config = toy_config.get_config()
  config.task = 'dereverb'
  with pytest.raises(ValueError, match="Unknown config.task 'dereverb'"):
    tasks.create_task(config)


def test_model_config_for_takes_the_dtype_from_the_compute_dtype():
  config = toy_config.get_config()
  assert tasks.model_config_for(config).dtype == 'float32'
  config.train.compute_dtype = 'bfloat16'
  got = tasks.model_config_for(config)
  assert got.dtype == 'bfloat16', f'expected bfloat16, got {got.dtype}'
  assert got.hidden == config.model.hidden == 16, got
  assert 'dtype' not in config.model, 'config.model must stay unchanged'
  assert tasks.create_task(config).model.dtype == jnp.bfloat16


def test_model_config_for_refuses_bad_or_conflicting_dtypes():
  config = toy_config.get_config()
  config.train.compute_dtype = 'float16'
  with pytest.raises(ValueError, match="compute_dtype='float16'; choose"):
    tasks.model_config_for(config)
  config.train.compute_dtype = 'bfloat16'
  config.model.dtype = 'float16'
  with pytest.raises(ValueError, match="model.dtype='float16' disagrees"):
    tasks.model_config_for(config)


@pytest.mark.parametrize(
  'task, out_shape', [('enhancement', (3, 512)), ('separation', (3, 2, 512))]
)
def test_init_apply_and_a_scalar_float32_loss(task, out_shape):
  config = toy_config.get_config(f'task={task}')
  t = tasks.create_task(config)
  assert tasks.init_samples(config) == 512, tasks.init_samples(config)
  params = t.init(jax.random.key(0), tasks.init_samples(config))
  batch = testing.make_batch(config, 3, np.random.default_rng(0))
  outputs = t.apply(params, batch[t.input_key], train=False)
  est = t.estimate(outputs)
  assert est.shape == out_shape and est.dtype == jnp.float32, (
    f'expected {out_shape} float32, got {est.shape} {est.dtype}'
  )
  # bfloat16 model outputs reach the loss as float32.
  half = jax.tree.map(lambda x: x.astype(jnp.bfloat16), outputs)
  loss, metrics = t.loss(half, batch)
  assert loss.shape == () and loss.dtype == jnp.float32, (
    f'expected a float32 scalar, got {loss.shape} {loss.dtype}'
  )
  assert set(metrics) == {'si_snr'}, metrics
  want = -float(metrics['si_snr'])  # the toy loss is -SI-SNR
  assert float(loss) == pytest.approx(want, rel=1e-6), (float(loss), want)


def test_init_samples_defaults_to_one_second():
  config = toy_config.get_config()
  config.data.segment_seconds = 0.0
  got = tasks.init_samples(config)
  assert got == config.data.sample_rate == 8000, f'expected 8000, got {got}'


class _Bare(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(1)(x[..., None])[..., 0]


def test_apply_needs_a_dict_with_the_output_key():
  t = tasks.Task(
    name='enhancement',
    model=_Bare(),
    model_module=testing,
    loss_config=None,
    sample_rate=8000,
  )
  params = t.init(jax.random.key(0), 16)
  with pytest.raises(TypeError, match="dict with 'estimate'; _Bare returned"):
    t.apply(params, jnp.ones((1, 16)), train=False)


def test_param_transform_is_identity_unless_quantisation_is_on():
  config = toy_config.get_config()
  params = {'kernel': jnp.array([[0.3, -0.7], [1.1, 0.05]])}
  same = tasks.param_transform(config)(params)
  assert same is params, 'quantisation off must return the params as they are'
  config.quant.enabled = True
  q = np.asarray(tasks.param_transform(config)(params)['kernel'])
  # SEOFP keeps sign and exponent only: every weight is +-2^k.
  log2 = np.log2(np.abs(q))
  np.testing.assert_array_equal(log2, np.round(log2), err_msg=f'{q}')
  np.testing.assert_array_equal(np.sign(q), np.sign(params['kernel']))
