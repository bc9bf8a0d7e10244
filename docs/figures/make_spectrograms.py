r"""Spectrograms of a real noisy recording before and after the pretrained model.

  apt-get install pocketsphinx-testdata sonic-pi-samples   # as root, once
  python docs/figures/make_spectrograms.py [--snr=5] [--output=...]

By default the recording is real speech mixed with a real recorded noise,
both from Debian packages (the sources of the offline corpus,
`data_pipelines/offline_sources.py`, which `launch/build_corpus.py
--install` installs): a LibriVox reading of *Sense and Sensibility* from
`pocketsphinx-testdata` (a reader the shipped model never trained on: the
corpus puts this reader in the validation split, which only picked the
checkpoint) and `loop_3d_printer` from `sonic-pi-samples` (a recorded 3D
printer, CC0; the corpus splits noise files per file, so the model may have
heard this one in training), mixed by the corpus rule
(`data_pipelines.mixing.mix`) at `--snr` dB and -25 dBFS. `--noisy=FILE`
(with `--clean=FILE` for the scores) takes any other recording instead,
e.g. python-pesq's `speech_bab_0dB.wav` and `speech.wav` (from its
repository, ludlows/python-pesq, folder `audio/`).

The model is `s4jax.from_pretrained('spiking_s4')`, applied to the whole
signal. The script prints PESQ-WB, STOI and SI-SNR of the noisy input and
of the enhanced output, and writes a three-row figure (noisy, enhanced,
clean) to `docs/figures/spectrograms.png`. About 20 s on a 2-core CPU.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see docs/figures/_checkout.py.
  import _checkout  # noqa: F401

import io
import os

import matplotlib
import numpy as np
from absl import app, flags
from PIL import Image

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # noqa: E402

import s4jax  # noqa: E402
from data_pipelines import audio_io, mixing  # noqa: E402
from harness import metrics as metrics_lib  # noqa: E402
from s4jax.audio import stft as stft_lib  # noqa: E402

SPEECH = (
  '/usr/share/pocketsphinx/test/data/librivox/'
  'sense_and_sensibility_01_austen_64kb-0870.wav'
)
NOISE = '/usr/share/sonic-pi/samples/loop_3d_printer.flac'
PACKAGES = 'pocketsphinx-testdata sonic-pi-samples'
METRICS = ('pesq_wb', 'stoi', 'si_snr')

_SPEECH = flags.DEFINE_string('speech', SPEECH, 'Clean speech to mix.')
_NOISE = flags.DEFINE_string('noise', NOISE, 'Recorded noise to mix.')
_SNR = flags.DEFINE_float('snr', 5.0, 'SNR of the mixture (dB).')
_NOISY = flags.DEFINE_string(
  'noisy', None, 'A noisy recording to use instead of mixing.'
)
_CLEAN = flags.DEFINE_string(
  'clean', None, 'With --noisy: its clean reference (for the scores).'
)
_MODEL = flags.DEFINE_string('model', 'spiking_s4', 'Pretrained model name.')
_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(os.path.dirname(__file__), 'spectrograms.png'),
  'Where to write the PNG.',
)


def read(path: str, rate: int) -> np.ndarray:
  """Mono float32 at `rate`; names the Debian packages if the file is absent."""
  if not os.path.exists(path):
    raise app.UsageError(
      f'{path} not found: install it with `apt-get install {PACKAGES}` '
      '(as root), or pass --noisy=FILE.'
    )
  x, _ = audio_io.read_audio(path, rate, mono='first')
  return x


def signals(rate: int) -> tuple[np.ndarray, np.ndarray | None, str]:
  """`(noisy, clean or None, description)` at `rate`."""
  if _NOISY.value:
    noisy = read(_NOISY.value, rate)
    clean = read(_CLEAN.value, rate)[: len(noisy)] if _CLEAN.value else None
    return noisy, clean, os.path.basename(_NOISY.value)
  clean = read(_SPEECH.value, rate)
  noise = read(_NOISE.value, rate)
  if len(noise) < len(clean):
    noise = np.resize(noise, len(clean))  # Loop a short noise.
  mix = mixing.mix(clean, noise[: len(clean)], _SNR.value, -25.0, rate)
  description = (
    f'{os.path.basename(_SPEECH.value)} + '
    f'{os.path.basename(_NOISE.value)} at {_SNR.value:g} dB SNR'
  )
  return mix.noisy.astype(np.float32), mix.clean.astype(np.float32), description


def scores(estimate, clean, noisy, rate) -> dict[str, float]:
  """PESQ-WB, STOI and SI-SNR of `estimate` against `clean`."""
  return metrics_lib.compute_metrics(
    METRICS, estimate, clean, noisy=noisy, sample_rate=rate
  )


def spectrogram_db(x: np.ndarray) -> np.ndarray:
  """Log-magnitude spectrogram (Hann 512 / hop 128), `(bins, frames)` dB."""
  spec = np.abs(np.asarray(stft_lib.stft(x, 512, 128, window='hann')))
  return 20.0 * np.log10(spec.T + 1e-5)


def plot(rows, rate: int, path: str) -> None:
  """`rows`: `(title, signal)` pairs, drawn top to bottom on one scale."""
  specs = [spectrogram_db(x) for _, x in rows]
  top = max(s.max() for s in specs)
  fig, axes = plt.subplots(
    len(rows), 1, figsize=(7.0, 2.0 * len(rows)), layout='constrained'
  )
  for ax, (title, x), spec in zip(
    np.atleast_1d(axes), rows, specs, strict=True
  ):
    extent = (0.0, len(x) / rate, 0.0, rate / 2000.0)
    image = ax.imshow(
      spec,
      origin='lower',
      aspect='auto',
      extent=extent,
      vmin=top - 80.0,
      vmax=top,
      cmap='magma',
    )
    ax.set_title(title, fontsize=9)
    ax.set_ylabel('kHz')
  np.atleast_1d(axes)[-1].set_xlabel('time (s)')
  fig.colorbar(image, ax=axes, label='dB', fraction=0.03, pad=0.01)
  save_small(fig, path)


def save_small(fig, path: str) -> None:
  """Writes `fig` as a 256-colour PNG (a fraction of the RGBA size)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, dpi=80)
  buffer.seek(0)
  image = Image.open(buffer).convert('RGB').quantize(colors=256)
  image.save(path, optimize=True)
  print(f'wrote {path} ({os.path.getsize(path):,} bytes)')


def _line(name: str, values: dict[str, float]) -> str:
  return f'{name}: ' + ', '.join(f'{k} {v:.3f}' for k, v in values.items())


def main(argv):
  """Enhances the recording, prints its scores and draws the figure."""
  del argv
  model = s4jax.from_pretrained(_MODEL.value)
  rate = model.sample_rate
  noisy, clean, description = signals(rate)
  enhanced = np.asarray(model(noisy), np.float32)
  print(f'{description}: {len(noisy) / rate:.2f} s at {rate} Hz')
  rows = [(f'noisy input ({description})', noisy)]
  enhanced_title = f'enhanced by {_MODEL.value}'
  if clean is not None:
    before = scores(noisy, clean, noisy, rate)
    after = scores(enhanced, clean, noisy, rate)
    print(_line('noisy   ', before))
    print(_line('enhanced', after))
    enhanced_title += (
      ' ('
      + ', '.join(f'{k} {before[k]:.2f} -> {after[k]:.2f}' for k in METRICS)
      + ')'
    )
  rows.append((enhanced_title, enhanced))
  if clean is not None:
    rows.append(('clean reference', clean))
  plot(rows, rate, _OUTPUT.value)


if __name__ == '__main__':
  app.run(main)
