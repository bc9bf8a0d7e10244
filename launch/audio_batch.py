r"""Runs a trained model over audio files: shared by enhance.py/separate.py.

`launch/enhance.py` and `launch/separate.py` are thin front ends to this
module: the flags they share (the model flags of `launch/model_flags.py`
among them), the input checks, reading and writing files and the report of
refused files live here (their behaviour is described in
`launch/enhance.py`). The processing itself, resampling, windows with
context, speaker order across windows and streaming, is
`s4jax.inference.iter_process`, fed from the file in blocks. Only
`enhance.py` adds `--streaming`, which `run` receives as an argument.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import sys
from collections.abc import Callable, Iterator

import numpy as np
import soundfile as sf
from absl import flags, logging

from data_pipelines import audio_io
from harness import runtime
from launch import model_flags
from s4jax import inference

flags.adopt_module_key_flags(model_flags)

_OUTPUT_DIR = flags.DEFINE_string(
  'output_dir',
  None,
  'Required. Folder for the results (input folders keep their layout '
  'under it); refused if a result would overwrite an input.',
)
_STRICT = flags.DEFINE_bool(
  'strict',
  False,
  'Write nothing if any input is refused (empty, truncated, unreadable, '
  'NaN/Inf or missing); exit status 1. Without it the good files are '
  'processed and the exit status is still 1.',
)
_CHUNK = flags.DEFINE_float(
  'chunk_seconds', 8.0, 'Window length in seconds (memory stays constant).'
)
_CONTEXT = flags.DEFINE_float(
  'context_seconds',
  1.0,
  'Extra audio each side of a window, in seconds (processed, discarded).',
)
_SUBTYPE = flags.DEFINE_string(
  'subtype', 'PCM_16', 'Output sample format (PCM_16, PCM_24, FLOAT).'
)

BLOCK = 1 << 16  # Samples per read when scanning a file.
# Past tense and -ing form of each task's verb, for the messages.
_VERBS = {
  'enhancement': ('enhanced', 'Enhancing'),
  'separation': ('separated', 'Separating'),
}
_UNSET_SIZES = (0, 0xFFFFFFFF)  # Data sizes left by streaming writers.
_AUDIO_CHUNKS = {  # (magic, form type): (byte order, audio chunk id)
  (b'RIFF', b'WAVE'): ('<', b'data'),
  (b'RIFX', b'WAVE'): ('>', b'data'),
  (b'FORM', b'AIFF'): ('>', b'SSND'),
  (b'FORM', b'AIFC'): ('>', b'SSND'),
}


class InputError(ValueError):
  """An input file or folder that cannot be processed."""


# Inputs ----------------------------------------------------------------------


@dataclasses.dataclass
class Inputs:
  """Every input file, split into accepted ones and refused paths."""

  good: list[tuple[str, str]]  # (file, path relative to --output_dir)
  infos: dict[str, tuple[int, int, int]]  # file: (frames, rate, channels)
  refused: list[tuple[str, str]]  # (path, reason)
  ids: set[tuple[int, int]]  # (device, inode) of every existing input

  @property
  def total(self) -> int:
    return len(self.good) + len(self.refused)


def collect_inputs(paths: list[str]) -> tuple[list, list]:
  """`(file, relative output path)` pairs and `(path, reason)` refusals."""
  if not paths:
    raise InputError('No input files given: pass audio files or folders.')
  files, refused = [], []
  for path in paths:
    if os.path.isdir(path):
      found = audio_io.list_audio_files(path)
      if not found:
        refused.append((path, 'folder contains no audio files'))
      files += [(f, os.path.relpath(f, path)) for f in found]
    elif os.path.exists(path):
      files.append((path, os.path.basename(path)))
    else:
      refused.append((path, 'does not exist'))
  return files, refused


def check_inputs(paths: list[str]) -> Inputs:
  """Checks every input file (nothing is written); see `check_file`."""
  files, refused = collect_inputs(paths)
  ids = {_file_id(f) for f, _ in files} - {None}
  inputs = Inputs([], {}, refused, ids)
  for path, relative in files:
    try:
      inputs.infos[path] = check_file(path)
    except InputError as e:
      inputs.refused.append((path, str(e)))
    else:
      inputs.good.append((path, relative))
  return inputs


def check_file(path: str) -> tuple[int, int, int]:
  """`(frames, sample_rate, channels)`, or `InputError(reason)`.

  Refuses empty files, files libsndfile cannot open (not audio, corrupt
  header), files without samples, truncated files and NaN/Inf samples. The
  whole file is scanned in blocks (constant memory). Multi-channel files are
  accepted with a warning (they are mixed down).
  """
  if os.path.getsize(path) == 0:
    raise InputError('empty file (0 bytes)')
  try:
    info = sf.info(path)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise InputError(f'not a readable audio file ({_why(e)})') from e
  if info.frames <= 0:
    raise InputError('no audio samples (0 frames)')
  missing = audio_chunk_shortfall(path)
  if missing:
    raise InputError(
      f'truncated: the header declares {missing[0]} bytes of audio, the '
      f'file holds {missing[1]}'
    )
  _scan(path, int(info.frames))
  if info.channels > 1:
    logging.warning(
      '%s has %d channels; mixing down to mono.', path, info.channels
    )
  return int(info.frames), int(info.samplerate), int(info.channels)


def _why(error: Exception) -> str:
  return getattr(error, 'error_string', None) or str(error)


def _scan(path: str, frames: int) -> None:
  """Reads every sample: refuses NaN/Inf, read errors and missing frames."""
  read = 0
  try:
    with sf.SoundFile(path) as f:
      for block in f.blocks(BLOCK, dtype='float32', always_2d=True):
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
          first = read + int(np.argmax(bad))
          raise InputError(f'NaN or Inf samples (first at frame {first})')
        read += len(block)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise InputError(
      f'corrupt audio data: reading failed after {read} of {frames} '
      f'frames ({_why(e)})'
    ) from e
  if read < frames:
    raise InputError(f'truncated: {read} of {frames} frames readable')


def audio_chunk_shortfall(path: str) -> tuple[int, int] | None:
  """`(declared, present)` bytes when a WAV/AIFF's audio chunk is cut short.

  libsndfile quietly reads what is there; the RIFF (WAV) or FORM (AIFF)
  header says how much audio should be. `None` for complete files, other
  formats and the unset sizes (0, 0xFFFFFFFF) of streamed or RF64 files.
  """
  with open(path, 'rb') as f:
    size = os.fstat(f.fileno()).st_size
    head = f.read(12)
    kind = _AUDIO_CHUNKS.get((head[:4], head[8:12]))
    if kind is None:
      return None
    order, audio = kind
    position = 12
    while position + 8 <= size:
      f.seek(position)
      chunk, length = struct.unpack(order + '4sI', f.read(8))
      if chunk == audio:
        present = size - position - 8
        if length in _UNSET_SIZES or length <= present:
          return None
        return length, present
      position += 8 + length + (length & 1)
  return None


def _file_id(path: str) -> tuple[int, int] | None:
  """`(device, inode)` of an existing file (links and aliases agree)."""
  try:
    stat = os.stat(path)
  except OSError:
    return None
  return stat.st_dev, stat.st_ino


def report_refused(inputs: Inputs, task_name: str, strict: bool) -> None:
  """One stderr line per refused input, then counts and what to do."""
  for path, reason in inputs.refused:
    print(f'refused: {path}: {reason}', file=sys.stderr)
  if strict:
    outcome = '--strict: nothing written.'
  elif not inputs.good:
    outcome = 'No file left to process.'
  else:
    outcome = (
      f'{_VERBS[task_name][1]} the other {len(inputs.good)} anyway '
      '(--strict writes nothing when any input is refused).'
    )
  print(
    f'{len(inputs.refused)} of {inputs.total} files refused; fix or remove '
    f'them and run again. {outcome}',
    file=sys.stderr,
  )


# Reading ---------------------------------------------------------------------


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


# Processing -------------------------------------------------------------------


def process_file(
  model: inference.SpeechModel,
  path: str,
  outputs: list[str],
  *,
  streaming: bool,
  chunk_seconds: float,
  context_seconds: float,
  subtype: str,
  info: tuple[int, int, int] | None = None,
) -> float:
  """Processes one file into `outputs` (one per source); returns seconds.

  `s4jax.inference.iter_process` in 'stream' or 'chunked' mode, reading the
  file in blocks and writing each result piece as it comes.
  """
  frames, rate, _ = info or check_file(path)
  with sf.SoundFile(path) as handle:
    pieces = inference.iter_process(
      model,
      file_reader(handle, frames),
      frames,
      rate,
      mode='stream' if streaming else 'chunked',
      chunk_seconds=chunk_seconds,
      context_seconds=context_seconds,
    )
    _write(pieces, outputs, rate, subtype)
  return frames / rate


def _write(
  pieces: Iterator[np.ndarray], outputs: list[str], rate: int, subtype: str
) -> None:
  """Writes `outputs` via partial files, renamed when complete."""
  tmp = [partial_path(o) for o in outputs]
  for o in outputs:
    os.makedirs(os.path.dirname(os.path.abspath(o)), exist_ok=True)
  fmt = {'.flac': 'FLAC', '.ogg': 'OGG'}.get(
    os.path.splitext(outputs[0])[1].lower(), 'WAV'
  )
  sub = subtype if fmt == 'WAV' else None
  handles = [
    sf.SoundFile(t, 'w', samplerate=rate, channels=1, format=fmt, subtype=sub)
    for t in tmp
  ]
  try:
    _write_pieces(pieces, handles, subtype)
  except BaseException:
    for t in tmp:
      if os.path.exists(t):
        os.remove(t)
    raise
  for t, o in zip(tmp, outputs, strict=True):
    os.replace(t, o)


def _write_pieces(
  pieces: Iterator[np.ndarray], handles: list[sf.SoundFile], subtype: str
) -> None:
  """Writes each `(S, n)` piece, source `i` to `handles[i]`; closes them."""
  try:
    for piece in pieces:
      if not np.all(np.isfinite(piece)):
        raise InputError('the model produced NaN or Inf samples')
      if subtype.startswith('PCM'):
        piece = np.clip(piece, -1.0, 1.0)
      for handle, signal in zip(handles, piece, strict=True):
        handle.write(signal)
  finally:
    for handle in handles:
      handle.close()


def partial_path(output: str) -> str:
  """Where `output` is written before it is renamed into place."""
  return f'{output}.partial{os.path.splitext(output)[1]}'


# Outputs ---------------------------------------------------------------------


def output_paths(out_dir: str, relative: str, sources: int) -> list[str]:
  """Result file(s) for one input (`_s1`, `_s2`, ... for separation)."""
  stem, ext = os.path.splitext(os.path.join(out_dir, relative))
  ext = ext if ext.lower() in ('.wav', '.flac') else '.wav'
  if sources == 1:
    return [stem + ext]
  return [f'{stem}_s{i + 1}{ext}' for i in range(sources)]


def plan_outputs(
  inputs: Inputs, out_dir: str, sources: int
) -> dict[str, list[str]]:
  """Outputs of each good file; refuses overwriting inputs or each other."""
  plan, writer = {}, {}
  for path, relative in inputs.good:
    plan[path] = output_paths(out_dir, relative, sources)
    for output in plan[path]:
      for target in (output, partial_path(output)):
        if _file_id(target) in inputs.ids:
          raise InputError(
            f'Refusing to overwrite the input {target}; choose an '
            '--output_dir that holds no input.'
          )
      if output in writer:
        raise InputError(
          f'{writer[output]} and {path} would both be written to {output}; '
          'pass them in separate runs.'
        )
      writer[output] = path
  return plan


# Main ------------------------------------------------------------------------


def _check_flags() -> None:
  model_flags.check()
  if not _OUTPUT_DIR.value:
    raise InputError('--output_dir is required.')
  if _CHUNK.value <= 0 or _CONTEXT.value < 0:
    raise InputError('--chunk_seconds must be > 0, --context_seconds >= 0.')


def check_output_dir(out_dir: str, paths: list[str]) -> None:
  """Refuses an --output_dir that is a file or lies inside an input folder.

  Results written inside an input folder would be taken as inputs by the
  next run over that folder.
  """
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise InputError(f'--output_dir={out_dir} is a file; pass a folder.')
  real_out = os.path.realpath(out_dir)
  for path in paths:
    if not os.path.isdir(path):
      continue
    real_in = os.path.realpath(path)
    if os.path.commonpath([real_out, real_in]) == real_in:
      raise InputError(
        f'Refusing to write into the input folder {path} (--output_dir='
        f'{out_dir}): a later run over it would take the results as inputs. '
        'Choose an --output_dir outside every input folder.'
      )


def _load_model(task_name: str, streaming: bool) -> inference.SpeechModel:
  """The model of the flags; refuses one for the other tool or no stream."""
  model = model_flags.load()
  if (task_name == 'separation') != model.separates:
    tool = 'separate.py' if model.separates else 'enhance.py'
    raise InputError(
      f'The checkpoint holds a {model.task.name} model; use launch/{tool}.'
    )
  if streaming:
    try:
      model.init_stream(1)  # Fails early if the model cannot stream.
    except inference.StreamingUnsupportedError as e:
      raise InputError(
        f'{str(e).rstrip(".")}; run without --streaming.'
      ) from None
  logging.info(
    'Model %s, step %s, %d Hz.', model.name, model.step, model.sample_rate
  )
  return model


def _process_all(model, inputs: Inputs, plan, streaming: bool) -> list[str]:
  """Processes every good file; returns those that failed (on stderr)."""
  failed = []
  for path, outputs in plan.items():
    try:
      seconds = process_file(
        model,
        path,
        outputs,
        info=inputs.infos[path],
        streaming=streaming,
        chunk_seconds=_CHUNK.value,
        context_seconds=_CONTEXT.value,
        subtype=_SUBTYPE.value,
      )
    except (InputError, sf.LibsndfileError) as e:
      print(f'failed: {path}: {e}', file=sys.stderr)
      failed.append(path)
      continue
    print(f'{path} ({seconds:.1f} s) -> {", ".join(outputs)}')
  return failed


def _summary(inputs: Inputs, failed: list[str], task_name: str) -> str:
  """`2 of 7 files refused (listed above); 5 enhanced into OUT`."""
  n, word = (
    (len(inputs.refused), 'refused')
    if inputs.refused
    else (len(failed), 'failed')
  )
  text = f'{n} of {inputs.total} files {word}'
  if inputs.refused and failed:
    text += f' and {len(failed)} failed'
  done = len(inputs.good) - len(failed)
  verb = _VERBS[task_name][0]
  return f'{text} (listed above); {done} {verb} into {_OUTPUT_DIR.value}'


def run(task_name: str, inputs: list[str], *, streaming: bool = False) -> None:
  """Shared main of `enhance.py` and `separate.py`.

  Raises `InputError` (after processing the good files, unless `--strict`)
  when any input was refused or failed.
  """
  _check_flags()
  check_output_dir(_OUTPUT_DIR.value, inputs)
  checked = check_inputs(inputs)  # Before loading a model or writing.
  if checked.refused:
    report_refused(checked, task_name, _STRICT.value)
    if _STRICT.value or not checked.good:
      raise InputError(
        f'{len(checked.refused)} of {checked.total} files refused (listed '
        'above); nothing written.'
      )
  model = _load_model(task_name, streaming)
  plan = plan_outputs(checked, _OUTPUT_DIR.value, model.num_outputs)
  failed = _process_all(model, checked, plan, streaming)
  if checked.refused or failed:
    raise InputError(_summary(checked, failed, task_name))


def cli_main(
  task_name: str, streaming: flags.FlagHolder[bool] | None = None
) -> Callable[[list[str]], None]:
  """An `app.run` main for `task_name` with one-line errors."""

  def main(argv):
    from harness import errors  # pylint: disable=g-import-not-at-top

    runtime.quiet_library_logs()
    stream = streaming is not None and streaming.value
    try:
      run(task_name, argv[1:], streaming=stream)
    except (InputError, audio_io.AudioError, *errors.USER_ERRORS) as e:
      logging.debug('Stopped by', exc_info=True)
      sys.exit(f'error: {e}')

  return main
