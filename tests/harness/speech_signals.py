"""Synthetic speech-like test signals for the metric tests (no disk reads)."""

import numpy as np

SR = 16000


def speech_like(seconds=2.0, sr=SR, seed=0):
  """Voiced harmonic signal with syllable-rate envelope and pauses."""
  rng = np.random.default_rng(seed)
  n = int(seconds * sr)
  t = np.arange(n) / sr
  f0 = 110 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
  phase = 2 * np.pi * np.cumsum(f0) / sr
  x = np.zeros(n)
  for k in range(1, 30):
    amp = (
      np.exp(-(((k * 120 - 500) / 400) ** 2))
      + 0.5 * np.exp(-(((k * 120 - 1500) / 500) ** 2))
      + 0.05
    )
    x += amp / k * np.sin(k * phase + rng.uniform(0, 6))
  env = np.sin(np.pi * 3.5 * t) ** 2 * (np.sin(np.pi * 0.6 * t + 0.3) > -0.3)
  x = x * env + 0.002 * rng.standard_normal(n)
  return 0.3 * x / np.abs(x).max()


def noisy_copy(x, level=0.02, seed=1):
  """`x` plus white Gaussian noise of standard deviation `level`."""
  return x + level * np.random.default_rng(seed).standard_normal(x.shape)
