"""Builds the offline corpus: real and TTS speech plus noise from Debian packages.

`build()` is what `launch/build_corpus.py` runs. The corpus folder holds

  clips/<source>/...flac       16 kHz mono 16-bit FLAC, one per usable file
                               or TTS utterance (trimmed of leading and
                               trailing silence)
  journal.jsonl                one line per finished conversion job (resume)
  manifest.csv                 one row per clip: path, kind (speech/noise),
                               origin (real/tts), split, speaker, group,
                               language, category, duration, source package,
                               original file, licence, TTS text
  skipped.csv                  inputs left out, with the reason
  packed/                      per split, every clip concatenated into one
                               int16 .npy (memory-mapped for training),
                               index.json (offsets, speakers) and the room
                               impulse responses (<split>_rirs.npy)
  stats.json                   hours, speakers and clips per split
  COMPLETE.json                written last: version, manifest checksum,
                               stats; readers refuse a corpus without it

Resuming: every clip is written to a temporary name and renamed, and a job
counts as done only once its journal line is written after the rename, so
rerunning the command after an interruption converts only what is missing
(a clip without its journal line is converted again). `COMPLETE.json` is
deleted before anything that it vouches for changes and written after
everything else, so an interrupted build is never read as complete.

Splits: clips are assigned by speaker group (see `offline_sources`), so
train, validation and test never share a speaker; real and TTS groups are
assigned separately, each split getting about `fractions` of each one's
speech. Noise files are split per file within each noise source.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import soundfile as sf
from absl import logging

from data_pipelines import audio_io, mixing, offline_sources, rir
from data_pipelines.offline_sources import NOISE, REAL, SPEECH, TTS
from harness import pools

VERSION = 1
SAMPLE_RATE = 16000
SPLITS = ('train', 'validation', 'test')
MARKER = 'COMPLETE.json'
MANIFEST = 'manifest.csv'
JOURNAL = 'journal.jsonl'
MANIFEST_FIELDS = (
  'id',
  'path',
  'kind',
  'origin',
  'split',
  'speaker',
  'group',
  'language',
  'category',
  'duration_s',
  'orig_sample_rate',
  'source',
  'package',
  'original',
  'licence',
  'text',
)
MIN_SPEECH_SECONDS = 0.2
_UTTERANCES_PER_JOB = 12
_CHARS_PER_SECOND = 14.0  # read speech, for sizing the TTS text
# flite's default mean F0 per voice (Hz); utterances shift it +-3 semitones.
_FLITE_F0 = {'awb': 110.0, 'rms': 105.0, 'slt': 175.0, 'kal16': 110.0}


class BuildError(RuntimeError):
  """The corpus cannot be built as asked; the message says what to do."""


class MissingPackagesError(offline_sources.SourceError):
  """Debian packages (or tools) the build needs are not installed.

  Attributes:
    packages: the missing packages, sorted.
  """

  def __init__(self, message: str, packages: Sequence[str]):
    super().__init__(message)
    self.packages = sorted(set(packages))


class InstallError(MissingPackagesError):
  """The installer failed for `packages`."""


def check_or_install(
  opts: BuildOptions,
  install: Callable[[list[str]], int] | None = None,
  rounds: int = 3,
) -> None:
  """`check_sources`, installing what is missing when `install` is given.

  Checks again after each installation, up to `rounds` times: a tool such as
  ffmpeg is only found to be needed once the sources that use it are there.

  Args:
    opts: the build options (`check_sources`).
    install: `install(packages) -> exit status`, or None to only check.
    rounds: installations tried at most.

  Raises:
    MissingPackagesError: still missing (or `install` is None).
    InstallError: `install` returned non-zero.
  """
  for attempt in range(rounds + 1):
    try:
      check_sources(opts)
      return
    except MissingPackagesError as e:
      if install is None or attempt == rounds:
        raise
      if install(list(e.packages)) != 0:
        raise InstallError(str(e), e.packages) from e


# ----------------------------------------------------------------------------
# Decoding and cleaning.


def _ffmpeg(path: str, fmt: str, sr: int) -> np.ndarray:
  exe = offline_sources.tool_path('ffmpeg')
  if exe is None:
    raise MissingPackagesError(
      f'ffmpeg is needed to decode {fmt} files such as {path}; '
      f'install it: {offline_sources.apt_line(["ffmpeg"])}',
      ['ffmpeg'],
    )
  cmd = [
    exe,
    '-nostdin',
    '-hide_banner',
    '-loglevel',
    'error',
    '-f',
    fmt,
    '-i',
    path,
    '-ac',
    '1',
    '-ar',
    str(sr),
    '-f',
    'f32le',
    '-',
  ]
  proc = subprocess.run(cmd, capture_output=True, check=False, timeout=120)
  if proc.returncode != 0:
    msg = proc.stderr.decode(errors='replace').strip().splitlines()
    raise audio_io.AudioError(
      f'ffmpeg cannot decode {path}: {msg[-1] if msg else proc.returncode}'
    )
  return np.frombuffer(proc.stdout, np.float32).copy()


def decode(path: str, decoder: str) -> tuple[np.ndarray, int]:
  """Reads one source file as mono float32.

  Args:
    path: the file.
    decoder: 'sndfile' (WAV/FLAC/Ogg), 'g722' or 'gsm' (ffmpeg) or 'raw16k'
      (headerless 16-bit little-endian 16 kHz).

  Returns:
    (x, sr): real (T,) float32 at the file's own rate `sr` (Hz).

  Raises:
    audio_io.AudioError: the file is empty, corrupt or non-finite.
    MissingPackagesError: ffmpeg is needed and missing.
  """
  if os.path.getsize(path) == 0:
    raise audio_io.AudioError(f'{path} is empty (0 bytes).')
  if decoder == 'sndfile':
    try:
      x, sr = sf.read(path, dtype='float32', always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
      raise audio_io.AudioError(f'cannot read {path}: {e}') from e
    x = x.mean(axis=1)
  elif decoder in ('g722', 'gsm'):
    sr = offline_sources.DECODERS[decoder]
    x = _ffmpeg(path, decoder, sr)
  elif decoder == 'raw16k':
    sr = 16000
    data = np.fromfile(path, dtype='<i2')
    x = audio_io.from_int16(data)
  else:
    raise ValueError(f'Unknown decoder {decoder!r}.')
  if x.size == 0:
    raise audio_io.AudioError(f'{path} decodes to 0 samples.')
  if not np.all(np.isfinite(x)):
    raise audio_io.AudioError(f'{path} contains NaN/Inf samples.')
  return np.ascontiguousarray(x, np.float32), int(sr)


def trim_silence(
  x: np.ndarray, sr: int, *, floor_db: float = 50.0, margin: float = 0.1
) -> np.ndarray:
  """Cuts leading and trailing silence (10 ms frames `floor_db` below peak)."""
  win = max(1, sr // 100)
  n = len(x) // win
  if n == 0:
    return x[:0]
  e = np.mean(np.asarray(x[: n * win], np.float64).reshape(n, win) ** 2, 1)
  db = 10 * np.log10(e + 1e-12)
  active = np.flatnonzero((db > db.max() - floor_db) & (db > -80.0))
  if active.size == 0:
    return x[:0]
  pad = int(margin * sr)
  start = max(0, active[0] * win - pad)
  end = min(len(x), (active[-1] + 1) * win + pad)
  return x[start:end]


def prepare_speech(x: np.ndarray, sr: int) -> np.ndarray:
  """Resamples to 16 kHz, removes DC and silent ends, guards the peak.

  Raises:
    audio_io.AudioError: nothing usable is left (silent or too short).
  """
  x = audio_io.resample(np.asarray(x, np.float32), sr, SAMPLE_RATE)
  x = x - np.mean(x)
  if float(np.max(np.abs(x), initial=0.0)) < 1e-4:
    raise audio_io.AudioError('silent (peak below -80 dBFS)')
  x = trim_silence(x, SAMPLE_RATE)
  if len(x) < MIN_SPEECH_SECONDS * SAMPLE_RATE:
    raise audio_io.AudioError(
      f'shorter than {MIN_SPEECH_SECONDS} s once silence is trimmed'
    )
  if mixing.activity(x, SAMPLE_RATE) < 0.1:
    raise audio_io.AudioError('no speech activity')
  peak = float(np.max(np.abs(x)))
  if peak > 0.99:
    x = x * (0.99 / peak)
  return x.astype(np.float32)


def prepare_noise(x: np.ndarray, sr: int) -> np.ndarray:
  """Resamples to 16 kHz, removes DC, guards the peak; refuses silence."""
  x = audio_io.resample(np.asarray(x, np.float32), sr, SAMPLE_RATE)
  x = x - np.mean(x)
  if float(np.max(np.abs(x), initial=0.0)) < 1e-4:
    raise audio_io.AudioError('silent (peak below -80 dBFS)')
  x = trim_silence(x, SAMPLE_RATE, floor_db=70.0, margin=0.02)
  if len(x) < 0.05 * SAMPLE_RATE:
    raise audio_io.AudioError('shorter than 50 ms')
  peak = float(np.max(np.abs(x)))
  if peak > 0.99:
    x = x * (0.99 / peak)
  return x.astype(np.float32)


def write_clip(path: str, x: np.ndarray) -> None:
  """Writes a 16 kHz FLAC atomically (temporary name, then rename)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.partial-{uuid.uuid4().hex[:8]}'
  try:
    sf.write(tmp, x, SAMPLE_RATE, format='FLAC', subtype='PCM_16')
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


# ----------------------------------------------------------------------------
# Jobs.


@dataclasses.dataclass(frozen=True)
class Job:
  """One unit of conversion work: a source file, or a batch of utterances.

  Attributes:
    key: unique id; the journal's key.
    kind: 'speech' or 'noise'.
    origin: 'real' or 'tts'.
    source: source or voice name.
    package: Debian package of the input.
    licence: licence of the input.
    speaker: speaker id ('' for noise).
    group: split group.
    language: language of the speech.
    category: 'prompt', 'dialogue', 'read', 'tts', or the noise category.
    outputs: clip paths relative to the corpus folder.
    inputs: file jobs: ((path, decoder),); TTS jobs: the texts.
    engine: TTS engine ('' for files).
    voice: TTS voice argument.
    params: per-utterance TTS parameters (dicts), aligned with `inputs`.
    fingerprint: hash of everything that determines the outputs.
  """

  key: str
  kind: str
  origin: str
  source: str
  package: str
  licence: str
  speaker: str
  group: str
  language: str
  category: str
  outputs: tuple[str, ...]
  inputs: tuple
  engine: str = ''
  voice: str = ''
  params: tuple = ()
  fingerprint: str = ''


def _hash(*parts) -> str:
  blob = json.dumps(parts, sort_keys=True, default=str).encode()
  return hashlib.sha1(blob).hexdigest()[:16]


def _safe(rel: str) -> str:
  return re.sub(r'[^A-Za-z0-9._/-]+', '_', rel)


def file_jobs(
  sources: Sequence[offline_sources.FileSource], source_root: str = ''
) -> list[Job]:
  """One job per file of `sources` (which must all be present)."""
  labeller = offline_sources.Labeller(source_root)
  jobs = []
  for s in sources:
    root = offline_sources.rooted(source_root, s.root)
    for path in offline_sources.find_files(s, source_root):
      fmt = offline_sources.format_of(s, path)
      rel = os.path.relpath(path, root)
      speaker, group, category = labeller(s, path)
      st = os.stat(path)
      out = f'clips/{s.name}/{_safe(os.path.splitext(rel)[0])}.flac'
      jobs.append(
        Job(
          key=f'{s.name}/{rel}',
          kind=s.kind,
          origin=REAL,
          source=s.name,
          package=fmt.package,
          licence=s.licence,
          speaker=speaker,
          group=group,
          language=s.language,
          category=category,
          outputs=(out,),
          inputs=((path, fmt.decoder),),
          fingerprint=_hash(VERSION, path, st.st_size, int(st.st_mtime)),
        )
      )
  return jobs


def read_sentences(paths: Sequence[str]) -> list[str]:
  """Sentences of 20-200 characters from text files, in file order.

  Lines are joined, whitespace collapsed and the text split after '.', '!'
  or '?'. Sentences mostly in capitals (licence disclaimers), with URLs or
  with few letters are dropped.
  """
  out = []
  for path in paths:
    with open(path, encoding='utf-8', errors='replace') as f:
      text = re.sub(r'\s+', ' ', f.read())
    for s in re.split(r'(?<=[.!?])\s+', text):
      s = s.strip(' "\'')
      letters = [c for c in s if c.isalpha()]
      if not 20 <= len(s) <= 200 or len(letters) < 0.7 * len(
        s.replace(' ', '')
      ):
        continue
      if sum(c.isupper() for c in letters) > 0.3 * len(letters):
        continue
      if '://' in s or '@' in s:
        continue
      out.append(s)
  return out


def _utterance_params(voice: offline_sources.TtsVoice, rng) -> dict:
  stretch = round(float(rng.uniform(0.85, 1.2)), 3)
  semitones = float(rng.uniform(-3.0, 3.0))
  if voice.engine == 'flite':
    f0 = _FLITE_F0.get(voice.voice, 110.0) * 2 ** (semitones / 12)
    return {'duration_stretch': stretch, 'f0': round(f0, 1)}
  if voice.engine == 'espeak-ng':
    return {
      'pitch': int(rng.integers(25, 76)),
      'speed': int(round(170 / stretch)),
    }
  return {'duration_stretch': stretch}


def tts_jobs(
  voices: Sequence[offline_sources.TtsVoice],
  sentences: Sequence[str],
  minutes: float,
  seed: int,
) -> list[Job]:
  """Jobs reading `minutes` (times the voice's weight) of text per voice.

  Each voice starts at its own place in `sentences` (a hash of its name),
  so voices mostly read different text; utterances are one or two
  sentences, and each has its own pitch and rate (see `_utterance_params`).
  """
  if not sentences:
    raise BuildError('No sentences to read for the TTS voices.')
  jobs = []
  for v in voices:
    budget = minutes * v.weight * 60 * _CHARS_PER_SECOND
    start = int(_hash(seed, v.name), 16) % len(sentences)
    rng = np.random.default_rng(int(_hash(seed, v.name, 'params'), 16))
    texts, chars, i = [], 0.0, start
    while chars < budget and len(texts) < 100_000:
      text = sentences[i % len(sentences)]
      i += 1
      if len(text) < 80 and rng.random() < 0.5:
        text = f'{text} {sentences[i % len(sentences)]}'
        i += 1
      texts.append(text)
      chars += len(text)
    params = [_utterance_params(v, rng) for _ in texts]
    for b in range(0, len(texts), _UTTERANCES_PER_JOB):
      chunk = tuple(texts[b : b + _UTTERANCES_PER_JOB])
      prm = tuple(params[b : b + _UTTERANCES_PER_JOB])
      fp = _hash(VERSION, v.engine, v.voice, chunk, prm)
      outs = tuple(
        f'clips/tts-{v.name}/{b // _UTTERANCES_PER_JOB:04d}-{k:02d}-{fp[:6]}.flac'
        for k in range(len(chunk))
      )
      jobs.append(
        Job(
          key=f'tts-{v.name}/{b // _UTTERANCES_PER_JOB:04d}',
          kind=SPEECH,
          origin=TTS,
          source=f'tts-{v.name}',
          package=' '.join(v.packages),
          licence=v.licence,
          speaker=v.speaker,
          group=v.speaker,
          language='en',
          category='tts',
          outputs=outs,
          inputs=chunk,
          engine=v.engine,
          voice=v.voice,
          params=prm,
          fingerprint=fp,
        )
      )
  return jobs


def _scheme_string(text: str) -> str:
  return '"' + text.replace('\\', '\\\\').replace('"', '\\"') + '"'


def synthesize(job: Job, folder: str) -> list[str]:
  """Runs the TTS engine for every text of `job`; returns the WAV paths."""
  exe = offline_sources.tool_path(offline_sources.ENGINE_COMMANDS[job.engine])
  if exe is None:
    raise MissingPackagesError(
      f'{job.engine} is not installed; '
      f'install it: {offline_sources.apt_line(job.package.split())}',
      job.package.split(),
    )
  wavs = [os.path.join(folder, f'{k}.wav') for k in range(len(job.inputs))]
  if job.engine == 'festival':
    exe = offline_sources.tool_path('festival') or exe
    lines = [f'({job.voice})']
    for text, prm, wav in zip(job.inputs, job.params, wavs, strict=True):
      lines.append(
        f"(Parameter.set 'Duration_Stretch {prm['duration_stretch']})"
      )
      lines.append(
        f'(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) '
        f"{_scheme_string(wav)} 'riff)"
      )
    script = os.path.join(folder, 'job.scm')
    with open(script, 'w', encoding='utf-8') as f:
      f.write('\n'.join(lines) + '\n')
    cmds = [[exe, '--batch', script]]
  else:
    cmds = []
    for k, (text, prm) in enumerate(zip(job.inputs, job.params, strict=True)):
      txt = os.path.join(folder, f'{k}.txt')
      with open(txt, 'w', encoding='utf-8') as f:
        f.write(text + '\n')
      if job.engine == 'flite':
        cmds.append(
          [
            exe,
            '-voice',
            job.voice,
            '--setf',
            f'duration_stretch={prm["duration_stretch"]}',
            '--setf',
            f'int_f0_target_mean={prm["f0"]}',
            '-f',
            txt,
            '-o',
            wavs[k],
          ]
        )
      else:  # espeak-ng
        cmds.append(
          [
            exe,
            '-v',
            job.voice,
            '-p',
            str(prm['pitch']),
            '-s',
            str(prm['speed']),
            '-f',
            txt,
            '-w',
            wavs[k],
          ]
        )
  for cmd in cmds:
    proc = subprocess.run(cmd, capture_output=True, check=False, timeout=600)
    if proc.returncode != 0:
      err = proc.stderr.decode(errors='replace').strip()[-300:]
      raise BuildError(f'{job.engine} failed ({" ".join(cmd[:3])} ...): {err}')
  return wavs


def run_job(job: Job, corpus_dir: str) -> dict:
  """Converts one job's inputs into clips; returns its journal entry.

  Unusable inputs (empty, corrupt, silent) are reported in the entry's
  'skipped' list, not raised.
  """
  rows, skipped = [], []
  prep = prepare_speech if job.kind == SPEECH else prepare_noise
  if job.engine:
    with tempfile.TemporaryDirectory(prefix='s4jax-tts-') as tmp:
      wavs = synthesize(job, tmp)
      for k, wav in enumerate(wavs):
        original = f'{job.engine}:{job.voice} ' + json.dumps(
          job.params[k], sort_keys=True
        )
        try:
          x, sr = decode(wav, 'sndfile')
          y = prep(x, sr)
        except (audio_io.AudioError, FileNotFoundError) as e:
          skipped.append({'original': original, 'reason': str(e)})
          continue
        write_clip(os.path.join(corpus_dir, job.outputs[k]), y)
        rows.append(
          {
            'path': job.outputs[k],
            'duration_s': round(len(y) / SAMPLE_RATE, 3),
            'orig_sample_rate': sr,
            'original': original,
            'text': job.inputs[k],
          }
        )
  else:
    (path, decoder), out = job.inputs[0], job.outputs[0]
    try:
      x, sr = decode(path, decoder)
      y = prep(x, sr)
    except audio_io.AudioError as e:
      skipped.append({'original': path, 'reason': str(e)})
    else:
      write_clip(os.path.join(corpus_dir, out), y)
      rows.append(
        {
          'path': out,
          'duration_s': round(len(y) / SAMPLE_RATE, 3),
          'orig_sample_rate': sr,
          'original': path,
          'text': '',
        }
      )
  return {
    'key': job.key,
    'fingerprint': job.fingerprint,
    'rows': rows,
    'skipped': skipped,
  }


def _run_chunk(jobs: list[Job], corpus_dir: str) -> list[dict]:
  return [run_job(j, corpus_dir) for j in jobs]


def read_journal(corpus_dir: str) -> dict[str, dict]:
  """Finished jobs by key (a torn last line from a crash is ignored)."""
  path = os.path.join(corpus_dir, JOURNAL)
  out = {}
  if not os.path.exists(path):
    return out
  with open(path, encoding='utf-8') as f:
    for line in f:
      try:
        entry = json.loads(line)
      except json.JSONDecodeError:
        continue
      if isinstance(entry, dict) and 'key' in entry:
        out[entry['key']] = entry
  return out


def job_done(job: Job, entry: dict | None, corpus_dir: str) -> bool:
  """Whether `entry` (from the journal) covers `job` as it is now."""
  if not entry or entry.get('fingerprint') != job.fingerprint:
    return False
  return all(
    os.path.isfile(os.path.join(corpus_dir, r['path'])) for r in entry['rows']
  )


# ----------------------------------------------------------------------------
# Splits.


def assign_splits(
  durations: dict[str, float],
  fractions: dict[str, float],
  seed: int,
  pinned: dict[str, str] | None = None,
) -> dict[str, str]:
  """Assigns whole groups to splits.

  Groups are visited in a seeded hash order; each held-out split (in the
  order of `fractions`) takes the groups that fit, i.e. keep it within 1.5
  times its share of the total duration, until it holds its share. If no
  group fits, it takes the smallest one. At least one group stays in
  'train'.

  Args:
    durations: group -> seconds.
    fractions: held-out split -> share of the total, e.g. {'validation':
      0.1, 'test': 0.1}.
    seed: seed of the order.
    pinned: group -> split assignments to keep as given.

  Returns:
    group -> split ('train' for the rest).
  """
  pinned = {g: s for g, s in (pinned or {}).items() if g in durations}
  out = dict(pinned)
  total = sum(durations.values())
  order = sorted(
    (g for g in durations if g not in pinned), key=lambda g: _hash(seed, g)
  )
  for split, frac in fractions.items():
    if frac <= 0:
      continue
    target = frac * total
    got = sum(durations[g] for g, s in out.items() if s == split)
    for g in list(order):
      if got >= target or len(order) <= 1:
        break
      if got + durations[g] <= 1.5 * target:
        out[g] = split
        got += durations[g]
        order.remove(g)
    if got == 0 and len(order) > 1:  # every group is too big: the smallest
      g = min(order, key=lambda g: durations[g])
      out[g] = split
      order.remove(g)
  for g in order:
    out[g] = 'train'
  return out


# ----------------------------------------------------------------------------
# The build.


@dataclasses.dataclass
class BuildOptions:
  """Everything `build()` needs besides the output folder.

  Attributes:
    speech_sources: real speech sources.
    noise_sources: real noise sources.
    voices: TTS voices.
    source_root: prefix of every installed path ('' = /).
    text_files: texts the TTS voices read.
    tts_minutes: minutes of speech per TTS voice (times its weight).
    fractions: held-out split -> share of each origin's speech.
    pinned: group -> split overrides.
    num_rirs: impulse responses per split.
    rt60_range: (low, high) RT60 in seconds.
    seed: seed of splits, TTS texts and parameters, RIRs.
    workers: conversion processes (1 = in this process).
    skip_missing: build from the installed sources only.
  """

  speech_sources: Sequence[offline_sources.FileSource] = (
    offline_sources.SPEECH_SOURCES
  )
  noise_sources: Sequence[offline_sources.FileSource] = (
    offline_sources.NOISE_SOURCES
  )
  voices: Sequence[offline_sources.TtsVoice] = offline_sources.TTS_VOICES
  source_root: str = ''
  text_files: Sequence[str] = offline_sources.TEXT_FILES
  tts_minutes: float = 10.0
  fractions: dict = dataclasses.field(
    default_factory=lambda: {'validation': 0.1, 'test': 0.1}
  )
  pinned: dict = dataclasses.field(default_factory=dict)
  num_rirs: dict = dataclasses.field(
    default_factory=lambda: {'train': 400, 'validation': 50, 'test': 50}
  )
  rt60_range: tuple[float, float] = (0.1, 0.8)
  seed: int = 0
  workers: int = 2
  skip_missing: bool = False


def _needs_ffmpeg(source, source_root: str) -> bool:
  return any(
    offline_sources.format_of(source, f).decoder in ('g722', 'gsm')
    for f in offline_sources.find_files(source, source_root)
  )


def check_sources(opts: BuildOptions):
  """Which sources, voices and texts can be used; raises for missing ones.

  Returns:
    (file sources, voices, text files) that are present.

  Raises:
    MissingPackagesError: packages are missing (and not `skip_missing`),
      naming them and the apt-get command.
    offline_sources.SourceError: an installed folder holds no audio of its
      kind, or nothing at all is left to build from.
  """
  missing: dict[str, list[str]] = {}
  present = []
  for s in (*opts.speech_sources, *opts.noise_sources):
    root = offline_sources.rooted(opts.source_root, s.root)
    if not os.path.isdir(root):
      for p in s.packages:
        missing.setdefault(p, []).append(s.name)
      continue
    files = offline_sources.find_files(s, opts.source_root)
    if not files:
      exts = ', '.join(f.ext for f in s.formats)
      raise offline_sources.SourceError(
        f'{s.name}: {root} exists but holds no {s.kind} files '
        f'({exts} matching {", ".join(s.include)}). The package may be '
        'damaged or only partly installed; reinstall it with: '
        f'{offline_sources.apt_line(s.packages)} --reinstall'
      )
    have = offline_sources.present_packages(s, opts.source_root)
    for p in s.packages:  # a second format's package (e.g. en-wav) missing
      if p not in have:
        missing.setdefault(p, []).append(s.name)
    present.append(s)
  if offline_sources.tool_path('ffmpeg') is None:
    users = [s for s in present if _needs_ffmpeg(s, opts.source_root)]
    if users:
      missing.setdefault('ffmpeg', []).extend(s.name for s in users)
      present = [s for s in present if s not in users]
  voices = []
  for v in opts.voices:
    cmd = offline_sources.ENGINE_COMMANDS[v.engine]
    ok = offline_sources.tool_path(cmd) is not None
    if ok and v.engine == 'festival':
      ok = _festival_has(v.voice, opts.source_root)
    if ok:
      voices.append(v)
    else:
      for p in v.packages:
        missing.setdefault(p, []).append(v.name)
  texts = [
    offline_sources.rooted(opts.source_root, t)
    for t in opts.text_files
    if os.path.isfile(offline_sources.rooted(opts.source_root, t))
  ]
  if voices and not texts:
    missing.setdefault(offline_sources.TEXT_PACKAGE, []).append('tts text')
    voices = []
  if missing and not opts.skip_missing:
    pkgs = sorted(missing)
    needed = '; '.join(f'{p} (for {", ".join(missing[p])})' for p in pkgs)
    raise MissingPackagesError(
      f'Missing Debian packages for the offline corpus: {needed}.\n'
      f'Install them with:\n  sudo {offline_sources.apt_line(pkgs)}\n'
      'or rerun with --install (as root), or with --skip_missing to build '
      'from what is installed.',
      pkgs,
    )
  if missing:
    logging.warning(
      'Building without %s (not installed).', ', '.join(sorted(missing))
    )
  if not any(s.kind == SPEECH for s in present) and not voices:
    raise offline_sources.SourceError(
      'No speech source is installed. Install at least: sudo '
      + offline_sources.apt_line(
        [p for s in opts.speech_sources for p in s.packages]
      )
    )
  return present, voices, texts


_FESTIVAL_VOICE_DIRS = (
  '/usr/share/festival/voices',
  '/usr/lib/festival/voices',
)


def _festival_has(voice: str, source_root: str = '') -> bool:
  name = voice.removeprefix('voice_')
  for d in _FESTIVAL_VOICE_DIRS:
    d = offline_sources.rooted(source_root, d)
    if os.path.isdir(d):
      for lang in os.listdir(d):
        if os.path.isdir(os.path.join(d, lang, name)):
          return True
  return False


def _append_journal(corpus_dir: str, entries: list[dict]) -> None:
  with open(os.path.join(corpus_dir, JOURNAL), 'a', encoding='utf-8') as f:
    for e in entries:
      f.write(json.dumps(e) + '\n')
    f.flush()
    os.fsync(f.fileno())


def run_jobs(
  jobs: Sequence[Job],
  corpus_dir: str,
  workers: int,
  progress: Callable[[int, int], None] | None = None,
) -> None:
  """Runs `jobs`, appending each finished one to the journal."""
  chunks = [list(jobs[i : i + 8]) for i in range(0, len(jobs), 8)]
  done = 0
  if workers <= 1 or len(chunks) <= 1:
    for c in chunks:
      for j in c:
        _append_journal(corpus_dir, [run_job(j, corpus_dir)])
        done += 1
        if progress:
          progress(done, len(jobs))
    return
  with pools.process_pool(workers) as pool:
    futures = [pool.submit(_run_chunk, c, corpus_dir) for c in chunks]
    try:
      for fut in concurrent.futures.as_completed(futures):
        entries = fut.result()
        _append_journal(corpus_dir, entries)
        done += len(entries)
        if progress:
          progress(done, len(jobs))
    except BaseException:
      for f in futures:
        f.cancel()
      raise


def _rows(jobs: Sequence[Job], journal: dict[str, dict]):
  rows, skipped = [], []
  for job in jobs:
    entry = journal[job.key]
    for r in entry['rows']:
      rows.append(
        {
          'id': os.path.splitext(r['path'].removeprefix('clips/'))[0],
          'path': r['path'],
          'kind': job.kind,
          'origin': job.origin,
          'split': '',
          'speaker': job.speaker,
          'group': job.group,
          'language': job.language,
          'category': job.category,
          'duration_s': r['duration_s'],
          'orig_sample_rate': r['orig_sample_rate'],
          'source': job.source,
          'package': job.package,
          'original': r['original'],
          'licence': job.licence,
          'text': r['text'],
        }
      )
    for s in entry['skipped']:
      skipped.append({'source': job.source, **s})
  return rows, skipped


def split_rows(rows: list[dict], opts: BuildOptions) -> None:
  """Fills in 'split' for every row (speech by group, noise per file)."""
  for origin in (REAL, TTS):
    dur: dict[str, float] = {}
    for r in rows:
      if r['kind'] == SPEECH and r['origin'] == origin:
        dur[r['group']] = dur.get(r['group'], 0.0) + r['duration_s']
    splits = assign_splits(dur, opts.fractions, opts.seed, opts.pinned)
    for r in rows:
      if r['kind'] == SPEECH and r['origin'] == origin:
        r['split'] = splits[r['group']]
  for source in sorted({r['source'] for r in rows if r['kind'] == NOISE}):
    these = [r for r in rows if r['kind'] == NOISE and r['source'] == source]
    dur = {r['group']: r['duration_s'] for r in these}
    splits = assign_splits(dur, opts.fractions, opts.seed)
    for r in these:
      r['split'] = splits[r['group']]


def _write_csv(path: str, fields, rows) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator='\n')
  w.writeheader()
  w.writerows(rows)
  text = buf.getvalue()
  tmp = f'{path}.tmp-{uuid.uuid4().hex[:8]}'
  with open(tmp, 'w', encoding='utf-8', newline='') as f:
    f.write(text)
  os.replace(tmp, path)
  return hashlib.sha1(text.encode()).hexdigest()


def file_sha1(path: str) -> str:
  """SHA-1 of a file's bytes."""
  h = hashlib.sha1()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def _pack(corpus_dir: str, rows: list[dict], opts: BuildOptions) -> dict:
  """Writes packed/ (through a temporary folder); returns its index."""
  final = os.path.join(corpus_dir, 'packed')
  tmp = f'{final}.tmp-{uuid.uuid4().hex[:8]}'
  os.makedirs(tmp)
  index: dict = {'sample_rate': SAMPLE_RATE, 'splits': {}}
  try:
    for split in SPLITS:
      entry = {}
      for kind in (SPEECH, NOISE):
        these = [r for r in rows if r['split'] == split and r['kind'] == kind]
        clips, offsets, lengths, pos = [], [], [], 0
        for r in these:
          x, sr = sf.read(
            os.path.join(corpus_dir, r['path']), dtype='int16', always_2d=False
          )
          if sr != SAMPLE_RATE or x.ndim != 1:
            raise BuildError(f'{r["path"]}: expected 16 kHz mono, got {sr} Hz.')
          clips.append(x)
          offsets.append(pos)
          lengths.append(len(x))
          pos += len(x)
        arr = np.concatenate(clips) if clips else np.zeros(0, np.int16)
        np.save(os.path.join(tmp, f'{split}_{kind}.npy'), arr)
        entry[kind] = {
          'offsets': offsets,
          'lengths': lengths,
          'id': [r['id'] for r in these],
          'speaker': [r['speaker'] for r in these],
          'group': [r['group'] for r in these],
          'origin': [r['origin'] for r in these],
          'category': [r['category'] for r in these],
        }
      seed = int(_hash(opts.seed, 'rir', split), 16)
      count = int(opts.num_rirs.get(split, 0))
      rirs, info = rir.sample_rirs(seed, count, SAMPLE_RATE, opts.rt60_range)
      np.save(os.path.join(tmp, f'{split}_rirs.npy'), rirs)
      entry['rirs'] = info
      index['splits'][split] = entry
    with open(os.path.join(tmp, 'index.json'), 'w') as f:
      json.dump(index, f)
    if os.path.isdir(final):
      shutil.rmtree(final)
    os.rename(tmp, final)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return index


def corpus_stats(rows: list[dict], num_rirs: dict) -> dict:
  """Hours, speakers, groups and clips per split and origin."""
  out = {}
  for split in SPLITS:
    sp = [r for r in rows if r['split'] == split and r['kind'] == SPEECH]
    no = [r for r in rows if r['split'] == split and r['kind'] == NOISE]
    s = {
      'speech_hours': round(sum(r['duration_s'] for r in sp) / 3600, 3),
      'speech_clips': len(sp),
      'speakers': len({r['speaker'] for r in sp}),
      'groups': sorted({r['group'] for r in sp}),
      'noise_hours': round(sum(r['duration_s'] for r in no) / 3600, 3),
      'noise_clips': len(no),
      'rirs': int(num_rirs.get(split, 0)),
    }
    for origin in (REAL, TTS):
      these = [r for r in sp if r['origin'] == origin]
      s[f'{origin}_speech_hours'] = round(
        sum(r['duration_s'] for r in these) / 3600, 3
      )
      s[f'{origin}_speakers'] = len({r['speaker'] for r in these})
    out[split] = s
  return out


def remove_marker(corpus_dir: str) -> None:
  """Deletes COMPLETE.json (first thing before anything it vouches for)."""
  path = os.path.join(corpus_dir, MARKER)
  if os.path.exists(path):
    os.remove(path)


def build(
  corpus_dir: str,
  opts: BuildOptions,
  progress: Callable[[int, int], None] | None = None,
) -> dict:
  """Builds (or finishes, or checks) the corpus in `corpus_dir`.

  Args:
    corpus_dir: output folder (created).
    opts: sources and settings.
    progress: called with (jobs done, jobs to do) while converting.

  Returns:
    The contents of COMPLETE.json: 'version', 'manifest_sha1', 'stats',
    'build_seconds', 'converted' (jobs run this time), 'skipped' (inputs
    left out).

  Raises:
    MissingPackagesError, offline_sources.SourceError, BuildError: see the
    messages.
  """
  start = time.time()
  corpus_dir = os.path.abspath(corpus_dir)
  present, voices, texts = check_sources(opts)
  jobs = file_jobs(present, opts.source_root)
  if voices:
    jobs += tts_jobs(voices, read_sentences(texts), opts.tts_minutes, opts.seed)
  keys = [j.key for j in jobs]
  if len(set(keys)) != len(keys):
    raise BuildError('Two jobs share a key; source names must be unique.')
  os.makedirs(corpus_dir, exist_ok=True)
  journal = read_journal(corpus_dir)
  pending = [j for j in jobs if not job_done(j, journal.get(j.key), corpus_dir)]
  marker_path = os.path.join(corpus_dir, MARKER)
  if pending:
    remove_marker(corpus_dir)
    logging.info(
      'Converting %d of %d jobs into %s (%d workers).',
      len(pending),
      len(jobs),
      corpus_dir,
      opts.workers,
    )
    run_jobs(pending, corpus_dir, opts.workers, progress)
    journal = read_journal(corpus_dir)
  missing = [
    j.key for j in jobs if not job_done(j, journal.get(j.key), corpus_dir)
  ]
  if missing:
    raise BuildError(f'{len(missing)} jobs did not finish, e.g. {missing[:3]}.')
  rows, skipped = _rows(jobs, journal)
  by_source: dict[str, int] = {}
  for r in rows:
    by_source[r['source']] = by_source.get(r['source'], 0) + 1
  for s in present:
    if not by_source.get(s.name):
      reasons = sorted({k['reason'] for k in skipped if k['source'] == s.name})
      raise offline_sources.SourceError(
        f'{s.name}: none of the files under '
        f'{offline_sources.rooted(opts.source_root, s.root)} is usable '
        f'({"; ".join(reasons[:3])}). Reinstall the package: sudo '
        f'{offline_sources.apt_line(s.packages)} --reinstall'
      )
  split_rows(rows, opts)
  rows.sort(key=lambda r: r['id'])
  manifest_path = os.path.join(corpus_dir, MANIFEST)
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=list(MANIFEST_FIELDS), lineterminator='\n')
  w.writeheader()
  w.writerows(rows)
  new_sha = hashlib.sha1(buf.getvalue().encode()).hexdigest()
  settings = _hash(opts.num_rirs, opts.rt60_range, opts.seed)
  if os.path.exists(marker_path) and os.path.exists(manifest_path):
    with open(marker_path) as f:
      old = json.load(f)
    if (
      old.get('manifest_sha1') == new_sha
      and old.get('version') == VERSION
      and old.get('settings') == settings
      and file_sha1(manifest_path) == new_sha
    ):
      logging.info('%s is complete and up to date.', corpus_dir)
      return {**old, 'converted': 0}
  remove_marker(corpus_dir)
  sha = _write_csv(manifest_path, MANIFEST_FIELDS, rows)
  _write_csv(
    os.path.join(corpus_dir, 'skipped.csv'),
    ('source', 'original', 'reason'),
    skipped,
  )
  _pack(corpus_dir, rows, opts)
  stats = corpus_stats(rows, opts.num_rirs)
  for split, st in stats.items():
    if not st['speech_clips']:
      logging.warning(
        'The %s split has no speech: too few speaker groups (%d) to hold '
        'any out. Install more sources or pin groups with '
        '--validation_groups/--test_groups.',
        split,
        len({r['group'] for r in rows if r['kind'] == SPEECH}),
      )
  info = {
    'version': VERSION,
    'manifest_sha1': sha,
    'settings': settings,
    'sample_rate': SAMPLE_RATE,
    'stats': stats,
    'build_seconds': round(time.time() - start, 1),
    'converted': len(pending),
    'skipped': len(skipped),
    'sources': sorted(by_source),
  }
  with open(os.path.join(corpus_dir, 'stats.json'), 'w') as f:
    json.dump(info, f, indent=1)
  tmp = f'{marker_path}.tmp-{uuid.uuid4().hex[:8]}'
  with open(tmp, 'w') as f:
    json.dump(info, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, marker_path)
  return info
