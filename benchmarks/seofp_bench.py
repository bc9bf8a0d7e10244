"""SEOFP integer-add dense layer against float dense layers, XLA on CPU.

All variants use the same SEOFP-quantised weights (sign + 5-bit exponent,
'nearest_log') and the same float32 inputs; all are jitted.

Dense `y = x @ w`, x `(rows, I)`, w `(I, O)`:
  float_dot    `jnp.dot(x, w)`: XLA's GEMM (the baseline),
  float_loop   the integer path's loop structure with float multiplies: a
               sequential sum over inputs of `x[:, i, None] * w[i]` (isolates
               multiplier vs adder from GEMM vs loop),
  int_add      `intadd.int_add_dense` (range check, then bit-add products).

Elementwise product of n float32 pairs (`x * w` with w SEOFP):
  float_mul    `x * w`,
  bit_add      the bare method, `bits(x) + (bits(w) - 0x3F800000)` (exact
               only for normal operands and products; no special cases),
  mul_by_add   `intadd.multiply_by_adding` (IEEE-exact in every case).

Models (`--models`): Spiking-S4 (`configs/spiking_s4_ndns.py`, 1 s at
16 kHz) and S4M-tiny (8 kHz, 4 ms encoder, 1 s), batch 1, forward pass on
the same SEOFP weights (default rules: Dense/Conv kernels), float path vs
`intadd.int_add_apply` (every Dense and 1x1 Conv on the integer path), plus
their size reports at 5 and 8 exponent bits (default rules and everything
quantised).

Timing: every variant of a group runs in this one process, interleaved over
repeats; the table gives the median and the ratio to the group's baseline
median (float_dot, float_mul or the float model).

  python benchmarks/seofp_bench.py            # layer tables (~1 min)
  python benchmarks/seofp_bench.py --models   # plus models (~3 min)
  python benchmarks/seofp_bench.py --quick    # smaller shapes
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from s4jax.quant import intadd, packing, rules, seofp

DENSE_SHAPES = ((4096, 256, 256), (2048, 512, 1024), (16000, 128, 128))
QUICK_DENSE = ((1024, 256, 256),)
ELEMENTWISE = (1 << 24,)
QUICK_ELEMENTWISE = (1 << 20,)


def _float_loop(x, w):
  def step(acc, xw):
    xi, wi = xw
    return acc + xi[:, None] * wi[None, :], None

  init = jnp.zeros((x.shape[0], w.shape[1]), jnp.float32)
  return lax.scan(step, init, (x.T, w))[0]


def _bit_add(x, w):
  bx = lax.bitcast_convert_type(x, jnp.uint32)
  adj = lax.bitcast_convert_type(w, jnp.uint32) - intadd.ONE_BITS
  return lax.bitcast_convert_type(bx + adj, jnp.float32)


def _time(fns, args, repeats):
  """Median seconds per variant, interleaved over repeats."""
  for fn in fns.values():
    jax.block_until_ready(fn(*args))
    jax.block_until_ready(fn(*args))
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - t0)
  return {name: statistics.median(t) for name, t in times.items()}


def _weights(key, shape):
  w = jax.random.normal(key, shape, jnp.float32) * 0.05
  return seofp.quantize(w, 5, 'nearest_log')


def bench_dense(shapes, repeats):
  fns = {
    'float_dot': jax.jit(jnp.dot),
    'float_loop': jax.jit(_float_loop),
    'int_add': jax.jit(intadd.int_add_dense),
  }
  rows = []
  for n, i, o in shapes:
    kx, kw = jax.random.split(jax.random.key(n + i + o))
    x = jax.random.normal(kx, (n, i), jnp.float32)
    w = _weights(kw, (i, o))
    ref = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    err = float(np.max(np.abs(np.asarray(fns['int_add'](x, w)) - ref)))
    med = _time(fns, (x, w), repeats)
    rows.append(((n, i, o), med, err / float(np.max(np.abs(ref)))))
  return rows


def bench_elementwise(sizes, repeats):
  fns = {
    'float_mul': jax.jit(jnp.multiply),
    'bit_add': jax.jit(_bit_add),
    'mul_by_add': jax.jit(intadd.multiply_by_adding),
  }
  rows = []
  for n in sizes:
    kx, kw = jax.random.split(jax.random.key(n))
    x = jax.random.normal(kx, (n,), jnp.float32)
    w = _weights(kw, (n,))
    same = bool(
      np.array_equal(
        np.asarray(fns['mul_by_add'](x, w)).view(np.uint32),
        (np.asarray(x) * np.asarray(w)).view(np.uint32),
      )
    )
    rows.append((n, _time(fns, (x, w), repeats), same))
  return rows


def _models():
  """(name, module, input, output key) of the two models at full size."""
  from configs import spiking_s4_ndns  # noqa: PLC0415 (only for --models)
  from s4jax.models import s4m, spiking_s4  # noqa: PLC0415

  cfg = spiking_s4_ndns.get_config()
  x16 = jax.random.normal(jax.random.key(0), (1, 16000), jnp.float32) * 0.1
  x8 = jax.random.normal(jax.random.key(1), (1, 8000), jnp.float32) * 0.1
  return (
    ('Spiking-S4', spiking_s4.from_config(cfg.model), x16, 'estimate'),
    ('S4M-tiny', s4m.S4M(sample_rate=8000), x8, 'estimates'),
  )


def bench_models(repeats):
  r = rules.QuantRules(quant=seofp.QuantConfig(5, 'nearest_log'))
  rows = []
  for name, model, x, key in _models():
    params = jax.jit(model.init)(jax.random.key(2), x)['params']
    q = rules.quantize_params(params, r)
    log = intadd.InterceptLog()
    int_apply = intadd.int_add_apply(model.apply, r, log)
    fns = {
      'float': jax.jit(lambda p, x, m=model: m.apply({'params': p}, x)),
      'int_add': jax.jit(lambda p, x, f=int_apply: f({'params': p}, x)),
    }
    ref = np.asarray(fns['float'](q, x)[key])
    got = np.asarray(fns['int_add'](q, x)[key])
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    med = _time(fns, (q, x), repeats)
    rows.append((name, med, err, len(set(log.rerouted)), params))
  return rows


def print_sizes(name, params):
  everything = dict(
    include=('.*',), include_bias=True, include_norm=True, include_ssm=True
  )
  for label, extra in (('default rules', {}), ('everything', everything)):
    for k in (5, 8):
      cfg = seofp.QuantConfig(k)
      rep = packing.size_report(params, rules.QuantRules(quant=cfg, **extra))
      q = rep['quantized']
      print(
        f'| {name} | {label} | {k} | {rep["num_quantized"]:,} '
        f'| {100 * q["reduction"]:.3f}% | {rep["float32_bytes"]:,} '
        f'| {rep["packed_bytes"]:,} | {100 * rep["reduction"]:.3f}% '
        f'| {rep["num_params"] - rep["num_quantized"]:,} |'
      )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--models', action='store_true')
  parser.add_argument('--repeats', type=int, default=15)
  args = parser.parse_args()
  dense = QUICK_DENSE if args.quick else DENSE_SHAPES
  elem = QUICK_ELEMENTWISE if args.quick else ELEMENTWISE
  print(
    f'jax {jax.__version__}, {jax.devices()[0].platform}, '
    f'{args.repeats} repeats (median)\n'
  )
  print(
    '| dense (rows, I, O) | float_dot ms | float_loop ms (x) '
    '| int_add ms (x) | int_add max err / max abs |'
  )
  print('|---|---|---|---|---|')
  for shape, med, err in bench_dense(dense, args.repeats):
    base = med['float_dot']
    print(
      f'| {shape} | {1e3 * base:.2f} '
      f'| {1e3 * med["float_loop"]:.2f} ({med["float_loop"] / base:.2f}x) '
      f'| {1e3 * med["int_add"]:.2f} ({med["int_add"] / base:.2f}x) '
      f'| {err:.1e} |'
    )
  print(
    '\n| elementwise n | float_mul ms | bit_add ms (x) | mul_by_add ms (x)'
    ' | mul_by_add == x*w |'
  )
  print('|---|---|---|---|---|')
  for n, med, same in bench_elementwise(elem, args.repeats):
    base = med['float_mul']
    print(
      f'| {n:,} | {1e3 * base:.2f} '
      f'| {1e3 * med["bit_add"]:.2f} ({med["bit_add"] / base:.2f}x) '
      f'| {1e3 * med["mul_by_add"]:.2f} ({med["mul_by_add"] / base:.2f}x) '
      f'| {same} |'
    )

  if not args.models:
    return
  rows = bench_models(max(3, args.repeats // 3))
  print(
    '\n| model, 1 s | float ms | int_add ms (x) | layers rerouted '
    '| max err / max abs |'
  )
  print('|---|---|---|---|---|')
  for name, med, err, n, _ in rows:
    base = med['float']
    print(
      f'| {name} | {1e3 * base:.1f} '
      f'| {1e3 * med["int_add"]:.1f} ({med["int_add"] / base:.2f}x) '
      f'| {n} | {err:.1e} |'
    )
  print(
    '\n| model | rules | k | quantised params | their reduction '
    '| float32 B | packed B | model reduction | params in float |'
  )
  print('|---|---|---|---|---|---|---|---|---|')
  for name, _, _, _, params in rows:
    print_sizes(name, params)


if __name__ == '__main__':
  main()
