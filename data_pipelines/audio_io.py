"""Reading, writing and resampling audio files (NumPy, soundfile, SciPy).

Shared by the command-line tools (`launch/enhance.py`, `launch/synthesize.py`)
and the corpus builders. Everything here works on 1-D float arrays in
[-1, 1] full scale; levels are in dBFS as `20 log10(rms)` (a full-scale sine
is -3 dBFS), the convention of the DNS Challenge scripts.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import soundfile as sf

from s4jax.audio import resample as resample_lib

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.oga', '.aiff', '.aif', '.au')
_EPS = 1e-12


class AudioError(ValueError):
  """An audio file or signal that cannot be used as it is."""


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
  """Band-limited polyphase resampling along the last axis.

  `s4jax.audio.resample.resample`, with `AudioError` for a bad rate.

  Args:
    x: real (..., T) signal.
    orig_sr: its sample rate in Hz.
    target_sr: the wanted sample rate in Hz.

  Returns:
    real (..., T') with T' = ceil(T * target_sr / orig_sr), same dtype as `x`.
  """
  try:
    orig_sr, target_sr = resample_lib.check_rates(orig_sr, target_sr)
  except ValueError as e:
    raise AudioError(str(e)) from None
  return resample_lib.resample(x, orig_sr, target_sr)


def _check_finite(x: np.ndarray, what: str) -> None:
  if x.size == 0:
    raise AudioError(f'{what} is empty (0 samples).')
  if not np.all(np.isfinite(x)):
    bad = int(np.sum(~np.isfinite(x)))
    raise AudioError(
      f'{what} contains {bad} NaN/Inf samples; the file is corrupt or was '
      'written from a diverged model. Re-create it.'
    )


def read_audio(
  path: str | os.PathLike,
  target_sr: int | None = None,
  *,
  mono: str = 'mix',
) -> tuple[np.ndarray, int]:
  """Reads an audio file as mono float32, optionally resampled.

  Args:
    path: a WAV/FLAC/OGG/AIFF file (anything libsndfile reads).
    target_sr: resample to this rate (Hz); None keeps the file's rate.
    mono: what to do with a multi-channel file: 'mix' averages the channels
      (with a warning), 'first' keeps channel 0, 'error' refuses.

  Returns:
    (x, original_sr): x is real (T,) float32 at `target_sr` (or the original
    rate), original_sr the file's own sample rate.

  Raises:
    FileNotFoundError: the file does not exist.
    AudioError: unreadable, empty, non-finite, or multi-channel with
      mono='error'.
  """
  if mono not in ('mix', 'first', 'error'):
    raise ValueError(f"mono must be 'mix', 'first' or 'error', got {mono!r}.")
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'Audio file not found: {path}')
  if os.path.isdir(path):
    raise AudioError(f'{path} is a directory, not an audio file.')
  try:
    x, sr = sf.read(path, dtype='float32', always_2d=True)
  except (sf.LibsndfileError, RuntimeError, TypeError) as e:
    raise AudioError(
      f'Cannot read audio file {path}: {e}. Readable formats: WAV, FLAC, '
      'OGG/Vorbis, AIFF; convert others first (e.g. `sox in.mp3 out.wav`).'
    ) from e
  _check_finite(x, f'Audio file {path}')
  if x.shape[1] > 1:
    if mono == 'error':
      raise AudioError(
        f'{path} has {x.shape[1]} channels; a mono file is required. '
        f'Convert it (e.g. `sox {path} -c 1 mono.wav`) or mix it down.'
      )
    if mono == 'mix':
      warnings.warn(
        f'{path} has {x.shape[1]} channels; mixing down to mono by '
        'averaging them.',
        stacklevel=2,
      )
      x = x.mean(axis=1, keepdims=True)
  x = np.ascontiguousarray(x[:, 0])
  if target_sr is not None:
    x = resample(x, sr, target_sr)
  return x, int(sr)


def _same_path(a: str, b: str) -> bool:
  if os.path.exists(a) and os.path.exists(b):
    return os.path.samefile(a, b)
  return os.path.realpath(a) == os.path.realpath(b)


def write_audio(
  path: str | os.PathLike,
  x: np.ndarray,
  sr: int,
  *,
  protected: tuple[str | os.PathLike, ...] | str | os.PathLike = (),
  subtype: str = 'PCM_16',
) -> None:
  """Writes a mono or (T, C) signal, creating the parent folder.

  Args:
    path: output file; the format follows the extension.
    x: real (T,) or (T, C) signal in [-1, 1].
    sr: sample rate in Hz.
    protected: paths that must never be overwritten (e.g. the input file of
      an enhancement run); writing to one of them raises.
    subtype: libsndfile subtype ('PCM_16', 'PCM_24', 'FLOAT').

  Raises:
    AudioError: `x` is empty, non-finite or has a bad shape, or `path` is
      protected.
  """
  path = os.fspath(path)
  if isinstance(protected, (str, os.PathLike)):
    protected = (protected,)
  for p in protected:
    if _same_path(path, os.fspath(p)):
      raise AudioError(
        f'Refusing to overwrite {path}: it is an input file. Choose '
        'another output path.'
      )
  x = np.asarray(x)
  if x.ndim not in (1, 2):
    raise AudioError(f'Expected a (T,) or (T, C) signal, got {x.shape}.')
  _check_finite(x, f'Signal for {path}')
  if int(sr) <= 0:
    raise AudioError(f'Sample rate must be positive, got {sr}.')
  if subtype.startswith('PCM'):
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
      warnings.warn(
        f'Signal for {path} peaks at {peak:.3f} > 1 and is clipped in '
        f'{subtype}.',
        stacklevel=2,
      )
      x = np.clip(x, -1.0, 1.0)
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  sf.write(path, x, int(sr), subtype=subtype)


def list_audio_files(folder: str | os.PathLike) -> list[str]:
  """Sorted audio files under `folder` (recursive, following links)."""
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise FileNotFoundError(f'Not a folder: {folder}')
  out = []
  for root, dirs, files in os.walk(folder, followlinks=True):
    dirs.sort()
    out.extend(
      os.path.join(root, f)
      for f in sorted(files)
      if f.lower().endswith(AUDIO_EXTENSIONS)
    )
  return out


def num_frames(path: str | os.PathLike) -> tuple[int, int]:
  """(frames, sample_rate) of a file from its header, without decoding."""
  info = sf.info(os.fspath(path))
  return int(info.frames), int(info.samplerate)


def to_int16(x: np.ndarray) -> np.ndarray:
  """Float [-1, 1) to int16 with rounding and saturation."""
  return np.clip(np.round(np.asarray(x) * 32768.0), -32768, 32767).astype(
    np.int16
  )


def from_int16(x: np.ndarray) -> np.ndarray:
  """int16 to float32 in [-1, 1) (the libsndfile convention)."""
  return np.asarray(x, np.float32) / np.float32(32768.0)
