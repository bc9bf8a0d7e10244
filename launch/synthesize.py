r"""Synthesises a noisy-speech training set from folders of speech and noise.

Follows the recipe of the DNS Challenge synthesizer
(`noisyspeech_synthesizer.py`, Reddy et al. 2020, as used by the Intel N-DNS
Challenge): clean clips are built by concatenating speech files with short
silences until the clip length is reached (files below an activity threshold
are skipped), a noise clip is cut from random noise files, and the two are
mixed at a random SNR with the mixture at a random level. The output has the
N-DNS layout, so it trains with `config.data.name = 'ndns'` and
`config.data.manual_dir = <output_dir>`:

  <output_dir>/training_set/{noisy,clean,noise}/...fileid_<k>.wav
  <output_dir>/validation_set/...
  <output_dir>/<set>/metadata.csv    (sources, SNR, levels per clip)
  <output_dir>/synthesis_log.json    (arguments, counts, skipped files)

Train, validation and test never share a speech file (nor a noise file when
there are at least as many noise files as sets).

  python -m launch.synthesize --clean_dir=speech/ --noise_dir=noise/ \
      --output_dir=data/my_dns --hours=2 --validation_hours=0.2

Ranges are `low,high` (`--snr_range=-5,20`); `--noise_dir` may be repeated.
From Python, `main(['--clean_dir=...', ...])` runs the tool in-process and
returns its exit status.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

import csv
import hashlib
import json
import os
import re
import sys
import types
import warnings

import numpy as np
from absl import app, flags

from data_pipelines import audio_io, mixing
from harness import runtime

SETS = (
  ('train', 'training_set', 'hours'),
  ('validation', 'validation_set', 'validation_hours'),
  ('test', 'test_set', 'test_hours'),
)
_SPLIT_CODES = {'train': 1, 'validation': 2, 'test': 3}
_MAX_SKIPS = 200


class _RangeParser(flags.ArgumentParser):
  """Parses `low,high` into a `(low, high)` tuple of floats."""

  syntax = 'low,high'

  def parse(self, argument):
    if isinstance(argument, (tuple, list)):
      values = argument
    else:
      values = str(argument).split(',')
    try:
      lo, hi = (float(v) for v in values)
    except ValueError as e:
      raise ValueError(f'expected "low,high", got {argument!r}') from e
    if lo > hi:
      raise ValueError(f'low > high in {argument!r}')
    return lo, hi

  def flag_type(self):
    return 'range'


def _define_range(name, default, help_text, flag_values):
  flags.DEFINE(
    _RangeParser(),
    name,
    default,
    help_text,
    flag_values=flag_values,
    serializer=flags.CsvListSerializer(','),
  )


# The flags `define_flags` defines. They are not defined at import, so this
# module imports next to tools whose flags share names (e.g. --output_dir).
FLAG_NAMES = (
  'clean_dir',
  'noise_dir',
  'output_dir',
  'hours',
  'validation_hours',
  'test_hours',
  'clip_seconds',
  'sample_rate',
  'snr_range',
  'target_level_range',
  'continuous',
  'silence_seconds',
  'activity_threshold',
  'noise_activity_threshold',
  'validation_fraction',
  'seed',
  'overwrite',
)


def define_flags(flag_values: flags.FlagValues) -> None:
  """Defines the command-line flags (see the module docstring) on `flag_values`.

  The command line defines them on the global `flags.FLAGS`; `main` on a
  private `FlagValues`, so the tool can run in-process next to other tools.
  """
  fv = {'flag_values': flag_values}
  flags.DEFINE_string(
    'clean_dir',
    None,
    'Required. Folder of speech files (searched recursively).',
    **fv,
  )
  flags.DEFINE_multi_string(
    'noise_dir',
    None,
    'Required. Folder of noise files',
    **fv,
  )
  flags.DEFINE_string(
    'output_dir', None, 'Required. Where the N-DNS layout is written.', **fv
  )
  flags.DEFINE_float(
    'hours', 1.0, 'Hours of training audio (> 0).', lower_bound=0, **fv
  )
  flags.DEFINE_float(
    'validation_hours',
    0.1,
    'Hours of validation audio (0: no validation set).',
    lower_bound=0,
    **fv,
  )
  flags.DEFINE_float(
    'test_hours',
    0.0,
    'Hours of test audio (0: no test set).',
    lower_bound=0,
    **fv,
  )
  flags.DEFINE_float(
    'clip_seconds', 30.0, 'Length of each clip (s, > 0).', **fv
  )
  flags.DEFINE_integer(
    'sample_rate',
    16000,
    'Sample rate of the output (Hz, >= 8000); inputs are resampled.',
    lower_bound=8000,
    **fv,
  )
  _define_range(
    'snr_range',
    (-5.0, 20.0),
    'Speech-to-noise ratio range in dB, low,high (e.g. --snr_range=-5,20).',
    flag_values,
  )
  _define_range(
    'target_level_range',
    (-35.0, -15.0),
    'RMS level range of the noisy mixture in dBFS, low,high (<= 0).',
    flag_values,
  )
  flags.DEFINE_bool(
    'continuous',
    False,
    'Draw real-valued SNRs and levels (default: whole dB, as the DNS '
    'synthesizer).',
    **fv,
  )
  flags.DEFINE_float(
    'silence_seconds',
    0.2,
    'Silence between concatenated speech files (s).',
    lower_bound=0,
    **fv,
  )
  flags.DEFINE_float(
    'activity_threshold',
    0.6,
    'Skip speech files whose activity (fraction of active 50 ms frames) '
    'is below this.',
    **fv,
  )
  flags.DEFINE_float(
    'noise_activity_threshold',
    0.0,
    'Skip noise excerpts whose activity is below this.',
    **fv,
  )
  flags.DEFINE_float(
    'validation_fraction',
    0.1,
    'Share of the speech/noise files held out for each extra set '
    '(validation, test), in (0, 0.5).',
    **fv,
  )
  flags.DEFINE_integer('seed', 0, 'Random seed (same seed, same output).', **fv)
  flags.DEFINE_bool(
    'overwrite', False, 'Replace existing sets in --output_dir.', **fv
  )
  flags.mark_flags_as_required(
    ['clean_dir', 'noise_dir', 'output_dir'], flag_values=flag_values
  )
  checks = (
    ('clip_seconds', lambda v: v > 0, '--clip_seconds must be > 0.'),
    (
      'target_level_range',
      lambda v: v[1] <= 0,
      '--target_level_range must be <= 0 dBFS.',
    ),
    (
      'validation_fraction',
      lambda v: 0 < v < 0.5,
      '--validation_fraction must be in (0, 0.5).',
    ),
  )
  for name, check, message in checks:
    flags.register_validator(name, check, message, flag_values=flag_values)


def parse_args(argv: list[str] | None = None) -> types.SimpleNamespace:
  """Parses `argv` (flags, no program name) into a namespace of the flags.

  Raises:
    SystemExit: with a one-line message on a bad command line.
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  try:
    rest = flag_values(['synthesize.py', *argv])
  except flags.Error as e:
    raise SystemExit(runtime.flag_error_message(e)) from None
  if len(rest) > 1:
    raise SystemExit(_unexpected(rest[1:]))
  return _namespace(flag_values)


def _namespace(flag_values: flags.FlagValues) -> types.SimpleNamespace:
  return types.SimpleNamespace(**{n: flag_values[n].value for n in FLAG_NAMES})


def _unexpected(args: list[str]) -> str:
  return (
    f'error: unexpected arguments {args}; synthesize.py takes only flags. '
    'Pass --help to see the flags.'
  )


def _rank(path: str, root: str, seed: int) -> str:
  rel = os.path.relpath(path, root)
  return hashlib.sha1(f'{seed}:{rel}'.encode()).hexdigest()


def split_files(
  files: list[str], root: str, sets: list[str], fraction: float, seed: int
) -> dict[str, list[str]]:
  """Assigns files to sets by a seeded hash of their path (stable, disjoint).

  Every set other than 'train' gets max(1, round(fraction * n)) files; the
  rest go to 'train'.
  """
  ranked = sorted(files, key=lambda f: _rank(f, root, seed))
  out, start = {}, 0
  for name in sets:
    if name == 'train':
      continue
    k = max(1, int(round(fraction * len(files))))
    out[name] = ranked[start : start + k]
    start += k
  out['train'] = ranked[start:]
  return out


class _Reader:
  """Reads, resamples and caches files (up to ~512 MB of samples)."""

  def __init__(self, sr: int):
    self.sr, self.cache, self.size = sr, {}, 0

  def __call__(self, path: str) -> np.ndarray:
    if path not in self.cache:
      x, _ = audio_io.read_audio(path, self.sr, mono='mix')
      if self.size + x.nbytes < 512 * 2**20:
        self.cache[path] = x
        self.size += x.nbytes
      return x
    return self.cache[path]


class _CleanStream:
  """Speech files in seeded order, pass after pass, skipping quiet ones."""

  def __init__(self, files, reader, rng, threshold, skipped):
    self.files, self.read, self.rng = files, reader, rng
    self.threshold, self.skipped = threshold, skipped
    self.order, self.pos, self.rejected = [], 0, set()

  def next(self) -> tuple[np.ndarray, str]:
    for _ in range(_MAX_SKIPS):
      if self.pos >= len(self.order):
        self.order = list(self.rng.permutation(len(self.files)))
        self.pos = 0
      path = self.files[self.order[self.pos]]
      self.pos += 1
      if path in self.rejected:
        continue
      x = self.read(path)
      if mixing.activity(x, self.read.sr) >= self.threshold and np.any(x):
        return x, path
      self.rejected.add(path)
      self.skipped.append(path)
      if len(self.rejected) == len(self.files):
        break
    raise ValueError(
      f'Every speech file was skipped as less active than '
      f'--activity_threshold={self.threshold} (or silent); lower it.'
    )


def _fill(first, pull, n: int, gap: int):
  """Concatenates pulled signals with `gap` zeros until `n` samples."""
  parts, names, total = [], [], 0
  item = first
  while True:
    x, name = item
    parts.append(x)
    names.append(name)
    total += len(x)
    if total >= n:
      break
    parts.append(np.zeros(gap, np.float32))
    total += gap
    item = pull()
  return np.concatenate(parts)[:n], names


def _noise_clip(files, reader, rng, n, gap, threshold, skipped):
  """A noise clip from random files (random start), concatenated if short."""

  def pull():
    for _ in range(_MAX_SKIPS):
      path = files[int(rng.integers(len(files)))]
      x = reader(path)
      if len(x) > n:
        start = int(rng.integers(0, len(x) - n + 1))
        x = x[start : start + n]
      if np.any(x) and mixing.activity(x, reader.sr) >= threshold:
        return x, path
      skipped.append(path)
    raise ValueError(
      'Noise files are silent or below --noise_activity_threshold.'
    )

  return _fill(pull(), pull, n, gap)


def _stem(paths: list[str]) -> str:
  stem = os.path.splitext(os.path.basename(paths[0]))[0]
  return re.sub(r'[^A-Za-z0-9-]+', '-', stem)[:40] or 'x'


def _draw(rng, lo, hi, continuous):
  if continuous:
    return float(rng.uniform(lo, hi))
  return float(rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1))


def _fmt(v: float, continuous: bool) -> str:
  return f'{v:.1f}' if continuous else f'{int(round(v))}'


def synthesize_set(args, name, folder, clean_files, noise_files, log):
  """Writes one set; returns its metadata rows."""
  sr = args.sample_rate
  n = int(round(args.clip_seconds * sr))
  gap = int(round(args.silence_seconds * sr))
  seconds = getattr(args, dict((s, h) for s, _, h in SETS)[name]) * 3600
  count = max(1, int(round(seconds / args.clip_seconds)))
  seq = np.random.SeedSequence(args.seed, spawn_key=(_SPLIT_CODES[name],))
  clean_rng, noise_rng, mix_rng = (
    np.random.default_rng(s) for s in seq.spawn(3)
  )
  reader = _Reader(sr)
  skipped = log.setdefault('skipped_files', [])
  stream = _CleanStream(
    clean_files, reader, clean_rng, args.activity_threshold, skipped
  )
  out = os.path.join(args.output_dir, folder)
  rows = []
  for k in range(count):
    clean, c_names = _fill(stream.next(), stream.next, n, gap)
    noise, n_names = _noise_clip(
      noise_files,
      reader,
      noise_rng,
      n,
      gap,
      args.noise_activity_threshold,
      skipped,
    )
    snr = _draw(mix_rng, *args.snr_range, args.continuous)
    level = _draw(mix_rng, *args.target_level_range, args.continuous)
    m = mixing.mix(clean, noise, snr, level, sr, clip_threshold=0.99)
    tl = level if not m.rescaled else m.level_db
    noisy_name = (
      f'{_stem(c_names)}_{_stem(n_names)}_snr{_fmt(snr, args.continuous)}'
      f'_tl{_fmt(tl, args.continuous)}_fileid_{k}.wav'
    )
    paths = {
      'noisy': os.path.join(out, 'noisy', noisy_name),
      'clean': os.path.join(out, 'clean', f'clean_fileid_{k}.wav'),
      'noise': os.path.join(out, 'noise', f'noise_fileid_{k}.wav'),
    }
    for key, x in (('noisy', m.noisy), ('clean', m.clean), ('noise', m.noise)):
      audio_io.write_audio(paths[key], x, sr)
    rows.append(
      {
        'fileid': k,
        'noisy': os.path.relpath(paths['noisy'], args.output_dir),
        'snr_db': snr,
        'target_level_db': level,
        'level_db': round(m.level_db, 4),
        'rescaled': m.rescaled,
        'clean_sources': '|'.join(c_names),
        'noise_sources': '|'.join(n_names),
      }
    )
  with open(os.path.join(out, 'metadata.csv'), 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  return rows


def main(argv: list[str] | None = None) -> int:
  """Runs the synthesizer in-process on `argv` (flags, no program name).

  Returns:
    The exit status (0).

  Raises:
    SystemExit: with a message, on bad flags or inputs.
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  if runtime.help_requested(['synthesize.py', *argv]):
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    print(f'{__doc__}\nflags:\n\n{flag_values.get_help()}')
    return 0
  return synthesize(parse_args(argv))


def synthesize(args) -> int:
  """Writes the sets described by `args` (the flags, as attributes)."""
  clean_files = audio_io.list_audio_files(args.clean_dir)
  noise_files = []
  for d in args.noise_dir:
    noise_files += audio_io.list_audio_files(d)
  if not clean_files or not noise_files:
    what = 'speech' if not clean_files else 'noise'
    raise SystemExit(
      f'No {what} audio files (WAV/FLAC/OGG/AIFF) found under '
      f'{args.clean_dir if not clean_files else args.noise_dir}.'
    )
  sets = [s for s, _, h in SETS if getattr(args, h) > 0]
  if 'train' not in sets:
    raise SystemExit('--hours must be > 0.')
  if len(clean_files) < len(sets):
    raise SystemExit(
      f'Need at least {len(sets)} speech files to keep {sets} disjoint; '
      f'found {len(clean_files)}.'
    )
  clean_split = split_files(
    clean_files, args.clean_dir, sets, args.validation_fraction, args.seed
  )
  if len(noise_files) >= len(sets):
    noise_split = split_files(
      noise_files,
      os.path.commonpath(args.noise_dir),
      sets,
      args.validation_fraction,
      args.seed,
    )
  else:
    warnings.warn(
      f'Only {len(noise_files)} noise files: all sets share them.',
      stacklevel=1,
    )
    noise_split = {s: noise_files for s in sets}
  for name, folder, _ in SETS:
    path = os.path.join(args.output_dir, folder)
    if name in sets and os.path.isdir(path) and os.listdir(path):
      if not args.overwrite:
        raise SystemExit(f'{path} exists and is not empty; use --overwrite.')
      import shutil

      shutil.rmtree(path)
  log = {'arguments': vars(args), 'sets': {}}
  for name, folder, _ in SETS:
    if name not in sets:
      continue
    rows = synthesize_set(
      args, name, folder, clean_split[name], noise_split[name], log
    )
    log['sets'][name] = {
      'clips': len(rows),
      'speech_files': len(clean_split[name]),
      'noise_files': len(noise_split[name]),
      'rescaled_to_avoid_clipping': sum(r['rescaled'] for r in rows),
    }
    print(f'{folder}: {len(rows)} clips of {args.clip_seconds:g} s')
  log['skipped_files'] = sorted(set(log.get('skipped_files', [])))
  with open(os.path.join(args.output_dir, 'synthesis_log.json'), 'w') as f:
    json.dump(log, f, indent=1, default=str)
  return 0


def _app_main(argv: list[str]) -> None:
  """`app.run` entry: the flags are parsed into `flags.FLAGS`."""
  if len(argv) > 1:
    sys.exit(_unexpected(argv[1:]))
  sys.exit(synthesize(_namespace(flags.FLAGS)))


if __name__ == '__main__':
  define_flags(flags.FLAGS)
  app.run(_app_main, flags_parser=runtime.parse_flags)
