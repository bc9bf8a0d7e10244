"""Tests for data_pipelines.synthetic: the built-in synthetic dataset.

Its speech and noise generators: speech_synth_test.py, noise_synth_test.py.
"""

import hashlib
import os

import numpy as np
import pytest

from data_pipelines import synthetic

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
