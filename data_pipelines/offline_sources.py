"""What the offline corpus is made of: Debian packages, voices and texts.

Every source names the Debian package that ships it, the folder it installs,
how its files are decoded, its licence (see `/usr/share/doc/<package>/
copyright` for the full text) and who speaks in it. `offline_build` turns
them into 16 kHz clips; nothing here reads audio.

Speakers and split groups: each clip records a `speaker` (the best-known
identity of the voice) and a `group`, the unit that is held out as a whole
so that train, validation and test never share a speaker. A group is the
speaker itself where the speaker is known, or a set that may share voice
actors (one language dub of a game). The same person behind two sources gets
one group: Allison Smith reads both the English and the Mexican Spanish
Asterisk prompts, and flite's and festival's `slt`/`kal` voices are built
from the same CMU recordings.

Real recorded speech (hours as packaged in Debian 12):

  asterisk-core-sounds-{en,es,fr,it,ru}-g722   telephony prompts, 16 kHz
      G.722 (decoded with ffmpeg), 5 voices, ~0.4 h each, CC-BY-SA-3.0
  asterisk-core-sounds-en-wav   the English prompts at 8 kHz (used only for
      prompts without a G.722 twin)
  asterisk-prompt-{es-co,fr-armelle,it-menardi-wav}   3 more voices,
      8 kHz GSM / WAV, GPL-2 / GPL-2+ / CC-BY-SA-3.0-IT
  fillets-ng-data{,-cs,-nl}   voice-acted game dialogue (Fish Fillets NG),
      English (0.1 h), Czech (1.8 h), Dutch (1.6 h), 22-44 kHz Ogg, GPL-2+
  pocketsphinx-testdata   a LibriVox reading and CMU test prompts, BSD-2

Real recorded noise: sonic-pi-samples (165 CC0 samples: ambiences, vinyl,
percussion, instruments, loops), asterisk-moh-opsound-wav (music on hold,
CC-BY-SA-3.0) and the music and effects of fillets-ng-data (GPL-2+).

Text-to-speech (more speakers, read from the licence texts in
/usr/share/common-licenses): flite (awb, rms, slt, kal16), festival
(kal_diphone, cmu_us_slt_arctic_hts) and espeak-ng variants, each utterance
with its own pitch and rate.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import os
import re
import shutil

SPEECH, NOISE = 'speech', 'noise'
REAL, TTS = 'real', 'tts'

# Decoders (see offline_build.decode): name -> native sample rate (0: file's).
DECODERS = {'sndfile': 0, 'g722': 16000, 'gsm': 8000, 'raw16k': 16000}


class SourceError(FileNotFoundError):
  """A source is missing, empty or unusable; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Format:
  """One way a source ships its audio.

  Attributes:
    ext: file extension including the dot ('.g722').
    package: the Debian package that installs files with this extension.
    decoder: a key of DECODERS.
  """

  ext: str
  package: str
  decoder: str = 'sndfile'


@dataclasses.dataclass(frozen=True)
class FileSource:
  """Audio files installed by Debian packages under one folder.

  Attributes:
    name: short unique name; clips go to `clips/<name>/`.
    root: the folder, as installed (prefixed by the build's source root).
    kind: 'speech' or 'noise'.
    formats: in order of preference: when one stem exists in several
      formats in the same folder (a prompt shipped as .g722 and .wav), the
      first one wins.
    licence: SPDX-like licence of the recordings.
    speaker: speaker id of every file ('' = `labeller` decides).
    group: split group ('' = the speaker; noise: each file).
    language: BCP-47 language of the speech.
    include: glob patterns (relative to `root`, '**' allowed) of the files.
    exclude: glob patterns of files to leave out.
    labeller: name of a function in LABELLERS giving (speaker, group,
      category) per file.
    note: where the speaker identity comes from.
  """

  name: str
  root: str
  kind: str
  formats: tuple[Format, ...]
  licence: str
  speaker: str = ''
  group: str = ''
  language: str = ''
  include: tuple[str, ...] = ('**/*',)
  exclude: tuple[str, ...] = ()
  labeller: str = ''
  note: str = ''

  @property
  def packages(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f.package for f in self.formats))


@dataclasses.dataclass(frozen=True)
class TtsVoice:
  """A text-to-speech voice.

  Attributes:
    name: short unique name; clips go to `clips/tts-<name>/`.
    engine: 'flite', 'festival' or 'espeak-ng'.
    voice: the engine's voice argument ('slt', 'voice_kal_diphone',
      'en-us+m3').
    packages: Debian packages it needs (engine and voice data).
    speaker: the underlying speaker; also the split group.
    licence: licence of the voice data.
    weight: share of `--tts_minutes` this voice reads.
  """

  name: str
  engine: str
  voice: str
  packages: tuple[str, ...]
  speaker: str
  licence: str
  weight: float = 1.0


_AST = '/usr/share/asterisk/sounds'
_FILLETS = '/usr/share/games/fillets-ng'
_PS = '/usr/share/pocketsphinx/test/data'
_CC_BY_SA = 'CC-BY-SA-3.0'


def _asterisk(lang, folder, speaker, language, wav=False):
  formats = [Format('.g722', f'asterisk-core-sounds-{lang}-g722', 'g722')]
  if wav:
    formats.append(Format('.wav', f'asterisk-core-sounds-{lang}-wav'))
  return FileSource(
    name=f'asterisk-{lang}',
    root=f'{_AST}/{folder}',
    kind=SPEECH,
    formats=tuple(formats),
    licence=_CC_BY_SA,
    speaker=speaker,
    language=language,
    exclude=('silence/*',),
    note=f'voice named in the folder name ({folder})',
  )


SPEECH_SOURCES: tuple[FileSource, ...] = (
  _asterisk('en', 'en_US_f_Allison', 'asterisk-allison', 'en-US', wav=True),
  # Allison Smith again (the folder says so): same group as English.
  _asterisk('es', 'es_MX_f_Allison', 'asterisk-allison', 'es-MX'),
  _asterisk('fr', 'fr_CA_f_June', 'asterisk-june', 'fr-CA'),
  _asterisk('it', 'it_IT_m_Carlo', 'asterisk-carlo', 'it-IT'),
  _asterisk('ru', 'ru_RU_f_IvrvoiceRU', 'asterisk-ivrvoice-ru', 'ru-RU'),
  FileSource(
    name='asterisk-it-menardi',
    root=f'{_AST}/it_IT_f_Menardi',
    kind=SPEECH,
    formats=(Format('.wav', 'asterisk-prompt-it-menardi-wav'),),
    licence='CC-BY-SA-3.0-IT',
    speaker='asterisk-menardi',
    language='it-IT',
    exclude=('silence/*',),
  ),
  FileSource(
    name='asterisk-es-co',
    root=f'{_AST}/es',
    kind=SPEECH,
    formats=(Format('.gsm', 'asterisk-prompt-es-co', 'gsm'),),
    licence='GPL-2',
    speaker='asterisk-es-co-avatar',
    language='es-CO',
    exclude=('silence/*',),
    note='Avatar Ltda. / July E. Jimenez (debian/copyright)',
  ),
  FileSource(
    name='asterisk-fr-armelle',
    root=f'{_AST}/fr',
    kind=SPEECH,
    formats=(Format('.gsm', 'asterisk-prompt-fr-armelle', 'gsm'),),
    licence='GPL-2+',
    speaker='asterisk-armelle',
    language='fr-FR',
    exclude=('silence/*',),
    note='Armelle Desjardins (package description)',
  ),
  FileSource(
    name='fillets-en',
    root=f'{_FILLETS}/sound',
    kind=SPEECH,
    formats=(Format('.ogg', 'fillets-ng-data'),),
    licence='GPL-2+',
    language='en',
    include=('*/en/*.ogg', '*/*/en/*.ogg'),
    labeller='fillets',
    note='character from the level scripts; one group per dub',
  ),
  FileSource(
    name='fillets-cs',
    root=f'{_FILLETS}/sound',
    kind=SPEECH,
    formats=(Format('.ogg', 'fillets-ng-data-cs'),),
    licence='GPL-2+',
    language='cs',
    include=('*/cs/*.ogg', '*/*/cs/*.ogg'),
    labeller='fillets',
  ),
  FileSource(
    name='fillets-nl',
    root=f'{_FILLETS}/sound',
    kind=SPEECH,
    formats=(Format('.ogg', 'fillets-ng-data-nl'),),
    licence='GPL-2+',
    language='nl',
    include=('*/nl/*.ogg', '*/*/nl/*.ogg'),
    labeller='fillets',
  ),
  FileSource(
    name='pocketsphinx',
    root=_PS,
    kind=SPEECH,
    formats=(
      Format('.wav', 'pocketsphinx-testdata'),
      Format('.raw', 'pocketsphinx-testdata', 'raw16k'),
    ),
    licence='BSD-2',
    language='en-US',
    include=('librivox/*.wav', 'cards/*.wav', '*.raw'),
    labeller='pocketsphinx',
    note='TIDIGITS excerpts (LDC licence) are left out',
  ),
)

NOISE_SOURCES: tuple[FileSource, ...] = (
  FileSource(
    name='sonic-pi',
    root='/usr/share/sonic-pi/samples',
    kind=NOISE,
    formats=(Format('.flac', 'sonic-pi-samples'),),
    licence='CC0-1.0',
    include=('*.flac',),
    labeller='prefix',
  ),
  FileSource(
    name='asterisk-moh',
    root='/usr/share/asterisk/moh',
    kind=NOISE,
    formats=(Format('.wav', 'asterisk-moh-opsound-wav'),),
    licence=_CC_BY_SA,
    include=('*.wav',),
    labeller='music',
  ),
  FileSource(
    name='fillets-sfx',
    root=_FILLETS,
    kind=NOISE,
    formats=(Format('.ogg', 'fillets-ng-data'),),
    licence='GPL-2+',
    include=('music/*.ogg', 'sound/share/*.ogg'),
    labeller='fillets_noise',
  ),
)

_ESPEAK_VARIANTS = 'm1 m2 m3 m4 m5 m6 m7 f1 f2 f3 f4 f5 klatt klatt3'.split()
_ESPEAK_ACCENTS = ('en-us', 'en-gb', 'en-gb-scotland', 'en-029', 'en-gb-x-rp')

TTS_VOICES: tuple[TtsVoice, ...] = (
  TtsVoice('flite-awb', 'flite', 'awb', ('flite',), 'cmu-awb', 'flite'),
  TtsVoice('flite-rms', 'flite', 'rms', ('flite',), 'cmu-rms', 'flite'),
  TtsVoice('flite-slt', 'flite', 'slt', ('flite',), 'cmu-slt', 'flite'),
  TtsVoice('flite-kal16', 'flite', 'kal16', ('flite',), 'cmu-kal', 'flite'),
  TtsVoice(
    'festival-kal',
    'festival',
    'voice_kal_diphone',
    ('festival', 'festvox-kallpc16k'),
    'cmu-kal',
    'festvox (MIT-like)',
  ),
  TtsVoice(
    'festival-slt-hts',
    'festival',
    'voice_cmu_us_slt_arctic_hts',
    ('festival', 'festvox-us-slt-hts'),
    'cmu-slt',
    'CMU ARCTIC (BSD-like)',
  ),
) + tuple(
  TtsVoice(
    f'espeak-{v}',
    'espeak-ng',
    f'{_ESPEAK_ACCENTS[i % len(_ESPEAK_ACCENTS)]}+{v}',
    ('espeak-ng',),
    f'espeak-{v}',
    'GPL-3+',
    weight=0.5,
  )
  for i, v in enumerate(_ESPEAK_VARIANTS)
)

ENGINE_COMMANDS = {
  'flite': 'flite',
  'festival': 'text2wave',
  'espeak-ng': 'espeak-ng',
}

# Texts read by the TTS voices (package base-files, always installed).
TEXT_FILES = tuple(
  f'/usr/share/common-licenses/{n}'
  for n in (
    'GPL-3',
    'Apache-2.0',
    'LGPL-2.1',
    'MPL-2.0',
    'GFDL-1.3',
    'Artistic',
    'CC0-1.0',
  )
)
TEXT_PACKAGE = 'base-files'
DECODER_PACKAGES = {'g722': 'ffmpeg', 'gsm': 'ffmpeg'}


def rooted(source_root: str, path: str) -> str:
  """`path` (absolute, as installed) under `source_root` ('' or '/' = as is)."""
  if not source_root or source_root == '/':
    return path
  return os.path.join(source_root, path.lstrip('/'))


# ----------------------------------------------------------------------------
# Finding files.


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
  return any(fnmatch.fnmatch(rel, p) for p in patterns)


def _candidates(source: FileSource, source_root: str) -> list[str]:
  root = rooted(source_root, source.root)
  if not os.path.isdir(root):
    raise SourceError(
      f'{source.name}: folder {root} is missing; install '
      f'{" ".join(source.packages)}.'
    )
  exts = {f.ext for f in source.formats}
  out = set()
  for pattern in source.include:
    for path in glob.glob(os.path.join(root, pattern), recursive=True):
      rel = os.path.relpath(path, root)
      if (
        os.path.splitext(rel)[1] in exts
        and not _matches(rel, source.exclude)
        and os.path.isfile(path)
      ):
        out.add(path)
  return sorted(out)


def present_packages(source: FileSource, source_root: str = '') -> set[str]:
  """The packages of `source` whose files are installed."""
  exts = {os.path.splitext(p)[1] for p in _candidates(source, source_root)}
  return {f.package for f in source.formats if f.ext in exts}


def find_files(source: FileSource, source_root: str = '') -> list[str]:
  """The files of `source` (absolute paths, sorted), one format per stem.

  Raises:
    SourceError: the folder is missing (the package is not installed).
  """
  root = rooted(source_root, source.root)
  rank = {f.ext: k for k, f in enumerate(source.formats)}
  best: dict[str, tuple[int, str]] = {}
  for path in _candidates(source, source_root):
    stem, ext = os.path.splitext(os.path.relpath(path, root))
    if stem not in best or rank[ext] < best[stem][0]:
      best[stem] = (rank[ext], path)
  return sorted(p for _, p in best.values())


def format_of(source: FileSource, path: str) -> Format:
  """The `Format` of one of the source's files."""
  ext = os.path.splitext(path)[1]
  for f in source.formats:
    if f.ext == ext:
      return f
  raise ValueError(f'{path} is not a file of {source.name}.')


# ----------------------------------------------------------------------------
# Labels: (speaker, group, category) of a file.

_DIALOG = re.compile(r'dialogId\(\s*"([^"]+)"\s*,\s*"([^"]+)"')


def _fillets_fonts(script_root: str) -> dict[tuple[str, str], str]:
  """(level, dialog id) -> character font, from the level scripts."""
  out = {}
  for path in glob.glob(
    os.path.join(script_root, '**', '*.lua'), recursive=True
  ):
    level = os.path.relpath(os.path.dirname(path), script_root)
    try:
      with open(path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    except OSError:
      continue
    for dialog, font in _DIALOG.findall(text):
      out.setdefault((level, dialog), font)
  return out


class Labeller:
  """Labels files of the sources; caches per-source lookups."""

  def __init__(self, source_root: str = ''):
    self.source_root = source_root
    self._fonts = None

  def fonts(self):
    if self._fonts is None:
      self._fonts = _fillets_fonts(
        rooted(self.source_root, f'{_FILLETS}/script')
      )
    return self._fonts

  def __call__(self, source: FileSource, path: str) -> tuple[str, str, str]:
    """(speaker, group, category) of `path`."""
    root = rooted(self.source_root, source.root)
    rel = os.path.relpath(path, root)
    stem = os.path.splitext(os.path.basename(rel))[0]
    how = source.labeller
    if source.kind == NOISE:
      if how == 'prefix':
        category = stem.split('_')[0]
      elif how == 'music':
        category = 'music'
      elif how == 'fillets_noise':
        category = 'music' if rel.startswith('music') else 'effects'
      else:
        category = source.name
      return '', f'{source.name}/{rel}', category
    if how == 'fillets':
      parts = rel.split(os.sep)
      lang = parts[-2]
      level = os.sep.join(parts[:-2])
      font = self.fonts().get((level, stem))
      if font is None:  # share/*jokes: '-m-' small fish, '-v-' big fish
        font = (
          'font_small'
          if '-m-' in stem
          else 'font_big'
          if '-v-' in stem
          else 'unknown'
        )
      font = font.removeprefix('font_')
      group = f'fillets-{lang}'
      return f'{group}/{font}', group, 'dialogue'
    if how == 'pocketsphinx':
      if rel.startswith('librivox'):
        spk = 'librivox-sense-and-sensibility-reader'
      else:  # goforward/numbers/something/cards: CMU test prompts
        spk = 'pocketsphinx-cmu'
      return spk, spk, 'read'
    speaker = source.speaker or source.name
    return speaker, source.group or speaker, 'prompt'


# ----------------------------------------------------------------------------
# Packages and tools.


def tool_path(command: str) -> str | None:
  """Absolute path of an executable on PATH, or None."""
  return shutil.which(command)


def apt_line(packages) -> str:
  """The command that installs `packages` (sorted, without duplicates)."""
  pkgs = ' '.join(sorted(set(packages)))
  return f'apt-get install -y --no-install-recommends {pkgs}'


def all_packages(
  speech=SPEECH_SOURCES, noise=NOISE_SOURCES, voices=TTS_VOICES
) -> list[str]:
  """Every package the default corpus uses (sources, voices, decoders)."""
  out = []
  for s in (*speech, *noise):
    out += s.packages
    out += [
      DECODER_PACKAGES[f.decoder]
      for f in s.formats
      if f.decoder in DECODER_PACKAGES
    ]
  for v in voices:
    out += v.packages
  return sorted(set(out))
