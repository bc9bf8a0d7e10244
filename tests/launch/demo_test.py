"""launch/demo.py --smoke: the README's main job end to end, in small."""

import os
import shlex
import subprocess
import sys

import pytest

from tests.launch import cli


@pytest.mark.slow
def test_demo_smoke_trains_evaluates_and_enhances(tmp_path, monkeypatch):
  monkeypatch.setenv('S4JAX_CACHE_DIR', str(tmp_path / 'cache'))
  workdir = tmp_path / 'demo'
  result = cli.run('demo.py', '--smoke', f'--workdir={workdir}', timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  assert (workdir / 'eval' / 'validation_step_2.md').exists()
  # The printed commands paste into a shell: each splits back into the
  # arguments the demo ran (the metrics tuple stays one argument).
  lines = out.splitlines()
  commands = [
    shlex.split(lines[i + 1])
    for i, line in enumerate(lines)
    if line.startswith('=== ')
  ]
  scripts = [os.path.basename(c[1]) for c in commands]
  assert scripts == ['train.py', 'evaluate.py', 'enhance.py'], commands
  evaluate = commands[1]
  assert '--config.eval.metrics=("si_snr","si_snri")' in evaluate, evaluate
  moves = [shlex.split(line) for line in lines if line.startswith('mv ')]
  assert moves and moves[0][2] == str(workdir / 'example' / 'enhanced.wav')
  # The evaluation table has the noisy-input baseline next to the output.
  assert '| metric | noisy input | enhanced | change |' in out, out
  assert '| SI-SNR (dB) |' in out and '| SI-SNRi (dB) | - |' in out, out
  assert (workdir / 'eval' / 'noisy_vs_enhanced_validation_step_2.md').exists()
  # The example folder says which file is which.
  example = workdir / 'example'
  for name in ('noisy.wav', 'clean.wav', 'enhanced.wav'):
    assert os.path.getsize(example / name) > 0, name
  assert not (example / 'enhanced').exists()
  assert not (example / 'enhance_output').exists()
  assert 'SI-SNR of noisy.wav' in out and 'enhanced.wav' in out, out


def test_printed_evaluate_command_survives_bash():
  # In a subprocess: importing launch.demo defines absl flags that other
  # tools in this test process define too.
  code = (
    'import shlex; from launch import demo; '
    "print(shlex.join(['evaluate.py', "
    "demo.metrics_override(('si_snr', 'pesq_wb'))]))"
  )
  line = subprocess.run(
    [sys.executable, '-c', code],
    cwd=cli.ROOT,
    capture_output=True,
    text=True,
    check=True,
  ).stdout.strip()
  # bash parses the printed line back into the two arguments the demo ran.
  echoed = subprocess.run(
    ['bash', '-c', f'printf "%s\\n" {line}'],
    capture_output=True,
    text=True,
    check=True,
  ).stdout.splitlines()
  assert echoed == [
    'evaluate.py',
    '--config.eval.metrics=("si_snr","pesq_wb")',
  ], f'bash split {line!r} into {echoed}'
