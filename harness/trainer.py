"""The training loop: `train_and_evaluate(config, workdir, input_pipeline)`.

Runs unchanged on one CPU, a GPU node or a TPU pod:

* one `Mesh` over all devices (`sharding.create_mesh`), replicated state,
  batches split along `'data'` and assembled from per-process numpy rows
  with `jax.make_array_from_process_local_data`;
* one jitted step with `NamedSharding` in/out shardings and a donated state
  (`s4jax.training.program`, which `launch/compile.py` compiles too);
* resumption from the latest checkpoint in `<workdir>/checkpoints` (data
  restart at the restored step, per-step RNG `fold_in(seed key, step)`, so
  a resumed run repeats the losses of an uninterrupted one);
* SIGTERM (TPU/GPU preemption) or Ctrl-C saves a checkpoint after the step
  in flight and returns; a second signal, or one before any unsaved step,
  exits at once; multi-host runs also honour JAX's preemption sync point;
* console progress from the first step (loss, speed, ETA, and a start-up
  estimate of the whole run; `progress`), clu writers (TensorBoard),
  `ReportProgress`, an optional profile, periodic evaluation with
  JSON/Markdown reports, audio and spectrograms, and the best/last-N
  checkpoint retention.

This module does the I/O of the loop (clu writers need TensorFlow); the
rest of `s4jax.training` is pure JAX.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import parameter_overview
from etils import epath
from jax.experimental import multihost_utils

from harness import checkpoint as ckpt_lib
from harness import errors, evaluation
from harness import progress as progress_lib
from s4jax.models import summary as summary_lib
from s4jax.training import program as program_lib
from s4jax.training import sharding as sharding_lib
from s4jax.training import state as state_lib

REPORT_SUBDIR = 'eval'


class InputPipeline(Protocol):
  """What the loop needs from `data_pipelines.input_pipeline`."""

  def create_train_iterator(
    self, config: Any, *, start_step: int = 0, **kwargs
  ) -> Iterator[dict[str, np.ndarray]]: ...

  def create_eval_iterator(
    self, config: Any, split: str = 'validation', **kwargs
  ) -> Iterator[dict[str, np.ndarray]]: ...


NonFiniteError = errors.NonFiniteError
USER_ERRORS = errors.USER_ERRORS


@dataclasses.dataclass
class TrainResult:
  """What `train_and_evaluate` returns.

  Attributes:
    state: the final train state.
    history: logged training scalars, one dict (with `step`) per log.
    evals: evaluation means, one dict (with `step`) per evaluation.
    preempted: True when SIGTERM stopped the run early.
  """

  state: state_lib.TrainState
  history: list[dict[str, float]]
  evals: list[dict[str, float]]
  preempted: bool = False


class _PreemptionFlag:
  """Turns SIGTERM / SIGINT into a checkpoint and a prompt exit.

  While active (main thread only): a first signal with no completed step
  since the last checkpoint (start-up, compilation, the first step) exits
  at once, as there is nothing to save; otherwise the loop stops after the
  step in flight and saves a checkpoint. A second signal exits at once
  without saving.
  """

  _SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.unsaved_steps = 0
    self.seconds_per_step = float('nan')
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self._SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.requested or not self.unsaved_steps:
      why = 'again' if self.requested else 'before any unsaved step'
      logging.warning('%s %s: exiting now without saving.', name, why)
      logging.flush()
      os._exit(128 + signum)  # Skip waiting for computations in flight.
    wait = ''
    if np.isfinite(self.seconds_per_step):
      wait = f' (about {progress_lib.format_duration(self.seconds_per_step)})'
    logging.warning(
      '%s: stopping after the step in flight%s and saving a checkpoint; send '
      'it again to exit now without saving.',
      name,
      wait,
    )
    self.requested = True

  def __exit__(self, *exc):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)

  def should_stop(self, step: int) -> bool:
    if jax.process_count() > 1:
      # All processes agree on the step (JAX's preemption service).
      synced = multihost_utils.reached_preemption_sync_point(step)
      return synced or self.requested
    return self.requested


def _meta(
  config: ml_collections.ConfigDict, evaluated: bool = True
) -> dict[str, Any]:
  """Checkpoint metadata; `evaluated=False` marks an evaluation still due."""
  return {
    'config': json.loads(config.to_json_best_effort()),
    'evaluated': evaluated,
  }


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  if jax.process_index() != 0:
    return
  path = epath.Path(workdir) / 'config.json'
  if path.exists():
    old = ckpt_lib.saved_config(json.loads(path.read_text())).to_dict()
    new = _meta(config)['config']
    changed = sorted(_diff_keys(old, new))
    if changed:
      logging.warning('Config differs from the run in %s: %s', workdir, changed)
  path.write_text(config.to_json_best_effort(indent=1))


def _diff_keys(a: Any, b: Any, prefix: str = '') -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _diff_keys(a.get(k), b.get(k), f'{prefix}{k}.')
    return out
  return [] if a == b else [prefix.rstrip('.')]


def _check_config(config: ml_collections.ConfigDict) -> None:
  train = config.train
  for key in (
    'num_steps',
    'batch_size',
    'log_every',
    'eval_every',
    'checkpoint_every',
  ):
    if int(train[key]) < 0 or (key == 'batch_size' and train[key] < 1):
      raise ValueError(f'config.train.{key}={train[key]} must be positive.')
  if config.eval.best_mode not in ('max', 'min'):
    raise ValueError(
      f"config.eval.best_mode={config.eval.best_mode!r}; use 'max' or 'min'."
    )


def _due(step: int, every: int, last: int) -> bool:
  return step == last or (every > 0 and step % every == 0)


class _Run:
  """State shared by the steps of one `train_and_evaluate` call."""

  def __init__(
    self,
    config,
    workdir,
    input_pipeline,
    metric_fn,
    checkpointer: ckpt_lib.Checkpointer,
  ):
    self.config = config
    self.workdir = workdir
    self.pipeline = input_pipeline
    self.metric_fn = metric_fn
    self.checkpointer = checkpointer
    self.program = program_lib.Program.build(config, sharding_lib.create_mesh())
    self.mesh = self.program.mesh
    self.task = self.program.task
    self.tx = self.program.tx
    self.eval_step = self.program.eval_step()
    self.pool = None

  def evaluate(self, params, split='validation'):
    names = tuple(self.config.eval.metrics)
    workers = int(self.config.eval.num_workers)
    if self.pool is None and workers > 0 and evaluation.needs_pool(names):
      self.pool = evaluation.make_pool(workers)
    return evaluation.evaluate(
      self.task,
      params,
      self.pipeline.create_eval_iterator(self.config, split=split),
      eval_step=self.eval_step,
      mesh=self.mesh,
      metric_names=names,
      metric_fn=self.metric_fn,
      pool=self.pool,
      num_audio=int(self.config.eval.num_audio_examples),
    )

  def close(self):
    if self.pool is not None:
      self.pool.shutdown()
    self.checkpointer.close()


def _plateau(run: _Run, state, result: evaluation.EvalResult):
  """Updates the plateau bookkeeping of `state` from an evaluation."""
  cfg, opt = run.config.eval, run.config.optimizer
  name = cfg.best_metric or 'loss'
  mode = cfg.best_mode if cfg.best_metric else 'min'
  value = result.metrics.get(name, float('nan'))
  best, bad, scale = state_lib.plateau_update(
    float(state.plateau_best),
    int(state.plateau_bad_evals),
    float(state.lr_scale),
    value,
    mode=mode,
    factor=opt.plateau_factor if opt.schedule == 'plateau' else 1.0,
    patience=max(int(opt.plateau_patience), 1),
  )
  if scale != float(state.lr_scale):
    logging.info(
      'Plateau: learning-rate scale %g -> %g.', float(state.lr_scale), scale
    )
  new = sharding_lib.put_replicated(
    {
      'best': np.float32(best),
      'bad': np.int32(bad),
      'scale': np.float32(scale),
    },
    run.mesh,
  )
  return state.replace(
    plateau_best=new['best'],
    plateau_bad_evals=new['bad'],
    lr_scale=new['scale'],
  ), value


def _check_skips(consecutive: Any, step: int, limit: int) -> None:
  """Waits for a step's skip counter; raises past the limit (0: no limit).

  The wait keeps the host at most one step ahead of the devices, with or
  without a limit: XLA's CPU client deadlocks on collectives when many
  steps are queued ahead of its worker threads.
  """
  if consecutive is None:
    return
  value = int(consecutive)
  if 0 < limit <= value:
    raise NonFiniteError(
      f'Training stopped at step {step}: {value} consecutive steps had a '
      f'non-finite loss or gradient (limit config.train.'
      f'max_consecutive_skips={limit}). Parameters were left at their last '
      'finite values. Lower the learning rate, enable '
      'optimizer.clip_norm, or check the data for NaN/Inf.'
    )


def train_and_evaluate(
  config: ml_collections.ConfigDict,
  workdir: str,
  input_pipeline: InputPipeline,
  *,
  metric_fn: evaluation.MetricFn | None = None,
  initial_params: Any = None,
) -> TrainResult:
  """Trains (resuming if possible), evaluates and checkpoints.

  Args:
    config: a recipe from `configs/` (see `configs/base.py`).
    workdir: where checkpoints, TensorBoard events and reports go.
    input_pipeline: provides `create_train_iterator`/`create_eval_iterator`.
    metric_fn: evaluation metric function (default: `harness.metrics`).
    initial_params: fine-tuning: a new run (no checkpoint in `workdir`)
      starts from these parameters instead of a fresh initialisation, with
      a fresh optimiser; they must have the model's exact structure and
      shapes. A run that resumes from a checkpoint ignores them.

  Returns:
    A `TrainResult`.

  Raises:
    NonFiniteError: after `config.train.max_consecutive_skips` skipped steps.
  """
  _check_config(config)
  workdir = ckpt_lib.absolute(workdir)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  checkpointer = ckpt_lib.Checkpointer(
    ckpt_lib.checkpoint_dir(workdir),
    keep=config.train.keep_checkpoints,
    best_metric=config.eval.best_metric or None,
    best_mode=config.eval.best_mode,
  )
  run = _Run(config, workdir, input_pipeline, metric_fn, checkpointer)
  sharding_lib.check_batch_size(
    config.train.batch_size, run.mesh, 'config.train.batch_size'
  )
  try:
    return _train(run, initial_params)
  finally:
    run.close()


def with_initial_params(state, params: Any):
  """`state` with `params` in place of its parameters (same shardings).

  Raises:
    ValueError: naming the parameters whose path, shape or dtype differ.
  """
  diff = summary_lib.param_differences(
    params, state.params, 'the initial parameters'
  )
  if diff:
    raise ValueError(
      "The initial parameters do not fit this recipe's model: "
      f'{"; ".join(diff)}. Fine-tune with the recipe the parameters were '
      'trained with.'
    )
  # From host NumPy arrays, so that every process of a multi-host job
  # places its own (identical) copy into the global sharding.
  placed = jax.tree.map(
    lambda p, s: jax.device_put(np.asarray(p, s.dtype), s.sharding),
    params,
    state.params,
  )
  return state.replace(params=placed)


def _train(run: _Run, initial_params: Any = None) -> TrainResult:
  config, workdir = run.config, run.workdir
  state = ckpt_lib.restore_or_init(run.program, run.checkpointer)
  start = int(state.step)
  if initial_params is not None and start == 0:
    state = with_initial_params(state, initial_params)
    logging.info('Fine-tuning: starting from the given parameters.')
  num_steps = int(config.train.num_steps)
  _write_config(config, workdir)
  # clu's writers import TensorFlow (TensorBoard event files); imported here
  # so that `import s4jax.training` works without TensorFlow.
  from clu import metric_writers  # pylint: disable=g-import-not-at-top

  writer = metric_writers.create_default_writer(
    workdir, just_logging=jax.process_index() > 0
  )
  result = TrainResult(state, [], [])
  if start == 0:
    parameter_overview.log_parameter_overview(state.params)
    writer.write_hparams(_flat_hparams(config))
  if start >= num_steps:
    logging.info('Nothing to do: step %d >= num_steps %d.', start, num_steps)
    return result
  hooks = _hooks(config, workdir, writer, num_steps, start)
  if start and not run.checkpointer.restore_meta(start).get('evaluated', 1):
    # Preempted before the evaluation of this step: run it now, so the
    # plateau schedule sees the same evaluations as an uninterrupted run.
    state, _ = _evaluate(run, state, start, writer, result)
  train_iter = run.pipeline.create_train_iterator(config, start_step=start)
  train_step, acc, pending = None, None, None
  limit = int(config.train.max_consecutive_skips)
  progress = progress_lib.Progress(start, num_steps, config.train.log_every)
  last_saved = start
  progress.begin(time.monotonic())
  # Closing the iterator stops its threads or worker processes, also when
  # the loop ends on an error.
  closing = getattr(train_iter, 'close', None)
  with (
    metric_writers.ensure_flushes(writer),
    _PreemptionFlag() as flag,
    contextlib.closing(train_iter) if closing else contextlib.nullcontext(),
  ):
    for step in range(start + 1, num_steps + 1):
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        host = next(train_iter)
        batch = {k: host[k] for k in run.task.batch_keys}
        batch = sharding_lib.to_global(batch, run.mesh)
        if train_step is None:
          train_step = run.program.train_step(state, batch)
        state, metrics, consecutive = train_step(state, batch)
      _check_skips(pending, step - 1, limit)
      flag.unsaved_steps = step - 1 - last_saved
      pending = consecutive
      acc = metrics if acc is None else acc.merge(metrics)
      for hook in hooks:
        hook(step)
      if progress.due(step, time.monotonic()):
        loss = float(acc.compute()['loss'])  # Waits for this step.
        flag.unsaved_steps = step - last_saved
        _report_progress(progress, flag, step, loss)
      if _due(step, config.train.log_every, num_steps):
        _check_skips(pending, step, limit)
        scalars = {k: float(v) for k, v in acc.compute().items()}
        writer.write_scalars(
          step, {f'train/{k}': v for k, v in scalars.items()}
        )
        result.history.append({'step': step, **scalars})
        acc = None
      preempted = flag.should_stop(step)
      eval_due = _due(step, config.train.eval_every, num_steps)
      eval_metrics = None
      if eval_due and not preempted:
        with hooks[0].timed('eval'):
          state, eval_metrics = _evaluate(run, state, step, writer, result)
      if preempted or _due(step, config.train.checkpoint_every, num_steps):
        run.checkpointer.save(
          step,
          state,
          meta=_meta(config, not (eval_due and preempted)),
          metrics=eval_metrics,
          force=preempted,
        )
        last_saved, flag.unsaved_steps = step, 0
      if preempted:
        _check_skips(pending, step, limit)
        logging.warning('Preempted at step %d; checkpoint saved.', step)
        result.preempted = True
        break
    _check_skips(pending, step, limit)
  logging.info(
    'Trained to step %d in %s; writing the last checkpoint and logs.',
    step,
    progress_lib.format_duration(time.monotonic() - progress.started_at),
  )
  result.state = state
  return result


def _report_progress(progress, flag, step: int, loss: float) -> None:
  """Logs the progress line of `step` and, once, the run's cost estimate."""
  now = time.monotonic()
  progress.first_step_done(now)
  flag.seconds_per_step = progress.seconds_per_step(step, now)
  logging.info('%s', progress.line(step, loss, now))
  estimate = progress.estimate(
    step, now, jax.default_backend(), jax.device_count()
  )
  if estimate is not None:
    message, too_long = estimate
    (logging.warning if too_long else logging.info)('%s', message)


def _evaluate(run: _Run, state, step, writer, result: TrainResult):
  config = run.config
  res = run.evaluate(state.params)
  state, _ = _plateau(run, state, res)
  if jax.process_index() == 0:
    evaluation.write_report(
      str(epath.Path(run.workdir) / REPORT_SUBDIR),
      step,
      res,
      split='validation',
    )
  evaluation.write_tensorboard(writer, step, res, run.task.sample_rate)
  writer.write_scalars(step, {'eval/lr_scale': float(state.lr_scale)})
  result.evals.append({'step': step, **res.metrics})
  logging.info('Evaluation at step %d: %s', step, res.metrics)
  if not config.eval.best_metric:
    return state, None
  value = res.metrics.get(config.eval.best_metric)
  if value is None or not np.isfinite(value):
    return state, None
  return state, {config.eval.best_metric: value}


def _hooks(config, workdir, writer, num_steps, start):
  from clu import periodic_actions  # pylint: disable=g-import-not-at-top

  hooks = [
    periodic_actions.ReportProgress(
      num_train_steps=num_steps,
      writer=writer,
      every_steps=max(int(config.train.log_every), 1),
    )
  ]
  if config.train.profile_steps and jax.process_index() == 0:
    hooks.append(
      periodic_actions.Profile(
        logdir=workdir,
        num_profile_steps=int(config.train.profile_steps),
        profile_duration_ms=None,  # Stop after the steps, however fast.
        first_profile=start + 10,  # After compilation, also when resuming.
      )
    )
  return hooks


def _flat_hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
  out = {}

  def walk(node, prefix):
    for k, v in node.items():
      if isinstance(v, dict):
        walk(v, f'{prefix}{k}.')
      else:
        out[f'{prefix}{k}'] = (
          v if isinstance(v, (int, float, str, bool)) else str(v)
        )

  walk(json.loads(config.to_json_best_effort()), '')
  return out


def evaluate_checkpoint(
  config: ml_collections.ConfigDict,
  workdir: str,
  input_pipeline: InputPipeline,
  *,
  step: int | str | None = None,
  split: str = 'validation',
  metric_fn: evaluation.MetricFn | None = None,
) -> tuple[int, evaluation.EvalResult, tuple[str, str] | None]:
  """Evaluates a saved checkpoint over a whole split; writes its reports.

  Returns:
    `(step, result, (json path, markdown path))` (paths None off process 0).
  """
  workdir = ckpt_lib.absolute(workdir)
  checkpointer = ckpt_lib.Checkpointer(
    ckpt_lib.checkpoint_dir(workdir), read_only=True
  )
  run = None
  try:
    step = ckpt_lib.resolve_step(
      checkpointer, workdir, config, step, REPORT_SUBDIR
    )
    run = _Run(config, workdir, input_pipeline, metric_fn, checkpointer)
    state = ckpt_lib.restore_or_init(run.program, checkpointer, step=step)
    res = run.evaluate(state.params, split=split)
    paths = None
    if jax.process_index() == 0:
      paths = evaluation.write_report(
        str(epath.Path(workdir) / REPORT_SUBDIR), step, res, split=split
      )
    return step, res, paths
  finally:
    if run is not None:
      run.close()
    else:
      checkpointer.close()
