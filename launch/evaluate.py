r"""Evaluates a checkpoint over a whole split; writes a JSON and a Markdown report.

  python launch/evaluate.py --workdir=runs/demo [--config=configs/demo.py] \
      [--step=latest|best|N] [--split=validation] \
      [--config.eval.metrics='("si_snr","si_snri","pesq_wb","stoi")']

Without `--config` the config saved with the run is used. Reports go to
`<workdir>/eval/<split>_step_<N>.{json,md}`; the table is also printed.
Metrics named in `config.eval.metrics` run in `config.eval.num_workers`
processes when they are CPU-heavy (PESQ, STOI, DNSMOS, composite).
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

import json
import os

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from harness import runtime

_CONFIG = config_flags.DEFINE_config_file(
  'config',
  None,
  'Recipe file (default: the config saved in --workdir); change its fields '
  'with --config.a.b=value.',
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
  'workdir', None, 'Required. Training run directory (launch/train.py).'
)
_STEP = flags.DEFINE_string(
  'step',
  'latest',
  'Checkpoint to evaluate: latest, best (by config.eval.best_metric) or a '
  'step number.',
)
_SPLIT = flags.DEFINE_string(
  'split', 'validation', 'Split to evaluate: validation, test or train.'
)
_PIPELINE = flags.DEFINE_string(
  'input_pipeline',
  'data_pipelines.input_pipeline',
  'Module with create_eval_iterator.',
)
_MULTIHOST = flags.DEFINE_enum(
  'multihost',
  'auto',
  ['auto', 'true', 'false'],
  'Call jax.distributed.initialize() (auto: when the environment describes '
  'several processes).',
)
flags.mark_flags_as_required(['workdir'])


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in `<workdir>/config.json`."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(
      f'{path} does not exist: --workdir is not a training run, or pass '
      '--config explicitly.'
    )
  from harness import checkpoint  # pylint: disable=g-import-not-at-top

  with open(path) as f:
    return checkpoint.saved_config(json.load(f))


def main(argv):
  """Program entry point (after flag parsing)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from harness import trainer  # pylint: disable=g-import-not-at-top

  runtime.hide_accelerators_from_tensorflow()
  runtime.quiet_library_logs()
  workdir = _WORKDIR.value
  with runtime.errors_as_messages():
    runtime.initialize_distributed(_MULTIHOST.value)
    if not os.path.isdir(workdir):
      raise FileNotFoundError(f'--workdir={workdir} does not exist.')
    config = (
      runtime.loaded_config(_CONFIG)
      if _CONFIG.value is not None
      else saved_config(workdir)
    )
    pipeline = runtime.load_input_pipeline(_PIPELINE.value)
    step = _STEP.value
    step = int(step) if step.isdigit() else step
    step, result, paths = trainer.evaluate_checkpoint(
      config, workdir, pipeline, step=step, split=_SPLIT.value
    )
  if paths:
    with open(paths[1]) as f:
      print(f.read())
    print(f'Wrote {paths[0]} and {paths[1]}.')


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
