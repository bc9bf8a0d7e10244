"""Process setup for the command-line programs (multi-host, TensorFlow).

`initialize_distributed` starts JAX's multi-controller runtime when the job
spans several processes (a Cloud TPU pod slice, SLURM, Open MPI, or an
explicit coordinator): every process runs the same program, and the global
mesh and batch assembly in `sharding` take it from there.
"""

from __future__ import annotations

import contextlib
import importlib
import logging as py_logging
import os
import sys
import types
from collections.abc import Sequence
from typing import Any

from absl import logging

# Environment variables that mean "this job has several processes".
_MULTI_PROCESS_HINTS = (
  'JAX_COORDINATOR_ADDRESS',
  'MEGASCALE_COORDINATOR_ADDRESS',
)
_COUNT_HINTS = ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE')


def looks_multi_process() -> bool:
  """Whether the environment describes a job with several processes."""
  env = os.environ
  if any(env.get(k) for k in _MULTI_PROCESS_HINTS):
    return True
  if any(int(env.get(k, '1') or 1) > 1 for k in _COUNT_HINTS):
    return True
  return ',' in env.get('TPU_WORKER_HOSTNAMES', '')


def initialize_distributed(mode: str = 'auto') -> None:
  """Calls `jax.distributed.initialize()` when needed.

  Args:
    mode: 'auto' (when `looks_multi_process()`), 'true' or 'false'.
  """
  if mode not in ('auto', 'true', 'false'):
    raise ValueError(f'--multihost must be auto, true or false, not {mode!r}.')
  if mode == 'false' or (mode == 'auto' and not looks_multi_process()):
    return
  import jax  # pylint: disable=g-import-not-at-top

  coordinator = os.environ.get('JAX_COORDINATOR_ADDRESS') or None
  jax.distributed.initialize(coordinator_address=coordinator)
  logging.info(
    'JAX distributed: process %d of %d, %d local / %d global devices.',
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def quiet_libtpu_without_chips() -> None:
  """Gives libtpu a local host description when this host has no TPU.

  With libtpu installed (the `[tpu]` extra), JAX loads it at start-up even
  on a machine without TPU chips, and libtpu then logs alarming errors about
  the accelerator type and worker hostnames before JAX falls back to the
  CPU or GPU. On a TPU VM (chips present) nothing is set, so the runtime's
  own discovery is kept. Call before JAX starts its backends.
  """
  try:
    from jax._src import hardware_utils  # pylint: disable=g-import-not-at-top

    chips, _ = hardware_utils.num_available_tpu_chips_and_device_id()
  except Exception:  # pylint: disable=broad-except
    return
  if chips:
    return
  os.environ.setdefault('TPU_SKIP_MDS_QUERY', '1')
  os.environ.setdefault('TPU_WORKER_HOSTNAMES', 'localhost')
  os.environ.setdefault('TPU_ACCELERATOR_TYPE', 'v5litepod-4')


def hide_accelerators_from_tensorflow() -> None:
  """Keeps TensorFlow (clu writers, tf.data) off GPUs/TPUs: JAX owns them.

  Also turns off TensorFlow's oneDNN CPU kernels and its INFO lines unless
  the user set them: tf.data and the event writers do not need oneDNN, and
  on CPUs without AVX-512 it logs an alarming-looking error at start-up.
  """
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  for kind in ('GPU', 'TPU'):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError):
      pass  # TensorFlow has already set up its devices in this process.


@contextlib.contextmanager
def errors_as_messages():
  """Ends the program with one `error:` line on errors the user can fix.

  Covers `errors.USER_ERRORS` (bad config, data, checkpoint, non-finite
  training) and XLA running out of device memory; anything else keeps its
  traceback.
  """
  import jax  # pylint: disable=g-import-not-at-top

  from harness import errors  # pylint: disable=g-import-not-at-top

  try:
    yield
  except errors.USER_ERRORS as e:
    logging.debug('Stopped by', exc_info=True)
    sys.exit(f'error: {e}')
  except jax.errors.JaxRuntimeError as e:
    message = errors.out_of_memory_message(e)
    if message is None:
      raise
    logging.debug('Stopped by', exc_info=True)
    sys.exit(f'error: {message}')


def load_input_pipeline(name: str) -> types.ModuleType:
  """Imports the input-pipeline module named by `--input_pipeline`."""
  try:
    return importlib.import_module(name)
  except ModuleNotFoundError as e:
    raise ValueError(f'--input_pipeline={name}: cannot import it ({e}).') from e


class _QuietLibraries(py_logging.Filter):
  """Drops INFO records from chatty libraries (Orbax, JAX internals, clu).

  clu's work-unit notes repeat the trainer's own progress lines.
  """

  _PATHS = ('/orbax/', '/jax/_src/', '/clu/platform/')

  def filter(self, record: py_logging.LogRecord) -> bool:
    if not any(p in record.pathname for p in self._PATHS):
      return True
    if record.levelno >= py_logging.ERROR:
      return True
    # Orbax warns on every read-only open; that is what evaluation asks for.
    text = str(record.msg)
    return (
      record.levelno >= py_logging.WARNING
      and 'read only' not in text
      and 'read_only' not in text
    )


def quiet_library_logs() -> None:
  """Keeps the console to this program's own progress lines."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())


# Arguments that ask for the usage text: the tool's own flags, or all flags.
SHORT_HELP_ARGS = ('-h', '-?', '-help', '--help', '-helpshort', '--helpshort')
FULL_HELP_ARGS = ('-helpfull', '--helpfull')


def help_requested(argv: Sequence[str]) -> str | None:
  """'short' or 'full' when `argv[1:]` asks for help (before `--`), else None."""
  for arg in argv[1:]:
    if arg == '--':
      break
    if arg in FULL_HELP_ARGS:
      return 'full'
    if arg in SHORT_HELP_ARGS:
      return 'short'
  return None


def parse_flags(argv: list[str], *, error_status: int = 1) -> list[str]:
  """`app.run` flags parser shared by the `launch/` tools.

  * `--help`, `-h`, `--helpshort` print the tool's usage (module docstring
    and its own flags) and `--helpfull` that and every other flag, to stdout,
    and exit 0.
  * A bad flag exits `error_status` with one `error:` line (no traceback).
  * ml-collections raises a bare `AttributeError`/`KeyError` for an unknown
    `--config.a.b` key; this names the flag instead.

  Args:
    argv: the command line, program name first.
    error_status: exit status of a bad command line.

  Returns:
    The positional arguments, program name first.
  """
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  quiet_libtpu_without_chips()
  kind = help_requested(argv)
  if kind is not None:
    app.usage(shorthelp=kind == 'short', writeto_stdout=True)
    if kind == 'short':
      print('\nTry --helpfull to get a list of all flags.')
    sys.stdout.flush()
    sys.exit(0)
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    message = e
    while message.args and isinstance(message.args[0], BaseException):
      message = message.args[0]
    text = str(message.args[0] if message.args else message)
    key = text.splitlines()[0].strip('\'"') if text else '?'
    hint = ' '.join(text.splitlines()[1:])
    culprits = [a for a in argv[1:] if a.startswith('--config.') and key in a]
    where = f' in {culprits[0]}' if culprits else ''
    _exit(
      f'error: unknown config key {key!r}{where}. Overrides must name an '
      f'existing field of the recipe (see configs/base.py). {hint}'.strip(),
      error_status,
    )
  except flags.Error as e:
    _exit(flag_error_message(e), error_status)


def flag_error_message(error: Exception) -> str:
  """The one-line message (plus a hint) of a bad command-line flag."""
  return (
    f'error: {_without_traceback(str(error))}\nPass --help to see the flags.'
  )


def _exit(message: str, status: int) -> None:
  sys.stdout.flush()
  print(message, file=sys.stderr, flush=True)
  sys.exit(status)


def _without_traceback(text: str) -> str:
  """First line plus the final exception line of an embedded traceback."""
  if 'Traceback (most recent call last)' not in text:
    return text
  lines = [line for line in text.splitlines() if line.strip()]
  return f'{lines[0]} {lines[-1]}'


def loaded_config(holder: Any) -> Any:
  """The ConfigDict of a `--config` flag, or exit with why it did not load.

  ml-collections reports a missing or broken recipe file only when the
  config is first used; this turns that into a one-line error.
  """
  config = holder.value
  try:
    config.get('task')
  except OSError as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f'error: --config could not be loaded: {" ".join(lines[-2:])}')
  return config
