"""Tests for data_pipelines.noise_synth: procedural background noise."""

import numpy as np
import pytest

from data_pipelines import mixing, noise_synth

SR = 16000


def _rms(x):
  return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def test_noise_types_unit_rms_without_gaps():
  rng = np.random.default_rng(0)
  for name, fn in noise_synth.NOISE_TYPES.items():
    x = fn(rng, 2 * SR, SR)
    assert np.all(np.isfinite(x)) and abs(np.sqrt(np.mean(x**2)) - 1) < 1e-6
    gated = mixing.noise_active_windows(x, SR)
    assert gated.all(), (
      f'{name}: silent 100 ms windows {np.flatnonzero(~gated)}'
    )


@pytest.mark.parametrize(
  'name,slope', [('white', 0), ('pink', -1), ('brown', -2)]
)
def test_colored_noise_spectral_slope(name, slope):
  x = noise_synth.NOISE_TYPES[name](np.random.default_rng(1), 8 * SR, SR)
  psd = np.abs(np.fft.rfft(x)) ** 2
  f = np.fft.rfftfreq(len(x), 1 / SR)
  band = (f > 100) & (f < 4000)
  fit = np.polyfit(np.log10(f[band]), np.log10(psd[band]), 1)[0]
  assert abs(fit - slope) < 0.1, f'{name}: log-log PSD slope {fit}'


@pytest.mark.parametrize('name', sorted(noise_synth.NOISE_TYPES))
def test_each_type_is_a_float64_function_of_the_seed(name):
  fn = noise_synth.NOISE_TYPES[name]
  a = fn(np.random.default_rng(7), 4000, 8000)
  b = fn(np.random.default_rng(7), 4000, 8000)
  c = fn(np.random.default_rng(8), 4000, 8000)
  assert a.shape == (4000,) and a.dtype == np.float64, (a.shape, a.dtype)
  assert a.tobytes() == b.tobytes(), f'{name}: same seed, different noise'
  assert a.tobytes() != c.tobytes(), f'{name}: other seed, same noise'


@pytest.mark.parametrize('seed', range(4))
def test_hum_fundamental_is_mains_50_or_60_hz(seed):
  # The wander is +-0.3 % around 50 or 60 Hz; bins are 0.5 Hz wide.
  x = noise_synth.hum(np.random.default_rng(seed), 2 * SR, SR)
  psd = np.abs(np.fft.rfft(x)) ** 2
  f = np.fft.rfftfreq(len(x), 1 / SR)
  peak = f[np.argmax(psd)]
  assert min(abs(peak - 50.0), abs(peak - 60.0)) <= 1.0, (
    f'expected the spectral peak at 50 or 60 Hz, got {peak} Hz'
  )


def test_sample_noise_is_unit_rms_of_known_types_and_seeded():
  seen = set()
  for seed in range(30):
    x, name = noise_synth.sample_noise(np.random.default_rng(seed), 4000, 8000)
    again, _ = noise_synth.sample_noise(np.random.default_rng(seed), 4000, 8000)
    assert x.tobytes() == again.tobytes(), f'seed {seed}: not repeatable'
    assert x.shape == (4000,) and x.dtype == np.float64, (x.shape, x.dtype)
    assert abs(_rms(x) - 1.0) < 1e-6, f'{name}: RMS {_rms(x)}, expected 1'
    parts = name.split('+')
    assert set(parts) <= set(noise_synth.NOISE_TYPES), f'unknown {name!r}'
    assert len(parts) == len(set(parts)) <= 2, f'bad combination {name!r}'
    seen.update(parts)
  assert len(seen) >= 5, f'30 draws used only the types {sorted(seen)}'
