"""Corpus layout scans: what they find and how they fail."""

import os
import shutil

import pytest

from data_pipelines import layouts


def test_voicebank_splits_and_validation_speakers(voicebank_dir):
  splits = layouts.scan_voicebank_demand(voicebank_dir)
  keys = {s: [e.key for e in exs] for s, exs in splits.items()}
  assert keys == {
    'train': ['p230_001', 'p230_002'],
    'validation': ['p226_001', 'p287_004'],
    'test': ['p232_001', 'p232_002'],
  }, keys
  ex = splits['test'][0]
  assert ex.files['noisy'].endswith('noisy_testset_wav/p232_001.wav')
  assert ex.meta == {'speaker': 'p232'}


def test_voicebank_missing_folder_is_named(voicebank_dir):
  shutil.rmtree(os.path.join(voicebank_dir, 'noisy_testset_wav'))
  with pytest.raises(layouts.LayoutError, match='noisy_testset_wav'):
    layouts.scan_voicebank_demand(voicebank_dir)


def test_voicebank_missing_file_counts(voicebank_dir):
  os.remove(
    os.path.join(voicebank_dir, 'clean_trainset_28spk_wav', 'p230_002.wav')
  )
  with pytest.raises(
    layouts.LayoutError, match=r'expected 4 files.*found 3.*p230_002'
  ):
    layouts.scan_voicebank_demand(voicebank_dir)


def test_ndns_matches_by_fileid_and_parses_names(ndns_dir):
  splits = layouts.scan_ndns(ndns_dir)
  assert sorted(splits) == ['train', 'validation'], sorted(splits)
  assert [e.meta['fileid'] for e in splits['validation']] == [3, 4]
  ex = splits['train'][1]
  assert ex.files['clean'].endswith('clean/clean_fileid_1.wav')
  assert ex.meta['snr'] == 1.0 and ex.meta['target_level'] == -26.0, ex.meta


def test_ndns_missing_clean_clip(ndns_dir):
  os.remove(
    os.path.join(ndns_dir, 'training_set', 'clean', 'clean_fileid_2.wav')
  )
  with pytest.raises(
    layouts.LayoutError,
    match=r'training_set/clean: expected 3 files.*found 2.*clean_fileid_2',
  ):
    layouts.scan_ndns(ndns_dir)


def test_ndns_missing_validation_set(ndns_dir):
  shutil.rmtree(os.path.join(ndns_dir, 'validation_set'))
  with pytest.raises(layouts.LayoutError, match='validation_set'):
    layouts.scan_ndns(ndns_dir)


@pytest.mark.parametrize(
  'mixture,signals',
  [
    ('clean', ['mixture', 's1', 's2']),
    ('both', ['mixture', 'noise', 's1', 's2']),
    ('single', ['mixture', 'noise', 's1']),
  ],
)
def test_librimix_signals(librimix_dir, mixture, signals):
  splits = layouts.scan_librimix(librimix_dir, mixture=mixture)
  assert {s: len(e) for s, e in splits.items()} == {
    'train': 3,
    'validation': 2,
    'test': 2,
  }
  ex = splits['train'][0]
  assert sorted(ex.files) == signals
  assert f'/train-100/mix_{mixture}/' in ex.files['mixture']


def test_librimix_metadata_lists_missing_mixture(librimix_dir):
  base = os.path.join(librimix_dir, 'Libri2Mix', 'wav8k', 'min', 'dev')
  gone = sorted(os.listdir(os.path.join(base, 's2')))[0]
  os.remove(os.path.join(base, 's2', gone))
  with pytest.raises(
    layouts.LayoutError,
    match=r'dev/s2: expected 2 files \(listed in the metadata CSV\), found 1',
  ):
    layouts.scan_librimix(librimix_dir)


def test_librimix_wrong_rate_names_the_folder(librimix_dir):
  with pytest.raises(layouts.LayoutError, match='wav16k'):
    layouts.scan_librimix(librimix_dir, sample_rate=16000)


def test_wham_splits(wham_dir):
  splits = layouts.scan_wham(wham_dir, mixture='both')
  assert {s: len(e) for s, e in splits.items()} == {
    'train': 3,
    'validation': 2,
    'test': 2,
  }
  with pytest.raises(layouts.LayoutError, match='wav8k/max'):
    layouts.scan_wham(wham_dir, mode='max')
