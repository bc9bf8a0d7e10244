r"""Scores folders of enhanced audio against clean references.

  python launch/score.py --reference=DIR --estimate=DIR [--noisy=DIR] \
      [--metrics=si_snr,si_snri,pesq_wb,stoi] [--match=auto|name|fileid] \
      [--per_file] [--json] [--num_workers=N] [--resample] [--strict]

Files (wav, flac, ogg, aiff; searched recursively) are paired by name:

* `name`: the same relative path without extension (`a/x.wav` <-> `a/x.flac`);
* `fileid`: the same `fileid_<N>` token, as the Intel N-DNS challenge pairs
  `noisy/..._fileid_12.wav` with `clean/clean_fileid_12.wav`;
* `auto` (default): by name, else by `fileid`.

Every estimate without a reference (and reference without an estimate, and
missing noisy file when `--noisy` is given) is listed on stderr and counted;
`--strict` turns that into exit status 1. The summary gives mean, standard
deviation and count of each metric over the matched files; metrics that fail
on a file (e.g. PESQ finds no speech) are left out of the mean, counted as
`failed`, and their messages go to stderr.

Checks before scoring (exit status 2 with every offending file listed):
missing or empty folders, files libsndfile cannot open, multi-channel files
(downmix them first), empty files, and sample-rate mismatches between an
estimate (or noisy file) and its reference. A mismatch is refused unless
`--resample` is given, which resamples the estimate and noisy file to the
reference's rate (with a warning). Pairs whose lengths differ are trimmed to
the shorter one (warned). NaN/Inf samples found while reading make that file
fail (stderr, exit status 1).

Metric names are listed under `--metrics` below (they are those of
`harness.metrics.ENHANCEMENT_METRICS`). Only DNSMOS metrics may be used
without `--reference`.
Exit status: 0 scored, 1 incomplete (a file could not be read, or with
`--strict` an unmatched file or failed metric), 2 bad flags or inputs.

Audio is read with `data_pipelines.audio_io.read_audio`. From Python,
`main(['--reference=...', '--estimate=...'])` runs the tool in-process and
returns the exit status.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

import dataclasses
import functools
import json
import math
import os
import re
import sys
from collections.abc import Sequence

import numpy as np
import soundfile as sf
from absl import app, flags

from data_pipelines import audio_io
from harness import metrics, pools, runtime

DEFAULT_METRICS = 'si_snr,pesq_wb,stoi'
FILEID = re.compile(r'fileid_(\d+)')


class ScoreError(Exception):
  """A problem with the inputs; the message says what to fix."""


@dataclasses.dataclass
class Pair:
  """One matched example."""

  key: str
  estimate: str
  reference: str | None
  noisy: str | None = None
  sample_rate: int = 0
  resample: bool = False


# ----------------------------------------------------------------- matching


def _name_key(path: str, root: str) -> str:
  return os.path.splitext(os.path.relpath(path, root))[0]


def _fileid(path: str) -> str | None:
  found = FILEID.findall(os.path.basename(path))
  return found[-1] if found else None


def _list(folder: str, what: str) -> list[str]:
  if not os.path.exists(folder):
    raise ScoreError(f'--{what} folder does not exist: {folder}')
  if not os.path.isdir(folder):
    raise ScoreError(f'--{what} is not a folder: {folder}')
  files = audio_io.list_audio_files(folder)
  if not files:
    raise ScoreError(
      f'--{what} folder {folder} has no audio files '
      f'({", ".join(audio_io.AUDIO_EXTENSIONS)}).'
    )
  return files


class _Index:
  """Looks up files of one folder by name and by fileid."""

  def __init__(self, folder: str, files: list[str], what: str, mode: str):
    self.what = what
    self.by_name = {_name_key(f, folder): f for f in files}
    self.by_id: dict[str, str] = {}
    dupes: dict[str, list[str]] = {}
    if mode in ('fileid', 'auto'):
      for f in files:
        fid = _fileid(f)
        if fid is None:
          continue
        if fid in self.by_id:
          dupes.setdefault(fid, [self.by_id[fid]]).append(f)
        self.by_id[fid] = f
    self.ambiguous = set(dupes)
    if dupes and mode == 'fileid':
      listing = '; '.join(f'fileid_{k}: {v}' for k, v in sorted(dupes.items()))
      raise ScoreError(f'Ambiguous fileid in --{what}: {listing}')
    self.used: set[str] = set()

  def find(self, name: str, fid: str | None, mode: str) -> str | None:
    found = None
    if mode in ('name', 'auto'):
      found = self.by_name.get(name)
    if found is None and mode in ('fileid', 'auto') and fid is not None:
      if fid not in self.ambiguous:
        found = self.by_id.get(fid)
    if found is not None:
      self.used.add(found)
    return found

  def unused(self) -> list[str]:
    return sorted(set(self.by_name.values()) - self.used)


def match(
  estimate_dir: str,
  reference_dir: str | None,
  noisy_dir: str | None,
  mode: str = 'auto',
) -> tuple[list[Pair], dict[str, list[str]]]:
  """Pairs estimate files with reference (and noisy) files.

  Args:
    estimate_dir: folder of estimates (drives the pairing).
    reference_dir: folder of clean references, or None (DNSMOS only).
    noisy_dir: folder of noisy inputs, or None.
    mode: 'auto', 'name' or 'fileid'.

  Returns:
    `(pairs, unmatched)` with `unmatched` = `{'estimate': [...],
    'reference': [...], 'noisy': [...]}` (paths).
  """
  est_files = _list(estimate_dir, 'estimate')
  refs = noisy = None
  if reference_dir is not None:
    refs = _Index(
      reference_dir, _list(reference_dir, 'reference'), 'reference', mode
    )
  if noisy_dir is not None:
    noisy = _Index(noisy_dir, _list(noisy_dir, 'noisy'), 'noisy', mode)
  pairs, lost = [], {'estimate': [], 'reference': [], 'noisy': []}
  for path in est_files:
    name, fid = _name_key(path, estimate_dir), _fileid(path)
    ref = refs.find(name, fid, mode) if refs else None
    if refs and ref is None:
      lost['estimate'].append(path)
      continue
    noi = noisy.find(name, fid, mode) if noisy else None
    if noisy and noi is None:
      lost['noisy'].append(path)
      continue
    pairs.append(Pair(name, path, ref, noi))
  if refs:
    lost['reference'] = refs.unused()
  return pairs, lost


# ------------------------------------------------------------------ checks


def _info(path: str):
  try:
    return sf.info(path)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise ScoreError(f'{path}: cannot be read as audio ({e}).') from e


def check_headers(pairs: list[Pair], allow_resample: bool) -> list[str]:
  """Validates channel counts, lengths and rates from the file headers.

  Sets `Pair.sample_rate` (the reference's, else the estimate's) and
  `Pair.resample`.

  Returns:
    Warnings (one line each).

  Raises:
    ScoreError: listing every problem found.
  """
  problems, notes = [], []
  for p in pairs:
    infos = {}
    for role in ('estimate', 'reference', 'noisy'):
      path = getattr(p, role)
      if path is None:
        continue
      try:
        info = _info(path)
      except ScoreError as e:
        problems.append(str(e))
        continue
      infos[role] = info
      if info.channels != 1:
        problems.append(
          f'{path}: {info.channels} channels; only mono files are scored. '
          f'Downmix first (e.g. `sox {path} -c 1 out.wav`).'
        )
      if info.frames == 0:
        problems.append(f'{path}: empty (0 samples).')
    if not infos:
      continue
    base = infos.get('reference', infos.get('estimate'))
    if base is None:
      continue
    p.sample_rate = int(base.samplerate)
    for role in ('estimate', 'noisy'):
      info = infos.get(role)
      if info is None or info.samplerate == p.sample_rate:
        continue
      if allow_resample:
        p.resample = True
        notes.append(
          f'warning: resampling {getattr(p, role)} from {info.samplerate} '
          f'to {p.sample_rate} Hz (the reference rate).'
        )
      else:
        problems.append(
          f'{getattr(p, role)}: {info.samplerate} Hz but its reference '
          f'{p.reference} is {p.sample_rate} Hz. Resample the files or '
          'pass --resample.'
        )
  if problems:
    raise ScoreError(
      f'{len(problems)} problem(s) with the input files:\n  '
      + '\n  '.join(problems)
    )
  return notes


# ----------------------------------------------------------------- scoring


def _read(path: str | None, rate: int, resample: bool) -> np.ndarray | None:
  if path is None:
    return None
  x, _ = audio_io.read_audio(path, rate if resample else None, mono='error')
  return np.asarray(x, np.float64)


def score_pair(pair: Pair, names: Sequence[str]) -> dict:
  """Reads one pair and computes its metrics (runs in worker processes).

  Returns:
    `{'key', 'estimate', 'scores', 'errors', 'notes'}`.
  """
  out = {
    'key': pair.key,
    'estimate': pair.estimate,
    'scores': {},
    'errors': {},
    'notes': [],
  }
  try:
    est = _read(pair.estimate, pair.sample_rate, pair.resample)
    ref = _read(pair.reference, pair.sample_rate, pair.resample)
    noisy = _read(pair.noisy, pair.sample_rate, pair.resample)
  except (audio_io.AudioError, FileNotFoundError) as e:
    out['errors']['read'] = str(e)
    out['scores'] = {n: math.nan for n in names}
    return out
  signals = [x for x in (est, ref, noisy) if x is not None]
  length = min(len(x) for x in signals)
  if any(len(x) != length for x in signals):
    out['notes'].append(
      f'warning: {pair.key}: lengths differ '
      f'({", ".join(str(len(x)) for x in signals)} samples); trimmed to '
      f'{length}.'
    )
  est, ref, noisy = (
    None if x is None else x[:length] for x in (est, ref, noisy)
  )
  out['scores'] = metrics.compute_metrics(
    names,
    est,
    ref,
    noisy,
    pair.sample_rate,
    on_error='nan',
    errors=out['errors'],
  )
  return out


def run(pairs: list[Pair], names: Sequence[str], num_workers: int) -> list:
  """`score_pair` over all pairs, in `num_workers` spawned processes."""
  if num_workers <= 1 or len(pairs) <= 1:
    return [score_pair(p, names) for p in pairs]
  with pools.process_pool(num_workers, metrics.single_thread_worker) as pool:
    return list(pool.map(score_pair, pairs, [names] * len(pairs)))


# ------------------------------------------------------------------ output


def _fmt(x: float) -> str:
  return 'nan' if not math.isfinite(x) else f'{x:.4f}'


def table(results: list[dict], names: Sequence[str], per_file: bool) -> str:
  """A plain-text table: optional per-file rows, then mean/std/count."""
  lines = []
  if per_file:
    width = max([len(r['key']) for r in results] + [4])
    lines.append('file'.ljust(width) + ''.join(f'{n:>12}' for n in names))
    for r in results:
      lines.append(
        r['key'].ljust(width)
        + ''.join(f'{_fmt(r["scores"][n]):>12}' for n in names)
      )
    lines.append('')
  summary = metrics.summarize([r['scores'] for r in results])
  width = max(len(n) for n in names + ['metric'])
  lines.append(
    'metric'.ljust(width) + f'{"mean":>12}{"std":>12}{"count":>8}{"failed":>8}'
  )
  for n in names:
    s = summary[n]
    lines.append(
      n.ljust(width) + f'{_fmt(s["mean"]):>12}{_fmt(s["std"]):>12}'
      f'{s["count"]:>8}{s["failed"]:>8}'
    )
  return '\n'.join(lines)


def _json_safe(x):
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if isinstance(x, dict):
    return {k: _json_safe(v) for k, v in x.items()}
  if isinstance(x, list):
    return [_json_safe(v) for v in x]
  return x


def report(results, names, lost, per_file: bool) -> dict:
  """The JSON report (NaN written as null)."""
  out = {
    'metrics': list(names),
    'matched': len(results),
    'summary': metrics.summarize([r['scores'] for r in results]),
    'unmatched': {k: len(v) for k, v in lost.items()},
    'unmatched_files': lost,
    'failures': {r['key']: r['errors'] for r in results if r['errors']},
  }
  if per_file:
    out['per_file'] = [
      {'file': r['key'], 'estimate': r['estimate'], **r['scores']}
      for r in results
    ]
  return _json_safe(out)


# -------------------------------------------------------------------- main


def define_flags(flag_values: flags.FlagValues) -> None:
  """Defines the command-line flags (see the module docstring) on `flag_values`.

  The command line defines them on the global `flags.FLAGS`; `main` on a
  private `FlagValues`, so the tool can run in-process next to other tools.
  """
  fv = {'flag_values': flag_values}
  flags.DEFINE_string(
    'reference',
    None,
    'Folder of clean references; required unless every metric is DNSMOS.',
    **fv,
  )
  flags.DEFINE_string(
    'estimate', None, 'Required. Folder of enhanced files to score.', **fv
  )
  flags.DEFINE_string(
    'noisy', None, 'Folder of noisy inputs (needed for si_snri, si_sdri).', **fv
  )
  flags.DEFINE_list(
    'metrics',
    None,
    f'Comma-separated metric names (default {DEFAULT_METRICS}, plus si_snri '
    f'with --noisy); from: {", ".join(metrics.ENHANCEMENT_METRICS)}.',
    **fv,
  )
  flags.DEFINE_enum(
    'match',
    'auto',
    ['auto', 'name', 'fileid'],
    'How files are paired: by relative name, by the N-DNS fileid_<N> token, '
    'or auto (name, else fileid).',
    **fv,
  )
  flags.DEFINE_bool('per_file', False, 'Also print one row per file.', **fv)
  flags.DEFINE_bool(
    'json', False, 'Print one JSON object instead of a table.', **fv
  )
  flags.DEFINE_integer(
    'num_workers',
    1,
    'Processes computing the metrics (0 or 1: this process).',
    lower_bound=0,
    **fv,
  )
  flags.DEFINE_bool(
    'resample',
    False,
    'Resample estimates/noisy files to the reference rate instead of refusing '
    'a sample-rate mismatch.',
    **fv,
  )
  flags.DEFINE_bool(
    'strict',
    False,
    'Exit 1 if any file is unmatched or any metric failed.',
    **fv,
  )
  flags.mark_flags_as_required(['estimate'], flag_values=flag_values)


def _metric_names(args) -> list[str]:
  raw = args.metrics
  if raw is None:
    raw = DEFAULT_METRICS.split(',') + (['si_snri'] if args.noisy else [])
  names = [n.strip() for n in raw if n.strip()]
  unknown = [n for n in names if n not in metrics.ENHANCEMENT_METRICS]
  if unknown or not names:
    raise ScoreError(
      f'Unknown metric(s) {unknown or raw!r}; choose from '
      f'{", ".join(metrics.ENHANCEMENT_METRICS)}.'
    )
  intrusive = [n for n in names if n not in metrics.NON_INTRUSIVE]
  if intrusive and args.reference is None:
    raise ScoreError(f'--reference is required for {intrusive}.')
  need_noisy = [n for n in names if n in metrics.NEEDS_NOISY]
  if need_noisy and args.noisy is None:
    raise ScoreError(f'--noisy is required for {need_noisy}.')
  return list(dict.fromkeys(names))


def _warn_unmatched(lost: dict[str, list[str]]) -> None:
  labels = {
    'estimate': 'estimate(s) without a reference',
    'reference': 'reference(s) without an estimate',
    'noisy': 'estimate(s) without a noisy file',
  }
  for role, files in lost.items():
    if files:
      print(f'unmatched: {len(files)} {labels[role]}:', file=sys.stderr)
      for f in files:
        print(f'  {f}', file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the tool in-process on `argv` (flags, no program name).

  Args:
    argv: e.g. `['--reference=clean', '--estimate=enhanced', '--json']`;
      None: `sys.argv[1:]`.

  Returns:
    The exit status (0 ok, 1 incomplete, 2 bad flags or inputs).
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  if runtime.help_requested(['score.py', *argv]):
    print(f'{__doc__}\nflags:\n\n{flag_values.get_help()}')
    return 0
  try:
    rest = flag_values(['score.py', *argv])
  except flags.Error as e:
    print(runtime.flag_error_message(e), file=sys.stderr)
    return 2
  if len(rest) > 1:
    print(_unexpected(rest[1:]), file=sys.stderr)
    return 2
  return score(flag_values)


def _unexpected(args: list[str]) -> str:
  return (
    f'error: unexpected arguments {args}; score.py takes only flags '
    '(e.g. --estimate=DIR). Pass --help to see the flags.'
  )


def score(args) -> int:
  """Scores with parsed flags `args` (attributes named as the flags).

  Returns:
    The exit status (0 ok, 1 incomplete, 2 bad inputs).
  """
  try:
    names = _metric_names(args)
    pairs, lost = match(args.estimate, args.reference, args.noisy, args.match)
    if not pairs:
      _warn_unmatched(lost)
      raise ScoreError(
        'No estimate could be paired with a reference (see the unmatched '
        'files above); check the folders and --match.'
      )
    for note in check_headers(pairs, args.resample):
      print(note, file=sys.stderr)
  except ScoreError as e:
    print(f'score.py: error: {e}', file=sys.stderr)
    return 2
  _warn_unmatched(lost)
  results = run(pairs, names, args.num_workers)
  failed = 0
  for r in results:
    for note in r['notes']:
      print(note, file=sys.stderr)
    for metric, msg in r['errors'].items():
      failed += 1
      print(f'failed: {r["key"]}: {metric}: {msg}', file=sys.stderr)
  if args.json:
    print(json.dumps(report(results, names, lost, args.per_file), indent=2))
  else:
    print(table(results, names, args.per_file))
    print(
      f'\n{len(results)} matched, '
      + ', '.join(f'{len(v)} unmatched {k}' for k, v in lost.items())
    )
  unmatched = sum(len(v) for v in lost.values())
  read_failed = any('read' in r['errors'] for r in results)
  if read_failed or (args.strict and (unmatched or failed)):
    return 1
  return 0


def _app_main(argv: list[str]) -> None:
  """`app.run` entry: the flags are parsed into `flags.FLAGS`."""
  if len(argv) > 1:
    print(_unexpected(argv[1:]), file=sys.stderr)
    sys.exit(2)
  sys.exit(score(flags.FLAGS))


if __name__ == '__main__':
  define_flags(flags.FLAGS)
  app.run(
    _app_main,
    flags_parser=functools.partial(runtime.parse_flags, error_status=2),
  )
