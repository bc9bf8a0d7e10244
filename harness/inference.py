"""Inference from a training run: load a checkpoint, run the model on clips.

`load(path, step)` accepts a training `--workdir` (its `checkpoints/` folder)
or one checkpoint folder (`<workdir>/checkpoints/<step>`) and rebuilds the
model from the config saved with the checkpoint, so no recipe file is
needed. `Enhancer` runs fixed-length windows (one compilation per window
length); the command-line tools cut long files into such windows.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from harness import checkpoint as ckpt_lib
from s4jax.training import optim
from s4jax.training import sharding as sharding_lib
from s4jax.training import tasks as tasks_lib


@dataclasses.dataclass
class Enhancer:
  """A trained model ready to process mono signals at `sample_rate`.

  Attributes:
    config: the run's config.
    task: its task (model, batch layout).
    params: parameters (single device).
    step: the checkpoint step.
  """

  config: ml_collections.ConfigDict
  task: tasks_lib.Task
  params: Any
  step: int

  def __post_init__(self):
    task = self.task
    self._run = jax.jit(
      lambda p, x: task.estimate(task.apply(p, x, train=False))
    )

  @property
  def sample_rate(self) -> int:
    return self.task.sample_rate

  @property
  def num_outputs(self) -> int:
    """1 for enhancement, S for separation."""
    return int(self.config.data.num_sources) if self.separates else 1

  @property
  def separates(self) -> bool:
    return self.task.name == 'separation'

  def __call__(self, x: np.ndarray) -> np.ndarray:
    """x: real (T,) -> estimate (T,) (enhancement) or (S, T) (separation)."""
    out = self._run(self.params, jnp.asarray(x, jnp.float32)[None])
    return np.asarray(out[0], np.float32)

  def streamer(self) -> Any:
    """The model's frame-by-frame streaming wrapper.

    Raises:
      ValueError: the model has no streaming mode.
    """
    module = self.task.model_module
    if not hasattr(module, 'StreamingEnhancer') or self.separates:
      raise ValueError(
        f'Model {self.config.model.name!r} has no streaming mode; run '
        'without --streaming.'
      )
    model_config = tasks_lib.model_config_for(self.config)
    return module.StreamingEnhancer({'params': self.params}, model_config)


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


def load(path: str, step: int | str | None = None) -> Enhancer:
  """Loads the model of a run (see module doc).

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
    tx = optim.create_optimizer(config.optimizer, int(config.train.num_steps))
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), (sharding_lib.DATA,))
    state = ckpt_lib.restore_or_init(
      config, task, tx, mesh, checkpointer, step=step
    )
  finally:
    checkpointer.close()
  return Enhancer(config, task, state.params, step)


def best_permutation(previous: np.ndarray, current: np.ndarray) -> tuple:
  """Order of `current` sources that best matches `previous` (S, n).

  Used to keep the speaker order consistent across windows: both arrays are
  the same stretch of audio seen by two overlapping windows.
  """
  sources = previous.shape[0]
  best, order = -np.inf, tuple(range(sources))
  for perm in itertools.permutations(range(sources)):
    score = float(np.sum(previous * current[list(perm)]))
    if score > best:
      best, order = score, perm
  return order
