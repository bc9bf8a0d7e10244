"""SNR/level mixing against float64 closed forms."""

import numpy as np
import pytest

from data_pipelines import mixing

SR = 16000


def _energy_snr(s, n):
  s, n = np.asarray(s, np.float64), np.asarray(n, np.float64)
  return 10 * np.log10(np.sum(s**2) / np.sum(n**2))


def _level(x):
  return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))


@pytest.mark.parametrize('snr,level', [(-5.0, -35.0), (7.3, -25.0), (20, -15)])
def test_mix_sets_snr_and_level(snr, level):
  rng = np.random.default_rng(0)
  clean = rng.standard_normal(SR) * np.hanning(SR)
  noise = 3.0 * rng.standard_normal(SR)
  m = mixing.mix(clean, noise, snr, level, SR, clip_threshold=None)
  assert abs(_energy_snr(m.clean, m.noise) - snr) < 1e-6, 'SNR off'
  assert abs(_level(m.noisy) - level) < 1e-6, 'level off'
  np.testing.assert_allclose(m.noisy, m.clean + m.noise, atol=1e-12)


def test_snr_ignores_silent_gaps_in_noise():
  rng = np.random.default_rng(1)
  clean = rng.standard_normal(2 * SR)
  noise = rng.standard_normal(2 * SR)
  noise[SR : SR + SR // 2] = 0.0  # 0.5 s of digital silence
  keep = np.ones(2 * SR, bool)
  keep[SR : SR + SR // 2] = False
  expected = _energy_snr(clean[keep], noise[keep])
  got = mixing.snr_db(clean, noise, SR)
  assert abs(got - expected) < 1e-9, f'expected {expected}, got {got}'


def test_clipping_guard_scales_everything_and_reports_level():
  rng = np.random.default_rng(2)
  clean = rng.standard_normal(SR)
  clean[100] = 60.0  # a huge peak
  m = mixing.mix(clean, rng.standard_normal(SR), 10.0, -15.0, SR)
  assert m.rescaled and np.max(np.abs(m.noisy)) <= 0.99 + 1e-12
  assert abs(m.level_db - _level(m.noisy)) < 1e-6, 'reported level wrong'
  assert abs(_energy_snr(m.clean, m.noise) - 10.0) < 1e-6, 'SNR changed'


def test_activity_fraction():
  x = np.zeros(2 * SR)
  x[:SR] = np.random.default_rng(3).standard_normal(SR)
  assert abs(mixing.activity(x, SR) - 0.5) < 0.03
  assert mixing.activity(np.zeros(SR), SR) == 0.0


def test_mix_rejects_silence():
  with pytest.raises(ValueError, match='all-zero'):
    mixing.mix(np.zeros(100), np.ones(100), 0.0, -20.0, SR)
