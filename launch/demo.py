r"""The README's main job: train -> evaluate -> enhance, on built-in data.

  python launch/demo.py --workdir=runs/demo

1. `launch/train.py --config=configs/demo.py` trains a small Spiking-S4 on
   the built-in synthetic speech data (generated on first use, cached).
2. `launch/evaluate.py` scores the last checkpoint on the whole built-in
   validation set (SI-SNR, SI-SNRi, PESQ-WB, STOI) and writes
   `<workdir>/eval/validation_step_<N>.{json,md}`.
3. A clip of the synthetic test split is written to `<workdir>/example/`
   (`noisy.wav`, `clean.wav`) and `launch/enhance.py` enhances it into
   `<workdir>/example/enhanced/noisy.wav`; its SI-SNR is printed.

Each step is the command-line program a user would run, in its own process.
Rerunning resumes or skips finished work. `--smoke` runs the same pipeline in
seconds (tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import app, flags

_WORKDIR = flags.DEFINE_string('workdir', 'runs/demo', 'Run directory.')
_CONFIG = flags.DEFINE_string('config', 'configs/demo.py', 'Recipe file.')
_SMOKE = flags.DEFINE_bool('smoke', False, 'Tiny sizes (seconds).')

FULL_METRICS = "('si_snr','si_snri','pesq_wb','stoi')"
LAUNCH = os.path.dirname(os.path.abspath(__file__))


def _step(title: str, script: str, *args: str) -> None:
  print(f'\n=== {title} ===', flush=True)
  start = time.time()
  cmd = [sys.executable, os.path.join(LAUNCH, script), *args]
  print(' '.join(cmd), flush=True)
  done = subprocess.run(cmd, check=False)
  if done.returncode:
    sys.exit(f'error: {script} failed (exit {done.returncode}).')
  print(f'--- {title}: {time.time() - start:.0f} s', flush=True)


def write_example(folder: str, sample_rate: int, seconds: float) -> str:
  """Writes a synthetic test-split clip (`noisy.wav`, `clean.wav`)."""
  from data_pipelines import audio_io, synthetic  # pylint: disable=g-import-not-at-top

  spec = synthetic.SyntheticSpec(
    split='test',
    total_seconds=seconds,
    clip_seconds=seconds,
    sample_rate=sample_rate,
  )
  example = synthetic.make_example(spec, 0)
  noisy = os.path.join(folder, 'noisy.wav')
  for name in ('noisy', 'clean'):
    audio_io.write_audio(
      os.path.join(folder, f'{name}.wav'),
      example[name],
      sample_rate,
      subtype='FLOAT',
    )
  return noisy


def _si_snr(path: str, clean: str) -> float:
  from data_pipelines import audio_io  # pylint: disable=g-import-not-at-top
  from s4jax.audio import metrics  # pylint: disable=g-import-not-at-top

  x, _ = audio_io.read_audio(path)
  ref, _ = audio_io.read_audio(clean)
  return metrics.compute_metrics(['si_snr'], x, ref)['si_snr']


def main(argv):
  """Runs the three steps (see the module docstring)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  workdir = os.path.abspath(_WORKDIR.value)
  config = _CONFIG.value + (':smoke=True' if _SMOKE.value else '')
  start = time.time()
  _step('train', 'train.py', f'--config={config}', f'--workdir={workdir}')
  metrics = "('si_snr','si_snri')" if _SMOKE.value else FULL_METRICS
  _step(
    'evaluate',
    'evaluate.py',
    f'--config={config}',
    f'--workdir={workdir}',
    f'--config.eval.metrics={metrics}',
    '--config.eval.num_workers=2',
  )
  folder = os.path.join(workdir, 'example')
  noisy = write_example(folder, 16000, 2.0 if _SMOKE.value else 6.0)
  out = os.path.join(folder, 'enhanced')
  _step(
    'enhance',
    'enhance.py',
    f'--workdir={workdir}',
    noisy,
    f'--output_dir={out}',
    '--subtype=FLOAT',
  )
  clean = os.path.join(folder, 'clean.wav')
  before = _si_snr(noisy, clean)
  after = _si_snr(os.path.join(out, 'noisy.wav'), clean)
  print(
    f'\nExample {noisy}: SI-SNR {before:.2f} dB -> {after:.2f} dB '
    f'({after - before:+.2f} dB); enhanced file in {out}.'
  )
  print(f'Demo finished in {time.time() - start:.0f} s.')


if __name__ == '__main__':
  app.run(main)
