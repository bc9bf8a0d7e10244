"""Signal-to-noise losses in pure JAX: SI-SNR, SI-SDR and plain SNR.

All functions reduce over the last (time) axis, broadcast over any leading
axes and return decibels (higher is better; negate for a loss). They compose
with `jit`, `vmap` and `grad`.

Conventions (they differ only in where `eps` sits and whether the means are
removed):

* `si_snr`: the Intel Neuromorphic DNS Challenge metric
  (`IntelLabs/IntelNeuromorphicDNSChallenge`, `snr.py: si_snr`): zero-mean
  both signals, project the estimate onto the target,
  `10 log10(|s_t|^2 / (|e|^2 + eps) + eps)` with `eps = 1e-8`. The challenge
  divides by `|s|^2` without `eps`; here a silent target gets a zero
  projection instead of NaN (value `10 log10(eps) = -80` dB).
* `si_sdr`: the asteroid / TDANet convention (`look2hear/losses/matrix.py`
  `PairwiseNegSDR('sisdr')`): as above but `eps` is added to the target
  energy in the projection as well.
* `snr`: plain SNR `10 log10(|s|^2 / (|s - s_hat|^2 + eps) + eps)`, the
  TDANet / S4M training loss (`PairwiseNegSDR('snr')`, which removes the means
  first: pass `zero_mean=True` for that).

Silent (all-zero) targets and estimates give finite values and finite
gradients (checked in `tests/audio/losses_test.py`).
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = [
  'EPS',
  'neg_si_sdr',
  'neg_si_snr',
  'neg_snr',
  'si_sdr',
  'si_snr',
  'snr',
]

EPS = 1e-8


def _zero_mean(x: jnp.ndarray) -> jnp.ndarray:
  return x - jnp.mean(x, axis=-1, keepdims=True)


def _energy(x: jnp.ndarray) -> jnp.ndarray:
  return jnp.sum(jnp.square(x), axis=-1)


def _ratio_db(
  signal_energy: jnp.ndarray, noise_energy: jnp.ndarray, eps: float
) -> jnp.ndarray:
  """`10 log10(signal / (noise + eps) + eps)`; finite for zero energies."""
  return 10.0 * jnp.log10(signal_energy / (noise_energy + eps) + eps)


def _projection(
  estimate: jnp.ndarray, target: jnp.ndarray, denom_eps: float
) -> jnp.ndarray:
  """`<t, e> / (|t|^2 + denom_eps) t`; zero (not NaN) for a silent target.

  Args:
    estimate: real `(..., T)`.
    target: real `(..., T)`.
    denom_eps: added to `|t|^2` (0 for the N-DNS convention).

  Returns:
    Real `(..., T)` (broadcast shape of the inputs).
  """
  dot = jnp.sum(estimate * target, axis=-1, keepdims=True)
  norm = jnp.sum(jnp.square(target), axis=-1, keepdims=True) + denom_eps
  # Double `where` keeps the gradient finite where the norm is zero.
  positive = norm > 0
  safe_norm = jnp.where(positive, norm, 1.0)
  return jnp.where(positive, dot / safe_norm, 0.0) * target


def si_snr(
  estimate: jnp.ndarray, target: jnp.ndarray, eps: float = EPS
) -> jnp.ndarray:
  """Scale-invariant SNR in dB, as the Intel N-DNS challenge computes it.

  Args:
    estimate: real `(..., T)`.
    target: real `(..., T)`, broadcastable with `estimate`.
    eps: regulariser of the ratio and of the logarithm (challenge: 1e-8).

  Returns:
    Real `(...)`: `10 log10(|s_t|^2 / (|e|^2 + eps) + eps)` with
    `s_t = <t, e> t / |t|^2` and `e = estimate - s_t`, after removing the
    means of both signals.
  """
  estimate, target = _zero_mean(estimate), _zero_mean(target)
  proj = _projection(estimate, target, 0.0)
  return _ratio_db(_energy(proj), _energy(estimate - proj), eps)


def si_sdr(
  estimate: jnp.ndarray,
  target: jnp.ndarray,
  eps: float = EPS,
  zero_mean: bool = True,
) -> jnp.ndarray:
  """Scale-invariant SDR in dB (asteroid / TDANet validation convention).

  Args:
    estimate: real `(..., T)`.
    target: real `(..., T)`, broadcastable with `estimate`.
    eps: added to the target energy, the error energy and inside the log.
    zero_mean: remove the means first (asteroid default).

  Returns:
    Real `(...)`: `10 log10(|a t|^2 / (|e - a t|^2 + eps) + eps)` with
    `a = <t, e> / (|t|^2 + eps)`.
  """
  if zero_mean:
    estimate, target = _zero_mean(estimate), _zero_mean(target)
  proj = _projection(estimate, target, eps)
  return _ratio_db(_energy(proj), _energy(estimate - proj), eps)


def snr(
  estimate: jnp.ndarray,
  target: jnp.ndarray,
  eps: float = EPS,
  zero_mean: bool = False,
) -> jnp.ndarray:
  """Plain SNR in dB: `10 log10(|t|^2 / (|t - estimate|^2 + eps) + eps)`.

  Args:
    estimate: real `(..., T)`.
    target: real `(..., T)`, broadcastable with `estimate`.
    eps: regulariser of the ratio and of the logarithm.
    zero_mean: remove the means first (TDANet's `PairwiseNegSDR('snr')`
      does).

  Returns:
    Real `(...)`.
  """
  if zero_mean:
    estimate, target = _zero_mean(estimate), _zero_mean(target)
  target = jnp.broadcast_to(
    target, jnp.broadcast_shapes(target.shape, estimate.shape)
  )
  return _ratio_db(_energy(target), _energy(estimate - target), eps)


def neg_si_snr(
  estimate: jnp.ndarray, target: jnp.ndarray, eps: float = EPS
) -> jnp.ndarray:
  """`-si_snr`, per example `(...)`; average it for a training loss."""
  return -si_snr(estimate, target, eps)


def neg_si_sdr(
  estimate: jnp.ndarray,
  target: jnp.ndarray,
  eps: float = EPS,
  zero_mean: bool = True,
) -> jnp.ndarray:
  """`-si_sdr`, per example `(...)`."""
  return -si_sdr(estimate, target, eps, zero_mean)


def neg_snr(
  estimate: jnp.ndarray,
  target: jnp.ndarray,
  eps: float = EPS,
  zero_mean: bool = False,
) -> jnp.ndarray:
  """`-snr`, per example `(...)`."""
  return -snr(estimate, target, eps, zero_mean)
