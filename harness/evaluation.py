"""Evaluation over a full split: model outputs, metrics, reports, TensorBoard.

The model runs sharded like training; its estimates come back to the host
and the metrics named in `config.eval.metrics` are computed on CPU, in
`config.eval.num_workers` spawned processes when any metric is expensive
(PESQ, STOI, DNSMOS, ...), overlapping the model's next batches. Each process
of a multi-host run scores its own rows; sums and counts are combined over
processes.

Metric functions are pluggable: `metric_fn(names, estimate, reference, noisy,
sample_rate) -> {name: (B,) array}`. The default, `library_metrics`, scores
each row with `harness.metrics.compute_metrics` (enhancement) or
`compute_separation_metrics` (separation); a metric that fails on a clip is
NaN there, left out of the mean and counted in a warning.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from harness import pools
from s4jax.training import sharding as sharding_lib
from s4jax.training import tasks as tasks_lib

MetricFn = Callable[..., dict[str, Any]]
# Metrics cheap enough to compute in the training process.
CHEAP_METRICS = frozenset(
  {'si_snr', 'si_snri', 'si_sdr', 'si_sdri', 'snr', 'sdr', 'sdri'}
)


@dataclasses.dataclass
class EvalResult:
  """Means over the evaluated examples plus a few examples for listening.

  Attributes:
    metrics: name -> mean over examples (`loss` included).
    std: name -> standard deviation over this process's examples.
    count: number of evaluated (unpadded) examples, all processes.
    examples: up to `num_audio` dicts with `input`, `estimate`, `reference`.
    per_example: name -> this process's per-example values.
  """

  metrics: dict[str, float]
  std: dict[str, float]
  count: int
  examples: list[dict[str, np.ndarray]]
  per_example: dict[str, np.ndarray]


def library_metrics(
  names: Sequence[str],
  estimate: np.ndarray,
  reference: np.ndarray,
  noisy: np.ndarray | None = None,
  sample_rate: int = 16000,
) -> dict[str, np.ndarray]:
  """Per-row `harness.metrics` scores; a failed metric is NaN.

  Args:
    names: metric names of the task.
    estimate: `(B, T)` (enhancement) or `(B, S, T)` (separation).
    reference: same shape as `estimate`.
    noisy: the model input `(B, T)` (noisy speech or mixture).
    sample_rate: Hz.

  Returns:
    `{name: (B,) float64}`.
  """
  from harness import metrics  # pylint: disable=g-import-not-at-top

  rows = []
  for i in range(estimate.shape[0]):
    mix = None if noisy is None else noisy[i]
    if estimate.ndim == 3:
      rows.append(
        metrics.compute_separation_metrics(
          estimate[i], reference[i], mix, names, on_error='nan'
        )
      )
    else:
      rows.append(
        metrics.compute_metrics(
          names, estimate[i], reference[i], mix, sample_rate, on_error='nan'
        )
      )
  return {n: np.array([r[n] for r in rows], np.float64) for n in names}


def _score(
  metric_fn: MetricFn,
  names: tuple[str, ...],
  estimate: np.ndarray,
  reference: np.ndarray,
  noisy: np.ndarray,
  sample_rate: int,
) -> dict[str, np.ndarray]:
  """Runs `metric_fn` and returns `(B,)` float64 arrays (worker-safe)."""
  rows = estimate.shape[0]
  out = metric_fn(names, estimate, reference, noisy, sample_rate=sample_rate)
  scored = {}
  for name in names:
    value = np.asarray(out[name], np.float64)
    if value.shape != (rows,):
      value = np.broadcast_to(value.reshape(-1)[:1], (rows,))
    scored[name] = value
  return scored


def needs_pool(names: Iterable[str]) -> bool:
  """Whether any metric is expensive enough for worker processes."""
  return any(n not in CHEAP_METRICS for n in names)


def make_pool(workers: int) -> concurrent.futures.Executor | None:
  """A spawn-based process pool (JAX is multithreaded: never fork)."""
  if workers < 1:
    return None
  from harness import metrics  # pylint: disable=g-import-not-at-top

  return pools.process_pool(workers, metrics.single_thread_worker)


class _Inline(concurrent.futures.Executor):
  """Runs submitted work at once, in this process."""

  def submit(self, fn, /, *args, **kwargs):
    future = concurrent.futures.Future()
    try:
      future.set_result(fn(*args, **kwargs))
    except Exception as e:  # pylint: disable=broad-except
      future.set_exception(e)
    return future


def _pad_rows(batch: dict[str, np.ndarray], multiple: int) -> dict:
  rows = len(batch['mask'])
  pad = -rows % multiple
  if not pad:
    return batch
  return {
    k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
    for k, v in batch.items()
  }


def evaluate(
  task: tasks_lib.Task,
  params: Any,
  batches: Iterable[dict[str, np.ndarray]],
  *,
  eval_step: Callable[..., Any],
  mesh: jax.sharding.Mesh,
  metric_names: Sequence[str],
  metric_fn: MetricFn | None = None,
  pool: concurrent.futures.Executor | None = None,
  num_audio: int = 0,
) -> EvalResult:
  """Evaluates `params` over one pass of `batches` (see module doc).

  Args:
    task: the task (batch keys).
    params: replicated parameters.
    batches: this process's rows, each with a boolean `'mask'`.
    eval_step: jitted `steps.make_eval_step(task)`.
    mesh: the mesh.
    metric_names: metrics to compute (`config.eval.metrics`).
    metric_fn: see module doc; default `library_metrics`.
    pool: executor for the metric work (None: in this process).
    num_audio: examples kept for listening (process 0's first rows).

  Returns:
    An `EvalResult`.
  """
  names = tuple(metric_names)
  metric_fn = metric_fn or library_metrics
  executor = pool or _Inline()
  multiple = sharding_lib.local_data_devices(mesh)
  futures, losses, examples = [], [], []
  for batch in batches:
    if 'mask' not in batch:
      batch = {**batch, 'mask': np.ones(len(batch[task.input_key]), bool)}
    batch = _pad_rows(batch, multiple)
    out = sharding_lib.to_local(
      eval_step(params, sharding_lib.to_global(batch, mesh)), mesh
    )
    mask = batch['mask'].astype(bool)
    if not mask.any():
      continue
    est, ref = out['estimate'][mask], batch[task.target_key][mask]
    noisy = batch[task.input_key][mask]
    losses.append(out['loss'][mask].astype(np.float64))
    # Whole clips are zero-padded to the longest; score the valid samples.
    full = est.shape[-1]
    lengths = np.minimum(
      batch.get('length', np.full(mask.shape, full))[mask], full
    ).astype(int)
    if names and np.all(lengths == full):
      futures.append(
        executor.submit(
          _score, metric_fn, names, est, ref, noisy, task.sample_rate
        )
      )
    elif names:
      for i, n in enumerate(lengths):
        futures.append(
          executor.submit(
            _score,
            metric_fn,
            names,
            est[i : i + 1, ..., :n],
            ref[i : i + 1, ..., :n],
            noisy[i : i + 1, :n],
            task.sample_rate,
          )
        )
    if jax.process_index() == 0 and len(examples) < num_audio:
      for i in range(min(num_audio - len(examples), len(est))):
        n = lengths[i]
        examples.append(
          {
            'input': noisy[i, :n],
            'estimate': est[i, ..., :n],
            'reference': ref[i, ..., :n],
          }
        )
  per_example = {'loss': _concat(losses)}
  scored = [f.result() for f in futures]
  for name in names:
    per_example[name] = _concat([s[name] for s in scored])
  means, count = _global_means(per_example)
  std = {
    k: float(np.nanstd(v)) if v.size else float('nan')
    for k, v in per_example.items()
  }
  return EvalResult(means, std, count, examples, per_example)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
  return np.concatenate(parts) if parts else np.zeros((0,), np.float64)


def _global_means(
  per_example: dict[str, np.ndarray],
) -> tuple[dict[str, float], int]:
  """Means of finite values over all processes; total example count."""
  names = sorted(per_example)
  sums = np.array(
    [
      np.nansum(np.where(np.isfinite(per_example[n]), per_example[n], 0))
      for n in names
    ]
    + [len(per_example['loss'])],
    np.float64,
  )
  counts = np.array(
    [np.isfinite(per_example[n]).sum() for n in names], np.float64
  )
  if jax.process_count() > 1:
    sums = np.asarray(multihost_utils.process_allgather(sums)).sum(0)
    counts = np.asarray(multihost_utils.process_allgather(counts)).sum(0)
  total = int(sums[-1])
  for n, c in zip(names, counts, strict=True):
    if c < total:
      logging.warning(
        'Metric %s was not finite for %d of %d examples.',
        n,
        total - int(c),
        total,
      )
  means = {
    n: float(s / c) if c else float('nan')
    for n, s, c in zip(names, sums[:-1], counts, strict=True)
  }
  return means, total


def write_report(
  directory: str, step: int, result: EvalResult, *, split: str
) -> tuple[str, str]:
  """Writes `<split>_step_<step>.json` and `.md` under `directory`.

  Returns:
    The JSON and Markdown paths.
  """
  folder = epath.Path(directory)
  folder.mkdir(parents=True, exist_ok=True)
  stem = str(folder / f'{split}_step_{step}')
  payload = {
    'step': int(step),
    'split': split,
    'num_examples': result.count,
    'metrics': result.metrics,
    'std': result.std,
    'per_example': {k: v.tolist() for k, v in result.per_example.items()},
  }
  epath.Path(stem + '.json').write_text(json.dumps(payload, indent=1))
  lines = [
    f'# Evaluation: {split}, step {step}',
    '',
    f'{result.count} examples.',
    '',
    '| metric | mean | std |',
    '|---|---:|---:|',
  ]
  for name, value in result.metrics.items():
    lines.append(f'| {name} | {value:.4f} | {result.std.get(name, 0):.4f} |')
  epath.Path(stem + '.md').write_text('\n'.join(lines) + '\n')
  return stem + '.json', stem + '.md'


def spectrogram(x: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
  """Log-magnitude (dB) spectrogram `(n_fft // 2 + 1, frames)`, Hann."""
  x = np.asarray(x, np.float64)
  if len(x) < n_fft:
    x = np.pad(x, (0, n_fft - len(x)))
  frames = 1 + (len(x) - n_fft) // hop
  idx = np.arange(n_fft)[None] + hop * np.arange(frames)[:, None]
  spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=-1)).T
  return 20 * np.log10(spec + 1e-8)


def spectrogram_image(signals: Sequence[np.ndarray]) -> np.ndarray:
  """Stacked spectrograms (top to bottom), `(H, W, 1)` in [0, 1]."""
  specs = [spectrogram(s)[::-1] for s in signals]
  top = max(s.max() for s in specs)
  rows = []
  for s in specs:
    rows.append(np.clip((s - (top - 80.0)) / 80.0, 0.0, 1.0))
    rows.append(np.ones((2, s.shape[1])))
  return np.concatenate(rows[:-1])[..., None].astype(np.float32)


def write_tensorboard(
  writer: Any,
  step: int,
  result: EvalResult,
  sample_rate: int,
  prefix: str = 'eval',
) -> None:
  """Scalars, audio (input / estimate / reference) and spectrograms."""
  writer.write_scalars(
    step, {f'{prefix}/{k}': v for k, v in result.metrics.items()}
  )
  if not result.examples:
    return
  audios, images = {}, {}
  for i, ex in enumerate(result.examples):
    flat = {
      'input': ex['input'],
      'reference': ex['reference'],
      'estimate': ex['estimate'],
    }
    signals = []
    for key, value in flat.items():
      value = np.asarray(value, np.float32)
      channels = value.reshape(-1, value.shape[-1])
      for c, ch in enumerate(channels):
        tag = key if len(channels) == 1 else f'{key}_{c + 1}'
        peak = max(float(np.abs(ch).max()), 1e-8)
        audios[f'{prefix}/audio_{i}/{tag}'] = (ch / peak)[None, :, None]
        signals.append(ch)
    images[f'{prefix}/spectrogram_{i}'] = spectrogram_image(signals)[None]
  writer.write_audios(step, audios, sample_rate=sample_rate)
  writer.write_images(step, images)


def best_step(report_dir: str, split: str, metric: str, mode: str) -> int:
  """Step of the best report in `report_dir` (for `--step=best`)."""
  best, found = None, None
  folder = epath.Path(report_dir)
  names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
  for name in names:
    if not (name.startswith(f'{split}_step_') and name.endswith('.json')):
      continue
    report = json.loads((folder / name).read_text())
    value = report['metrics'].get(metric)
    if value is None or not np.isfinite(value):
      continue
    if best is None or (value > best if mode == 'max' else value < best):
      best, found = value, int(report['step'])
  if found is None:
    raise FileNotFoundError(
      f'No {split} report with metric {metric!r} in {report_dir}.'
    )
  return found
