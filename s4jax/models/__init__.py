"""Model registry: `create_model(model_config)` builds a Flax Linen module.

`model_config.name` selects a model module, imported lazily:

* a short name such as `'spiking_s4'` or `'s4m'` imports `s4jax.models.<name>`;
* a dotted name such as `'s4jax.training.testing'` imports that module as is
  (tests and out-of-tree models use this);
* `register_model(name, module)` adds a module object under a short name.

A model module provides:

* `from_config(model_config) -> flax.linen.Module`;
* `loss_fn(outputs: dict, batch: dict, loss_config) -> (loss, metrics dict)`.

Call conventions of the modules it builds:

* enhancement: `model.apply(variables, noisy (B, T), train=bool, rngs=...)`
  returns a dict with at least `'estimate'` `(B, T)`;
* separation: `model.apply(variables, mixture (B, T), train=..., rngs=...)`
  returns a dict with at least `'estimates'` `(B, S, T)`.

Precision: `model_config.dtype` (`'float32'` or `'bfloat16'`) is the compute
dtype of dense and convolution layers; parameters stay float32 and the SSM
kernels and FFTs stay float32/complex64. The training code writes it from
`config.train.compute_dtype` (see `s4jax.training.tasks.model_config_for`).
"""

from __future__ import annotations

import importlib
import types
from typing import Any

_REGISTRY: dict[str, types.ModuleType] = {}
_REQUIRED = ('from_config', 'loss_fn')


def register_model(name: str, module: types.ModuleType) -> None:
  """Registers `module` (with `from_config` and `loss_fn`) under `name`."""
  _check_module(name, module)
  _REGISTRY[name] = module


def get_model_module(name: str) -> types.ModuleType:
  """Returns the Python module that builds the model named `name`.

  Raises:
    ValueError: if `name` is empty, cannot be imported or lacks the API.
  """
  if not name:
    raise ValueError(
      'config.model.name is empty; set it to a model such as spiking_s4 '
      'or s4m (or a dotted module path).'
    )
  if name in _REGISTRY:
    return _REGISTRY[name]
  path = name if '.' in name else f'{__name__}.{name}'
  try:
    module = importlib.import_module(path)
  except ModuleNotFoundError as e:
    if e.name != path and not path.startswith(f'{e.name}.'):
      raise  # A dependency of the model module is missing: show it as is.
    raise ValueError(
      f'Unknown model {name!r}: no module {path}. Known short names are '
      f'the modules in s4jax/models (e.g. spiking_s4, s4m) and '
      f'{sorted(_REGISTRY)}.'
    ) from e
  _check_module(name, module)
  return module


def create_model(model_config: Any):
  """Builds the Linen module described by `model_config` (has `.name`)."""
  return get_model_module(model_config.name).from_config(model_config)


def _check_module(name: str, module: types.ModuleType) -> None:
  missing = [a for a in _REQUIRED if not hasattr(module, a)]
  if missing:
    raise ValueError(
      f'Model module {module.__name__} (model {name!r}) lacks {missing}; '
      'a model module must define from_config(model_config) and '
      'loss_fn(outputs, batch, loss_config).'
    )
