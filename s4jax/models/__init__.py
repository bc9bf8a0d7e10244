"""Model modules and the one way `config.model` becomes a Flax module.

`config.model.name` selects a model module (`get_model_module`):

* a short name such as `'spiking_s4'` or `'s4m'` imports `s4jax.models.<name>`;
* a dotted name such as `'s4jax.training.testing'` imports that module as is
  (tests and out-of-tree models use this).

A model module provides:

* `from_config(model_config) -> flax.linen.Module`;
* `loss_fn(outputs: dict, batch: dict, loss_config) -> (loss, metrics dict)`.

Configuration (flax-imagenet style). A module's settings are its Linen
attributes, each declared once, in the module that uses it. A sub-module the
model builds several times is an attribute holding its constructor (a
`ModuleDef`: the class, or `module_def(cls, **settings)`), e.g. Spiking-S4's
`neuron` and `block`, S4M's `block`. `config.model` mirrors that tree: a flat
key sets an attribute, a nested ConfigDict sets the attributes of that
sub-module's constructor. `build(cls, model_config)` makes the module and
rejects (ValueError, naming it and the known keys) any key that nothing
reads; every model's `from_config` uses it. Attributes a parent passes to
its sub-modules itself (no default in the sub-module, or named in `fixed`)
are not settings.

`upgrade_model_config` turns the flat `config.model` of older versions
(e.g. `config.json` files of earlier runs) into this nested layout.

Call conventions of the modules:

* enhancement: `model.apply(variables, noisy (B, T), train=bool, rngs=...)`
  returns a dict with at least `'estimate'` `(B, T)`;
* separation: `model.apply(variables, mixture (B, T), train=..., rngs=...)`
  returns a dict with at least `'estimates'` `(B, S, T)`.

Precision: `model_config.dtype` (`'float32'` or `'bfloat16'`; a dtype name,
also the module attribute) is the compute dtype of dense and convolution
layers; parameters stay float32 and the SSM kernels and FFTs stay
float32/complex64. The training code writes it from
`config.train.compute_dtype` (see `s4jax.training.tasks.model_config_for`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
  'Builder',
  'LEGACY_KEYS',
  'ModuleDef',
  'build',
  'compute_dtype',
  'config_group',
  'configure',
  'get_model_module',
  'module_class',
  'module_def',
  'settings_of',
  'settings_tree',
  'upgrade_model_config',
]

ModuleDef = Any  # A Linen module class, or a `functools.partial` of one.
Builder = Callable[[Mapping[str, Any], str], ModuleDef]

_REQUIRED = ('from_config', 'loss_fn')
_RESERVED = ('parent', 'name')


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
  path = name if '.' in name else f'{__name__}.{name}'
  try:
    module = importlib.import_module(path)
  except ModuleNotFoundError as e:
    if e.name != path and not path.startswith(f'{e.name}.'):
      raise  # A dependency of the model module is missing: show it as is.
    raise ValueError(
      f'Unknown model {name!r}: no module {path}. Known short names are '
      'the modules in s4jax/models (e.g. spiking_s4, s4m).'
    ) from e
  missing = [a for a in _REQUIRED if not hasattr(module, a)]
  if missing:
    raise ValueError(
      f'Model module {module.__name__} (model {name!r}) lacks {missing}; '
      'a model module must define from_config(model_config) and '
      'loss_fn(outputs, batch, loss_config).'
    )
  return module


def compute_dtype(dtype: Any, allowed: Iterable[str]) -> jnp.dtype:
  """The `jnp.dtype` of a model's `dtype` attribute, checked.

  Args:
    dtype: a dtype name such as 'float32' (the convention of configs and
      module attributes) or anything else `jnp.dtype` accepts.
    allowed: the names the model supports.

  Raises:
    ValueError: an unsupported dtype, or 'float64' without jax_enable_x64.
  """
  try:
    out = jnp.dtype(dtype)
  except TypeError:
    out = None
  allowed = tuple(allowed)
  if out is None or out.name not in allowed:
    raise ValueError(f'Unknown dtype {dtype!r}; choose one of {allowed}.')
  if out == jnp.float64 and jax.dtypes.canonicalize_dtype(out) != out:
    raise ValueError("dtype='float64' needs jax_enable_x64.")
  return out


# Module constructors ----------------------------------------------------------


class _ModuleDef(functools.partial):
  """A `functools.partial` of a module class, equal by value (hashable).

  Linen modules compare and hash by their attributes; a constructor held as
  an attribute must too, so that two models built from equal configs are
  equal (and `jit` caches keyed on them hit). Two constructors are equal
  when they make the same class with the same settings, whether a setting
  is bound or left at its default.
  """

  def _key(self):
    return (self.func, tuple(sorted(settings_of(self).items())))

  def __eq__(self, other):
    if not isinstance(other, _ModuleDef):
      return NotImplemented
    return self._key() == other._key()

  def __hash__(self):
    return hash(self._key())

  def __repr__(self):
    kwargs = ', '.join(f'{k}={v!r}' for k, v in self.keywords.items())
    return f'module_def({self.func.__name__}{", " if kwargs else ""}{kwargs})'


def module_class(factory: ModuleDef) -> type:
  """The module class behind a class or a (nested) partial of one."""
  while isinstance(factory, functools.partial):
    factory = factory.func
  return factory


def _bound(factory: ModuleDef) -> dict[str, Any]:
  """The keywords a (nested) partial binds, outermost last."""
  if not isinstance(factory, functools.partial):
    return {}
  if factory.args:
    raise ValueError(f'{factory!r}: bind module settings by keyword.')
  return {**_bound(factory.func), **factory.keywords}


def module_def(factory: ModuleDef, **settings) -> ModuleDef:
  """`factory` with `settings` bound (over those it binds already).

  Returns:
    A partial of the module class, comparing and hashing by value.
  """
  return _ModuleDef(module_class(factory), **{**_bound(factory), **settings})


def _fields(cls: type) -> list[dataclasses.Field]:
  return [
    f for f in dataclasses.fields(cls) if f.init and f.name not in _RESERVED
  ]


def settings_of(factory: ModuleDef) -> dict[str, Any]:
  """Every attribute value `factory` gives: class defaults, then bound ones.

  Attributes without a default (set by the parent module) are left out
  unless bound.
  """
  out = {}
  for f in _fields(module_class(factory)):
    if f.default is not dataclasses.MISSING:
      out[f.name] = f.default
    elif f.default_factory is not dataclasses.MISSING:
      out[f.name] = f.default_factory()
  out.update(_bound(factory))
  return out


def _is_module_def(value: Any) -> bool:
  cls = module_class(value)
  return isinstance(cls, type) and issubclass(cls, nn.Module)


def config_group(config: Any, where: str) -> dict[str, Any]:
  """A config group (ConfigDict or mapping) as a new dict; else ValueError."""
  if hasattr(config, 'to_dict'):
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise ValueError(
      f'{where} must be a config group (ConfigDict or dict), got '
      f'{type(config).__name__} {config!r}.'
    )
  return dict(config)


def configure(
  factory: ModuleDef,
  config: Mapping[str, Any],
  where: str,
  *,
  fixed: Iterable[str] = (),
  extra: Iterable[str] = (),
  children: Mapping[str, Builder] | None = None,
) -> ModuleDef:
  """`factory` with the settings in `config` bound, every key checked.

  Args:
    factory: a module class or a partial of one (`module_def`).
    config: `{attribute: value}`; the value of an attribute that holds a
      module constructor (e.g. `block`) is a nested group, configured
      recursively starting from the attribute's current value.
    where: the config path of `config`, for messages
      (e.g. 'config.model.block').
    fixed: attributes the parent module sets itself, not settings.
    extra: keys the caller has taken out of `config` and reads itself
      (listed among the known keys in messages).
    children: custom builders `(group, where) -> ModuleDef` for attributes
      holding module constructors (default: `configure` of the current
      value).

  Returns:
    A `module_def` of the class with the settings bound.

  Raises:
    ValueError: for a key that is not a setting; it names the key and lists
      the known ones.
  """
  children = dict(children or {})
  current = settings_of(factory)
  fixed = set(fixed)
  known = {
    f.name
    for f in _fields(module_class(factory))
    if f.name not in fixed and f.name in current
  }
  known |= set(children) | set(extra)
  values = config_group(config, where)
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(
      f'Unknown config key {where}.{unknown[0]}'
      + (f' (and {unknown[1:]})' if len(unknown) > 1 else '')
      + f'; known keys of {where}: {sorted(known)}.'
      + _legacy_hint(unknown)
    )
  bound = {}
  for key, value in values.items():
    path = f'{where}.{key}'
    if key in children:
      bound[key] = children[key](value, path)
    elif _is_module_def(current[key]):
      bound[key] = configure(current[key], value, path)
    else:
      bound[key] = value
  return module_def(factory, **bound)


def build(
  factory: ModuleDef,
  model_config: Any,
  *,
  children: Mapping[str, Builder] | None = None,
):
  """The module `factory` describes, set up from `config.model`.

  Args:
    factory: the model class (or a preset partial of it).
    model_config: `config.model` (ConfigDict or nested dict); its `name`
      selects the model module and is not passed on.
    children: as in `configure`.

  Returns:
    The Linen module (unbound).

  Raises:
    ValueError: for a key that nothing reads (named, with the known ones).
  """
  values = config_group(model_config, 'config.model')
  values.pop('name', None)
  return configure(factory, values, 'config.model', children=children)()


def settings_tree(factory: ModuleDef) -> dict[str, Any]:
  """`settings_of(factory)` with sub-module constructors as nested dicts.

  This is the `config.model` layout `build` reads (without `name`): recipes
  start from it, so every default is declared once, in its module.
  """
  return {
    key: settings_tree(value) if _is_module_def(value) else value
    for key, value in settings_of(factory).items()
  }


# Older config layouts ---------------------------------------------------------

# Flat `config.model` keys of older versions: old key -> path in the nested
# layout (None: dropped, the setting no longer exists).
LEGACY_KEYS: dict[str, dict[str, str | None]] = {
  'spiking_s4': {
    'spiking': 'neuron.spiking',
    'neuron_mode': 'neuron.mode',
    'init_tau': 'neuron.init_tau',
    'v_th': 'neuron.v_th',
    'v_reset': 'neuron.v_reset',
    'reset': 'neuron.reset',
    'detach_reset': 'neuron.detach_reset',
    'surrogate': 'neuron.surrogate',
    'surrogate_alpha': 'neuron.alpha',
    'scan_unroll': 'neuron.unroll',
    'd_state': 'block.d_state',
    'emission': 'block.emission',
    'dropout': 'block.dropout',
    'dt_min': 'block.dt_min',
    'dt_max': 'block.dt_max',
    'fft_friendly': None,  # fft_conv picks a fast FFT size itself.
  },
  's4m': {
    key: f'block.{key}'
    for key in (
      'hidden',
      'depth',
      'ssm',
      'd_state',
      'ff_expand',
      'reconstruction_s4',
      'topdown_quirk',
      'dropout',
    )
  },
}


def _legacy_hint(keys: Iterable[str]) -> str:
  old = {k for table in LEGACY_KEYS.values() for k in table}
  if not set(keys) & old:
    return ''
  return (
    ' This looks like the flat config.model of an older version; '
    's4jax.models.upgrade_model_config converts it to the nested layout.'
  )


def upgrade_model_config(model_config: Mapping[str, Any]) -> dict[str, Any]:
  """The nested `config.model` for a flat one written by an older version.

  Moves each old flat key of the model named by `name` to its place in the
  nested layout (`LEGACY_KEYS`; e.g. Spiking-S4's `neuron_mode` becomes
  `neuron.mode`, S4M's `hidden` becomes `block.hidden`) and drops removed
  settings. A nested config, or one of a model without older layouts, comes
  back unchanged (as a new dict); the input is not modified.

  Args:
    model_config: `config.model` as a dict or ConfigDict.

  Returns:
    A new nested dict.

  Raises:
    ValueError: an old key and its new place both given with different
      values.
  """
  out = copy.deepcopy(config_group(model_config, 'config.model'))
  name = str(out.get('name', '')).removeprefix(f'{__name__}.')
  table = LEGACY_KEYS.get(name, {})
  for old, new in table.items():
    if old not in out or isinstance(out[old], Mapping):
      continue
    value = out.pop(old)
    if new is None:
      continue
    group, _, key = new.partition('.')
    sub = out.setdefault(group, {})
    if key in sub and sub[key] != value:
      raise ValueError(
        f'config.model has both the old key {old}={value!r} and '
        f'{new}={sub[key]!r}; keep one.'
      )
    sub[key] = value
  return out
