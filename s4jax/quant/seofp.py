"""Sign-exponent-only floating point (SEOFP) weight quantisation.

SEOFP-NET (Lin, Yu, Hsu, Fu, Tsao, Kuo, IEEE/ACM TASLP 30, 2022,
arXiv 2111.04436) drops the 23 fraction bits of every float32 weight, so a
weight becomes a signed power of two `(-1)^s 2^e`, and keeps only the sign and
a short exponent field. Only the paper's abstract is available to us; the
choices below fill in what it does not say and each one is an option.

Format (per tensor, or per output channel):
  * `exponent_bits = k` (1..8) gives `2^k` codes per weight: code 0 is a
    signed zero and codes `1 .. 2^k - 1` are the `2^k - 1` consecutive
    exponents ending at the largest exponent the (rounded) tensor uses. So the
    range is anchored at the top: the largest weights are kept exactly and
    weights whose rounded exponent falls below the window flush to a signed
    zero. With a caller-supplied `max_exponent` weights above the window
    saturate to `+-2^max`. At `k = 8` the window (255 exponents) covers every
    normal float32, so nothing flushes or saturates.
  * Stored size: 1 sign bit + k exponent bits per weight plus one byte per
    tensor (or per channel) for the window (`s4jax.quant.packing`).

Rounding to a power of two, on the magnitude `|w| = 1.f * 2^e`:
  * 'truncate': drop the fraction, `2^e` (round toward zero); the default,
    the literal reading of "the fraction bits are dropped".
  * 'nearest_linear': `2^(e+1)` when `1.f >= 1.5` (nearest in value; the tie
    at exactly 1.5 rounds up).
  * 'nearest_log': `2^(e+1)` when `1.f > sqrt(2)` (nearest in log2; no ties,
    sqrt(2) is irrational).
All three are one integer add on the bit pattern followed by a mask, done
through `jax.lax.bitcast_convert_type`.

Conventions for values the format cannot hold: subnormal inputs
(`|w| < 2^-126`) become signed zeros; `+-inf` saturates to the top of the
window; rounding up past `2^127` saturates to `2^127`; NaN stays NaN (and is
ignored when the window is chosen).

Training: `fake_quant` uses the quantised weights in the forward pass and
passes the gradient straight through to the float32 master weights
(`jax.custom_vjp`), optionally zeroed where the weight saturated ('saturate')
or where it saturated or flushed to zero ('range').
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
  'ABS_MASK',
  'EXP_MASK',
  'FRACTION_BITS',
  'GRANULARITIES',
  'MAX_EXPONENT_FIELD',
  'MIN_NORMAL_BITS',
  'QuantConfig',
  'ROUNDINGS',
  'SIGN_MASK',
  'STE_MASKS',
  'decode',
  'encode',
  'fake_quant',
  'is_seofp',
  'quantize',
  'rounded_exponent',
  'window_shape',
  'window_top',
]

ROUNDINGS = ('truncate', 'nearest_linear', 'nearest_log')
GRANULARITIES = ('tensor', 'channel')
STE_MASKS = ('none', 'saturate', 'range')

# float32 bit fields.
SIGN_MASK = np.uint32(0x80000000)
ABS_MASK = np.uint32(0x7FFFFFFF)
EXP_MASK = np.uint32(0x7F800000)
FRACTION_BITS = 23
MIN_NORMAL_BITS = np.uint32(0x00800000)
MAX_EXPONENT_FIELD = 254  # Largest finite biased exponent (2^127).

# Smallest 24-bit significand `2^23 + f` with `(2^23 + f) / 2^23 > sqrt(2)`:
# `(2^23 + f)^2 > 2^47`, i.e. `2^23 + f = isqrt(2^47) + 1` (2^47 is not a
# square).
_SQRT2_SIGNIFICAND = math.isqrt(2**47) + 1
# Added to `|bits|` before the fraction is masked off; a carry into the
# exponent field is the round-up.
_INCREMENT = {
  'truncate': 0,
  'nearest_linear': 1 << (FRACTION_BITS - 1),
  'nearest_log': (1 << (FRACTION_BITS + 1)) - _SQRT2_SIGNIFICAND,
}


@dataclasses.dataclass(frozen=True)
class QuantConfig:
  """Options of the SEOFP quantiser (hashable: usable as a static argument).

  Attributes:
    exponent_bits: exponent field width k, 1..8; a weight costs 1 + k bits.
    rounding: 'truncate', 'nearest_linear' or 'nearest_log'.
    granularity: 'tensor' (one exponent window per tensor) or 'channel' (one
      per index of `channel_axis`; tensors with fewer than 2 dimensions always
      use one window).
    channel_axis: output-channel axis for 'channel' (-1 for Flax Dense and
      Conv kernels).
    ste_mask: gradient of `fake_quant`: 'none' (identity), 'saturate' (zero
      where the weight saturated above the window) or 'range' (zero where it
      saturated or flushed to zero; flushed weights then stop moving).
  """

  exponent_bits: int = 5
  rounding: str = 'truncate'
  granularity: str = 'tensor'
  channel_axis: int = -1
  ste_mask: str = 'none'

  def __post_init__(self):
    bits = self.exponent_bits
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
      raise ValueError(f'exponent_bits must be an int in 1..8, got {bits!r}.')
    if not 1 <= bits <= 8:
      raise ValueError(
        f'exponent_bits must be in 1..8 (float32 has an 8-bit exponent), '
        f'got {bits}.'
      )
    _check_choice('rounding', self.rounding, ROUNDINGS)
    _check_choice('granularity', self.granularity, GRANULARITIES)
    _check_choice('ste_mask', self.ste_mask, STE_MASKS)
    if not isinstance(self.channel_axis, (int, np.integer)):
      raise ValueError(
        f'channel_axis must be an int, got {self.channel_axis!r}'
      )

  @property
  def bits_per_weight(self) -> int:
    """Sign plus exponent bits."""
    return 1 + self.exponent_bits

  @property
  def window(self) -> int:
    """Number of non-zero exponents a weight can take (`2^k - 1`)."""
    return 2**self.exponent_bits - 1

  def quantize(
    self, w: jax.Array, max_exponent: jax.Array | None = None
  ) -> jax.Array:
    """`quantize(w, ...)` with these options."""
    return _quantize(_as_float32(w), self, max_exponent)

  def fake_quant(
    self, w: jax.Array, max_exponent: jax.Array | None = None
  ) -> jax.Array:
    """`fake_quant(w, ...)` with these options."""
    return _fake_quant(_as_float32(w), max_exponent, self)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f'{name} must be one of {choices}, got {value!r}.')


def _as_float32(w) -> jax.Array:
  w = jnp.asarray(w)
  if w.dtype != jnp.float32:
    raise TypeError(
      f'SEOFP quantisation works on float32 weights, got {w.dtype}. Keep '
      'master weights in float32 (cast with .astype(jnp.float32)).'
    )
  return w


def _reduce_axes(ndim: int, cfg: QuantConfig) -> tuple[int, ...]:
  """Axes one exponent window spans."""
  if cfg.granularity == 'tensor' or ndim < 2:
    return tuple(range(ndim))
  if not -ndim <= cfg.channel_axis < ndim:
    raise ValueError(
      f'channel_axis {cfg.channel_axis} is out of range for a {ndim}-d tensor.'
    )
  axis = cfg.channel_axis % ndim
  return tuple(a for a in range(ndim) if a != axis)


def window_shape(shape: tuple[int, ...], cfg: QuantConfig) -> tuple[int, ...]:
  """Shape of the per-window arrays (`()` per tensor, `(C,)` per channel)."""
  axes = _reduce_axes(len(shape), cfg)
  return tuple(n for a, n in enumerate(shape) if a not in axes)


def _expand(v: jax.Array, ndim: int, cfg: QuantConfig) -> jax.Array:
  """Broadcasts a `window_shape` array against the tensor."""
  return jnp.expand_dims(v, _reduce_axes(ndim, cfg))


def rounded_exponent(w: jax.Array, rounding: str) -> tuple[jax.Array, ...]:
  """Rounds every element to a power of two, range unbounded.

  Args:
    w: float32 array, any shape.
    rounding: one of `ROUNDINGS`.

  Returns:
    `(sign, e)`: the sign bits (uint32, `0` or `0x80000000`) and the biased
    exponent (int32) of the rounded magnitude: 0 for zero and subnormal
    inputs, 1..254 otherwise (inf and overflow saturate to 254). NaN gives 254.
  """
  _check_choice('rounding', rounding, ROUNDINGS)
  bits = lax.bitcast_convert_type(w, jnp.uint32)
  mag = bits & ABS_MASK
  e = ((mag + np.uint32(_INCREMENT[rounding])) >> FRACTION_BITS).astype(
    jnp.int32
  )
  e = jnp.where(mag < MIN_NORMAL_BITS, 0, jnp.minimum(e, MAX_EXPONENT_FIELD))
  return bits & SIGN_MASK, e


def _finite(w: jax.Array) -> jax.Array:
  bits = lax.bitcast_convert_type(w, jnp.uint32)
  return (bits & ABS_MASK) < EXP_MASK


def _is_nan(w: jax.Array) -> jax.Array:
  bits = lax.bitcast_convert_type(w, jnp.uint32)
  return (bits & ABS_MASK) > EXP_MASK


def _window(w, e, cfg, max_exponent) -> tuple[jax.Array, jax.Array]:
  """Lowest and highest biased exponent of each window, broadcastable."""
  if max_exponent is None:
    finite_e = jnp.where(_finite(w), e, 0)
    hi = jnp.max(finite_e, axis=_reduce_axes(w.ndim, cfg), keepdims=True)
  else:
    hi = jnp.asarray(max_exponent, jnp.int32)
    expected = window_shape(w.shape, cfg)
    if hi.shape != expected:
      raise ValueError(
        f'max_exponent has shape {hi.shape}; a {cfg.granularity} window for '
        f'a tensor of shape {w.shape} needs shape {expected}.'
      )
    hi = _expand(jnp.clip(hi, 0, MAX_EXPONENT_FIELD), w.ndim, cfg)
  lo = jnp.maximum(hi - (cfg.window - 1), 1)
  return lo, hi


def window_top(w: jax.Array, cfg: QuantConfig) -> jax.Array:
  """Top of the exponent window `quantize` would choose.

  Args:
    w: float32 array.
    cfg: quantiser options.

  Returns:
    int32 biased exponents (`e + 127` of the largest rounded finite
    magnitude; 0 for an all-zero window), shape `window_shape(w.shape, cfg)`.
  """
  w = _as_float32(w)
  _, e = rounded_exponent(w, cfg.rounding)
  finite_e = jnp.where(_finite(w), e, 0)
  return jnp.max(finite_e, axis=_reduce_axes(w.ndim, cfg))


def _fields(w, cfg, max_exponent):
  """Sign bits, rounded exponent, windowed exponent and the window."""
  sign, e = rounded_exponent(w, cfg.rounding)
  lo, hi = _window(w, e, cfg, max_exponent)
  return sign, e, jnp.where(e < lo, 0, jnp.minimum(e, hi)), lo, hi


@functools.partial(jax.jit, static_argnums=(1,))
def _encode(w, cfg, max_exponent):
  sign, _, e, lo, _ = _fields(w, cfg, max_exponent)
  code = jnp.where(e > 0, e - lo + 1, 0).astype(jnp.uint8)
  sign = (sign >> 31).astype(jnp.uint8)
  axes = _reduce_axes(w.ndim, cfg)
  return sign, code, jnp.squeeze(lo, axes).astype(jnp.uint8)


def encode(
  w: jax.Array, cfg: QuantConfig, max_exponent: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Splits `w` into SEOFP fields (the inverse of `decode`).

  Args:
    w: float32 array; NaN gives an unspecified code (`pack` rejects it).
    cfg: quantiser options.
    max_exponent: optional top of the window (biased, `window_shape`);
      default: the largest rounded exponent in each window.

  Returns:
    `(sign, code, min_exponent)`: sign bits as uint8 0/1 and codes as uint8
    `0 .. 2^k - 1` (0 = zero), both shaped like `w`; `min_exponent` (uint8,
    `window_shape`) is the biased exponent of code 1.
  """
  return _encode(_as_float32(w), cfg, max_exponent)


@functools.partial(jax.jit, static_argnums=(3,))
def decode(
  sign: jax.Array, code: jax.Array, min_exponent: jax.Array, cfg: QuantConfig
) -> jax.Array:
  """Rebuilds the float32 weights from `encode`'s fields."""
  lo = _expand(jnp.asarray(min_exponent, jnp.uint32), code.ndim, cfg)
  code = code.astype(jnp.uint32)
  e = jnp.where(code > 0, code + lo - 1, 0)
  bits = (sign.astype(jnp.uint32) << 31) | (e << FRACTION_BITS)
  return lax.bitcast_convert_type(bits, jnp.float32)


@functools.partial(jax.jit, static_argnums=(1,))
def _quantize_with_mask(w, cfg, max_exponent):
  """Quantised weights and the straight-through gradient mask."""
  sign, e, e_q, lo, hi = _fields(w, cfg, max_exponent)
  bits = sign | (e_q.astype(jnp.uint32) << FRACTION_BITS)
  q = jnp.where(_is_nan(w), w, lax.bitcast_convert_type(bits, jnp.float32))
  saturated = (e > hi) | ~_finite(w)
  if cfg.ste_mask == 'saturate':
    mask = ~saturated
  elif cfg.ste_mask == 'range':
    mask = ~saturated & (e >= lo)
  else:
    mask = None
  return q, mask


def _quantize(w, cfg, max_exponent):
  q, _ = _quantize_with_mask(lax.stop_gradient(w), cfg, max_exponent)
  return q


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _fake_quant(w, max_exponent, cfg):
  return _quantize_with_mask(w, cfg, max_exponent)[0]


def _fake_quant_fwd(w, max_exponent, cfg):
  return _quantize_with_mask(w, cfg, max_exponent)


def _fake_quant_bwd(cfg, mask, g):
  del cfg
  if mask is not None:
    g = jnp.where(mask, g, jnp.zeros_like(g))
  return g, None


_fake_quant.defvjp(_fake_quant_fwd, _fake_quant_bwd)


def quantize(
  w: jax.Array,
  exponent_bits: int = 5,
  rounding: str = 'truncate',
  granularity: str = 'tensor',
  channel_axis: int = -1,
  *,
  max_exponent: jax.Array | None = None,
) -> jax.Array:
  """Rounds every weight to a signed power of two inside a k-bit window.

  Jittable (the options are static Python values). The gradient is zero
  (the quantiser is piecewise constant); use `fake_quant` for training.

  Args:
    w: float32 weights, any shape.
    exponent_bits: k, 1..8.
    rounding: 'truncate', 'nearest_linear' or 'nearest_log'.
    granularity: 'tensor' or 'channel'.
    channel_axis: output-channel axis for 'channel'.
    max_exponent: optional fixed top of the window as a biased exponent
      (`e + 127`), shape `()` per tensor or `(C,)` per channel; weights above
      it saturate. Default: the largest rounded exponent in the window.

  Returns:
    float32 array shaped like `w` whose elements are `+-2^e` with
    `e + 127` in `[max(top - 2^k + 2, 1), top]`, or signed zeros.
  """
  cfg = QuantConfig(exponent_bits, rounding, granularity, channel_axis)
  return cfg.quantize(w, max_exponent)


def fake_quant(
  w: jax.Array,
  exponent_bits: int = 5,
  rounding: str = 'truncate',
  granularity: str = 'tensor',
  channel_axis: int = -1,
  ste_mask: str = 'none',
  *,
  max_exponent: jax.Array | None = None,
) -> jax.Array:
  """`quantize` in the forward pass, straight-through gradient backward.

  Args:
    w: float32 master weights.
    exponent_bits: k, 1..8.
    rounding: see `quantize`.
    granularity: see `quantize`.
    channel_axis: see `quantize`.
    ste_mask: 'none' (d out / d w = identity), 'saturate' or 'range' (see
      `QuantConfig`).
    max_exponent: see `quantize` (receives no gradient).

  Returns:
    The quantised weights; their cotangent flows to `w` unchanged (or masked).
  """
  cfg = QuantConfig(
    exponent_bits, rounding, granularity, channel_axis, ste_mask
  )
  return cfg.fake_quant(w, max_exponent)


def is_seofp(w: jax.Array) -> jax.Array:
  """True where `w` is a signed zero or a normal signed power of two."""
  bits = lax.bitcast_convert_type(_as_float32(w), jnp.uint32)
  e = (bits & EXP_MASK) >> FRACTION_BITS
  no_fraction = (bits & np.uint32(0x007FFFFF)) == 0
  return no_fraction & (e < 255)
