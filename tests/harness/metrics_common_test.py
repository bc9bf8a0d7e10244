"""Tests for harness.metrics_common: input checks and resampling."""

import numpy as np
import pytest

from harness import metrics_common
from harness.metrics_common import MetricError


def test_common_resample_identity_and_length():
  x = np.random.default_rng(0).standard_normal(800)
  assert metrics_common.resample(x, 8000, 8000) is not None
  np.testing.assert_array_equal(metrics_common.resample(x, 8000, 8000), x)
  assert metrics_common.resample(x, 8000, 16000).shape == (1600,)


def test_resample_keeps_a_low_tone_at_its_frequency():
  # A 200 Hz tone at 8 kHz upsampled to 16 kHz is the same tone sampled at
  # 16 kHz (up to the filter's edge effects, left out here).
  f, n = 200.0, 8000
  x = np.sin(2 * np.pi * f * np.arange(n) / 8000)
  got = metrics_common.resample(x, 8000, 16000)
  want = np.sin(2 * np.pi * f * np.arange(2 * n) / 16000)
  err = np.max(np.abs(got[400:-400] - want[400:-400]))
  assert err < 1e-3, f'expected the 16 kHz tone within 1e-3, max error {err}'


@pytest.mark.parametrize('rates', [(0, 16000), (16000, -8000)])
def test_resample_rejects_non_positive_rates(rates):
  with pytest.raises(MetricError, match=f'{rates[0]} -> {rates[1]}'):
    metrics_common.resample(np.ones(100), *rates)


def test_metric_error_is_a_value_error():
  assert issubclass(MetricError, ValueError), MetricError.__mro__


@pytest.mark.parametrize('shape', [(5,), (1, 5), (5, 1)])
def test_as_signal_gives_float64_mono(shape):
  x = np.arange(5, dtype=np.int16).reshape(shape)
  got = metrics_common.as_signal(x, 'estimate')
  assert got.shape == (5,), f'expected shape (5,), got {got.shape}'
  assert got.dtype == np.float64, f'expected float64, got {got.dtype}'
  np.testing.assert_array_equal(got, np.arange(5.0))


@pytest.mark.parametrize(
  'x, match',
  [
    (np.ones((2, 5)), r'estimate must be a mono signal .*\(2, 5\)'),
    (np.ones(0), 'estimate is empty'),
    (np.array(['a', 'b']), 'estimate has non-numeric dtype'),
    (np.array([0.0, np.inf]), 'estimate contains NaN or Inf'),
    (np.array([np.nan, 0.0]), 'estimate contains NaN or Inf'),
  ],
)
def test_as_signal_rejects_bad_input_naming_it(x, match):
  with pytest.raises(MetricError, match=match):
    metrics_common.as_signal(x, 'estimate')


def test_check_same_length_names_both_lengths():
  metrics_common.check_same_length(np.ones((2, 7)), np.ones(7), 'a and b')
  with pytest.raises(MetricError, match=r'a and b .*\(6 vs 7 samples\)'):
    metrics_common.check_same_length(np.ones(6), np.ones(7), 'a and b')
