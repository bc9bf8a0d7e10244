"""Mixing speech and noise at a given SNR and level (the DNS Challenge recipe).

Conventions (after `noisyspeech_synthesizer.py` of the Microsoft DNS Challenge
and the Intel N-DNS Challenge, Reddy et al. 2020, Timcheck et al. 2023):

* Level: `20 log10(rms)` of the whole clip, in dBFS.
* SNR: `10 log10(sum s^2 / sum n^2)` over the 100 ms windows in which the noise
  is present (its RMS within 60 dB of its loudest window), so that gaps of
  digital silence in a noise recording do not inflate the noise's share. For
  noise without such gaps (all built-in synthetic noise) this is the plain
  whole-clip energy ratio.
* The target level applies to the noisy mixture; clean speech and noise are
  scaled by the same factor, so the SNR is kept exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_EPS = 1e-12
WINDOW_SECONDS = 0.1
NOISE_GATE_DB = 60.0


def rms_db(x: np.ndarray) -> float:
  """Level of a whole signal in dBFS: 20 log10(rms)."""
  x = np.asarray(x, np.float64)
  return float(10.0 * np.log10(np.mean(x**2) + _EPS))


def _window_energy(x: np.ndarray, win: int) -> np.ndarray:
  """Sum of squares per window; the last partial window is kept."""
  x = np.asarray(x, np.float64)
  n = -(-len(x) // win) * win
  x = np.pad(x, (0, n - len(x)))
  return np.sum(x.reshape(-1, win) ** 2, axis=1)


def noise_active_windows(noise: np.ndarray, sr: int) -> np.ndarray:
  """Boolean mask of the 100 ms windows in which the noise is present."""
  win = max(1, int(round(WINDOW_SECONDS * sr)))
  e = _window_energy(noise, win)
  top = np.max(e)
  if top <= 0:
    return np.zeros_like(e, dtype=bool)
  return e > top * 10.0 ** (-NOISE_GATE_DB / 10.0)


def snr_db(clean: np.ndarray, noise: np.ndarray, sr: int) -> float:
  """SNR over the noise-present windows (see the module docstring).

  Args:
    clean: real (T,) speech.
    noise: real (T,) noise, same length.
    sr: sample rate (sets the 100 ms window).

  Returns:
    The SNR in dB.
  """
  if len(clean) != len(noise):
    raise ValueError(f'Lengths differ: {len(clean)} vs {len(noise)}.')
  win = max(1, int(round(WINDOW_SECONDS * sr)))
  active = noise_active_windows(noise, sr)
  es = _window_energy(clean, win)[active].sum()
  en = _window_energy(noise, win)[active].sum()
  return float(10.0 * np.log10((es + _EPS) / (en + _EPS)))


def activity(x: np.ndarray, sr: int, *, dynamic_range_db: float = 30.0):
  """Fraction of 50 ms frames in which `x` is active.

  A frame is active when its level is within `dynamic_range_db` of the loud
  frames (the 95th percentile of frame levels) and above -70 dBFS. Used like
  the DNS synthesizer's activity threshold to reject clips that are mostly
  silence.

  Args:
    x: real (T,) signal.
    sr: sample rate.
    dynamic_range_db: how far below the loud frames a frame still counts.

  Returns:
    A float in [0, 1].
  """
  win = max(1, int(round(0.05 * sr)))
  if len(x) < win:
    return 0.0
  n = len(x) // win
  e = np.mean(np.asarray(x[: n * win], np.float64).reshape(n, win) ** 2, 1)
  level = 10.0 * np.log10(e + _EPS)
  loud = np.percentile(level, 95)
  act = (level > loud - dynamic_range_db) & (level > -70.0)
  return float(np.mean(act))


def scale_to_snr(
  clean: np.ndarray, noise: np.ndarray, snr: float, sr: int
) -> np.ndarray:
  """Returns `noise` scaled so that `snr_db(clean, result, sr) == snr`."""
  return np.asarray(noise, np.float64) * 10.0 ** (
    (snr_db(clean, noise, sr) - snr) / 20.0
  )


@dataclasses.dataclass(frozen=True)
class Mixture:
  """A mixed example; all arrays real (T,) float64.

  Attributes:
    noisy: clean + noise.
    clean: scaled speech.
    noise: scaled noise.
    snr_db: the SNR that was set.
    level_db: the level of `noisy` after mixing (differs from the requested
      level only if the mixture was scaled down to avoid clipping).
    rescaled: whether that clipping guard fired.
  """

  noisy: np.ndarray
  clean: np.ndarray
  noise: np.ndarray
  snr_db: float
  level_db: float
  rescaled: bool


def mix(
  clean: np.ndarray,
  noise: np.ndarray,
  snr: float,
  level: float,
  sr: int,
  *,
  clip_threshold: float | None = 0.99,
) -> Mixture:
  """Mixes speech and noise at `snr` dB with the mixture at `level` dBFS.

  Args:
    clean: real (T,) speech (any scale, not all zero).
    noise: real (T,) noise (any scale, not all zero).
    snr: wanted SNR in dB (see `snr_db` for the definition).
    level: wanted RMS level of the noisy mixture in dBFS.
    sr: sample rate.
    clip_threshold: if the mixture's peak would exceed this, all three
      signals are scaled down together (the DNS rule) and the achieved level
      is reported; None disables the guard (float storage cannot clip).

  Returns:
    A `Mixture`.
  """
  clean = np.asarray(clean, np.float64)
  noise = np.asarray(noise, np.float64)
  if len(clean) != len(noise):
    raise ValueError(f'Lengths differ: {len(clean)} vs {len(noise)}.')
  if not np.any(clean) or not np.any(noise):
    raise ValueError('Cannot mix an all-zero clean or noise signal.')
  noise = scale_to_snr(clean, noise, snr, sr)
  noisy = clean + noise
  gain = 10.0 ** ((level - rms_db(noisy)) / 20.0)
  noisy, clean, noise = noisy * gain, clean * gain, noise * gain
  rescaled = False
  if clip_threshold is not None:
    peak = np.max(np.abs(noisy))
    if peak > clip_threshold:
      g = clip_threshold / peak
      noisy, clean, noise = noisy * g, clean * g, noise * g
      rescaled = True
  return Mixture(noisy, clean, noise, float(snr), rms_db(noisy), rescaled)
