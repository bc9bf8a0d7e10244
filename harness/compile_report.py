"""Compile a recipe's steps for accelerators this host lacks, and report.

`compile_recipe(config, devices)` lowers and compiles the train step (and
the eval step) of `s4jax.training.program.Program`, the same program that
`launch/train.py` runs, over a mesh of compile-only devices (TPU topologies
or GPUs from `harness.accelerators`), and returns a `Report`:

* memory per chip from XLA's `memory_analysis()`: arguments, temporaries,
  outputs and the donated (aliased) part, against the chip's HBM;
* flops and bytes per chip and step with loop trip counts put back
  (`harness.hlo_cost`): XLA's own count for the chip, scaled by the ratio
  of XLA's generic count with loops multiplied to the same count with each
  loop body once. Where the platform reports no cost (CUDA targets), the
  generic count is used and `cost_source` says so;
* a roofline step time, `max(flops / peak, bytes / bandwidth)` with the
  chip figures of `harness.accelerators.CHIPS`, and the run time
  `train.num_steps x step`. Both are lower-bound estimates: they assume
  perfect overlap and ignore collectives, launch overheads and the input
  pipeline;
* the examples per second the chips would consume at that speed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import ml_collections

from harness import accelerators, errors, hlo_cost
from s4jax.training import program as program_lib
from s4jax.training import sharding as sharding_lib

__all__ = [
  'HBM_BUDGET',
  'STEPS',
  'Report',
  'StepReport',
  'analyse',
  'compile_recipe',
  'roofline_seconds',
]

# Share of a chip's HBM a step may plan for: the rest is left to the
# runtime, fragmentation and XLA's estimate error.
HBM_BUDGET = 0.9
STEPS = ('train', 'eval')


@dataclasses.dataclass
class StepReport:
  """One compiled step on one chip.

  Attributes:
    name: 'train' or 'eval'.
    compiled: False when XLA refused it (then `error` says why).
    error: XLA's first error line, or ''.
    out_of_memory: XLA refused it for lack of device memory.
    required_bytes: what XLA said the step needs, when it refused it for
      memory (0 if it did not say).
    compile_seconds: lowering plus compilation, on this host.
    global_batch: examples per step over all chips.
    memory: bytes per chip: `arguments`, `temporaries`, `outputs`,
      `aliased` (outputs written over donated arguments), `code` and
      `total` = arguments + outputs - aliased + temporaries + code.
    cost: per chip and step: `flops`, `bytes` (loops corrected),
      `flops_counted_once`, `bytes_counted_once` (as XLA reports them),
      `flops_generic`, `bytes_generic` (XLA's generic analysis, loops
      corrected, library matmuls added; TPU tile padding not counted),
      `transcendentals`.
    cost_source: 'platform' (the chip's own analysis, loop-scaled) or
      'generic' (XLA's generic analysis of the chip's optimised program).
    loops: `{op_name, trip_count}` of each while loop (None: unread).
    seconds: length of each example (set for the eval step).
  """

  name: str
  compiled: bool
  error: str = ''
  out_of_memory: bool = False
  required_bytes: int = 0
  compile_seconds: float = 0.0
  global_batch: int = 0
  memory: dict[str, int] = dataclasses.field(default_factory=dict)
  cost: dict[str, float] = dataclasses.field(default_factory=dict)
  cost_source: str = ''
  loops: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  seconds: float = 0.0


@dataclasses.dataclass
class Report:
  """A recipe compiled for a topology (see the module docstring)."""

  recipe: str
  topology: str
  chip: accelerators.Chip
  chips: int
  hosts: int
  slices: int
  compute_dtype: str
  num_steps: int
  steps: dict[str, StepReport]

  @property
  def train(self) -> StepReport:
    return self.steps['train']

  @property
  def hbm_bytes(self) -> int:
    return self.chip.hbm_bytes

  def fits(self) -> bool:
    """Every compiled step within `HBM_BUDGET` of the chip's memory."""
    return all(
      s.compiled and s.memory['total'] <= HBM_BUDGET * self.hbm_bytes
      for s in self.steps.values()
    )

  def step_seconds(self) -> tuple[float, str]:
    """Roofline train-step time and its bound ('compute' or 'memory')."""
    return roofline_seconds(self.train.cost, self.chip, self.compute_dtype)

  def examples_per_second(self) -> float:
    """Examples the chips would consume per second at the roofline."""
    seconds, _ = self.step_seconds()
    return self.train.global_batch / seconds if seconds > 0 else math.inf

  def advice(self) -> str:
    """One line on what to change when a step does not fit ('' if it does)."""
    if self.fits():
      return ''
    bad = [s for s in self.steps.values() if not s.compiled or (
      s.memory['total'] > HBM_BUDGET * self.hbm_bytes)]  # fmt: skip
    step = bad[0]
    budget = HBM_BUDGET * self.hbm_bytes
    allowed = f'{HBM_BUDGET:.0%} of {self.hbm_bytes / 2**30:.1f} GiB allowed'
    where = f'The {step.name} step does not fit a {self.chip.name} chip'
    if step.compiled:
      # Temporaries grow with the batch; arguments (the state) do not.
      total = step.memory['total']
      fixed = total - step.memory['temporaries']
      if fixed >= budget:
        return (
          f'{where}: the replicated state alone (arguments and outputs, '
          f'{fixed / 2**30:.1f} GiB per chip; {allowed}) does not, whatever '
          'the batch or the number of chips: use a chip with more HBM or a '
          'smaller model.'
        )
      scale = (budget - fixed) / max(step.memory['temporaries'], 1)
    else:
      total = step.required_bytes
      scale = budget / total if total else 0.5
    per_chip = max(step.global_batch // self.chips, 1)
    fit = max(int(per_chip * scale), 1)
    more = max(math.ceil(1 / max(scale, 1e-9)), 2)
    if step.name == 'eval':
      lower = f'--config.eval.batch_size={fit * self.chips} or less (now '
      lower += f'{step.global_batch} over {self.chips} chips)'
    else:
      lower = f'--per_chip_batch={fit} or less (now {per_chip})'
    dtype = ''
    if self.compute_dtype != 'bfloat16':
      dtype = ", or --config.train.compute_dtype='bfloat16'"
    size = f'needs {total / 2**30:.1f} GiB per chip, ' if total else ''
    return (
      f'{where} ({size}{allowed}): use {lower}, or about {more}x the chips '
      f'at the same global batch{dtype}.'
    )

  def as_dict(self) -> dict[str, Any]:
    """The JSON line of `launch/compile.py --json` (per-chip figures)."""
    train = self.train
    seconds, bound = self.step_seconds() if train.compiled else (math.nan, '')
    out = {
      'compiled': all(s.compiled for s in self.steps.values()),
      'recipe': self.recipe,
      'topology': self.topology,
      'chip': self.chip.name,
      'chips': self.chips,
      'hosts': self.hosts,
      'slices': self.slices,
      'global_batch': train.global_batch,
      'per_chip_batch': train.global_batch / self.chips,
      'compute_dtype': self.compute_dtype,
      'hbm_bytes': self.hbm_bytes,
      'per_chip_bytes': _bytes(train.memory),
      'fits': self.fits(),
      'advice': self.advice(),
      'flops_per_step': train.cost.get('flops'),
      'bytes_per_step': train.cost.get('bytes'),
      'flops_counted_once': train.cost.get('flops_counted_once'),
      'bytes_counted_once': train.cost.get('bytes_counted_once'),
      'flops_generic': train.cost.get('flops_generic'),
      'bytes_generic': train.cost.get('bytes_generic'),
      'cost_source': train.cost_source,
      'loops': train.loops,
      'estimated_step_seconds': seconds,
      'bound': bound,
      'num_steps': self.num_steps,
      'estimated_run_hours': seconds * self.num_steps / 3600,
      'examples_per_second': (
        self.examples_per_second() if train.compiled else math.nan
      ),
      'compile_seconds': sum(s.compile_seconds for s in self.steps.values()),
      'chip_source': self.chip.source,
    }
    for name, step in self.steps.items():
      if name != 'train':
        out[f'{name}_per_chip_bytes'] = _bytes(step.memory)
        out[f'{name}_compiled'] = step.compiled
        out[f'{name}_seconds'] = step.seconds
      if step.error:
        out[f'{name}_error'] = step.error
    return out


def _bytes(memory: dict[str, int]) -> dict[str, int]:
  keys = ('arguments', 'temporaries', 'outputs', 'aliased', 'total')
  return {k: memory[k] for k in keys if k in memory}


def _memory(compiled: Any) -> dict[str, int]:
  stats = compiled.memory_analysis()
  memory = {
    'arguments': int(stats.argument_size_in_bytes),
    'temporaries': int(stats.temp_size_in_bytes),
    'outputs': int(stats.output_size_in_bytes),
    'aliased': int(stats.alias_size_in_bytes),
    'code': int(stats.generated_code_size_in_bytes),
  }
  memory['total'] = (
    memory['arguments']
    + memory['outputs']
    - memory['aliased']
    + memory['temporaries']
    + memory['code']
  )
  return memory


def _platform_cost(compiled: Any) -> dict[str, float]:
  try:
    raw = compiled.cost_analysis() or {}
  except Exception:  # pylint: disable=broad-except
    raw = {}
  if isinstance(raw, (list, tuple)):
    raw = raw[0] if raw else {}
  return {k: float(raw.get(k, 0.0)) for k in ('flops', 'bytes accessed')}


def _cost(compiled: Any) -> tuple[dict[str, float], str, list[dict[str, Any]]]:
  """Per-chip cost with loops corrected; see the module docstring."""
  loops = hlo_cost.loop_corrected_cost(compiled.as_text())
  platform = _platform_cost(compiled)
  source = 'platform' if platform['flops'] > 0 else 'generic'
  out = {}
  for key, name in (('flops', 'flops'), ('bytes accessed', 'bytes')):
    once = loops.counted_once[key]
    scale = loops.corrected[key] / once if once > 0 else 1.0
    base = platform[key] if source == 'platform' else once
    out[name] = base * scale
    out[f'{name}_counted_once'] = base
    out[f'{name}_generic'] = loops.corrected[key]
  out['transcendentals'] = loops.corrected['transcendentals']
  return out, source, hlo_cost.describe(loops)


def roofline_seconds(
  cost: dict[str, float], chip: accelerators.Chip, compute_dtype: str
) -> tuple[float, str]:
  """`max(flops / peak, bytes / bandwidth)` and which term wins."""
  compute = cost['flops'] / chip.peak(compute_dtype)
  memory = cost['bytes'] / chip.hbm_bandwidth
  return max(compute, memory), 'compute' if compute >= memory else 'memory'


def analyse(
  name: str, compiled: Any, *, compile_seconds: float, global_batch: int
) -> StepReport:
  """The `StepReport` of a compiled step (compile-only or runnable)."""
  cost, source, loops = _cost(compiled)
  return StepReport(
    name,
    compiled=True,
    compile_seconds=compile_seconds,
    global_batch=global_batch,
    memory=_memory(compiled),
    cost=cost,
    cost_source=source,
    loops=loops,
  )


def _compile(name: str, jitted: Any, args: tuple[Any, ...], batch: int):
  start = time.perf_counter()
  try:
    compiled = jitted.lower(*args).compile()
  except Exception as e:  # pylint: disable=broad-except
    text = str(e)
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return StepReport(
      name,
      compiled=False,
      error=first[:500],
      out_of_memory=errors.is_out_of_memory(text),
      required_bytes=errors.required_bytes(text),
      compile_seconds=time.perf_counter() - start,
      global_batch=batch,
    )
  seconds = time.perf_counter() - start
  return analyse(name, compiled, compile_seconds=seconds, global_batch=batch)


def compile_recipe(
  config: ml_collections.ConfigDict,
  devices: list[Any],
  *,
  recipe: str = '',
  topology: str = '',
  per_chip_batch: int | None = None,
  eval_seconds: float = 0.0,
  steps: tuple[str, ...] = ('train', 'eval'),
) -> Report:
  """Compiles a recipe's steps over `devices` and analyses them.

  Args:
    config: the recipe (as `launch/train.py` would run it).
    devices: compile-only devices of one chip type (all of the mesh).
    recipe: the recipe's name, for the report.
    topology: the topology's name, for the report.
    per_chip_batch: examples per chip and train step; default: the
      recipe's `train.batch_size` (the global batch) split over the chips.
      Eval batches are `eval.batch_size` rounded up to a multiple of the
      chips, as the evaluation loop pads them.
    eval_seconds: length of the compiled eval examples. Default: the
      recipe's `data.eval_segment_seconds`, else its train crop length;
      a whole-clip evaluation pads every clip to its split's longest,
      which only the data knows.
    steps: which steps to compile ('train', 'eval').

  Returns:
    A `Report`.
  """
  unknown = sorted(set(steps) - set(STEPS))
  if unknown or 'train' not in steps:
    raise ValueError(
      f'steps={list(steps)}: must include train, and may include eval '
      f'(unknown: {unknown or "none"}).'
    )
  chip = accelerators.chip_for_device(devices[0])
  if chip is None:
    raise ValueError(
      f'No chip figures for device kind {devices[0].device_kind!r}; add it '
      'to harness.accelerators.CHIPS with its source.'
    )
  mesh = sharding_lib.create_mesh(devices=devices)
  chips = mesh.shape[sharding_lib.DATA]
  config = ml_collections.ConfigDict(config.to_dict())
  if per_chip_batch is not None:
    config.train.batch_size = int(per_chip_batch) * chips
  if eval_seconds > 0:
    config.data.eval_segment_seconds = float(eval_seconds)
  program = program_lib.Program.build(config, mesh)
  state = program.abstract_state()
  out = {}
  batch = program_lib.abstract_batch(config, mesh)
  out['train'] = _compile(
    'train', program.train_step(state, batch), (state, batch),
    int(config.train.batch_size),
  )  # fmt: skip
  if 'eval' in steps:
    size = -(-int(config.eval.batch_size) // chips) * chips
    batch = program_lib.abstract_batch(
      config, mesh, train=False, batch_size=size
    )
    out['eval'] = _compile(
      'eval', program.eval_step(), (state.params, batch), size
    )
    out['eval'].seconds = program_lib.batch_length(config, train=False) / (
      float(config.data.sample_rate)
    )
  return Report(
    recipe=recipe,
    topology=topology,
    chip=chip,
    chips=len(devices),
    hosts=len({d.process_index for d in devices}),
    slices=len({getattr(d, 'slice_index', 0) for d in devices}),
    compute_dtype=str(config.train.get('compute_dtype', 'float32')),
    num_steps=int(config.train.num_steps),
    steps=out,
  )
