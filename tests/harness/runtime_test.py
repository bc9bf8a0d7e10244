"""Tests of `harness.runtime`: process setup and one-line user errors."""

import logging as py_logging
import os

import jax
import pytest

from harness import errors, runtime

_ENV = (
  'JAX_COORDINATOR_ADDRESS',
  'MEGASCALE_COORDINATOR_ADDRESS',
  'SLURM_NTASKS',
  'OMPI_COMM_WORLD_SIZE',
  'TPU_WORKER_HOSTNAMES',
)


@pytest.fixture
def clean_env(monkeypatch):
  for name in _ENV:
    monkeypatch.delenv(name, raising=False)
  return monkeypatch


@pytest.mark.parametrize(
  'name, value, expected',
  [
    (None, None, False),
    ('JAX_COORDINATOR_ADDRESS', '10.0.0.1:1234', True),
    ('MEGASCALE_COORDINATOR_ADDRESS', 'host:8080', True),
    ('SLURM_NTASKS', '1', False),
    ('SLURM_NTASKS', '4', True),
    ('OMPI_COMM_WORLD_SIZE', '2', True),
    ('TPU_WORKER_HOSTNAMES', 'localhost', False),
    ('TPU_WORKER_HOSTNAMES', 'w0,w1', True),
  ],
)
def test_looks_multi_process_reads_the_launchers_variables(
  clean_env, name, value, expected
):
  if name:
    clean_env.setenv(name, value)
  got = runtime.looks_multi_process()
  assert got is expected, f'{name}={value!r}: expected {expected}, got {got}'


def test_initialize_distributed_rejects_an_unknown_mode():
  with pytest.raises(ValueError, match='--multihost must be auto'):
    runtime.initialize_distributed('yes')


def test_initialize_distributed_leaves_a_single_process_job_alone(
  clean_env,
):
  calls = []
  clean_env.setattr(jax.distributed, 'initialize', lambda **k: calls.append(k))
  runtime.initialize_distributed('auto')
  runtime.initialize_distributed('false')
  assert not calls, f'expected no initialize() call, got {calls}'


def test_initialize_distributed_passes_the_coordinator(clean_env):
  calls = []
  clean_env.setattr(jax.distributed, 'initialize', lambda **k: calls.append(k))
  clean_env.setenv('JAX_COORDINATOR_ADDRESS', 'host:1234')
  runtime.initialize_distributed('auto')
  assert calls == [{'coordinator_address': 'host:1234'}], calls


@pytest.mark.parametrize(
  'error',
  [
    ValueError('bad config'),
    FileNotFoundError('no such folder'),
    errors.CheckpointError('corrupt checkpoint'),
    errors.NonFiniteError('diverged'),
  ],
)
def test_user_errors_end_the_program_with_one_line(error):
  with pytest.raises(SystemExit) as exit_info:
    with runtime.errors_as_messages():
      raise error
  assert exit_info.value.code == f'error: {error}', exit_info.value.code


def test_out_of_memory_becomes_advice_and_other_errors_keep_tracebacks():
  oom = jax.errors.JaxRuntimeError(
    'RESOURCE_EXHAUSTED: Out of memory while trying to allocating '
    f'{3 * 2**30} bytes.'
  )
  with pytest.raises(SystemExit) as exit_info:
    with runtime.errors_as_messages():
      raise oom
  message = exit_info.value.code
  assert message.startswith('error: The device ran out of memory (3.0 GiB'), (
    message
  )
  assert 'batch_size' in message, message
  with pytest.raises(jax.errors.JaxRuntimeError, match='INTERNAL'):
    with runtime.errors_as_messages():
      raise jax.errors.JaxRuntimeError('INTERNAL: something else')
  with pytest.raises(KeyError):
    with runtime.errors_as_messages():
      raise KeyError('a programming error')


def test_load_input_pipeline_names_an_unimportable_module():
  assert runtime.load_input_pipeline('json').__name__ == 'json'
  with pytest.raises(ValueError, match='--input_pipeline=no_such_mod'):
    runtime.load_input_pipeline('no_such_mod')


@pytest.mark.parametrize(
  'argv, expected',
  [
    (['prog'], None),
    (['prog', '--config=a.py'], None),
    (['prog', '--help'], 'short'),
    (['prog', '-h'], 'short'),
    (['prog', '--helpfull'], 'full'),
    (['prog', '--', '--help'], None),  # After `--`: an argument.
  ],
)
def test_help_requested(argv, expected):
  got = runtime.help_requested(argv)
  assert got == expected, f'{argv}: expected {expected}, got {got}'


def test_flag_error_message_drops_an_embedded_traceback():
  text = (
    'flag --x=1: Traceback (most recent call last)\n  File "a.py", line 1\n'
    'ValueError: x must be even'
  )
  message = runtime.flag_error_message(ValueError(text))
  assert message == (
    'error: flag --x=1: Traceback (most recent call last) ValueError: x '
    'must be even\nPass --help to see the flags.'
  ), message


def test_quiet_filter_keeps_own_lines_and_library_errors():
  quiet = runtime._QuietLibraries()

  def record(path, level, msg='m'):
    return py_logging.LogRecord('n', level, path, 1, msg, None, None)

  assert quiet.filter(record('/src/s4jax/launch/train.py', py_logging.INFO))
  assert not quiet.filter(record('/x/orbax/checkpoint.py', py_logging.INFO))
  assert quiet.filter(record('/x/orbax/checkpoint.py', py_logging.WARNING))
  assert not quiet.filter(
    record('/x/orbax/a.py', py_logging.WARNING, 'opened read only')
  )
  assert quiet.filter(record('/x/jax/_src/a.py', py_logging.ERROR))


def test_loaded_config_turns_a_missing_recipe_into_one_line():
  class Broken:
    def get(self, key):
      raise OSError(f'Could not read {key}\nNo such file: configs/nope.py')

  class Holder:
    value = Broken()

  with pytest.raises(SystemExit) as exit_info:
    runtime.loaded_config(Holder())
  expected = (
    'error: --config could not be loaded: Could not read task No such '
    'file: configs/nope.py'
  )
  assert exit_info.value.code == expected, exit_info.value.code


def test_hide_accelerators_sets_quiet_tensorflow_defaults(monkeypatch):
  monkeypatch.delenv('TF_ENABLE_ONEDNN_OPTS', raising=False)
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '3')  # The user's choice stays.
  runtime.hide_accelerators_from_tensorflow()
  assert os.environ['TF_ENABLE_ONEDNN_OPTS'] == '0'
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '3'
