r"""Train-step throughput of a recipe: float32 vs bfloat16 dense compute.

  python benchmarks/train_step_bench.py [--config=configs/demo.py] [--steps=30]

Builds the recipe's model, optimiser and jitted sharded train step exactly as
`launch/train.py` does (`s4jax.training.program`; one device here), feeds a
fixed synthetic batch and times `--steps` steps after compilation,
alternating the two precisions in rounds so machine noise hits both alike. Prints steps/s and audio seconds
processed per second for each, and the bfloat16 / float32 ratio.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from s4jax.training import program, sharding, tasks

_CONFIG = config_flags.DEFINE_config_file(
  'config', 'configs/demo.py', 'Recipe file.', lock_config=False
)
_STEPS = flags.DEFINE_integer('steps', 30, 'Timed steps per round.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Alternating rounds.')


def build(config, dtype: str):
  """(jitted step, state, global batch) for `config` at compute `dtype`."""
  config = config.copy_and_resolve_references()
  config.train.compute_dtype = dtype
  prog = program.Program.build(config, sharding.create_mesh())
  state = prog.init_state()
  rows = config.train.batch_size
  length = tasks.init_samples(config)
  rng = np.random.default_rng(0)
  clean = rng.standard_normal((rows, length)).astype(np.float32) * 0.1
  noisy = clean + 0.05 * rng.standard_normal((rows, length)).astype(np.float32)
  batch = sharding.to_global({'noisy': noisy, 'clean': clean}, prog.mesh)
  step = prog.train_step(state, batch)
  state, _, skips = step(state, batch)  # Compile.
  skips.block_until_ready()
  return step, state, batch, rows * length / config.data.sample_rate


def main(argv):
  del argv
  config = _CONFIG.value
  runs = {d: build(config, d) for d in ('float32', 'bfloat16')}
  times = {d: [] for d in runs}
  for _ in range(_ROUNDS.value):
    for dtype, (step, state, batch, _) in runs.items():
      start = time.perf_counter()
      for _ in range(_STEPS.value):
        state, _, skips = step(state, batch)
      skips.block_until_ready()
      times[dtype].append(time.perf_counter() - start)
      runs[dtype] = (step, state, batch, runs[dtype][3])
  rate = {}
  for dtype, t in times.items():
    best = min(t) / _STEPS.value
    rate[dtype] = 1.0 / best
    audio = runs[dtype][3]
    print(
      f'{dtype:9s}: {rate[dtype]:7.2f} steps/s, '
      f'{audio * rate[dtype]:8.1f} s of audio per s (best of '
      f'{_ROUNDS.value} rounds of {_STEPS.value} steps)'
    )
  print(
    f'bfloat16 / float32 throughput: {rate["bfloat16"] / rate["float32"]:.2f}x'
  )


if __name__ == '__main__':
  app.run(main)
