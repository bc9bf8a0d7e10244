"""Optimiser factory: Adam/AdamW/RAdam, schedules, clipping, SSM group.

Built from `config.optimizer` (see `configs/base.py`):

* `name`: `adam` and `radam` apply `weight_decay` as an L2 term added to the
  gradient (PyTorch `Adam`/`RAdam` semantics, which the Spiking-S4 recipe
  used); `adamw` decouples it (Loshchilov & Hutter, 2019).
* `schedule`: `constant`, `cosine` (to zero at `train.num_steps`) or
  `plateau`. All start with `warmup_steps` of linear warm-up. The plateau
  schedule is constant here; its halving is a learning-rate scale carried in
  the train state (`TrainState.lr_scale`) and updated on the host from each
  evaluation (`state.plateau_update`), so it checkpoints and resumes with the
  run and follows the validation metric rather than the training loss.
* `clip_norm > 0`: global-norm clipping over all parameters, before the
  groups split (PyTorch `clip_grad_norm_` semantics).
* SSM parameters (`log_dt`, `log_A_real`, `A_imag`, `B`, `P`) form their own
  group with `ssm_learning_rate` (0 = the main rate) and `ssm_weight_decay`,
  as in S4/S5 (Gu et al., 2022; Smith et al., 2023). Labels come from
  `s4jax.layers.s4.ssm_param_labels` when it exists, otherwise from the leaf
  names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

__all__ = [
  'OPTIMIZERS',
  'SCHEDULES',
  'SSM_LEAF_NAMES',
  'create_optimizer',
  'learning_rate_fn',
  'param_labels',
]

SSM_LEAF_NAMES = frozenset({'log_dt', 'log_A_real', 'A_imag', 'B', 'P'})
OPTIMIZERS = ('adam', 'adamw', 'radam')
SCHEDULES = ('constant', 'cosine', 'plateau')


def param_labels(params: Any) -> Any:
  """Pytree like `params` with `'ssm'` or `'regular'` leaves."""
  try:
    from s4jax.layers import s4  # pylint: disable=g-import-not-at-top

    labeller = s4.ssm_param_labels
  except (ImportError, AttributeError):
    labeller = _labels_from_names
  return labeller(params)


def _labels_from_names(params: Any) -> Any:
  def label(path, _):
    name = getattr(path[-1], 'key', None) if path else None
    return 'ssm' if name in SSM_LEAF_NAMES else 'regular'

  return jax.tree_util.tree_map_with_path(label, params)


def learning_rate_fn(
  opt_config: Any, num_steps: int, base_rate: float | None = None
) -> Callable[[Any], Any]:
  """The step -> learning-rate schedule (before the plateau scale)."""
  if opt_config.schedule not in SCHEDULES:
    raise ValueError(
      f'Unknown optimizer.schedule {opt_config.schedule!r}; '
      f'choose one of {SCHEDULES}.'
    )
  rate = opt_config.learning_rate if base_rate is None else base_rate
  warmup = int(opt_config.warmup_steps)
  if opt_config.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else rate,
      peak_value=rate,
      warmup_steps=warmup,
      decay_steps=max(int(num_steps), warmup + 1),
    )
  if warmup:
    return optax.join_schedules(
      [
        optax.linear_schedule(0.0, rate, warmup),
        optax.constant_schedule(rate),
      ],
      [warmup],
    )
  return optax.constant_schedule(rate)


def _one_group(
  opt_config: Any, schedule: Callable[[Any], Any], weight_decay: float
) -> optax.GradientTransformation:
  name = opt_config.name
  if name not in OPTIMIZERS:
    raise ValueError(
      f'Unknown optimizer.name {name!r}; choose one of {OPTIMIZERS}.'
    )
  b1, b2, eps = opt_config.b1, opt_config.b2, opt_config.eps
  parts = []
  if weight_decay and name != 'adamw':
    parts.append(optax.add_decayed_weights(weight_decay))  # Coupled L2.
  if name == 'radam':
    parts.append(optax.scale_by_radam(b1=b1, b2=b2, eps=eps))
  else:
    parts.append(optax.scale_by_adam(b1=b1, b2=b2, eps=eps))
  if weight_decay and name == 'adamw':
    parts.append(optax.add_decayed_weights(weight_decay))  # Decoupled.
  parts.append(optax.scale_by_learning_rate(schedule))
  return optax.chain(*parts)


def create_optimizer(
  opt_config: Any, num_steps: int
) -> optax.GradientTransformation:
  """The full gradient transformation described by `config.optimizer`."""
  regular = _one_group(
    opt_config,
    learning_rate_fn(opt_config, num_steps),
    opt_config.weight_decay,
  )
  ssm_rate = opt_config.ssm_learning_rate or opt_config.learning_rate
  ssm = _one_group(
    opt_config,
    learning_rate_fn(opt_config, num_steps, ssm_rate),
    opt_config.ssm_weight_decay,
  )
  tx = optax.multi_transform({'regular': regular, 'ssm': ssm}, param_labels)
  if opt_config.clip_norm and opt_config.clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.clip_norm), tx)
  return tx
