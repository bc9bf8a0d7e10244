"""launch/enhance.py and launch/separate.py on toy runs: results and errors."""

import os
import re

import numpy as np
import pytest
import soundfile as sf
from absl import flags

from data_pipelines import audio_io
from s4jax.training import inference, testing, trainer
from tests.launch import cli
from tests.training import toy_config


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('runs')
  out = {}
  for task in ('enhancement', 'separation'):
    workdir = str(root / task)
    trainer.train_and_evaluate(
      toy_config.get_config(f'task={task},steps=2'), workdir, testing
    )
    out[task] = workdir
  return out


def _tone(seconds, rate, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * rate)) / rate
  x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
  return np.stack([x * (c + 1) / channels for c in range(channels)], -1)


def test_enhance_resamples_mixes_down_and_matches_whole_file(runs, tmp_path):
  # 44.1 kHz stereo in a folder + an 8 kHz file; windows of 0.5 s.
  folder = tmp_path / 'in'
  os.makedirs(folder / 'sub')
  stereo = _tone(2.3, 44100, channels=2).astype(np.float32)
  sf.write(folder / 'sub' / 'a.wav', stereo, 44100, subtype='FLOAT')
  sf.write(tmp_path / 'b.flac', _tone(1.1, 8000)[:, 0], 8000)
  out = tmp_path / 'out'
  result = cli.run(
    'enhance.py',
    f'--workdir={runs["enhancement"]}',
    str(folder),
    str(tmp_path / 'b.flac'),
    f'--output_dir={out}',
    '--chunk_seconds=0.5',
    '--context_seconds=0.24',
    '--subtype=FLOAT',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'mixing down to mono' in result.stderr
  got, rate = sf.read(out / 'sub' / 'a.wav', dtype='float32')
  assert rate == 44100 and got.shape == (stereo.shape[0],), got.shape
  info = sf.info(out / 'b.flac')
  assert (info.samplerate, info.frames) == (8000, 8800), info

  # Reference: the whole file resampled, through the model, resampled back.
  # The toy model is frame-local (32-sample frames), so windows that start
  # on multiples of 32 model samples (0.5 s and 0.24 s at 8 kHz) reproduce
  # it up to resampling edges.
  model = inference.load(runs['enhancement'])
  mono = stereo.mean(1)
  x = audio_io.resample(mono, 44100, 8000)
  y = model(np.pad(x, (0, -len(x) % 32)))[: len(x)]
  want = audio_io.resample(y, 8000, 44100)[: len(mono)]
  inner = slice(100, -100)  # The file's own ends differ by filter edges.
  err = np.sqrt(np.mean((got[inner] - want[inner]) ** 2))
  rms = np.sqrt(np.mean(want**2))
  assert err < 1e-3 * rms, f'windowed vs whole-file rms error {err} / {rms}'


def test_separate_writes_one_file_per_source(runs, tmp_path):
  sf.write(tmp_path / 'mix.wav', _tone(1.5, 16000)[:, 0], 16000)
  result = cli.run(
    'separate.py',
    f'--workdir={runs["separation"]}',
    str(tmp_path / 'mix.wav'),
    f'--output_dir={tmp_path}/o',
    '--chunk_seconds=0.5',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  for i in (1, 2):
    info = sf.info(tmp_path / 'o' / f'mix_s{i}.wav')
    assert (info.samplerate, info.frames) == (16000, 24000), info


def _bad_inputs(tmp_path):
  empty = tmp_path / 'empty.wav'
  sf.write(empty, np.zeros(0, np.float32), 16000)
  nan = tmp_path / 'nan.wav'
  x = _tone(0.5, 16000)[:, 0].astype(np.float32)
  x[100] = np.nan
  sf.write(nan, x, 16000, subtype='FLOAT')
  junk = tmp_path / 'junk.wav'
  junk.write_text('not audio')
  return {'empty': str(empty), 'nan': str(nan), 'junk': str(junk)}


def _run_in_process(task, argv):
  """`enhance.run` with `argv` parsed into the absl flags (no subprocess)."""
  from launch import enhance  # Defines the enhance/separate flags.

  flags.FLAGS.unparse_flags()
  try:
    rest = flags.FLAGS(['enhance.py', *argv])
    return enhance.run(task, rest[1:])
  finally:
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize(
  'case, message',
  [
    ('empty', 'empty.wav is empty (0 samples)'),
    ('nan', 'nan.wav contains NaN or Inf samples'),
    ('junk', 'Cannot read'),
    ('missing', 'does not exist'),
    ('overwrite', 'Refusing to overwrite the input'),
    ('no_model', 'exactly one of --workdir and --checkpoint'),
    ('no_inputs', 'No input files given'),
    ('streaming', 'has no streaming mode'),
    ('wrong_tool', 'holds a separation model; use launch/separate.py'),
    ('bad_step', 'No checkpoint for step 7'),
  ],
)
def test_enhance_rejects_bad_input_with_a_message(
  runs, tmp_path, case, message
):
  from s4jax.training import errors

  bad = _bad_inputs(tmp_path)
  good = str(tmp_path / 'good.wav')
  sf.write(good, _tone(0.5, 16000)[:, 0], 16000)
  model = [f'--workdir={runs["enhancement"]}']
  args = {
    'empty': [bad['empty']],
    'nan': [bad['nan']],
    'junk': [bad['junk']],
    'missing': [str(tmp_path / 'nope.wav')],
    'overwrite': [good, f'--output_dir={tmp_path}'],
    'no_model': [good],
    'no_inputs': [],
    'streaming': [good, '--streaming'],
    'wrong_tool': [good],
    'bad_step': [good, '--step=7'],
  }[case]
  if case == 'no_model':
    model = []
  if case == 'wrong_tool':
    model = [f'--workdir={runs["separation"]}']
  if not any(a.startswith('--output_dir') for a in args):
    args.append(f'--output_dir={tmp_path / "out"}')
  with pytest.raises(
    errors.USER_ERRORS + (audio_io.AudioError,), match=re.escape(message)
  ):
    _run_in_process('enhancement', [*model, *args])
  if case == 'overwrite':
    np.testing.assert_allclose(
      sf.read(good)[0],
      _tone(0.5, 16000)[:, 0],
      atol=1e-4,
      err_msg='input was modified',
    )


def test_cli_errors_are_one_line_messages(runs, tmp_path):
  bad = _bad_inputs(tmp_path)
  for script in ('enhance.py', 'separate.py'):
    result = cli.run(
      script,
      f'--workdir={runs["enhancement"]}',
      bad['nan'],
      f'--output_dir={tmp_path / "out"}',
    )
    cli.assert_fails_with(result, 'error: ', 'nan.wav contains NaN or Inf')
  result = cli.run(
    'separate.py',
    f'--workdir={runs["enhancement"]}',
    bad['nan'].replace('nan.wav', 'x.wav'),
    f'--output_dir={tmp_path / "out"}',
  )
  cli.assert_fails_with(result, 'does not exist')


def test_checkpoint_flag(runs, tmp_path):
  sf.write(tmp_path / 'x.wav', _tone(0.5, 16000)[:, 0], 16000)
  ckpt = os.path.join(runs['enhancement'], 'checkpoints', '2')
  _run_in_process(
    'enhancement',
    [
      f'--checkpoint={ckpt}',
      str(tmp_path / 'x.wav'),
      f'--output_dir={tmp_path / "o"}',
    ],
  )
  info = sf.info(tmp_path / 'o' / 'x.wav')
  assert (info.samplerate, info.frames) == (16000, 8000), info


@pytest.fixture(scope='module')
def spiking_run(tmp_path_factory):
  from configs import demo

  root = tmp_path_factory.mktemp('spiking')
  config = demo.get_config('smoke=True')
  config.data.data_dir = str(root / 'data')
  trainer.train_and_evaluate(config, str(root / 'run'), _real_pipeline())
  return str(root / 'run')


def _real_pipeline():
  from data_pipelines import input_pipeline

  return input_pipeline


def test_streaming_equals_offline_whole_file(spiking_run, tmp_path):
  # Spiking-S4's streaming mode is exact: hop by hop with carried state it
  # reproduces the offline model on the whole (zero-padded) file.
  x = _tone(1.3, 16000)[:, 0].astype(np.float32)
  sf.write(tmp_path / 'x.wav', x, 16000, subtype='FLOAT')
  _run_in_process(
    'enhancement',
    [
      f'--workdir={spiking_run}',
      str(tmp_path / 'x.wav'),
      '--streaming',
      '--chunk_seconds=0.256',
      f'--output_dir={tmp_path / "o"}',
      '--subtype=FLOAT',
    ],
  )
  got, rate = sf.read(tmp_path / 'o' / 'x.wav', dtype='float32')
  assert rate == 16000 and got.shape == x.shape, got.shape
  model = inference.load(spiking_run)
  padded = np.pad(x, (0, -len(x) % 4096))  # The streamed length.
  want = model(padded)[: len(x)]
  scale = np.abs(want).max()
  np.testing.assert_allclose(
    got,
    want,
    atol=1e-4 * scale + 1e-6,
    err_msg='streamed output differs from offline',
  )
