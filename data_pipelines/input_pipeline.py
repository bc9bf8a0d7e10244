"""Training and evaluation batches from the built-in or a real corpus.

Every source is random-access (memory-mapped `.npy` for the synthetic set,
mixtures made on the fly from the memory-mapped offline corpus, ArrayRecord
data sources for the tensorflow-datasets builders), so the order
is index-based and fully determined by the seed:

* Epoch `e` visits the examples in `permutation(seed, e)`; the stream of
  examples is the concatenation of epochs. Global step `k` takes stream
  positions `[k B, (k + 1) B)`, and process `p` of `P` takes its contiguous
  `B / P` of them. Resuming at step `k` is therefore O(1): no batch is
  replayed.
* A random crop's offset is a function of `(seed, epoch, example)`.

Batches are made ahead of the trainer by `config.data.threads` threads of
this process (NumPy crops and copies release the GIL) or, with
`config.data.workers > 0`, by
that many worker processes (for the offline corpus, whose on-the-fly mixing
is Python-bound); each batch is a pure function of the step, so both give
the same bytes. With `config.data.deterministic` the batches come out in
step order (identical bytes on every run), otherwise as soon as they are
ready. `launch/compile.py` reports the examples per second a recipe's chips
consume; `benchmarks/feed_bench.py` measures what the pipeline makes.

Batches are dicts of NumPy arrays, per process:
  enhancement: 'noisy', 'clean', 'noise' (b, T) float32;
  separation:  'mixture' (b, T), 'sources' (b, S, T) float32 (+ 'noise' if
               the corpus has it);
  evaluation adds 'mask' (b,) bool (False on padding rows of the last batch)
  and 'length' (b,) int32 (valid samples before zero padding).
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import math
import os
import threading
from collections.abc import Iterable, Iterator

import numpy as np
from absl import logging

from data_pipelines import audio_io, offline, synthetic
from harness import runtime

_PERM_TAG, _CROP_TAG = 101, 102
# N-DNS clips are cropped or padded to exactly 30 s (Intel's DNSAudio loader).
_FIXED_SECONDS = {'ndns': 30.0}


class Source:
  """A split as random-access float32 examples at `sample_rate`.

  Attributes:
    keys: the arrays of each example, e.g. ('noisy', 'clean', 'noise').
    sample_rate: stored rate in Hz.
    whole_length: samples that whole clips are padded (or cropped) to.
    num_sources: separation: S of 'sources'.
  """

  keys: tuple[str, ...]
  sample_rate: int
  whole_length: int
  num_sources: int = 0

  def __len__(self) -> int:
    raise NotImplementedError

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    """Real (T,) arrays ('sources': (S, T)) of example `index`."""
    raise NotImplementedError


class SyntheticSource(Source):
  """The built-in generated dataset."""

  def __init__(self, split: synthetic.SyntheticSplit):
    self.split = split
    self.keys = tuple(split.arrays)
    self.sample_rate = split.spec.sample_rate
    self.whole_length = split.spec.clip_samples
    self.num_sources = split.spec.num_sources

  def __len__(self):
    return len(self.split)

  def __getitem__(self, index):
    return {k: np.asarray(a[index]) for k, a in self.split.arrays.items()}


class OfflineSource(Source):
  """The offline Debian corpus: mixtures made on the fly (`offline`)."""

  def __init__(self, split: offline.CorpusSplit, spec: offline.MixSpec):
    self.split, self.spec = split, spec
    if spec.task == 'enhancement':
      self.keys = ('noisy', 'clean', 'noise')
    else:
      self.keys = ('mixture', 'sources')
      if spec.separation_noise:
        self.keys += ('noise',)
    self.sample_rate = offline.SAMPLE_RATE
    self.whole_length = spec.clip_samples
    self.num_sources = spec.num_sources

  def __len__(self):
    return self.spec.num_examples

  def __getitem__(self, index):
    ex = offline.make_example(self.split, self.spec, int(index))
    return {k: ex[k] for k in self.keys}


class TfdsSource(Source):
  """A prepared tensorflow-datasets corpus, mapped to the task's keys."""

  def __init__(self, builder, split: str, task: str, corpus: str):
    if split not in builder.info.splits:
      raise ValueError(
        f'{corpus} has no split {split!r} in {builder.data_dir}; it has '
        f'{sorted(builder.info.splits)} (missing folders in manual_dir?).'
      )
    self.data = builder.as_data_source(split=split)
    self._lock = threading.Lock()
    names = set(builder.info.features)
    self.sample_rate = int(builder.builder_config.sample_rate)
    self.mapping = _task_mapping(names, task, corpus)
    self.keys = tuple(self.mapping)
    srcs = self.mapping.get('sources', ())
    self.num_sources = len(srcs)
    fixed = _FIXED_SECONDS.get(corpus)
    if fixed:
      self.whole_length = int(round(fixed * self.sample_rate))
    else:
      lengths = builder.info.metadata.get('max_length', {})
      self.whole_length = int(lengths.get(split) or self._scan_lengths())

  def _scan_lengths(self) -> int:
    logging.warning('No stored clip lengths; scanning %d examples.', len(self))
    first = self.mapping[self.keys[0]]
    return max(len(self.data[i][first]) for i in range(len(self)))

  def __len__(self):
    return len(self.data)

  def __getitem__(self, index):
    with self._lock:
      ex = self.data[int(index)]
    out = {}
    for key, names in self.mapping.items():
      if isinstance(names, tuple):
        out[key] = np.stack([audio_io.from_int16(ex[n]) for n in names])
      else:
        out[key] = audio_io.from_int16(ex[names])
    return out


def _task_mapping(names: set[str], task: str, corpus: str) -> dict:
  """Batch key -> stored feature (a tuple of features for 'sources')."""
  if task == 'enhancement':
    if {'noisy', 'clean'} <= names:
      out = {'noisy': 'noisy', 'clean': 'clean'}
    elif {'mixture', 's1'} <= names and 's2' not in names:
      out = {'noisy': 'mixture', 'clean': 's1'}
    else:
      raise ValueError(
        f'{corpus} with these settings has no noisy/clean pairs. For '
        "enhancement on LibriMix or WHAM! use config.data.mixture='single'."
      )
    if 'noise' in names:
      out['noise'] = 'noise'
    return out
  if task == 'separation':
    sources = tuple(sorted(n for n in names if n[0] == 's' and n[1:].isdigit()))
    if 'mixture' not in names or not sources:
      raise ValueError(
        f'{corpus} has no separated sources; use task=enhancement, or '
        'librimix/wham for separation.'
      )
    out = {'mixture': 'mixture', 'sources': sources}
    if 'noise' in names:
      out['noise'] = 'noise'
    return out
  raise ValueError(f"task must be 'enhancement' or 'separation', not {task!r}.")


# ----------------------------------------------------------------------------
# Making sources from a config.


def _synthetic_spec(config, split: str) -> synthetic.SyntheticSpec:
  data = config.data
  seconds = (
    data.synthetic_train_seconds
    if split == 'train'
    else data.synthetic_eval_seconds
  )
  return synthetic.SyntheticSpec(
    task=config.task,
    split=split,
    total_seconds=float(seconds),
    clip_seconds=float(data.get('synthetic_clip_seconds', 6.0)),
    sample_rate=int(data.sample_rate),
    seed=int(config.seed),
    num_sources=int(data.num_sources),
    separation_noise=bool(data.get('separation_noise', False)),
    snr_range=tuple(data.get('snr_range', (-5.0, 20.0))),
    level_range=tuple(data.get('level_range', (-35.0, -15.0))),
  )


def offline_dir(config) -> str:
  """The offline corpus folder: `data.manual_dir`, else the default cache."""
  data = config.data
  if data.manual_dir:
    return os.path.abspath(os.path.expanduser(data.manual_dir))
  if data.data_dir:
    return os.path.join(os.path.abspath(data.data_dir), 'offline')
  return offline.default_dir()


def _offline_spec(config, split: str) -> offline.MixSpec:
  """How the offline corpus' examples of `split` are mixed.

  Training: `offline_train_examples` clips of `segment_seconds` (or
  `offline_clip_seconds` for whole clips), augmented, seeded by
  `config.seed`. Evaluation: `offline_eval_examples` clips of
  `offline_clip_seconds` of real speech only, seed 0 (the same mixtures
  whatever the run's seed).
  """
  data = config.data
  train = split == data.train_split
  seconds = float(data.offline_clip_seconds)
  if train and data.segment_seconds and data.segment_seconds > 0:
    seconds = float(data.segment_seconds)
  return offline.MixSpec(
    task=config.task,
    split=split,
    num_examples=int(
      data.offline_train_examples if train else data.offline_eval_examples
    ),
    clip_seconds=seconds,
    seed=int(config.seed) if train else 0,
    augment=train,
    real_only=not train,
    num_sources=int(data.num_sources) if config.task == 'separation' else 2,
    separation_noise=bool(data.separation_noise),
    snr_range=tuple(float(v) for v in data.snr_range),
    level_range=tuple(float(v) for v in data.level_range),
    reverb_prob=float(data.offline_reverb_prob),
    early_ms=float(data.offline_early_ms),
    tts_fraction=float(data.offline_tts_fraction),
    synthetic_noise_prob=float(data.offline_synthetic_noise_prob),
    speed_perturb=float(data.offline_speed_perturb),
  )


def _default_mixture(config) -> str:
  mixture = config.data.get('mixture', '')
  if mixture:
    return mixture
  if config.task == 'enhancement':
    return 'single'
  return 'both' if config.data.name == 'wham' else 'clean'


@functools.lru_cache(maxsize=16)
def _cached_source(key: tuple) -> Source:
  kind = key[0]
  if kind == 'synthetic':
    _, spec, root, workers = key
    return SyntheticSource(
      synthetic.load_or_generate(spec, root, num_workers=workers)
    )
  if kind == 'offline':
    _, folder, spec = key
    return OfflineSource(offline.load_split(folder, spec.split), spec)
  from data_pipelines import builders  # TensorFlow only when needed.

  _, name, cfg, manual_dir, data_dir, split, task = key
  builder = builders.prepare(name, cfg, manual_dir, data_dir)
  return TfdsSource(builder, split, task, name)


def make_source(config, split: str) -> Source:
  """The `Source` for `split` ('train', 'validation', 'test', ...).

  The synthetic set is generated (once, then cached); the offline corpus
  must have been built with `launch/build_corpus.py` (its examples are
  mixed on the fly); a real corpus is prepared with tensorflow-datasets on
  first use.
  """
  data = config.data
  if data.name == 'synthetic':
    spec = _synthetic_spec(config, split)
    workers = int(data.get('generation_workers', 1))
    return _cached_source(('synthetic', spec, data.data_dir, workers))
  if data.name == 'offline':
    spec = _offline_spec(config, split)
    return _cached_source(('offline', offline_dir(config), spec))
  runtime.hide_accelerators_from_tensorflow()  # tfds reads with TensorFlow.
  from data_pipelines import builders  # pylint: disable=g-import-not-at-top

  if data.name not in builders.BUILDERS:
    raise ValueError(
      f'Unknown config.data.name {data.name!r}; known: synthetic, offline, '
      f'{", ".join(sorted(builders.BUILDERS))}.'
    )
  cfg = builders.config_name(
    data.name,
    sample_rate=int(data.sample_rate),
    num_sources=int(data.num_sources) if config.task == 'separation' else 2,
    mode=data.get('mode', 'min'),
    mixture=_default_mixture(config),
  )
  manual = os.path.expanduser(data.manual_dir) if data.manual_dir else ''
  key = ('tfds', data.name, cfg, manual, data.data_dir, split, config.task)
  source = _cached_source(key)
  if config.task == 'separation' and source.num_sources != data.num_sources:
    raise ValueError(
      f'{data.name} has {source.num_sources} sources per mixture but '
      f'config.data.num_sources={data.num_sources}.'
    )
  return source


# ----------------------------------------------------------------------------
# Index arithmetic.


def _hosts(process_index, process_count) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # Only for the process layout.

    process_index = (
      jax.process_index() if process_index is None else process_index
    )
    process_count = (
      jax.process_count() if process_count is None else process_count
    )
  if not 0 <= process_index < process_count:
    raise ValueError(
      f'process_index {process_index} not in [0, {process_count}).'
    )
  return int(process_index), int(process_count)


def per_host_batch(global_batch: int, process_count: int) -> int:
  """Rows per process; the global batch must split evenly."""
  if global_batch <= 0 or global_batch % process_count:
    raise ValueError(
      f'Global batch size {global_batch} must be a positive multiple of the '
      f'process count {process_count}.'
    )
  return global_batch // process_count


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
  """The visiting order of epoch `epoch`: int (size,)."""
  seq = np.random.SeedSequence(int(seed) % 2**63, spawn_key=(_PERM_TAG, epoch))
  perm = np.random.default_rng(seq).permutation(size)
  perm.flags.writeable = False
  return perm


def train_indices(
  step: int, global_batch: int, size: int, seed: int, pi: int, pc: int
) -> tuple[np.ndarray, np.ndarray]:
  """(epochs, example indices) of this process's rows at `step`, int (b,)."""
  b = per_host_batch(global_batch, pc)
  positions = step * global_batch + pi * b + np.arange(b)
  epochs, slots = np.divmod(positions, size)
  idx = np.array(
    [
      epoch_permutation(seed, int(e), size)[s]
      for e, s in zip(epochs, slots, strict=True)
    ]
  )
  return epochs, idx


def _fit(x: np.ndarray, length: int) -> np.ndarray:
  """Crops or zero-pads the last axis to `length`."""
  if x.shape[-1] >= length:
    return x[..., :length]
  pad = [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])]
  return np.pad(x, pad)


def _clip(
  source: Source,
  example: dict[str, np.ndarray],
  length: int,
  sample_rate: int,
  offset_rng: np.random.Generator | None,
) -> tuple[dict[str, np.ndarray], int]:
  """A (cropped) window of `length` samples at `sample_rate`.

  The window is chosen at the stored rate (at a random offset when
  `offset_rng` is given, else from the start), resampled, then fitted to
  exactly `length`. Returns the arrays and the count of real samples.
  """
  src_len = math.ceil(length * source.sample_rate / sample_rate)
  total = next(iter(example.values())).shape[-1]
  offset = 0
  if offset_rng is not None and total > src_len:
    offset = int(offset_rng.integers(0, total - src_len + 1))
  out = {}
  for k, x in example.items():
    window = x[..., offset : offset + src_len]
    window = audio_io.resample(window, source.sample_rate, sample_rate)
    out[k] = _fit(window.astype(np.float32), length)
  valid = min(total - offset, src_len) * sample_rate // source.sample_rate
  return out, int(min(valid, length))


def _segment_length(config, source: Source, seconds: float) -> int:
  sr = int(config.data.sample_rate)
  if seconds and seconds > 0:
    return int(round(seconds * sr))
  return math.ceil(source.whole_length * sr / source.sample_rate)


# ----------------------------------------------------------------------------
# Batches as NumPy functions of the step, made ahead by threads or processes.


def _train_batch_fn(config, source: Source, pi: int, pc: int):
  seed, size = int(config.seed), len(source)
  global_batch = int(config.train.batch_size)
  sr = int(config.data.sample_rate)
  length = _segment_length(config, source, config.data.segment_seconds)
  crop = bool(config.data.segment_seconds and config.data.segment_seconds > 0)

  def batch(step: int) -> dict[str, np.ndarray]:
    epochs, idx = train_indices(step, global_batch, size, seed, pi, pc)
    rows = []
    for e, i in zip(epochs, idx, strict=True):
      rng = None
      if crop:
        seq = np.random.SeedSequence(
          seed % 2**63, spawn_key=(_CROP_TAG, int(e), int(i))
        )
        rng = np.random.default_rng(seq)
      rows.append(_clip(source, source[int(i)], length, sr, rng)[0])
    return {k: np.stack([r[k] for r in rows]) for k in source.keys}

  return batch, length


def _eval_batch_fn(config, source: Source, size: int, pi: int, pc: int):
  global_batch = int(config.eval.batch_size)
  b = per_host_batch(global_batch, pc)
  sr = int(config.data.sample_rate)
  seconds = float(config.data.get('eval_segment_seconds', 0.0))
  length = _segment_length(config, source, seconds)
  shapes = {k: (length,) for k in source.keys}
  if 'sources' in shapes:
    shapes['sources'] = (source.num_sources, length)

  def batch(step: int) -> dict[str, np.ndarray]:
    out = {k: np.zeros((b,) + s, np.float32) for k, s in shapes.items()}
    out['mask'] = np.zeros((b,), bool)
    out['length'] = np.zeros((b,), np.int32)
    for j in range(b):
      pos = step * global_batch + pi * b + j
      if pos >= size:
        continue
      arrays, valid = _clip(source, source[pos], length, sr, None)
      for k, x in arrays.items():
        out[k][j] = x
      out['mask'][j], out['length'][j] = True, valid
    return out

  return batch, length


def _ordered(submit, first: int, count: int | None, window: int, det: bool):
  """Results of `submit(step)` for steps `[first, first + count)`.

  Keeps `window` steps in flight. With `det`, results come in step order
  (identical bytes on every run); otherwise as soon as each is ready.
  """
  end = first + count if count is not None else None
  pending = collections.deque()
  step = first
  while True:
    while len(pending) < window and (end is None or step < end):
      pending.append(submit(step))
      step += 1
    if not pending:
      return
    if det:
      yield pending.popleft().result()
    else:
      done, _ = concurrent.futures.wait(
        pending, return_when=concurrent.futures.FIRST_COMPLETED
      )
      first_done = next(f for f in pending if f in done)
      pending.remove(first_done)
      yield first_done.result()


def _thread_iterator(
  batch_fn, first: int, count: int | None, det: bool, threads: int = 2
):
  """Batches made by `threads` threads of this process, prefetched.

  The batch functions are NumPy crops, copies and mixing, much of which
  releases the GIL; no TensorFlow round trip copies the arrays again.
  """
  pool = concurrent.futures.ThreadPoolExecutor(threads)
  return _prefetched(pool, batch_fn, first, count, 2 * threads, det)


def _prefetched(pool, fn, first: int, count: int | None, window: int, det):
  """`_ordered` over `pool.submit(fn, step)`; the pool ends with it."""
  try:
    yield from _ordered(
      lambda step: pool.submit(fn, step), first, count, window, det
    )
  finally:
    pool.shutdown(wait=False, cancel_futures=True)


def create_train_iterator(
  config, *, start_step: int = 0, process_index=None, process_count=None
) -> Iterator[dict[str, np.ndarray]]:
  """Infinite training batches for this process, from global step `start_step`.

  Args:
    config: the recipe ConfigDict (`task`, `seed`, `data.*`,
      `train.batch_size` = global batch size, `data.threads`,
      `data.workers`).
    start_step: the first step to yield; the batches are exactly those an
      uninterrupted run yields from this step on.
    process_index: this process (default `jax.process_index()`).
    process_count: processes (default `jax.process_count()`).

  Returns:
    An iterator of dicts of float32 arrays with `batch_size / process_count`
    rows (see the module docstring for keys).
  """
  pi, pc = _hosts(process_index, process_count)
  split = config.data.get('train_split', 'train')
  source = make_source(config, split)
  workers = _setting(config, 'workers', 0, minimum=0)
  threads = _setting(config, 'threads', 2, minimum=1)
  batch_fn, _ = _train_batch_fn(config, source, pi, pc)
  det = bool(config.data.deterministic)
  if workers:
    batches = _worker_iterator(
      config, split, pi, pc, int(start_step), workers, det
    )
  else:
    batches = _thread_iterator(batch_fn, int(start_step), None, det, threads)
  first = next(batches)  # Errors in the settings surface here, not later.
  key = source.keys[0]
  logging.info(
    'Train pipeline: %s/%s, %d examples, batch %d per process, T=%d, %s.',
    config.data.name, split, len(source), len(first[key]),
    first[key].shape[-1],
    f'{workers} worker processes' if workers else f'{threads} threads',
  )  # fmt: skip
  return _chained(first, batches)


def _setting(config, name: str, default: int, *, minimum: int) -> int:
  """`config.data.<name>` as an int of at least `minimum`."""
  value = config.data.get(name, default)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ValueError(
      f'config.data.{name}={value!r} must be an integer >= {minimum}.'
    )
  return value


def _chained(first, batches):
  """`first`, then `batches`; closing this closes `batches`."""
  try:
    yield first
    yield from batches
  finally:
    batches.close()


# Worker processes: each builds the source and batch function once, then
# makes the batches of the steps it is given.
_WORKER_BATCH_FN = None


def _init_worker(config, split: str, pi: int, pc: int) -> None:
  global _WORKER_BATCH_FN
  source = make_source(config, split)
  _WORKER_BATCH_FN, _ = _train_batch_fn(config, source, pi, pc)


def _worker_batch(step: int) -> dict[str, np.ndarray]:
  return _WORKER_BATCH_FN(step)


def _worker_iterator(config, split, pi, pc, first: int, workers: int, det):
  """Batches of steps `first, first + 1, ...` made by worker processes.

  Up to `2 * workers` steps are in flight.
  """
  from harness import pools  # pylint: disable=g-import-not-at-top

  init = functools.partial(_init_worker, config, split, pi, pc)
  pool = pools.process_pool(workers, initializer=init)
  return _prefetched(pool, _worker_batch, first, None, 2 * workers, det)


class _EvalBatches:
  """One finite pass per iteration; `len()` is the number of batches."""

  def __init__(self, batch_fn, num_batches, deterministic, threads=2):
    self._fn = batch_fn
    self._n, self._det, self._threads = num_batches, deterministic, threads

  def __len__(self):
    return self._n

  def __iter__(self):
    return _thread_iterator(self._fn, 0, self._n, self._det, self._threads)


def create_eval_iterator(
  config, split: str = 'validation', *, process_index=None, process_count=None
) -> Iterable[dict[str, np.ndarray]]:
  """One pass over `split`, whole clips, with a 'mask' on padding rows.

  Every process yields the same number of batches; together they cover each
  example exactly once (rows past the end are zeros with mask False).
  `config.eval.num_examples` > 0 limits the pass to the first examples.
  Clips are padded to the split's longest clip (N-DNS: cropped or padded to
  30 s), or cut to `config.data.eval_segment_seconds` when that is > 0.

  Args:
    config: the recipe ConfigDict (`eval.batch_size` = global batch size).
    split: 'validation', 'test' or 'train'.
    process_index: this process (default `jax.process_index()`).
    process_count: processes (default `jax.process_count()`).

  Returns:
    A re-iterable of dicts of arrays (see the module docstring).
  """
  pi, pc = _hosts(process_index, process_count)
  source = make_source(config, split)
  size = len(source)
  limit = int(config.eval.get('num_examples', 0) or 0)
  if limit > 0:
    size = min(size, limit)
  batch_fn, _ = _eval_batch_fn(config, source, size, pi, pc)
  num_batches = -(-size // int(config.eval.batch_size))
  threads = _setting(config, 'threads', 2, minimum=1)
  return _EvalBatches(batch_fn, num_batches, config.data.deterministic, threads)
