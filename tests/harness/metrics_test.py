"""Tests for harness.metrics and its metrics_* helpers.

Signals are generated here (a harmonic, amplitude-modulated "speech-like"
tone); nothing is read from disk.
"""

import itertools
import math
import subprocess
import sys
import types

import numpy as np
import pytest
from scipy import linalg

from harness import metrics, metrics_common
from harness import metrics_composite as mc
from harness import metrics_dnsmos as md
from s4jax.audio import losses

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
  return x + level * np.random.default_rng(seed).standard_normal(x.shape)


# ------------------------------------------------------------ SNR family


def test_si_snr_closed_form_and_matches_jax_loss():
  t = np.sin(2 * np.pi * 7 * np.arange(2000) / 2000)
  n = np.cos(2 * np.pi * 7 * np.arange(2000) / 2000)
  got = float(metrics.si_snr(2.0 * t + 0.1 * n, t))
  want = 10 * np.log10(4 * np.sum(t**2) / (0.01 * np.sum(n**2)))
  assert abs(got - want) < 1e-6, f'expected {want}, got {got}'
  x = speech_like(0.5)
  y = noisy_copy(x, 0.05)
  jax_val = float(losses.si_snr(y.astype(np.float32), x.astype(np.float32)))
  assert abs(float(metrics.si_snr(y, x)) - jax_val) < 1e-3


def test_si_snr_silent_reference_is_floor_not_nan():
  got = float(metrics.si_snr(np.ones(100) * np.arange(100), np.zeros(100)))
  assert got == pytest.approx(-80.0), f'expected -80 dB, got {got}'


def test_si_snri_and_snr_closed_form():
  x = speech_like(0.5)
  noise = np.random.default_rng(2).standard_normal(x.shape) * 0.1
  noisy = x + noise
  est = x + 0.1 * noise  # 20 dB less noise, same direction.
  res = metrics.compute_metrics(
    ['si_snr', 'si_snri', 'snr', 'si_sdr', 'si_sdri'], est, x, noisy, SR
  )
  want_snr = 10 * np.log10(np.sum(x**2) / np.sum((0.1 * noise) ** 2))
  assert res['snr'] == pytest.approx(want_snr, abs=1e-6)
  want_i = float(metrics.si_snr(est, x) - metrics.si_snr(noisy, x))
  assert res['si_snri'] == pytest.approx(want_i, abs=1e-9)
  assert 15 < res['si_snri'] < 25, f'expected ~20 dB, got {res["si_snri"]}'
  assert res['si_sdr'] == pytest.approx(res['si_snr'], abs=1e-3)


# ------------------------------------------------------------- PESQ, STOI


def test_pesq_identical_is_maximum_and_matches_package():
  import pesq as pesq_lib

  x = speech_like(2.0)
  y = noisy_copy(x, 0.02)
  assert metrics.pesq(x, x, SR, 'wb') == pytest.approx(4.6439, abs=1e-3)
  assert metrics.pesq(x, x, SR, 'nb') == pytest.approx(4.5486, abs=1e-3)
  # Argument order: the wrapper takes (estimate, reference), pesq (ref, deg).
  for mode in ('wb', 'nb'):
    want = pesq_lib.pesq(SR, x, y, mode)
    got = metrics.pesq(y, x, SR, mode)
    assert got == want, f'{mode}: wrapper {got} vs package {want}'
    swapped = pesq_lib.pesq(SR, y, x, mode)
    assert swapped != want, 'test needs an asymmetric pair'


def test_pesq_resampling_rules():
  import pesq as pesq_lib

  x48 = speech_like(2.0, sr=48000)
  y48 = noisy_copy(x48, 0.02)
  x16 = metrics.resample(x48, 48000, 16000)
  y16 = metrics.resample(y48, 48000, 16000)
  got = metrics.pesq(y48, x48, 48000, 'wb')
  assert got == pesq_lib.pesq(16000, x16, y16, 'wb')
  x8 = speech_like(2.0, sr=8000)
  y8 = noisy_copy(x8, 0.02)
  assert metrics.pesq(y8, x8, 8000, 'nb') == pesq_lib.pesq(8000, x8, y8, 'nb')
  with pytest.raises(metrics.MetricError, match='Wide-band PESQ needs 16 kHz'):
    metrics.pesq(y8, x8, 8000, 'wb')
  x11 = metrics.resample(x8, 8000, 11025)
  got11 = metrics.pesq(x11, x11, 11025, 'nb')  # resampled to 8 kHz
  assert got11 == pytest.approx(4.5486, abs=1e-2)


def test_pesq_errors_are_clear():
  x = speech_like(2.0)
  with pytest.raises(metrics.MetricError, match='silent estimate'):
    metrics.pesq(np.zeros_like(x), x, SR)
  with pytest.raises(metrics.MetricError, match='too short'):
    metrics.pesq(x[:3000], x[:3000], SR)
  blip = np.r_[np.zeros(3600), x[8000:8400]]  # 25 ms of sound in 0.25 s
  with pytest.raises(metrics.MetricError, match='no speech'):
    metrics.pesq(blip, blip, SR)
  click = np.r_[np.zeros(3900), x[8000:8100]]  # NaN inside the C code
  with pytest.raises(metrics.MetricError, match='failed numerically'):
    metrics.pesq(click, click, SR)
  with pytest.raises(metrics.MetricError, match='different lengths'):
    metrics.pesq(x[:-1], x, SR)


def test_stoi_identical_is_one_and_matches_pystoi():
  import pystoi

  x = speech_like(2.0)
  y = noisy_copy(x, 0.05)
  assert metrics.stoi(x, x, SR) == pytest.approx(1.0, abs=1e-9)
  for extended in (False, True):
    want = pystoi.stoi(x, y, SR, extended=extended)
    assert metrics.stoi(y, x, SR, extended) == pytest.approx(want, abs=1e-12)
  with pytest.raises(metrics.MetricError, match='Too little speech'):
    metrics.stoi(x[:3000], x[:3000], SR)


# ---------------------------------------------------------------- DNSMOS


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


# ------------------------------------------------------------- composite


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


# ------------------------------------------------------------ separation


def _sources(num, length=4000, seed=0):
  rng = np.random.default_rng(seed)
  refs = rng.standard_normal((num, length))
  mix = refs.sum(0)
  est = refs + 0.2 * rng.standard_normal((num, length))
  est += 0.1 * mix  # some leakage
  return refs, est, mix


def test_pit_si_sdr_is_permutation_invariant_and_closed_form():
  refs, est, mix = _sources(3)
  base = metrics.compute_separation_metrics(
    est, refs, mix, ['si_sdr', 'si_sdri']
  )
  for p in itertools.permutations(range(3)):
    got = metrics.compute_separation_metrics(
      est[list(p)], refs, mix, ['si_sdr', 'si_sdri']
    )
    assert got == pytest.approx(base, abs=1e-9), f'perm {p}'
  want = np.mean([metrics.si_sdr(est[j], refs[j]) for j in range(3)])
  assert base['si_sdr'] == pytest.approx(want, abs=1e-9)
  mix_base = np.mean([metrics.si_sdr(mix, refs[j]) for j in range(3)])
  assert base['si_sdri'] == pytest.approx(want - mix_base, abs=1e-9)


def test_best_permutation_hungarian_equals_bruteforce():
  rng = np.random.default_rng(4)
  for _ in range(5):
    score = rng.standard_normal((5, 5))
    perm = metrics.best_permutation(score)
    best = max(
      itertools.permutations(range(5)),
      key=lambda p: sum(score[p[j], j] for j in range(5)),
    )
    assert tuple(perm) == best, f'{perm} vs {best}'


@pytest.mark.filterwarnings('ignore::FutureWarning')
@pytest.mark.filterwarnings('ignore::RuntimeWarning')
@pytest.mark.parametrize('num', [1, 2, 3])
def test_sdr_matches_mir_eval(num):
  from mir_eval import separation

  refs, est, mix = _sources(num, length=2000, seed=num)
  order = np.roll(np.arange(num), 1)
  got = metrics.compute_separation_metrics(
    est[order], refs, mix, ['sdr', 'sir', 'sar', 'sdri']
  )
  # mir_eval is slow: let it search the permutation only for 2 sources.
  shuffled = num == 2
  sdr, sir, sar, _ = separation.bss_eval_sources(
    refs, est[order] if shuffled else est, compute_permutation=shuffled
  )
  # fast_bss_eval solves the same least squares as mir_eval (to ~1e-3 dB).
  assert got['sdr'] == pytest.approx(sdr.mean(), abs=0.02), (got, sdr)
  assert got['sar'] == pytest.approx(sar.mean(), abs=0.02), (got, sar)
  if num == 1:
    assert got['sir'] == math.inf, got
  else:
    assert got['sir'] == pytest.approx(sir.mean(), abs=0.02), (got, sir)
  if num == 2:
    mix_sdr, _, _, _ = separation.bss_eval_sources(
      refs, np.stack([mix, mix]), compute_permutation=False
    )
    want = sdr.mean() - mix_sdr.mean()
    assert got['sdri'] == pytest.approx(want, abs=0.05), (got, want)


def test_separation_errors():
  refs, est, mix = _sources(2)
  with pytest.raises(metrics.MetricError, match='need the mixture'):
    metrics.compute_separation_metrics(est, refs, None, ['sdri'])
  with pytest.raises(metrics.MetricError, match='differ in shape'):
    metrics.compute_separation_metrics(est[:1], refs, mix)
  est0 = est.copy()
  est0[1] = 0
  errors = {}
  got = metrics.compute_separation_metrics(
    est0, refs, mix, ['sdr', 'si_sdr'], on_error='nan', errors=errors
  )
  assert math.isnan(got['sdr']) and 'silent estimate' in errors['sdr'], errors
  assert math.isfinite(got['si_sdr'])


# ------------------------------------------------------- entry points


def test_compute_metrics_input_errors():
  x = speech_like(0.5)
  with pytest.raises(metrics.MetricError, match='Unknown metric'):
    metrics.compute_metrics(['mos'], x, x)
  with pytest.raises(metrics.MetricError, match='need a reference'):
    metrics.compute_metrics(['si_snr'], x, None)
  with pytest.raises(metrics.MetricError, match='need the noisy'):
    metrics.compute_metrics(['si_snri'], x, x)
  with pytest.raises(metrics.MetricError, match='NaN or Inf'):
    metrics.compute_metrics(['si_snr'], np.full(10, np.nan), np.ones(10))
  with pytest.raises(metrics.MetricError, match='mono'):
    metrics.compute_metrics(['si_snr'], np.ones((2, 10)), np.ones((2, 10)))
  with pytest.raises(metrics.MetricError, match='empty'):
    metrics.compute_metrics(['si_snr'], np.ones(0), np.ones(0))
  with pytest.raises(metrics.MetricError, match='different lengths'):
    metrics.compute_metrics(['si_snr'], x[:-1], x)
  assert issubclass(metrics.MetricError, ValueError)


def test_compute_metrics_on_error_nan():
  x = speech_like(2.0)
  errors = {}
  got = metrics.compute_metrics(
    'si_snr,pesq_wb,stoi',
    np.zeros_like(x),
    x,
    on_error='nan',
    errors=errors,
  )
  assert math.isnan(got['pesq_wb']), got
  assert 'silent' in errors['pesq_wb'], errors
  assert got['si_snr'] == pytest.approx(-80.0, abs=1e-6)
  assert list(got) == ['si_snr', 'pesq_wb', 'stoi']


def test_evaluate_examples_parallel_equals_serial_and_summary():
  examples = []
  for seed in range(3):
    x = speech_like(1.0, seed=seed)
    examples.append({'estimate': noisy_copy(x, 0.03, seed), 'reference': x})
  examples.append((np.zeros(16000), examples[0]['reference']))  # fails PESQ
  names = ['si_snr', 'pesq_wb', 'stoi']
  serial = metrics.evaluate_examples(examples, names, SR, num_workers=0)
  parallel = metrics.evaluate_examples(examples, names, SR, num_workers=2)
  assert len(parallel) == 4
  for a, b in zip(serial, parallel, strict=True):
    for n in names:
      assert a[n] == pytest.approx(b[n], nan_ok=True), (n, a, b)
  assert 'pesq_wb' in serial[3]['errors'], serial[3]
  summary = metrics.summarize(serial)
  vals = np.array([r['pesq_wb'] for r in serial[:3]])
  assert summary['pesq_wb']['count'] == 3 and summary['pesq_wb']['failed'] == 1
  assert summary['pesq_wb']['mean'] == pytest.approx(vals.mean())
  assert summary['pesq_wb']['std'] == pytest.approx(vals.std())


def test_evaluate_examples_separation():
  refs, est, mix = _sources(2)
  res = metrics.evaluate_examples(
    [{'estimate': est, 'reference': refs, 'mixture': mix}],
    'si_sdr,si_sdri',
    task='separation',
  )
  want = metrics.compute_separation_metrics(
    est, refs, mix, ['si_sdr', 'si_sdri']
  )
  assert res[0] == pytest.approx(want)


def test_import_is_light():
  code = (
    'import sys; import harness.metrics, harness.metrics_composite, '
    'harness.metrics_dnsmos; heavy = [m for m in ("tensorflow", '
    '"pesq", "pystoi", "onnxruntime", "fast_bss_eval", "speechmos", '
    '"librosa") if m in sys.modules]; print(heavy); '
    'assert not heavy, heavy'
  )
  out = subprocess.run(
    [sys.executable, '-c', code], capture_output=True, text=True, check=False
  )
  assert out.returncode == 0, (
    f'heavy imports at import time: {out.stdout}{out.stderr}'
  )


def test_common_resample_identity_and_length():
  x = np.random.default_rng(0).standard_normal(800)
  assert metrics_common.resample(x, 8000, 8000) is not None
  np.testing.assert_array_equal(metrics_common.resample(x, 8000, 8000), x)
  assert metrics_common.resample(x, 8000, 16000).shape == (1600,)
