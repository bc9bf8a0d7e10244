"""Runs the command-line programs in subprocesses (shared by the CLI tests)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def run(script: str, *args: str, timeout: int = 300):
  """`python launch/<script> args...` from the repo root; returns the result."""
  env = dict(os.environ)
  env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
  env['JAX_PLATFORMS'] = 'cpu'
  return subprocess.run(
    [sys.executable, os.path.join('launch', script), *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def assert_fails_with(result, *fragments: str) -> None:
  """A clean failure: non-zero exit, the message, no Python traceback."""
  assert result.returncode != 0, f'expected a failure:\n{result.stdout}'
  for fragment in fragments:
    assert fragment in result.stderr, (
      f'expected {fragment!r} in stderr, got:\n{result.stderr[-2000:]}'
    )
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
