"""The flags naming the model a tool runs: a workdir, checkpoint or name.

`launch/enhance.py`, `separate.py` and `export.py` define them by importing
this module and list them in their `--help` through
`flags.adopt_module_key_flags(model_flags)`; exactly one of `--workdir`,
`--checkpoint` and `--pretrained` is required (`check`). `load()` returns the
model through `harness.inference.load_model`, the loader `train.py
--init_from` uses too.
"""

from __future__ import annotations

from absl import flags

WORKDIR = flags.DEFINE_string(
  'workdir',
  None,
  'Training run directory to load the model from. Exactly one of '
  '--workdir, --checkpoint and --pretrained is required.',
)
CHECKPOINT = flags.DEFINE_string(
  'checkpoint',
  None,
  'Checkpoint folder to load the model from '
  '(<workdir>/checkpoints/<step>). Exactly one of --workdir, '
  '--checkpoint and --pretrained is required.',
)
PRETRAINED = flags.DEFINE_string(
  'pretrained',
  None,
  'Name of a pretrained model that ships with s4jax (e.g. spiking_s4 for '
  'enhance.py and export.py, s4m_tiny for separate.py; a wrong name lists '
  'them). Exactly one of --workdir, --checkpoint and --pretrained is '
  'required.',
)
PRETRAINED_DIR = flags.DEFINE_string(
  'pretrained_dir',
  None,
  'With --pretrained: folder holding the pretrained models (default: '
  '$S4JAX_PRETRAINED_DIR, else the s4jax/pretrained/ package folder).',
)
STEP = flags.DEFINE_string(
  'step',
  'latest',
  'With --workdir: latest, best or a step number (refused with --checkpoint '
  'and --pretrained, which name one set of weights).',
)


class ModelFlagError(ValueError):
  """Not exactly one model source given, or --step without --workdir."""


def check() -> None:
  """Raises `ModelFlagError` unless the flags name exactly one model.

  That is exactly one of the sources, and `--step` only with `--workdir`: a
  checkpoint folder or a pretrained model holds one set of weights, so a
  `--step` there would be ignored.
  """
  sources = (WORKDIR.value, CHECKPOINT.value, PRETRAINED.value)
  if sum(bool(s) for s in sources) != 1:
    raise ModelFlagError(
      'Pass exactly one of --workdir, --checkpoint and --pretrained.'
    )
  if flags.FLAGS[STEP.name].present and not WORKDIR.value:
    given = '--pretrained' if PRETRAINED.value else '--checkpoint'
    what = (
      f'the pretrained model {PRETRAINED.value!r} holds one set of weights '
      '(its step is in its MODEL_CARD.md)'
      if PRETRAINED.value
      else f'--checkpoint={CHECKPOINT.value} is one step already'
    )
    raise ModelFlagError(
      f'--step={STEP.value} applies to --workdir only, not to {given}: '
      f'{what}. Drop --step, or pass --workdir=RUN to choose a checkpoint '
      'of a training run.'
    )


def source() -> str:
  """What was loaded, for reports: `pretrained:NAME` or the path."""
  check()
  if PRETRAINED.value:
    return f'pretrained:{PRETRAINED.value}'
  return WORKDIR.value or CHECKPOINT.value


def load():
  """The `s4jax.inference.SpeechModel` the flags name (after `check`).

  Raises:
    ModelFlagError, and the errors of `harness.inference.load_model`.
  """
  check()
  from harness import inference  # pylint: disable=g-import-not-at-top

  return inference.load_model(
    workdir=WORKDIR.value,
    checkpoint=CHECKPOINT.value,
    pretrained=PRETRAINED.value,
    step=STEP.value,
    pretrained_dir=PRETRAINED_DIR.value,
  )
