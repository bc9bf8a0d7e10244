"""Tests for data_pipelines.offline_sources: finding, choosing, labelling."""

import os

import pytest

from data_pipelines import offline_sources


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


def _source(**kw):
  kw.setdefault('name', 'src')
  kw.setdefault('root', '/usr/share/src')
  kw.setdefault('kind', 'speech')
  kw.setdefault(
    'formats',
    (
      offline_sources.Format('.g722', 'src-g722', 'g722'),
      offline_sources.Format('.wav', 'src-wav'),
    ),
  )
  kw.setdefault('licence', 'CC0-1.0')
  return offline_sources.FileSource(**kw)


@pytest.mark.parametrize(
  'source_root, want',
  [('', '/usr/share/x'), ('/', '/usr/share/x'), ('/r', '/r/usr/share/x')],
)
def test_rooted_puts_installed_paths_under_the_source_root(source_root, want):
  got = offline_sources.rooted(source_root, '/usr/share/x')
  assert got == want, f'expected {want}, got {got}'


def test_apt_line_sorts_and_dedupes_the_packages():
  got = offline_sources.apt_line(['b-pkg', 'a-pkg', 'b-pkg'])
  want = 'apt-get install -y --no-install-recommends a-pkg b-pkg'
  assert got == want, f'expected {want!r}, got {got!r}'


def test_find_files_honours_include_exclude_and_extensions(tmp_path):
  root = tmp_path / 'usr/share/src'
  for rel in ('a.wav', 'sub/b.wav', 'sub/c.txt', 'skip/d.wav', 'e.g722'):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(b'x')
  src = _source(exclude=('skip/*',))
  got = [
    os.path.relpath(p, root)
    for p in offline_sources.find_files(src, str(tmp_path))
  ]
  assert got == ['a.wav', 'e.g722', 'sub/b.wav'], got
  only_sub = _source(include=('sub/*',))
  got = offline_sources.find_files(only_sub, str(tmp_path))
  assert got == [str(root / 'sub/b.wav')], got


def test_missing_source_folder_names_its_packages(tmp_path):
  src = _source()
  assert src.packages == ('src-g722', 'src-wav'), src.packages
  with pytest.raises(
    offline_sources.SourceError,
    match=r'src: folder .*/usr/share/src is missing; install src-g722 src-wav',
  ):
    offline_sources.find_files(src, str(tmp_path))


def test_format_of_maps_the_extension_and_refuses_others():
  src = _source()
  assert offline_sources.format_of(src, '/x/a.g722').decoder == 'g722'
  assert offline_sources.format_of(src, '/x/a.wav').package == 'src-wav'
  with pytest.raises(ValueError, match=r'/x/a\.mp3 is not a file of src'):
    offline_sources.format_of(src, '/x/a.mp3')


def test_default_labels_of_speech_and_noise_files():
  label = offline_sources.Labeller()
  speech = _source(speaker='alice', group='g1')
  got = label(speech, '/usr/share/src/a.wav')
  assert got == ('alice', 'g1', 'prompt'), got
  unnamed = _source()
  assert label(unnamed, '/usr/share/src/a.wav') == ('src', 'src', 'prompt')
  noise = _source(kind='noise', labeller='prefix')
  got = label(noise, '/usr/share/src/rain_03.wav')
  assert got == ('', 'src/rain_03.wav', 'rain'), got
  plain = _source(kind='noise')
  assert label(plain, '/usr/share/src/x.wav')[2] == 'src', 'category = name'


def test_all_packages_adds_decoders_and_voices():
  voice = offline_sources.TtsVoice(
    'v', 'flite', 'slt', ('flite', 'flite-voice'), 'slt', 'x'
  )
  got = offline_sources.all_packages(
    speech=(_source(),), noise=(), voices=(voice,)
  )
  want = ['ffmpeg', 'flite', 'flite-voice', 'src-g722', 'src-wav']
  assert got == want, f'expected {want}, got {got}'


def test_default_tables_have_unique_names_and_known_decoders():
  sources = offline_sources.SPEECH_SOURCES + offline_sources.NOISE_SOURCES
  names = [s.name for s in sources] + [
    v.name for v in offline_sources.TTS_VOICES
  ]
  dupes = sorted({n for n in names if names.count(n) > 1})
  assert not dupes, f'duplicate source names {dupes}'
  for s in sources:
    assert s.kind in ('speech', 'noise'), f'{s.name}: kind {s.kind!r}'
    bad = [
      f.decoder for f in s.formats if f.decoder not in offline_sources.DECODERS
    ]
    assert not bad, f'{s.name}: unknown decoders {bad}'
  for v in offline_sources.TTS_VOICES:
    assert v.engine in offline_sources.ENGINE_COMMANDS, (
      f'{v.name}: engine {v.engine!r} not in ENGINE_COMMANDS'
    )
