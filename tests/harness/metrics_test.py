"""Tests for harness.metrics: SNR family, PESQ, STOI, separation, entry points.

Signals come from tests/harness/speech_signals.py; nothing is read from disk.
DNSMOS, the composite measures and the shared input checks have their own
files (metrics_dnsmos_test.py, metrics_composite_test.py,
metrics_common_test.py).
"""

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from harness import metrics
from s4jax.audio import losses
from tests.harness.speech_signals import SR, noisy_copy, speech_like

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
