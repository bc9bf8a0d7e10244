"""The pure parts of training s4jax models (the loop is `harness.trainer`).

Pure JAX: no file I/O, no TensorFlow, no metric writers.

* `state`: the `TrainState` pytree (params, optimiser state, step, RNG, skip
  counters, plateau bookkeeping).
* `optim`: Adam/AdamW/RAdam, schedules, clipping, the SSM parameter group.
* `sharding`: the `('data', 'model')` mesh and global-batch assembly.
* `tasks`: batch layout, model call, loss, precision and SEOFP hooks.
* `steps`: the jitted train step (non-finite guard) and evaluation step.
* `testing`: a toy model and in-memory pipeline for tests.
"""

__all__ = [
  'optim',
  'program',
  'sharding',
  'state',
  'steps',
  'tasks',
  'testing',
]
