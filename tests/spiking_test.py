"""Spike functions, surrogate gradients and PLIF dynamics vs closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax import spiking

U = np.array(
  [-1e30, -1e6, -3.0, -0.7, -0.25, -1e-3, 0.0, 1e-3, 0.25, 0.7, 3.0, 1e6, 1e30],
  np.float32,
)


def _np_sigmoid(x):
  return 0.5 * (1 + np.tanh(x / 2))


def _np_surrogate(name, u, a):
  """Closed forms (spikingjelly Sigmoid / ATan, SuperSpike, ...), float64."""
  u = np.asarray(u, np.float64)
  if name == 'sigmoid':
    s = _np_sigmoid(a * u)
    return a * s * (1 - s)
  if name == 'arctan':
    return (a / 2) / (1 + (np.pi / 2 * a * u) ** 2)
  if name in ('fast_sigmoid', 'superspike'):
    return 1 / (1 + a * np.abs(u)) ** 2
  if name == 'triangle':
    return a * np.maximum(0, 1 - a * np.abs(u))
  return np.where(np.abs(a * u) <= 1, a / 2, 0.0)


def test_heaviside_forward_uses_greater_equal():
  got = np.asarray(spiking.spike(jnp.asarray(U)))
  want = (U >= 0).astype(np.float32)
  np.testing.assert_array_equal(got, want, err_msg='spike(0) must be 1')


@pytest.mark.parametrize('name', spiking.SURROGATES)
@pytest.mark.parametrize('alpha', [None, 2.5])
def test_surrogate_gradient_matches_closed_form(name, alpha):
  a = spiking.DEFAULT_ALPHA[name] if alpha is None else alpha
  u = jnp.asarray(U)
  grad = jax.grad(lambda v: jnp.sum(spiking.spike(v, name, alpha)))(u)
  _, tangent = jax.jvp(
    lambda v: spiking.spike(v, name, alpha), (u,), (jnp.ones_like(u),)
  )
  want = _np_surrogate(name, U, a)
  assert np.all(np.isfinite(np.asarray(grad))), f'{name}: non-finite {grad}'
  np.testing.assert_allclose(
    np.asarray(grad),
    want,
    rtol=1e-5,
    atol=1e-7,
    err_msg=f'{name}: reverse mode vs closed form',
  )
  np.testing.assert_allclose(
    np.asarray(tangent),
    want,
    rtol=1e-5,
    atol=1e-7,
    err_msg=f'{name}: forward mode vs closed form',
  )


def test_default_alphas_follow_the_libraries():
  assert spiking.DEFAULT_ALPHA['sigmoid'] == 4.0  # spikingjelly Sigmoid
  assert spiking.DEFAULT_ALPHA['arctan'] == 2.0  # spikingjelly/snntorch ATan


@pytest.mark.parametrize('name', ['sigmoid', 'arctan', 'triangle', 'boxcar'])
def test_unit_area_surrogates_integrate_to_one(name):
  u = np.linspace(-400, 400, 1_600_001)
  g = np.asarray(
    spiking.surrogate_grad(
      name, jnp.asarray(u, jnp.float32), spiking.DEFAULT_ALPHA[name]
    )
  )
  area = np.trapezoid(g, u)
  assert abs(area - 1) < 2e-3, f'{name}: area {area:.5f}, expected 1'


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match='Unknown surrogate'):
    spiking.spike(jnp.zeros(3), 'erf')
  with pytest.raises(TypeError, match='floating'):
    spiking.spike(jnp.zeros(3, jnp.int32))
  with pytest.raises(ValueError, match='init_tau'):
    spiking.tau_to_w(1.0)
  with pytest.raises(ValueError, match='Unknown reset'):
    spiking.lif_step(jnp.zeros(2), jnp.zeros(2), 0.0, reset='none')
  with pytest.raises(ValueError, match='Unknown neuron mode'):
    spiking.PLIF(mode='dynamic').init(jax.random.PRNGKey(0), jnp.zeros((2, 3)))


def _np_plif(x, w, v_th=1.0, v_reset=0.0, reset='hard'):
  """spikingjelly ParametricLIFNode (decay_input=True), multi-step, float64."""
  k = _np_sigmoid(w)
  v = np.full(x.shape[1:], v_reset, np.float64)
  spikes = []
  for x_t in x:
    v = v + (x_t - (v - v_reset)) * k
    s = (v - v_th >= 0).astype(np.float64)
    v = (1 - s) * v + s * v_reset if reset == 'hard' else v - s * v_th
    spikes.append(s)
  return np.stack(spikes), v


def test_stateless_lif_is_one_charge_from_rest():
  x = np.random.default_rng(0).normal(1.5, 1.0, size=(50, 7))
  for w in (0.0, 0.8):
    want, _ = _np_plif(x[None].reshape(1, -1), w)  # one step from rest
    got = spiking.lif_stateless(jnp.asarray(x.reshape(1, -1), jnp.float32), w)
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize(
  'reset,v_reset', [('hard', 0.0), ('hard', -0.3), ('soft', 0.0)]
)
def test_temporal_lif_matches_reference(reset, v_reset):
  rng = np.random.default_rng(1)
  x = rng.normal(0.9, 1.0, size=(40, 6))  # (T, H)
  w = 0.4
  want_s, want_v = _np_plif(x, w, 1.0, v_reset, reset)
  got_s, got_v = spiking.lif_scan(
    jnp.asarray(x[None], jnp.float32), w, v_reset=v_reset, reset=reset
  )
  np.testing.assert_array_equal(np.asarray(got_s[0]), want_s)
  np.testing.assert_allclose(np.asarray(got_v[0]), want_v, atol=1e-5)
  assert 0 < want_s.mean() < 1, 'the fixture should make some spikes'


@pytest.mark.parametrize('detach', [False, True])
def test_reset_gradient_two_steps(detach):
  """d s2 / d x1 for a hard reset, with and without a detached reset."""
  k = 0.5  # sigmoid(0)
  x1, x2 = 2.3, 1.2
  g = lambda u: _np_surrogate('sigmoid', u, 4.0)  # noqa: E731
  v1 = k * x1
  s1 = float(v1 >= 1)
  dv1r = (1 - s1) * k - (0 if detach else v1 * g(v1 - 1) * k)
  v1r = (1 - s1) * v1
  v2 = v1r + (x2 - v1r) * k
  want = g(v2 - 1) * (1 - k) * dv1r

  def s2(a):
    s, _ = spiking.lif_scan(
      jnp.stack([a, jnp.float32(x2)])[:, None], 0.0, detach_reset=detach
    )
    return s[1, 0]

  got = float(jax.grad(s2)(jnp.float32(x1)))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize('mode', ['stateless', 'temporal'])
def test_plif_module_step_matches_call(mode):
  neuron = spiking.PLIF(mode=mode, init_tau=3.0)
  x = jnp.asarray(
    np.random.default_rng(2).normal(1.5, 1.0, (2, 30, 5)), jnp.float32
  )
  variables = neuron.init(jax.random.PRNGKey(0), x)
  w = float(variables['params']['w'])
  assert abs(w - (-np.log(2.0))) < 1e-7, f'w for tau 3: {w}'
  s, rate = neuron.apply(variables, x)
  assert float(rate) == pytest.approx(float(jnp.mean(s)))
  v = neuron.apply(variables, (2, 5), method=spiking.PLIF.init_state)
  steps = []
  for t in range(30):
    s_t, v = neuron.apply(variables, v, x[:, t], method=spiking.PLIF.step)
    steps.append(s_t)
  np.testing.assert_array_equal(np.asarray(jnp.stack(steps, 1)), np.asarray(s))


def test_lif_scan_time_axis_channels_first():
  x = jnp.asarray(
    np.random.default_rng(3).normal(1.0, 1.0, (2, 25, 4)), jnp.float32
  )
  s_last, v_last = spiking.lif_scan(x, 0.2, reset='soft')
  s_first, v_first = spiking.lif_scan(
    jnp.swapaxes(x, 1, 2), 0.2, reset='soft', time_axis=-1
  )
  np.testing.assert_array_equal(
    np.asarray(jnp.swapaxes(s_first, 1, 2)), np.asarray(s_last)
  )
  np.testing.assert_array_equal(np.asarray(v_first), np.asarray(v_last))


@pytest.mark.parametrize('mode', ['stateless', 'temporal'])
def test_plif_time_axis_argument_and_default_alpha(mode):
  """Channels-first calls equal channels-last; alpha 0 or None: default."""
  x = jnp.asarray(
    np.random.default_rng(4).normal(1.0, 1.0, (2, 25, 4)), jnp.float32
  )
  neuron = spiking.PLIF(mode=mode)
  variables = neuron.init(jax.random.PRNGKey(0), x)
  s_last, _ = neuron.apply(variables, x)
  s_first, _ = neuron.apply(variables, jnp.swapaxes(x, 1, 2), time_axis=-1)
  np.testing.assert_array_equal(
    np.asarray(jnp.swapaxes(s_first, 1, 2)), np.asarray(s_last)
  )

  def grad(alpha):
    model = spiking.PLIF(mode=mode, alpha=alpha)
    return jax.grad(lambda x: jnp.sum(model.apply(variables, x)[0]))(x)

  want = grad(spiking.DEFAULT_ALPHA['sigmoid'])
  for alpha in (0.0, None):
    np.testing.assert_array_equal(np.asarray(grad(alpha)), np.asarray(want))
  assert not np.array_equal(np.asarray(grad(1.0)), np.asarray(want))
