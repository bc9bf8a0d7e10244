r"""Per-hop latency of the exported streaming enhancer, against JAX.

Run on one core:

  taskset -c 0 env XLA_FLAGS='--xla_cpu_multi_thread_eigen=false \
    intra_op_parallelism_threads=1' python benchmarks/export_latency.py

Exports the shipped `s4jax/pretrained/spiking_s4` stream (float32 and SEOFP
5-bit) to ONNX and LiteRT in memory, then times one hop in steady state.
The runtimes take turns in blocks of `--block` consecutive hops (50), so
that each streams as a device loop would, with warm caches, and machine-load
drift hits them all alike:

* `jax stream_step`: `s4jax.models.spiking_s4.stream_step`, the baseline
  (the JAX streaming model users call today);
* `jax portable step`: the exported function itself under `jax.jit`;
* `onnxruntime` and `litert`: the artifacts, one thread each, fed and read
  as NumPy arrays as a device loop would (`examples/stream_enhance.py`).

Reports the median and p99 wall time per 8 ms hop, the ratio of each
median to the `stream_step` median, and the artifact sizes.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import s4jax
from deploy import artifacts, runners
from s4jax.models import spiking_s4


def main() -> None:
  """Prints the latency and size tables."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--hops', type=int, default=2000)
  parser.add_argument('--block', type=int, default=50)
  args = parser.parse_args()
  enh = s4jax.from_pretrained('spiking_s4')
  variables = {'params': enh.params}
  form = artifacts.stream_form(enh, 'pretrained:spiking_s4')
  qform = artifacts.stream_form(enh, 'pretrained:spiking_s4', seofp_bits=5)
  blobs = {}
  for f in (form, qform):
    for fmt in ('stablehlo', 'onnx', 'tflite'):
      blobs[f.name, fmt] = artifacts.build(f, fmt, fmt != 'tflite')
  signal = artifacts.test_signal(args.hops * 128 / 16000, 16000)
  hops = [signal[:, m * 128 : (m + 1) * 128] for m in range(args.hops)]

  state = spiking_s4.init_stream(variables, enh.config.model, 1)
  jstep = jax.jit(form.fn)
  jstate = [jnp.asarray(a) for a in artifacts.zero_state(form, 1)]
  ort = runners.OnnxRunner(blobs[form.name, 'onnx'])
  lrt = runners.LiteRTRunner(blobs[form.name, 'tflite'])
  states = {
    k: dict(
      zip(form.input_names[1:], artifacts.zero_state(form, 1), strict=True)
    )
    for k in ('onnx', 'litert')
  }
  nexts = dict(zip(form.output_names[1:], form.input_names[1:], strict=True))

  def run_stream_step(hop):
    nonlocal state
    out, state = spiking_s4.stream_step(variables, state, jnp.asarray(hop))
    np.asarray(out)

  def run_portable(hop):
    nonlocal jstate
    out, *jstate = jstep(jnp.asarray(hop), *jstate)
    np.asarray(out)

  def runtime(key, run):
    def call(hop):
      res = run({'hop': hop, **states[key]})
      states[key] = {nexts[n]: v for n, v in res.items() if n in nexts}

    return call

  calls = {
    'stream_step': run_stream_step,
    'portable': run_portable,
    'onnx': runtime('onnx', ort.run),
    'litert': runtime('litert', lrt.run),
  }
  times = {k: [] for k in calls}
  # Rotating blocks: each runtime streams `--block` hops in a row (a device
  # loop keeps its caches warm too), then the next; the rotation spreads
  # load drift over all of them.
  for start in range(0, args.hops, args.block):
    for key, call in calls.items():
      for hop in hops[start : start + args.block]:
        t = time.perf_counter()
        call(hop)
        times[key].append(time.perf_counter() - t)

  skip = min(200, args.hops // 4)  # Compilation and warm-up.
  base = np.median(times['stream_step'][skip:])
  print(
    f'{platform.processor() or platform.machine()}, {args.hops} hops of 8 ms '
    f'(first {skip} dropped), one thread per runtime, turns of '
    f'{args.block} hops'
  )
  print('| runtime | median ms/hop | p99 ms/hop | median / stream_step |')
  print('|---|---|---|---|')
  names = {
    'stream_step': 'JAX `spiking_s4.stream_step` (baseline)',
    'portable': 'JAX, exported function under `jax.jit`',
    'onnx': 'onnxruntime, `.onnx`',
    'litert': 'LiteRT interpreter, `.tflite`',
  }
  for key, label in names.items():
    t = np.asarray(times[key][skip:]) * 1e3
    print(
      f'| {label} | {np.median(t):.3f} | {np.percentile(t, 99):.3f} | '
      f'x{np.median(t) / base / 1e3:.2f} |'
    )
  print()
  print('| artifact | float32 bytes | SEOFP 5-bit bytes |')
  print('|---|---|---|')
  for fmt in ('stablehlo', 'onnx', 'tflite'):
    a, b = len(blobs[form.name, fmt]), len(blobs[qform.name, fmt])
    print(f'| {fmt} | {a:,} | {b:,} |')


if __name__ == '__main__':
  main()
