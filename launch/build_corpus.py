r"""Builds the offline real-speech corpus from Debian packages, in one command.

  python launch/build_corpus.py --install          # as root: installs, builds
  python launch/build_corpus.py --output_dir=/data/offline --workers=2

Real recorded speech (Asterisk telephony prompts in 5 languages and 8
voices, Fish Fillets NG voice-acted dialogue in English, Czech and Dutch, a
LibriVox reading), TTS speech (flite, festival and espeak-ng voices reading
licence texts with varied pitch and rate) and recorded noise (Sonic Pi CC0
samples, music on hold, game music and effects) are converted to 16 kHz
mono FLAC clips with a manifest (per clip: source package, original file,
licence, speaker, split, duration) and speaker-disjoint train / validation /
test splits, plus room impulse responses for reverberation. Train on it with

  python launch/train.py --config=configs/demo.py --workdir=runs/offline \
      --config.data.name=offline

The default folder is $S4JAX_CACHE_DIR/offline (else
~/.cache/s4jax/offline). Rerunning the command resumes an interrupted build
(finished clips are kept) and returns at once when the corpus is complete.
Without `--install`, missing packages stop the build with the `apt-get`
line that installs them (or use `--skip_missing`). About 6 minutes and
1.5 GB on 2 cores, after about 350 MB of packages (see
docs/reference/data.md).
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

import os
import subprocess
import sys
import time

from absl import app, flags, logging

from data_pipelines import offline, offline_build, offline_sources
from harness import runtime

_OUTPUT_DIR = flags.DEFINE_string(
  'output_dir',
  '',
  'Corpus folder (created); default $S4JAX_CACHE_DIR/offline or '
  '~/.cache/s4jax/offline. Train on another folder with '
  '--config.data.manual_dir=<folder>.',
)
_INSTALL = flags.DEFINE_bool(
  'install',
  False,
  'Install the missing Debian packages with apt-get first (as root); '
  'otherwise print the apt-get command to run and stop.',
)
_SKIP_MISSING = flags.DEFINE_bool(
  'skip_missing',
  False,
  'Build from the installed sources only, leaving out missing packages.',
)
_SOURCES = flags.DEFINE_list(
  'sources',
  [],
  'Only these speech/noise sources and TTS voices (names as in '
  'data_pipelines/offline_sources.py, e.g. asterisk-en,sonic-pi,flite-slt; '
  'a trailing * matches a prefix, e.g. espeak-*). Default: all.',
)
_TTS_MINUTES = flags.DEFINE_float(
  'tts_minutes',
  8.0,
  'Minutes of speech per TTS voice (espeak-ng variants read half); 0 '
  'leaves TTS out.',
)
_VALIDATION = flags.DEFINE_float(
  'validation_fraction',
  0.1,
  'Share of the real and of the TTS speech (whole speakers) held out for '
  'validation.',
)
_TEST = flags.DEFINE_float(
  'test_fraction',
  0.1,
  'Share of the real and of the TTS speech (whole speakers) held out for test.',
)
# The cleanest English voice (Allison) trains; the held-out groups still
# cover English, French and Spanish real speech. Groups absent from the
# installed sources are ignored; pass '' to use the seeded choice instead.
_TRAIN_GROUPS = flags.DEFINE_list(
  'train_groups',
  ['asterisk-allison'],
  'Speaker groups (manifest column "group") to keep in train.',
)
_VALIDATION_GROUPS = flags.DEFINE_list(
  'validation_groups',
  [
    'librivox-sense-and-sensibility-reader',
    'pocketsphinx-cmu',
    'asterisk-es-co-avatar',
    'cmu-kal',
  ],
  'Speaker groups to put in validation, overriding the seeded choice.',
)
_TEST_GROUPS = flags.DEFINE_list(
  'test_groups',
  ['asterisk-june', 'asterisk-armelle', 'espeak-f3', 'espeak-f4', 'espeak-m7'],
  'Speaker groups to put in test (as --validation_groups).',
)
_NUM_RIRS = flags.DEFINE_list(
  'num_rirs',
  ['400', '50', '50'],
  'Room impulse responses for train, validation, test.',
)
_RT60 = flags.DEFINE_list(
  'rt60_range', ['0.1', '0.8'], 'RT60 range of the rooms, seconds: low,high.'
)
_SEED = flags.DEFINE_integer(
  'seed', 0, 'Seed of the splits, the TTS texts and parameters, the rooms.'
)
_WORKERS = flags.DEFINE_integer(
  'workers', 2, 'Conversion processes (1 = in this process).'
)
_SOURCE_ROOT = flags.DEFINE_string(
  'source_root',
  '/',
  'Prefix of the installed package paths (for a copied or fake tree).',
)


def _select(items, names):
  if not names:
    return list(items)
  out = []
  for item in items:
    for n in names:
      if item.name == n or (n.endswith('*') and item.name.startswith(n[:-1])):
        out.append(item)
        break
  return out


def options_from_flags() -> offline_build.BuildOptions:
  """BuildOptions from the command-line flags."""
  names = _SOURCES.value
  speech = _select(offline_sources.SPEECH_SOURCES, names)
  noise = _select(offline_sources.NOISE_SOURCES, names)
  voices = _select(offline_sources.TTS_VOICES, names)
  if names and not (speech or noise or voices):
    known = [
      s.name
      for s in (
        *offline_sources.SPEECH_SOURCES,
        *offline_sources.NOISE_SOURCES,
        *offline_sources.TTS_VOICES,
      )
    ]
    raise app.UsageError(f'--sources matches nothing; known: {known}')
  if _TTS_MINUTES.value <= 0:
    voices = []
  try:
    counts = [int(v) for v in _NUM_RIRS.value]
    rt60 = tuple(float(v) for v in _RT60.value)
  except ValueError as e:
    raise app.UsageError(f'--num_rirs / --rt60_range: {e}') from e
  if len(counts) != 3 or len(rt60) != 2 or not 0 < rt60[0] <= rt60[1]:
    raise app.UsageError(
      '--num_rirs needs 3 counts and --rt60_range low,high (0 < low <= high).'
    )
  if not (0 <= _VALIDATION.value < 0.5 and 0 <= _TEST.value < 0.5):
    raise app.UsageError('--validation_fraction/--test_fraction: [0, 0.5).')
  pinned = {g: 'train' for g in _TRAIN_GROUPS.value}
  pinned.update({g: 'validation' for g in _VALIDATION_GROUPS.value})
  pinned.update({g: 'test' for g in _TEST_GROUPS.value})
  return offline_build.BuildOptions(
    speech_sources=speech,
    noise_sources=noise,
    voices=voices,
    source_root=_SOURCE_ROOT.value,
    tts_minutes=_TTS_MINUTES.value,
    fractions={'validation': _VALIDATION.value, 'test': _TEST.value},
    pinned=pinned,
    num_rirs=dict(zip(offline_build.SPLITS, counts, strict=True)),
    rt60_range=rt60,
    seed=_SEED.value,
    workers=max(1, _WORKERS.value),
    skip_missing=_SKIP_MISSING.value,
  )


def install(packages) -> int:
  """Runs apt-get for `packages` as root; returns its exit status."""
  line = offline_sources.apt_line(packages)
  if os.geteuid() != 0:
    print(
      f'Not root: install the packages yourself, then rerun:\n  sudo {line}',
      file=sys.stderr,
    )
    return 1
  env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
  logging.info('Running: %s', line)
  rc = subprocess.call(line.split(), env=env)
  if rc != 0:  # stale package lists: update once and retry
    subprocess.call(['apt-get', 'update'], env=env)
    rc = subprocess.call(line.split(), env=env)
  return rc


def _summary(info: dict, folder: str, seconds: float) -> str:
  lines = [f'Offline corpus at {folder} ({seconds / 60:.1f} min this run):']
  for split, s in info['stats'].items():
    lines.append(
      f'  {split:10s} speech {s["speech_hours"]:.2f} h (real '
      f'{s["real_speech_hours"]:.2f} h, {s["real_speakers"]} speakers; TTS '
      f'{s["tts_speech_hours"]:.2f} h, {s["tts_speakers"]} voices), '
      f'{s["speech_clips"]} clips; noise {s["noise_hours"]:.2f} h in '
      f'{s["noise_clips"]} clips; {s["rirs"]} RIRs'
    )
  lines.append(
    f'  {info.get("skipped", 0)} inputs skipped (see skipped.csv). Train with '
    '--config.data.name=offline'
    + (
      ''
      if folder == offline.default_dir()
      else f' --config.data.manual_dir={folder}'
    )
  )
  return '\n'.join(lines)


def main(argv):
  """Program entry point (after flag parsing)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  folder = os.path.abspath(
    os.path.expanduser(_OUTPUT_DIR.value or offline.default_dir())
  )
  opts = options_from_flags()
  start = time.time()
  try:
    offline_build.check_or_install(opts, install if _INSTALL.value else None)
  except offline_build.InstallError as e:
    sys.exit(
      f'error: apt-get failed; run it yourself:\n  sudo '
      f'{offline_sources.apt_line(e.packages)}'
    )
  except offline_sources.SourceError as e:
    sys.exit(f'error: {e}')
  last = [0.0]

  def progress(done, total):
    if time.time() - last[0] > 30 or done == total:
      last[0] = time.time()
      rate = done / max(1e-9, time.time() - start)
      logging.info(
        'Converted %d/%d jobs (%.0f%%, about %.0f s left).',
        done,
        total,
        100 * done / total,
        (total - done) / max(rate, 1e-9),
      )

  try:
    info = offline_build.build(folder, opts, progress)
  except (offline_sources.SourceError, offline_build.BuildError) as e:
    sys.exit(f'error: {e}')
  except KeyboardInterrupt:
    sys.exit(
      'Interrupted; finished clips are kept. Rerun the same command to resume.'
    )
  print(_summary(info, folder, time.time() - start))


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
