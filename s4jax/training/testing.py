"""A toy model module and an in-memory input pipeline for tests.

Use it as `config.model.name = 's4jax.training.testing'` (the registry imports
dotted names as modules) and pass this module as the input pipeline
(`launch/train.py --input_pipeline=s4jax.training.testing`). It follows the
same contracts as the real models and `data_pipelines.input_pipeline`:

* `from_config(model_config)` / `loss_fn(outputs, batch, loss_config)`;
* `create_train_iterator(config, *, start_step=0, process_index=None,
  process_count=None)`: infinite, deterministic in `(config.seed, step)`; a
  process gets its slice of the global batch, so the global batch does not
  depend on the process count;
* `create_eval_iterator(config, split='validation', ...)`: one finite pass
  of `config.eval.num_examples` (default 8) examples, the last batch padded
  and marked by a boolean `'mask'`.

Signals are sums of a few sinusoids with a decaying envelope; the noise is
white at 0 to 10 dB SNR. The model masks non-overlapping frames, so a few
hundred steps give a clear SI-SNR improvement.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  'EPS',
  'ToyMaskModel',
  'create_eval_iterator',
  'create_train_iterator',
  'from_config',
  'loss_fn',
  'make_batch',
  'si_snr',
]

EPS = 1e-8


class ToyMaskModel(nn.Module):
  """Frame-wise mask estimator with one SSM-named parameter.

  Attributes:
    frame: samples per frame (the input length must be a multiple).
    hidden: hidden width.
    num_sources: 0 for enhancement, S >= 1 for separation.
    dtype: compute dtype of the dense layers.
  """

  frame: int = 32
  hidden: int = 32
  num_sources: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, Any]:
    """x: real (B, T) -> {'estimate': (B, T)} or {'estimates': (B, S, T)}."""
    del train
    b, t = x.shape
    frames = x.reshape(b, t // self.frame, self.frame)
    feats = jnp.log1p(jnp.abs(frames) * 10.0)
    h = nn.Dense(self.hidden, dtype=self.dtype, name='encoder')(feats)
    log_dt = self.param('log_dt', nn.initializers.zeros, (self.hidden,))
    h = nn.relu(h * jnp.exp(log_dt))
    out = max(self.num_sources, 1)
    logits = nn.Dense(out * self.frame, dtype=self.dtype, name='decoder')(h)
    logits = logits.astype(jnp.float32).reshape(b, -1, out, self.frame)
    if not self.num_sources:
      est = frames * nn.sigmoid(logits[:, :, 0] + 2.0)
      return {'estimate': est.reshape(b, t)}
    masks = nn.softmax(logits, axis=2)
    est = frames[:, :, None] * masks
    return {'estimates': est.transpose(0, 2, 1, 3).reshape(b, out, t)}


def from_config(model_config: Any) -> ToyMaskModel:
  """Builds the toy model (`frame`, `hidden`, `num_sources`, `dtype`)."""
  return ToyMaskModel(
    frame=model_config.get('frame', 32),
    hidden=model_config.get('hidden', 32),
    num_sources=model_config.get('num_sources', 0),
    dtype=jnp.dtype(model_config.get('dtype', 'float32')),
  )


def si_snr(estimate: jax.Array, reference: jax.Array) -> jax.Array:
  """Scale-invariant SNR in dB over the last axis (zero-mean signals)."""
  estimate = estimate - estimate.mean(-1, keepdims=True)
  reference = reference - reference.mean(-1, keepdims=True)
  scale = (estimate * reference).sum(-1, keepdims=True) / (
    (reference**2).sum(-1, keepdims=True) + EPS
  )
  target = scale * reference
  noise = estimate - target
  return 10 * jnp.log10(
    ((target**2).sum(-1) + EPS) / ((noise**2).sum(-1) + EPS)
  )


def loss_fn(outputs: dict, batch: dict, loss_config: Any):
  """Negative SI-SNR (permutation-invariant for separation)."""
  del loss_config
  if 'estimates' in outputs:
    est, ref = outputs['estimates'], batch['sources']
    perms = list(itertools.permutations(range(est.shape[1])))
    scores = jnp.stack(
      [si_snr(est[:, list(p)], ref).mean(-1) for p in perms], axis=-1
    )
    best = scores.max(-1)
  else:
    best = si_snr(outputs['estimate'], batch['clean'])
  return -best.mean(), {'si_snr': best.mean()}


def _clean(rng: np.random.Generator, rows: int, length: int, sr: int):
  t = np.arange(length) / sr
  out = np.zeros((rows, length))
  for i in range(rows):
    for _ in range(3):
      f = rng.uniform(100, 0.4 * sr)
      env = np.exp(-t * rng.uniform(0.5, 6.0))
      out[i] += (
        rng.uniform(0.2, 1.0)
        * env
        * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
      )
  return out


def make_batch(
  config: Any, rows: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
  """One global batch of `rows` examples for `config.task`."""
  sr = int(config.data.sample_rate)
  length = int(round(config.data.segment_seconds * sr))
  if config.task == 'separation':
    n = int(config.data.num_sources)
    sources = _clean(rng, rows * n, length, sr).reshape(rows, n, length)
    mixture = sources.sum(1)
    return {
      'mixture': mixture.astype(np.float32),
      'sources': sources.astype(np.float32),
    }
  clean = _clean(rng, rows, length, sr)
  snr_db = rng.uniform(0, 10, (rows, 1))
  noise = rng.standard_normal((rows, length))
  power = (clean**2).mean(-1, keepdims=True) + EPS
  noise *= np.sqrt(power / 10 ** (snr_db / 10))
  return {
    'noisy': (clean + noise).astype(np.float32),
    'clean': clean.astype(np.float32),
  }


def _process_slice(
  rows: int, process_index: int | None, process_count: int | None
) -> slice:
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  per = rows // count
  return slice(index * per, (index + 1) * per)


def create_train_iterator(
  config: Any,
  *,
  start_step: int = 0,
  process_index: int | None = None,
  process_count: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Infinite deterministic batches; step `k` depends only on `(seed, k)`."""
  rows = int(config.train.batch_size)
  part = _process_slice(rows, process_index, process_count)
  for step in itertools.count(start_step):
    rng = np.random.default_rng([int(config.seed), step])
    batch = make_batch(config, rows, rng)
    yield {k: v[part] for k, v in batch.items()}


def create_eval_iterator(
  config: Any,
  split: str = 'validation',
  *,
  process_index: int | None = None,
  process_count: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """One pass over a fixed evaluation set, last batch padded with `mask`."""
  total = int(config.eval.num_examples or 8)
  rows = int(config.eval.batch_size)
  data = make_batch(config, total, np.random.default_rng([1234, len(split)]))
  part = _process_slice(rows, process_index, process_count)
  for start in range(0, total, rows):
    chunk = {k: v[start : start + rows] for k, v in data.items()}
    valid = len(next(iter(chunk.values())))
    pad = rows - valid
    chunk = {
      k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
      for k, v in chunk.items()
    }
    chunk['mask'] = np.arange(rows) < valid
    yield {k: v[part] for k, v in chunk.items()}
