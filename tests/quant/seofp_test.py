"""Tests for s4jax.quant.seofp against a float64 NumPy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.quant import seofp

ROUNDINGS = seofp.ROUNDINGS


def _np_quantize(
  w, k, rounding, granularity='tensor', axis=-1, max_exponent=None
):
  """Reference SEOFP quantiser written with frexp/ldexp in float64."""
  w64 = np.asarray(w, np.float64)
  a = np.abs(w64)
  mant, e = np.frexp(np.where(np.isfinite(a), a, 1.0))  # a = mant 2^e.
  sig, p = 2.0 * mant, e - 1  # a = sig 2^p, sig in [1, 2).
  if rounding == 'nearest_linear':
    p = p + (sig >= 1.5)
  elif rounding == 'nearest_log':
    p = p + (sig > np.sqrt(2.0))
  big_e = np.minimum(p + 127, 254)
  big_e = np.where(np.isinf(a), 254, big_e)
  big_e = np.where(a < 2.0**-126, 0, big_e)
  if granularity == 'channel' and w64.ndim >= 2:
    reduce = tuple(i for i in range(w64.ndim) if i != axis % w64.ndim)
  else:
    reduce = tuple(range(w64.ndim))
  if max_exponent is None:
    finite_e = np.where(np.isfinite(w64), big_e, 0)
    hi = finite_e.max(axis=reduce, keepdims=True)
  else:
    hi = np.expand_dims(np.asarray(max_exponent), reduce)
  lo = np.maximum(hi - (2**k - 2), 1)
  big_e = np.where(big_e < lo, 0, np.minimum(big_e, hi))
  mag = np.where(big_e > 0, np.ldexp(1.0, big_e - 127), 0.0)
  out = np.copysign(mag, w64)
  return np.where(np.isnan(w64), np.nan, out).astype(np.float32)


def _bits(x):
  return np.asarray(x, np.float32).view(np.uint32)


def _wide_weights(rng, shape, spread=40):
  """Normal weights times 2^U(-spread, 4): many octaves, both signs."""
  scale = np.exp2(rng.uniform(-spread, 4, size=shape))
  return (rng.normal(size=shape) * scale).astype(np.float32)


def _edge_values():
  f32 = np.float32
  pows = np.ldexp(f32(1), np.arange(-126, 128)).astype(f32)
  ties = (pows[:-1] * f32(1.5)).astype(f32)
  below = np.nextafter(ties, f32(0))
  root2 = (pows[:-1].astype(np.float64) * np.sqrt(2.0)).astype(f32)
  near_root2 = np.concatenate(
    [
      np.nextafter(root2, f32(0)),
      root2,
      np.nextafter(root2, f32(np.inf)),
    ]
  )
  tiny = np.array([0.0, -0.0, 1e-45, -3e-39, 1.1754942e-38, 1.1754944e-38], f32)
  huge = np.array([3.4028235e38, -3.4028235e38, 2.0**127 * 1.5], f32)
  v = np.concatenate([pows, ties, below, near_root2, tiny, huge])
  return np.concatenate([v, -v]).astype(f32)


@pytest.mark.parametrize('rounding', ROUNDINGS)
@pytest.mark.parametrize('k', [1, 3, 5, 8])
def test_matches_float64_reference(rounding, k):
  rng = np.random.default_rng(k)
  w = _wide_weights(rng, (96, 48))
  got = seofp.quantize(w, k, rounding)
  want = _np_quantize(w, k, rounding)
  np.testing.assert_array_equal(
    _bits(got), _bits(want), err_msg=f'{rounding}, k={k}: bits differ'
  )


@pytest.mark.parametrize('rounding', ROUNDINGS)
def test_edge_values_match_reference(rounding):
  v = _edge_values()
  for k in (8, 5):
    got = _bits(seofp.quantize(v, k, rounding))
    want = _bits(_np_quantize(v, k, rounding))
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (
      f'{rounding} k={k}: inputs {v[bad[:5]]} gave {got[bad[:5]]}, '
      f'reference {want[bad[:5]]}'
    )


def test_rounding_thresholds_closed_form():
  one_half = np.float32(1.5)
  below_half = np.nextafter(one_half, np.float32(0))
  below_r2 = np.float32(np.sqrt(2.0))  # Nearest float32 is below sqrt(2).
  r2 = np.nextafter(below_r2, np.float32(np.inf))
  assert float(below_r2) < np.sqrt(2.0) < float(r2)
  v = np.array([one_half, below_half, r2, below_r2], np.float32)
  expect = {
    'truncate': [1, 1, 1, 1],
    'nearest_linear': [2, 1, 1, 1],
    'nearest_log': [2, 2, 2, 1],
  }
  for rounding, want in expect.items():
    got = np.asarray(seofp.quantize(v, 8, rounding))
    np.testing.assert_array_equal(got, np.float32(want), err_msg=rounding)


@pytest.mark.parametrize('granularity', ['tensor', 'channel'])
@pytest.mark.parametrize('rounding', ROUNDINGS)
@pytest.mark.parametrize('k', [2, 5, 8])
def test_values_are_signed_powers_of_two_in_window(granularity, rounding, k):
  rng = np.random.default_rng(3)
  w = _wide_weights(rng, (3, 40, 24))
  q = np.asarray(seofp.quantize(w, k, rounding, granularity))
  b = _bits(q)
  assert np.all(b & 0x007FFFFF == 0), 'fraction bits must all be zero'
  nonzero = q != 0
  assert np.all(np.signbit(q) == np.signbit(w)), 'sign must be kept'
  e = ((b >> 23) & 0xFF).astype(np.int64)
  axes = (0, 1) if granularity == 'channel' else (0, 1, 2)
  hi = np.where(nonzero, e, 0).max(axis=axes, keepdims=True)
  lo = np.where(nonzero, e, 999).min(axis=axes, keepdims=True)
  assert np.all(hi - lo <= 2**k - 2), (
    f'exponent span {np.max(hi - lo)} exceeds the {2**k - 1}-value window'
  )
  # The window's top is the largest rounded exponent of the input.
  top = np.asarray(
    seofp.window_top(w, seofp.QuantConfig(k, rounding, granularity))
  )
  np.testing.assert_array_equal(hi.reshape(top.shape), top)


@pytest.mark.parametrize('granularity', ['tensor', 'channel'])
@pytest.mark.parametrize('rounding', ROUNDINGS)
@pytest.mark.parametrize('k', [1, 4, 5, 8])
def test_idempotent(granularity, rounding, k):
  w = _wide_weights(np.random.default_rng(k), (50, 20))
  once = seofp.quantize(w, k, rounding, granularity)
  twice = seofp.quantize(once, k, rounding, granularity)
  np.testing.assert_array_equal(_bits(twice), _bits(once))


@pytest.mark.parametrize('rounding', ROUNDINGS)
def test_per_channel_matches_reference(rounding):
  rng = np.random.default_rng(5)
  w = _wide_weights(rng, (4, 30, 16)) * np.exp2(
    rng.integers(-30, 30, size=16)
  ).astype(np.float32)
  for axis in (-1, 0):
    got = seofp.quantize(w, 5, rounding, 'channel', axis)
    want = _np_quantize(w, 5, rounding, 'channel', axis)
    np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=str(axis))


def test_fixed_window_saturates_and_flushes():
  w = np.array([0.75, -3.0, 100.0, 2.0**-10, -(2.0**-12)], np.float32)
  top = 1 + 127  # Largest magnitude 2^1.
  got = seofp.quantize(w, 3, 'truncate', max_exponent=np.int32(top))
  # Window: 2^-5 .. 2^1 (7 exponents); 100 saturates to 2, small ones flush.
  want = np.array([0.5, -2.0, 2.0, 0.0, -0.0], np.float32)
  np.testing.assert_array_equal(_bits(got), _bits(want))
  ref = _np_quantize(w, 3, 'truncate', max_exponent=top)
  np.testing.assert_array_equal(_bits(got), _bits(ref))


def test_eight_bits_is_plain_fraction_drop_for_normals():
  w = _wide_weights(np.random.default_rng(9), (1000,), spread=200)
  w = w[np.abs(w) >= 2.0**-126]
  got = _bits(seofp.quantize(w, 8, 'truncate'))
  np.testing.assert_array_equal(got, _bits(w) & np.uint32(0xFF800000))


def test_special_values():
  w = np.array([np.nan, np.inf, -np.inf, 1.0, -0.0, 1e-40], np.float32)
  q = np.asarray(seofp.quantize(w, 5, 'nearest_log'))
  assert np.isnan(q[0]), f'NaN must stay NaN, got {q[0]}'
  np.testing.assert_array_equal(q[1:], [1.0, -1.0, 1.0, -0.0, 0.0])
  assert np.signbit(q[4]), 'signed zero must keep its sign'


def test_all_zero_tensor():
  q = seofp.quantize(np.zeros((3, 4), np.float32), 5)
  np.testing.assert_array_equal(np.asarray(q), 0.0)


def test_jit_matches_eager():
  w = _wide_weights(np.random.default_rng(1), (30, 7))
  fn = jax.jit(lambda x: seofp.quantize(x, 5, 'nearest_log', 'channel'))
  np.testing.assert_array_equal(
    _bits(fn(w)), _bits(seofp.quantize(w, 5, 'nearest_log', 'channel'))
  )


def test_encode_decode_round_trip():
  w = _wide_weights(np.random.default_rng(2), (20, 6))
  for cfg in (
    seofp.QuantConfig(5, 'nearest_linear', 'channel'),
    seofp.QuantConfig(1, 'truncate'),
    seofp.QuantConfig(8, 'nearest_log'),
  ):
    sign, code, lo = seofp.encode(w, cfg)
    assert int(np.max(code)) <= 2**cfg.exponent_bits - 1
    assert lo.shape == seofp.window_shape(w.shape, cfg)
    back = seofp.decode(sign, code, lo, cfg)
    np.testing.assert_array_equal(_bits(back), _bits(cfg.quantize(w)))


def test_ste_gradient_is_identity():
  w = _wide_weights(np.random.default_rng(4), (64, 8))
  c = np.random.default_rng(5).normal(size=w.shape).astype(np.float32)

  def loss(x):
    return jnp.sum(seofp.fake_quant(x, 5, 'nearest_log') * c)

  g = jax.jit(jax.grad(loss))(w)
  np.testing.assert_array_equal(np.asarray(g), c)
  fwd = seofp.fake_quant(w, 5, 'nearest_log')
  np.testing.assert_array_equal(
    _bits(fwd), _bits(seofp.quantize(w, 5, 'nearest_log'))
  )


def test_ste_range_mask_zeroes_flushed_weights():
  w = np.array([1.0, 2.0**-40, 0.0, -0.75, 2.0**-3], np.float32)
  c = np.arange(1, 6, dtype=np.float32)
  g = jax.grad(lambda x: jnp.sum(seofp.fake_quant(x, 2, ste_mask='range') * c))(
    w
  )
  # k=2: window 2^-2 .. 2^0; 2^-40 and 0 flush, 2^-3 flushes.
  np.testing.assert_array_equal(np.asarray(g), [1.0, 0.0, 0.0, 4.0, 0.0])
  g_none = jax.grad(lambda x: jnp.sum(seofp.fake_quant(x, 2) * c))(w)
  np.testing.assert_array_equal(np.asarray(g_none), c)


def test_ste_saturate_mask_with_fixed_window():
  w = np.array([4.0, 0.5, 2.0**-20, -9.0], np.float32)
  c = np.ones(4, np.float32)
  top = np.int32(127 + 1)

  def loss(x, mask):
    q = seofp.fake_quant(x, 3, ste_mask=mask, max_exponent=top)
    return jnp.sum(q * c)

  sat = jax.grad(loss)(w, 'saturate')
  np.testing.assert_array_equal(np.asarray(sat), [0.0, 1.0, 1.0, 0.0])
  rng_mask = jax.grad(loss)(w, 'range')
  np.testing.assert_array_equal(np.asarray(rng_mask), [0.0, 1.0, 0.0, 0.0])


def test_quantize_has_zero_gradient():
  g = jax.grad(lambda x: jnp.sum(seofp.quantize(x, 5)))(np.ones(3, np.float32))
  np.testing.assert_array_equal(np.asarray(g), 0.0)


@pytest.mark.parametrize(
  'kwargs, match',
  [
    (dict(exponent_bits=0), 'exponent_bits'),
    (dict(exponent_bits=9), 'exponent_bits'),
    (dict(exponent_bits=5.0), 'exponent_bits'),
    (dict(rounding='round'), 'rounding'),
    (dict(granularity='row'), 'granularity'),
    (dict(ste_mask='clip'), 'ste_mask'),
  ],
)
def test_bad_options(kwargs, match):
  with pytest.raises(ValueError, match=match):
    seofp.QuantConfig(**kwargs)


def test_bad_inputs():
  with pytest.raises(TypeError, match='float32'):
    seofp.quantize(jnp.ones(3, jnp.bfloat16))
  with pytest.raises(TypeError, match='float32'):
    seofp.quantize(np.arange(3))
  with pytest.raises(ValueError, match='channel_axis'):
    seofp.quantize(
      np.ones((2, 3), np.float32), granularity='channel', channel_axis=2
    )
  with pytest.raises(ValueError, match='max_exponent has shape'):
    seofp.quantize(np.ones((2, 3), np.float32), max_exponent=np.ones(3))
