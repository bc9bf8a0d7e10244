"""benchmarks/accelerator_bench.py runs on the CPU and prints its JSON row."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_cpu_smoke_run_prints_one_json_row_per_recipe():
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  result = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, 'benchmarks', 'accelerator_bench.py'),
      '--smoke',
      '--recipes=spiking_s4_ndns',
      '--steps=3',
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [
    json.loads(x) for x in result.stdout.splitlines() if x.startswith('{')
  ]
  assert len(rows) == 1, result.stdout
  row = rows[0]
  assert row['recipe'] == 'spiking_s4_ndns:smoke', row
  assert (row['device_kind'], row['devices']) == ('cpu', 1), row
  assert row['batch'] == row['paper_batch'] == 2, row
  assert 'error' not in row, row
  assert row['loss_finite'], row
  assert row['steps_timed'] == 3, row
  assert 0 < row['step_seconds_min'] <= row['step_seconds'], row
  assert row['compile_seconds'] > 0, row
  # The CPU keeps no peak-memory count and has no roofline figures.
  assert row['peak_bytes'] is None and 'estimated_step_seconds' not in row
