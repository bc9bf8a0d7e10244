"""Finding and checking the files of real corpora on disk (no TensorFlow).

Each `scan_*` function takes the folder a user downloaded or generated a
corpus into and returns, per split, a list of `Example`s (a key, the file of
each signal, and metadata). Before the tensorflow-datasets builders read a
single sample they call these, so a wrong or partial layout fails with a
`LayoutError` that names the folder and what is missing (how many files were
expected and how many found) instead of deep inside TensorFlow.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re

from absl import logging

from data_pipelines import audio_io

# Published sizes, used only to warn about partial copies.
VOICEBANK_TRAIN_PAIRS = 11572
VOICEBANK_TEST_PAIRS = 824
# VoiceBank+DEMAND has no validation set; these two training speakers are
# held out as one (a common choice, e.g. in the MetricGAN+ and CMGAN recipes).
VOICEBANK_VALIDATION_SPEAKERS = ('p226', 'p287')


class LayoutError(FileNotFoundError):
  """A corpus folder does not have the expected layout."""


@dataclasses.dataclass(frozen=True)
class Example:
  """One example of a corpus.

  Attributes:
    key: unique id within the split (a file stem).
    files: signal name (e.g. 'noisy', 'clean', 's1') -> audio file.
    meta: extra fields (speaker, snr, ...).
  """

  key: str
  files: dict[str, str]
  meta: dict = dataclasses.field(default_factory=dict)


def _require_dir(path: str, what: str) -> None:
  if not os.path.isdir(path):
    parent = os.path.dirname(path.rstrip(os.sep))
    found = sorted(os.listdir(parent)) if os.path.isdir(parent) else None
    hint = (
      f' {parent} contains: {found[:12]}'
      if found is not None
      else f' ({parent} does not exist either.)'
    )
    raise LayoutError(f'Missing folder {path} ({what}).{hint}')


def _wavs(folder: str) -> dict[str, str]:
  """Stem -> path of the .wav/.flac files directly in `folder`."""
  out = {}
  for f in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(f)
    if ext.lower() in ('.wav', '.flac'):
      out[stem] = os.path.join(folder, f)
  return out


def _pair(folders: dict[str, str], split: str) -> list[Example]:
  """Matches files by name across folders; every folder must hold them all."""
  for name, folder in folders.items():
    _require_dir(folder, f'{split}: {name} signals')
  files = {name: _wavs(folder) for name, folder in folders.items()}
  keys = set().union(*files.values())
  if not keys:
    raise LayoutError(
      f'No .wav files in any of {sorted(folders.values())} ({split}).'
    )
  for name, have in files.items():
    missing = sorted(keys - set(have))
    if missing:
      raise LayoutError(
        f'{folders[name]}: expected {len(keys)} files (the union of '
        f'{sorted(folders)}), found {len(have)}; missing e.g. '
        f'{missing[:5]}.'
      )
  return [Example(k, {n: files[n][k] for n in folders}) for k in sorted(keys)]


def _warn_size(what: str, found: int, published: int) -> None:
  if found != published:
    logging.warning(
      '%s: found %d examples; the published corpus has %d. Building from '
      'what is there.',
      what,
      found,
      published,
    )


# ----------------------------------------------------------------------------
# VoiceBank+DEMAND (Valentini-Botinhao et al. 2016), 28-speaker version.


def scan_voicebank_demand(root: str) -> dict[str, list[Example]]:
  """Scans a VoiceBank+DEMAND folder.

  Expected layout (48 kHz WAV, as distributed by the University of
  Edinburgh DataShare)::

    root/clean_trainset_28spk_wav/p226_001.wav ...
    root/noisy_trainset_28spk_wav/p226_001.wav ...
    root/clean_testset_wav/p232_001.wav ...
    root/noisy_testset_wav/p232_001.wav ...

  Returns:
    {'train', 'validation', 'test'}: 'validation' holds the training
    speakers in VOICEBANK_VALIDATION_SPEAKERS, 'train' the other 26.
  """
  _require_dir(root, 'the VoiceBank+DEMAND root')
  train = _pair(
    {
      'clean': os.path.join(root, 'clean_trainset_28spk_wav'),
      'noisy': os.path.join(root, 'noisy_trainset_28spk_wav'),
    },
    'train',
  )
  test = _pair(
    {
      'clean': os.path.join(root, 'clean_testset_wav'),
      'noisy': os.path.join(root, 'noisy_testset_wav'),
    },
    'test',
  )
  _warn_size('VoiceBank+DEMAND train', len(train), VOICEBANK_TRAIN_PAIRS)
  _warn_size('VoiceBank+DEMAND test', len(test), VOICEBANK_TEST_PAIRS)
  out = {'train': [], 'validation': [], 'test': []}
  for split, examples in (('train', train), ('test', test)):
    for ex in examples:
      speaker = ex.key.split('_')[0]
      name = split
      if split == 'train' and speaker in VOICEBANK_VALIDATION_SPEAKERS:
        name = 'validation'
      out[name].append(Example(ex.key, ex.files, {'speaker': speaker}))
  return out


# ----------------------------------------------------------------------------
# Intel N-DNS / Microsoft DNS Challenge synthesised sets.

NDNS_SPLITS = {
  'train': 'training_set',
  'validation': 'validation_set',
  'test': 'test_set',
}
_FILEID = re.compile(r'fileid_(\d+)')
_SNR = re.compile(r'snr(-?\d+(?:\.\d+)?)')
_TL = re.compile(r'tl(-?\d+(?:\.\d+)?)')


def _scan_ndns_split(folder: str, split: str) -> list[Example]:
  """One N-DNS split: noisy/*_fileid_K.wav + clean_fileid_K + noise_fileid_K."""
  sub = {n: os.path.join(folder, n) for n in ('noisy', 'clean', 'noise')}
  for name, path in sub.items():
    _require_dir(path, f'{split}: {name} clips')
  noisy = _wavs(sub['noisy'])
  clean, noise = _wavs(sub['clean']), _wavs(sub['noise'])
  examples, missing = [], {'clean': [], 'noise': []}
  for stem, path in noisy.items():
    m = _FILEID.search(stem)
    if not m:
      raise LayoutError(
        f'{path}: noisy file name has no "fileid_<number>"; N-DNS names '
        'look like "..._snr5_tl-30_fileid_12.wav".'
      )
    fid = int(m.group(1))
    files = {'noisy': path}
    for name, have in (('clean', clean), ('noise', noise)):
      stem_k = f'{name}_fileid_{fid}'
      if stem_k not in have:
        missing[name].append(f'{stem_k}.wav')
      else:
        files[name] = have[stem_k]
    snr, tl = _SNR.search(stem), _TL.search(stem)
    meta = {
      'fileid': fid,
      'snr': float(snr.group(1)) if snr else float('nan'),
      'target_level': float(tl.group(1)) if tl else float('nan'),
    }
    examples.append(Example(f'fileid_{fid}', files, meta))
  if not examples:
    raise LayoutError(f'{sub["noisy"]} has no .wav files ({split}).')
  for name, lost in missing.items():
    if lost:
      raise LayoutError(
        f'{sub[name]}: expected {len(noisy)} files (one per noisy clip), '
        f'found {len(noisy) - len(lost)} matching; missing e.g. '
        f'{lost[:5]}.'
      )
  return sorted(examples, key=lambda e: e.meta['fileid'])


def scan_ndns(root: str) -> dict[str, list[Example]]:
  """Scans an N-DNS / DNS Challenge synthesised dataset.

  Expected layout (from `noisyspeech_synthesizer.py` of the Intel N-DNS
  Challenge, or from `launch/synthesize.py`)::

    root/training_set/{noisy,clean,noise}/
    root/validation_set/{noisy,clean,noise}/
    root/test_set/{noisy,clean,noise}/          (optional)

  with `noisy/<anything>_snr<S>_tl<L>_fileid_<K>.wav`,
  `clean/clean_fileid_<K>.wav` and `noise/noise_fileid_<K>.wav`.

  Returns:
    {'train', 'validation'[, 'test']} -> examples; meta has 'fileid', 'snr'
    and 'target_level' (NaN when the name does not carry them).
  """
  _require_dir(root, 'the N-DNS root')
  out = {}
  for split, sub in NDNS_SPLITS.items():
    folder = os.path.join(root, sub)
    if split == 'test' and not os.path.isdir(folder):
      continue
    out[split] = _scan_ndns_split(folder, split)
  return out


# ----------------------------------------------------------------------------
# LibriMix (Cosentino et al. 2020) and WHAM! (Wichern et al. 2019).

LIBRIMIX_SUBSETS = {
  'train': 'train-100',
  'train360': 'train-360',
  'validation': 'dev',
  'test': 'test',
}
WHAM_SUBSETS = {'train': 'tr', 'validation': 'cv', 'test': 'tt'}
MIXTURE_TYPES = ('clean', 'both', 'single')


def _mixture_folders(num_sources: int, mixture: str) -> dict[str, str]:
  """Signal name -> sub-folder for a mixture type."""
  if mixture not in MIXTURE_TYPES:
    raise ValueError(f'mixture must be one of {MIXTURE_TYPES}: {mixture!r}.')
  folders = {'mixture': f'mix_{mixture}'}
  count = 1 if mixture == 'single' else num_sources
  folders.update({f's{i + 1}': f's{i + 1}' for i in range(count)})
  if mixture != 'clean':
    folders['noise'] = 'noise'
  return folders


def _librimix_ids(meta_dir: str, subset: str, mixture: str) -> list[str]:
  """Mixture ids listed in LibriMix's metadata CSV, or [] if it is absent."""
  path = os.path.join(meta_dir, f'mixture_{subset}_mix_{mixture}.csv')
  if not os.path.isfile(path):
    return []
  with open(path, newline='') as f:
    return [row['mixture_ID'] for row in csv.DictReader(f)]


def _scan_mix_subset(folder, signals, ids, split):
  """Examples of one LibriMix/WHAM! subset; `ids` from metadata if known."""
  paths = {n: os.path.join(folder, sub) for n, sub in signals.items()}
  if not ids:
    return _pair(paths, split)
  for name, path in paths.items():
    _require_dir(path, f'{split}: {name}')
    have = _wavs(path)
    lost = [i for i in ids if i not in have]
    if lost:
      raise LayoutError(
        f'{path}: expected {len(ids)} files (listed in the metadata CSV), '
        f'found {len(ids) - len(lost)}; missing e.g. '
        f'{[i + ".wav" for i in lost[:5]]}.'
      )
  return [
    Example(i, {n: os.path.join(p, i + '.wav') for n, p in paths.items()})
    for i in sorted(ids)
  ]


def scan_librimix(
  root: str,
  *,
  num_sources: int = 2,
  sample_rate: int = 8000,
  mode: str = 'min',
  mixture: str = 'clean',
) -> dict[str, list[Example]]:
  """Scans a LibriMix folder (output of `generate_librimix.sh`).

  Expected layout, for Libri2Mix at 8 kHz in 'min' mode::

    root/Libri2Mix/wav8k/min/{train-100,train-360,dev,test}/
        {mix_clean,mix_both,mix_single,s1,s2,noise}/<mixture_ID>.wav
    root/Libri2Mix/wav8k/min/metadata/mixture_<subset>_mix_<type>.csv

  `root` may also be the `Libri2Mix` folder itself. Subsets that are absent
  are skipped; at least one must be present. When a metadata CSV exists,
  every mixture it lists must have its files.

  Returns:
    {'train' (train-100), 'train360', 'validation' (dev), 'test'} -> examples
    with files 'mixture', 's1'..'sN' and, for noisy types, 'noise'.
  """
  if mode not in ('min', 'max'):
    raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
  name = f'Libri{num_sources}Mix'
  top = (
    root
    if os.path.basename(root.rstrip(os.sep)) == name
    else (os.path.join(root, name))
  )
  _require_dir(top, f'LibriMix with {num_sources} speakers')
  base = os.path.join(top, f'wav{sample_rate // 1000}k', mode)
  _require_dir(base, f'{sample_rate} Hz, mode {mode!r}')
  signals = _mixture_folders(num_sources, mixture)
  out = {}
  for split, subset in LIBRIMIX_SUBSETS.items():
    folder = os.path.join(base, subset)
    if not os.path.isdir(folder):
      continue
    ids = _librimix_ids(os.path.join(base, 'metadata'), subset, mixture)
    out[split] = _scan_mix_subset(folder, signals, ids, split)
  if not out:
    raise LayoutError(
      f'{base} has none of the subset folders '
      f'{sorted(LIBRIMIX_SUBSETS.values())}.'
    )
  return out


def scan_wham(
  root: str,
  *,
  sample_rate: int = 8000,
  mode: str = 'min',
  mixture: str = 'both',
) -> dict[str, list[Example]]:
  """Scans WHAM! output (of `create_wham_from_scratch.py`).

  Expected layout::

    root/wav8k/min/{tr,cv,tt}/{mix_clean,mix_both,mix_single,s1,s2,noise}/

  Returns:
    {'train' (tr), 'validation' (cv), 'test' (tt)} -> examples.
  """
  if mode not in ('min', 'max'):
    raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
  base = os.path.join(root, f'wav{sample_rate // 1000}k', mode)
  _require_dir(base, f'WHAM! at {sample_rate} Hz, mode {mode!r}')
  signals = _mixture_folders(2, mixture)
  out = {}
  for split, subset in WHAM_SUBSETS.items():
    out[split] = _scan_mix_subset(
      os.path.join(base, subset), signals, [], split
    )
  return out


def max_frames(examples: list[Example], signal: str) -> tuple[int, int]:
  """(longest clip in frames, its sample rate) from the file headers."""
  best, rate = 0, 0
  for ex in examples:
    n, sr = audio_io.num_frames(ex.files[signal])
    if rate and sr != rate:
      raise LayoutError(
        f'{ex.files[signal]} is at {sr} Hz but other files are at {rate}.'
      )
    best, rate = max(best, n), sr
  return best, rate
