"""Tests for launch/score.py on tiny generated folders in tmp_path."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from harness import metrics
from launch import score

SR = 16000
REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _signal(seed, seconds=1.0, sr=SR):
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * sr)) / sr
  env = np.sin(np.pi * 3 * t) ** 2
  x = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 12)) * env
  return 0.2 * x / np.abs(x).max() + 0.001 * rng.standard_normal(len(t))


def _write(path, x, sr=SR, subtype='FLOAT'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sf.write(path, x, sr, subtype=subtype)


def _ndns_folders(root, n=3, extra_estimate=True):
  """N-DNS-style names: clean_fileid_N / <tags>_fileid_N."""
  rng = np.random.default_rng(0)
  data = {}
  for i in range(n):
    x = _signal(i)
    noisy = x + 0.05 * rng.standard_normal(len(x))
    est = x + 0.01 * rng.standard_normal(len(x))
    name = f'book_{i:02d}_snr5_tl-25_fileid_{i}.wav'
    _write(f'{root}/clean/clean_fileid_{i}.wav', x)
    _write(f'{root}/noisy/{name}', noisy)
    _write(f'{root}/enh/{name}', est)
    data[i] = (x, noisy, est)
  if extra_estimate:
    _write(f'{root}/enh/orphan.wav', _signal(9))
  return data


def _folders(tmp_path, ref='ref', est='est'):
  """`--reference` / `--estimate` arguments for folders under `tmp_path`."""
  return ['--reference', tmp_path / ref, '--estimate', tmp_path / est]


def _run(capsys, *args):
  rc = score.main([str(a) for a in args])
  out = capsys.readouterr()
  return rc, out.out, out.err


def test_fileid_matching_json_values(tmp_path, capsys):
  data = _ndns_folders(tmp_path)
  rc, out, err = _run(
    capsys,
    *_folders(tmp_path, 'clean', 'enh'),
    '--noisy',
    tmp_path / 'noisy',
    '--metrics',
    'si_snr,si_snri,snr',
    '--json',
    '--per_file',
  )
  assert rc == 0, err
  rep = json.loads(out)
  assert rep['matched'] == 3 and rep['unmatched']['estimate'] == 1, rep
  assert 'orphan.wav' in err and 'unmatched: 1 estimate' in err, err
  # Independent check: float64 formulas on the arrays that were written.
  want = [float(metrics.si_snr(e, x)) for x, _, e in data.values()]
  got = [row['si_snr'] for row in rep['per_file']]
  np.testing.assert_allclose(sorted(got), sorted(want), atol=1e-6)
  want_i = np.mean(
    [metrics.si_snr(e, x) - metrics.si_snr(n, x) for x, n, e in data.values()]
  )
  assert rep['summary']['si_snri']['mean'] == pytest.approx(want_i, abs=1e-6)
  assert rep['summary']['si_snr']['std'] == pytest.approx(np.std(want), 1e-6)
  assert rep['summary']['snr']['count'] == 3


def test_name_matching_across_extensions_and_table(tmp_path, capsys):
  x = _signal(1)
  _write(f'{tmp_path}/ref/a/x.wav', x)
  _write(f'{tmp_path}/est/a/x.flac', x + 0.01, subtype='PCM_24')
  _write(f'{tmp_path}/ref/lonely.wav', x)
  rc, out, err = _run(
    capsys,
    *_folders(tmp_path),
    '--metrics',
    'si_snr',
    '--match',
    'name',
    '--per_file',
  )
  assert rc == 0, err
  assert 'a/x' in out and 'mean' in out and 'si_snr' in out, out
  assert '1 reference(s) without an estimate' in err and 'lonely' in err


def test_strict_fails_on_unmatched(tmp_path, capsys):
  _ndns_folders(tmp_path, n=1)
  rc, _, err = _run(
    capsys,
    *_folders(tmp_path, 'clean', 'enh'),
    '--metrics',
    'si_snr',
    '--strict',
  )
  assert rc == 1, err


def test_default_metrics_and_parallel_equal_serial(tmp_path, capsys):
  _ndns_folders(tmp_path, n=2, extra_estimate=False)
  common = [
    *_folders(tmp_path, 'clean', 'enh'),
    '--noisy',
    tmp_path / 'noisy',
    '--json',
  ]
  rc1, out1, err1 = _run(capsys, *common)
  rc2, out2, err2 = _run(capsys, *common, '--num_workers', '2')
  assert rc1 == 0 and rc2 == 0, err1 + err2
  a, b = json.loads(out1), json.loads(out2)
  assert a['metrics'] == ['si_snr', 'pesq_wb', 'stoi', 'si_snri'], a
  assert a['summary'] == b['summary']
  assert a['summary']['pesq_wb']['count'] == 2, a


def test_missing_and_empty_folders(tmp_path, capsys):
  os.makedirs(tmp_path / 'empty')
  _write(f'{tmp_path}/est/x.wav', _signal(0))
  rc, _, err = _run(capsys, *_folders(tmp_path, 'nope'))
  assert rc == 2 and '--reference folder does not exist' in err, err
  rc, _, err = _run(capsys, *_folders(tmp_path, 'empty'))
  assert rc == 2 and 'has no audio files' in err, err


def test_nothing_matched(tmp_path, capsys):
  _write(f'{tmp_path}/ref/a.wav', _signal(0))
  _write(f'{tmp_path}/est/b.wav', _signal(0))
  rc, _, err = _run(
    capsys,
    *_folders(tmp_path),
    '--metrics',
    'si_snr',
  )
  assert rc == 2 and 'No estimate could be paired' in err, err
  assert 'b.wav' in err, err


def test_sample_rate_mismatch_refused_or_resampled(tmp_path, capsys):
  x = _signal(0)
  _write(f'{tmp_path}/ref/a.wav', x)
  _write(f'{tmp_path}/est/a.wav', metrics.resample(x, SR, 8000), sr=8000)
  args = [
    *_folders(tmp_path),
    '--metrics',
    'si_snr',
    '--json',
  ]
  rc, _, err = _run(capsys, *args)
  assert rc == 2 and '8000 Hz but its reference' in err, err
  assert '--resample' in err, err
  rc, out, err = _run(capsys, *args, '--resample')
  assert rc == 0, err
  assert 'resampling' in err and 'to 16000 Hz' in err, err
  # 8 kHz band limit of a 140 Hz harmonic signal: little is lost.
  assert json.loads(out)['summary']['si_snr']['mean'] > 10


def test_stereo_and_empty_files_refused(tmp_path, capsys):
  x = _signal(0)
  _write(f'{tmp_path}/ref/a.wav', x)
  _write(f'{tmp_path}/ref/b.wav', x)
  _write(f'{tmp_path}/est/a.wav', np.stack([x, x], axis=1))
  _write(f'{tmp_path}/est/b.wav', np.zeros(0))
  rc, _, err = _run(
    capsys,
    *_folders(tmp_path),
    '--metrics',
    'si_snr',
  )
  assert rc == 2, err
  assert '2 problem(s)' in err, err
  assert 'a.wav: 2 channels' in err and 'b.wav: empty' in err, err


def test_nan_audio_fails_that_file(tmp_path, capsys):
  x = _signal(0)
  bad = x.copy()
  bad[100] = np.nan
  for name, est in (('good', x + 0.01), ('bad', bad)):
    _write(f'{tmp_path}/ref/{name}.wav', x)
    _write(f'{tmp_path}/est/{name}.wav', est)
  rc, out, err = _run(
    capsys,
    *_folders(tmp_path),
    '--metrics',
    'si_snr',
    '--json',
  )
  assert rc == 1, err
  assert 'failed: bad: read:' in err and 'NaN' in err, err
  rep = json.loads(out)
  assert rep['summary']['si_snr']['count'] == 1, rep
  assert rep['summary']['si_snr']['failed'] == 1, rep
  assert 'bad' in rep['failures'], rep


def test_length_mismatch_is_trimmed_with_warning(tmp_path, capsys):
  x = _signal(0)
  _write(f'{tmp_path}/ref/a.wav', x)
  _write(f'{tmp_path}/est/a.wav', x[:-100])
  rc, out, err = _run(
    capsys,
    *_folders(tmp_path),
    '--metrics',
    'si_snr',
    '--json',
  )
  assert rc == 0, err
  assert 'lengths differ' in err and 'trimmed' in err, err
  assert json.loads(out)['summary']['si_snr']['mean'] > 60


def test_metric_failure_reported_not_fatal(tmp_path, capsys):
  x = _signal(0)
  _write(f'{tmp_path}/ref/a.wav', x)
  _write(f'{tmp_path}/est/a.wav', np.zeros_like(x))
  rc, out, err = _run(
    capsys,
    *_folders(tmp_path),
    '--metrics',
    'si_snr,pesq_wb',
  )
  assert rc == 0, err
  assert 'failed: a: pesq_wb: PESQ is undefined for a silent estimate' in err
  assert 'nan' in out, out


def test_bad_arguments(tmp_path, capsys):
  _ndns_folders(tmp_path, n=1, extra_estimate=False)
  base = _folders(tmp_path, 'clean', 'enh')
  rc, _, err = _run(capsys, *base, '--metrics', 'si_snr,mos')
  assert rc == 2 and "Unknown metric(s) ['mos']" in err, err
  rc, _, err = _run(capsys, *base, '--metrics', 'si_snri')
  assert rc == 2 and '--noisy is required' in err, err
  rc, _, err = _run(capsys, '--estimate', tmp_path / 'enh')
  assert rc == 2 and '--reference is required' in err, err


def test_flag_forms_and_flag_errors(tmp_path, capsys):
  _ndns_folders(tmp_path, n=1, extra_estimate=False)
  base = [f'--reference={tmp_path / "clean"}', f'--estimate={tmp_path / "enh"}']
  # absl accepts --flag=value as well as --flag value; lists are a,b.
  rc, out, err = _run(capsys, *base, '--metrics=si_snr,snr', '--json')
  assert rc == 0, err
  assert json.loads(out)['metrics'] == ['si_snr', 'snr']
  rc, _, err = _run(capsys, *base, '--num_workers=-1')
  assert rc == 2 and 'error: flag --num_workers=-1' in err, err
  rc, _, err = _run(capsys, *base, '--match=nearest')
  assert rc == 2 and 'error: flag --match=nearest' in err, err
  rc, _, err = _run(capsys, *base, '--no_such_flag')
  assert rc == 2 and "Unknown command line flag 'no_such_flag'" in err, err
  rc, _, err = _run(capsys, *base, 'stray.wav')
  assert rc == 2 and "unexpected arguments ['stray.wav']" in err, err
  rc, _, err = _run(capsys, '--metrics=si_snr')
  assert rc == 2 and 'Flag --estimate must have a value' in err, err
  assert 'Traceback' not in err
  rc, out, _ = _run(capsys, '--help')
  assert rc == 0 and '--estimate: Required.' in out, out


def test_ambiguous_fileid_refused(tmp_path, capsys):
  x = _signal(0)
  _write(f'{tmp_path}/ref/a_fileid_1.wav', x)
  _write(f'{tmp_path}/ref/b_fileid_1.wav', x)
  _write(f'{tmp_path}/est/c_fileid_1.wav', x)
  rc, _, err = _run(
    capsys,
    *_folders(tmp_path),
    '--metrics',
    'si_snr',
    '--match',
    'fileid',
  )
  assert rc == 2 and 'Ambiguous fileid' in err, err


def test_cli_subprocess_help_and_run(tmp_path):
  script = os.path.join(REPO, 'launch', 'score.py')
  out = subprocess.run(
    [sys.executable, script, '--help'],
    capture_output=True,
    text=True,
    check=False,
  )
  assert out.returncode == 0 and '--reference' in out.stdout, out.stderr
  assert 'pesq_wb' in out.stdout, out.stdout
  bad = subprocess.run(
    [sys.executable, script, '--estimate', str(tmp_path), '--num_workers=x'],
    capture_output=True,
    text=True,
    check=False,
  )
  assert bad.returncode == 2, (bad.returncode, bad.stderr)
  assert (
    "error: flag --num_workers=x: invalid literal for int() with base 10: 'x'"
    in bad.stderr
  ), bad.stderr
  assert 'Traceback' not in bad.stderr, bad.stderr
  _ndns_folders(tmp_path, n=1, extra_estimate=False)
  out = subprocess.run(
    [
      sys.executable,
      script,
      '--reference',
      str(tmp_path / 'clean'),
      '--estimate',
      str(tmp_path / 'enh'),
      '--metrics',
      'si_snr',
      '--json',
    ],
    capture_output=True,
    text=True,
    check=False,
  )
  assert out.returncode == 0, out.stderr
  assert json.loads(out.stdout)['matched'] == 1
