"""Optimiser factory: groups, closed-form first updates, schedules.

The halve-on-plateau bookkeeping lives in state.py: state_test.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import base
from s4jax.training import optim


def _opt_config(**overrides):
  config = base.get_base_config().optimizer
  config.unlock()
  for k, v in overrides.items():
    config[k] = v
  return config


def _params():
  return {
    'layer': {
      'log_dt': jnp.array([0.5, -1.0]),
      'B': jnp.array([[1.0, 2.0]]),
      'C': jnp.array([[3.0, -4.0]]),
    },
    'dense': {'kernel': jnp.array([[1.0, -2.0], [0.5, 4.0]])},
  }


def _one_step(config, params, grads, num_steps=10):
  tx = optim.create_optimizer(config, num_steps)
  updates, _ = tx.update(grads, tx.init(params), params)
  return optax.apply_updates(params, updates)


def test_labels_mark_ssm_leaves_only():
  labels = optim.param_labels(_params())
  assert labels['layer']['log_dt'] == 'ssm', labels
  assert labels['layer']['B'] == 'ssm', labels
  assert labels['layer']['C'] == 'regular', labels
  assert labels['dense']['kernel'] == 'regular', labels


def test_adam_first_step_uses_group_rates():
  # Adam's bias-corrected first step is lr * g / (|g| + eps) = lr * sign(g).
  config = _opt_config(learning_rate=0.1, ssm_learning_rate=0.01, eps=1e-12)
  params = _params()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.7), params)
  new = _one_step(config, params, grads)
  delta = jax.tree.map(lambda a, b: np.asarray(b - a), params, new)
  np.testing.assert_allclose(
    delta['dense']['kernel'],
    -0.1,
    rtol=1e-5,
    err_msg='regular group should move by -lr',
  )
  np.testing.assert_allclose(delta['layer']['C'], -0.1, rtol=1e-5)
  np.testing.assert_allclose(
    delta['layer']['log_dt'],
    -0.01,
    rtol=1e-5,
    err_msg='ssm group should move by -ssm_lr',
  )
  np.testing.assert_allclose(delta['layer']['B'], -0.01, rtol=1e-5)


def test_adamw_decay_is_decoupled_and_skips_ssm_group():
  # Zero gradients: AdamW moves only by -lr * wd * p; the SSM group has no
  # decay (ssm_weight_decay = 0).
  config = _opt_config(name='adamw', learning_rate=0.1, weight_decay=0.5)
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  new = _one_step(config, params, zeros)
  np.testing.assert_allclose(
    new['dense']['kernel'],
    params['dense']['kernel'] * (1 - 0.1 * 0.5),
    rtol=1e-6,
    err_msg='decoupled decay p * (1 - lr wd) expected',
  )
  np.testing.assert_allclose(new['layer']['B'], params['layer']['B'])


def test_adam_weight_decay_is_l2_on_the_gradient():
  # Coupled L2 (PyTorch Adam): g' = g + wd p; first step -lr * sign(g').
  config = _opt_config(learning_rate=0.1, weight_decay=0.5, eps=1e-12)
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  new = _one_step(config, params, zeros)
  k = params['dense']['kernel']
  np.testing.assert_allclose(
    new['dense']['kernel'], k - 0.1 * np.sign(k), rtol=1e-5
  )


def test_radam_first_step_and_global_norm_clipping():
  # RAdam's first steps (rho_t <= 5) are bias-corrected momentum SGD:
  # p - lr * g. Clipping scales g by clip / ||g|| over all leaves.
  config = _opt_config(name='radam', learning_rate=0.1, clip_norm=1.0)
  params = _params()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 2.0), params)
  norm = math.sqrt(sum(4.0 * p.size for p in jax.tree.leaves(params)))
  new = _one_step(config, params, grads)
  expected = jax.tree.map(lambda p: p - 0.1 * 2.0 / norm, params)
  for got, want in zip(
    jax.tree.leaves(new), jax.tree.leaves(expected), strict=True
  ):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_cosine_schedule_with_warmup_matches_closed_form():
  config = _opt_config(learning_rate=2.0, schedule='cosine', warmup_steps=4)
  fn = optim.learning_rate_fn(config, num_steps=20)
  for t in (0, 2, 4, 10, 20):
    if t < 4:
      want = 2.0 * t / 4
    else:
      want = 0.5 * 2.0 * (1 + math.cos(math.pi * (t - 4) / 16))
    assert float(fn(t)) == pytest.approx(want, abs=1e-6), (t, float(fn(t)))


def test_unknown_names_are_clear_errors():
  with pytest.raises(ValueError, match='optimizer.name'):
    optim.create_optimizer(_opt_config(name='sgdx'), 10)
  with pytest.raises(ValueError, match='optimizer.schedule'):
    optim.learning_rate_fn(_opt_config(schedule='step'), 10)
