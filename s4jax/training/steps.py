"""The train and evaluation steps (pure functions, jitted by the loop).

The train step has a non-finite guard: when the loss or the global gradient
norm is not finite, parameters and optimiser state are left unchanged, the
step still advances (the batch is consumed, so data order is unaffected) and
`consecutive_skips` counts up; a finite step resets it. The loop stops the
run when it reaches `config.train.max_consecutive_skips`.

Metrics come back as `StepMetrics`, a pytree that accumulates on device
between reports: loss-like values are masked averages over finite steps,
`skipped` is the fraction of skipped steps, and the learning rate and skip
counters are last values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from s4jax.training import state as state_lib
from s4jax.training import tasks as tasks_lib

__all__ = [
  'LAST_VALUES',
  'StepFn',
  'StepMetrics',
  'UNMASKED',
  'make_eval_step',
  'make_raw_train_step',
  'make_train_step',
]

StepFn = Callable[[state_lib.TrainState, dict[str, jax.Array]], Any]
LAST_VALUES = ('learning_rate', 'consecutive_skips', 'total_skips')
UNMASKED = ('skipped',)


def make_raw_train_step(
  task: tasks_lib.Task,
  tx: optax.GradientTransformation,
  lr_fn: Callable[[Any], Any],
) -> StepFn:
  """`(state, batch) -> (state, dict of scalar metrics)`; see module doc.

  The task applies `task.param_transform` (SEOFP fake quantisation, a
  straight-through estimator) to the parameters inside the loss.
  """

  def loss_fn(params, batch, rng):
    outputs = task.apply(params, batch[task.input_key], train=True, rng=rng)
    return task.loss(outputs, batch)

  def train_step(state, batch):
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, aux), grads = grad_fn(state.params, batch, state_lib.step_key(state))
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    grads = jax.tree.map(lambda g: jnp.where(finite, g, 0), grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    updates = jax.tree.map(
      lambda u: u * state.lr_scale.astype(u.dtype), updates
    )
    params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
    consecutive = jnp.where(finite, 0, state.consecutive_skips + 1)
    new_state = state.replace(
      step=state.step + 1,
      params=jax.tree.map(keep, params, state.params),
      opt_state=jax.tree.map(keep, opt_state, state.opt_state),
      consecutive_skips=consecutive.astype(jnp.int32),
      total_skips=state.total_skips + (~finite).astype(jnp.int32),
    )
    scalars = {
      'loss': loss,
      **{k: jnp.mean(v) for k, v in aux.items()},
      'grad_norm': grad_norm,
      'param_norm': optax.tree.norm(new_state.params),
      'update_norm': optax.tree.norm(updates),
      'learning_rate': lr_fn(state.step) * state.lr_scale,
      'skipped': (~finite).astype(jnp.float32),
      'consecutive_skips': new_state.consecutive_skips,
      'total_skips': new_state.total_skips,
      'finite': finite,
    }
    return new_state, scalars

  return train_step


@flax.struct.dataclass
class StepMetrics:
  """Train-step scalars accumulated over steps (a pytree; merge on device).

  Attributes:
    sums: per averaged name, the sum of its values over counted steps.
    counts: per averaged name, the steps counted: finite steps, or every
      step for `UNMASKED` names.
    last: the newest value of each `LAST_VALUES` name.
  """

  sums: dict[str, jax.Array]
  counts: dict[str, jax.Array]
  last: dict[str, jax.Array]

  @classmethod
  def from_step(cls, scalars: dict[str, jax.Array]) -> StepMetrics:
    """One step's metrics from the raw step's scalar dict."""
    finite = jnp.asarray(scalars['finite'], jnp.float32)
    sums, counts, last = {}, {}, {}
    for name, value in scalars.items():
      if name == 'finite':
        continue
      if name in LAST_VALUES:
        last[name] = value
        continue
      weight = jnp.ones((), jnp.float32) if name in UNMASKED else finite
      sums[name] = weight * jnp.asarray(value, jnp.float32)
      counts[name] = weight
    return cls(sums=sums, counts=counts, last=last)

  def merge(self, newer: StepMetrics) -> StepMetrics:
    """Both spans together; last values come from `newer`."""
    add = lambda a, b: a + b  # noqa: E731
    return StepMetrics(
      sums=jax.tree.map(add, self.sums, newer.sums),
      counts=jax.tree.map(add, self.counts, newer.counts),
      last=newer.last,
    )

  def compute(self) -> dict[str, jax.Array]:
    """Averages (NaN where no step counted) and last values, by name."""
    averages = {k: self.sums[k] / self.counts[k] for k in self.sums}
    return {**averages, **self.last}


def make_train_step(
  task: tasks_lib.Task,
  tx: optax.GradientTransformation,
  lr_fn: Callable[[Any], Any],
) -> StepFn:
  """The train step returning `(state, StepMetrics, consecutive_skips)`.

  Args:
    task: the task.
    tx: the optimiser.
    lr_fn: schedule used for logging the learning rate.

  Returns:
    The step (not jitted).
  """
  raw = make_raw_train_step(task, tx, lr_fn)

  def train_step(state, batch):
    new_state, out = raw(state, batch)
    return new_state, StepMetrics.from_step(out), out['consecutive_skips']

  return train_step


def make_eval_step(task: tasks_lib.Task) -> Callable[..., dict[str, Any]]:
  """`(params, batch) -> {'estimate': ..., 'loss': (B,)}`.

  The per-example loss applies the model module's `loss_fn` to each row
  (vmapped; outputs without a leading batch axis are shared by all rows),
  so padded rows can be masked out by the caller.
  """

  def eval_step(params, batch):
    inputs = batch[task.input_key]
    outputs = task.apply(params, inputs, train=False)
    rows = inputs.shape[0]
    axes = jax.tree.map(
      lambda x: 0 if jnp.ndim(x) and jnp.shape(x)[0] == rows else None,
      outputs,
    )

    def one(out, example):
      add_axis = lambda x: x[None]  # noqa: E731
      out = jax.tree.map(lambda x, a: add_axis(x) if a == 0 else x, out, axes)
      loss, _ = task.loss(out, jax.tree.map(add_axis, example))
      return loss

    losses = jax.vmap(one, in_axes=(axes, 0))(outputs, batch)
    return {'estimate': task.estimate(outputs), 'loss': losses}

  return eval_step
