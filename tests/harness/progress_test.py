"""Tests for harness.progress: report schedule, ETA, cost estimate."""

import math

import pytest

from harness import progress


def _reported_steps(start, num_steps, log_every, step_seconds=1.0):
  p = progress.Progress(start, num_steps, log_every, max_silence=1e9)
  p.begin(0.0)
  out, now = [], 0.0
  for step in range(start + 1, num_steps + 1):
    now += step_seconds
    if p.due(step, now):
      p.first_step_done(now)
      p.line(step, 0.0, now)
      p.estimate(step, now, 'cpu', 1)
      out.append(step)
  return out


def test_reports_from_the_first_step_then_every_log_every():
  assert _reported_steps(0, 450, 100) == [
    1,
    2,
    3,
    4,
    8,
    16,
    32,
    64,
    100,
    200,
    300,
    400,
    450,
  ]


def test_resumed_run_counts_from_the_restored_step():
  assert _reported_steps(300, 500, 100)[:5] == [301, 302, 303, 304, 308]


def test_reports_after_max_silence_between_log_steps():
  p = progress.Progress(0, 1000, 100, max_silence=60.0)
  p.begin(0.0)
  p.line(1, 0.0, 5.0)
  assert not p.due(50, 64.0), 'only 59 s since the last line'
  assert p.due(50, 65.5), 'over 60 s since the last line'


def test_line_shows_first_step_time_then_speed_and_eta():
  p = progress.Progress(0, 1000, 100)
  p.begin(10.0)
  p.first_step_done(40.0)  # 30 s: compilation and data loading.
  first = p.line(1, -3.25, 40.0)
  assert 'step 1/1,000' in first and 'loss -3.25' in first, first
  assert 'first step 30.0 s' in first, first
  # Steps 2..11 took 2 s each: 989 steps left -> 1978 s = 32 min 58 s.
  later = p.line(11, -5.0, 60.0)
  assert '2 s/step' in later and 'ETA 32 min 58 s' in later, later


def test_estimate_warns_when_a_cpu_run_would_take_days():
  # The S4M-tiny recipe: 1,737,500 steps at ~30 s per step on 2 cores.
  p = progress.Progress(0, 1_737_500, 100)
  p.begin(0.0)
  p.first_step_done(60.0)
  assert p.estimate(2, 90.0, 'cpu', 1) is None, 'needs two timed steps'
  message, too_long = p.estimate(3, 120.0, 'cpu', 1)
  # 60 s + 1,737,499 * 30 s = 603 days 7 hours.
  assert too_long and '603 d 7 h' in message, message
  assert ':smoke=True' in message and 'configs/demo.py' in message, message
  assert p.estimate(4, 150.0, 'cpu', 1) is None, 'printed once'


def test_estimate_is_informational_on_accelerators_and_short_runs():
  p = progress.Progress(0, 1_737_500, 100)
  p.begin(0.0)
  p.first_step_done(60.0)
  message, too_long = p.estimate(3, 120.0, 'gpu', 8)
  assert not too_long and 'accelerators' not in message, message
  short = progress.Progress(0, 3000, 100)
  short.begin(0.0)
  short.first_step_done(20.0)
  message, too_long = short.estimate(3, 20.6, 'cpu', 1)
  # 20 s + 2999 * 0.3 s = 919.7 s.
  assert not too_long and '15 min 20 s' in message, message


@pytest.mark.parametrize(
  'seconds, text',
  [
    (12.34, '12.3 s'),
    (250, '4 min 10 s'),
    (5 * 3600 + 12 * 60, '5 h 12 min'),
    (3 * 86400 + 4 * 3600 + 59, '3 d 4 h'),
    (math.nan, 'unknown'),
  ],
)
def test_format_duration(seconds, text):
  assert progress.format_duration(seconds) == text


def test_format_speed_switches_units_at_one_second():
  assert progress.format_speed(0.25) == '4 steps/s'
  assert progress.format_speed(29.8) == '29.8 s/step'
