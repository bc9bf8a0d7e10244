"""Model size and cost: parameters per module, MACs traced from shapes.

`trace_macs` counts multiply-accumulates of any Linen model by intercepting
its layer calls during `jax.eval_shape` (nothing is computed, so a 30 s clip
costs nothing), with the fvcore conventions the papers' figures use (one MAC
per multiply-add, biases and elementwise ops free):

| layer                        | MACs                                        |
|------------------------------|---------------------------------------------|
| `nn.Dense`, `nn.DenseGeneral`| rows * in_features * out_features           |
| `nn.Conv`                    | output positions * kernel * in/groups * out |
| `nn.ConvTranspose`           | input positions * kernel * in * out         |
| `nn.LayerNorm`/`nn.GroupNorm`| 5 per element (4 without scale and bias)    |
| a module with `macs(x, out)` | what that method returns                    |

A custom layer (e.g. `s4m_blocks.DepthwiseConv1d`) is counted by giving it a
`macs(self, x, out) -> int` method. FFTs, S4 kernel generation and other
`jnp` code inside custom modules are not counted; a model that knows better
adds analytic terms on top (`energy.count_macs`, `s4m.count_macs`).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

__all__ = [
  'HasMacsRule',
  'count_params',
  'flat_shapes',
  'param_differences',
  'params_by_module',
  'trace_macs',
]


@runtime_checkable
class HasMacsRule(Protocol):
  """A custom layer that states its own MACs for `trace_macs`."""

  def macs(self, x: Any, out: Any) -> int:
    """MACs of one call with input `x` and output `out` (shapes suffice)."""
    ...


def _path(context: Any) -> str:
  return '/'.join(str(p) for p in context.module.path) or '<root>'


def _norm_macs(mod: nn.Module, x: Any) -> int:
  affine = getattr(mod, 'use_scale', True) or getattr(mod, 'use_bias', True)
  return (5 if affine else 4) * math.prod(x.shape)


def _layer_macs(mod: nn.Module, x: Any, out: Any) -> int | None:
  """MACs of one call of a known layer type, else None."""
  if isinstance(mod, HasMacsRule):
    return mod.macs(x, out)
  if isinstance(mod, nn.Dense):
    return math.prod(x.shape[:-1]) * x.shape[-1] * mod.features
  if isinstance(mod, nn.DenseGeneral):
    axes = mod.axis if isinstance(mod.axis, tuple) else (mod.axis,)
    axes = tuple(a % x.ndim for a in axes)
    contract = math.prod(x.shape[a] for a in axes)
    feats = mod.features if isinstance(mod.features, tuple) else (mod.features,)
    return (
      math.prod(out.shape) // math.prod(feats) * contract * math.prod(feats)
    )
  if isinstance(mod, nn.ConvTranspose):
    kernel = math.prod(mod.kernel_size)
    return math.prod(x.shape[:-1]) * kernel * x.shape[-1] * mod.features
  if isinstance(mod, nn.Conv):
    kernel = math.prod(mod.kernel_size)
    per = kernel * (x.shape[-1] // mod.feature_group_count) * mod.features
    return math.prod(out.shape[:-1]) * per
  if isinstance(mod, (nn.LayerNorm, nn.GroupNorm)):
    return _norm_macs(mod, x)
  return None


def trace_macs(
  model: nn.Module,
  variables: Any,
  *args: Any,
  bucket: Callable[[nn.Module, str], str | None] | None = None,
  **kwargs: Any,
) -> dict[str, int]:
  """MACs per module path of `model.apply(variables, *args, **kwargs)`.

  Only shapes are traced (`jax.eval_shape`): a 30 s clip costs nothing.

  Args:
    model: a Linen module.
    variables: its variables (arrays or `jax.ShapeDtypeStruct`s).
    *args: call arguments (arrays or shape structs).
    bucket: optional `bucket(layer, path) -> name or None`: counts are
      summed per returned name instead of per module path; None skips the
      layer.
    **kwargs: static call keyword arguments (e.g. `train=False`).

  Returns:
    `{module path or bucket: MACs}` in call order, plus `'total'`.
  """
  counts: dict[str, int] = collections.OrderedDict()

  def interceptor(next_fun, call_args, call_kwargs, context):
    out = next_fun(*call_args, **call_kwargs)
    if context.method_name == '__call__' and call_args:
      macs = _layer_macs(context.module, call_args[0], out)
      path = _path(context)
      key = path if bucket is None else bucket(context.module, path)
      if macs is not None and key is not None:
        counts[key] = counts.get(key, 0) + int(macs)
    return out

  def run(variables, args):
    with nn.intercept_methods(interceptor):
      return model.apply(variables, *args, **kwargs)

  jax.eval_shape(run, variables, args)
  counts['total'] = sum(counts.values())
  return dict(counts)


def params_by_module(params: Any, depth: int = 1) -> dict[str, int]:
  """Parameter counts grouped by the first `depth` levels of their path."""
  out: dict[str, int] = collections.OrderedDict()
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  for path, leaf in flat:
    keys = [str(getattr(k, 'key', getattr(k, 'name', k))) for k in path]
    name = (
      '/'.join(keys[:depth])
      if len(keys) > depth
      else '/'.join(keys[:-1]) or keys[-1]
    )
    out[name] = out.get(name, 0) + int(np.prod(np.shape(leaf)))
  return dict(out)


def count_params(params: Any) -> int:
  """Number of scalar parameters."""
  return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(params)))


_MAX_LISTED = 8  # Differences listed per kind in a mismatch message.


def flat_shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """`{'a/b/kernel': (shape, dtype name)}` of a nested dict tree."""
  flat = traverse_util.flatten_dict(tree, sep='/')
  return {str(k): _describe(v) for k, v in flat.items()}


def _describe(leaf: Any) -> tuple[tuple[int, ...], str]:
  dtype = leaf.dtype if hasattr(leaf, 'dtype') else np.asarray(leaf).dtype
  return tuple(np.shape(leaf)), np.dtype(dtype).name


def param_differences(
  got: Any, want: Any, got_name: str = 'the file'
) -> list[str]:
  """How tree `got` differs from `want` (paths, shapes, dtypes); [] if not.

  `got_name` names where `got` came from in the messages.
  """
  got, want = flat_shapes(got), flat_shapes(want)
  out = []

  def listed(kind: str, items: list[str]) -> None:
    if items:
      more = len(items) - _MAX_LISTED
      text = '; '.join(items[:_MAX_LISTED]) + (
        f'; {more} more' if more > 0 else ''
      )
      out.append(f'{len(items)} {kind}: {text}')

  listed(
    f'missing from {got_name}',
    [f'{p} {want[p][0]}' for p in sorted(set(want) - set(got))],
  )
  listed(
    'not in the model',
    [f'{p} {got[p][0]}' for p in sorted(set(got) - set(want))],
  )
  listed(
    'of another shape or dtype',
    [
      f'{p} is {got[p][0]} {got[p][1]}, the model wants {want[p][0]} '
      f'{want[p][1]}'
      for p in sorted(set(got) & set(want))
      if got[p] != want[p]
    ],
  )
  return out
