"""The built-in synthetic speech, noise and dataset."""

import hashlib
import os

import numpy as np
import pytest

from data_pipelines import mixing, noise_synth, speech_synth, synthetic

SR = 16000


def _spec(**kw):
  base = dict(total_seconds=4.0, clip_seconds=1.0, sample_rate=SR, seed=3)
  base.update(kw)
  return synthetic.SyntheticSpec(**base)


def _energy_snr(s, n):
  s, n = np.asarray(s, np.float64), np.asarray(n, np.float64)
  return 10 * np.log10(np.sum(s**2) / np.sum(n**2))


def _level(x):
  return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))


def _digest(ex):
  h = hashlib.sha256()
  for k in sorted(ex):
    if isinstance(ex[k], np.ndarray):
      h.update(ex[k].tobytes())
  return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs():
  a = synthetic.make_example(_spec(), 2)
  b = synthetic.make_example(_spec(), 2)
  c = synthetic.make_example(_spec(seed=4), 2)
  assert _digest(a) == _digest(b), 'same seed gave different bytes'
  assert _digest(a) != _digest(c), 'different seeds gave the same bytes'


def test_splits_never_share_a_seed_or_an_example():
  streams, digests = {}, {}
  for split in synthetic.SPLIT_CODES:
    spec = _spec(split=split, total_seconds=3.0)
    for i in range(spec.num_clips):
      seq = synthetic.example_rng(spec, i)
      streams[(split, i)] = tuple(seq.generate_state(4))
      digests[(split, i)] = _digest(synthetic.make_example(spec, i))
  assert len(set(streams.values())) == len(streams), 'a stream is shared'
  assert len(set(digests.values())) == len(digests), 'an example repeats'


@pytest.mark.parametrize('index', range(6))
def test_enhancement_snr_and_level_within_0p1_db(index):
  spec = _spec(total_seconds=6.0)
  ex = synthetic.make_example(spec, index)
  snr = _energy_snr(ex['clean'], ex['noise'])
  assert abs(snr - ex['snr_db']) < 0.1, (ex['noise_type'], snr, ex['snr_db'])
  assert abs(_level(ex['noisy']) - ex['level_db']) < 0.1
  assert -5.0 <= ex['snr_db'] <= 20.0 and -35.0 <= ex['level_db'] <= -15.0
  np.testing.assert_allclose(ex['noisy'], ex['clean'] + ex['noise'], atol=1e-6)


def test_separation_sources_sum_to_mixture_with_levels():
  spec = _spec(
    task='separation', num_sources=2, separation_noise=True, sample_rate=8000
  )
  for i in range(3):
    ex = synthetic.make_example(spec, i)
    assert ex['sources'].shape == (2, 8000), ex['sources'].shape
    speech = ex['sources'].sum(0)
    np.testing.assert_allclose(ex['mixture'], speech + ex['noise'], atol=1e-6)
    assert abs(_energy_snr(speech, ex['noise']) - ex['snr_db']) < 0.1
    assert abs(_level(ex['mixture']) - ex['level_db']) < 0.1
    rel = _level(ex['sources'][1]) - _level(ex['sources'][0])
    assert -5.1 <= rel <= 5.1, f'relative speaker level {rel} dB'


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


def test_speech_pitch_and_syllable_rhythm():
  rng = np.random.default_rng(5)
  talker = speech_synth.sample_talker(rng, 'female')
  x = speech_synth.synthesize(rng, talker, 8 * SR, SR)
  # Pitch: autocorrelation peak of the loudest 40 ms frames.
  frame = int(0.04 * SR)
  frames = x[: len(x) // frame * frame].reshape(-1, frame)
  loud = frames[np.argsort(np.sum(frames**2, 1))[-20:]]
  lags = np.arange(SR // 400, SR // 60)
  f0s = []
  for fr in loud:
    ac = np.correlate(fr, fr, 'full')[frame - 1 :]
    f0s.append(SR / lags[np.argmax(ac[lags])])
  f0 = np.median(f0s)
  assert 0.7 * talker.f0 < f0 < 1.5 * talker.f0, (f0, talker.f0)
  # Rhythm: the envelope's modulation spectrum peaks at syllable rates.
  env = np.sqrt(np.mean(frames**2, 1))  # 25 Hz envelope
  spec = np.abs(np.fft.rfft(env - env.mean()))
  freqs = np.fft.rfftfreq(len(env), 0.04)
  peak = freqs[1:][np.argmax(spec[1:])]
  assert 0.5 <= peak <= 8.0, f'envelope modulation peak at {peak} Hz'


def test_speech_energy_mostly_below_4khz_and_pauses():
  rng = np.random.default_rng(6)
  x = speech_synth.synthesize(rng, speech_synth.sample_talker(rng), 6 * SR, SR)
  psd = np.abs(np.fft.rfft(x)) ** 2
  f = np.fft.rfftfreq(len(x), 1 / SR)
  share = psd[f < 4000].sum() / psd.sum()
  assert share > 0.8, f'only {share:.2f} of the energy below 4 kHz'
  act = mixing.activity(x, SR)
  assert 0.3 < act < 0.98, f'activity {act}: speech needs pauses'


def test_cache_generates_once_and_reloads(tmp_path, monkeypatch):
  spec = _spec(total_seconds=2.0, sample_rate=8000)
  first = synthetic.load_or_generate(spec, str(tmp_path))
  assert first.arrays['noisy'].shape == (2, 8000)
  monkeypatch.setattr(synthetic, '_generate_into', pytest.fail)
  again = synthetic.load_or_generate(spec, str(tmp_path))
  assert again.folder == first.folder
  np.testing.assert_array_equal(again.arrays['clean'], first.arrays['clean'])
  other = _spec(total_seconds=2.0, sample_rate=8000, seed=9)
  assert other.key() != spec.key(), 'cache key ignores the seed'
  assert not [
    p for p in os.listdir(os.path.dirname(first.folder)) if '.tmp-' in p
  ], 'temporary folder left behind'


def test_parallel_generation_matches_serial(tmp_path):
  spec = _spec(total_seconds=10.0, clip_seconds=0.5, sample_rate=8000)
  serial = synthetic.load_or_generate(spec, str(tmp_path / 'a'))
  parallel = synthetic.load_or_generate(
    spec, str(tmp_path / 'b'), num_workers=2
  )
  for k in serial.arrays:
    np.testing.assert_array_equal(serial.arrays[k], parallel.arrays[k])
  assert serial.meta['snr_db'] == parallel.meta['snr_db']


@pytest.mark.parametrize(
  'kw,match',
  [
    (dict(task='denoise'), 'task'),
    (dict(split='dev'), 'Unknown split'),
    (dict(snr_range=(5.0, 0.0)), 'snr_range'),
    (dict(level_range=(-10.0, 3.0)), 'level_range'),
  ],
)
def test_spec_errors(kw, match):
  with pytest.raises(ValueError, match=match):
    _spec(**kw)
