"""launch/build_corpus.py on a fake installed tree (no apt-get, no network)."""

import csv
import os

import numpy as np
import soundfile as sf

from tests.launch import cli


def _tree(root):
  rng = np.random.default_rng(0)
  allison = os.path.join(root, 'usr/share/asterisk/sounds/en_US_f_Allison')
  os.makedirs(os.path.join(allison, 'silence'))
  t = np.arange(6000) / 8000
  for i in range(4):
    x = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) * np.hanning(len(t))
    sf.write(os.path.join(allison, f'prompt{i}.wav'), x, 8000)
  sf.write(os.path.join(allison, 'silence/1.wav'), np.zeros(8000), 8000)
  samples = os.path.join(root, 'usr/share/sonic-pi/samples')
  os.makedirs(samples)
  for name in ('ambi_a', 'vinyl_b', 'perc_c'):
    sf.write(
      os.path.join(samples, f'{name}.flac'),
      0.1 * rng.standard_normal(8000),
      16000,
    )


def test_missing_packages_then_build(tmp_path):
  root = str(tmp_path / 'root')
  _tree(root)
  out = str(tmp_path / 'corpus')
  common = [
    f'--source_root={root}',
    f'--output_dir={out}',
    '--sources=asterisk-en,sonic-pi',
    '--tts_minutes=0',
    '--num_rirs=2,1,1',
    '--workers=1',
  ]
  r = cli.run('build_corpus.py', *common, timeout=120)
  cli.assert_fails_with(
    r,
    'apt-get install -y --no-install-recommends asterisk-core-sounds-en-g722',
    '--install',
  )
  assert not os.path.exists(out)
  r = cli.run('build_corpus.py', *common, '--skip_missing', timeout=120)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'train' in r.stdout and '--config.data.manual_dir=' in r.stdout
  with open(os.path.join(out, 'manifest.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  speech = [r for r in rows if r['kind'] == 'speech']
  assert len(speech) == 4 and len(rows) == 7
  assert {r['speaker'] for r in speech} == {'asterisk-allison'}
  assert {r['package'] for r in speech} == {'asterisk-core-sounds-en-wav'}
  assert all(r['licence'] == 'CC0-1.0' for r in rows if r['kind'] == 'noise')
  assert os.path.exists(os.path.join(out, 'COMPLETE.json'))


def test_install_rounds_until_nothing_is_missing(monkeypatch):
  """ffmpeg is found missing only after the sources that need it arrive."""
  from data_pipelines import offline_build

  missing = [['asterisk-core-sounds-en-g722'], ['ffmpeg']]
  installed = []

  def check(opts):
    if missing:
      raise offline_build.MissingPackagesError('missing', missing.pop(0))

  monkeypatch.setattr(offline_build, 'check_sources', check)
  offline_build.check_or_install(None, lambda p: installed.append(p) or 0)
  assert installed == [['asterisk-core-sounds-en-g722'], ['ffmpeg']]


def test_a_failed_install_and_a_package_that_stays_missing_are_errors(
  monkeypatch,
):
  import pytest

  from data_pipelines import offline_build

  def check(opts):
    raise offline_build.MissingPackagesError('missing ffmpeg', ['ffmpeg'])

  monkeypatch.setattr(offline_build, 'check_sources', check)
  with pytest.raises(offline_build.InstallError):
    offline_build.check_or_install(None, lambda p: 100)
  calls = []
  with pytest.raises(offline_build.MissingPackagesError, match='ffmpeg'):
    offline_build.check_or_install(None, lambda p: calls.append(p) or 0)
  assert len(calls) == 3  # Then it gives up.
  with pytest.raises(offline_build.MissingPackagesError):
    offline_build.check_or_install(None)  # Without --install: no rounds.
