"""Python code in a fresh interpreter on N simulated CPU devices.

XLA fixes the host device count when JAX starts, so tests that need several
devices run a script in a subprocess with
`--xla_force_host_platform_device_count`. The script prints one line
`RESULT <json>`; `result` returns that JSON.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def launch(script, args, devices, port=0):
  """Starts `python -c script *args` with `devices` CPU devices.

  Args:
    script: Python source; it reads `sys.argv[1:]` (the `args`).
    args: command-line arguments (converted with `str`).
    devices: number of simulated CPU devices (per process).
    port: coordinator port, passed as `$COORD` = `localhost:<port>`.

  Returns:
    The running `subprocess.Popen` (text stdout/stderr pipes).
  """
  env = dict(os.environ)
  # Keep inherited flags (e.g. --xla_cpu_max_isa=AVX2) for the subprocess.
  env['XLA_FLAGS'] = (
    f'{env.get("XLA_FLAGS", "")} '
    f'--xla_force_host_platform_device_count={devices}'
  ).strip()
  env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
  env['COORD'] = f'localhost:{port}'
  env['JAX_PLATFORMS'] = 'cpu'
  return subprocess.Popen(
    [sys.executable, '-c', script, *map(str, args)],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def result(proc):
  """The JSON of the last `RESULT` line of a finished `launch`."""
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, f'subprocess failed:\n{err[-3000:]}'
  line = [x for x in out.splitlines() if x.startswith('RESULT ')][-1]
  return json.loads(line[len('RESULT ') :])
