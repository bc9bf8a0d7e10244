"""Packed SEOFP export: 1 + k bits per weight, exact round trip, size report.

`pack(params, rules)` turns a nested-dict parameter tree (Linen
`variables['params']`) into a flat, serialisable dict:

  {'format': 'seofp', 'version': 1,
   'tensors': {'a/Dense_0/kernel': entry, ...}}

A quantised entry holds the shape, the quantiser options, `min_exponent`
(uint8, one per tensor or per channel: the biased exponent of code 1) and
`data`, a uint8 bit stream of `sign << k | code` words of `1 + k` bits each,
most significant bit first. Any other leaf is stored as it is. `unpack` gives
back exactly `quantize_params(params, rules)`, bit for bit (signed zeros
included). `to_bytes` / `from_bytes` serialise with msgpack; the library does
no file I/O, so write the bytes wherever you like.

Size accounting (`size_report`): the payload is the bit streams, the
`min_exponent` bytes and the float leaves at their own size; the baseline is
every floating parameter in float32. At k = 5 a large tensor costs 6/32 of its
float32 size (81.25 % smaller), at k = 8 9/32 (71.875 % smaller), plus one
byte per window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import serialization

from s4jax.quant import rules as rules_lib
from s4jax.quant import seofp

__all__ = [
  'FORMAT',
  'VERSION',
  'format_size_report',
  'from_bytes',
  'pack',
  'pack_tensor',
  'packed_nbytes',
  'payload_nbytes',
  'size_report',
  'to_bytes',
  'unpack',
  'unpack_tensor',
]

FORMAT = 'seofp'
VERSION = 1


def _flatten(tree: Any, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
  """Flat {'a/b/c': leaf} view of a nested dict tree."""
  if not isinstance(tree, Mapping):
    raise TypeError(
      f'pack expects nested dicts of arrays (Flax params); found '
      f'{type(tree).__name__} at {"/".join(prefix) or "the root"!r}.'
    )
  out = {}
  for key, value in tree.items():
    key = str(key)
    if '/' in key:
      raise ValueError(f'Parameter key {key!r} contains "/"; cannot pack.')
    if isinstance(value, Mapping):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out['/'.join(prefix + (key,))] = value
  return out


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    *parents, name = path.split('/')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[name] = value
  return tree


def packed_nbytes(num_weights: int, exponent_bits: int) -> int:
  """Bytes of the bit stream for `num_weights` weights."""
  return -(-num_weights * (1 + exponent_bits) // 8)


def _pack_bits(words: np.ndarray, width: int) -> np.ndarray:
  """uint8 bit stream of `width`-bit words, MSB first."""
  shifts = np.arange(width - 1, -1, -1, dtype=np.uint16)
  bits = (words.astype(np.uint16)[:, None] >> shifts) & 1
  return np.packbits(bits.astype(np.uint8).ravel())


def _unpack_bits(data: np.ndarray, count: int, width: int) -> np.ndarray:
  bits = np.unpackbits(data, count=count * width).reshape(count, width)
  weights = (1 << np.arange(width - 1, -1, -1)).astype(np.uint16)
  return bits.astype(np.uint16) @ weights


def pack_tensor(w: Any, cfg: seofp.QuantConfig) -> dict[str, Any]:
  """Packs one float32 tensor; raises on NaN/inf (they have no code)."""
  w = np.asarray(w)
  if w.dtype != np.float32:
    raise TypeError(f'pack_tensor needs float32, got {w.dtype}.')
  if not np.all(np.isfinite(w)):
    raise ValueError('Cannot pack a tensor with NaN or inf weights.')
  sign, code, lo = jax.device_get(seofp.encode(w, cfg))
  words = (sign.ravel().astype(np.uint16) << cfg.exponent_bits) | code.ravel()
  axis = cfg.channel_axis % w.ndim if w.ndim else 0
  return {
    'kind': 'seofp',
    'shape': list(w.shape),
    'exponent_bits': cfg.exponent_bits,
    'rounding': cfg.rounding,  # Provenance only; decoding does not need it.
    'granularity': cfg.granularity,
    'channel_axis': axis,
    'min_exponent': np.asarray(lo, np.uint8),
    'data': _pack_bits(words, cfg.bits_per_weight),
  }


def _entry_config(path: str, entry: Mapping[str, Any]) -> seofp.QuantConfig:
  try:
    return seofp.QuantConfig(
      exponent_bits=int(entry['exponent_bits']),
      granularity=str(entry['granularity']),
      channel_axis=int(entry['channel_axis']),
    )
  except (KeyError, ValueError) as e:
    raise ValueError(f'Corrupt packed tensor {path!r}: {e}') from e


def unpack_tensor(entry: Mapping[str, Any], path: str = '?') -> np.ndarray:
  """Rebuilds the float32 tensor of a `pack_tensor` entry."""
  cfg = _entry_config(path, entry)
  shape = tuple(int(n) for n in entry['shape'])
  count = int(np.prod(shape, dtype=np.int64))
  data = np.asarray(entry['data'], np.uint8).ravel()
  expected = packed_nbytes(count, cfg.exponent_bits)
  if data.size != expected:
    raise ValueError(
      f'Corrupt packed tensor {path!r}: {data.size} data bytes, expected '
      f'{expected} for shape {shape} at {cfg.bits_per_weight} bits/weight.'
    )
  lo = np.asarray(entry['min_exponent'], np.uint8)
  if lo.shape != seofp.window_shape(shape, cfg):
    raise ValueError(
      f'Corrupt packed tensor {path!r}: min_exponent shape {lo.shape}, '
      f'expected {seofp.window_shape(shape, cfg)}.'
    )
  words = _unpack_bits(data, count, cfg.bits_per_weight)
  sign = (words >> cfg.exponent_bits).reshape(shape)
  code = (words & ((1 << cfg.exponent_bits) - 1)).reshape(shape)
  return np.asarray(seofp.decode(sign, code, lo, cfg))


def pack(params: Any, rules: rules_lib.QuantRules) -> dict[str, Any]:
  """Packs the leaves `rules` select; keeps the others as they are.

  Args:
    params: nested dicts of arrays (Linen `variables['params']`).
    rules: `rules.QuantRules`.

  Returns:
    The packed dict described in the module docstring (numpy arrays).
  """
  flat = _flatten(params)
  tensors = {}
  for path, leaf in flat.items():
    chosen = rules_lib.is_float_leaf(leaf) and rules.is_selected(path)
    if chosen:
      rules_lib.check_dtype(path, leaf)
      try:
        tensors[path] = pack_tensor(leaf, rules.quant)
      except ValueError as e:
        raise ValueError(f'Parameter {path!r}: {e}') from e
    else:
      tensors[path] = {'kind': 'array', 'array': np.asarray(leaf)}
  return {'format': FORMAT, 'version': VERSION, 'tensors': tensors}


def unpack(packed: Mapping[str, Any]) -> dict[str, Any]:
  """Nested dict of numpy arrays equal, bit for bit, to the quantised params.

  Raises:
    ValueError: if `packed` is not a version-1 SEOFP pack or is corrupt.
  """
  if not isinstance(packed, Mapping) or packed.get('format') != FORMAT:
    raise ValueError('Not a packed SEOFP parameter set (format != "seofp").')
  if packed.get('version') != VERSION:
    raise ValueError(
      f'Packed SEOFP version {packed.get("version")!r} is not supported '
      f'(this library reads version {VERSION}).'
    )
  flat = {}
  for path, entry in packed['tensors'].items():
    kind = entry.get('kind') if isinstance(entry, Mapping) else None
    if kind == 'seofp':
      flat[path] = unpack_tensor(entry, path)
    elif kind == 'array':
      flat[path] = np.asarray(entry['array'])
    else:
      raise ValueError(f'Corrupt packed tensor {path!r}: kind {kind!r}.')
  return _unflatten(flat)


def to_bytes(packed: Mapping[str, Any]) -> bytes:
  """Msgpack serialisation of a `pack` result."""
  return serialization.msgpack_serialize(dict(packed))


def from_bytes(blob: bytes) -> dict[str, Any]:
  """Inverse of `to_bytes` (feed the result to `unpack`)."""
  try:
    packed = serialization.msgpack_restore(blob)
  except Exception as e:  # msgpack raises several unrelated types.
    raise ValueError(f'Not a packed SEOFP parameter blob: {e}') from e
  if not isinstance(packed, dict) or packed.get('format') != FORMAT:
    raise ValueError('Not a packed SEOFP parameter blob (format missing).')
  return packed


def payload_nbytes(packed: Mapping[str, Any]) -> int:
  """Bytes of weights actually stored in a `pack` result (no metadata)."""
  total = 0
  for entry in packed['tensors'].values():
    if entry['kind'] == 'seofp':
      total += entry['data'].nbytes + entry['min_exponent'].nbytes
    else:
      total += np.asarray(entry['array']).nbytes
  return total


def size_report(params: Any, rules: rules_lib.QuantRules) -> dict[str, Any]:
  """Float32 size, packed size and reduction of `pack(params, rules)`.

  Args:
    params: parameter pytree; only shapes and dtypes are read, so
      `jax.eval_shape(model.init, ...)` output works without allocating.
    rules: `rules.QuantRules`.

  Returns:
    A dict with `exponent_bits`, `bits_per_weight`, `num_params`,
    `num_quantized`, `float32_bytes` (every floating parameter in float32
    plus non-floating leaves as stored), `packed_bytes`, `reduction`
    (fraction, `1 - packed / float32`), `quantized` (the same three figures
    over the quantised tensors only) and `kept_in_float` (rows with `path`,
    `shape`, `bytes`, `reason`).
  """
  cfg = rules.quant
  total = dict(float32=0, packed=0)
  quant = dict(float32=0, packed=0, count=0)
  num_params, kept = 0, []
  for keypath, leaf in jax.tree_util.tree_leaves_with_path(params):
    shape = tuple(getattr(leaf, 'shape', np.shape(leaf)))
    path, size = rules_lib.path_str(keypath), math.prod(shape)
    is_float = rules_lib.is_float_leaf(leaf)
    nbytes = size * np.dtype(getattr(leaf, 'dtype', np.float32)).itemsize
    base = 4 * size if is_float else nbytes
    num_params += size
    total['float32'] += base
    chosen, reason = rules.decision(path) if is_float else (False, 'not float')
    if chosen:
      windows = int(np.prod(seofp.window_shape(shape, cfg), dtype=np.int64))
      packed = packed_nbytes(size, cfg.exponent_bits) + windows
      quant['float32'] += base
      quant['packed'] += packed
      quant['count'] += size
      total['packed'] += packed
    else:
      total['packed'] += nbytes
      kept.append(
        dict(
          path=path, shape=tuple(np.shape(leaf)), bytes=nbytes, reason=reason
        )
      )
  return {
    'exponent_bits': cfg.exponent_bits,
    'bits_per_weight': cfg.bits_per_weight,
    'num_params': num_params,
    'num_quantized': quant['count'],
    'float32_bytes': total['float32'],
    'packed_bytes': total['packed'],
    'reduction': _reduction(total['packed'], total['float32']),
    'quantized': {
      'float32_bytes': quant['float32'],
      'packed_bytes': quant['packed'],
      'reduction': _reduction(quant['packed'], quant['float32']),
    },
    'kept_in_float': kept,
  }


def _reduction(packed: int, base: int) -> float:
  return 1.0 - packed / base if base else 0.0


def format_size_report(report: Mapping[str, Any]) -> str:
  """Plain-text table of a `size_report`."""
  q = report['quantized']
  lines = [
    f'SEOFP sign + {report["exponent_bits"]}-bit exponent '
    f'({report["bits_per_weight"]} bits per quantised weight)',
    f'{"":<22}{"float32 B":>14}{"packed B":>14}{"reduction":>11}',
    f'{"quantised tensors":<22}{q["float32_bytes"]:>14,}'
    f'{q["packed_bytes"]:>14,}{100 * q["reduction"]:>10.3f}%',
    f'{"whole model":<22}{report["float32_bytes"]:>14,}'
    f'{report["packed_bytes"]:>14,}{100 * report["reduction"]:>10.3f}%',
    f'{report["num_quantized"]:,} of {report["num_params"]:,} parameters '
    f'quantised; kept as stored ({len(report["kept_in_float"])} tensors):',
  ]
  for row in report['kept_in_float']:
    lines.append(
      f'  {row["path"]:<44} {str(row["shape"]):<16} '
      f'{row["bytes"]:>10,} B  {row["reason"]}'
    )
  return '\n'.join(lines)
