"""Orbax checkpoints of the train state (I/O helper of the training loop).

Layout: `<workdir>/checkpoints/<step>/{state,meta}`. `state` is the
`TrainState` pytree (`StandardSave`), restored with the shardings of the
target; `meta` is JSON with the config, so that `evaluate`, `enhance` and
`separate` can rebuild the model from a checkpoint alone.

Retention: the last `keep` checkpoints plus the best one by the evaluation
metric (`best_metric`, `best_mode`). Saves are asynchronous; call `wait()`
before reading them back and `close()` at the end.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from orbax.checkpoint import checkpoint_managers

from harness import errors, evaluation
from s4jax import models
from s4jax.training import program as program_lib
from s4jax.training import state as state_lib

SUBDIR = 'checkpoints'


CheckpointError = errors.CheckpointError


def absolute(path: str) -> str:
  """`path` made absolute; URLs (`gs://...`) are returned as they are."""
  return path if '://' in str(path) else os.path.abspath(path)


def checkpoint_dir(workdir: str) -> str:
  """The checkpoint folder of a training workdir (local or `gs://`)."""
  return str(epath.Path(absolute(workdir)) / SUBDIR)


def _policy(keep: int, best_metric: str | None, best_mode: str):
  policies = [checkpoint_managers.LatestN(n=max(int(keep), 1))]
  if best_metric:
    policies.append(
      checkpoint_managers.BestN(
        get_metric_fn=lambda m: float(m[best_metric]),
        reverse=best_mode == 'min',
        n=1,
        keep_checkpoints_without_metrics=False,
      )
    )
  return checkpoint_managers.AnyPreservationPolicy(policies)


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with clear errors."""

  def __init__(
    self,
    directory: str,
    *,
    keep: int = 3,
    best_metric: str | None = None,
    best_mode: str = 'max',
    read_only: bool = False,
    asynchronous: bool = True,
  ):
    self.directory = absolute(directory)
    if read_only and not epath.Path(self.directory).is_dir():
      raise CheckpointError(
        f'No checkpoint directory {self.directory}; pass the --workdir of '
        'a training run (it holds checkpoints/).'
      )
    options = ocp.CheckpointManagerOptions(
      preservation_policy=_policy(keep, best_metric, best_mode),
      enable_async_checkpointing=asynchronous,
      read_only=read_only,
      create=not read_only,
    )
    self._manager = ocp.CheckpointManager(
      self.directory, options=options, item_names=('state', 'meta')
    )

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(
    self,
    step: int,
    state: Any,
    *,
    meta: dict[str, Any],
    metrics: dict[str, float] | None = None,
    force: bool = False,
  ) -> bool:
    """Starts an (asynchronous) save of `state` at `step`."""
    if step in self._manager.all_steps():
      return False
    return self._manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
      ),
      metrics=metrics,
      force=force,
    )

  def step_path(self, step: int) -> str:
    return str(epath.Path(self.directory) / str(step))

  def restore(self, step: int, target: Any) -> Any:
    """Restores the state at `step` into the shapes/shardings of `target`.

    Args:
      step: a saved step.
      target: a pytree of arrays or `jax.ShapeDtypeStruct` with shardings.

    Raises:
      CheckpointError: unreadable, incomplete or mismatched checkpoint.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      out = self._manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)),
      )
    except Exception as e:  # pylint: disable=broad-except
      raise self._unreadable(
        step,
        e,
        'model/optimiser config. Delete that step folder to resume from an '
        'earlier one, or use a fresh --workdir.',
      ) from e
    return out['state']

  def restore_params(self, step: int, params: Any) -> Any:
    """Only the `params` of the state saved at `step`, as NumPy leaves.

    An Orbax partial restore: the optimiser state is neither built nor read.

    Args:
      step: a saved step.
      params: the parameter shapes (arrays or `jax.ShapeDtypeStruct`s).

    Raises:
      CheckpointError: unreadable, incomplete or mismatched checkpoint.
    """
    item = {'params': params}
    restore_args = jax.tree.map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item
    )
    path = os.path.join(self.step_path(step), 'state')
    try:
      with ocp.PyTreeCheckpointer() as reader:
        out = reader.restore(
          path,
          args=ocp.args.PyTreeRestore(
            item=item, restore_args=restore_args, partial_restore=True
          ),
        )
    except Exception as e:  # pylint: disable=broad-except
      raise self._unreadable(
        step,
        e,
        'model config. Delete that step folder to use an earlier one.',
      ) from e
    return out['params']

  def _unreadable(
    self, step: int, error: Exception, written_for: str
  ) -> CheckpointError:
    """The error of a step that cannot be restored (`written_for`: a hint)."""
    return CheckpointError(
      f'Cannot restore the checkpoint {self.step_path(step)}: '
      f'{type(error).__name__}: {_first_line(error)}\nIt is unreadable, '
      f'incomplete, or was written for a different {written_for}'
    )

  def restore_meta(self, step: int) -> dict[str, Any]:
    """The JSON metadata (config) stored with `step`."""
    try:
      out = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
      )
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(
        f'Cannot read the metadata of checkpoint {self.step_path(step)}: '
        f'{type(e).__name__}: {_first_line(e)}'
      ) from e
    return dict(out['meta'])

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[0][:500] if text else ''


def log_restored(step: int, directory: str) -> None:
  """Logs a successful restore."""
  logging.info('Restored checkpoint step %d from %s.', step, directory)


def restore_or_init(
  program: program_lib.Program,
  checkpointer: Checkpointer,
  step: int | None = None,
) -> state_lib.TrainState:
  """The state at `step` (default: latest), or a fresh one if none exist.

  The state is placed on the program's mesh
  (`program.Program.abstract_state`), whatever mesh the checkpoint was
  written from.
  """
  step = checkpointer.latest_step() if step is None else step
  if step is None:
    return program.init_state()
  state = checkpointer.restore(step, program.abstract_state())
  log_restored(step, checkpointer.directory)
  return state


def saved_config(config: dict[str, Any]) -> ml_collections.ConfigDict:
  """A config read back from a run (checkpoint metadata or `config.json`).

  Runs written before the model settings were nested (`config.model.neuron.*`,
  `config.model.block.*`) have a flat `config.model`; it is upgraded with
  `s4jax.models.upgrade_model_config`, so old runs load, evaluate and resume.
  """
  config = dict(config)
  if isinstance(config.get('model'), dict):
    config['model'] = models.upgrade_model_config(config['model'])
  return ml_collections.ConfigDict(config)


def load_config_from_checkpoint(
  checkpointer: Checkpointer, step: int
) -> ml_collections.ConfigDict:
  """The config saved with a checkpoint (upgraded by `saved_config`)."""
  return saved_config(checkpointer.restore_meta(step)['config'])


def resolve_step(
  checkpointer: Checkpointer,
  workdir: str,
  config,
  step,
  report_subdir: str = 'eval',
) -> int:
  """`step`: None/'latest', 'best' or an int; returns a saved step."""
  steps = checkpointer.all_steps()
  if not steps:
    raise CheckpointError(
      f'No checkpoints in {checkpointer.directory}; train first '
      '(launch/train.py --workdir=...).'
    )
  if step in (None, 'latest', ''):
    return max(steps)
  if step == 'best':
    step = evaluation.best_step(
      str(epath.Path(workdir) / report_subdir),
      'validation',
      config.eval.best_metric,
      config.eval.best_mode,
    )
  step = int(step)
  if step not in steps:
    raise CheckpointError(
      f'No checkpoint for step {step} in {checkpointer.directory}; '
      f'available: {sorted(steps)}.'
    )
  return step
