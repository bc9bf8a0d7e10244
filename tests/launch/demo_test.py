"""launch/demo.py --smoke: the README's main job end to end, in small."""

import os

import pytest

from tests.launch import cli


@pytest.mark.slow
def test_demo_smoke_trains_evaluates_and_enhances(tmp_path, monkeypatch):
  monkeypatch.setenv('S4JAX_CACHE_DIR', str(tmp_path / 'cache'))
  workdir = tmp_path / 'demo'
  result = cli.run('demo.py', '--smoke', f'--workdir={workdir}', timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Example ' in result.stdout and 'SI-SNR' in result.stdout
  assert (workdir / 'eval' / 'validation_step_2.md').exists()
  enhanced = workdir / 'example' / 'enhanced' / 'noisy.wav'
  assert enhanced.exists() and os.path.getsize(enhanced) > 0
