"""Tasks: which batch keys feed the model and how its loss is computed.

A `Task` joins a Linen model, its Python module's `loss_fn` and the batch
layout of `config.task`:

| task        | model input | target            | model output            |
|-------------|-------------|-------------------|-------------------------|
| enhancement | `noisy`     | `clean` (B, T)    | `estimate` (B, T)       |
| separation  | `mixture`   | `sources` (B,S,T) | `estimates` (B, S, T)   |

Model outputs are cast to float32 before the loss, so a bfloat16 compute
dtype never reaches the loss or the metrics.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

from s4jax import models

__all__ = [
  'COMPUTE_DTYPES',
  'LAYOUTS',
  'Task',
  'create_task',
  'init_samples',
  'model_config_for',
  'param_transform',
]


def _identity_default(params: Any) -> Any:
  return params


# task -> (input key, target key, output key)
LAYOUTS = {
  'enhancement': ('noisy', 'clean', 'estimate'),
  'separation': ('mixture', 'sources', 'estimates'),
}
COMPUTE_DTYPES = ('float32', 'bfloat16')


@dataclasses.dataclass(frozen=True)
class Task:
  """A model plus the batch layout and loss of its task."""

  name: str
  model: Any  # flax.linen.Module
  model_module: types.ModuleType
  loss_config: Any
  sample_rate: int
  # Applied to the parameters before every model call (SEOFP fake-quant).
  param_transform: Callable[[Any], Any] = _identity_default

  @property
  def input_key(self) -> str:
    return LAYOUTS[self.name][0]

  @property
  def target_key(self) -> str:
    return LAYOUTS[self.name][1]

  @property
  def output_key(self) -> str:
    return LAYOUTS[self.name][2]

  @property
  def batch_keys(self) -> tuple[str, str]:
    """The batch arrays a train step reads: input and target.

    Other arrays a pipeline yields (e.g. `noise`) stay on the host.
    """
    return self.input_key, self.target_key

  def init(self, rng: jax.Array, num_samples: int) -> Any:
    """Initial parameters from a `(1, num_samples)` dummy input."""
    k_params, k_drop = jax.random.split(rng)
    dummy = jnp.zeros((1, num_samples), jnp.float32)
    variables = self.model.init(
      {'params': k_params, 'dropout': k_drop}, dummy, train=False
    )
    extra = sorted(set(variables) - {'params'})
    if extra:
      logging.warning('Ignoring non-parameter collections %s.', extra)
    return variables['params']

  def apply(
    self,
    params: Any,
    inputs: jax.Array,
    *,
    train: bool,
    rng: jax.Array | None = None,
  ) -> dict[str, jax.Array]:
    """Runs the model on `inputs` `(B, T)`; returns its output dict."""
    rngs = {'dropout': rng} if rng is not None else None
    params = self.param_transform(params)  # SEOFP hook (identity when off).
    outputs = self.model.apply(
      {'params': params}, inputs, train=train, rngs=rngs
    )
    if not isinstance(outputs, dict) or self.output_key not in outputs:
      raise TypeError(
        f'A {self.name} model must return a dict with '
        f'{self.output_key!r}; {type(self.model).__name__} returned '
        f'{type(outputs).__name__} '
        f'{sorted(outputs) if isinstance(outputs, dict) else ""}.'
      )
    return outputs

  def loss(
    self, outputs: dict[str, jax.Array], batch: dict[str, jax.Array]
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Scalar loss and metrics from the model module's `loss_fn`."""
    outputs = jax.tree.map(_to_float32, outputs)
    loss, metrics = self.model_module.loss_fn(outputs, batch, self.loss_config)
    return jnp.asarray(loss, jnp.float32), dict(metrics or {})

  def estimate(self, outputs: dict[str, jax.Array]) -> jax.Array:
    """Returns the model's signal estimates as float32."""
    return outputs[self.output_key].astype(jnp.float32)


def _to_float32(x: Any) -> Any:
  if hasattr(x, 'dtype') and jnp.issubdtype(x.dtype, jnp.floating):
    return x.astype(jnp.float32)
  return x


def model_config_for(config: ml_collections.ConfigDict) -> Any:
  """A copy of `config.model` with `dtype` set from the compute dtype.

  `config.train.compute_dtype` is the one switch; a recipe that also sets
  `model.dtype` must agree with it.
  """
  dtype = config.train.get('compute_dtype', 'float32')
  if dtype not in COMPUTE_DTYPES:
    raise ValueError(
      f'config.train.compute_dtype={dtype!r}; choose one of {COMPUTE_DTYPES}.'
    )
  model_config = ml_collections.ConfigDict(config.model.to_dict())
  own = model_config.get('dtype')
  if own not in (None, 'float32', dtype):
    raise ValueError(
      f'config.model.dtype={own!r} disagrees with '
      f'config.train.compute_dtype={dtype!r}; set only the latter.'
    )
  model_config.dtype = dtype
  return model_config


def create_task(config: ml_collections.ConfigDict) -> Task:
  """Builds the task, model and loss described by `config`."""
  if config.task not in LAYOUTS:
    raise ValueError(
      f'Unknown config.task {config.task!r}; choose one of {sorted(LAYOUTS)}.'
    )
  model_config = model_config_for(config)
  module = models.get_model_module(model_config.name)
  return Task(
    name=config.task,
    model=module.from_config(model_config),
    model_module=module,
    loss_config=config.loss,
    sample_rate=int(config.data.sample_rate),
    param_transform=param_transform(config),
  )


def param_transform(config: ml_collections.ConfigDict) -> Callable[[Any], Any]:
  """SEOFP fake quantisation from `config.quant` (identity when off).

  Training sees quantised weights in the forward pass with a straight-through
  gradient to the float32 masters; evaluation and inference see the same
  quantised weights.
  """
  quant = config.get('quant')
  if quant is None or not quant.get('enabled', False):
    return _identity_default
  from s4jax.quant import rules  # pylint: disable=g-import-not-at-top

  return rules.make_fake_quant(quant)


def init_samples(config: ml_collections.ConfigDict) -> int:
  """Length of the dummy input used to create parameters."""
  seconds = config.data.segment_seconds or 1.0
  return int(round(seconds * config.data.sample_rate))
