"""The offline corpus as training data: noisy mixtures made on the fly.

`launch/build_corpus.py` (see `offline_build`) converts real recorded speech,
TTS voices and real noise from Debian packages into a corpus folder with
speaker-disjoint train/validation/test splits. This module reads a built
corpus (memory-mapped int16 arrays, no decoding) and makes each example as a
pure function of `(seed, split, index)`, like the built-in synthetic set:

1. Speech: a clip drawn with probability proportional to its length (from
   the TTS voices with probability `tts_fraction`, else from the real
   recordings); if it is shorter than the example, more clips of the same
   speaker group follow after 0.1-0.5 s pauses. Each clip is brought to the
   same RMS. Training examples are speed-perturbed (resampled by a factor
   in 1 +- `speed_perturb`, in steps of 0.05, which shifts pitch and tempo
   together, as Kaldi's speed perturbation).
2. Reverberation: with probability `reverb_prob`, the speech is convolved
   with a room impulse response of the split (RT60 0.1-0.8 s, `rir`). The
   training target is the *early-reverberant* speech: the same speech
   convolved with the response's first `early_ms` ms after the direct path
   (0 = the direct path alone, i.e. dry). The model thus learns to remove
   noise and late reverberation but not the early reflections, which help
   intelligibility and are hard to remove without artefacts (the usual
   target in dereverberation work).
3. Noise: with probability `synthetic_noise_prob` a procedural noise
   (`noise_synth`), else a random stretch of a real noise recording of the
   split (short ones concatenated with pauses); with probability 0.25 a
   second noise is added 0-10 dB lower.
4. Mixing: the N-DNS recipe of `mixing.mix`: SNR uniform in `snr_range`
   (of the reverberant speech against the noise), the mixture at a level
   uniform in `level_range` dBFS; target and noise get the same gain.

Enhancement examples are (noisy, clean, noise) with `noise = noisy - clean`
(noise plus late reverberation); separation examples are mixtures of
`num_sources` talkers from different speaker groups (levels within +-5 dB),
optionally with noise.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

import numpy as np
from scipy import signal

from data_pipelines import (
  audio_io,
  mixing,
  noise_synth,
  offline_build,
  synthetic,
)

SAMPLE_RATE = offline_build.SAMPLE_RATE
SPLIT_CODES = {'train': 1, 'validation': 2, 'test': 3}
_TAG = 211
_REF_RMS = 0.05


class CorpusError(FileNotFoundError):
  """The corpus is missing, incomplete or damaged; says how to build it."""


def default_dir() -> str:
  """`$S4JAX_CACHE_DIR/offline` or `~/.cache/s4jax/offline`."""
  return os.path.join(synthetic.default_cache_root(), 'offline')


def build_command(corpus_dir: str) -> str:
  """The command that builds (or resumes building) the corpus."""
  arg = '' if corpus_dir == default_dir() else f' --output_dir={corpus_dir}'
  return f'python launch/build_corpus.py{arg} --install'


def check_corpus(corpus_dir: str) -> dict:
  """Returns the completion record of a built corpus.

  Raises:
    CorpusError: there is no corpus, or its build did not finish, or the
      manifest no longer matches the record.
  """
  marker = os.path.join(corpus_dir, offline_build.MARKER)
  fix = build_command(corpus_dir)
  if not os.path.isdir(corpus_dir):
    raise CorpusError(
      f'No offline corpus at {corpus_dir}. Build it (about 6 minutes on 2 '
      f'cores) with:\n  {fix}\nor point config.data.manual_dir at a '
      'corpus built elsewhere.'
    )
  if not os.path.exists(marker):
    raise CorpusError(
      f'The offline corpus at {corpus_dir} is incomplete (its build was '
      f'interrupted or is running; no {offline_build.MARKER}). Finish it '
      f'with:\n  {fix}'
    )
  try:
    with open(marker) as f:
      info = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise CorpusError(f'{marker} is unreadable ({e}); rerun:\n  {fix}') from e
  if info.get('version') != offline_build.VERSION:
    raise CorpusError(
      f'{corpus_dir} was built by corpus version {info.get("version")}; '
      f'this code reads version {offline_build.VERSION}. Rebuild it:\n  {fix}'
    )
  manifest = os.path.join(corpus_dir, offline_build.MANIFEST)
  if (
    not os.path.exists(manifest)
    or offline_build.file_sha1(manifest) != info['manifest_sha1']
  ):
    raise CorpusError(
      f'{manifest} is missing or was changed after the build; rerun:\n  {fix}'
    )
  return info


@dataclasses.dataclass
class Pool:
  """The clips of one kind in one split, as one memory-mapped int16 array.

  Attributes:
    data: int16 (N,) all clips end to end.
    offsets: int64 (C,) start of each clip in `data`.
    lengths: int64 (C,) samples of each clip.
    group: (C,) speaker group (noise: the file).
    origin: (C,) 'real' or 'tts'.
  """

  data: np.ndarray
  offsets: np.ndarray
  lengths: np.ndarray
  group: np.ndarray
  origin: np.ndarray

  def __post_init__(self):
    self.by_group: dict[str, np.ndarray] = {}
    for g in np.unique(self.group):
      self.by_group[str(g)] = np.flatnonzero(self.group == g)
    self.by_origin: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for o in np.unique(self.origin):
      idx = np.flatnonzero(self.origin == o)
      self.by_origin[str(o)] = (idx, np.cumsum(self.lengths[idx]))

  def __len__(self) -> int:
    return len(self.offsets)

  def clip(self, i: int) -> np.ndarray:
    """Clip `i` as float32 (T,) in [-1, 1)."""
    o, n = int(self.offsets[i]), int(self.lengths[i])
    return self.data[o : o + n].astype(np.float32) / np.float32(32768.0)

  def draw(self, rng, origin: str) -> int:
    """A clip of `origin`, drawn with probability proportional to length."""
    idx, cum = self.by_origin[origin]
    return int(idx[np.searchsorted(cum, rng.uniform(0, cum[-1]), 'right')])


@dataclasses.dataclass
class CorpusSplit:
  """One split of a built corpus.

  Attributes:
    corpus_dir: the corpus folder.
    split: 'train', 'validation' or 'test'.
    speech: the speech clips.
    noise: the real noise clips.
    rirs: float32 (R, L) room impulse responses.
    rir_direct: int (R,) index of each response's direct path.
    rir_length: int (R,) samples of each response before padding.
  """

  corpus_dir: str
  split: str
  speech: Pool
  noise: Pool
  rirs: np.ndarray
  rir_direct: np.ndarray
  rir_length: np.ndarray


def _pool(folder: str, split: str, kind: str, entry: dict) -> Pool:
  data = np.load(os.path.join(folder, f'{split}_{kind}.npy'), mmap_mode='r')
  offsets = np.asarray(entry['offsets'], np.int64)
  lengths = np.asarray(entry['lengths'], np.int64)
  if len(offsets) and offsets[-1] + lengths[-1] != len(data):
    raise ValueError(f'{folder}/{split}_{kind}.npy does not match the index.')
  return Pool(
    data,
    offsets,
    lengths,
    np.asarray(entry['group'], object),
    np.asarray(entry['origin'], object),
  )


@functools.lru_cache(maxsize=8)
def load_split(corpus_dir: str, split: str) -> CorpusSplit:
  """Memory-maps one split of the corpus in `corpus_dir`.

  Raises:
    CorpusError: the corpus is missing or incomplete (naming the build
      command), or the split has no speech.
  """
  corpus_dir = os.path.abspath(os.path.expanduser(corpus_dir))
  check_corpus(corpus_dir)
  folder = os.path.join(corpus_dir, 'packed')
  try:
    with open(os.path.join(folder, 'index.json')) as f:
      index = json.load(f)
    if split not in index['splits']:
      raise CorpusError(
        f'The offline corpus has no split {split!r}; it has '
        f'{sorted(index["splits"])}.'
      )
    entry = index['splits'][split]
    speech = _pool(folder, split, 'speech', entry['speech'])
    noise = _pool(folder, split, 'noise', entry['noise'])
    rirs = np.load(os.path.join(folder, f'{split}_rirs.npy'), mmap_mode='r')
  except (OSError, ValueError, KeyError) as e:
    if isinstance(e, CorpusError):
      raise
    raise CorpusError(
      f'{folder} is damaged ({e}); rebuild it with:\n'
      f'  {build_command(corpus_dir)}'
    ) from e
  if not len(speech):
    raise CorpusError(
      f'The offline corpus at {corpus_dir} has no speech in its {split} '
      'split (too few speakers installed?). Install more sources and '
      f'rerun:\n  {build_command(corpus_dir)}'
    )
  info = entry['rirs']
  return CorpusSplit(
    corpus_dir,
    split,
    speech,
    noise,
    rirs,
    np.array([r['direct'] for r in info], np.int64),
    np.array([r['length'] for r in info], np.int64),
  )


@dataclasses.dataclass(frozen=True)
class MixSpec:
  """How the examples of a split are made (see the module docstring).

  Attributes:
    task: 'enhancement' or 'separation'.
    split: 'train', 'validation' or 'test'.
    num_examples: examples in the split (training: per epoch; they are all
      different mixtures, so a large number costs nothing).
    clip_seconds: length of every example.
    seed: base seed.
    augment: speed perturbation (training only).
    real_only: draw speech from real recordings only (evaluation), when the
      split has any.
    num_sources: separation: talkers per mixture.
    separation_noise: separation: add noise.
    snr_range: dB.
    level_range: mixture RMS level, dBFS.
    reverb_prob: share of examples with reverberant speech.
    early_ms: target keeps this much of the response after the direct path.
    tts_fraction: share of speech drawn from TTS voices.
    synthetic_noise_prob: share of procedural noise.
    speed_perturb: maximum relative speed change (0 = off).
  """

  task: str = 'enhancement'
  split: str = 'train'
  num_examples: int = 1000
  clip_seconds: float = 4.0
  seed: int = 0
  augment: bool = True
  real_only: bool = False
  num_sources: int = 2
  separation_noise: bool = False
  snr_range: tuple[float, float] = (-5.0, 20.0)
  level_range: tuple[float, float] = (-35.0, -15.0)
  reverb_prob: float = 0.3
  early_ms: float = 50.0
  tts_fraction: float = 0.25
  synthetic_noise_prob: float = 0.3
  speed_perturb: float = 0.1

  def __post_init__(self):
    if self.task not in ('enhancement', 'separation'):
      raise ValueError(f'task must be enhancement or separation: {self.task}')
    if self.split not in SPLIT_CODES:
      raise ValueError(f'Unknown split {self.split!r}; {sorted(SPLIT_CODES)}.')
    if self.clip_seconds <= 0 or self.num_examples <= 0:
      raise ValueError(
        'offline clip length and example count must be positive, got '
        f'{self.clip_seconds} s and {self.num_examples}.'
      )
    for name in ('reverb_prob', 'tts_fraction', 'synthetic_noise_prob'):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(
          f'{name} must be in [0, 1], got {getattr(self, name)}.'
        )
    if not 0.0 <= self.speed_perturb < 0.5:
      raise ValueError(
        f'speed_perturb must be in [0, 0.5): {self.speed_perturb}'
      )
    if self.early_ms < 0:
      raise ValueError(f'early_ms must be >= 0, got {self.early_ms}.')
    for name in ('snr_range', 'level_range'):
      lo, hi = getattr(self, name)
      if lo > hi:
        raise ValueError(f'{name} must be (low, high), got {(lo, hi)}.')

  @property
  def clip_samples(self) -> int:
    return int(round(self.clip_seconds * SAMPLE_RATE))


def _unit(x: np.ndarray) -> np.ndarray:
  return x * (
    _REF_RMS / (np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-9)
  )


def _origin(rng, pool: Pool, spec: MixSpec) -> str:
  have = set(pool.by_origin)
  if spec.real_only and 'real' in have:
    return 'real'
  if have == {'real', 'tts'}:
    return 'tts' if rng.random() < spec.tts_fraction else 'real'
  return next(iter(sorted(have)))


def speech_clip(
  rng, pool: Pool, n: int, spec: MixSpec, avoid: tuple[str, ...] = ()
) -> tuple[np.ndarray, str]:
  """`n` samples of one speaker group's speech (float64) and the group."""
  origin = _origin(rng, pool, spec)
  for _ in range(20):
    i = pool.draw(rng, origin)
    if pool.group[i] not in avoid:
      break
  group = str(pool.group[i])
  factor = 1.0
  if spec.augment and spec.speed_perturb > 0:
    steps = int(round(spec.speed_perturb / 0.05))
    factor = 1.0 + 0.05 * int(rng.integers(-steps, steps + 1))
  m = int(math.ceil(n * factor)) + 1
  parts, total = [], 0
  x = pool.clip(i)
  if len(x) >= m:
    start = int(rng.integers(0, len(x) - m + 1))
    parts, total = [_unit(x[start : start + m])], m
  else:
    lead = int(rng.uniform(0.0, 0.3) * SAMPLE_RATE)
    parts, total = [np.zeros(lead), _unit(x)], lead + len(x)
    members = pool.by_group[group]
    while total < m:
      gap = int(rng.uniform(0.1, 0.5) * SAMPLE_RATE)
      y = _unit(pool.clip(int(members[rng.integers(len(members))])))
      parts += [np.zeros(gap), y]
      total += gap + len(y)
  out = np.concatenate(parts)[:m].astype(np.float64)
  if factor != 1.0:
    # Played `factor` times faster: resampled from 20 * factor to 20 "Hz".
    out = audio_io.resample(out, int(round(20 * factor)), 20)
  out = out[:n]
  if len(out) < n:
    out = np.pad(out, (0, n - len(out)))
  return out, group


def noise_clip(rng, pool: Pool, n: int, spec: MixSpec) -> np.ndarray:
  """`n` samples of noise (float64, not all zero)."""
  if not len(pool) or rng.random() < spec.synthetic_noise_prob:
    return noise_synth.sample_noise(rng, n, SAMPLE_RATE)[0]
  parts, total = [], 0
  while total < n:
    x = pool.clip(int(rng.integers(len(pool))))
    if len(x) > n - total:
      start = int(rng.integers(0, len(x) - (n - total) + 1))
      x = x[start : start + n - total]
    parts.append(_unit(x))
    total += len(x)
    if total < n:
      gap = int(rng.uniform(0.0, 1.0) * SAMPLE_RATE)
      parts.append(np.zeros(gap))
      total += gap
  out = np.concatenate(parts)[:n].astype(np.float64)
  if not np.any(out):
    return noise_synth.sample_noise(rng, n, SAMPLE_RATE)[0]
  return out


def _reverberate(rng, split: CorpusSplit, x: np.ndarray, spec: MixSpec):
  """(reverberant, target) versions of `x`; equal to `x` when dry."""
  if not len(split.rirs) or rng.random() >= spec.reverb_prob:
    return x, x
  j = int(rng.integers(len(split.rirs)))
  h = np.asarray(split.rirs[j, : split.rir_length[j]], np.float64)
  d = int(split.rir_direct[j])
  early = h[: d + 1 + int(spec.early_ms * SAMPLE_RATE / 1000)]
  n = len(x)
  return signal.fftconvolve(x, h)[:n], signal.fftconvolve(x, early)[:n]


def example_rng(spec: MixSpec, index: int) -> np.random.Generator:
  """The random stream of example `index` (disjoint across splits)."""
  seq = np.random.SeedSequence(
    int(spec.seed) % 2**63,
    spawn_key=(_TAG, SPLIT_CODES[spec.split], int(index)),
  )
  return np.random.default_rng(seq)


def make_example(split: CorpusSplit, spec: MixSpec, index: int) -> dict:
  """Example `index` of `split` made as `spec` says.

  Returns:
    enhancement: 'noisy', 'clean', 'noise' float32 (T,) with
    noisy = clean + noise; separation: 'mixture' (T,), 'sources' (S, T)
    (+ 'noise' (T,) with `separation_noise`); T = spec.clip_samples at
    16 kHz. Also 'snr_db' and 'level_db' (floats) and 'groups' (str).
  """
  rng = example_rng(spec, index)
  n, sr = spec.clip_samples, SAMPLE_RATE
  snr = float(rng.uniform(*spec.snr_range))
  level = float(rng.uniform(*spec.level_range))
  if spec.task == 'enhancement':
    dry, group = speech_clip(rng, split.speech, n, spec)
    wet, target = _reverberate(rng, split, dry, spec)
    noise = noise_clip(rng, split.noise, n, spec)
    if rng.random() < 0.25:
      extra = noise_clip(rng, split.noise, n, spec)
      noise = _unit(noise) + _unit(extra) * 10 ** (-rng.uniform(0, 10) / 20)
    m = mixing.mix(wet, noise, snr, level, sr, clip_threshold=None)
    k = int(np.argmax(np.abs(wet)))  # m.clean == wet * gain
    gain = float(m.clean[k] / wet[k])
    clean = (target * gain).astype(np.float32)
    noisy = m.noisy.astype(np.float32)
    return {
      'noisy': noisy,
      'clean': clean,
      'noise': noisy - clean,
      'snr_db': snr,
      'level_db': level,
      'groups': group,
    }
  sources, groups = [], []
  wets = []
  for k in range(spec.num_sources):
    dry, group = speech_clip(rng, split.speech, n, spec, tuple(groups))
    wet, target = _reverberate(rng, split, dry, spec)
    rel = 0.0 if k == 0 else rng.uniform(-5.0, 5.0)
    g = 10.0 ** ((rel - mixing.rms_db(wet)) / 20.0)
    wets.append(wet * g)
    sources.append(target * g)
    groups.append(group)
  speech = np.sum(wets, axis=0)
  mixture = speech
  out = {'groups': '+'.join(groups), 'level_db': level}
  if spec.separation_noise:
    noise = mixing.scale_to_snr(
      speech, noise_clip(rng, split.noise, n, spec), snr, sr
    )
    mixture = speech + noise
    out['snr_db'] = snr
  else:
    out['snr_db'] = float('inf')
  gain = 10.0 ** ((level - mixing.rms_db(mixture)) / 20.0)
  out['mixture'] = (mixture * gain).astype(np.float32)
  out['sources'] = (np.stack(sources) * gain).astype(np.float32)
  if spec.separation_noise:
    # Everything that is not a source's target: noise and late reverb.
    out['noise'] = out['mixture'] - out['sources'].sum(axis=0)
  return out
