"""Tests for s4jax.quant.packing: bit-exact round trip and size figures."""

import jax
import numpy as np
import pytest

from s4jax.quant import packing, rules, seofp


def _params(rng):
  wide = lambda *s: (  # noqa: E731
    rng.normal(size=s) * np.exp2(rng.uniform(-40, 3, size=s))
  ).astype(np.float32)
  return {
    'enc': {
      'Dense_0': {'kernel': wide(33, 17), 'bias': wide(17)},
      'Conv_0': {'kernel': wide(1, 17, 9), 'bias': wide(9)},
    },
    'LayerNorm_0': {'scale': np.ones(9, np.float32)},
    'head': {'kernel': wide(9, 3)},
    'act': {'negative_slope': np.float32(0.3)},
    'count': np.arange(3, dtype=np.int32),
  }


def _bits_tree(tree):
  return jax.tree.map(lambda a: np.asarray(a).tobytes(), tree)


@pytest.mark.parametrize('k', [1, 5, 8])
@pytest.mark.parametrize('granularity', ['tensor', 'channel'])
def test_round_trip_bit_exact(k, granularity):
  params = _params(np.random.default_rng(k))
  cfg = seofp.QuantConfig(k, 'nearest_log', granularity)
  r = rules.QuantRules(
    quant=cfg, include=('kernel$', 'negative_slope'), include_bias=True
  )
  back = packing.unpack(packing.pack(params, r))
  want = rules.quantize_params(params, r)
  assert _bits_tree(back) == _bits_tree(want), 'unpack(pack(p)) != quantize'
  assert back['count'].dtype == np.int32
  assert back['act']['negative_slope'] == 0.25, 'scalar leaf'


def test_signed_zeros_survive():
  w = np.array([[1.0, -(2.0**-60), 2.0**-70, -0.0]], np.float32)
  r = rules.QuantRules(include=('.*',))
  back = packing.unpack(packing.pack({'w': w}, r))['w']
  np.testing.assert_array_equal(
    back.view(np.uint32), [[0x3F800000, 2**31, 0, 2**31]]
  )


def test_bytes_round_trip():
  params = _params(np.random.default_rng(0))
  r = rules.QuantRules()
  packed = packing.pack(params, r)
  blob = packing.to_bytes(packed)
  back = packing.unpack(packing.from_bytes(blob))
  assert _bits_tree(back) == _bits_tree(rules.quantize_params(params, r))


def test_bit_stream_layout():
  # Two 6-bit words: +2^0 (code 31 at the top of the window) and -2^-1.
  w = np.array([1.0, -0.5], np.float32)
  entry = packing.pack_tensor(w, seofp.QuantConfig(5))
  assert int(entry['min_exponent']) == 127 - 30
  # Words 0b0_11111 and 0b1_11110, MSB first: 011111 111110 (+4 pad bits).
  np.testing.assert_array_equal(entry['data'], [0b01111111, 0b11100000])


@pytest.mark.parametrize('k, bits', [(5, 6), (8, 9)])
def test_size_report_figures(k, bits):
  rng = np.random.default_rng(1)
  params = {
    'Dense_0': {
      'kernel': rng.normal(size=(256, 128)).astype(np.float32),
      'bias': np.zeros(128, np.float32),
    },
    'Conv_0': {'kernel': rng.normal(size=(1, 128, 64)).astype(np.float32)},
  }
  r = rules.QuantRules(quant=seofp.QuantConfig(k))
  report = packing.size_report(params, r)
  n_q = 256 * 128 + 128 * 64
  assert report['num_quantized'] == n_q
  assert report['bits_per_weight'] == bits
  q = report['quantized']
  assert q['float32_bytes'] == 4 * n_q
  assert q['packed_bytes'] == n_q * bits // 8 + 2  # One window byte each.
  # Without the two window bytes the reduction is exactly 1 - bits/32.
  exact = 1 - (q['packed_bytes'] - 2) / q['float32_bytes']
  assert exact == 1 - bits / 32, f'{exact} != {1 - bits / 32}'
  assert abs(q['reduction'] - (1 - bits / 32)) < 2e-5
  assert report['float32_bytes'] == 4 * (n_q + 128)
  assert report['packed_bytes'] == q['packed_bytes'] + 4 * 128
  assert [row['path'] for row in report['kept_in_float']] == ['Dense_0/bias']
  packed = packing.pack(params, r)
  assert packing.payload_nbytes(packed) == report['packed_bytes']
  table = packing.format_size_report(report)
  assert f'{100 * q["reduction"]:.3f}%' in table and 'Dense_0/bias' in table


def test_per_channel_window_bytes():
  w = np.random.default_rng(2).normal(size=(40, 24)).astype(np.float32)
  r = rules.QuantRules(
    quant=seofp.QuantConfig(5, granularity='channel'), include=('.*',)
  )
  report = packing.size_report({'w': w}, r)
  assert report['packed_bytes'] == 40 * 24 * 6 // 8 + 24
  assert (
    packing.payload_nbytes(packing.pack({'w': w}, r))
    == (report['packed_bytes'])
  )


def test_nonfinite_bad_tree_corrupt_data_and_bad_version_raise():
  r = rules.QuantRules(include=('.*',))
  with pytest.raises(ValueError, match="'w'.*NaN or inf"):
    packing.pack({'w': np.array([1.0, np.nan], np.float32)}, r)
  with pytest.raises(TypeError, match='nested dicts'):
    packing.pack([np.ones(2, np.float32)], r)
  packed = packing.pack({'w': np.ones((4, 4), np.float32)}, r)
  packed['tensors']['w']['data'] = packed['tensors']['w']['data'][:-1]
  with pytest.raises(ValueError, match="Corrupt packed tensor 'w'"):
    packing.unpack(packed)
  with pytest.raises(ValueError, match='version'):
    packing.unpack({'format': 'seofp', 'version': 99, 'tensors': {}})
  with pytest.raises(ValueError, match='Not a packed SEOFP'):
    packing.from_bytes(b'\x00garbage')


def test_size_report_from_shapes_only():
  params = _params(np.random.default_rng(3))
  r = rules.QuantRules()
  shapes = jax.tree.map(
    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params
  )
  assert packing.size_report(shapes, r) == packing.size_report(params, r)
