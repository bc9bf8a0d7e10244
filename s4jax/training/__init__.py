"""Training and evaluation of s4jax models (see `launch/train.py`).

Pure JAX (no TensorFlow, no file I/O):

* `state`: the `TrainState` pytree (params, optimiser state, step, RNG, skip
  counters, plateau bookkeeping).
* `optim`: Adam/AdamW/RAdam, schedules, clipping, the SSM parameter group.
* `sharding`: the `('data', 'model')` mesh and global-batch assembly.
* `tasks`: batch layout, model call, loss, precision and SEOFP hooks.
* `steps`: the jitted train step (non-finite guard) and evaluation step.
* `summary`: parameter counts and MACs traced from shapes.
* `testing`: a toy model and in-memory pipeline for tests.

I/O helpers of the loop:

* `checkpoint`: Orbax `CheckpointManager` save/restore with clear errors.
* `evaluation`: whole-split evaluation, metric workers, JSON/Markdown
  reports, TensorBoard audio and spectrograms.
* `trainer`: `train_and_evaluate` and `evaluate_checkpoint` (clu writers).
* `inference`: load a run's model for the command-line tools.
* `runtime`, `errors`: multi-host start-up, flag parsing, user errors.
"""
