"""A fake offline-corpus source tree and build options (no packages, no net).

Shared by offline_build_test, offline_test and input_pipeline_test; the
`tree` and `corpus` fixtures of conftest.py build them once per module.
"""

import csv
import os

import numpy as np
import soundfile as sf

from configs import base
from data_pipelines import noise_synth, offline_build, speech_synth
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


def manifest(folder):
  """The rows of a corpus's manifest.csv."""
  with open(os.path.join(folder, 'manifest.csv'), newline='') as f:
    return list(csv.DictReader(f))


def offline_config(folder, **data):
  """A base config reading the offline corpus at `folder`."""
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


def single_host():
  """Iterator keyword arguments of a one-process run."""
  return {'process_index': 0, 'process_count': 1}
