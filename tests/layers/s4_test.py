"""The Flax S4 layer: parameters, labels, conv vs streaming, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s4jax.layers import s4 as s4_layer
from tests import fast_compiles
from tests.ssm import reference


@pytest.fixture(scope='module', autouse=True)
def _fast_compiles():
  """Small models need no XLA optimisation (compiles dominate here)."""
  with fast_compiles.unoptimised():
    yield


def _init(layer, shape=(2, 64, 8), seed=0):
  u = jax.random.normal(jax.random.PRNGKey(seed), shape)
  return u, layer.init(jax.random.PRNGKey(seed + 1), u)


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_parameter_layout_s4_bidirectional_glu():
  # Matches the standalone state-spaces/s4 module used by S4M:
  # H=512, N=16, bidirectional, GLU output (counted independently below).
  layer = s4_layer.S4Layer(d_state=16, mode='s4', bidirectional=True)
  shapes = jax.eval_shape(
    lambda: layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 512)))
  )
  h, n2 = 512, 8
  expected = (
    h  # log_dt
    + 2 * h * n2  # log_A_real, A_imag
    + h * n2 * 2  # B
    + h * n2 * 2  # P (rank 1)
    + 2 * h * n2 * 2  # C, two directions
    + h  # D
    + h * 2 * h
    + 2 * h  # GLU projection
  )
  assert _count(shapes) == expected == 567_296


def test_parameter_layout_minimal_s4d():
  layer = s4_layer.S4Layer(
    d_state=64, init_scheme='lin', learn_b=False, activation=None, postact=None
  )
  shapes = jax.eval_shape(
    lambda: layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 256)))
  )
  # log_dt + log_A_real + A_imag + C + D of the minimal S4D kernel.
  assert _count(shapes) == 256 + 2 * 256 * 32 + 256 * 32 * 2 + 256 == 33_280


def test_ssm_labels_select_dt_a_b_p():
  layer = s4_layer.S4Layer(d_state=8, mode='s4')
  _, v = _init(layer)
  labels = s4_layer.ssm_param_labels(v['params'])
  flat = {
    '/'.join(k.key for k in path): lab
    for path, lab in jax.tree_util.tree_leaves_with_path(labels)
  }
  ssm = sorted(k for k, lab in flat.items() if lab == 'ssm')
  assert ssm == ['ssm/A_imag', 'ssm/B', 'ssm/P', 'ssm/log_A_real', 'ssm/log_dt']
  tx = optax.multi_transform(
    {'ssm': optax.adam(1e-3), 'regular': optax.adamw(1e-2, weight_decay=0.1)},
    labels,
  )
  tx.init(v['params'])  # The labels fit the parameter tree.


def test_real_part_of_a_stays_negative():
  layer = s4_layer.S4Layer(d_state=8, mode='s4d', init_scheme='real')
  _, v = _init(layer)
  v['params']['ssm']['log_A_real'] = v['params']['ssm']['log_A_real'] + 5.0
  prm = layer.apply(v, 8, method=lambda m, h: m._ssm(h))
  assert bool(jnp.all(prm['a'].real < 0))


@pytest.mark.parametrize(
  'mode,init_scheme,l_max',
  [
    ('s4', 'legs', None),
    ('s4', 'legs', 3000),
    ('s4d', 'legs', None),
    ('s4d', 'inv', None),
  ],
)
def test_layer_streaming_equals_convolution(mode, init_scheme, l_max):
  layer = s4_layer.S4Layer(
    d_state=32, mode=mode, init_scheme=init_scheme, l_max=l_max
  )
  u, v = _init(layer, (2, 3000, 8))
  y = layer.apply(v, u)
  state = layer.apply(v, (2,), 8, method=s4_layer.S4Layer.init_state)

  @jax.jit
  def run_steps(v, u, state):
    def body(s, u_t):
      y_t, s = layer.apply(v, s, u_t, method=s4_layer.S4Layer.step)
      return s, y_t

    return jnp.swapaxes(
      jax.lax.scan(body, state, jnp.swapaxes(u, 0, 1))[1], 0, 1
    )

  err = float(jnp.max(jnp.abs(run_steps(v, u, state) - y)))
  assert err < 1e-4, f'step vs conv {err:.2e}'
  y1, s = layer.apply(
    v, state, u[:, :1234], method=s4_layer.S4Layer.forward_chunk
  )
  y2, _ = layer.apply(v, s, u[:, 1234:], method=s4_layer.S4Layer.forward_chunk)
  err = float(jnp.max(jnp.abs(jnp.concatenate([y1, y2], 1) - y)))
  assert err < 1e-4, f'chunked vs conv {err:.2e}'


def test_bidirectional_layer_refuses_to_stream():
  layer = s4_layer.S4Layer(d_state=8, bidirectional=True)
  _, v = _init(layer)
  with pytest.raises(ValueError, match='cannot stream'):
    layer.apply(v, (2,), 8, method=s4_layer.S4Layer.init_state)


def test_bidirectional_backward_kernel_starts_at_lag_one():
  layer = s4_layer.S4Layer(
    d_state=8, bidirectional=True, postact=None, activation=None, use_d=False
  )
  u, v = _init(layer, (1, 32, 4))
  k = layer.apply(v, 4, 32, method=s4_layer.S4Layer.kernel)
  assert k.shape == (2, 4, 32)
  np.testing.assert_array_equal(k[1, :, 0], 0.0)
  # An impulse at t=10 reaches t=9 through the backward kernel's lag-1 tap.
  impulse = jnp.zeros((1, 32, 4)).at[0, 10].set(1.0)
  y = layer.apply(v, impulse)
  np.testing.assert_allclose(y[0, 9], k[1, :, 1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y[0, 10], k[0, :, 0], rtol=1e-5, atol=1e-6)


def test_precomputed_kernel_gives_same_output():
  layer = s4_layer.S4Layer(d_state=16, mode='s4', bidirectional=True)
  u, v = _init(layer, (2, 100, 8))
  k = layer.apply(v, 8, 100, method=s4_layer.S4Layer.kernel)
  np.testing.assert_allclose(
    layer.apply(v, u, kernel=k), layer.apply(v, u), rtol=1e-6, atol=1e-6
  )


def test_layer_jit_grad_and_dropout():
  layer = s4_layer.S4Layer(d_state=16, mode='s4', dropout=0.5)
  u, v = _init(layer, (2, 50, 8))

  def loss(params, rng):
    y = layer.apply(
      {'params': params}, u, deterministic=False, rngs={'dropout': rng}
    )
    return jnp.mean(y**2)

  g = jax.jit(jax.grad(loss))(v['params'], jax.random.PRNGKey(3))
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g))
  y1 = layer.apply(
    v, u, deterministic=False, rngs={'dropout': jax.random.PRNGKey(1)}
  )
  y2 = layer.apply(
    v, u, deterministic=False, rngs={'dropout': jax.random.PRNGKey(2)}
  )
  assert not np.allclose(y1, y2), 'dropout with different keys should differ'


def test_bfloat16_projection_keeps_ssm_in_float32():
  layer = s4_layer.S4Layer(d_state=16, dtype=jnp.bfloat16)
  u, v = _init(layer, (1, 40, 8))
  y = layer.apply(v, u.astype(jnp.bfloat16))
  assert y.dtype == jnp.bfloat16
  y32 = s4_layer.S4Layer(d_state=16).apply(v, u)
  np.testing.assert_allclose(y.astype(jnp.float32), y32, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize(
  'kwargs,match',
  [
    (dict(mode='s5'), 'Unknown S4 mode'),
    (dict(d_state=7), 'even'),
    (dict(init_scheme='fourier'), 'Unknown S4D init'),
    (dict(postact='swiglu'), 'Unknown postact'),
    (dict(n_ssm=3), 'must divide'),
    (dict(mode='s4d', l_max=64), 'l_max'),
    (dict(mode='s4', l_max=0), 'l_max'),
  ],
)
def test_bad_options_give_clear_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    _init(s4_layer.S4Layer(**kwargs))


def test_step_with_precomputed_system_matches_plain_step():
  layer = s4_layer.S4Layer(d_state=16, mode='s4d')
  u, v = _init(layer, (2, 5, 8))
  system = layer.apply(v, 8, method=s4_layer.S4Layer.discrete_ssm)
  state = layer.apply(v, (2,), 8, method=s4_layer.S4Layer.init_state)
  y1, s1 = layer.apply(v, state, u[:, 0], method=s4_layer.S4Layer.step)
  y2, s2 = layer.apply(v, state, u[:, 0], system, method=s4_layer.S4Layer.step)
  np.testing.assert_array_equal(y1, y2)
  np.testing.assert_array_equal(s1, s2)


def test_float64_inputs_stay_float64_under_x64():
  with jax.enable_x64(True):
    layer = s4_layer.S4Layer(d_state=8, mode='s4', postact=None)
    u = jax.random.normal(jax.random.PRNGKey(0), (1, 40, 4), jnp.float64)
    v = layer.init(jax.random.PRNGKey(1), u)
    y = layer.apply(v, u)
    assert y.dtype == jnp.float64
    state = layer.apply(
      v, (1,), 4, jnp.float64, method=s4_layer.S4Layer.init_state
    )
    _, state = layer.apply(v, state, u[:, 0], method=s4_layer.S4Layer.step)
    y_t, _ = layer.apply(v, state, u[:, 1], method=s4_layer.S4Layer.step)
    np.testing.assert_allclose(y_t, y[:, 1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('bidirectional', [False, True])
def test_l_max_layer_learning_c_tilde_equals_plain_layer(bidirectional):
  """A layer holding C~ = C (I - Abar^l_max) (float64 NumPy) gives the plain
  layer's output at, below and above l_max."""
  l_max = 96
  plain = s4_layer.S4Layer(
    d_state=16, mode='s4', bidirectional=bidirectional, postact=None
  )
  tilde = plain.clone(l_max=l_max)
  u, v = _init(plain, (2, l_max + 40, 4))
  prm = plain.apply(v, 4, method=lambda m, h: m._ssm(h))
  c_tilde = np.stack(
    [
      reference.dplr_c_tilde(prm['a'], prm['p'], c, prm['dt'], l_max)
      for c in np.asarray(prm['c'])
    ]
  )
  v_tilde = jax.tree.map(lambda x: x, v)
  v_tilde['params']['ssm']['C'] = jnp.asarray(
    np.stack([c_tilde.real, c_tilde.imag], -1), jnp.float32
  )
  for length in (l_max - 31, l_max, l_max + 40):
    want = plain.apply(v, u[:, :length])
    got = tilde.apply(v_tilde, u[:, :length])
    err = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
    assert err < 1e-4, f'L={length}: max|dy|/max|y| = {err:.2e}, want < 1e-4'
