"""Tests for data_pipelines.offline: reading a built corpus, making examples.

The corpus is built from the fake source tree of offline_tree.py.
"""

import os

import numpy as np
import pytest

from configs import base
from data_pipelines import offline, offline_build


def test_changed_manifest_or_missing_marker_is_not_read(corpus, tmp_path):
  folder, _ = corpus
  import shutil

  copy = str(tmp_path / 'copy')
  shutil.copytree(folder, copy)
  with open(os.path.join(copy, 'manifest.csv'), 'a') as f:
    f.write('extra\n')
  with pytest.raises(offline.CorpusError, match='changed after the build'):
    offline.check_corpus(copy)
  os.remove(os.path.join(copy, offline_build.MARKER))
  with pytest.raises(offline.CorpusError, match='incomplete'):
    offline.check_corpus(copy)
  with pytest.raises(
    offline.CorpusError, match='(?s)No offline corpus.*--install'
  ):
    offline.check_corpus(str(tmp_path / 'nothing'))


def test_reverberant_target_and_separation(corpus):
  folder, _ = corpus
  split = offline.load_split(folder, 'train')
  spec = offline.MixSpec(
    clip_seconds=1.0, reverb_prob=1.0, synthetic_noise_prob=0.0, seed=1
  )
  ex = offline.make_example(split, spec, 0)
  # The target is the early-reverberant speech: aligned with the mixture.
  corr = np.correlate(ex['noisy'], ex['clean'], 'full')
  assert abs(int(np.argmax(corr)) - (len(ex['clean']) - 1)) <= 2
  sep = offline.MixSpec(
    task='separation', clip_seconds=1.0, num_sources=2, separation_noise=True
  )
  ex = offline.make_example(split, sep, 3)
  assert ex['sources'].shape == (2, 16000) and ex['mixture'].shape == (16000,)
  assert len(set(ex['groups'].split('+'))) == 2
  np.testing.assert_allclose(
    ex['sources'].sum(0) + ex['noise'], ex['mixture'], atol=1e-6
  )


def test_unknown_offline_key_is_an_error():
  c = base.get_base_config()
  c.lock()  # as launch/train.py loads it
  c.data.offline_reverb_prob = 0.5
  with pytest.raises(AttributeError):
    c.data.offline_revrb_prob = 0.5


def test_build_command_names_a_non_default_folder(monkeypatch, tmp_path):
  monkeypatch.setenv('S4JAX_CACHE_DIR', str(tmp_path))
  default = offline.default_dir()
  assert default == os.path.join(str(tmp_path), 'offline'), default
  got = offline.build_command(default)
  assert got == 'python launch/build_corpus.py --install', got
  got = offline.build_command('/data/c')
  want = 'python launch/build_corpus.py --output_dir=/data/c --install'
  assert got == want, f'expected {want!r}, got {got!r}'


@pytest.mark.parametrize(
  'kw, match',
  [
    (dict(task='denoise'), 'task must be enhancement or separation'),
    (dict(split='dev'), "Unknown split 'dev'"),
    (dict(clip_seconds=0.0), 'must be positive'),
    (dict(reverb_prob=1.5), r'reverb_prob must be in \[0, 1\], got 1.5'),
    (dict(speed_perturb=0.5), r'speed_perturb must be in \[0, 0.5\)'),
    (dict(early_ms=-1.0), 'early_ms must be >= 0'),
    (dict(snr_range=(5.0, 0.0)), r'snr_range must be \(low, high\)'),
  ],
)
def test_mix_spec_rejects_bad_values_naming_them(kw, match):
  with pytest.raises(ValueError, match=match):
    offline.MixSpec(**kw)


def test_examples_are_a_function_of_seed_split_and_index(corpus):
  folder, _ = corpus
  split = offline.load_split(folder, 'train')
  spec = offline.MixSpec(clip_seconds=0.5, seed=3)
  a = offline.make_example(split, spec, 1)
  b = offline.make_example(split, spec, 1)
  c = offline.make_example(split, spec, 2)
  assert a['noisy'].tobytes() == b['noisy'].tobytes(), 'same index differs'
  assert a['noisy'].tobytes() != c['noisy'].tobytes(), 'indices repeat'
  for key in ('noisy', 'clean', 'noise'):
    assert a[key].shape == (8000,) and a[key].dtype == np.float32, (
      f'{key}: expected (8000,) float32, got {a[key].shape} {a[key].dtype}'
    )
  level = 10 * np.log10(np.mean(a['noisy'].astype(np.float64) ** 2))
  assert abs(level - a['level_db']) < 0.1, (level, a['level_db'])
  streams = {
    s: tuple(
      offline.example_rng(offline.MixSpec(split=s), 0).integers(0, 2**62, 4)
    )
    for s in offline.SPLIT_CODES
  }
  assert len(set(streams.values())) == 3, f'splits share a stream: {streams}'
