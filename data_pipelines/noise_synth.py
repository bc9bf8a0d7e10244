"""Procedural background noise (pure NumPy), one function per noise type.

Every generator maps `(rng, num_samples, sr)` to a real (T,) float64 signal
with unit RMS and no gaps of silence, so that the whole-clip SNR equals the
SNR of `mixing.snr_db`. `sample_noise` draws a type (and sometimes a second
type underneath) and adds a slow level fluctuation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from data_pipelines import speech_synth

_EPS = 1e-12


def _unit_rms(x: np.ndarray) -> np.ndarray:
  return x / (np.sqrt(np.mean(x**2)) + _EPS)


def _shaped(rng, num_samples: int, gain: Callable[[np.ndarray], np.ndarray]):
  """White noise shaped in the frequency domain by `gain(freq_hz_norm)`."""
  spec = np.fft.rfft(rng.standard_normal(num_samples))
  f = np.fft.rfftfreq(num_samples)  # cycles per sample, 0..0.5
  return _unit_rms(np.fft.irfft(spec * gain(f), n=num_samples))


def colored(rng, num_samples: int, sr: int, exponent: float) -> np.ndarray:
  """Noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown).

  The spectrum is flat below 20 Hz so brown noise has no huge DC drift.
  """
  f_min = 20.0 / sr
  return _shaped(
    rng, num_samples, lambda f: np.maximum(f, f_min) ** (-exponent / 2)
  )


def white(rng, num_samples, sr):
  """White noise."""
  return colored(rng, num_samples, sr, 0.0)


def pink(rng, num_samples, sr):
  """Pink (1/f) noise."""
  return colored(rng, num_samples, sr, 1.0)


def brown(rng, num_samples, sr):
  """Brown (1/f^2) noise."""
  return colored(rng, num_samples, sr, 2.0)


def babble(rng, num_samples, sr):
  """3 to 7 overlapping synthetic talkers at random levels (within 12 dB)."""
  out = np.zeros(num_samples)
  for _ in range(int(rng.integers(3, 8))):
    talker = speech_synth.sample_talker(rng)
    x = speech_synth.synthesize(rng, talker, num_samples, sr)
    out += x * 10.0 ** (rng.uniform(-12.0, 0.0) / 20.0)
  out += 0.01 * pink(rng, num_samples, sr)  # room tone, so no digital gaps
  return _unit_rms(out)


def hum(rng, num_samples, sr):
  """Mains hum: 50 or 60 Hz with a slowly wandering frequency and harmonics.

  Harmonic amplitudes fall as k^-a; a 'buzz' variant emphasises odd
  harmonics (transformer or ground-loop buzz). A faint pink floor is added.
  """
  f0 = rng.choice([50.0, 60.0]) * (1.0 + rng.uniform(-0.003, 0.003))
  t = np.arange(num_samples) / sr
  wander = 1.0 + 0.001 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)
  phase = 2 * np.pi * f0 * np.cumsum(wander) / sr
  decay = rng.uniform(0.5, 1.5)
  buzz = rng.random() < 0.4
  out = np.zeros(num_samples)
  for k in range(1, int(min(40, 0.45 * sr / f0)) + 1):
    amp = k**-decay * (2.0 if buzz and k % 2 else 1.0)
    out += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
  out = _unit_rms(out)
  return _unit_rms(
    out + 10 ** (rng.uniform(-35, -20) / 20) * pink(rng, num_samples, sr)
  )


def clicks(rng, num_samples, sr):
  """Transient clicks and knocks over a quiet noise floor.

  Events arrive as a Poisson process (1-8 per second); each is either a
  decaying noise burst (keyboard, crackle) or a damped resonance (knock, tap)
  at a random level within 12 dB.
  """
  out = np.zeros(num_samples)
  rate = rng.uniform(1.0, 8.0)
  count = rng.poisson(rate * num_samples / sr)
  for start in rng.integers(0, num_samples, size=count):
    dur = int(sr * rng.uniform(0.003, 0.06))
    t = np.arange(dur) / sr
    tau = rng.uniform(0.001, 0.015)
    if rng.random() < 0.5:
      ev = rng.standard_normal(dur) * np.exp(-t / tau)
    else:
      f = rng.uniform(150.0, min(3000.0, 0.4 * sr))
      ev = np.sin(2 * np.pi * f * t) * np.exp(-t / tau)
    ev *= 10.0 ** (rng.uniform(-12.0, 0.0) / 20.0)
    end = min(num_samples, start + dur)
    out[start:end] += ev[: end - start]
  floor = 10.0 ** (rng.uniform(-30.0, -20.0) / 20.0)
  out = _unit_rms(out) if np.any(out) else out
  return _unit_rms(out + floor * pink(rng, num_samples, sr))


def machine(rng, num_samples, sr):
  """Band-limited machine noise (motor, fan, engine).

  A noise band, amplitude-modulated at a rotation rate, plus a few tonal
  whines with a slight frequency wobble.
  """
  lo = rng.uniform(60.0, 1500.0)
  hi = min(lo * 2.0 ** rng.uniform(0.5, 3.0), 0.45 * sr)
  lo_n, hi_n = lo / sr, hi / sr
  band = _shaped(
    rng,
    num_samples,
    lambda f: 1.0 / (1.0 + ((f - np.sqrt(lo_n * hi_n)) / (hi_n - lo_n)) ** 4),
  )
  t = np.arange(num_samples) / sr
  rot = rng.uniform(5.0, 40.0)
  mod = 1.0 + rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * rot * t)
  out = band * mod
  for _ in range(int(rng.integers(1, 4))):
    f = rng.uniform(100.0, min(4000.0, 0.4 * sr))
    vib = 1.0 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t)
    tone = np.sin(2 * np.pi * f * np.cumsum(vib) / sr)
    out += 10.0 ** (rng.uniform(-20.0, -3.0) / 20.0) * tone
  return _unit_rms(out)


NOISE_TYPES: dict[str, Callable[..., np.ndarray]] = {
  'white': white,
  'pink': pink,
  'brown': brown,
  'babble': babble,
  'hum': hum,
  'clicks': clicks,
  'machine': machine,
}


def sample_noise(
  rng: np.random.Generator, num_samples: int, sr: int
) -> tuple[np.ndarray, str]:
  """Draws one noise clip.

  A primary type is drawn uniformly from NOISE_TYPES; with probability 0.3 a
  second, different type is added 0-10 dB lower. With probability 0.5 the
  level drifts slowly (+-3 dB over a few seconds), as real noise does.

  Args:
    rng: random generator.
    num_samples: length.
    sr: sample rate.

  Returns:
    (noise, name): real (T,) unit-RMS noise and its type, e.g. 'pink+hum'.
  """
  names = sorted(NOISE_TYPES)
  first = names[rng.integers(len(names))]
  out, name = NOISE_TYPES[first](rng, num_samples, sr), first
  if rng.random() < 0.3:
    second = names[rng.integers(len(names))]
    if second != first:
      g = 10.0 ** (-rng.uniform(0.0, 10.0) / 20.0)
      out = out + g * NOISE_TYPES[second](rng, num_samples, sr)
      name = f'{first}+{second}'
  if rng.random() < 0.5:
    t = np.arange(num_samples) / sr
    db = 3.0 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6))
    out = out * 10.0 ** (db / 20.0)
  return _unit_rms(out), name
