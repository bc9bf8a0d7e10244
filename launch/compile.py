r"""Compiles a recipe for TPU topologies or GPUs this host lacks, and reports.

  python launch/compile.py --config=configs/s4m_tiny.py --topology=v5e:2x2
  python launch/compile.py --config=configs/spiking_s4_ndns.py \
      --topology=v5e:2x4 --json
  python launch/compile.py --config=configs/s4m_tiny.py --topology=v5e:4x4 \
      --per_chip_batch=8 --num_slices=2          # 2 slices of 16 chips
  python launch/compile.py --config=configs/spiking_s4_ndns.py --gpu=h100 \
      --gpus=8                                   # needs jax[cuda12], no GPU

The train and eval steps are those of `launch/train.py`
(`s4jax.training.program`: same mesh, shardings and donation), lowered for
compile-only devices (TPU: libtpu's, the `[tpu]` extra; GPU: a CUDA jaxlib
and a target description) and compiled by XLA for that chip. Nothing runs.
The report gives, per chip: memory (arguments, temporaries, outputs) against
HBM, with one line on what to lower when a step does not fit; flops and bytes
per step with loop trip counts put back (`harness.hlo_cost`); a roofline
step time and the recipe's run time (`train.num_steps` x step), both
labelled as estimates; the examples per second the chips would consume; and
the compile time on this host.

The global batch is the recipe's `train.batch_size` unless
`--per_chip_batch` is given; it must split evenly over the chips. Exit
status: 0 when every step compiled and fits in 90 % of HBM, 1 otherwise
(the report is printed either way).
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

import os

# Host work (shapes, initial-state tracing) runs on the CPU, and libtpu is
# only used to compile; let it load next to other JAX processes.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
os.environ.setdefault('TPU_STDERR_LOG_LEVEL', '3')
os.environ.setdefault('TPU_MIN_LOG_LEVEL', '3')

import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from harness import runtime  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
  'config',
  None,
  'Required. Recipe file, configs/<name>.py[:arg]; change its fields with '
  '--config.a.b=value.',
  lock_config=True,
)
_TOPOLOGY = flags.DEFINE_string(
  'topology',
  None,
  'TPU topology, <generation>:<chips per axis>: v5e:2x2 (4 chips), v5e:2x4, '
  'v5e:4x4 (16 chips, 4 hosts), v5e:16x16, v6e:8x8, v4:2x2x2, v5p:4x4x4.',
)
_NUM_SLICES = flags.DEFINE_integer(
  'num_slices', 1, 'TPU slices of --topology joined over the network.'
)
_GPU = flags.DEFINE_string(
  'gpu',
  None,
  'Compile for GPUs instead (needs jax[cuda12]): h100 (built-in target '
  'description), or h200 with --gpu_target_config.',
)
_GPUS = flags.DEFINE_integer('gpus', 8, 'GPUs (with --gpu), on one host.')
_GPU_TARGET = flags.DEFINE_string(
  'gpu_target_config',
  None,
  'File with a GpuTargetConfigProto text for --gpu (default: the built-in '
  'description of that GPU).',
)
_PER_CHIP_BATCH = flags.DEFINE_integer(
  'per_chip_batch',
  None,
  'Examples per chip and train step (default: the recipe batch split over '
  'the chips).',
)
_EVAL_SECONDS = flags.DEFINE_float(
  'eval_seconds',
  0.0,
  'Length of the compiled eval examples (0: the recipe eval_segment_seconds, '
  'else its train crop; whole-clip evaluation pads clips to the longest of '
  'the split).',
)
_STEPS = flags.DEFINE_list(
  'steps', ['train', 'eval'], 'Steps to compile: train and/or eval.'
)
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line only.')
flags.mark_flags_as_required(['config'])


def _gib(n: float) -> str:
  return f'{n / 2**30:.2f} GiB' if n >= 2**27 else f'{n / 2**20:.1f} MiB'


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  if seconds < 1:
    return f'{seconds * 1e3:.1f} ms'
  if seconds < 3600:
    return f'{seconds:.1f} s'
  if seconds < 3 * 86400:
    return f'{seconds / 3600:.1f} h'
  return f'{seconds / 86400:.1f} days'


def _devices():
  from harness import accelerators  # pylint: disable=g-import-not-at-top

  if bool(_TOPOLOGY.value) == bool(_GPU.value):
    raise ValueError('Pass exactly one of --topology (TPU) and --gpu.')
  if _TOPOLOGY.value:
    devices = accelerators.tpu_devices(_TOPOLOGY.value, _NUM_SLICES.value)
    name = _TOPOLOGY.value
    if _NUM_SLICES.value > 1:
      name += f' x {_NUM_SLICES.value} slices'
    return devices, name
  text = None
  if _GPU_TARGET.value:
    with open(_GPU_TARGET.value, encoding='utf-8') as f:
      text = f.read()
  devices = accelerators.gpu_devices(_GPU.value, _GPUS.value, text)
  return devices, f'{_GPUS.value} x {_GPU.value}'


def _print_step(report, step) -> None:
  if not step.compiled:
    kind = 'out of memory' if step.out_of_memory else 'failed'
    print(f'{step.name} step: compilation {kind}: {step.error}')
    return
  m, hbm = step.memory, report.hbm_bytes
  length = f', {step.seconds:g} s examples' if step.seconds else ''
  print(
    f'{step.name} step (global batch {step.global_batch}{length}): compiled in '
    f'{step.compile_seconds:.0f} s\n'
    f'  memory per chip: {_gib(m["arguments"])} arguments + '
    f'{_gib(m["temporaries"])} temporaries + {_gib(m["outputs"])} outputs '
    f'- {_gib(m["aliased"])} donated + {_gib(m["code"])} code = '
    f'{_gib(m["total"])} of {_gib(hbm)} HBM ({m["total"] / hbm:.0%})'
  )
  c = step.cost
  loops = ', '.join(
    f'{x["op_name"].split("/")[-2] if "/" in x["op_name"] else "loop"} x'
    f'{x["trip_count"] if x["trip_count"] is not None else "?"}'
    for x in step.loops
  )
  print(
    f'  per chip and step: {c["flops"]:.3g} flops, {c["bytes"]:.3g} bytes '
    f'(XLA counts {c["flops_counted_once"]:.3g} / '
    f'{c["bytes_counted_once"]:.3g} with each loop body once'
    + (f'; loops: {loops}' if loops else '')
    + f'; {step.cost_source} cost analysis)'
  )


def _print(report) -> None:
  from harness import compile_report  # pylint: disable=g-import-not-at-top

  chip = report.chip
  print(
    f'{report.recipe} on {report.topology}: {report.chips} chips, '
    f'{report.hosts} host(s), {report.slices} slice(s); {chip.name}: '
    f'{_gib(chip.hbm_bytes)} HBM, {chip.peak(report.compute_dtype) / 1e12:.0f} '
    f'TFLOP/s ({report.compute_dtype}), {chip.hbm_bandwidth / 1e9:.0f} GB/s '
    f'[{chip.source}]'
  )
  for step in report.steps.values():
    _print_step(report, step)
  if report.train.compiled:
    seconds, bound = report.step_seconds()
    print(
      f'estimated train step (roofline, {bound}-bound, a lower bound): '
      f'{_duration(seconds)}; whole run ({report.num_steps} steps): '
      f'{_duration(seconds * report.num_steps)}; the chips would consume '
      f'{report.examples_per_second():.3g} examples/s'
    )
  budget = compile_report.HBM_BUDGET
  print(report.advice() or f'fits: every step within {budget:.0%} of HBM')


def main(argv):
  """Program entry point (after flag parsing)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from harness import compile_report  # pylint: disable=g-import-not-at-top

  runtime.quiet_library_logs()
  config = runtime.loaded_config(_CONFIG)
  with runtime.errors_as_messages():
    try:
      devices, name = _devices()
    except RuntimeError as e:  # No libtpu / CUDA jaxlib: say what to install.
      sys.exit(f'error: {e}')
    report = compile_report.compile_recipe(
      config,
      devices,
      recipe=_recipe_name(),
      topology=name,
      per_chip_batch=_PER_CHIP_BATCH.value,
      eval_seconds=_EVAL_SECONDS.value,
      steps=tuple(_STEPS.value),
    )
  if _JSON.value:
    print(json.dumps(report.as_dict()))
  else:
    _print(report)
  ok = report.fits()
  sys.exit(0 if ok else 1)


def _recipe_name() -> str:
  """`s4m_tiny:smoke=True` for `--config=configs/s4m_tiny.py:smoke=True`."""
  flag = flags.FLAGS['config']
  path, _, arg = (getattr(flag, 'config_filename', '') or '').partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  return f'{name}:{arg}' if arg else name


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
