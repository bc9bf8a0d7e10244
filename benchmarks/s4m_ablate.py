r"""Where an S4M-tiny training step spends its time on CPU: same-process ablations.

Each variant is the batch-1 training step of `s4m_bench.py` (3 s at 8 kHz,
forward + PIT loss + backward + clipping + Adam, jitted) with one kind of
layer replaced by a cheap stand-in of the same shapes; all variants are
compiled in this one process and timed interleaved, and each is reported as
a ratio to the full model's median:

  full          S4M-tiny as released (S4 = DPLR).
  no_s4         the S4 residual block is the identity (`ssm='identity'`).
  no_gated      every gated fusion (`GatedFusion`: 4 fuse + 3 top-down
                layers per iteration) is `local + resize(global)`.
  no_gln        every global layer norm is its affine part `x * g + b`.

The stand-ins change the model, so these are costs, not recipes. The dense
floor is the step's conv/dense work (`s4m.count_macs`: 2 FLOPs per MAC,
4 passes with remat: forward, recomputed forward, two backward products)
at the float32 matmul rate measured here on the model's own
`(3010, 128) x (128, 512)` shape.

Run:
  python benchmarks/s4m_ablate.py --rounds=4
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import contextlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import s4m_bench

from configs import s4m_tiny
from s4jax.models import s4m
from s4jax.models import s4m_blocks as blocks


def _gated_standin(self, local, glob):
  return local + blocks.nearest_resize(glob, local.shape[1])


def _gln_standin(x, gamma, beta):
  return x * gamma + beta


@contextlib.contextmanager
def _patched(owner, name, fn):
  original = getattr(owner, name)
  setattr(owner, name, fn)
  try:
    yield
  finally:
    setattr(owner, name, original)


def _build(variant: str):
  if variant == 'no_s4':
    return s4m_bench.make_step('identity', 1, 3.0)
  patch = {
    'full': contextlib.nullcontext(),
    'no_gated': _patched(blocks.GatedFusion, '__call__', _gated_standin),
    'no_gln': _patched(blocks, 'global_layer_norm', _gln_standin),
  }[variant]
  with patch:
    return s4m_bench.make_step('s4', 1, 3.0)


def matmul_gflops(reps: int = 50) -> float:
  """float32 GFLOP/s of the model's 1x1-conv matmul shape on this machine."""
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((3010, 128)), jnp.float32)
  b = jnp.asarray(rng.standard_normal((128, 512)), jnp.float32)
  f = jax.jit(jnp.dot)
  f(a, b).block_until_ready()
  best = float('inf')
  for _ in range(reps):
    t = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * 3010 * 128 * 512 / best / 1e9


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=4)
  parser.add_argument(
    '--variants', default='full,no_s4,no_gated,no_gln', help='comma-separated'
  )
  args = parser.parse_args()
  variants = args.variants.split(',')
  if variants[0] != 'full':
    raise SystemExit('--variants must start with full (the baseline).')
  steps = {v: _build(v) for v in variants}
  for compiled, state, data, _ in steps.values():
    s4m_bench._run(compiled, state, data)  # warm-up
  wall = {v: [] for v in variants}
  for _ in range(args.rounds):
    for v, (compiled, state, data, _) in steps.items():
      wall[v].append(s4m_bench._run(compiled, state, data)[0])
  med = {v: statistics.median(w) for v, w in wall.items()}
  print('| variant | step wall median (s) | / full | XLA temp (MiB) |')
  print('|---|---|---|---|')
  for v, (compiled, *_) in steps.items():
    temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
    print(f'| {v} | {med[v]:.2f} | {med[v] / med["full"]:.2f} | {temp:.0f} |')
  macs = s4m.count_macs(s4m_tiny.get_config().model)['total'] * 3.0
  rate = matmul_gflops()
  floor = 4 * 2 * macs / (rate * 1e9)
  print(
    f'dense floor: {4 * 2 * macs / 1e9:.0f} GFLOP at {rate:.0f} GFLOP/s = '
    f'{floor:.2f} s ({floor / med["full"]:.2f} of full)'
  )


if __name__ == '__main__':
  main()
