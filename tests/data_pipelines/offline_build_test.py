"""Tests for data_pipelines.offline_build: the offline corpus build.

Manifest and provenance, speaker-disjoint splits, resume after an
interruption, missing packages, unusable sources and TTS voices. Everything
runs on the fake source tree of offline_tree.py (no Debian package, no
/usr/share file, no network); TTS uses a fake engine script.
"""

import csv
import hashlib
import json
import os
import stat
import sys

import numpy as np
import pytest
import soundfile as sf

from data_pipelines import (
  audio_io,
  offline,
  offline_build,
  offline_sources,
)
from data_pipelines.offline_sources import FileSource, Format
from tests.data_pipelines.offline_tree import manifest, options, speech_sources


def test_manifest_provenance_and_skipped_files(corpus, tree):
  folder, info = corpus
  rows = manifest(folder)
  speech = [r for r in rows if r['kind'] == 'speech']
  noise = [r for r in rows if r['kind'] == 'noise']
  assert len(speech) == 15 and len(noise) == 4
  assert tuple(rows[0]) == offline_build.MANIFEST_FIELDS
  for r in rows:
    assert r['split'] in offline_build.SPLITS
    assert r['original'].startswith(tree) and os.path.isfile(r['original'])
    assert r['licence'] == 'CC0-1.0' and r['package'].startswith('fake-')
    x, sr = sf.read(os.path.join(folder, r['path']))
    assert sr == 16000 and x.ndim == 1
    assert abs(len(x) / sr - float(r['duration_s'])) < 1e-3
  for r in speech:
    assert r['speaker'] == r['group'] == 'speaker-' + r['source'][5:]
    # Trimmed: the 0.2 s of silence on each side is mostly gone.
    assert float(r['duration_s']) < 0.6 + 0.2 * 2 + 0.3
  assert {r['category'] for r in noise} == {'pink', 'machine', 'hum', 'white'}
  with open(os.path.join(folder, 'skipped.csv'), newline='') as f:
    skipped = {os.path.basename(r['original']): r for r in csv.DictReader(f)}
  assert set(skipped) == {'empty.wav', 'corrupt.wav', 'silent.wav'}
  assert 'empty' in skipped['empty.wav']['reason']
  assert 'cannot read' in skipped['corrupt.wav']['reason']
  assert 'silent' in skipped['silent.wav']['reason']
  assert info['skipped'] == 3
  marker = json.load(open(os.path.join(folder, offline_build.MARKER)))
  assert marker['manifest_sha1'] == offline_build.file_sha1(
    os.path.join(folder, 'manifest.csv')
  )


def test_splits_never_share_a_speaker(corpus):
  folder, info = corpus
  rows = [r for r in manifest(folder) if r['kind'] == 'speech']
  by_split = {
    s: {r['group'] for r in rows if r['split'] == s}
    for s in offline_build.SPLITS
  }
  assert all(by_split.values()), by_split
  assert not by_split['train'] & by_split['validation']
  assert not by_split['train'] & by_split['test']
  assert not by_split['validation'] & by_split['test']
  noise = [r for r in manifest(folder) if r['kind'] == 'noise']
  assert {r['split'] for r in noise} == set(offline_build.SPLITS)
  assert info['stats']['train']['speakers'] == len(by_split['train'])


def test_assign_splits_disjoint_pinned_and_keeps_train():
  durs = {f'g{i}': float(1 + i % 4) for i in range(12)}
  fr = {'validation': 0.1, 'test': 0.1}
  out = offline_build.assign_splits(durs, fr, seed=3, pinned={'g5': 'test'})
  assert set(out) == set(durs) and out['g5'] == 'test'
  total = sum(durs.values())
  for split in ('validation', 'test'):
    got = sum(d for g, d in durs.items() if out[g] == split)
    assert 0 < got <= 0.3 * total, (split, got)
  assert offline_build.assign_splits({'a': 1.0}, fr, 0) == {'a': 'train'}
  two = offline_build.assign_splits({'a': 1.0, 'b': 1.0}, fr, 0)
  assert sorted(two.values()).count('train') >= 1


def test_rerun_of_a_complete_corpus_does_nothing(corpus, tree):
  folder, info = corpus
  again = offline_build.build(folder, options(tree))
  assert again['converted'] == 0
  assert again['manifest_sha1'] == info['manifest_sha1']


def test_resume_after_interruption(tree, tmp_path, monkeypatch):
  folder = str(tmp_path / 'c')
  real = offline_build.run_job
  calls = []

  def dies_after_three(job, corpus_dir):
    if len(calls) == 3:
      raise KeyboardInterrupt  # the user pressed Ctrl-C
    calls.append(job.key)
    return real(job, corpus_dir)

  monkeypatch.setattr(offline_build, 'run_job', dies_after_three)
  with pytest.raises(KeyboardInterrupt):
    offline_build.build(folder, options(tree))
  assert not os.path.exists(os.path.join(folder, offline_build.MARKER))
  with pytest.raises(offline.CorpusError, match='(?s)incomplete.*build_corpus'):
    offline.load_split(folder, 'train')
  # A crash mid-write: a stray partial file and a clip with no journal line.
  clip = os.path.join(folder, 'clips/fake-eve/utt2.flac')
  os.makedirs(os.path.dirname(clip), exist_ok=True)
  with open(clip, 'wb') as f:
    f.write(b'fLaC truncated')
  open(clip + '.partial-deadbeef', 'wb').close()

  redone = []

  def counts(job, corpus_dir):
    redone.append(job.key)
    return real(job, corpus_dir)

  monkeypatch.setattr(offline_build, 'run_job', counts)
  info = offline_build.build(folder, options(tree))
  total = 15 + 3 + 4  # speech, bad files, noise
  assert len(redone) == total - 3 and not set(redone) & set(calls)
  assert sf.info(clip).samplerate == 16000  # rewritten, readable
  fresh = offline_build.build(str(tmp_path / 'fresh'), options(tree))
  assert info['manifest_sha1'] == fresh['manifest_sha1']
  assert offline.load_split(folder, 'train').speech.data.dtype == np.int16


def test_missing_package_names_the_apt_get_line(tree, tmp_path):
  gone = FileSource(
    name='not-installed',
    root='/usr/share/nowhere',
    kind='speech',
    formats=(Format('.g722', 'asterisk-core-sounds-xx-g722', 'g722'),),
    licence='x',
  )
  opts = options(tree, speech_sources=speech_sources() + (gone,))
  with pytest.raises(offline_build.MissingPackagesError) as e:
    offline_build.build(str(tmp_path / 'm'), opts)
  msg = str(e.value)
  assert 'apt-get install -y --no-install-recommends' in msg
  assert 'asterisk-core-sounds-xx-g722 (for not-installed)' in msg
  assert '--install' in msg and '--skip_missing' in msg
  assert e.value.packages == ['asterisk-core-sounds-xx-g722']
  opts.skip_missing = True
  info = offline_build.build(str(tmp_path / 'm'), opts)
  assert 'not-installed' not in info['sources']


def test_folder_without_speech_and_unusable_source(tree, tmp_path):
  empty = os.path.join(tree, 'usr/share/nospeech')
  os.makedirs(empty, exist_ok=True)
  with open(os.path.join(empty, 'README'), 'w') as f:
    f.write('no audio here')
  src = FileSource(
    name='nospeech',
    root='/usr/share/nospeech',
    kind='speech',
    formats=(Format('.wav', 'nospeech-pkg'),),
    licence='x',
  )
  with pytest.raises(offline_sources.SourceError) as e:
    offline_build.build(
      str(tmp_path / 'a'), options(tree, speech_sources=(src,))
    )
  assert 'holds no speech files' in str(e.value)
  assert 'apt-get install -y --no-install-recommends nospeech-pkg' in str(
    e.value
  )
  # Files that are there but all unusable (empty, corrupt, silent).
  bad = FileSource(
    name='bad',
    root='/usr/share/fake/ann',
    kind='speech',
    formats=(Format('.wav', 'bad-pkg'),),
    licence='x',
    include=('empty.wav', 'corrupt.wav', 'silent.wav'),
  )
  with pytest.raises(offline_sources.SourceError, match='none of the files'):
    offline_build.build(
      str(tmp_path / 'b'),
      options(tree, speech_sources=speech_sources() + (bad,)),
    )


FAKE_ENGINE = """#!{python}
import sys
import numpy as np, soundfile as sf
args = sys.argv[1:]
out = args[args.index('-w') + 1]
text = open(args[args.index('-f') + 1]).read()
pitch = int(args[args.index('-p') + 1])
sr = 22050
t = np.arange(int(sr * (0.4 + 0.01 * len(text)))) / sr
x = 0.3 * np.sin(2 * np.pi * (80 + 2 * pitch) * t) * (1 + np.sin(9 * t)) / 2
sf.write(out, x, sr)
"""


def test_tts_voices_read_text(tree, tmp_path, monkeypatch):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  engine = bin_dir / 'espeak-ng'
  engine.write_text(FAKE_ENGINE.format(python=sys.executable))
  engine.chmod(engine.stat().st_mode | stat.S_IEXEC)
  monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
  text = os.path.join(tree, 'usr/share/common-licenses/TEXT')
  os.makedirs(os.path.dirname(text), exist_ok=True)
  with open(text, 'w') as f:
    f.write(
      'This is the first sentence of the text. A second one follows here! '
      'NO WARRANTY IS GIVEN FOR ANYTHING AT ALL. Short. '
      'See https://example.invalid/ for more details of it. '
      'And the third sentence ends the file?'
    )
  voices = tuple(
    offline_sources.TtsVoice(
      f'fake-{v}', 'espeak-ng', f'en-us+{v}', ('espeak-ng',), f'tts-{v}', 'x'
    )
    for v in ('m1', 'f1', 'm2')
  )
  opts = options(
    tree,
    speech_sources=(),
    voices=voices,
    text_files=('/usr/share/common-licenses/TEXT',),
    tts_minutes=0.05,
  )
  assert offline_build.read_sentences([text]) == [
    'This is the first sentence of the text.',
    'A second one follows here!',
    'And the third sentence ends the file?',
  ]
  folder = str(tmp_path / 'tts')
  info = offline_build.build(folder, opts)
  rows = [r for r in manifest(folder) if r['kind'] == 'speech']
  assert rows and {r['origin'] for r in rows} == {'tts'}
  assert all(r['text'] and r['original'].startswith('espeak-ng:') for r in rows)
  assert {r['speaker'] for r in rows} == {'tts-m1', 'tts-f1', 'tts-m2'}
  assert len({r['split'] for r in rows}) == 3
  assert info['stats']['train']['tts_speakers'] == 1


def test_trim_silence_keeps_the_sound_plus_the_margin():
  sr = 16000
  tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr // 2) / sr)
  x = np.concatenate([np.zeros(sr // 2), tone, np.zeros(sr // 2)])
  got = offline_build.trim_silence(x, sr, margin=0.1)
  # The tone fills 10 ms frames 50..99 exactly; 0.1 s is kept either side.
  np.testing.assert_array_equal(got, x[sr // 2 - 1600 : sr + 1600])
  empty = offline_build.trim_silence(np.zeros(sr), sr)
  assert empty.size == 0, f'expected nothing from silence, got {empty.size}'


def test_prepare_speech_resamples_to_16k_and_guards_the_peak():
  # A steady 300 Hz tone at 8 kHz, peak 2 (it would clip): nothing to trim,
  # so it comes back as the same tone at 16 kHz with its peak at 0.99.
  x = 2.0 * np.sin(2 * np.pi * 300 * np.arange(8000) / 8000)
  got = offline_build.prepare_speech(x, 8000)
  assert got.dtype == np.float32, got.dtype
  assert got.shape == (16000,), f'expected (16000,), got {got.shape}'
  peak = float(np.max(np.abs(got)))
  assert peak == pytest.approx(0.99, abs=1e-6), f'expected 0.99, got {peak}'
  want = 0.99 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)
  err = float(np.max(np.abs(got[400:-400] - want[400:-400])))
  assert err < 0.01, f'expected the 16 kHz tone, max deviation {err}'


@pytest.mark.parametrize(
  'x, match',
  [
    (np.zeros(16000), 'silent'),
    (np.sin(np.arange(1600) / 5), 'shorter than 0.2 s'),  # 0.1 s of tone
  ],
)
def test_prepare_speech_refuses_unusable_clips(x, match):
  with pytest.raises(audio_io.AudioError, match=match):
    offline_build.prepare_speech(x, 16000)


def test_prepare_noise_refuses_silent_and_too_short_clips():
  with pytest.raises(audio_io.AudioError, match='silent'):
    offline_build.prepare_noise(np.zeros(16000), 16000)
  short = np.sin(np.arange(480) / 5)  # 30 ms
  with pytest.raises(audio_io.AudioError, match='shorter than 50 ms'):
    offline_build.prepare_noise(short, 16000)


def test_decode_raw16k_is_little_endian_int16_at_16k(tmp_path):
  path = tmp_path / 'a.raw'
  np.array([0, 16384, -32768], '<i2').tofile(path)
  x, sr = offline_build.decode(str(path), 'raw16k')
  assert sr == 16000, f'expected 16000 Hz, got {sr}'
  np.testing.assert_array_equal(x, np.array([0.0, 0.5, -1.0], np.float32))
  with pytest.raises(ValueError, match="Unknown decoder 'mp9'"):
    offline_build.decode(str(path), 'mp9')
  (tmp_path / 'empty.raw').write_bytes(b'')
  with pytest.raises(audio_io.AudioError, match='empty'):
    offline_build.decode(str(tmp_path / 'empty.raw'), 'raw16k')


def test_file_sha1_is_the_sha1_of_the_bytes(tmp_path):
  data = bytes(range(256)) * 5000  # more than one 1 MiB read
  (tmp_path / 'f').write_bytes(data)
  want = hashlib.sha1(data).hexdigest()
  got = offline_build.file_sha1(str(tmp_path / 'f'))
  assert got == want, f'expected {want}, got {got}'
