"""Tests for s4jax.training.state: the train state, step keys, plateau."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.training import state as state_lib


def _state(key=None, step=0):
  params = {'w': jnp.ones((2, 3)), 'b': jnp.zeros(3)}
  opt_state = {'mu': jnp.zeros((2, 3))}
  key = jax.random.key(7) if key is None else key
  return state_lib.create(params, opt_state, key).replace(step=jnp.int32(step))


def test_create_starts_at_step_zero_with_neutral_bookkeeping():
  s = _state()
  want = {
    'step': (jnp.int32, 0),
    'lr_scale': (jnp.float32, 1.0),
    'consecutive_skips': (jnp.int32, 0),
    'total_skips': (jnp.int32, 0),
    'plateau_bad_evals': (jnp.int32, 0),
  }
  for name, (dtype, value) in want.items():
    x = getattr(s, name)
    assert x.shape == () and x.dtype == dtype and float(x) == value, (
      f'{name}: expected {dtype.__name__} () {value}, got {x.dtype} '
      f'{x.shape} {x}'
    )
  assert s.plateau_best.dtype == jnp.float32, s.plateau_best.dtype
  assert math.isnan(float(s.plateau_best)), 'no best value yet: NaN'
  assert s.rng.dtype == jnp.uint32 and s.rng.shape == (2,), s.rng


def test_typed_and_raw_keys_give_the_same_state_rng():
  typed = _state(jax.random.key(3))
  raw = _state(jax.random.key_data(jax.random.key(3)))
  np.testing.assert_array_equal(raw.rng, typed.rng)
  np.testing.assert_array_equal(
    typed.rng, jax.random.key_data(jax.random.key(3))
  )


def test_step_key_is_the_base_key_folded_with_the_step():
  for step in (0, 1, 41):
    got = jax.random.key_data(state_lib.step_key(_state(step=step)))
    want = jax.random.key_data(jax.random.fold_in(jax.random.key(7), step))
    np.testing.assert_array_equal(got, want, err_msg=f'step {step}')


def _key(state):
  return np.asarray(jax.random.key_data(state_lib.step_key(state)))


def test_step_key_depends_only_on_rng_and_step():
  a = _state(step=5)
  # A resumed run: other params and counters, same rng and step.
  b = a.replace(
    params=jax.tree.map(lambda x: x + 1, a.params),
    total_skips=jnp.int32(3),
  )
  np.testing.assert_array_equal(_key(a), _key(b))
  assert not np.array_equal(_key(a), _key(_state(step=6))), 'steps share a key'
  assert not np.array_equal(_key(a), _key(_state(jax.random.key(8), step=5))), (
    'base keys share a step key'
  )


def test_plateau_halves_after_patience_evaluations_without_improvement():
  best, bad, scale = float('nan'), 0, 1.0
  scales = []
  for value in (1.0, 2.0, 1.5, 1.9, 2.0, 2.5, 0.0, 0.0):
    best, bad, scale = state_lib.plateau_update(
      best, bad, scale, value, mode='max', factor=0.5, patience=2
    )
    scales.append(scale)
  # Improvements at 1.0, 2.0, 2.5; plateaus of 2 after 2.0 (1.5, 1.9) and
  # after 2.5 (0, 0). Equal values (2.0) are no improvement.
  assert scales == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25], scales
  assert best == 2.5, best


def test_plateau_in_min_mode_and_non_finite_values():
  # A non-finite evaluation counts as no improvement and never becomes best.
  got = state_lib.plateau_update(
    1.0, 0, 1.0, float('nan'), mode='min', factor=0.5, patience=3
  )
  assert got == (1.0, 1, 1.0), f'expected (1.0, 1, 1.0), got {got}'
  got = state_lib.plateau_update(
    1.0, 2, 1.0, 0.5, mode='min', factor=0.5, patience=3
  )
  assert got == (0.5, 0, 1.0), f'lower is better in min mode, got {got}'
  got = state_lib.plateau_update(
    1.0, 2, 1.0, 2.0, mode='min', factor=0.5, patience=3
  )
  assert got == (1.0, 0, 0.5), f'third bad evaluation halves, got {got}'


def test_plateau_mode_must_be_max_or_min():
  with pytest.raises(ValueError, match="'max' or 'min', got 'up'"):
    state_lib.plateau_update(
      1.0, 0, 1.0, 2.0, mode='up', factor=0.5, patience=1
    )
