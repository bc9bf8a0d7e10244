"""launch/enhance.py and launch/separate.py on toy runs: results and errors."""

import hashlib
import os
import re

import numpy as np
import pytest
import soundfile as sf
from absl import flags

from data_pipelines import audio_io
from harness import inference, trainer
from s4jax.training import testing
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
  model = inference.load_model(workdir=runs['enhancement'])
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
  no_samples = tmp_path / 'no_samples.wav'
  sf.write(no_samples, np.zeros(0, np.float32), 16000)
  nan = tmp_path / 'nan.wav'
  x = _tone(0.5, 16000)[:, 0].astype(np.float32)
  x[100] = np.nan
  sf.write(nan, x, 16000, subtype='FLOAT')
  junk = tmp_path / 'junk.wav'
  junk.write_text('not audio')
  return {'no_samples': str(no_samples), 'nan': str(nan), 'junk': str(junk)}


# Expected reason (substring) for each kind of bad file in `_mixed_folder`.
BAD_REASONS = {
  'empty.wav': 'empty file (0 bytes)',
  'no_samples.wav': 'no audio samples (0 frames)',
  'nan.wav': 'NaN or Inf samples (first at frame 100)',
  'truncated.wav': 'truncated: the header declares 16000 bytes of audio',
  'text.wav': 'not a readable audio file',
}


def _truncated_wav(path, keep_bytes):
  """A 0.5 s PCM_16 WAV cut after `keep_bytes` (its header says 0.5 s)."""
  sf.write(path, _tone(0.5, 16000)[:, 0], 16000, subtype='PCM_16')
  data = path.read_bytes()
  path.write_bytes(data[:keep_bytes])


def _mixed_folder(tmp_path):
  """`in/` with three good files (mono, stereo, 44.1 kHz) and bad files."""
  folder = tmp_path / 'in'
  folder.mkdir()
  sf.write(folder / 'mono.wav', _tone(0.3, 16000)[:, 0], 16000)
  sf.write(folder / 'stereo.wav', _tone(0.3, 16000, channels=2), 16000)
  sf.write(folder / 'cd.wav', _tone(0.3, 44100)[:, 0], 44100)
  (folder / 'empty.wav').write_bytes(b'')
  sf.write(folder / 'no_samples.wav', np.zeros(0, np.float32), 16000)
  nan = _tone(0.3, 16000)[:, 0].astype(np.float32)
  nan[100] = np.nan
  sf.write(folder / 'nan.wav', nan, 16000, subtype='FLOAT')
  _truncated_wav(folder / 'truncated.wav', 44 + 4000)
  (folder / 'text.wav').write_text('this is a text file, not audio\n')
  return folder, ('mono.wav', 'stereo.wav', 'cd.wav')


def _hashes(folder):
  """sha256 of every file under `folder`, by relative path."""
  return {
    os.path.relpath(p, folder): hashlib.sha256(p.read_bytes()).hexdigest()
    for p in sorted(folder.rglob('*'))
    if p.is_file()
  }


def _assert_inputs_untouched(folder, before):
  after = _hashes(folder)
  assert after == before, (
    f'expected the inputs byte-identical, before: {before}, after: {after}'
  )


def _assert_all_bad_listed(stderr, folder):
  for name, reason in BAD_REASONS.items():
    line = f'refused: {folder / name}: {reason}'
    assert line in stderr, (
      f'expected the line {line!r} in stderr, got:\n{stderr}'
    )
  closing = f'{len(BAD_REASONS)} of 8 files refused; fix or remove them'
  assert closing in stderr, f'expected {closing!r} in stderr, got:\n{stderr}'


def test_check_file_refuses_each_kind_of_bad_file_with_its_reason(tmp_path):
  from launch import audio_batch

  folder, good = _mixed_folder(tmp_path)
  for name, reason in BAD_REASONS.items():
    with pytest.raises(audio_batch.InputError) as caught:
      audio_batch.check_file(str(folder / name))
    assert reason in str(caught.value), (
      f'{name}: expected reason {reason!r}, got {str(caught.value)!r}'
    )
  got = {name: audio_batch.check_file(str(folder / name)) for name in good}
  want = {
    'mono.wav': (4800, 16000, 1),
    'stereo.wav': (4800, 16000, 2),
    'cd.wav': (13230, 44100, 1),
  }
  assert got == want, f'expected (frames, rate, channels) {want}, got {got}'


def test_truncated_wav_and_aiff_are_detected_from_their_header(tmp_path):
  from launch import audio_batch

  path = tmp_path / 'cut.wav'
  _truncated_wav(path, 44 + 1000)
  # libsndfile alone reads the remaining frames without complaint.
  assert sf.info(path).frames == 500, sf.info(path)
  got = audio_batch.audio_chunk_shortfall(str(path))
  assert got == (16000, 1000), f'expected (16000, 1000), got {got}'
  aiff = tmp_path / 'cut.aiff'
  sf.write(aiff, _tone(0.1, 16000)[:, 0], 16000)
  whole = aiff.read_bytes()
  assert audio_batch.audio_chunk_shortfall(str(aiff)) is None
  aiff.write_bytes(whole[: len(whole) // 2])
  got = audio_batch.audio_chunk_shortfall(str(aiff))
  assert got is not None and got[0] > got[1], f'expected a shortfall, got {got}'
  for complete in ('full.wav', 'full.flac'):
    sf.write(tmp_path / complete, _tone(0.1, 16000)[:, 0], 16000)
    got = audio_batch.audio_chunk_shortfall(str(tmp_path / complete))
    assert got is None, f'{complete}: expected no shortfall, got {got}'


@pytest.mark.parametrize(
  'script, task, suffixes',
  [
    ('enhance.py', 'enhancement', ('',)),
    ('separate.py', 'separation', ('_s1', '_s2')),
  ],
)
def test_bad_files_are_listed_and_good_files_processed_anyway(
  runs, tmp_path, script, task, suffixes
):
  folder, good = _mixed_folder(tmp_path)
  before = _hashes(folder)
  out = tmp_path / 'out'
  result = cli.run(
    script, f'--workdir={runs[task]}', str(folder), f'--output_dir={out}'
  )
  assert result.returncode == 1, (
    f'expected exit status 1, got {result.returncode}:\n{result.stderr}'
  )
  _assert_all_bad_listed(result.stderr, folder)
  verb = 'enhanced' if task == 'enhancement' else 'separated'
  summary = f'error: 5 of 8 files refused (listed above); 3 {verb} into {out}'
  last = result.stderr.strip().splitlines()[-1]
  assert last == summary, f'expected last line {summary!r}, got {last!r}'
  assert 'stereo.wav has 2 channels; mixing down to mono' in result.stderr
  want = sorted(f'{n[:-4]}{s}.wav' for n in good for s in suffixes)
  written = sorted(os.listdir(out))
  assert written == want, f'expected outputs {want}, got {written}'
  for name in good:
    rate = sf.info(folder / name).samplerate
    got = sf.info(out / f'{name[:-4]}{suffixes[0]}.wav').samplerate
    assert got == rate, f'{name}: expected output at {rate} Hz, got {got}'
  _assert_inputs_untouched(folder, before)


def test_strict_lists_every_bad_file_and_writes_nothing(runs, tmp_path):
  folder, _ = _mixed_folder(tmp_path)
  before = _hashes(folder)
  out = tmp_path / 'out'
  result = cli.run(
    'enhance.py',
    f'--workdir={runs["enhancement"]}',
    str(folder),
    f'--output_dir={out}',
    '--strict',
  )
  cli.assert_fails_with(
    result,
    '--strict: nothing written.',
    'error: 5 of 8 files refused (listed above); nothing written.',
  )
  _assert_all_bad_listed(result.stderr, folder)
  assert not out.exists(), f'expected no {out}, got {os.listdir(out)}'
  _assert_inputs_untouched(folder, before)


def test_separate_strict_writes_nothing(runs, tmp_path, capsys):
  folder, _ = _mixed_folder(tmp_path)
  out = tmp_path / 'out'
  with pytest.raises(ValueError, match=r'5 of 8 files refused'):
    _run_in_process(
      'separation',
      [f'--workdir={runs["separation"]}', str(folder), f'--output_dir={out}'],
      '--strict',
    )
  _assert_all_bad_listed(capsys.readouterr().err, folder)
  assert not out.exists(), f'expected no {out}, got {os.listdir(out)}'


def test_output_dir_that_would_overwrite_any_input_is_refused(runs, tmp_path):
  # b/x.wav would be written to a/x.wav, itself a (refused) input.
  (tmp_path / 'a').mkdir()
  (tmp_path / 'b').mkdir()
  (tmp_path / 'a' / 'x.wav').write_text('not audio')
  sf.write(tmp_path / 'b' / 'x.wav', _tone(0.3, 16000)[:, 0], 16000)
  before = _hashes(tmp_path)
  for inputs, out, message in (
    (
      [tmp_path / 'a' / 'x.wav', tmp_path / 'b'],
      tmp_path / 'a',
      'Refusing to overwrite the input',
    ),
    ([tmp_path / 'b'], tmp_path / 'b', 'Refusing to write into the input'),
    (
      [tmp_path / 'b'],
      tmp_path / 'b' / 'out',
      'Refusing to write into the input folder',
    ),
    ([tmp_path / 'b'], tmp_path / 'a' / 'x.wav', 'is a file; pass a folder'),
  ):
    with pytest.raises(ValueError, match=message):
      _run_in_process(
        'enhancement',
        [f'--workdir={runs["enhancement"]}', *map(str, inputs)],
        f'--output_dir={out}',
      )
  _assert_inputs_untouched(tmp_path, before)


def test_two_inputs_with_the_same_output_are_refused(runs, tmp_path):
  (tmp_path / 'in').mkdir()
  for name in ('x.wav', 'x.ogg'):
    sf.write(tmp_path / 'in' / name, _tone(0.3, 16000)[:, 0], 16000)
  with pytest.raises(ValueError, match='would both be written to'):
    _run_in_process(
      'enhancement',
      [f'--workdir={runs["enhancement"]}', str(tmp_path / 'in')],
      f'--output_dir={tmp_path / "out"}',
    )
  assert not (tmp_path / 'out').exists()


def test_a_file_the_model_fails_on_is_listed_and_leaves_no_output(
  runs, tmp_path, capsys, monkeypatch
):
  from launch import audio_batch

  def fail(pieces, handles, *args):
    del pieces, args
    handles[0].write(np.zeros(10))  # A partial result, then a failure.
    raise audio_batch.InputError('the model produced NaN or Inf samples')

  monkeypatch.setattr(audio_batch, '_write_pieces', fail)
  sf.write(tmp_path / 'x.wav', _tone(0.3, 16000)[:, 0], 16000)
  out = tmp_path / 'out'
  with pytest.raises(ValueError) as caught:
    _run_in_process(
      'enhancement',
      [f'--workdir={runs["enhancement"]}', str(tmp_path / 'x.wav')],
      f'--output_dir={out}',
    )
  want = f'1 of 1 files failed (listed above); 0 enhanced into {out}'
  assert str(caught.value) == want, f'expected {want!r}, got {caught.value}'
  line = f'failed: {tmp_path / "x.wav"}: the model produced NaN or Inf'
  err = capsys.readouterr().err
  assert line in err, f'expected {line!r} in stderr, got:\n{err}'
  assert os.listdir(out) == [], f'expected no output, got {os.listdir(out)}'


_ONE_MODEL = (
  'Exactly one of --workdir, --checkpoint and --pretrained is required'
)


@pytest.mark.parametrize('script', ['enhance.py', 'separate.py'])
def test_help_describes_every_flag_and_which_are_required(script):
  # `--help` may exit 1 until runtime.parse_flags lets it exit 0: the text
  # is what is checked here.
  result = cli.run(script, '--help', timeout=120)
  text = result.stdout + result.stderr
  required = {
    '--workdir': _ONE_MODEL,
    '--checkpoint': _ONE_MODEL,
    '--pretrained': _ONE_MODEL,
    '--output_dir': 'Required.',
    '--strict': 'Write nothing if any input is refused',
  }
  for flag, help_text in required.items():
    assert f'{flag}: ' in text or f'--[no]{flag[2:]}: ' in text, (
      f'expected {flag} in the --help of {script}, got:\n{text}'
    )
    assert help_text in ' '.join(text.split()), (
      f'expected {help_text!r} in the --help of {script}, got:\n{text}'
    )
  offered = '--[no]streaming' in text
  assert offered == (script == 'enhance.py'), (
    f'expected --streaming offered by enhance.py only; {script} --help:\n{text}'
  )


def test_separate_does_not_accept_streaming(runs, tmp_path):
  sf.write(tmp_path / 'mix.wav', _tone(0.3, 16000)[:, 0], 16000)
  result = cli.run(
    'separate.py',
    f'--workdir={runs["separation"]}',
    str(tmp_path / 'mix.wav'),
    f'--output_dir={tmp_path / "o"}',
    '--streaming',
  )
  cli.assert_fails_with(result, 'streaming')
  assert not (tmp_path / 'o').exists()


def _run_in_process(task, argv, *more):
  """`audio_batch.run` with `argv` parsed into the absl flags."""
  from launch import audio_batch, enhance  # Defines the flags.

  del enhance
  flags.FLAGS.unparse_flags()
  try:
    rest = flags.FLAGS(['enhance.py', *argv, *more])
    streaming = flags.FLAGS['streaming'].value
    return audio_batch.run(task, rest[1:], streaming=streaming)
  finally:
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize(
  'case, message',
  [
    ('no_samples', '1 of 1 files refused (listed above); nothing written.'),
    ('missing', '1 of 1 files refused (listed above); nothing written.'),
    ('overwrite', 'Refusing to overwrite the input'),
    ('no_model', 'exactly one of --workdir, --checkpoint and --pretrained'),
    ('no_inputs', 'No input files given'),
    ('streaming', 'has no streaming mode'),
    ('wrong_tool', 'holds a separation model; use launch/separate.py'),
    ('bad_step', 'No checkpoint for step 7'),
    (
      'step_with_pretrained',
      '--step=best applies to --workdir only, not to --pretrained: the '
      "pretrained model 'spiking_s4' holds one set of weights",
    ),
    (
      'step_with_checkpoint',
      '--step=7 applies to --workdir only, not to --checkpoint',
    ),
  ],
)
def test_enhance_rejects_bad_input_with_a_message(
  runs, tmp_path, case, message
):
  from harness import errors

  bad = _bad_inputs(tmp_path)
  good = str(tmp_path / 'good.wav')
  sf.write(good, _tone(0.5, 16000)[:, 0], 16000)
  model = [f'--workdir={runs["enhancement"]}']
  args = {
    'no_samples': [bad['no_samples']],
    'missing': [str(tmp_path / 'nope.wav')],
    'overwrite': [good, f'--output_dir={tmp_path}'],
    'no_model': [good],
    'no_inputs': [],
    'streaming': [good, '--streaming'],
    'wrong_tool': [good],
    'bad_step': [good, '--step=7'],
    'step_with_pretrained': [good, '--step=best'],
    'step_with_checkpoint': [good, '--step=7'],
  }[case]
  if case == 'no_model':
    model = []
  if case == 'step_with_pretrained':
    model = ['--pretrained=spiking_s4']
  if case == 'step_with_checkpoint':
    model = [f'--checkpoint={runs["enhancement"]}/checkpoints/2']
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
  for script, task in (
    ('enhance.py', 'enhancement'),
    ('separate.py', 'separation'),
  ):
    result = cli.run(
      script,
      f'--workdir={runs[task]}',
      bad['nan'],
      f'--output_dir={tmp_path / "out"}',
    )
    cli.assert_fails_with(
      result,
      f'refused: {bad["nan"]}: NaN or Inf samples',
      'error: 1 of 1 files refused (listed above); nothing written.',
    )
  result = cli.run(
    'separate.py',
    f'--workdir={runs["enhancement"]}',
    bad['nan'].replace('nan.wav', 'x.wav'),
    f'--output_dir={tmp_path / "out"}',
  )
  cli.assert_fails_with(result, 'x.wav: does not exist')


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
  # reproduces the offline model on the whole file (which ends inside a
  # hop: 20,800 samples are 162.5 hops).
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
  model = inference.load_model(workdir=spiking_run)
  want = model(x)
  scale = np.abs(want).max()
  np.testing.assert_allclose(
    got,
    want,
    atol=1e-4 * scale + 1e-6,
    err_msg='streamed output differs from offline',
  )
