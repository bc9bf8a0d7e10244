"""Exported streaming Spiking-S4: three formats, checked against JAX.

One export of the shipped pretrained model through `launch/export.py` (the
user's path) is shared by the tests; each artifact is re-run here against
the JAX model, so the checks the exporter records are not taken on trust.
"""

import hashlib
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf

from deploy import artifacts, formats, runners
from tests.launch import cli

TOL = 1e-4  # Of the signal peak (the bound for float32).


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('export') / 'ss4')
  # The exporter's own check runs on 2 s: each format is re-run over 10 s
  # below (`test_each_format_matches_jax_hop_by_hop_over_10_s`).
  result = cli.run(
    'export.py',
    '--pretrained=spiking_s4',
    f'--output_dir={out}',
    '--check_seconds=2',
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(out, 'metadata.json')) as f:
    return out, json.load(f), result.stdout


@pytest.fixture(scope='module')
def form():
  from s4jax.pretrained import hub

  return artifacts.stream_form(hub.from_pretrained('spiking_s4'), 'test')


@pytest.fixture(scope='module')
def ten_seconds(form):
  """A 10 s signal (not the export's) and the JAX stream's output on it."""
  signal = artifacts.test_signal(10.0, 16000, seed=7)
  return signal, artifacts.stream_reference(form, signal)


def _read(folder, meta, fmt):
  with open(os.path.join(folder, meta['files'][fmt]['file']), 'rb') as f:
    return f.read()


def test_metadata_describes_the_stream(exported):
  _, meta, stdout = exported
  assert meta['model'] == 'spiking_s4' and meta['form'] == 'stream'
  assert (meta['sample_rate'], meta['hop_length'], meta['n_fft']) == (
    16000,
    128,
    512,
  )
  assert meta['latency_samples'] == 640 and meta['latency_ms'] == 40.0
  assert meta['param_count'] == 530442  # The paper's count.
  assert meta['window'] == 'rect' and meta['delay_hops'] == 4
  names = [s['input'] for s in meta['state']]
  assert names[:5] == [
    'state_count',
    'state_inputs',
    'state_ola',
    'state_env',
    'state_lif_in',
  ]
  assert len(names) == 5 + 4 * 4, names
  assert sorted(meta['files']) == ['onnx', 'stablehlo', 'tflite']
  assert 'Latency 640 samples (40 ms' in stdout


def test_files_match_their_recorded_size_and_sha256(exported):
  folder, meta, _ = exported
  mode = os.stat(folder).st_mode & 0o777
  assert mode == 0o755, f'export folder mode {oct(mode)}, expected 0o755'
  for fmt, info in meta['files'].items():
    data = _read(folder, meta, fmt)
    assert len(data) == info['bytes'], fmt
    assert hashlib.sha256(data).hexdigest() == info['sha256'], fmt


@pytest.mark.parametrize('fmt', ['onnx', 'tflite', 'stablehlo'])
def test_each_format_matches_jax_hop_by_hop_over_10_s(
  exported, form, ten_seconds, fmt
):
  folder, meta, _ = exported
  signal, want = ten_seconds
  r = runners.runner(
    fmt, _read(folder, meta, fmt), form.input_names, form.output_names
  )
  got = artifacts.run_stream(r.run, form, signal)
  peak = np.abs(want).max()
  err = np.abs(got - want).max()
  if fmt == 'stablehlo':  # Serialize -> deserialize -> call: same program.
    assert err == 0.0, f'StableHLO round trip differs by {err}'
  assert err <= TOL * peak, f'{fmt}: max error {err}, peak {peak}'
  assert meta['files'][fmt]['check']['relative_error'] <= TOL


def test_onnx_batch_axis_is_symbolic(exported, form):
  """Two streams in one call equal two separate runs."""
  folder, meta, _ = exported
  assert meta['files']['onnx']['inputs'][0]['shape'] == ['B', 128]
  r = runners.OnnxRunner(_read(folder, meta, 'onnx'))
  signal = artifacts.test_signal(1.0, 16000)
  pair = np.concatenate([signal, 0.3 * signal[:, ::-1]])
  both = artifacts.run_stream(r.run, form, pair)
  for row in range(2):
    one = artifacts.run_stream(r.run, form, pair[row : row + 1])
    err = np.abs(both[row] - one[0]).max()
    assert err <= TOL * np.abs(one).max(), f'row {row}: {err}'


def test_example_enhances_a_wav_with_jax_unimportable(exported, form, tmp_path):
  folder, meta, _ = exported
  signal = artifacts.test_signal(2.0, 16000, seed=3)
  sf.write(tmp_path / 'noisy.wav', signal[0], 16000, subtype='FLOAT')
  blocker = tmp_path / 'nojax' / 'jax'
  blocker.mkdir(parents=True)
  (blocker / '__init__.py').write_text('raise ImportError("JAX is blocked")\n')
  env = dict(os.environ, PYTHONPATH=str(tmp_path / 'nojax'))
  # The example feeds 4 zero hops after the signal and drops the delay.
  padded = np.pad(signal, ((0, 0), (0, 4 * 128)))
  want = artifacts.stream_reference(form, padded)[0, 4 * 128 :]
  for fmt in ('onnx', 'tflite'):
    out = tmp_path / f'enhanced_{fmt}.wav'
    result = subprocess.run(
      [
        sys.executable,
        os.path.join(cli.ROOT, 'examples', 'stream_enhance.py'),
        os.path.join(folder, meta['files'][fmt]['file']),
        str(tmp_path / 'noisy.wav'),
        str(out),
      ],
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'ms per 8 ms hop' in result.stdout
    got, rate = sf.read(out, dtype='float32')
    assert rate == 16000 and got.shape == (signal.shape[-1],)
    err = np.abs(got - want).max()
    bound = TOL * np.abs(want).max() + 2.0**-15  # + 16-bit PCM rounding.
    assert err <= bound, f'{fmt}: example output off by {err} (> {bound})'


def test_example_refuses_stereo_and_wrong_rate(exported, tmp_path):
  folder, meta, _ = exported
  model = os.path.join(folder, meta['files']['onnx']['file'])
  sf.write(tmp_path / 'st.wav', np.zeros((800, 2)), 16000)
  sf.write(tmp_path / 'sr.wav', np.zeros(800), 8000)
  script = os.path.join(cli.ROOT, 'examples', 'stream_enhance.py')
  for name, message in [('st.wav', 'has 2 channels'), ('sr.wav', 'is 8000 Hz')]:
    result = subprocess.run(
      [
        sys.executable,
        script,
        model,
        str(tmp_path / name),
        str(tmp_path / 'out.wav'),
      ],
      capture_output=True,
      text=True,
      timeout=120,
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'out.wav').exists()


def test_existing_output_dir_is_refused_and_left_alone(tmp_path):
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out' / 'keep.txt').write_text('mine')
  result = cli.run(
    'export.py', '--pretrained=spiking_s4', f'--output_dir={tmp_path}/out'
  )
  cli.assert_fails_with(result, 'already exists', 'never overwrite')
  assert os.listdir(tmp_path / 'out') == ['keep.txt']
  assert (tmp_path / 'out' / 'keep.txt').read_text() == 'mine'


def test_unknown_format_is_refused(tmp_path):
  result = cli.run(
    'export.py',
    '--pretrained=spiking_s4',
    f'--output_dir={tmp_path}/o',
    '--formats=onnx,coreml',
  )
  cli.assert_fails_with(result, "['coreml']", 'stablehlo, onnx, tflite')
  assert not os.path.exists(tmp_path / 'o')


def test_stream_form_of_a_separator_is_refused():
  separator = types.SimpleNamespace(
    config=types.SimpleNamespace(model=types.SimpleNamespace(name='s4m'))
  )
  with pytest.raises(formats.ExportError, match='no streaming form'):
    artifacts.stream_form(separator, 'test')


def test_a_failing_check_writes_nothing(form, tmp_path):
  def check(fmt, data):
    return artifacts.compare(fmt, np.ones(3), np.zeros(3) + 0.5, 'forced')

  out = tmp_path / 'out'
  with pytest.raises(formats.ExportError, match='differs from the JAX model'):
    artifacts.write(form, str(out), ('stablehlo',), check=check)
  assert os.listdir(tmp_path) == []  # Neither the folder nor a temporary.


def test_tflite_needs_fixed_shapes():
  specs = formats.arg_specs([((4,), 'float32')], symbolic_batch=True)
  with pytest.raises(formats.ExportError, match='fixed shapes'):
    formats.to_tflite(lambda x: (x,), specs, ['x'], ['y'])
