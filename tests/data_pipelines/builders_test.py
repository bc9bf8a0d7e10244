"""tensorflow-datasets builders built from tiny fixture folders."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from data_pipelines import audio_io, builders, layouts


def _read_int16(path):
  return sf.read(path, dtype='int16')[0]


def test_voicebank_resampled_to_16k(voicebank_dir, tmp_path):
  b = builders.prepare(
    'voicebank_demand', '16k', voicebank_dir, str(tmp_path / 'tfds')
  )
  counts = {k: v.num_examples for k, v in b.info.splits.items()}
  assert counts == {'train': 2, 'validation': 2, 'test': 2}, counts
  ds = b.as_data_source('test')
  ex = next(ds[i] for i in range(len(ds)) if ds[i]['key'] == b'p232_002')
  src, sr = sf.read(
    os.path.join(voicebank_dir, 'clean_testset_wav', 'p232_002.wav')
  )
  ref = audio_io.resample(src.astype(np.float32), sr, 16000)
  got = audio_io.from_int16(ex['clean'])
  assert len(got) == len(ref) and ex['speaker'] == b'p232'
  assert np.max(np.abs(got - ref)) <= 1.5 / 32768, 'resampled audio differs'
  longest = max(
    len(audio_io.read_audio(e.files['noisy'], 16000)[0])
    for e in layouts.scan_voicebank_demand(voicebank_dir)['test']
  )
  assert b.info.metadata['max_length']['test'] == longest


def test_ndns_build_and_load(ndns_dir, tmp_path):
  b = builders.prepare('ndns', '16k', ndns_dir, str(tmp_path / 'tfds'))
  ds = b.as_data_source('validation')
  ex = next(ds[i] for i in range(len(ds)) if ds[i]['fileid'] == 4)
  base = os.path.join(ndns_dir, 'validation_set')
  np.testing.assert_array_equal(
    ex['clean'], _read_int16(f'{base}/clean/clean_fileid_4.wav')
  )
  np.testing.assert_array_equal(
    ex['noise'], _read_int16(f'{base}/noise/noise_fileid_4.wav')
  )
  assert ex['snr'] == 4.0 and ex['target_level'] == -29.0, ex


@pytest.mark.parametrize(
  'config,signals',
  [
    ('2mix_wav8k_min_clean', {'mixture', 's1', 's2'}),
    ('2mix_wav8k_min_both', {'mixture', 's1', 's2', 'noise'}),
  ],
)
def test_librimix_build_and_load(librimix_dir, tmp_path, config, signals):
  b = builders.prepare('librimix', config, librimix_dir, str(tmp_path / 'tf'))
  assert set(b.info.splits) == {'train', 'validation', 'test'}
  ex = b.as_data_source('test')[0]
  assert signals | {'key'} == set(ex), sorted(ex)
  key = ex['key'].decode()
  folder = 'mix_clean' if config.endswith('clean') else 'mix_both'
  base = os.path.join(librimix_dir, 'Libri2Mix', 'wav8k', 'min', 'test')
  np.testing.assert_array_equal(
    ex['mixture'], _read_int16(f'{base}/{folder}/{key}.wav')
  )
  np.testing.assert_array_equal(ex['s2'], _read_int16(f'{base}/s2/{key}.wav'))


def test_wham_build_and_load(wham_dir, tmp_path):
  b = builders.prepare(
    'wham', 'wav8k_min_single', wham_dir, str(tmp_path / 'tfds')
  )
  ex = b.as_data_source('validation')[1]
  assert set(ex) == {'key', 'mixture', 's1', 'noise'}, sorted(ex)
  key = ex['key'].decode()
  path = os.path.join(
    wham_dir, 'wav8k', 'min', 'cv', 'mix_single', key + '.wav'
  )
  np.testing.assert_array_equal(ex['mixture'], _read_int16(path))


def test_prepare_reports_layout_problem_before_tensorflow(tmp_path, ndns_dir):
  shutil.rmtree(os.path.join(ndns_dir, 'training_set', 'noise'))
  with pytest.raises(layouts.LayoutError, match='training_set/noise'):
    builders.prepare('ndns', '16k', ndns_dir, str(tmp_path / 'tfds'))


def test_prepare_without_manual_dir_explains(tmp_path):
  with pytest.raises(layouts.LayoutError, match='(?s)manual_dir.*VoiceBank'):
    builders.prepare('voicebank_demand', '16k', '', str(tmp_path / 'tfds'))


def test_config_names():
  assert builders.config_name('librimix', sample_rate=8000) == (
    '2mix_wav8k_min_clean'
  )
  assert (
    builders.config_name('wham', sample_rate=16000, mode='max', mixture='both')
    == 'wav16k_max_both'
  )
  assert builders.config_name('voicebank_demand', sample_rate=8000) == '16k'
  with pytest.raises(ValueError, match='Unknown corpus'):
    builders.config_name('timit', sample_rate=16000)
  with pytest.raises(ValueError, match='WHAM! has 2 speakers'):
    builders.config_name('wham', sample_rate=8000, num_sources=3)
