r"""Enhances audio files with a trained model.

  python launch/enhance.py --workdir=runs/demo noisy.wav more/ \
      --output_dir=enhanced [--streaming] [--step=best]
  python launch/enhance.py --checkpoint=runs/demo/checkpoints/1500 ...

Inputs are WAV/FLAC/OGG/AIFF files or folders (searched recursively; the
folder layout is kept under `--output_dir`). Any sample rate is accepted:
audio is resampled to the model's rate and the result back to the file's
rate; multi-channel files are mixed down to mono (with a warning). Files are
processed in windows of `--chunk_seconds` with `--context_seconds` of extra
audio on each side (discarded), so memory stays constant however long the
file; `--streaming` instead feeds the model frame by frame through its
streaming mode (exact, causal; Spiking-S4). Empty, NaN/Inf and unreadable
files are refused with a message naming the file; an input is never
overwritten.
"""

from __future__ import annotations

import collections
import math
import os
import sys
from collections.abc import Callable, Iterator

import numpy as np
import soundfile as sf
from absl import app, flags, logging

from data_pipelines import audio_io
from s4jax.training import runtime

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training run directory.')
_CHECKPOINT = flags.DEFINE_string(
  'checkpoint', None, 'A checkpoint folder (<workdir>/checkpoints/<step>).'
)
_STEP = flags.DEFINE_string(
  'step', 'latest', 'With --workdir: latest, best or a step number.'
)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where results go.')
_STREAMING = flags.DEFINE_bool(
  'streaming', False, 'Frame-by-frame causal processing (streaming mode).'
)
_CHUNK = flags.DEFINE_float('chunk_seconds', 8.0, 'Window length (s).')
_CONTEXT = flags.DEFINE_float(
  'context_seconds', 1.0, 'Extra audio each side of a window (s).'
)
_SUBTYPE = flags.DEFINE_string(
  'subtype', 'PCM_16', 'Output sample format (PCM_16, PCM_24, FLOAT).'
)

BLOCK = 1 << 16  # Samples per read when scanning a file.


class InputError(ValueError):
  """An input file or folder that cannot be processed."""


# Files -----------------------------------------------------------------------


def collect_inputs(paths: list[str]) -> list[tuple[str, str]]:
  """`(file, path relative to the output folder)` for files and folders."""
  if not paths:
    raise InputError('No input files given: pass audio files or folders.')
  out = []
  for path in paths:
    if os.path.isdir(path):
      files = audio_io.list_audio_files(path)
      if not files:
        raise InputError(f'Folder {path} contains no audio files.')
      out += [(f, os.path.relpath(f, path)) for f in files]
    elif os.path.exists(path):
      out.append((path, os.path.basename(path)))
    else:
      raise InputError(f'Input {path} does not exist.')
  return out


def check_file(path: str) -> tuple[int, int, int]:
  """`(frames, sample_rate, channels)`; refuses unreadable/empty/NaN files.

  The whole file is scanned in blocks (constant memory) before any output is
  written.
  """
  try:
    info = sf.info(path)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise InputError(f'Cannot read {path}: {e}') from e
  if info.frames <= 0:
    raise InputError(f'{path} is empty (0 samples).')
  with sf.SoundFile(path) as f:
    for block in f.blocks(BLOCK, dtype='float32', always_2d=True):
      if not np.all(np.isfinite(block)):
        raise InputError(f'{path} contains NaN or Inf samples.')
  if info.channels > 1:
    logging.warning(
      '%s has %d channels; mixing down to mono.', path, info.channels
    )
  return int(info.frames), int(info.samplerate), int(info.channels)


def file_reader(handle: sf.SoundFile, frames: int) -> Callable:
  """`get(a, b)`: mono samples `[a, b)`, zeros outside the file."""

  def get(a: int, b: int) -> np.ndarray:
    out = np.zeros(b - a, np.float32)
    lo, hi = max(a, 0), min(b, frames)
    if hi > lo:
      handle.seek(lo)
      data = handle.read(hi - lo, dtype='float32', always_2d=True)
      out[lo - a : lo - a + len(data)] = data.mean(axis=1)
    return out

  return get


# Resampling of arbitrary stretches --------------------------------------------


class Rates:
  """Sample-exact correspondence between the file rate and the model rate.

  Stretches start on multiples of `unit_file` / `unit_model` samples (the
  two rates' common period), where both grids have a sample.
  """

  def __init__(self, file_rate: int, model_rate: int):
    g = math.gcd(file_rate, model_rate)
    self.file_rate, self.model_rate = file_rate, model_rate
    self.unit_file, self.unit_model = file_rate // g, model_rate // g

  def margin(self, rate_from: int) -> int:
    """Samples at `rate_from` covering the polyphase filter's half length."""
    if self.file_rate == self.model_rate:
      return 0
    up, down = (
      (self.unit_model, self.unit_file)
      if rate_from == self.file_rate
      else (self.unit_file, self.unit_model)
    )
    half = math.ceil(10 * max(up, down) / up) + 8
    unit = down
    return unit * math.ceil(half / unit)

  def convert(
    self, get: Callable, start: int, stop: int, rate_from: int
  ) -> np.ndarray:
    """Samples `[start, stop)` at the other rate of a signal at `rate_from`.

    `start` must be a multiple of the target grid's unit.
    """
    if self.file_rate == self.model_rate:
      return get(start, stop)
    to_file = rate_from == self.model_rate
    u_from, u_to = (
      (self.unit_model, self.unit_file)
      if to_file
      else (self.unit_file, self.unit_model)
    )
    if start % u_to:
      raise ValueError(f'start {start} is not on the {u_to}-sample grid.')
    margin = self.margin(rate_from)
    a = start // u_to * u_from - margin
    b = -(-stop * u_from // u_to) + margin
    rate_to = self.file_rate if to_file else self.model_rate
    y = audio_io.resample(get(a, b), rate_from, rate_to)
    skip = margin // u_from * u_to
    return y[skip : skip + stop - start]


# Processing -------------------------------------------------------------------


def _grid(rates: Rates, seconds: float, multiple: int = 1) -> int:
  """Model-rate samples near `seconds`, on both grids and `multiple`."""
  step = math.lcm(rates.unit_model, multiple)
  return max(step, step * round(seconds * rates.model_rate / step))


def _windows(model, rates, get_file, n_model, chunk, context):
  """Offline: model output, chunk by chunk, with `q` samples of margin."""
  q = min(context, _grid(rates, 0.05))
  previous = None
  for start in range(0, n_model, chunk):
    window = rates.convert(
      get_file, start - context, start + chunk + context, rates.file_rate
    )
    out = model(window)
    out = out.reshape(-1, out.shape[-1])  # (S, W)
    if previous is not None and out.shape[0] > 1:
      # Keep the speaker order: compare the stretch both windows saw.
      perm = _order(model, previous, out, chunk, context)
      out = out[list(perm)]
    previous = out
    yield start, out[:, context - q : context + chunk + q], q


def _order(model, previous, current, chunk, context):
  from s4jax.training import inference  # pylint: disable=g-import-not-at-top

  del model
  shared_prev = previous[:, chunk : chunk + 2 * context]
  shared_cur = current[:, : 2 * context]
  return inference.best_permutation(shared_prev, shared_cur)


def _streamed(model, rates, get_file, n_model, chunk):
  """Streaming: hop by hop through the model's stateful streaming mode."""
  from s4jax.audio import stft  # pylint: disable=g-import-not-at-top

  enhancer = model.streamer()
  hop = int(enhancer.model.hop_length)
  # Output hop k carries input hop k - delay (Spiking-S4 streaming STFT).
  latency = hop * stft.stream_reference_delay(enhancer.model.streaming_stft)
  pending = collections.deque()
  produced = -latency  # Model-rate position of the next output sample.
  q = _grid(rates, 0.05)
  buffer, buffer_start = np.zeros(0, np.float32), -q
  target = 0  # Next chunk start to emit.
  for start in range(0, n_model, chunk):
    x = rates.convert(get_file, start, start + chunk, rates.file_rate)
    for h in range(0, chunk, hop):
      pending.append(enhancer(x[None, h : h + hop])[0])
    out = np.concatenate(list(pending)) if pending else np.zeros(0)
    pending.clear()
    buffer, buffer_start = _append(buffer, buffer_start, out, produced)
    produced += len(out)
    while buffer_start + len(buffer) >= target + chunk + q:
      yield _take(buffer, buffer_start, target, chunk, q)
      buffer, buffer_start = _drop(buffer, buffer_start, target + chunk - q)
      target += chunk
  tail = enhancer.flush()[0]
  buffer, buffer_start = _append(buffer, buffer_start, tail, produced)
  while target < n_model:
    yield _take(buffer, buffer_start, target, chunk, q)
    target += chunk


def _append(buffer, start, out, position):
  if position < 0:  # Drop the latency warm-up before position 0.
    out = out[-position:] if -position < len(out) else out[:0]
    position = 0
  if not len(buffer):
    pad = position - start
    buffer = np.concatenate([np.zeros(pad, np.float32), out])
    return buffer.astype(np.float32), start
  return np.concatenate([buffer, out]).astype(np.float32), start


def _take(buffer, start, target, chunk, q):
  a, b = target - q - start, target + chunk + q - start
  piece = np.zeros(b - a, np.float32)
  lo, hi = max(a, 0), min(b, len(buffer))
  if hi > lo:
    piece[lo - a : hi - a] = buffer[lo:hi]
  return target, piece[None], q


def _drop(buffer, start, keep_from):
  cut = max(keep_from - start, 0)
  return buffer[cut:], start + cut


def process_file(
  model,
  path: str,
  outputs: list[str],
  *,
  streaming: bool,
  chunk_seconds: float,
  context_seconds: float,
  subtype: str,
  info: tuple[int, int, int] | None = None,
) -> float:
  """Processes one file into `outputs` (one per source); returns seconds."""
  frames, rate, _ = info or check_file(path)
  rates = Rates(rate, model.sample_rate)
  n_model = -(-frames * rates.unit_model // rates.unit_file)
  multiple = 128 if streaming else 1
  chunk = _grid(rates, chunk_seconds, multiple)
  step = math.lcm(rates.unit_model, multiple)
  chunk = min(chunk, step * -(-n_model // step))  # Short files: one window.
  context = _grid(rates, context_seconds) if context_seconds > 0 else 0
  with sf.SoundFile(path) as handle:
    get_file = file_reader(handle, frames)
    pieces: Iterator = (
      _streamed(model, rates, get_file, n_model, chunk)
      if streaming
      else _windows(model, rates, get_file, n_model, chunk, context)
    )
    _write(pieces, outputs, rates, frames, subtype, path)
  return frames / rate


def _write(pieces, outputs, rates, frames, subtype, source):
  tmp = [f'{o}.partial{os.path.splitext(o)[1]}' for o in outputs]
  for o in outputs:
    os.makedirs(os.path.dirname(os.path.abspath(o)), exist_ok=True)
  fmt = {'.flac': 'FLAC', '.ogg': 'OGG'}.get(
    os.path.splitext(outputs[0])[1].lower(), 'WAV'
  )
  sub = subtype if fmt == 'WAV' else None
  handles = [
    sf.SoundFile(
      t, 'w', samplerate=rates.file_rate, channels=1, format=fmt, subtype=sub
    )
    for t in tmp
  ]
  written = 0
  try:
    for start, piece, q in pieces:
      chunk = piece.shape[-1] - 2 * q
      first = start // rates.unit_model * rates.unit_file
      last = -(-(start + chunk) * rates.unit_file // rates.unit_model)
      for handle, signal in zip(handles, piece, strict=False):
        get = lambda a, b, s=signal, o=start - q: _slice(s, a - o, b - o)  # noqa: E731
        y = rates.convert(get, first, last, rates.model_rate)
        y = y[: max(frames - written, 0)]
        if not np.all(np.isfinite(y)):
          raise InputError(f'The model produced NaN/Inf for {source}.')
        handle.write(np.clip(y, -1.0, 1.0) if subtype.startswith('PCM') else y)
      written += len(y)
  finally:
    for handle in handles:
      handle.close()
  for t, o in zip(tmp, outputs, strict=True):
    os.replace(t, o)


def _slice(signal: np.ndarray, a: int, b: int) -> np.ndarray:
  out = np.zeros(b - a, np.float32)
  lo, hi = max(a, 0), min(b, len(signal))
  if hi > lo:
    out[lo - a : hi - a] = signal[lo:hi]
  return out


def output_paths(out_dir: str, relative: str, sources: int) -> list[str]:
  """Result file(s) for one input (`_s1`, `_s2`, ... for separation)."""
  stem, ext = os.path.splitext(os.path.join(out_dir, relative))
  ext = ext if ext.lower() in ('.wav', '.flac') else '.wav'
  if sources == 1:
    return [stem + ext]
  return [f'{stem}_s{i + 1}{ext}' for i in range(sources)]


def _check_not_input(path: str, outputs: list[str]) -> None:
  for o in outputs:
    same = os.path.exists(o) and os.path.samefile(path, o)
    if same or os.path.abspath(path) == os.path.abspath(o):
      raise InputError(
        f'Refusing to overwrite the input {path}; choose another --output_dir.'
      )


def run(task_name: str, inputs: list[str]) -> None:
  """Shared main of `enhance.py` and `separate.py`."""
  from s4jax.training import inference  # pylint: disable=g-import-not-at-top

  if bool(_WORKDIR.value) == bool(_CHECKPOINT.value):
    raise InputError('Pass exactly one of --workdir and --checkpoint.')
  if not _OUTPUT_DIR.value:
    raise InputError('--output_dir is required.')
  if _CHUNK.value <= 0 or _CONTEXT.value < 0:
    raise InputError('--chunk_seconds must be > 0, --context_seconds >= 0.')
  files = collect_inputs(inputs)
  infos = {}
  for path, relative in files:  # Refuse bad inputs before loading a model.
    infos[path] = check_file(path)
    _check_not_input(path, output_paths(_OUTPUT_DIR.value, relative, 1))
  model = inference.load(
    _WORKDIR.value or _CHECKPOINT.value,
    None if _CHECKPOINT.value else _STEP.value,
  )
  if (task_name == 'separation') != model.separates:
    tool = 'separate.py' if model.separates else 'enhance.py'
    raise InputError(
      f'The checkpoint holds a {model.task.name} model; use launch/{tool}.'
    )
  if _STREAMING.value:
    model.streamer()  # Fails early with a clear message if unsupported.
  logging.info(
    'Model %s, step %d, %d Hz.',
    model.config.model.name,
    model.step,
    model.sample_rate,
  )
  for path, relative in files:
    outs = output_paths(_OUTPUT_DIR.value, relative, model.num_outputs)
    _check_not_input(path, outs)
    seconds = process_file(
      model,
      path,
      outs,
      info=infos[path],
      streaming=_STREAMING.value,
      chunk_seconds=_CHUNK.value,
      context_seconds=_CONTEXT.value,
      subtype=_SUBTYPE.value,
    )
    print(f'{path} ({seconds:.1f} s) -> {", ".join(outs)}')


def cli_main(task_name: str) -> Callable[[list[str]], None]:
  """An `app.run` main for `task_name` with one-line errors."""

  def main(argv):
    from s4jax.training import errors  # pylint: disable=g-import-not-at-top

    runtime.quiet_library_logs()
    try:
      run(task_name, argv[1:])
    except (InputError, audio_io.AudioError, *errors.USER_ERRORS) as e:
      logging.debug('Stopped by', exc_info=True)
      sys.exit(f'error: {e}')

  return main


if __name__ == '__main__':
  app.run(cli_main('enhancement'), flags_parser=runtime.parse_flags)
