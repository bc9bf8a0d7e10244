"""The train state: one pytree holding everything a resumed run needs.

Besides parameters and optimiser state it carries the step, the base RNG key,
the non-finite guard counters and the halve-on-plateau bookkeeping, so that a
checkpoint restores a run exactly (the data position is the step).
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  'TrainState',
  'create',
  'plateau_update',
  'step_key',
]


@flax.struct.dataclass
class TrainState:
  """Pytree of a training run.

  Attributes:
    step: int32 `()`, number of batches consumed (skipped steps included).
    params: the model's `'params'` collection (float32).
    opt_state: optax state.
    rng: uint32 `(2,)` raw base key; step `s` uses `fold_in(rng, s)`.
    lr_scale: float32 `()`, learning-rate multiplier (plateau schedule).
    consecutive_skips: int32 `()`, steps in a row with non-finite gradients.
    total_skips: int32 `()`, all skipped steps.
    plateau_best: float32 `()`, best evaluation metric seen (NaN = none yet).
    plateau_bad_evals: int32 `()`, evaluations since the last improvement.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  lr_scale: jax.Array
  consecutive_skips: jax.Array
  total_skips: jax.Array
  plateau_best: jax.Array
  plateau_bad_evals: jax.Array


def create(params: Any, opt_state: Any, rng: jax.Array) -> TrainState:
  """A fresh state at step 0 (`rng`: a typed or raw uint32 key)."""
  if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=opt_state,
    rng=rng.astype(jnp.uint32),
    lr_scale=jnp.ones((), jnp.float32),
    consecutive_skips=jnp.zeros((), jnp.int32),
    total_skips=jnp.zeros((), jnp.int32),
    plateau_best=jnp.full((), jnp.nan, jnp.float32),
    plateau_bad_evals=jnp.zeros((), jnp.int32),
  )


def step_key(state: TrainState) -> jax.Array:
  """Typed PRNG key of the current step (independent of resumption)."""
  return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)


def plateau_update(
  best: float,
  bad_evals: int,
  lr_scale: float,
  value: float,
  *,
  mode: str,
  factor: float,
  patience: int,
) -> tuple[float, int, float]:
  """One halve-on-plateau decision from an evaluation result (host side).

  Mirrors `torch.optim.lr_scheduler.ReduceLROnPlateau` with threshold 0:
  after `patience` evaluations without improvement the scale is multiplied by
  `factor` and the counter restarts.

  Args:
    best: best value so far (NaN: none yet).
    bad_evals: evaluations since the last improvement.
    lr_scale: current learning-rate scale.
    value: the new evaluation value.
    mode: 'max' or 'min'.
    factor: multiplier applied on a plateau.
    patience: evaluations without improvement that trigger it.

  Returns:
    `(best, bad_evals, lr_scale)` after this evaluation.
  """
  if mode not in ('max', 'min'):
    raise ValueError(f"Plateau mode must be 'max' or 'min', got {mode!r}.")
  if not np.isfinite(value):
    return best, bad_evals + 1, lr_scale
  better = value > best if mode == 'max' else value < best
  if np.isnan(best) or better:
    return float(value), 0, lr_scale
  bad_evals += 1
  if bad_evals >= patience:
    return best, 0, lr_scale * factor
  return best, bad_evals, lr_scale
