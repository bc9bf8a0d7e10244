"""Which parameters SEOFP quantises: rules on '/'-joined parameter paths.

A parameter's path joins its pytree keys with '/', relative to what is passed
in: for Linen `params = variables['params']` a Dense kernel is
`'encoder/Dense_0/kernel'`. Each floating leaf falls in one category, checked
in this order:

  norm    a module on the path matches `norm_pattern` (LayerNorm_0, gln, ...)
  ssm     the leaf name matches `ssm_pattern` (log_dt, log_A_real, A_imag, B,
          P, C, D of `s4jax.layers.s4`, and common S4/S5 spellings)
  bias    the leaf is named 'bias'
  weight  everything else (kernels, embeddings, PReLU slopes, ...)

A leaf is quantised when no `exclude` regex matches its path and: for norm,
ssm and bias leaves, the matching `include_*` flag is on; for weight leaves,
an `include` regex matches (default: leaves named 'kernel', i.e. Dense and
Conv kernels). Regexes use `re.search`. Non-floating leaves are never touched.

Defaults quantise Dense/Conv kernels only: biases and norm parameters are few
and the integer-add path never multiplies by them, and the SSM parameters set
the kernel's time constants (dt, A) and the output mix (C, D), where rounding
to powers of two changes the dynamics rather than one weight's gain.

Training applies the transform inside the loss, so gradients reach the
float32 master weights through the straight-through estimator:

  fake_quant = rules.make_fake_quant(config.quant)   # identity when disabled
  loss = loss_fn(fake_quant(params), batch)
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from s4jax.quant import seofp

__all__ = [
  'CATEGORIES',
  'DEFAULT_INCLUDE',
  'DEFAULT_NORM_PATTERN',
  'DEFAULT_SSM_PATTERN',
  'QuantRules',
  'check_dtype',
  'describe',
  'fake_quant_params',
  'from_config',
  'is_float_leaf',
  'make_fake_quant',
  'path_str',
  'quantize_params',
  'selection',
]

DEFAULT_INCLUDE = (r'(^|/)kernel$',)
DEFAULT_NORM_PATTERN = r'(?i)(norm|^g?ln(_?\d+)?$|^glob_?ln)'
DEFAULT_SSM_PATTERN = (
  r'^(log_dt|log_A_real|A_imag|B|P|C|D|Lambda_re|Lambda_im|log_step|A_re|A_im)$'
)
CATEGORIES = ('norm', 'ssm', 'bias', 'weight')


@dataclasses.dataclass(frozen=True)
class QuantRules:
  """Quantiser options plus the path rules (hashable).

  Attributes:
    quant: `seofp.QuantConfig` applied to every selected tensor.
    enabled: False turns every transform into the identity.
    include: regexes selecting 'weight' leaves.
    exclude: regexes that keep any matching leaf in float.
    include_bias: quantise leaves named 'bias' (outside norms).
    include_norm: quantise parameters of normalisation modules.
    include_ssm: quantise SSM parameters.
    norm_pattern: regex on module names marking normalisation modules.
    ssm_pattern: regex on leaf names marking SSM parameters.
  """

  quant: seofp.QuantConfig = seofp.QuantConfig()
  enabled: bool = True
  include: tuple[str, ...] = DEFAULT_INCLUDE
  exclude: tuple[str, ...] = ()
  include_bias: bool = False
  include_norm: bool = False
  include_ssm: bool = False
  norm_pattern: str = DEFAULT_NORM_PATTERN
  ssm_pattern: str = DEFAULT_SSM_PATTERN

  def __post_init__(self):
    for name in ('include', 'exclude'):
      value = getattr(self, name)
      if isinstance(value, str):
        value = (value,)
      object.__setattr__(self, name, tuple(value))
      for pattern in getattr(self, name):
        _compile(pattern, name)
    _compile(self.norm_pattern, 'norm_pattern')
    _compile(self.ssm_pattern, 'ssm_pattern')

  def category(self, path: str) -> str:
    """'norm', 'ssm', 'bias' or 'weight' for a '/'-joined path."""
    *modules, name = path.split('/')
    norm = _compile(self.norm_pattern, 'norm_pattern')
    if any(norm.search(m) for m in modules):
      return 'norm'
    if _compile(self.ssm_pattern, 'ssm_pattern').search(name):
      return 'ssm'
    return 'bias' if name == 'bias' else 'weight'

  def decision(self, path: str) -> tuple[bool, str]:
    """Whether a floating leaf at `path` is quantised, and why (or why not)."""
    if not self.enabled:
      return False, 'quantisation disabled'
    for pattern in self.exclude:
      if _compile(pattern, 'exclude').search(path):
        return False, f'excluded by {pattern!r}'
    cat = self.category(path)
    if cat != 'weight':
      flag = getattr(self, f'include_{cat}')
      return flag, f'{cat} ({"include" if flag else "exclude"}_{cat})'
    for pattern in self.include:
      if _compile(pattern, 'include').search(path):
        return True, f'included by {pattern!r}'
    return False, 'no include pattern matches'

  def is_selected(self, path: str) -> bool:
    """Whether a floating leaf at `path` is quantised."""
    return self.decision(path)[0]


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, field: str) -> re.Pattern:
  try:
    return re.compile(pattern)
  except re.error as e:
    raise ValueError(f'quant.{field}: bad regex {pattern!r}: {e}') from e


_FIELDS = (
  'enabled',
  'exponent_bits',
  'rounding',
  'granularity',
  'channel_axis',
  'ste_mask',
  'include',
  'exclude',
  'include_bias',
  'include_norm',
  'include_ssm',
  'norm_pattern',
  'ssm_pattern',
)
_QUANT_FIELDS = tuple(f.name for f in dataclasses.fields(seofp.QuantConfig))


def from_config(config: Mapping[str, Any] | None) -> QuantRules:
  """Builds rules from a `config.quant` block (ConfigDict or dict).

  Args:
    config: mapping with any of `enabled, exponent_bits, rounding,
      granularity, channel_axis, ste_mask, include, exclude, include_bias,
      include_norm, include_ssm, norm_pattern, ssm_pattern`; missing keys take
      the `QuantRules` defaults. None means disabled.

  Returns:
    The rules.

  Raises:
    ValueError: for an unknown key or a bad value.
  """
  if config is None:
    return QuantRules(enabled=False)
  values = dict(config.items())
  unknown = sorted(set(values) - set(_FIELDS))
  if unknown:
    raise ValueError(
      f'Unknown quant config key(s) {unknown}; known: {sorted(_FIELDS)}.'
    )
  quant = {k: values.pop(k) for k in _QUANT_FIELDS if k in values}
  return QuantRules(quant=seofp.QuantConfig(**quant), **values)


def path_str(keypath: tuple[Any, ...]) -> str:
  """'/'-joined string of a `jax.tree_util` key path."""
  parts = []
  for k in keypath:
    for attr in ('key', 'name', 'idx'):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return '/'.join(parts)


def is_float_leaf(leaf: Any) -> bool:
  """True for array leaves with a floating dtype."""
  dtype = getattr(leaf, 'dtype', None)
  return dtype is not None and jnp.issubdtype(dtype, jnp.floating)


def check_dtype(path: str, leaf: Any) -> None:
  """Raises TypeError unless a selected leaf is float32."""
  if leaf.dtype != jnp.float32:
    raise TypeError(
      f'Parameter {path!r} is {leaf.dtype}; SEOFP needs float32 master '
      'weights. Keep parameters in float32 (compute_dtype only casts '
      'activations) or exclude this path with quant.exclude.'
    )


def selection(params: Any, rules: QuantRules) -> Any:
  """Pytree of bools: True where `rules` quantise the leaf."""

  def select(keypath, leaf):
    path = path_str(keypath)
    chosen = is_float_leaf(leaf) and rules.is_selected(path)
    if chosen:
      check_dtype(path, leaf)
    return chosen

  return jax.tree_util.tree_map_with_path(select, params)


def _map_selected(fn: Callable, params: Any, rules: QuantRules) -> Any:
  chosen = selection(params, rules)
  return jax.tree.map(lambda c, p: fn(p) if c else p, chosen, params)


def quantize_params(params: Any, rules: QuantRules) -> Any:
  """Quantises the selected leaves (no gradient: for evaluation and export).

  Args:
    params: any parameter pytree (e.g. Linen `variables['params']`).
    rules: `QuantRules`.

  Returns:
    A pytree of the same structure; selected leaves are SEOFP float32 arrays,
    the others are returned unchanged.
  """
  return _map_selected(rules.quant.quantize, params, rules)


def fake_quant_params(params: Any, rules: QuantRules) -> Any:
  """`quantize_params` with a straight-through gradient to the masters.

  Call it inside the loss function on the float32 master parameters; the
  forward pass sees quantised weights, the gradient flows to the masters as
  the identity (masked per `rules.quant.ste_mask`).
  """
  return _map_selected(rules.quant.fake_quant, params, rules)


def make_fake_quant(config: Mapping[str, Any] | None) -> Callable[[Any], Any]:
  """Returns `params -> fake_quant_params(params, rules)` for `config.quant`.

  Args:
    config: the `config.quant` block (or None).

  Returns:
    A jittable function; the identity when quantisation is disabled.
  """
  rules = from_config(config)
  if not rules.enabled:
    return lambda params: params
  return functools.partial(fake_quant_params, rules=rules)


def describe(params: Any, rules: QuantRules) -> list[dict[str, Any]]:
  """One row per floating leaf: path, shape, category, quantised, reason."""
  rows = []
  for keypath, leaf in jax.tree_util.tree_leaves_with_path(params):
    if not is_float_leaf(leaf):
      continue
    path = path_str(keypath)
    chosen, reason = rules.decision(path)
    rows.append(
      dict(
        path=path,
        shape=tuple(leaf.shape),
        dtype=str(leaf.dtype),
        category=rules.category(path),
        quantized=chosen,
        reason=reason,
      )
    )
  return rows
