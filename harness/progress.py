"""Console progress for training runs: when to report, speed, ETA, cost.

Pure bookkeeping over times the caller passes in (seconds from any
monotonic clock), so it is testable without a clock or a device. The loop
reports at steps 1, 2, 4, 8, ... until `log_every`, then every `log_every`
steps, and at least every `max_silence` seconds, so a slow recipe shows
its speed, ETA and loss from the first step instead of after 100 steps.
Once two steps after the first (which includes compilation and data
loading) are timed, `Progress.estimate` gives the time to the end and,
when a run would take more than `LONG_RUN_SECONDS` on a CPU, says so.
"""

from __future__ import annotations

import dataclasses
import math

LONG_RUN_SECONDS = 24 * 3600.0
_TIMED_STEPS_FOR_ESTIMATE = 2


def format_duration(seconds: float) -> str:
  """A duration for people: '12.3 s', '4 min 10 s', '5 h 12 min', '3 d 4 h'."""
  if not math.isfinite(seconds):
    return 'unknown'
  seconds = max(seconds, 0.0)
  if seconds < 60:
    return f'{seconds:.1f} s'
  minutes, secs = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  days, hours = divmod(hours, 24)
  if days:
    return f'{days} d {hours} h'
  if hours:
    return f'{hours} h {minutes} min'
  return f'{minutes} min {secs} s'


def format_speed(seconds_per_step: float) -> str:
  """'2.6 steps/s' for fast steps, '29.8 s/step' for slow ones."""
  if seconds_per_step <= 0 or not math.isfinite(seconds_per_step):
    return 'unknown speed'
  if seconds_per_step < 1.0:
    return f'{1.0 / seconds_per_step:.3g} steps/s'
  return f'{seconds_per_step:.3g} s/step'


@dataclasses.dataclass
class Progress:
  """Tracks one run's step times and decides when to print a line.

  Attributes:
    start_step: the step the run starts from (0, or a restored step).
    num_steps: the last step of the run.
    log_every: the regular reporting interval in steps (>= 1).
    max_silence: report at least this often (seconds), whatever the step.
  """

  start_step: int
  num_steps: int
  log_every: int
  max_silence: float = 60.0
  _t_begin: float | None = None
  _t_first: float | None = None
  _t_last_report: float | None = None
  _estimated: bool = False

  def begin(self, now: float) -> None:
    """Call before the first step is dispatched."""
    self._t_begin = now
    self._t_last_report = now

  def first_step_done(self, now: float) -> None:
    """Call once the first step's results are in (compile + data + step)."""
    if self._t_first is None:
      self._t_first = now

  @property
  def started_at(self) -> float:
    """The time passed to `begin` (NaN before)."""
    return math.nan if self._t_begin is None else self._t_begin

  @property
  def first_step_seconds(self) -> float:
    """Wall time of the first step (compilation and data loading included)."""
    if self._t_begin is None or self._t_first is None:
      return math.nan
    return self._t_first - self._t_begin

  def seconds_per_step(self, step: int, now: float) -> float:
    """Mean wall time of the steps after the first one, up to `step`."""
    timed = step - (self.start_step + 1)
    if self._t_first is None or timed <= 0:
      return math.nan
    return (now - self._t_first) / timed

  def due(self, step: int, now: float) -> bool:
    """Whether `step` (just completed) should get a progress line."""
    done = step - self.start_step
    every = max(int(self.log_every), 1)
    if step >= self.num_steps or step % every == 0:
      return True
    if done < every and done & (done - 1) == 0:  # 1, 2, 4, 8, ...
      return True
    if not self._estimated and done == _TIMED_STEPS_FOR_ESTIMATE + 1:
      return True
    last = self._t_last_report
    return last is not None and now - last >= self.max_silence

  def line(self, step: int, loss: float, now: float) -> str:
    """One progress line for `step`; marks it as reported."""
    self._t_last_report = now
    head = (
      f'step {step:,}/{self.num_steps:,} ({100.0 * step / self.num_steps:.1f}%)'
    )
    rate = self.seconds_per_step(step, now)
    if math.isnan(rate):
      timing = (
        f'first step {format_duration(self.first_step_seconds)} '
        '(compilation and data loading included)'
      )
    else:
      eta = (self.num_steps - step) * rate
      timing = f'{format_speed(rate)}, ETA {format_duration(eta)}'
    return f'{head} | loss {loss:.4g} | {timing}'

  def estimate(
    self, step: int, now: float, platform: str, num_devices: int
  ) -> tuple[str, bool] | None:
    """The start-up estimate of the whole run, once, when enough is timed.

    Args:
      step: the step just completed.
      now: the current time.
      platform: `jax.default_backend()` ('cpu', 'gpu', 'tpu').
      num_devices: `jax.device_count()`.

    Returns:
      `(message, too_long)` the first time at least two steps after the
      first are timed (else None); `too_long` is True when the run needs
      more than `LONG_RUN_SECONDS` on a CPU.
    """
    if self._estimated:
      return None
    timed = step - (self.start_step + 1)
    if timed < _TIMED_STEPS_FOR_ESTIMATE:
      return None
    self._estimated = True
    rate = self.seconds_per_step(step, now)
    total = (self.num_steps - self.start_step - 1) * rate
    total += self.first_step_seconds
    message = (
      f'Estimated training time: {format_duration(total)} for '
      f'{self.num_steps - self.start_step:,} steps at {format_speed(rate)} '
      f'on {num_devices} {platform.upper()} device(s) (evaluations extra).'
    )
    too_long = platform == 'cpu' and total > LONG_RUN_SECONDS
    if too_long:
      message += (
        ' This recipe is sized for accelerators (GPU/TPU). To see a run '
        'finish on this machine, append :smoke=True to --config (seconds) '
        'or train configs/demo.py (about 5 minutes on 2 CPU cores); see the '
        "README's cost table."
      )
    return message, too_long
