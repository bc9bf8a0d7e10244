"""Tests for harness.metrics_dnsmos: windowing, polyfit, the ONNX scores.

The reference is the DNS Challenge DNSMOS script as packaged by speechmos.
"""

import sys
import types

import numpy as np
import pytest

from harness import metrics
from harness import metrics_dnsmos as md
from tests.harness.speech_signals import SR, speech_like


def test_dnsmos_polyfit_matches_challenge_coefficients():
  raw = np.array([[1.0, 2.0, 3.0], [3.5, 3.0, 2.5]])
  got = md.polyfit(raw)
  p_sig = np.poly1d([-0.08397278, 1.22083953, 0.00524390])
  p_bak = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
  p_ovr = np.poly1d([-0.06766283, 1.11546468, 0.04602535])
  want = np.stack([p_sig(raw[:, 0]), p_bak(raw[:, 1]), p_ovr(raw[:, 2])], -1)
  np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize(
  'num_samples,want,want_all',
  [
    (9600, 1, 1),
    (16000, 7, 7),
    (144160, 1, 1),
    (16000 * 12, 3, 3),
    (16000 * 30, 7, 21),
  ],
)
def test_dnsmos_window_count(num_samples, want, want_all):
  # Tile by doubling to >= 9.01 s, then floor(len / fs - 9.01) + 1 windows;
  # the reference scripts lose windows 7 <= idx <= 23 to float rounding:
  # int((7 + 9.01) * 16000) - 7 * 16000 == 144159 < 144160.
  assert int((7 + 9.01) * 16000) - 7 * 16000 == 144159
  got = md.windows(np.ones(num_samples)).shape
  assert got == (want, 144160), f'expected ({want}, 144160), got {got}'
  got = md.windows(np.ones(num_samples), all_windows=True).shape
  assert got == (want_all, 144160), f'expected ({want_all}, ...), got {got}'


def test_dnsmos_tiles_short_audio():
  x = np.arange(9600, dtype=np.float64) / 9600
  w = md.windows(x)[0]
  np.testing.assert_array_equal(w[9600 : 2 * 9600], x.astype(np.float32))


def test_dnsmos_matches_speechmos_reference(monkeypatch):
  """speechmos.dnsmos (librosa stubbed: its P.808 branch is not compared)."""
  librosa = types.ModuleType('librosa')
  librosa.feature = types.SimpleNamespace(
    melspectrogram=lambda y, sr, n_fft, hop_length, n_mels: np.zeros(
      (n_mels, len(y) // hop_length)
    )
  )
  librosa.power_to_db = lambda x, ref=None: x
  monkeypatch.setitem(sys.modules, 'librosa', librosa)
  monkeypatch.delitem(sys.modules, 'speechmos.dnsmos', raising=False)
  from speechmos import dnsmos as sm

  x = speech_like(0.6)  # tiled to 9.6 s: one window.
  want = sm.run(x, SR)
  got = metrics.compute_metrics(
    ['dnsmos_sig', 'dnsmos_bak', 'dnsmos_ovrl'], x, sample_rate=SR
  )
  for ours, theirs in [('sig', 'sig'), ('bak', 'bak'), ('ovrl', 'ovrl')]:
    assert got[f'dnsmos_{ours}'] == pytest.approx(
      float(want[f'{theirs}_mos']), abs=1e-5
    ), f'{ours}: ours {got[f"dnsmos_{ours}"]} vs speechmos {want}'
  assert all(1.0 <= v <= 5.0 for v in got.values()), got


def test_dnsmos_resamples_and_rejects_bad_input():
  x8 = speech_like(0.3, sr=8000)
  a = md.dnsmos(x8, 8000)
  b = md.dnsmos(metrics.resample(x8, 8000, 16000), 16000)
  assert a == pytest.approx(b, abs=1e-9)
  with pytest.raises(metrics.MetricError, match='16000 Hz'):
    md.dnsmos(x8, 8000, resample=False)
  with pytest.raises(metrics.MetricError, match='NaN'):
    md.dnsmos(np.full(100, np.nan))
