"""Tests for s4jax.audio.losses against float64 NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.audio import losses

EPS = 1e-8


def _np_si_snr(est, tgt, eps=EPS):
  """N-DNS `snr.py: si_snr`, written out in float64."""
  est = np.asarray(est, np.float64)
  tgt = np.asarray(tgt, np.float64)
  t = tgt - tgt.mean(-1, keepdims=True)
  e = est - est.mean(-1, keepdims=True)
  proj = (t * e).sum(-1, keepdims=True) * t / (t**2).sum(-1, keepdims=True)
  noise = e - proj
  return 10 * np.log10((proj**2).sum(-1) / ((noise**2).sum(-1) + eps) + eps)


def _np_si_sdr(est, tgt, eps=EPS):
  """asteroid `SingleSrcNegSDR('sisdr')` with the sign flipped."""
  est = np.asarray(est, np.float64)
  tgt = np.asarray(tgt, np.float64)
  t = tgt - tgt.mean(-1, keepdims=True)
  e = est - est.mean(-1, keepdims=True)
  scale = (t * e).sum(-1, keepdims=True) / ((t**2).sum(-1, keepdims=True) + eps)
  proj = scale * t
  return 10 * np.log10(
    (proj**2).sum(-1) / (((e - proj) ** 2).sum(-1) + eps) + eps
  )


def _np_snr(est, tgt, eps=EPS):
  est = np.asarray(est, np.float64)
  tgt = np.asarray(tgt, np.float64)
  return 10 * np.log10(
    (tgt**2).sum(-1) / (((tgt - est) ** 2).sum(-1) + eps) + eps
  )


def _signals(shape, noise_scale=0.5, seed=0):
  rng = np.random.default_rng(seed)
  tgt = rng.standard_normal(shape).astype(np.float32)
  est = (0.7 * tgt + noise_scale * rng.standard_normal(shape) + 0.1).astype(
    np.float32
  )
  return est, tgt


@pytest.mark.parametrize(
  'fn,ref',
  [
    (losses.si_snr, _np_si_snr),
    (losses.si_sdr, _np_si_sdr),
    (losses.snr, _np_snr),
  ],
)
def test_matches_float64_reference(fn, ref):
  est, tgt = _signals((3, 2, 4000))
  got = np.asarray(jax.jit(fn)(est, tgt))
  want = ref(est, tgt)
  assert got.shape == (3, 2), f'expected shape (3, 2), got {got.shape}'
  np.testing.assert_allclose(got, want, atol=2e-3, err_msg=fn.__name__)


def test_si_snr_closed_form():
  # e = a t + n with n orthogonal to t: SI-SNR = 10 log10(a^2 |t|^2/|n|^2).
  t = np.sin(2 * np.pi * 5 * np.arange(1000) / 1000)
  n = np.cos(2 * np.pi * 5 * np.arange(1000) / 1000)
  est = 3.0 * t + 0.5 * n
  want = 10 * np.log10(9.0 * (t**2).sum() / (0.25 * (n**2).sum()))
  got = float(losses.si_snr(jnp.asarray(est), jnp.asarray(t)))
  assert abs(got - want) < 1e-3, f'expected {want:.5f} dB, got {got:.5f}'


def test_scale_invariance_and_snr_is_not():
  est, tgt = _signals((4000,))
  a = float(losses.si_snr(est, tgt))
  b = float(losses.si_snr(10.0 * est, tgt))
  assert abs(a - b) < 1e-3, f'SI-SNR changed with scale: {a} vs {b}'
  c = float(losses.si_sdr(est, 0.01 * tgt))
  d = float(losses.si_sdr(est, tgt))
  assert abs(c - d) < 1e-2, f'SI-SDR changed with target scale: {c} vs {d}'
  s1 = float(losses.snr(est, tgt))
  s2 = float(losses.snr(10.0 * est, tgt))
  assert s2 < s1 - 10, f'plain SNR should drop with a 10x gain: {s1}, {s2}'


def test_snr_zero_mean_option():
  est, tgt = _signals((2, 3000))
  got = np.asarray(losses.snr(est + 1.0, tgt - 2.0, zero_mean=True))
  want = _np_snr(
    est - est.mean(-1, keepdims=True), tgt - tgt.mean(-1, keepdims=True)
  )
  np.testing.assert_allclose(got, want, atol=2e-3)


def test_broadcasting_leading_axes():
  est, tgt = _signals((2, 3, 500))
  got = losses.si_snr(est[:, :, None, :], tgt[:, None, :, :])
  assert got.shape == (2, 3, 3), f'expected (2, 3, 3), got {got.shape}'
  np.testing.assert_allclose(
    np.asarray(got[:, 1, 2]), _np_si_snr(est[:, 1], tgt[:, 2]), atol=2e-3
  )


@pytest.mark.parametrize('fn', [losses.si_snr, losses.si_sdr, losses.snr])
@pytest.mark.parametrize('silent_estimate', [False, True])
def test_silent_target_finite_value_and_grad(fn, silent_estimate):
  rng = np.random.default_rng(1)
  tgt = jnp.zeros((2, 800))
  est = jnp.asarray(rng.standard_normal((2, 800)), jnp.float32)
  if silent_estimate:
    est = jnp.zeros_like(est)
  value = fn(est, tgt)
  grad = jax.grad(lambda e: jnp.sum(fn(e, tgt)))(est)
  assert np.all(np.isfinite(np.asarray(value))), f'non-finite value {value}'
  assert np.all(np.isfinite(np.asarray(grad))), 'non-finite gradient'


def test_silent_target_value_is_eps_floor():
  # A silent target has no signal: 10 log10(eps) = -80 dB.
  est = jnp.ones((1000,)) * jnp.sin(jnp.arange(1000.0))
  got = float(losses.si_snr(est, jnp.zeros((1000,))))
  assert abs(got - (-80.0)) < 1e-3, f'expected -80 dB, got {got}'


def test_gradient_matches_finite_difference():
  est, tgt = _signals((256,), seed=3)
  est64 = est.astype(np.float64)
  grad = np.asarray(jax.grad(losses.si_snr)(jnp.asarray(est), tgt))
  h = 1e-4
  for i in (0, 17, 200):
    up, down = est64.copy(), est64.copy()
    up[i] += h
    down[i] -= h
    fd = (_np_si_snr(up, tgt) - _np_si_snr(down, tgt)) / (2 * h)
    assert abs(grad[i] - fd) < 1e-2 * max(1.0, abs(fd)), (
      f'grad[{i}]: autodiff {grad[i]} vs finite difference {fd}'
    )


def test_neg_helpers_are_negations():
  est, tgt = _signals((2, 600))
  np.testing.assert_allclose(
    np.asarray(losses.neg_si_snr(est, tgt)),
    -np.asarray(losses.si_snr(est, tgt)),
  )
  np.testing.assert_allclose(
    np.asarray(losses.neg_snr(est, tgt)), -np.asarray(losses.snr(est, tgt))
  )
  np.testing.assert_allclose(
    np.asarray(losses.neg_si_sdr(est, tgt)),
    -np.asarray(losses.si_sdr(est, tgt)),
  )
