r"""S4M-tiny training-step time and peak memory on CPU, and the S4 block's share.

One training step = forward, PIT negative-SNR loss, backward, gradient
clipping and Adam, jitted, on 3 s of 8 kHz audio (24,000 samples). The
baseline is the same model with the S4 residual block replaced by the
identity (`ssm='identity'`), compiled and timed in the same process, steps
interleaved so both see the same machine load; the S4 share is
`1 - t_identity / t_s4`. Peak resident memory is measured in a fresh
subprocess per configuration (`VmHWM` after two steps; executables come
from a compilation cache filled by the timing run, so the figure is the
run's memory, not the compiler's).

Run:
  python benchmarks/s4m_bench.py                 # batch 1 and 4
  python benchmarks/s4m_bench.py --batch=1 --rounds=5
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs import s4m_tiny
from s4jax.models import s4m

VARIANTS = ('s4', 'identity')


def _setup_cache(path: str) -> None:
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def make_step(ssm: str, batch: int, seconds: float):
  """Compiled train step, its initial state and a batch."""
  config = s4m_tiny.get_config(f'ssm={ssm}')
  model = s4m.from_config(config.model)
  n = int(seconds * config.data.sample_rate)
  rng = np.random.default_rng(0)
  src = jnp.asarray(rng.standard_normal((batch, 2, n)), jnp.float32)
  data = {'mixture': src.sum(1), 'sources': src}
  params = jax.jit(model.init)(jax.random.PRNGKey(0), data['mixture'][:1])
  params = params['params']
  tx = optax.chain(
    optax.clip_by_global_norm(config.optimizer.clip_norm),
    optax.adam(config.optimizer.learning_rate),
  )

  def step(params, opt, data):
    def loss(p):
      out = model.apply({'params': p}, data['mixture'], train=True)
      return s4m.loss_fn(out, data, config.loss)[0]

    val, grads = jax.value_and_grad(loss)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, val

  opt = tx.init(params)
  t0 = time.perf_counter()
  compiled = (
    jax.jit(step, donate_argnums=(0, 1)).lower(params, opt, data).compile()
  )
  compile_s = time.perf_counter() - t0
  return compiled, [params, opt], data, compile_s


def _run(compiled, state, data) -> tuple[float, float]:
  """One step; returns (wall seconds, process CPU seconds)."""
  t0, c0 = time.perf_counter(), time.process_time()
  state[0], state[1], loss = compiled(state[0], state[1], data)
  loss.block_until_ready()
  return time.perf_counter() - t0, time.process_time() - c0


def time_batch(batch: int, seconds: float, rounds: int) -> dict:
  """Interleaved timing of the S4 model and its identity baseline."""
  steps = {v: make_step(v, batch, seconds) for v in VARIANTS}
  for compiled, state, data, _ in steps.values():
    _run(compiled, state, data)  # warm-up
  wall = {v: [] for v in VARIANTS}
  cpu = {v: [] for v in VARIANTS}
  for _ in range(rounds):
    for v, (compiled, state, data, _) in steps.items():
      w, c = _run(compiled, state, data)
      wall[v].append(w)
      cpu[v].append(c)
  out = {'batch': batch}
  for v in VARIANTS:
    out[v] = {
      'wall_s': statistics.median(wall[v]),
      'cpu_s': statistics.median(cpu[v]),
      'compile_s': steps[v][3],
    }
  out['s4_share_wall'] = 1 - out['identity']['wall_s'] / out['s4']['wall_s']
  out['s4_share_cpu'] = 1 - out['identity']['cpu_s'] / out['s4']['cpu_s']
  return out


def _memory_child(ssm: str, batch: int, seconds: float) -> None:
  compiled, state, data, _ = make_step(ssm, batch, seconds)
  for _ in range(2):
    _run(compiled, state, data)
  # VmHWM, not ru_maxrss: the latter keeps the parent's peak across
  # fork + exec, so every child would report the timing process's RSS.
  with open('/proc/self/status') as f:
    hwm_kib = next(int(x.split()[1]) for x in f if x.startswith('VmHWM:'))
  print(json.dumps({'peak_bytes': hwm_kib * 1024}))


def peak_memory(ssm: str, batch: int, seconds: float, cache: str) -> float:
  """Peak RSS (GiB) of a fresh process running two steps."""
  cmd = [
    sys.executable,
    __file__,
    f'--child={ssm},{batch}',
    f'--seconds={seconds}',
    f'--cache={cache}',
  ]
  out = subprocess.run(cmd, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])['peak_bytes'] / 2**30


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', default='1,4', help='comma-separated sizes')
  parser.add_argument('--seconds', type=float, default=3.0)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--child', default='', help=argparse.SUPPRESS)
  parser.add_argument('--cache', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    _setup_cache(args.cache)
    ssm, batch = args.child.split(',')
    _memory_child(ssm, int(batch), args.seconds)
    return
  with tempfile.TemporaryDirectory() as cache:
    _setup_cache(cache)
    macs = s4m.count_macs(s4m_tiny.get_config().model)['total']
    print(f'# S4M-tiny, {args.seconds:g} s at 8 kHz, {os.cpu_count()} CPUs')
    print(f'# conv/dense MACs per second of audio: {macs / 1e9:.2f} G')
    print(
      '| batch | variant | step wall (s) | step CPU (s) | compile (s) '
      '| peak RSS (GiB) |'
    )
    print('|---|---|---|---|---|---|')
    for batch in (int(b) for b in args.batch.split(',')):
      res = time_batch(batch, args.seconds, args.rounds)
      for v in VARIANTS:
        mem = peak_memory(v, batch, args.seconds, cache)
        r = res[v]
        print(
          f'| {batch} | {v} | {r["wall_s"]:.2f} | {r["cpu_s"]:.2f} '
          f'| {r["compile_s"]:.0f} | {mem:.2f} |',
          flush=True,
        )
      print(
        f'| {batch} | S4 share | {res["s4_share_wall"]:.1%} '
        f'| {res["s4_share_cpu"]:.1%} | | |',
        flush=True,
      )


if __name__ == '__main__':
  main()
