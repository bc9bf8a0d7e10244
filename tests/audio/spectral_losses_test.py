"""Tests for s4jax.audio.spectral_losses against float64 NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np

from s4jax.audio import spectral_losses


def _power_ref(x, n_fft, hop):
  """|STFT|^2, centred (reflect), periodic Hann, float64 NumPy."""
  pad = n_fft // 2
  x = np.pad(x, [(0, 0), (pad, pad)], mode='reflect')
  win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
  count = 1 + (x.shape[-1] - n_fft) // hop
  idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
  spec = np.fft.rfft(x[:, idx] * win, axis=-1)
  return np.abs(spec) ** 2


def _signals(seed=0, length=4000):
  rng = np.random.default_rng(seed)
  target = rng.standard_normal((2, length)) * 0.1
  estimate = target + 0.05 * rng.standard_normal((2, length))
  return estimate, target


def test_compressed_magnitude_loss_matches_float64_reference():
  est, ref = _signals()
  expected = np.mean(
    (
      (_power_ref(est, 512, 128) + 1e-8) ** 0.15
      - (_power_ref(ref, 512, 128) + 1e-8) ** 0.15
    )
    ** 2,
    axis=(-2, -1),
  )
  got = spectral_losses.compressed_magnitude_loss(
    jnp.asarray(est, jnp.float32), jnp.asarray(ref, jnp.float32)
  )
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_multi_resolution_stft_loss_matches_float64_reference():
  est, ref = _signals(1)
  expected = 0.0
  for n_fft, hop, _ in spectral_losses.DEFAULT_RESOLUTIONS:
    e = np.sqrt(_power_ref(est, n_fft, hop) + 1e-7)
    r = np.sqrt(_power_ref(ref, n_fft, hop) + 1e-7)
    sc = np.linalg.norm(r - e, axis=(-2, -1)) / np.linalg.norm(r, axis=(-2, -1))
    expected = expected + sc + np.mean(np.abs(np.log(r) - np.log(e)), (-2, -1))
  expected = expected / 3
  got = spectral_losses.multi_resolution_stft_loss(
    jnp.asarray(est, jnp.float32), jnp.asarray(ref, jnp.float32)
  )
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_losses_vanish_for_a_perfect_estimate():
  _, ref = _signals(2)
  ref = jnp.asarray(ref, jnp.float32)
  for fn in (
    spectral_losses.compressed_magnitude_loss,
    spectral_losses.multi_resolution_stft_loss,
  ):
    np.testing.assert_allclose(
      fn(ref, ref), 0.0, atol=1e-6, err_msg=fn.__name__
    )


def test_silent_and_quiet_estimates_have_finite_gradients():
  _, ref = _signals(3)
  ref = jnp.asarray(ref, jnp.float32)
  quiet = 1e-4 * jnp.asarray(_signals(4)[1], jnp.float32)
  for fn in (
    spectral_losses.compressed_magnitude_loss,
    spectral_losses.multi_resolution_stft_loss,
  ):
    for name, est in (('silent', jnp.zeros_like(ref)), ('quiet', quiet)):
      g = np.asarray(jax.grad(lambda e, fn=fn: jnp.sum(fn(e, ref)))(est))
      assert np.all(np.isfinite(g)), f'{fn.__name__}, {name}: non-finite'
      # Exact silence is a stationary point of |S|^c; anything else is not.
      if name == 'quiet':
        assert np.any(g != 0), f'{fn.__name__}: zero gradient when quiet'
