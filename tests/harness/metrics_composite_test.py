"""Tests for harness.metrics_composite: CSIG/CBAK/COVL and their components.

Components (LLR, WSS, segmental SNR) are checked against closed forms and
direct per-frame formulas; the combination against the Hu & Loizou (2008)
coefficients.
"""

import math

import numpy as np
import pytest
from scipy import linalg

from harness import metrics
from harness import metrics_composite as mc
from tests.harness.speech_signals import SR, noisy_copy, speech_like


def test_composite_linear_combinations_and_clipping():
  got = mc.combine(pesq=3.0, llr=0.5, wss=30.0, segsnr=10.0)
  assert got['csig'] == pytest.approx(
    3.093 - 1.029 * 0.5 + 0.603 * 3.0 - 0.009 * 30.0
  )
  assert got['cbak'] == pytest.approx(
    1.634 + 0.478 * 3.0 - 0.007 * 30.0 + 0.063 * 10.0
  )
  assert got['covl'] == pytest.approx(
    1.594 + 0.805 * 3.0 - 0.512 * 0.5 - 0.007 * 30.0
  )
  low = mc.combine(pesq=1.0, llr=2.0, wss=150.0, segsnr=-10.0)
  high = mc.combine(pesq=4.6, llr=0.0, wss=0.0, segsnr=35.0)
  assert low == {'csig': 1.0, 'cbak': 1.0, 'covl': 1.0}, low
  assert high == {'csig': 5.0, 'cbak': 5.0, 'covl': 5.0}, high
  mid = mc.combine(pesq=2.0, llr=0.0, wss=0.0, segsnr=5.0)
  assert mid['cbak'] == pytest.approx(1.634 + 0.478 * 2.0 + 0.063 * 5.0)


def test_composite_components_closed_forms():
  x = speech_like(1.0)
  # Identical signals: no distortion, segSNR at its 35 dB ceiling.
  assert mc.llr(x, x, SR) == pytest.approx(0.0, abs=1e-9)
  assert mc.wss(x, x, SR) == pytest.approx(0.0, abs=1e-9)
  assert mc.segsnr(x, x, SR) == pytest.approx(35.0)
  # A gain g: same LPC and spectral slopes; every frame SNR = -20 log10|1-g|.
  assert mc.llr(x, 0.5 * x, SR) == pytest.approx(0.0, abs=1e-9)
  assert mc.wss(x, 0.5 * x, SR) == pytest.approx(0.0, abs=1e-9)
  assert mc.segsnr(x, 0.5 * x, SR) == pytest.approx(20 * np.log10(2), 1e-6)
  assert mc.segsnr(x, 11 * x, SR) == pytest.approx(-10.0)  # -20 dB, clipped.


def test_segsnr_frames_against_direct_loop():
  x = speech_like(0.5)
  y = noisy_copy(x, 0.05)
  win, hop = 480, 120
  w = 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, win + 1) / (win + 1)))
  eps = np.finfo(float).eps
  want = []
  for m in range(int(len(x) / hop - win / hop)):
    a = (x[m * hop : m * hop + win] + eps) * w
    b = (y[m * hop : m * hop + win] + eps) * w
    s = 10 * math.log10(np.sum(a**2) / (np.sum((a - b) ** 2) + eps) + eps)
    want.append(min(max(s, -10), 35))
  np.testing.assert_allclose(mc.segsnr_frames(x, y, SR), want, atol=1e-9)


def test_levinson_matches_direct_toeplitz_solve():
  rng = np.random.default_rng(3)
  frames = rng.standard_normal((5, 240)) * np.hanning(240)
  r = mc.autocorrelation(frames, 10)
  a = mc.levinson(r)
  for m in range(5):
    want = np.concatenate([[1.0], -linalg.solve_toeplitz(r[m, :-1], r[m, 1:])])
    np.testing.assert_allclose(a[m], want, rtol=1e-8, atol=1e-10)


def test_llr_frames_against_direct_formula():
  x = speech_like(0.3, sr=8000)
  y = noisy_copy(x, 0.05)
  got = mc.llr_frames(x, y, 8000)
  eps = np.finfo(float).eps
  fx, fy = mc.frames(x + eps, 8000), mc.frames(y + eps, 8000)
  for m in (0, 5, len(got) - 1):
    rx = np.array([np.dot(fx[m, : 240 - k], fx[m, k:]) for k in range(11)])
    ry = np.array([np.dot(fy[m, : 240 - k], fy[m, k:]) for k in range(11)])
    ax = np.concatenate([[1.0], -linalg.solve_toeplitz(rx[:-1], rx[1:])])
    ay = np.concatenate([[1.0], -linalg.solve_toeplitz(ry[:-1], ry[1:])])
    big = linalg.toeplitz(rx)
    want = np.log(ay @ big @ ay / (ax @ big @ ax))
    assert got[m] == pytest.approx(want, rel=1e-6), f'frame {m}'
    assert got[m] >= 0, 'LLR is >= 0: a_x minimises a R_x a^T'


def test_wss_nearest_peaks_hand_example():
  energy = np.array([[0.0, 5.0, 9.0, 4.0, 2.0, 6.0]])
  slope = np.diff(energy, axis=-1)  # [5, 4, -5, -2, 4]
  got = mc.nearest_peaks(energy, slope)
  # Rising bands take energy[n - 1] (n = first non-rising slope), falling
  # bands take energy[n + 1] (n = last rising slope to the left).
  np.testing.assert_array_equal(got, [[5.0, 5.0, 9.0, 9.0, 2.0]])


def test_wss_symmetric_and_positive():
  x = speech_like(0.5)
  y = noisy_copy(x, 0.05)
  a, b = mc.wss(x, y, SR), mc.wss(y, x, SR)
  assert a > 1.0, f'expected a clear distortion, got {a}'
  assert a == pytest.approx(b, rel=1e-9), 'WSS weights are symmetric'


def test_critical_band_filters_shape_and_peaks():
  filt = mc.critical_band_filters(16000, 1024)
  assert filt.shape == (25, 512)
  peaks = filt.argmax(axis=-1)
  want = np.floor(mc.CENTER_FREQS / 8000 * 512)
  np.testing.assert_array_equal(peaks, want)
  # Peak heights scale as bw_min / bw (equal-area normalisation).
  np.testing.assert_allclose(filt.max(-1), 70.0 / mc.BANDWIDTHS, rtol=1e-12)


def test_mos_lqo_raw_roundtrip():
  for raw in (1.0, 2.5, 4.0):
    lqo = 0.999 + 4.0 / (1 + np.exp(-1.4945 * raw + 4.6607))
    assert mc.mos_lqo_to_raw(lqo) == pytest.approx(raw, abs=1e-9)


def test_composite_uses_components_and_pesq():
  x = speech_like(2.0)
  y = noisy_copy(x, 0.02)
  res = metrics.compute_metrics(
    ['pesq_wb', 'csig', 'cbak', 'covl', 'llr', 'wss', 'segsnr'], y, x
  )
  want = mc.combine(res['pesq_wb'], res['llr'], res['wss'], res['segsnr'])
  for k, v in want.items():
    assert res[k] == pytest.approx(v, abs=1e-12), k
  at8k = mc.composite(x[::2], y[::2], 8000)
  raw = mc.mos_lqo_to_raw(metrics.pesq(y[::2], x[::2], 8000, 'nb'))
  assert at8k['composite_pesq'] == pytest.approx(raw)
