"""Loading a trained model: a training run, a checkpoint or a pretrained name.

`load_model` is the one loader of the command-line tools (`launch/enhance.py`,
`separate.py`, `export.py`, `summary.py` and `train.py --init_from`):

  load_model(workdir='runs/demo', step='best')
  load_model(checkpoint='runs/demo/checkpoints/1500')
  load_model(pretrained='spiking_s4')
  load_model('spiking_s4')   # or a workdir or checkpoint path: guessed

It rebuilds the model from the config saved with the checkpoint (or the
pretrained folder's config.json), so no recipe file is needed, restores the
parameters only (no optimiser is built and its state is not read) and
returns the `s4jax.inference.SpeechModel` of that config (see
`s4jax.inference.from_run_config`), with `.config`, `.step` and `.params`.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp

from harness import checkpoint as ckpt_lib
from s4jax import inference as inference_lib
from s4jax.pretrained import hub
from s4jax.training import tasks as tasks_lib

SpeechModel = inference_lib.SpeechModel
_SOURCES = ('workdir', 'checkpoint', 'pretrained')


class UnknownSourceError(ValueError):
  """A model source that is neither an existing path nor a pretrained name."""


def _locate(path: str) -> tuple[str, int | None]:
  """`(checkpoints folder, step or None)` for a workdir or a step folder."""
  path = os.path.abspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist.')
  name = os.path.basename(path.rstrip(os.sep))
  if name.isdigit() and os.path.isdir(os.path.join(path, 'state')):
    return os.path.dirname(path), int(name)
  sub = os.path.join(path, ckpt_lib.SUBDIR)
  if os.path.isdir(sub):
    return sub, None
  raise ckpt_lib.CheckpointError(
    f'{path} is neither a training workdir (with checkpoints/) nor a '
    'checkpoint folder (<workdir>/checkpoints/<step>).'
  )


def restore_params(
  checkpointer: ckpt_lib.Checkpointer,
  step: int,
  config: Any,
  task: tasks_lib.Task,
) -> Any:
  """The parameters saved at `step`, read alone (NumPy leaves).

  Only the `params` of the saved train state are read
  (`Checkpointer.restore_params`), into the shapes a fresh model of `config`
  has.

  Raises:
    CheckpointError: unreadable, incomplete or mismatched checkpoint.
  """
  init = functools.partial(
    task.init, num_samples=tasks_lib.init_samples(config)
  )
  params = checkpointer.restore_params(
    step, jax.eval_shape(init, jax.random.key(0))
  )
  ckpt_lib.log_restored(step, checkpointer.directory)
  return params


def _load_run(path: str, step: int | str | None = None) -> SpeechModel:
  """The model of a training run or checkpoint folder (parameters only).

  Args:
    path: a training workdir or a checkpoint step folder.
    step: None/'latest', 'best' or a step (workdir only).

  Raises:
    FileNotFoundError, CheckpointError: nothing usable at `path`.
  """
  directory, fixed = _locate(path)
  checkpointer = ckpt_lib.Checkpointer(directory, read_only=True)
  try:
    if fixed is not None:
      step = fixed
    workdir = os.path.dirname(directory)
    any_step = fixed if fixed is not None else checkpointer.latest_step()
    if any_step is None:
      raise ckpt_lib.CheckpointError(f'No checkpoints in {directory}.')
    config = ckpt_lib.load_config_from_checkpoint(checkpointer, any_step)
    step = ckpt_lib.resolve_step(checkpointer, workdir, config, step)
    task = tasks_lib.create_task(config)
    params = restore_params(checkpointer, step, config, task)
  finally:
    checkpointer.close()
  params = jax.tree.map(jnp.asarray, params)
  return inference_lib.from_run_config(config, params, step=step, task=task)


def load_model(
  source: str | None = None,
  *,
  workdir: str | None = None,
  checkpoint: str | None = None,
  pretrained: str | None = None,
  step: int | str | None = None,
  pretrained_dir: str | None = None,
) -> SpeechModel:
  """The model named by exactly one of the four sources (see module doc).

  Args:
    source: the name of a pretrained model, or else an existing path (a
      workdir or a checkpoint folder).
    workdir: a training run directory.
    checkpoint: one checkpoint folder `<workdir>/checkpoints/<step>`.
    pretrained: the name of a pretrained model
      (`s4jax.pretrained.available()`).
    step: with `workdir`: None/'latest', 'best' or a step number.
    pretrained_dir: with `pretrained` (or a name as `source`): the folder
      holding the pretrained models (default:
      `s4jax.pretrained.default_root()`).

  Returns:
    The `s4jax.inference.SpeechModel`, with `.config` and `.step`.

  Raises:
    TypeError: not exactly one source given.
    FileNotFoundError: a missing workdir or checkpoint folder.
    CheckpointError: a folder that holds no usable checkpoint, or a corrupt
      or mismatched one.
    s4jax.pretrained.PretrainedError: an unknown pretrained name (the message
      lists the available ones) or a damaged pretrained folder.
    UnknownSourceError: a `source` that is neither.
  """
  given = [s for s in (source, workdir, checkpoint, pretrained) if s]
  if len(given) != 1:
    raise TypeError(
      'load_model takes exactly one of source, workdir, checkpoint and '
      f'pretrained; got {len(given)}.'
    )
  if source:
    names = hub.available(pretrained_dir)
    if source not in names:
      if os.path.exists(source):
        return _load_run(source, step)
      raise UnknownSourceError(
        f'{source}: neither a pretrained model '
        f'({", ".join(names) or "none installed"}) nor an existing workdir '
        'or checkpoint folder.'
      )
    pretrained = source
  if pretrained:
    return hub.from_pretrained(pretrained, root=pretrained_dir)
  if checkpoint:
    return _load_run(checkpoint)
  return _load_run(workdir, step)
