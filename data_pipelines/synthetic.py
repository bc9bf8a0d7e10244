"""The built-in synthetic dataset: speech-like enhancement and separation data.

Examples are generated procedurally (`speech_synth`, `noise_synth`) and mixed
with the N-DNS recipe (`mixing`): SNR uniform in [-5, 20] dB and mixture
level uniform in [-35, -15] dBFS by default. Every example is a pure function
of `(seed, split, index)`: its random stream is
`SeedSequence(seed, spawn_key=(split_code, index))`, so train, validation and
test never share a stream, and the same seed always gives the same bytes.

Generated splits are cached as `.npy` arrays under
`<data_dir>/synthetic/<key>/` (default `$S4JAX_CACHE_DIR` or
`~/.cache/s4jax`), where the key hashes the generator version and every
parameter; a second run memory-maps them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid

import numpy as np
from absl import logging

from data_pipelines import mixing, noise_synth, speech_synth
from harness import pools

# Bump when a change to the generators changes their output.
GENERATOR_VERSION = 1
SPLIT_CODES = {'train': 1, 'validation': 2, 'test': 3}
TASKS = ('enhancement', 'separation')
# Separation: level of each extra speaker relative to the first, dB.
RELATIVE_LEVEL_DB = (-5.0, 5.0)


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """Everything that determines a generated split.

  Attributes:
    task: 'enhancement' (noisy, clean, noise) or 'separation' (mixture,
      sources, optional noise).
    split: 'train', 'validation' or 'test'.
    total_seconds: audio in the split; the clip count is
      round(total_seconds / clip_seconds).
    clip_seconds: length of every clip.
    sample_rate: Hz (8000 or 16000 are usual).
    seed: base seed.
    num_sources: separation: speakers per mixture.
    separation_noise: separation: add noise to the mixtures (WHAM!-style).
    snr_range: SNR range in dB (speech vs noise).
    level_range: mixture RMS level range in dBFS.
  """

  task: str = 'enhancement'
  split: str = 'train'
  total_seconds: float = 1200.0
  clip_seconds: float = 6.0
  sample_rate: int = 16000
  seed: int = 0
  num_sources: int = 2
  separation_noise: bool = False
  snr_range: tuple[float, float] = (-5.0, 20.0)
  level_range: tuple[float, float] = (-35.0, -15.0)

  def __post_init__(self):
    if self.task not in TASKS:
      raise ValueError(f'task must be one of {TASKS}, got {self.task!r}.')
    if self.split not in SPLIT_CODES:
      raise ValueError(
        f'Unknown split {self.split!r}; the synthetic dataset has '
        f'{sorted(SPLIT_CODES)}.'
      )
    if self.clip_seconds <= 0 or self.total_seconds <= 0:
      raise ValueError(
        'synthetic clip and split lengths must be positive, got '
        f'clip_seconds={self.clip_seconds}, '
        f'total_seconds={self.total_seconds}.'
      )
    if self.sample_rate < 4000:
      raise ValueError(f'sample_rate {self.sample_rate} Hz is too low.')
    if self.task == 'separation' and not 1 <= self.num_sources <= 4:
      raise ValueError(f'num_sources must be 1-4, got {self.num_sources}.')
    for name in ('snr_range', 'level_range'):
      lo, hi = getattr(self, name)
      if lo > hi:
        raise ValueError(f'{name} must be (low, high), got {(lo, hi)}.')
    if self.level_range[1] > 0:
      raise ValueError(f'level_range must be <= 0 dBFS: {self.level_range}.')

  @property
  def num_clips(self) -> int:
    return max(1, int(round(self.total_seconds / self.clip_seconds)))

  @property
  def clip_samples(self) -> int:
    return int(round(self.clip_seconds * self.sample_rate))

  def key(self) -> str:
    """Cache folder name: readable prefix plus a hash of every field."""
    fields = dataclasses.asdict(self)
    fields['version'] = GENERATOR_VERSION
    if self.task == 'enhancement':  # fields that do not apply
      fields.pop('num_sources')
      fields.pop('separation_noise')
    blob = json.dumps(fields, sort_keys=True, default=list).encode()
    digest = hashlib.sha1(blob).hexdigest()[:12]
    return f'{self.task}_{self.sample_rate}hz_{self.split}_{digest}'


def example_rng(spec: SyntheticSpec, index: int) -> np.random.SeedSequence:
  """The seed sequence of one example (disjoint across splits)."""
  return np.random.SeedSequence(
    entropy=int(spec.seed) % 2**63,
    spawn_key=(SPLIT_CODES[spec.split], int(index)),
  )


def _speech(rng, n, sr, kind=None):
  talker = speech_synth.sample_talker(rng, kind)
  return speech_synth.synthesize(rng, talker, n, sr), talker.kind


def make_example(spec: SyntheticSpec, index: int) -> dict:
  """Generates example `index` of the split.

  Args:
    spec: the split's parameters.
    index: example number in [0, spec.num_clips).

  Returns:
    A dict of float32 arrays (enhancement: 'noisy', 'clean', 'noise', each
    (T,); separation: 'mixture' (T,), 'sources' (S, T), and 'noise' (T,) when
    `separation_noise`) plus float metadata 'snr_db', 'level_db' and string
    metadata 'talkers', 'noise_type'.
  """
  speech_seq, noise_seq, mix_seq = example_rng(spec, index).spawn(3)
  speech_rng = np.random.default_rng(speech_seq)
  noise_rng = np.random.default_rng(noise_seq)
  mix_rng = np.random.default_rng(mix_seq)
  n, sr = spec.clip_samples, spec.sample_rate
  snr = float(mix_rng.uniform(*spec.snr_range))
  level = float(mix_rng.uniform(*spec.level_range))
  if spec.task == 'enhancement':
    clean, kind = _speech(speech_rng, n, sr)
    noise, noise_type = noise_synth.sample_noise(noise_rng, n, sr)
    m = mixing.mix(clean, noise, snr, level, sr, clip_threshold=None)
    return {
      'noisy': m.noisy.astype(np.float32),
      'clean': m.clean.astype(np.float32),
      'noise': m.noise.astype(np.float32),
      'snr_db': snr,
      'level_db': level,
      'talkers': kind,
      'noise_type': noise_type,
    }
  sources, kinds = [], []
  for i in range(spec.num_sources):
    x, kind = _speech(speech_rng, n, sr)
    rel = 0.0 if i == 0 else mix_rng.uniform(*RELATIVE_LEVEL_DB)
    sources.append(x * 10.0 ** ((rel - mixing.rms_db(x)) / 20.0))
    kinds.append(kind)
  sources = np.stack(sources)
  speech = sources.sum(axis=0)
  out = {'talkers': '+'.join(kinds), 'level_db': level}
  mixture = speech
  if spec.separation_noise:
    noise, noise_type = noise_synth.sample_noise(noise_rng, n, sr)
    noise = mixing.scale_to_snr(speech, noise, snr, sr)
    mixture = speech + noise
    out.update(snr_db=snr, noise_type=noise_type)
  else:
    out.update(snr_db=float('inf'), noise_type='')
  gain = 10.0 ** ((level - mixing.rms_db(mixture)) / 20.0)
  out['mixture'] = (mixture * gain).astype(np.float32)
  out['sources'] = (sources * gain).astype(np.float32)
  if spec.separation_noise:
    out['noise'] = (noise * gain).astype(np.float32)
  return out


def array_shapes(spec: SyntheticSpec) -> dict[str, tuple[int, ...]]:
  """Shapes of the stored arrays of a split."""
  n, t = spec.num_clips, spec.clip_samples
  if spec.task == 'enhancement':
    return {'noisy': (n, t), 'clean': (n, t), 'noise': (n, t)}
  shapes = {'mixture': (n, t), 'sources': (n, spec.num_sources, t)}
  if spec.separation_noise:
    shapes['noise'] = (n, t)
  return shapes


def _make_chunk(spec: SyntheticSpec, indices: list[int]) -> list[dict]:
  return [make_example(spec, i) for i in indices]


def _generate_into(spec: SyntheticSpec, folder: str, num_workers: int):
  """Writes the split's arrays and metadata into `folder`."""
  arrays = {
    k: np.lib.format.open_memmap(
      os.path.join(folder, f'{k}.npy'), 'w+', np.float32, shape
    )
    for k, shape in array_shapes(spec).items()
  }
  meta = {'snr_db': [], 'level_db': [], 'talkers': [], 'noise_type': []}
  chunks = [
    list(range(i, min(i + 8, spec.num_clips)))
    for i in range(0, spec.num_clips, 8)
  ]

  def store(indices, examples):
    for i, ex in zip(indices, examples, strict=True):
      for k, arr in arrays.items():
        arr[i] = ex[k]
      for k in meta:
        meta[k].append(ex[k])

  if num_workers <= 1 or len(chunks) == 1:
    for c in chunks:
      store(c, _make_chunk(spec, c))
  else:
    with pools.process_pool(num_workers) as pool:
      for c, exs in zip(
        chunks, pool.map(_make_chunk, [spec] * len(chunks), chunks), strict=True
      ):
        store(c, exs)
  for arr in arrays.values():
    arr.flush()
  info = {
    'spec': dataclasses.asdict(spec),
    'version': GENERATOR_VERSION,
    'shapes': {k: list(v) for k, v in array_shapes(spec).items()},
    **meta,
  }
  with open(os.path.join(folder, 'meta.json'), 'w') as f:
    json.dump(info, f)


def default_cache_root() -> str:
  """`$S4JAX_CACHE_DIR` or `~/.cache/s4jax`."""
  root = os.environ.get('S4JAX_CACHE_DIR') or os.path.join(
    os.path.expanduser('~'), '.cache', 's4jax'
  )
  return root


@dataclasses.dataclass
class SyntheticSplit:
  """A generated split: memory-mapped arrays plus per-example metadata."""

  spec: SyntheticSpec
  folder: str
  arrays: dict[str, np.ndarray]
  meta: dict

  def __len__(self) -> int:
    return self.spec.num_clips


def _load(spec: SyntheticSpec, folder: str) -> SyntheticSplit:
  with open(os.path.join(folder, 'meta.json')) as f:
    meta = json.load(f)
  arrays = {}
  for k, shape in array_shapes(spec).items():
    arr = np.load(os.path.join(folder, f'{k}.npy'), mmap_mode='r')
    if arr.shape != shape or arr.dtype != np.float32:
      raise ValueError(f'{folder}/{k}.npy is {arr.shape} {arr.dtype}.')
    arrays[k] = arr
  return SyntheticSplit(spec, folder, arrays, meta)


def load_or_generate(
  spec: SyntheticSpec, cache_root: str = '', *, num_workers: int = 1
) -> SyntheticSplit:
  """Returns the cached split, generating it first if needed.

  Generation writes to a temporary folder and renames it into place, so
  concurrent processes never see a partial split.

  Args:
    spec: the split to load.
    cache_root: folder holding `synthetic/`; '' uses `default_cache_root()`.
    num_workers: processes to generate with (1 = in this process).

  Returns:
    The `SyntheticSplit`.
  """
  root = os.path.join(cache_root or default_cache_root(), 'synthetic')
  folder = os.path.join(root, spec.key())
  if os.path.isdir(folder):
    try:
      return _load(spec, folder)
    except (OSError, ValueError) as e:
      logging.warning('Regenerating damaged synthetic cache %s: %s', folder, e)
      shutil.rmtree(folder, ignore_errors=True)
  os.makedirs(root, exist_ok=True)
  tmp = f'{folder}.tmp-{uuid.uuid4().hex[:8]}'
  os.makedirs(tmp)
  start = time.time()
  logging.info(
    'Generating synthetic %s %s split: %d clips of %.1f s at %d Hz -> %s',
    spec.task,
    spec.split,
    spec.num_clips,
    spec.clip_seconds,
    spec.sample_rate,
    folder,
  )
  try:
    _generate_into(spec, tmp, num_workers)
    os.rename(tmp, folder)
  except OSError:
    if not os.path.isdir(folder):  # not a lost race: a real failure
      raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  logging.info('Generated %s in %.1f s.', folder, time.time() - start)
  return _load(spec, folder)
