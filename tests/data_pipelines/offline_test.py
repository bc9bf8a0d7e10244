"""The offline corpus: build, manifest, splits, resume, errors, batches.

Everything runs on a fake source tree of a few generated clips (no Debian
package, no /usr/share file, no network); TTS uses a fake engine script.
"""

import csv
import json
import os
import stat
import sys

import numpy as np
import pytest
import soundfile as sf

from configs import base
from data_pipelines import (
  input_pipeline,
  noise_synth,
  offline,
  offline_build,
  offline_sources,
  speech_synth,
)
from data_pipelines.offline_sources import FileSource, Format

SPEAKERS = ('ann', 'bob', 'cat', 'dan', 'eve')


def _speech(rng, seconds, sr):
  n = int(seconds * sr)
  x = speech_synth.synthesize(rng, speech_synth.sample_talker(rng), n, sr)
  lead = np.zeros(int(0.2 * sr))  # silence to trim
  return np.concatenate([lead, 0.3 * x / np.max(np.abs(x)), lead])


def make_tree(root):
  """Five speakers (8/16/22.05 kHz, one stereo), noise, two bad files."""
  rng = np.random.default_rng(0)
  for k, spk in enumerate(SPEAKERS):
    sr = (8000, 16000, 22050)[k % 3]
    folder = os.path.join(root, 'usr/share/fake', spk)
    os.makedirs(folder)
    for i in range(3):
      x = _speech(rng, 0.6 + 0.2 * i, sr)
      if spk == 'bob' and i == 0:
        x = np.stack([x, 0.5 * x], axis=1)
      sf.write(os.path.join(folder, f'utt{i}.wav'), x, sr)
  ann = os.path.join(root, 'usr/share/fake/ann')
  open(os.path.join(ann, 'empty.wav'), 'wb').close()
  with open(os.path.join(ann, 'corrupt.wav'), 'wb') as f:
    f.write(b'RIFF\x10\x00\x00\x00WAVEjunk' + bytes(rng.integers(0, 255, 64)))
  sf.write(os.path.join(ann, 'silent.wav'), np.zeros(8000), 16000)
  noise_dir = os.path.join(root, 'usr/share/fakenoise')
  os.makedirs(noise_dir)
  for i, name in enumerate(('pink', 'machine', 'hum', 'white')):
    x = noise_synth.NOISE_TYPES[name](rng, 16000 + 4000 * i, 16000)
    sf.write(os.path.join(noise_dir, f'{name}.flac'), 0.1 * x, 16000)
  return root


def speech_sources():
  return tuple(
    FileSource(
      name=f'fake-{spk}',
      root=f'/usr/share/fake/{spk}',
      kind='speech',
      formats=(Format('.wav', f'fake-sounds-{spk}'),),
      licence='CC0-1.0',
      speaker=f'speaker-{spk}',
      language='en',
    )
    for spk in SPEAKERS
  )


NOISE = (
  FileSource(
    name='fake-noise',
    root='/usr/share/fakenoise',
    kind='noise',
    formats=(Format('.flac', 'fake-noise-pkg'),),
    licence='CC0-1.0',
    labeller='prefix',
  ),
)


def options(root, **kw):
  kw.setdefault('speech_sources', speech_sources())
  kw.setdefault('noise_sources', NOISE)
  kw.setdefault('voices', ())
  kw.setdefault('num_rirs', {'train': 3, 'validation': 2, 'test': 2})
  kw.setdefault('fractions', {'validation': 0.2, 'test': 0.2})
  return offline_build.BuildOptions(source_root=str(root), workers=1, **kw)


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
  return make_tree(str(tmp_path_factory.mktemp('tree')))


@pytest.fixture(scope='module')
def corpus(tree, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('corpus'))
  info = offline_build.build(out, options(tree))
  return out, info


def _manifest(folder):
  with open(os.path.join(folder, 'manifest.csv'), newline='') as f:
    return list(csv.DictReader(f))


def test_manifest_provenance_and_skipped_files(corpus, tree):
  folder, info = corpus
  rows = _manifest(folder)
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
  rows = [r for r in _manifest(folder) if r['kind'] == 'speech']
  by_split = {
    s: {r['group'] for r in rows if r['split'] == s}
    for s in offline_build.SPLITS
  }
  assert all(by_split.values()), by_split
  assert not by_split['train'] & by_split['validation']
  assert not by_split['train'] & by_split['test']
  assert not by_split['validation'] & by_split['test']
  noise = [r for r in _manifest(folder) if r['kind'] == 'noise']
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


def test_changed_manifest_or_missing_marker_is_not_read(corpus, tmp_path):
  folder, _ = corpus
  import shutil

  copy = str(tmp_path / 'copy')
  shutil.copytree(folder, copy)
  with open(os.path.join(copy, 'manifest.csv'), 'a') as f:
    f.write('extra\n')
  with pytest.raises(offline.CorpusError, match='changed after the build'):
    offline.check_corpus(copy)
  os.remove(os.path.join(copy, offline_build.MARKER))
  with pytest.raises(offline.CorpusError, match='incomplete'):
    offline.check_corpus(copy)
  with pytest.raises(
    offline.CorpusError, match='(?s)No offline corpus.*--install'
  ):
    offline.check_corpus(str(tmp_path / 'nothing'))


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


def test_preferred_format_and_labels(tmp_path):
  folder = tmp_path / 'usr/share/asterisk/sounds/en_US_f_Allison'
  (folder / 'silence').mkdir(parents=True)
  for name in ('a.g722', 'a.wav', 'b.wav', 'silence/1.wav'):
    (folder / name).write_bytes(b'x')
  src = offline_sources.SPEECH_SOURCES[0]  # asterisk-en: g722, else wav
  files = offline_sources.find_files(src, str(tmp_path))
  assert [os.path.basename(f) for f in files] == ['a.g722', 'b.wav']
  assert offline_sources.present_packages(src, str(tmp_path)) == {
    'asterisk-core-sounds-en-g722',
    'asterisk-core-sounds-en-wav',
  }
  # Allison reads English and Spanish: one group; flite/festival slt too.
  by_name = {s.name: s for s in offline_sources.SPEECH_SOURCES}
  assert by_name['asterisk-en'].speaker == by_name['asterisk-es'].speaker
  voices = {v.name: v for v in offline_sources.TTS_VOICES}
  assert voices['flite-slt'].speaker == voices['festival-slt-hts'].speaker
  # Fish Fillets: the character from the level script, the dub as group.
  script = tmp_path / 'usr/share/games/fillets-ng/script/keys'
  script.mkdir(parents=True)
  (script / 'dialogs.lua').write_text('dialogId("init-0-0", "font_big", "x")')
  label = offline_sources.Labeller(str(tmp_path))
  fillets = by_name['fillets-cs']
  root = offline_sources.rooted(str(tmp_path), fillets.root)
  assert label(fillets, f'{root}/keys/cs/init-0-0.ogg') == (
    'fillets-cs/big',
    'fillets-cs',
    'dialogue',
  )
  assert label(fillets, f'{root}/share/borejokes/cs/ob-m-x.ogg')[0] == (
    'fillets-cs/small'
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
  rows = [r for r in _manifest(folder) if r['kind'] == 'speech']
  assert rows and {r['origin'] for r in rows} == {'tts'}
  assert all(r['text'] and r['original'].startswith('espeak-ng:') for r in rows)
  assert {r['speaker'] for r in rows} == {'tts-m1', 'tts-f1', 'tts-m2'}
  assert len({r['split'] for r in rows}) == 3
  assert info['stats']['train']['tts_speakers'] == 1


def _config(folder, **data):
  c = base.get_base_config()
  c.data.name = 'offline'
  c.data.manual_dir = folder
  c.data.segment_seconds = 0.5
  c.data.offline_clip_seconds = 1.0
  c.data.offline_eval_examples = 5
  c.train.batch_size = 4
  c.eval.batch_size = 4
  for k, v in data.items():
    c.data[k] = v
  return c


def _hosts():
  return {'process_index': 0, 'process_count': 1}


def test_input_pipeline_batches(corpus):
  folder, _ = corpus
  c = _config(folder)
  it = input_pipeline.create_train_iterator(c, **_hosts())
  batch = next(it)
  assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == {
    k: ((4, 8000), 'float32') for k in ('noisy', 'clean', 'noise')
  }
  np.testing.assert_allclose(
    batch['clean'] + batch['noise'], batch['noisy'], atol=1e-6
  )
  level = 10 * np.log10(np.mean(batch['noisy'].astype(np.float64) ** 2, 1))
  assert np.all((level > -36) & (level < -14)), level
  again = next(input_pipeline.create_train_iterator(c, **_hosts()))
  assert batch['noisy'].tobytes() == again['noisy'].tobytes()
  batches = list(input_pipeline.create_eval_iterator(c, **_hosts()))
  assert len(batches) == 2
  assert batches[0]['noisy'].shape == (4, 16000)
  assert batches[1]['mask'].tolist() == [True, False, False, False]
  c.data.sample_rate = 8000
  input_pipeline._cached_source.cache_clear()
  assert next(input_pipeline.create_train_iterator(c, **_hosts()))[
    'noisy'
  ].shape == (4, 4000)


def test_eval_uses_the_validation_speakers_and_fixed_mixtures(corpus):
  folder, _ = corpus
  c = _config(folder)
  src = input_pipeline.make_source(c, 'validation')
  assert src.spec.seed == 0 and not src.spec.augment
  c.seed = 5
  other = input_pipeline.make_source(c, 'validation')
  assert src[2]['clean'].tobytes() == other[2]['clean'].tobytes()
  val = offline.load_split(folder, 'validation')
  train = offline.load_split(folder, 'train')
  assert not set(val.speech.group) & set(train.speech.group)


def test_reverberant_target_and_separation(corpus):
  folder, _ = corpus
  split = offline.load_split(folder, 'train')
  spec = offline.MixSpec(
    clip_seconds=1.0, reverb_prob=1.0, synthetic_noise_prob=0.0, seed=1
  )
  ex = offline.make_example(split, spec, 0)
  # The target is the early-reverberant speech: aligned with the mixture.
  corr = np.correlate(ex['noisy'], ex['clean'], 'full')
  assert abs(int(np.argmax(corr)) - (len(ex['clean']) - 1)) <= 2
  sep = offline.MixSpec(
    task='separation', clip_seconds=1.0, num_sources=2, separation_noise=True
  )
  ex = offline.make_example(split, sep, 3)
  assert ex['sources'].shape == (2, 16000) and ex['mixture'].shape == (16000,)
  assert len(set(ex['groups'].split('+'))) == 2
  np.testing.assert_allclose(
    ex['sources'].sum(0) + ex['noise'], ex['mixture'], atol=1e-6
  )


def test_missing_corpus_names_the_build_command(tmp_path):
  c = _config(str(tmp_path / 'none'))
  with pytest.raises(FileNotFoundError, match='launch/build_corpus.py'):
    input_pipeline.make_source(c, 'train')
  c.data.offline_reverb_prob = 2.0
  with pytest.raises(ValueError, match='reverb_prob'):
    input_pipeline._offline_spec(c, 'train')


def test_unknown_offline_key_is_an_error():
  c = base.get_base_config()
  c.lock()  # as launch/train.py loads it
  c.data.offline_reverb_prob = 0.5
  with pytest.raises(AttributeError):
    c.data.offline_revrb_prob = 0.5
