r"""Learning curve of a short demo run: `learning_curve.png`.

  python docs/figures/make_learning_curve.py [--workdir=runs/docs_curve]

Runs (or resumes; a finished run returns at once)

  python launch/train.py --config=configs/demo.py:steps=1000 \
      --workdir=runs/docs_curve --config.train.log_every=20 \
      --config.train.eval_every=200

(the demo recipe, Spiking-S4 at width 128 on the built-in synthetic data,
cut from 3000 to 1000 steps; 4-5 min on a 2-core CPU, plus about a minute
to generate the data on first use), then plots the SI-SNR of the training
batches (TensorBoard `train/si_snr`, every 20 steps) and of the whole
built-in validation set (`eval/validation_step_*.json`, every 200 steps)
against the step, with the validation set's noisy input as a baseline.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import matplotlib
import numpy as np
from absl import app, flags

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # noqa: E402

ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
STEPS = 1000

_WORKDIR = flags.DEFINE_string(
  'workdir', os.path.join(ROOT, 'runs', 'docs_curve'), 'Training workdir.'
)
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'learning_curve.png'
  ),
  'Where to write the PNG.',
)


def train_command(workdir: str) -> list[str]:
  """The recipe command this figure shows (see the module docstring)."""
  return [
    sys.executable,
    os.path.join(ROOT, 'launch', 'train.py'),
    f'--config={os.path.join(ROOT, "configs", "demo.py")}:steps={STEPS}',
    f'--workdir={workdir}',
    '--config.train.log_every=20',
    '--config.train.eval_every=200',
  ]


def train_scalars(workdir: str, tag: str) -> tuple[np.ndarray, np.ndarray]:
  """`(steps, values)` of the TensorBoard scalar `tag` in `workdir`."""
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util

  acc = event_accumulator.EventAccumulator(
    workdir, size_guidance={event_accumulator.TENSORS: 0}
  )
  acc.Reload()
  events = acc.Tensors(tag)
  steps = np.array([e.step for e in events])
  values = np.array(
    [float(tensor_util.make_ndarray(e.tensor_proto)) for e in events]
  )
  return steps, values


def eval_reports(workdir: str) -> list[dict]:
  """The validation reports of the run, by step."""
  paths = glob.glob(os.path.join(workdir, 'eval', 'validation_step_*.json'))
  reports = []
  for path in paths:
    with open(path) as f:
      reports.append(json.load(f))
  return sorted(reports, key=lambda r: r['step'])


def plot(workdir: str, path: str) -> None:
  """Draws the run in `workdir` and writes the figure to `path`."""
  steps, train = train_scalars(workdir, 'train/si_snr')
  reports = eval_reports(workdir)
  eval_steps = [r['step'] for r in reports]
  eval_si_snr = [r['metrics']['si_snr'] for r in reports]
  noisy = [r['metrics']['si_snr'] - r['metrics']['si_snri'] for r in reports]
  fig, ax = plt.subplots(figsize=(7.0, 3.4))
  ax.plot(steps, train, lw=1.0, label='training batches (8 x 2 s crops)')
  ax.plot(eval_steps, eval_si_snr, 'o-', label='validation set (enhanced)')
  ax.axhline(
    np.mean(noisy), ls='--', color='gray', label='validation set (noisy input)'
  )
  ax.set_xlabel('training step')
  ax.set_ylabel('SI-SNR (dB)')
  ax.set_title(
    f'configs/demo.py:steps={STEPS} on the built-in synthetic data', fontsize=9
  )
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  print(f'wrote {path}')
  for r in reports:
    m = r['metrics']
    print(
      f'step {r["step"]}: SI-SNR {m["si_snr"]:.2f} dB, SI-SNRi {m["si_snri"]:.2f} dB'
    )


def main(argv):
  """Runs (or resumes) the training command, then draws its logs."""
  del argv
  command = train_command(_WORKDIR.value)
  print('+', ' '.join(command), flush=True)
  subprocess.run(command, check=True, cwd=ROOT)
  plot(_WORKDIR.value, _OUTPUT.value)


if __name__ == '__main__':
  app.run(main)
