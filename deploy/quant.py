"""SEOFP weights inside an exported graph: int8 codes, exact decoding.

SEOFP-NET (Lin et al., TASLP 2022) keeps only the sign and a k-bit exponent
of each weight. An exported file stores each quantised tensor as int8
`q = +-code` (`code` 0 = zero, else the biased float32 exponent
`code + min_exponent - 1`, `s4jax.quant.seofp.encode`) plus its window's
`min_exponent`, a quarter of the float32 bytes. The graph rebuilds the
weights with integer arithmetic and a lookup in a table of the 254 float32
powers of two, so every runtime decodes them exactly (no `pow`/`exp`, whose
rounding differs between runtimes); onnxruntime folds the decoding into
constants when the session loads.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from s4jax.quant import rules as rules_lib
from s4jax.quant import seofp

# 2^(e - 127) for biased exponents e = 1..254, and 0 at index 0.
_POWERS = np.concatenate(
  [[0.0], 2.0 ** (np.arange(1, 255, dtype=np.float64) - 127)]
).astype(np.float32)


def encode_params(params: Any, rules: rules_lib.QuantRules) -> dict[str, Any]:
  """Flat `{path: leaf or (q int8, min_exponent int32, cfg)}` of `params`.

  Args:
    params: nested dicts of float32 arrays.
    rules: which leaves to quantise and how (`s4jax.quant.rules`).

  Returns:
    Per '/'-joined path: the leaf itself (not quantised) or a tuple of the
    signed codes (int8, shape of the leaf), the window minimum (int32,
    `seofp.window_shape`) and the `QuantConfig`.
  """
  out = {}
  for path, leaf in traverse_util.flatten_dict(params, sep='/').items():
    if not (rules_lib.is_float_leaf(leaf) and rules.is_selected(path)):
      out[path] = np.asarray(leaf)
      continue
    rules_lib.check_dtype(path, leaf)
    sign, code, lo = (np.asarray(a) for a in seofp.encode(leaf, rules.quant))
    q = np.where(sign > 0, -code.astype(np.int16), code).astype(np.int8)
    out[path] = (q, lo.astype(np.int32), rules.quant)
  return out


def _expand(lo: jnp.ndarray, ndim: int, cfg: seofp.QuantConfig):
  """The window minimum broadcast against a tensor of `ndim` dimensions."""
  if cfg.granularity == 'tensor' or ndim < 2:
    return lo.reshape((1,) * ndim)
  axis = cfg.channel_axis % ndim
  shape = [1] * ndim
  shape[axis] = -1
  return lo.reshape(shape)


def decode_params(encoded: dict[str, Any]) -> dict[str, Any]:
  """Nested params rebuilt from `encode_params` with jnp integer ops.

  Traced inside an exported function, the int8 codes become the graph's
  constants and the decoding its (constant-folded) operations.
  """
  table = jnp.asarray(_POWERS)
  flat = {}
  for path, entry in encoded.items():
    if not isinstance(entry, tuple):
      flat[path] = jnp.asarray(entry)
      continue
    q, lo, cfg = entry
    q = jnp.asarray(q).astype(jnp.int32)
    code = jnp.abs(q)
    lo = _expand(jnp.asarray(lo), q.ndim, cfg)
    index = jnp.where(code > 0, code + lo - 1, 0)
    flat[path] = jnp.where(q < 0, -1.0, 1.0) * table[index]
  return traverse_util.unflatten_dict(flat, sep='/')


def stored_bytes(encoded: dict[str, Any]) -> tuple[int, int]:
  """`(bytes as exported, bytes in float32)` of the parameters."""
  ours = full = 0
  for entry in encoded.values():
    if isinstance(entry, tuple):
      ours += entry[0].nbytes + entry[1].nbytes
      full += entry[0].size * 4
    else:
      ours += entry.nbytes
      full += entry.nbytes
  return ours, full
