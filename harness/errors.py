"""Errors the command-line programs report as one message, not a traceback."""

from __future__ import annotations

import re


class CheckpointError(RuntimeError):
  """A checkpoint could not be read or does not match the model."""


class NonFiniteError(RuntimeError):
  """Too many consecutive steps with non-finite gradients."""


USER_ERRORS = (ValueError, FileNotFoundError, CheckpointError, NonFiniteError)

_OOM = re.compile(r'(?i)out of memory|resource_exhausted')
# libtpu at compile time: "... memory required for HLO temporaries (35.45G)
# exceeds ..." (units K, M, G or T, powers of 1024).
_REQUIRED = re.compile(
  r'required for [\w ]+\((\d+(?:\.\d+)?)([KMGT])\) exceeds'
)
_BYTES = re.compile(r'allocating (\d+) bytes')


def is_out_of_memory(text: str) -> bool:
  """Whether an XLA error text says that memory ran out."""
  return bool(_OOM.search(text) or _REQUIRED.search(text))


def required_bytes(text: str) -> int:
  """Bytes libtpu says a program needs in an out-of-memory text, or 0."""
  need = _REQUIRED.search(text)
  if not need:
    return 0
  return int(float(need.group(1)) * 1024 ** ('KMGT'.index(need.group(2)) + 1))


def out_of_memory_message(error: BaseException) -> str | None:
  """A one-line explanation when `error` is XLA running out of memory.

  Args:
    error: any exception (typically `jax.errors.JaxRuntimeError`).

  Returns:
    The message for the user, or None when `error` is something else.
  """
  text = str(error)
  if not _OOM.search(text):
    return None
  size = _BYTES.search(text)
  need = (
    f' ({int(size.group(1)) / 2**30:.1f} GiB in one buffer)' if size else ''
  )
  return (
    f'The device ran out of memory{need}. Lower config.train.batch_size or '
    'config.data.segment_seconds (or eval.batch_size when evaluating), or '
    'append :smoke=True to --config for a run sized for a small CPU.'
  )
