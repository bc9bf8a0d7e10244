"""Throughput of the built-in dataset's input pipeline on CPU.

Measures, in one process:
  1. generating the default synthetic set (train 1200 s, validation and test
     120 s each, 16 kHz) into a fresh temporary cache;
  2. `create_train_iterator` examples per second (4 clips of 4 s per batch);
  3. baseline: the same batches from the NumPy batch function alone (no
     prefetching), to show what the prefetching threads add;
  4. baseline: one Spiking-S4 training step (value_and_grad + Adam) on a
     fixed batch, and the same step fed by the pipeline, to show whether the
     pipeline slows training down.

  python benchmarks/data_pipeline_bench.py [--steps 200] [--skip_generation]
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import itertools
import os
import platform
import tempfile
import time

import numpy as np

from configs import base
from data_pipelines import input_pipeline, synthetic


def _time_generation(workers: int) -> tuple[float, float]:
  """(wall, CPU) seconds to generate the default set into a fresh cache."""
  with tempfile.TemporaryDirectory() as root:
    wall, cpu = time.perf_counter(), time.process_time()
    for split, sec in (
      ('train', 1200.0),
      ('validation', 120.0),
      ('test', 120.0),
    ):
      spec = synthetic.SyntheticSpec(split=split, total_seconds=sec)
      synthetic.load_or_generate(spec, root, num_workers=workers)
    return time.perf_counter() - wall, time.process_time() - cpu


def _rate(fn, steps: int) -> float:
  """Seconds per call of `fn` over `steps` calls."""
  start = time.perf_counter()
  for _ in range(steps):
    fn()
  return (time.perf_counter() - start) / steps


def _model_step(batch):
  """A jitted Spiking-S4 train step and its state, or None if unavailable."""
  try:
    import jax
    import optax

    from s4jax.models import spiking_s4
  except ImportError as e:
    print(f'model step: unavailable ({e})')
    return None
  model = spiking_s4.SpikingS4()
  x = {k: jax.numpy.asarray(v) for k, v in batch.items()}
  variables = model.init(
    {'params': jax.random.key(0), 'dropout': jax.random.key(1)},
    x['noisy'],
    train=False,
  )
  tx = optax.adam(1e-3)
  state = (variables['params'], tx.init(variables['params']))

  @jax.jit
  def step(state, b):
    params, opt = state

    def loss(p):
      out = model.apply(
        {'params': p},
        b['noisy'],
        train=True,
        rngs={'dropout': jax.random.key(2)},
      )
      return spiking_s4.loss_fn(out, b, None)[0]

    value, grads = jax.value_and_grad(loss)(params)
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), opt), value

  return step, state


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--steps', type=int, default=200)
  p.add_argument('--model_steps', type=int, default=30)
  p.add_argument('--rounds', type=int, default=5)
  p.add_argument('--skip_generation', action='store_true')
  p.add_argument('--skip_model', action='store_true')
  args = p.parse_args()
  print(
    f'machine: {platform.processor() or platform.machine()}, '
    f'{os.cpu_count()} CPUs'
  )
  if not args.skip_generation:
    wall, cpu = _time_generation(1)
    print(
      f'generate default synthetic set (1440 s of audio), 1 process: '
      f'{wall:.1f} s wall, {cpu:.1f} s CPU '
      f'(x{1440 / wall:.0f} real time)'
    )

  config = base.get_base_config()  # synthetic, 16 kHz, 4 s crops
  config.train.batch_size = 4
  source = input_pipeline.make_source(config, 'train')  # cached after 1st
  fn, _ = input_pipeline._train_batch_fn(config, source, 0, 1)
  it = input_pipeline.create_train_iterator(
    config, process_index=0, process_count=1
  )
  for _ in range(5):
    next(it)
  counter = itertools.count()
  # Interleaved rounds, medians: the machine is shared and noisy.
  per = max(1, args.steps // args.rounds)
  t_numpy = np.median(
    [_rate(lambda: fn(next(counter)), per) for _ in range(args.rounds)]
  )
  t_pipe = np.median([_rate(lambda: next(it), per) for _ in range(args.rounds)])
  b = config.train.batch_size
  print(
    f'NumPy batch function (baseline): {1e3 * t_numpy:.2f} ms/batch, '
    f'{b / t_numpy:.0f} examples/s'
  )
  print(
    f'train iterator:                  {1e3 * t_pipe:.2f} ms/batch, '
    f'{b / t_pipe:.0f} examples/s  (x{t_numpy / t_pipe:.2f} vs NumPy)'
  )

  if args.skip_model:
    return
  built = _model_step(next(it))
  if built is None:
    return
  step, state = built
  fixed = next(it)
  state, loss = step(state, fixed)  # compile
  loss.block_until_ready()

  def fixed_step():
    nonlocal state
    state, value = step(state, fixed)
    value.block_until_ready()

  def fed_step():
    nonlocal state
    state, value = step(state, next(it))
    value.block_until_ready()

  per = max(1, args.model_steps // args.rounds)
  fixed_t, fed_t = [], []
  for _ in range(args.rounds):
    fixed_t.append(_rate(fixed_step, per))
    fed_t.append(_rate(fed_step, per))
  t_fixed, t_fed = np.median(fixed_t), np.median(fed_t)
  print(f'Spiking-S4 train step, fixed batch: {t_fixed:.3f} s/step')
  print(
    f'Spiking-S4 train step, fed by the pipeline: {t_fed:.3f} s/step '
    f'(x{t_fed / t_fixed:.3f}); pipeline alone is '
    f'{100 * t_pipe / t_fixed:.1f}% of a step'
  )


if __name__ == '__main__':
  main()
