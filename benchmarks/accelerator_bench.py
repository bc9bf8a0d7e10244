r"""One-shot benchmark of the paper recipes' train steps on this machine.

  python benchmarks/accelerator_bench.py            # GPU or TPU, < 5 min
  python benchmarks/accelerator_bench.py --smoke    # the CPU check (seconds)

For each paper recipe (Spiking-S4 on N-DNS, S4M-tiny) it builds the train
step of `launch/train.py` (`s4jax.training.program`) over every local
device, feeds random batches of the recipe's shapes (no TensorFlow, no
dataset files), and prints one JSON line:

  recipe, device_kind, devices, paper_batch, batch: the global batch run
    (halved from the paper batch until it fits in device memory);
  compile_seconds: lowering plus XLA compilation;
  step_seconds: median wall time of the timed steps (each waited for), and
    step_seconds_min;
  peak_bytes: the largest `peak_bytes_in_use` over the devices (None where
    the backend keeps no such count, as on CPU); each recipe runs in its own
    process, so the peak is its own;
  estimated_step_seconds, measured_over_estimated: the roofline estimate of
    `launch/compile.py` (`harness.compile_report`) for this very executable
    and chip, when the chip is in `harness.accelerators.CHIPS`.

Needs only jax, flax, optax, numpy and ml-collections (plus this checkout).
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import time

import jax
import numpy as np

from harness import accelerators, compile_report
from s4jax.training import program as program_lib
from s4jax.training import sharding

PAPER_RECIPES = ('spiking_s4_ndns', 's4m_tiny')


def _random_batch(abstract: dict, seed: int) -> dict:
  """Random float batches (and valid masks) with the abstract shardings."""
  rng = np.random.default_rng(seed)
  out = {}
  for key, spec in abstract.items():
    if spec.dtype == np.bool_:
      value = np.ones(spec.shape, bool)
    elif np.issubdtype(spec.dtype, np.integer):
      value = np.full(spec.shape, spec.shape[-1], spec.dtype)
    else:
      value = (0.1 * rng.standard_normal(spec.shape)).astype(spec.dtype)
    out[key] = jax.device_put(value, spec.sharding)
  return out


def _peak_bytes() -> int | None:
  peaks = []
  for device in jax.local_devices():
    stats = device.memory_stats() or {}
    if 'peak_bytes_in_use' in stats:
      peaks.append(int(stats['peak_bytes_in_use']))
  return max(peaks) if peaks else None


def _is_oom(error: Exception) -> bool:
  text = str(error).lower()
  return 'resource_exhausted' in text or 'out of memory' in text


def _run(config, mesh, steps: int, budget: float) -> dict:
  """Compiles and times the train step of `config` at its batch size."""
  program = program_lib.Program.build(config, mesh)
  state = program.init_state()
  batch = _random_batch(program_lib.abstract_batch(config, mesh), seed=0)
  start = time.perf_counter()
  compiled = program.train_step(state, batch).lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start
  times = []
  deadline = time.perf_counter() + budget
  for i in range(steps + 2):  # The first two steps warm up.
    start = time.perf_counter()
    state, metrics, _ = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    if i >= 2:
      times.append(time.perf_counter() - start)
    if time.perf_counter() > deadline and len(times) >= 3:
      break
  out = {
    'compile_seconds': compile_seconds,
    'step_seconds': statistics.median(times),
    'step_seconds_min': min(times),
    'steps_timed': len(times),
    'loss_finite': bool(np.isfinite(float(metrics.compute()['loss']))),
  }
  chip = accelerators.chip_for_device(mesh.devices.flat[0])
  if chip is not None:
    step = compile_report.analyse(
      'train',
      compiled,
      compile_seconds=compile_seconds,
      global_batch=int(config.train.batch_size),
    )
    dtype = str(config.train.compute_dtype)
    estimate, bound = compile_report.roofline_seconds(step.cost, chip, dtype)
    out.update(
      chip=chip.name,
      estimated_step_seconds=estimate,
      bound=bound,
      measured_over_estimated=out['step_seconds'] / estimate,
      flops_per_step=step.cost['flops'],
      bytes_per_step=step.cost['bytes'],
      cost_source=step.cost_source,
    )
  return out


def bench(recipe: str, *, smoke: bool, steps: int, budget: float) -> dict:
  """Benchmarks one recipe; returns its JSON row (see the module doc)."""
  module = importlib.import_module(f'configs.{recipe}')
  config = module.get_config('smoke=True' if smoke else None)
  mesh = sharding.create_mesh()
  devices = mesh.shape[sharding.DATA]
  paper = int(config.train.batch_size)
  batch = max(paper // devices, 1) * devices
  row = {
    'recipe': recipe + (':smoke' if smoke else ''),
    'device_kind': jax.devices()[0].device_kind,
    'devices': devices,
    'paper_batch': paper,
  }
  while True:
    config.train.batch_size = batch
    try:
      row.update(batch=batch, **_run(config, mesh, steps, budget))
      break
    except Exception as e:  # pylint: disable=broad-except
      if not _is_oom(e) or batch <= devices:
        row.update(batch=batch, error=str(e).splitlines()[0][:300])
        break
      batch = max(batch // 2 // devices, 1) * devices
  row['peak_bytes'] = _peak_bytes()
  return row


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--smoke', action='store_true', help='Smoke recipes.')
  parser.add_argument('--recipes', default=','.join(PAPER_RECIPES))
  parser.add_argument('--steps', type=int, default=10, help='Timed steps.')
  parser.add_argument(
    '--budget', type=float, default=60.0, help='Seconds of timed steps.'
  )
  args = parser.parse_args()
  recipes = args.recipes.split(',')
  if len(recipes) == 1:
    row = bench(
      recipes[0], smoke=args.smoke, steps=args.steps, budget=args.budget
    )
    print(json.dumps(row), flush=True)
    return
  # One process per recipe: each starts with empty device memory, so its
  # peak is its own.
  for recipe in recipes:
    argv = [sys.executable, __file__, f'--recipes={recipe}']
    argv += [f'--steps={args.steps}', f'--budget={args.budget}']
    subprocess.run(argv + (['--smoke'] if args.smoke else []), check=False)


if __name__ == '__main__':
  main()
