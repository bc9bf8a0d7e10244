"""launch/synthesize.py: a DNS-style training set from folders of audio."""

import csv
import filecmp
import json
import os
import warnings

import numpy as np
import pytest
import soundfile as sf

from data_pipelines import layouts, noise_synth, speech_synth
from launch import synthesize

SR = 16000


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
  root = tmp_path_factory.mktemp('inputs')
  rng = np.random.default_rng(0)
  (root / 'speech').mkdir()
  for i in range(8):
    n = int(SR * rng.uniform(0.4, 1.2))
    x = speech_synth.synthesize(rng, speech_synth.sample_talker(rng), n, SR)
    sf.write(root / 'speech' / f'utt{i}.wav', 0.3 * x, SR)
  sf.write(root / 'speech' / 'quiet.wav', 1e-5 * rng.standard_normal(SR), SR)
  stereo = 0.1 * rng.standard_normal((SR, 2))
  sf.write(root / 'speech' / 'zz_stereo.wav', stereo, 22050)
  (root / 'noise').mkdir()
  for name in ('pink', 'machine', 'hum'):
    x = noise_synth.NOISE_TYPES[name](rng, 2 * SR, SR)
    sf.write(root / 'noise' / f'{name}.flac', 0.1 * x, SR)
  return root


def _run(inputs, out, *extra):
  argv = [
    '--clean_dir',
    str(inputs / 'speech'),
    '--noise_dir',
    str(inputs / 'noise'),
    '--output_dir',
    str(out),
    '--hours',
    str(4 / 3600),
    '--validation_hours',
    str(2 / 3600),
    '--clip_seconds',
    '1.0',
    '--activity_threshold',
    '0.3',
    '--continuous',
    '--seed',
    '5',
    *extra,
  ]
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # the stereo file's mix-down
    assert synthesize.main(argv) == 0


def _rows(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def test_layout_levels_and_disjoint_sets(inputs, tmp_path):
  out = tmp_path / 'dns'
  _run(inputs, out)
  splits = layouts.scan_ndns(str(out))
  assert {k: len(v) for k, v in splits.items()} == {'train': 4, 'validation': 2}
  sources = {}
  for split, folder in (
    ('train', 'training_set'),
    ('validation', 'validation_set'),
  ):
    rows = {int(r['fileid']): r for r in _rows(out / folder / 'metadata.csv')}
    sources[split] = set()
    for ex in splits[split]:
      row = rows[ex.meta['fileid']]
      clean, _ = sf.read(ex.files['clean'])
      noise, _ = sf.read(ex.files['noise'])
      noisy, _ = sf.read(ex.files['noisy'])
      assert len(clean) == len(noisy) == SR
      snr = 10 * np.log10(np.sum(clean**2) / np.sum(noise**2))
      level = 10 * np.log10(np.mean(noisy**2))
      want_level = float(row['level_db'])
      assert abs(snr - float(row['snr_db'])) < 0.1, (snr, row)
      assert abs(level - want_level) < 0.1, (level, row)
      if row['rescaled'] == 'False':
        assert abs(want_level - float(row['target_level_db'])) < 1e-3
      assert abs(ex.meta['snr'] - float(row['snr_db'])) < 0.051
      assert -5 <= float(row['snr_db']) <= 20
      sources[split] |= set(row['clean_sources'].split('|'))
  assert not sources['train'] & sources['validation'], sources
  log = json.loads((out / 'synthesis_log.json').read_text())
  assert any(p.endswith('quiet.wav') for p in log['skipped_files']), log
  assert not any('quiet.wav' in s for s in sources['train'])


def test_seeded_output_is_identical(inputs, tmp_path):
  _run(inputs, tmp_path / 'a')
  _run(inputs, tmp_path / 'b')
  for sub in (
    'training_set/clean',
    'training_set/noisy',
    'validation_set/noise',
  ):
    a, b = tmp_path / 'a' / sub, tmp_path / 'b' / sub
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


def test_refuses_to_overwrite_without_flag(inputs, tmp_path):
  _run(inputs, tmp_path / 'c')
  with pytest.raises(SystemExit, match='--overwrite'):
    synthesize.main(
      [
        '--clean_dir',
        str(inputs / 'speech'),
        '--noise_dir',
        str(inputs / 'noise'),
        '--output_dir',
        str(tmp_path / 'c'),
        '--hours',
        '0.001',
      ]
    )


def test_fill_inserts_silence_between_files():
  parts = iter([(np.ones(3, np.float32), 'b'), (np.ones(5, np.float32), 'c')])
  x, names = synthesize._fill(
    (np.ones(4, np.float32), 'a'), lambda: next(parts), 12, 2
  )
  np.testing.assert_array_equal(x, [1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1])
  assert names == ['a', 'b', 'c']


def test_integer_levels_by_default(inputs, tmp_path):
  out = tmp_path / 'int'
  argv = [
    '--clean_dir',
    str(inputs / 'speech'),
    '--noise_dir',
    str(inputs / 'noise'),
    '--output_dir',
    str(out),
    '--hours',
    str(3 / 3600),
    '--validation_hours',
    str(1 / 3600),
    '--clip_seconds',
    '1.0',
    '--activity_threshold',
    '0.3',
  ]
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    synthesize.main(argv)
  for row in _rows(out / 'training_set' / 'metadata.csv'):
    assert float(row['snr_db']).is_integer(), row
    assert float(row['target_level_db']).is_integer(), row


def test_no_noise_files_is_an_error(inputs, tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(SystemExit, match='No noise audio files'):
    synthesize.main(
      [
        '--clean_dir',
        str(inputs / 'speech'),
        '--noise_dir',
        str(tmp_path / 'empty'),
        '--output_dir',
        str(tmp_path / 'o'),
      ]
    )


def test_flag_forms_ranges_and_errors(inputs, tmp_path, capsys):
  args = synthesize.parse_args(
    [
      f'--clean_dir={inputs / "speech"}',
      '--noise_dir',
      str(inputs / 'noise'),
      '--noise_dir=more_noise',
      '--output_dir',
      str(tmp_path),
      '--snr_range=-5,20',
      '--target_level_range',
      '-30,-20',
    ]
  )
  assert args.noise_dir == [str(inputs / 'noise'), 'more_noise']
  assert args.snr_range == (-5.0, 20.0)
  assert args.target_level_range == (-30.0, -20.0)
  assert args.hours == 1.0 and args.sample_rate == 16000
  required = ['--clean_dir=a', '--noise_dir=b', '--output_dir=c']
  for extra, message in [
    ([], None),
    (['--snr_range=20,-5'], 'error: flag --snr_range=20,-5: low > high'),
    (['--snr_range=5'], 'expected "low,high"'),
    (['--target_level_range=-10,3'], 'must be <= 0 dBFS'),
    (['--validation_fraction=0.7'], 'must be in (0, 0.5)'),
    (['--clip_seconds=0'], '--clip_seconds must be > 0'),
    (['--sample_rate=4000'], 'flag --sample_rate=4000'),
    (['stray.wav'], "unexpected arguments ['stray.wav']"),
  ]:
    argv = (required if message else required[1:]) + extra
    with pytest.raises(SystemExit) as e:
      synthesize.parse_args(argv)
    text = str(e.value.code)
    want = message or 'Flag --clean_dir must have a value'
    assert want in text and 'Pass --help' in text, (argv, text)
  assert synthesize.main(['--help']) == 0
  out = capsys.readouterr().out
  assert '--clean_dir: Required.' in out and '--snr_range' in out, out
