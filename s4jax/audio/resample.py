"""Band-limited resampling of signals and of stretches of long signals.

* `resample(x, rate_in, rate_out)`: polyphase resampling along the last axis
  (`scipy.signal.resample_poly`, its default Kaiser-windowed filter). The one
  resampler of the project: `data_pipelines.audio_io.resample`,
  `harness.metrics_common.resample` and the command-line tools call it.
* `Rates`: the sample-exact correspondence between two rates, to resample a
  stretch `[start, stop)` of a signal read piece by piece (constant memory)
  so that consecutive stretches join into the resampled whole signal.

Pure NumPy/SciPy (imported when first needed, so importing this module is
light): no files, no JAX.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = [
  'Rates',
  'Reader',
  'check_rates',
  'read_array',
  'resample',
  'window',
]

# `read(a, b)`: samples `[a, b)` of a signal, zeros outside it.
Reader = Callable[[int, int], np.ndarray]


def check_rates(rate_in: int, rate_out: int) -> tuple[int, int]:
  """The two rates as ints; ValueError unless both are positive."""
  rate_in, rate_out = int(rate_in), int(rate_out)
  if rate_in <= 0 or rate_out <= 0:
    raise ValueError(
      f'Sample rates must be positive, got {rate_in} -> {rate_out}.'
    )
  return rate_in, rate_out


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
  """Band-limited polyphase resampling along the last axis.

  Args:
    x: real `(..., T)` signal.
    rate_in: its sample rate in Hz.
    rate_out: the wanted sample rate in Hz.

  Returns:
    Real `(..., ceil(T * rate_out / rate_in))`, computed in float64 and
    returned in the dtype of `x` (float32 for a non-float `x`); `x` itself
    when the rates are equal.

  Raises:
    ValueError: a rate that is not positive.
  """
  rate_in, rate_out = check_rates(rate_in, rate_out)
  if rate_in == rate_out:
    return x
  from scipy import signal  # pylint: disable=g-import-not-at-top

  x = np.asarray(x)
  g = math.gcd(rate_in, rate_out)
  y = signal.resample_poly(
    x.astype(np.float64), rate_out // g, rate_in // g, axis=-1
  )
  return y.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else 'f4')


def read_array(x: np.ndarray) -> Reader:
  """`read(a, b)` over the last axis of `x`, zeros outside `[0, T)`."""

  def read(a: int, b: int) -> np.ndarray:
    return window(x, a, b)

  return read


def window(x: np.ndarray, a: int, b: int) -> np.ndarray:
  """`x[..., a:b]` as float32, zero-padded where `[a, b)` leaves `x`."""
  out = np.zeros(x.shape[:-1] + (b - a,), np.float32)
  lo, hi = max(a, 0), min(b, x.shape[-1])
  if hi > lo:
    out[..., lo - a : hi - a] = x[..., lo:hi]
  return out


class Rates:
  """Sample-exact correspondence between a signal rate and a model rate.

  Both grids have a sample every `unit_signal` signal samples, which are
  `unit_model` model samples (the two rates' common period); a stretch
  starting there is resampled exactly like the whole signal would be, up to
  the filter's edges, which `margin` covers.

  Attributes:
    signal_rate: the signal's rate in Hz.
    model_rate: the model's rate in Hz.
    unit_signal: signal samples of one common period of the two rates.
    unit_model: model samples of that period.
  """

  def __init__(self, signal_rate: int, model_rate: int):
    signal_rate, model_rate = check_rates(signal_rate, model_rate)
    g = math.gcd(signal_rate, model_rate)
    self.signal_rate, self.model_rate = signal_rate, model_rate
    self.unit_signal, self.unit_model = signal_rate // g, model_rate // g

  def _units(self, rate_from: int) -> tuple[int, int]:
    """`(unit at rate_from, unit at the other rate)`."""
    if rate_from == self.signal_rate:
      return self.unit_signal, self.unit_model
    if rate_from == self.model_rate:
      return self.unit_model, self.unit_signal
    raise ValueError(
      f'{rate_from} Hz is neither {self.signal_rate} nor {self.model_rate}.'
    )

  def margin(self, rate_from: int) -> int:
    """Samples at `rate_from` covering the polyphase filter's half length.

    A whole number of periods: `resample_poly`'s filter has `10 max(up,
    down)` taps each side at the upsampled rate (its default), i.e.
    `10 max(up, down) / up` input samples; 8 more are kept for safety.
    """
    if self.signal_rate == self.model_rate:
      return 0
    u_from, u_to = self._units(rate_from)
    up, down = u_to, u_from
    half = math.ceil(10 * max(up, down) / up) + 8
    return down * math.ceil(half / down)

  def convert(
    self, read: Reader, start: int, stop: int, rate_from: int
  ) -> np.ndarray:
    """Samples `[start, stop)` at the other rate of a signal at `rate_from`.

    Args:
      read: `read(a, b)` samples `[a, b)` of the signal at `rate_from`, zeros
        outside it.
      start: first wanted sample at the other rate; a multiple of that
        rate's unit (where both grids have a sample).
      stop: end of the wanted stretch at the other rate.
      rate_from: `signal_rate` or `model_rate`.

    Returns:
      Float32 `(..., stop - start)` (`read` may return `(..., b - a)`).
    """
    if self.signal_rate == self.model_rate:
      return read(start, stop)
    u_from, u_to = self._units(rate_from)
    if start % u_to:
      raise ValueError(f'start {start} is not on the {u_to}-sample grid.')
    margin = self.margin(rate_from)
    a = start // u_to * u_from - margin
    b = -(-stop * u_from // u_to) + margin
    rate_to = (
      self.model_rate if rate_from == self.signal_rate else self.signal_rate
    )
    y = resample(np.asarray(read(a, b), np.float32), rate_from, rate_to)
    skip = margin // u_from * u_to
    return y[..., skip : skip + stop - start]

  def to_model(self, num_signal: int) -> int:
    """Model-rate samples covering `num_signal` signal samples."""
    return -(-num_signal * self.unit_model // self.unit_signal)

  def grid(self, seconds: float, multiple: int = 1) -> int:
    """Model-rate samples nearest `seconds` on both grids and `multiple`.

    At least one step (`lcm(unit_model, multiple)`).
    """
    step = math.lcm(self.unit_model, multiple)
    return max(step, step * round(seconds * self.model_rate / step))
