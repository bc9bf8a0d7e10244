"""Tests for harness.errors: messages for errors users can fix."""

from harness import errors


def test_out_of_memory_names_the_size_and_the_fix():
  # The text XLA:CPU raised for the N-DNS recipe (batch 128 x 30 s) on 24 GiB.
  error = RuntimeError(
    'INTERNAL: Error dispatching computation: Out of memory allocating '
    '27318302720 bytes.'
  )
  message = errors.out_of_memory_message(error)
  assert message is not None, 'an out-of-memory error was not recognised'
  assert '25.4 GiB' in message, message
  assert 'config.train.batch_size' in message and ':smoke=True' in message


def test_gpu_resource_exhausted_is_out_of_memory():
  error = RuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to')
  assert 'ran out of memory' in errors.out_of_memory_message(error)


def test_other_runtime_errors_are_not_rewritten():
  assert errors.out_of_memory_message(RuntimeError('INTERNAL: boom')) is None
