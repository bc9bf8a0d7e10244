r"""Trains a recipe: `python launch/train.py --config=PATH[:ARG] --workdir=DIR`.

Examples:
  python launch/train.py --config=configs/demo.py --workdir=runs/demo
  python launch/train.py --config=configs/s4m_tiny.py:smoke=True \
      --workdir=/tmp/s4m --config.optimizer.learning_rate=3e-4
  python launch/train.py --config=configs/spiking_s4_offline.py \
      --workdir=runs/finetune --init_from=spiking_s4   # fine-tune

Overrides (`--config.a.b=value`) are type-checked against the recipe; an
unknown key or a wrong type stops the program before any work. The same
command runs on a laptop CPU, a GPU node and every host of a Cloud TPU pod
(multi-host jobs are detected and `jax.distributed.initialize()` is called;
force it with `--multihost=true`). Rerunning it resumes from the latest
checkpoint in `--workdir`; SIGTERM saves a checkpoint and exits.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

from absl import app, flags, logging
from ml_collections import config_flags

from harness import runtime

_CONFIG = config_flags.DEFINE_config_file(
  'config',
  None,
  'Required. Recipe file, configs/<name>.py[:arg]; change its fields with '
  '--config.a.b=value.',
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
  'workdir',
  None,
  'Required. Directory for checkpoints, logs and reports (created if '
  'missing; rerunning resumes from its latest checkpoint).',
)
_PIPELINE = flags.DEFINE_string(
  'input_pipeline',
  'data_pipelines.input_pipeline',
  'Module with create_train_iterator / create_eval_iterator.',
)
_MULTIHOST = flags.DEFINE_enum(
  'multihost',
  'auto',
  ['auto', 'true', 'false'],
  'Call jax.distributed.initialize() (auto: when the environment describes '
  'several processes).',
)
_INIT_FROM = flags.DEFINE_string(
  'init_from',
  None,
  'Fine-tune: start a new run from trained parameters instead of a fresh '
  'initialisation (fresh optimiser): a pretrained model name (e.g. '
  'spiking_s4), a training workdir (its latest checkpoint) or a checkpoint '
  'folder <workdir>/checkpoints/<step>. The recipe must build the same '
  'model. Ignored when --workdir already holds a checkpoint (the run '
  'resumes).',
)
flags.mark_flags_as_required(['config', 'workdir'])


def _initial_params(source: str | None):
  """Parameters named by --init_from (`harness.inference.load_model`)."""
  if not source:
    return None
  from harness import inference  # pylint: disable=g-import-not-at-top

  try:
    model = inference.load_model(source)
  except inference.UnknownSourceError as e:
    raise ValueError(f'--init_from={e}') from None
  logging.info('Fine-tuning from %s (step %d).', source, model.step)
  return model.params


def main(argv):
  """Program entry point (after flag parsing)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from harness import trainer  # pylint: disable=g-import-not-at-top

  runtime.hide_accelerators_from_tensorflow()
  runtime.quiet_library_logs()
  with runtime.errors_as_messages():
    runtime.initialize_distributed(_MULTIHOST.value)
    result = trainer.train_and_evaluate(
      runtime.loaded_config(_CONFIG),
      _WORKDIR.value,
      runtime.load_input_pipeline(_PIPELINE.value),
      initial_params=_initial_params(_INIT_FROM.value),
    )
  if result.preempted:
    logging.warning(
      'Stopped early by SIGTERM or Ctrl-C; rerun the command to resume.'
    )


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
