"""The jitted train and eval steps of a recipe over a mesh.

One definition serves every caller that runs or compiles a recipe's steps:
the training loop (`harness.trainer`), compile-only reports for TPU
topologies and GPUs (`launch/compile.py`) and the accelerator benchmark.
`Program.build(config, mesh)` creates the task, optimiser and schedule;
`abstract_state` and `abstract_batch` describe the step's inputs as
`jax.ShapeDtypeStruct`s with their shardings, so a step can be lowered and
compiled for devices this host does not have.

Shardings: the state is replicated, batches are split along `'data'`, the
state is donated to the train step and the metrics come back replicated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from s4jax.training import optim
from s4jax.training import sharding as sharding_lib
from s4jax.training import state as state_lib
from s4jax.training import steps as steps_lib
from s4jax.training import tasks as tasks_lib

__all__ = ['Program', 'abstract_batch', 'batch_length']


def batch_length(config: ml_collections.ConfigDict, *, train: bool) -> int:
  """Samples per example of a recipe's train or eval batches.

  Train batches are crops of `data.segment_seconds`. Eval batches hold whole
  clips unless `data.eval_segment_seconds` cuts them; for a whole-clip
  evaluation this returns the train length as a representative size.
  """
  rate = int(config.data.sample_rate)
  seconds = float(config.data.segment_seconds or 0.0)
  if not train and float(config.data.get('eval_segment_seconds', 0.0)) > 0:
    seconds = float(config.data.eval_segment_seconds)
  if seconds <= 0:
    raise ValueError(
      'config.data.segment_seconds is 0 (whole clips of varying length): '
      'a compiled step needs a fixed length; set it, e.g. '
      '--config.data.segment_seconds=4.'
    )
  return int(round(seconds * rate))


def abstract_batch(
  config: ml_collections.ConfigDict,
  mesh: jax.sharding.Mesh,
  *,
  train: bool = True,
  batch_size: int | None = None,
) -> dict[str, jax.ShapeDtypeStruct]:
  """The global batch a recipe's steps read, as shapes.

  These are the task's input and target arrays (`tasks.Task.batch_keys`),
  which the trainer takes from each pipeline batch.

  Args:
    config: the recipe.
    mesh: the mesh the batch is split over (along `'data'`).
    train: train batches (`train.batch_size`) or eval batches
      (`eval.batch_size`, plus the `mask` and `length` rows of padding).
    batch_size: overrides the recipe's global batch size.

  Returns:
    `{key: ShapeDtypeStruct}` with the batch sharding, keys as in
    `tasks.LAYOUTS` (enhancement: `noisy`, `clean`; separation: `mixture`,
    `sources` `(B, S, T)`).
  """
  if batch_size is None:
    batch_size = config.train.batch_size if train else config.eval.batch_size
  batch_size = int(batch_size)
  what = 'config.train.batch_size' if train else 'config.eval.batch_size'
  sharding_lib.check_batch_size(batch_size, mesh, what)
  length = batch_length(config, train=train)
  in_key, target_key, _ = tasks_lib.LAYOUTS[config.task]
  shapes = {in_key: (batch_size, length), target_key: (batch_size, length)}
  if config.task == 'separation':
    sources = int(config.data.num_sources)
    shapes[target_key] = (batch_size, sources, length)
  dtypes = dict.fromkeys(shapes, jnp.float32)
  if not train:
    shapes.update(mask=(batch_size,), length=(batch_size,))
    dtypes.update(mask=jnp.bool_, length=jnp.int32)
  sharding = sharding_lib.batch_sharding(mesh)
  return {
    k: jax.ShapeDtypeStruct(shapes[k], dtypes[k], sharding=sharding)
    for k in shapes
  }


def _shardings(tree: Any) -> Any:
  return jax.tree.map(lambda x: x.sharding, tree)


@dataclasses.dataclass(frozen=True)
class Program:
  """A recipe's task, optimiser and mesh, and its jitted steps.

  Attributes:
    config: the recipe.
    mesh: the `(data, model)` mesh (`sharding.create_mesh`).
    task: the task (model, batch layout, loss).
    tx: the optimiser of `config.optimizer`.
    lr_fn: the learning-rate schedule (for the logged rate).
  """

  config: ml_collections.ConfigDict
  mesh: jax.sharding.Mesh
  task: tasks_lib.Task
  tx: optax.GradientTransformation
  lr_fn: Callable[[Any], Any]

  @classmethod
  def build(
    cls, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh
  ) -> Program:
    """The program of `config` over `mesh`."""
    num_steps = int(config.train.num_steps)
    return cls(
      config=config,
      mesh=mesh,
      task=tasks_lib.create_task(config),
      tx=optim.create_optimizer(config.optimizer, num_steps),
      lr_fn=optim.learning_rate_fn(config.optimizer, num_steps),
    )

  def init_fn(self) -> Callable[[], state_lib.TrainState]:
    """A function of no arguments creating the initial train state."""
    init_rng, state_rng = jax.random.split(jax.random.key(self.config.seed))
    samples = tasks_lib.init_samples(self.config)

    def init():
      params = self.task.init(init_rng, samples)
      return state_lib.create(params, self.tx.init(params), state_rng)

    return init

  def abstract_state(self) -> state_lib.TrainState:
    """The train state's shapes and dtypes, replicated over the mesh."""
    shapes = jax.eval_shape(self.init_fn())
    repl = sharding_lib.replicated(self.mesh)
    return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl), shapes
    )

  def init_state(self) -> state_lib.TrainState:
    """A fresh train state, created on the mesh's devices."""
    out = _shardings(self.abstract_state())
    return jax.jit(self.init_fn(), out_shardings=out)()

  def train_step(self, state: Any, batch: Any) -> Callable[..., Any]:
    """The jitted `steps.make_train_step` with its shardings, state donated.

    Args:
      state: the train state, arrays or `ShapeDtypeStruct`s (for shardings).
      batch: a batch, arrays or `ShapeDtypeStruct`s (for shardings).

    Returns:
      `(state, batch) -> (state, StepMetrics, consecutive_skips)`.
    """
    repl = sharding_lib.replicated(self.mesh)
    return jax.jit(
      steps_lib.make_train_step(self.task, self.tx, self.lr_fn),
      in_shardings=(_shardings(state), _shardings(batch)),
      out_shardings=(_shardings(state), repl, repl),
      donate_argnums=0,
    )

  def eval_step(self) -> Callable[..., Any]:
    """The jitted `steps.make_eval_step`, outputs split along `'data'`."""
    return jax.jit(
      steps_lib.make_eval_step(self.task),
      out_shardings=sharding_lib.batch_sharding(self.mesh),
    )
