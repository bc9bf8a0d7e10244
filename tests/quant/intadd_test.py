"""Tests for s4jax.quant.intadd: integer-add products, layers, interceptor.

References: NumPy float32 multiplication (IEEE 754, round to nearest even,
gradual underflow) and float64 sums.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.quant import intadd, rules, seofp

U32 = np.uint32


def _f32(bits):
  return np.asarray(bits, U32).view(np.float32)


def _assert_same_floats(got, want, what):
  got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
  both_nan = np.isnan(got) & np.isnan(want)
  bad = np.flatnonzero((got.view(U32) != want.view(U32)) & ~both_nan)
  assert bad.size == 0, (
    f'{what}: {bad.size} mismatches, e.g. got {got.ravel()[bad[:4]]} '
    f'({got.view(U32).ravel()[bad[:4]]}), want {want.ravel()[bad[:4]]} '
    f'({want.view(U32).ravel()[bad[:4]]})'
  )


def _seofp(rng, shape, k=5, spread=12):
  w = rng.normal(size=shape) * np.exp2(rng.uniform(-spread, 2, size=shape))
  return np.array(seofp.quantize(w.astype(np.float32), k, 'nearest_log'))


def _gamma_bound(x, w, groups=1):
  """2 gamma_n sum_i |x_i w_i| per output (two summation orders)."""
  n = w.shape[0]
  u = 2.0**-24
  gamma = n * u / (1 - n * u)
  xa = np.abs(np.asarray(x, np.float64))
  wa = np.abs(np.asarray(w, np.float64))
  if groups == 1:
    return 2 * gamma * (xa @ wa)
  xa = xa.reshape(xa.shape[:-1] + (groups, n))
  wa = wa.reshape(n, groups, -1)
  s = np.einsum('...gi,igo->...go', xa, wa)
  return 2 * gamma * s.reshape(s.shape[:-2] + (-1,))


def _sequential_sum(x, w):
  """NumPy float32 x @ w accumulated over inputs in order from +0."""
  acc = np.zeros(x.shape[:-1] + w.shape[-1:], np.float32)
  for i in range(x.shape[-1]):
    acc = acc + x[..., i : i + 1] * w[i]
  return acc


def test_million_normal_pairs_bit_identical():
  rng = np.random.default_rng(0)
  n = 1_000_000
  ex = rng.integers(1, 255, size=n)
  ew = rng.integers(np.maximum(1, 128 - ex), np.minimum(254, 381 - ex) + 1)
  sx = rng.integers(0, 2, size=n, dtype=np.uint64) << 31
  sw = rng.integers(0, 2, size=n, dtype=np.uint64) << 31
  frac = rng.integers(0, 2**23, size=n, dtype=np.uint64)
  x = _f32(sx | (ex.astype(np.uint64) << 23) | frac)
  w = _f32(sw | (ew.astype(np.uint64) << 23))
  want = x * w
  assert np.all(np.abs(want) >= 2.0**-126) and np.all(np.isfinite(want))
  _assert_same_floats(intadd.multiply_by_adding(x, w), want, 'normal pairs')


def _special_x():
  exps = [0, 1, 2, 3, 24, 50, 127, 200, 253, 254]
  fracs = [0, 1, 2, 3, 0x200000, 0x3FFFFF, 0x400000, 0x400001, 0x600000]
  fracs += [0x7FFFFE, 0x7FFFFF]
  bits = [(e << 23) | f for e in exps for f in fracs]
  bits += [0x7F800000, 0x7FC00000, 0x7F800001, 0x7FFFFFFF]
  bits = np.array(bits, np.uint64)
  return _f32(np.concatenate([bits, bits | (1 << 31)]))


def _special_w():
  bits = [e << 23 for e in range(0, 255)] + [0x7F800000, 0x7FC00000]
  bits = np.array(bits, np.uint64)
  return _f32(np.concatenate([bits, bits | (1 << 31)]))


def test_special_values_match_ieee():
  """Zeros, subnormals, ties, overflow, underflow, inf and NaN vs NumPy."""
  x, w = np.meshgrid(_special_x(), _special_w(), indexing='ij')
  with np.errstate(all='ignore'):
    want = x * w
  _assert_same_floats(intadd.multiply_by_adding(x, w), want, 'special grid')
  # The grid exercises every case the exact path handles.
  assert np.any(np.isinf(want) & np.isfinite(x) & np.isfinite(w))
  sub = (want != 0) & (np.abs(want) < 2.0**-126)
  assert np.any(sub) and np.any((want == 0) & (x != 0) & (w != 0))


def test_weight_fraction_bits_are_ignored():
  rng = np.random.default_rng(2)
  x = rng.normal(size=1000).astype(np.float32)
  w = rng.normal(size=1000).astype(np.float32)
  trunc = _f32(w.view(U32) & U32(0xFF800000))
  _assert_same_floats(intadd.multiply_by_adding(x, w), x * trunc, 'fraction')


def test_dense_is_exact_sequential_sum_and_within_bound():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(4, 16, 96)).astype(np.float32)
  x[0, 0, :10] = 0.0
  w = _seofp(rng, (96, 40))
  w[:5] = 0.0
  b = rng.normal(size=40).astype(np.float32)
  y = np.asarray(intadd.int_add_dense(x, w, b))
  _assert_same_floats(y, _sequential_sum(x, w) + b, 'sequential reference')
  ref64 = np.asarray(x, np.float64) @ w.astype(np.float64) + b
  dot = np.asarray(jnp.dot(x, w) + b)
  bound = _gamma_bound(x, w) + 1e-6 * np.abs(ref64)  # + the bias add.
  assert np.all(np.abs(y - ref64) <= bound), 'int-add dense vs float64'
  assert np.all(np.abs(y - dot) <= bound), 'int-add dense vs jnp.dot'


def test_dense_exact_fallback_on_extreme_inputs():
  """Overflowing / underflowing products take the exact path."""
  rng = np.random.default_rng(4)
  x = rng.normal(size=(3, 8)).astype(np.float32)
  x[0, 7] = 3e38  # x * 2^3 overflows to inf.
  x[1, :] *= np.float32(1e-30)  # Products underflow.
  x[2, 3] = 1e-40  # Subnormal input.
  w = np.exp2(np.arange(-4, 4, dtype=np.float32))[:, None].repeat(5, axis=1)
  w = np.ascontiguousarray(w * np.where(np.arange(5) % 2, -1, 1))
  w = w.astype(np.float32)
  y = np.asarray(intadd.int_add_dense(x, w))
  with np.errstate(all='ignore'):
    want = _sequential_sum(x, w)
  assert np.array_equal(np.isinf(y), np.isinf(want)) and np.any(np.isinf(y))
  finite = np.isfinite(want)
  np.testing.assert_allclose(y[finite], want[finite], rtol=1e-6, atol=1e-37)
  assert np.all(y[1] != 0), 'underflowed products must not vanish'


@pytest.mark.parametrize('groups', [1, 2, 12])
def test_conv1x1_matches_flax_conv(groups):
  rng = np.random.default_rng(5)
  x = rng.normal(size=(2, 10, 12)).astype(np.float32)
  conv = nn.Conv(12, (1,), feature_group_count=groups)
  params = conv.init(jax.random.key(0), x)['params']
  params = rules.quantize_params(params, rules.QuantRules())
  want = np.asarray(conv.apply({'params': params}, x))
  y = np.asarray(
    intadd.int_add_conv1x1(
      x, params['kernel'], params['bias'], feature_group_count=groups
    )
  )
  w = np.asarray(params['kernel'])[0]
  bound = _gamma_bound(x, w, groups) + 1e-6 * np.abs(want)
  err = np.abs(y - want)
  assert np.all(err <= bound), f'groups={groups}: max error {err.max()}'


def test_bad_groups_dtype_and_kernel_shape_raise():
  with pytest.raises(ValueError, match='groups=2'):
    intadd.int_add_dense(jnp.ones((2, 5)), jnp.ones((2, 4)), groups=2)
  with pytest.raises(TypeError, match='float32'):
    intadd.int_add_dense(jnp.ones((2, 4), jnp.bfloat16), jnp.ones((4, 4)))
  with pytest.raises(ValueError, match='spatial size 1'):
    intadd.int_add_conv1x1(jnp.ones((2, 4)), jnp.ones((3, 4, 4)))


class Net(nn.Module):
  """Dense, 1x1 convs (plain and depthwise), a k=3 conv, LayerNorm."""

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(32, name='inp')(x)
    x = nn.LayerNorm()(x)
    x = nn.gelu(nn.Conv(48, (1,), name='pw')(x))
    x = nn.Conv(48, (1,), feature_group_count=48, name='dw')(x)
    x = nn.Conv(48, (3,), name='k3')(x)
    x = nn.LayerNorm()(x)
    return nn.Dense(8, name='out')(nn.relu(x))


# Stated tolerance of the integer-add model path against the float path on
# the same quantised weights: products are identical, only summation order
# differs (2 gamma_n relative per layer), amplified by LayerNorm; 1e-5 of the
# output scale covers it with margin and is far below any quantisation error.
MODEL_RTOL = 1e-5


def test_interceptor_matches_float_path_on_quantised_weights():
  rng = np.random.default_rng(6)
  x = rng.normal(size=(2, 20, 16)).astype(np.float32)
  net = Net()
  r = rules.QuantRules(quant=seofp.QuantConfig(5, 'nearest_log'))
  params = jax.jit(net.init)(jax.random.key(1), x)['params']
  q = rules.quantize_params(params, r)
  want = np.asarray(jax.jit(net.apply)({'params': q}, x))
  log = intadd.InterceptLog()
  int_apply = jax.jit(intadd.int_add_apply(net.apply, r, log))
  got = np.asarray(int_apply({'params': q}, x))
  assert sorted(log.rerouted) == sorted(
    ['inp/kernel', 'pw/kernel', 'dw/kernel', 'out/kernel']
  )
  assert log.skipped == [('k3/kernel', 'kernel size (3,) is not 1x1')]
  scale = np.max(np.abs(want))
  err = np.max(np.abs(got - want))
  assert err <= MODEL_RTOL * scale, f'max error {err}, scale {scale}'
  # Float masters: the interceptor quantises kernels itself (idempotent).
  got_f = np.asarray(int_apply({'params': params}, x))
  mixed = dict(q, k3=params['k3'])  # k3 stays on the float path.
  want_f = np.asarray(jax.jit(net.apply)({'params': mixed}, x))
  assert np.max(np.abs(got_f - want_f)) <= MODEL_RTOL * np.max(np.abs(want_f))


def test_interceptor_respects_rules_and_unsupported_layers():
  x = jnp.ones((1, 6, 4))

  class Odd(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.Dense(4, name='keep')(x)
      x = nn.Conv(4, (1,), strides=2, name='strided')(x)
      x = nn.Conv(4, (1,), padding=((1, 1),), name='padded')(x)
      return nn.Dense(4, dtype=jnp.bfloat16, name='half')(x)

  m = Odd()
  params = m.init(jax.random.key(0), x)['params']
  log = intadd.InterceptLog()
  r = rules.QuantRules(exclude=('keep',))
  intadd.int_add_apply(m.apply, r, log)({'params': params}, x)
  assert log.rerouted == []
  reasons = dict(log.skipped)
  assert reasons['keep/kernel'] == 'kernel not selected by the quant rules'
  assert reasons['strided/kernel'] == 'strided or input-dilated convolution'
  assert reasons['padded/kernel'].startswith('explicit padding')
  assert reasons['half/kernel'].startswith('dtype bfloat16')


def test_int_add_dense_module_matches_nn_dense():
  rng = np.random.default_rng(7)
  x = rng.normal(size=(3, 24)).astype(np.float32)
  cfg = seofp.QuantConfig(5, 'nearest_linear', 'channel')
  dense = nn.Dense(10)
  params = dense.init(jax.random.key(2), x)
  int_dense = intadd.IntAddDense(10, quant=cfg)
  int_params = int_dense.init(jax.random.key(2), x)
  assert jax.tree.structure(params) == jax.tree.structure(int_params)
  got = np.asarray(int_dense.apply(params, x))
  q = rules.quantize_params(params, rules.QuantRules(quant=cfg))
  want = np.asarray(dense.apply(q, x))
  w = np.asarray(q['params']['kernel'])
  assert np.all(np.abs(got - want) <= _gamma_bound(x, w) + 1e-6 * abs(want))


def test_int_add_conv_module_matches_nn_conv():
  rng = np.random.default_rng(8)
  x = rng.normal(size=(2, 7, 8)).astype(np.float32)
  conv = nn.Conv(6, (1,))
  params = conv.init(jax.random.key(3), x)
  int_conv = intadd.IntAddConv1x1(6)
  assert jax.tree.structure(int_conv.init(jax.random.key(3), x)) == (
    jax.tree.structure(params)
  )
  q = rules.quantize_params(params, rules.QuantRules())
  got = np.asarray(int_conv.apply(params, x))
  want = np.asarray(conv.apply(q, x))
  w = np.asarray(q['params']['kernel'])[0]
  assert np.all(np.abs(got - want) <= _gamma_bound(x, w) + 1e-6 * abs(want))


def test_range_check_picks_fast_path_only_when_safe():
  def check(x, w):
    bits = lambda a: jax.lax.bitcast_convert_type(  # noqa: E731
      jnp.asarray(a, jnp.float32), jnp.uint32
    )
    return bool(intadd._all_products_normal(bits(x), bits(w)))

  w = np.array([[0.5, -0.0], [2.0**-20, 4.0]], np.float32)
  assert check(np.array([[1.0, 0.0], [-3.0, 1e-5]]), w)
  assert check(np.zeros((2, 2)), np.zeros((2, 2)))
  assert not check(np.array([[1e-40, 1.0]]), w), 'subnormal input'
  assert not check(np.array([[np.inf, 1.0]]), w), 'inf input'
  assert not check(np.array([[3e38, 1.0]]), w), 'product overflows'
  assert not check(np.array([[1e-35, 1.0]]), w), 'product underflows'
  assert not check(np.ones((1, 2)), np.array([[np.nan, 1.0]]) * w), 'NaN w'
