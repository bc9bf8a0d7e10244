"""Input checks and resampling shared by the metric modules (NumPy only)."""

from __future__ import annotations

import numpy as np

from s4jax.audio import resample as resample_lib


class MetricError(ValueError):
  """A metric cannot be computed for this input (the message says why)."""


def as_signal(x, name: str) -> np.ndarray:
  """Returns `x` as a float64 mono signal `(T,)` or raises `MetricError`."""
  arr = np.asarray(x)
  if arr.ndim == 2 and 1 in arr.shape:
    arr = arr.reshape(-1)
  if arr.ndim != 1:
    raise MetricError(
      f'{name} must be a mono signal of shape (T,), got shape {arr.shape}; '
      'downmix or select a channel first.'
    )
  if arr.size == 0:
    raise MetricError(f'{name} is empty.')
  if not np.issubdtype(arr.dtype, np.number):
    raise MetricError(f'{name} has non-numeric dtype {arr.dtype}.')
  arr = arr.astype(np.float64)
  if not np.all(np.isfinite(arr)):
    raise MetricError(f'{name} contains NaN or Inf samples.')
  return arr


def check_same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
  """Raises `MetricError` unless `a` and `b` have the same last axis."""
  if a.shape[-1] != b.shape[-1]:
    raise MetricError(
      f'{names} have different lengths ({a.shape[-1]} vs {b.shape[-1]} '
      'samples); trim or pad them to the same length first.'
    )


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
  """Polyphase resampling along the last axis, in float64.

  `s4jax.audio.resample.resample` of `x` as float64 (`x` itself, as an
  array, when the rates are equal), with `MetricError` for a bad rate.
  """
  if rate_in == rate_out:
    return np.asarray(x)
  try:
    rate_in, rate_out = resample_lib.check_rates(rate_in, rate_out)
  except ValueError:
    raise MetricError(
      f'Invalid sample rates {rate_in} -> {rate_out}.'
    ) from None
  return resample_lib.resample(np.asarray(x, np.float64), rate_in, rate_out)
