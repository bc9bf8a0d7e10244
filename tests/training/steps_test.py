"""Train step: non-finite guard, learning-rate scale; per-example eval loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.training import optim, steps, tasks, testing
from s4jax.training import state as state_lib
from tests.training import toy_config


@pytest.fixture(scope='module')
def setup():
  config = toy_config.get_config()
  task = tasks.create_task(config)
  tx = optim.create_optimizer(config.optimizer, 10)
  params = task.init(jax.random.key(0), 512)
  state = state_lib.create(params, tx.init(params), jax.random.key(1))
  lr_fn = optim.learning_rate_fn(config.optimizer, 10)
  step = jax.jit(steps.make_raw_train_step(task, tx, lr_fn))
  batch = testing.make_batch(config, 4, np.random.default_rng(0))
  return config, task, state, step, batch


def _poison(batch, value):
  bad = {k: v.copy() for k, v in batch.items()}
  bad['noisy'][1, 7] = value
  return bad


@pytest.mark.parametrize('value', [np.nan, np.inf])
def test_non_finite_step_is_skipped_and_counted(setup, value):
  _, _, state, step, batch = setup
  new, out = step(state, _poison(batch, value))
  assert not bool(out['finite']), 'poisoned batch should be non-finite'
  assert int(new.step) == 1, 'a skipped step still consumes its batch'
  assert int(new.consecutive_skips) == 1 and int(new.total_skips) == 1
  for a, b in zip(
    jax.tree.leaves((state.params, state.opt_state)),
    jax.tree.leaves((new.params, new.opt_state)),
    strict=True,
  ):
    np.testing.assert_array_equal(a, b, err_msg='skipped step changed state')
  newer, out2 = step(new, batch)
  assert bool(out2['finite'])
  assert int(newer.consecutive_skips) == 0, 'finite step resets the count'
  assert int(newer.total_skips) == 1
  changed = jax.tree.map(
    lambda a, b: bool(jnp.any(a != b)), new.params, newer.params
  )
  assert all(jax.tree.leaves(changed)), f'finite step must update: {changed}'


def test_lr_scale_scales_the_update(setup):
  _, _, state, step, batch = setup
  full, _ = step(state, batch)
  half, out = step(state.replace(lr_scale=jnp.float32(0.5)), batch)
  for p0, p1, ph in zip(
    jax.tree.leaves(state.params),
    jax.tree.leaves(full.params),
    jax.tree.leaves(half.params),
    strict=True,
  ):
    np.testing.assert_allclose(ph - p0, 0.5 * (p1 - p0), rtol=1e-4, atol=1e-7)
  assert float(out['learning_rate']) == pytest.approx(0.5 * 3e-3)


def test_eval_step_loss_is_per_example(setup):
  _, task, state, _, batch = setup
  out = jax.jit(steps.make_eval_step(task))(state.params, batch)
  assert out['estimate'].shape == batch['noisy'].shape
  for i in range(4):
    one = {k: v[i : i + 1] for k, v in batch.items()}
    outputs = task.apply(state.params, one['noisy'], train=False)
    loss, _ = task.loss(outputs, one)
    assert float(out['loss'][i]) == pytest.approx(float(loss), rel=1e-5), i
