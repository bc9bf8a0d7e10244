"""Errors the command-line programs report as one message, not a traceback."""

from __future__ import annotations


class CheckpointError(RuntimeError):
  """A checkpoint could not be read or does not match the model."""


class NonFiniteError(RuntimeError):
  """Too many consecutive steps with non-finite gradients."""


USER_ERRORS = (ValueError, FileNotFoundError, CheckpointError, NonFiniteError)
