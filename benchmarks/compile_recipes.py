r"""Every recipe compiled for TPU topologies: the cost table of the README.

  python benchmarks/compile_recipes.py [--out=benchmarks/compile_recipes.jsonl]
      [--recipes=s4m_tiny,spiking_s4_ndns] [--table_only]

For each recipe of `configs/` (and a bfloat16 variant of the two paper
recipes) it runs `launch/compile.py --json` in a subprocess:

1. at the paper batch on the smallest v5e topology where it fits (1, 4, 8,
   16, ... chips, among those the global batch splits over), train and eval
   steps;
2. at pod scale: 128 TPU v5p chips (`v5p:4x4x8`, 32 hosts), one example per
   chip (the Spiking-S4 paper batch of 128; for the S4M recipes a 32x
   bigger batch than the paper's 4), train step.

Results go to `--out` as JSON lines (appended; a recipe already there is
not compiled again) and a Markdown table is printed from them, with the
host cores each chip needs to be fed at its estimated speed
(`--seconds_per_example`: the input pipeline's CPU time per example, from
`benchmarks/data_pipeline_bench.py`). Compiling everything takes hours on
2 cores.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = (
  ('demo', ''),
  ('spiking_s4_ndns', ''),
  ('spiking_s4_ndns', 'bfloat16'),
  ('spiking_s4_ndns_seofp', ''),
  ('spiking_s4_vbd', ''),
  ('spiking_s4_offline', ''),
  ('s4m_tiny', ''),
  ('s4m_tiny', 'bfloat16'),
  ('s4m_tiny_seofp', ''),
  ('s4m', ''),
)
V5E = ('v5e:1x1', 'v5e:2x2', 'v5e:2x4', 'v5e:4x4', 'v5e:4x8', 'v5e:8x8')
POD = 'v5p:4x4x8'


def _compile(recipe: str, dtype: str, topology: str, *extra: str) -> dict:
  cmd = [
    sys.executable,
    os.path.join(ROOT, 'launch', 'compile.py'),
    f'--config={os.path.join(ROOT, "configs", recipe + ".py")}',
    f'--topology={topology}',
    '--json',
    *extra,
  ]
  if dtype:
    cmd.append(f'--config.train.compute_dtype={dtype}')
  start = time.perf_counter()
  run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  lines = run.stdout.strip().splitlines()
  if not lines:
    first = (run.stderr.strip().splitlines() or ['?'])[-1]
    return {'compiled': False, 'topology': topology, 'error': first}
  out = json.loads(lines[-1])
  out['wall_seconds'] = time.perf_counter() - start
  return out


def _chips(topology: str) -> int:
  return math.prod(int(x) for x in topology.split(':')[1].split('x'))


def _smallest(recipe: str, dtype: str, batch: int) -> dict:
  """The first v5e topology that fits the paper batch (train and eval)."""
  last = {}
  for topology in V5E:
    if batch % _chips(topology):
      continue
    last = _compile(recipe, dtype, topology)
    print(f'  {topology}: fits={last.get("fits")}', flush=True)
    if last.get('fits'):
      break
  return last


def _paper_batch(recipe: str) -> int:
  sys.path.insert(0, ROOT)
  import importlib  # pylint: disable=g-import-not-at-top

  return int(
    importlib.import_module(f'configs.{recipe}').get_config().train.batch_size
  )


def _row(small: dict, pod: dict, per_example: float, dtype: str) -> str:
  def gib(out):
    return out['per_chip_bytes']['total'] / 2**30

  def hours(out):
    return out['estimated_run_hours']

  def cores(out):
    per_chip = out['examples_per_second'] / out['chips']
    return per_chip * per_example

  name = small['recipe'] + (f' ({dtype})' if dtype else '')
  cells = [name, str(small['global_batch'])]
  for out in (small, pod):
    if not out.get('compiled'):
      cells += [f'{out.get("topology", "?")}: not compiled', '', '', '', '']
      continue
    cells += [
      f'{out["topology"]} ({out["chips"]} chips, {out["hosts"]} hosts)',
      f'{gib(out):.2f} GiB / {out["hbm_bytes"] / 2**30:.0f}',
      f'{out["estimated_step_seconds"] * 1e3:.1f} ms, {hours(out):.2f} h',
      f'{cores(out):.1f}',
      f'{out["compile_seconds"]:.0f} s',
    ]
  return '| ' + ' | '.join(cells) + ' |'


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument(
    '--out', default=os.path.join(ROOT, 'benchmarks', 'compile_recipes.jsonl')
  )
  parser.add_argument('--recipes', default='')
  parser.add_argument('--table_only', action='store_true')
  parser.add_argument(
    '--seconds_per_example',
    type=float,
    default=0.028,
    help='Input-pipeline CPU seconds per example (one host core).',
  )
  args = parser.parse_args()
  wanted = set(filter(None, args.recipes.split(',')))
  done = {}
  if os.path.exists(args.out):
    with open(args.out, encoding='utf-8') as f:
      for line in f:
        row = json.loads(line)
        done[(row['recipe'], row['dtype'])] = row
  for recipe, dtype in RECIPES:
    if args.table_only or (wanted and recipe not in wanted):
      continue
    if (recipe, dtype) in done:
      continue
    print(f'{recipe} {dtype or "float32"}', flush=True)
    small = _smallest(recipe, dtype, _paper_batch(recipe))
    pod = _compile(recipe, dtype, POD, '--per_chip_batch=1', '--steps=train')
    row = {'recipe': recipe, 'dtype': dtype, 'small': small, 'pod': pod}
    done[(recipe, dtype)] = row
    with open(args.out, 'a', encoding='utf-8') as f:
      f.write(json.dumps(row) + '\n')
  print(
    '| recipe | global batch | smallest v5e slice | memory per chip | '
    'est. step, run | host cores per chip | compile | pod (v5p, 1 per '
    'chip) | memory per chip | est. step, run | host cores per chip | '
    'compile |'
  )
  print('|' + '---|' * 12)
  for (recipe, dtype), row in done.items():
    if row['small'].get('recipe'):
      print(_row(row['small'], row['pod'], args.seconds_per_example, dtype))
    else:
      print(f'| {recipe} {dtype} | not compiled: {row["small"]} |')


if __name__ == '__main__':
  main()
