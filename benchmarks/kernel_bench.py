"""S4 / S4D layer speed and memory against the bare FFT convolution.

Shape (issue defaults): H=256 channels, N2=32 conjugate pairs (N=64), batch 8,
float32 on CPU, L in {1024, 16000}. Variants, all jitted:

  fft     the bare rfft/irfft convolution `fft_conv(u, K)` with K given,
  s4      S4Layer(mode='s4', l_max=L) SSM core: DPLR kernel + FFT conv + D
          skip, learning C~ at the benchmark length (state-spaces/s4's form),
  s4_c    S4Layer(mode='s4') learning plain C: the truncation correction
          C (I - Abar^L) is recomputed in every call,
  s4d     S4Layer(mode='s4d') SSM core: Vandermonde kernel + FFT conv + D,
  s4_glu  / s4d_glu: the same with GELU and the GLU output projection.

Timing: every variant runs in this one process, interleaved over repeats; the
median is reported with its ratio to the `fft` median of the same repeats.
Memory: each variant runs in a fresh subprocess that reports its peak resident
set (`VmHWM` from /proc/self/status, which unlike `ru_maxrss` is not inherited
across exec), next to a subprocess that only runs `fft`. Inputs come from NumPy
so that random-number temporaries do not set the peak.

  python benchmarks/kernel_bench.py                 # full table (~3 min)
  python benchmarks/kernel_bench.py --lengths 1024  # quick
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import json
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from s4jax.layers import s4 as s4_layer
from s4jax.ssm import kernels

H, N2, BATCH = 256, 32, 8
VARIANTS = ('fft', 's4', 's4_c', 's4d', 's4_glu', 's4d_glu')


def build(variant: str, length: int, backward: bool):
  """Returns a jitted zero-argument-style callable and its inputs."""
  rng = np.random.default_rng(0)
  u = jnp.asarray(rng.standard_normal((BATCH, length, H), np.float32))
  w = jnp.asarray(rng.standard_normal((BATCH, length, H), np.float32))
  if variant == 'fft':
    k = jnp.asarray(0.01 * rng.standard_normal((H, length), np.float32))
    params = {'k': k}

    def apply(p, u):
      return kernels.fft_conv(u, p['k'])

  else:
    mode = variant.split('_')[0]
    glu = variant.endswith('_glu')
    layer = s4_layer.S4Layer(
      d_state=2 * N2,
      mode=mode,
      l_max=length if mode == 's4' and variant != 's4_c' else None,
      activation='gelu' if glu else None,
      postact='glu' if glu else None,
    )
    params = layer.init(jax.random.PRNGKey(3), u[:1, :16])['params']

    def apply(p, u):
      return layer.apply({'params': p}, u)

  if backward:
    fn = jax.jit(
      jax.grad(lambda p, u: jnp.sum(apply(p, u) * w), argnums=(0, 1))
    )
  else:
    fn = jax.jit(apply)
  return fn, (params, u)


def _block(x):
  return jax.tree.map(lambda a: a.block_until_ready(), x)


def time_variants(length: int, backward: bool, repeats: int) -> dict:
  fns = {v: build(v, length, backward) for v in VARIANTS}
  first = {}
  for v, (fn, args) in fns.items():
    t0 = time.perf_counter()
    _block(fn(*args))
    first[v] = time.perf_counter() - t0
  times = {v: [] for v in VARIANTS}
  for _ in range(repeats):
    for v, (fn, args) in fns.items():
      t0 = time.perf_counter()
      _block(fn(*args))
      times[v].append(time.perf_counter() - t0)
  med = {v: statistics.median(t) for v, t in times.items()}
  return {
    v: dict(median_s=med[v], first_s=first[v], ratio=med[v] / med['fft'])
    for v in VARIANTS
  }


def peak_rss_gib(variant: str, length: int, backward: bool) -> float:
  cmd = [
    sys.executable,
    __file__,
    '--worker',
    variant,
    '--lengths',
    str(length),
  ] + (['--backward'] if backward else [])
  out = subprocess.run(cmd, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])['peak_rss_gib']


def worker(variant: str, length: int, backward: bool) -> None:
  fn, args = build(variant, length, backward)
  for _ in range(2):
    _block(fn(*args))
  with open('/proc/self/status') as f:
    hwm_kib = next(int(x.split()[1]) for x in f if x.startswith('VmHWM:'))
  print(json.dumps({'peak_rss_gib': hwm_kib / 2**20}))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--lengths', type=int, nargs='+', default=[1024, 16000])
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--no_memory', action='store_true')
  parser.add_argument('--worker', choices=VARIANTS)
  parser.add_argument('--backward', action='store_true')
  args = parser.parse_args()
  if args.worker:
    worker(args.worker, args.lengths[0], args.backward)
    return
  print(
    f'# {jax.devices()[0].device_kind}, jax {jax.__version__}, '
    f'H={H} N2={N2} batch={BATCH} float32'
  )
  print(
    '| L | pass | variant | median s | first call s | x bare FFT | peak RSS GiB | RSS x FFT |'
  )
  print('|---|---|---|---|---|---|---|---|')
  for length in args.lengths:
    for backward in (False, True):
      res = time_variants(length, backward, args.repeats)
      rss = {}
      if not args.no_memory:
        rss = {v: peak_rss_gib(v, length, backward) for v in VARIANTS}
      for v in VARIANTS:
        r = res[v]
        mem = f'{rss[v]:.2f} | {rss[v] / rss["fft"]:.2f}' if rss else '- | -'
        print(
          f'| {length} | {"fwd+bwd" if backward else "fwd"} | {v} | '
          f'{r["median_s"]:.3f} | {r["first_s"]:.2f} | {r["ratio"]:.2f} | {mem} |',
          flush=True,
        )


if __name__ == '__main__':
  main()
