r"""Quality cost of SEOFP weights: Spiking-S4 trained in float vs 5 / 8 bits.

Trains `configs/spiking_s4_ndns_seofp.py` (the N-DNS Spiking-S4 model:
width 256, 4 layers, S4D state 64, linear emission) three times on the
built-in synthetic data, one run after the other, with the same seed, data
order, steps and optimiser:

  float   `quant.enabled=False` (plain float32 training),
  seofp5  sign + 5-bit exponent Dense kernels, truncation, STE,
  seofp8  sign + 8-bit exponent.

Each run is then evaluated on the whole built-in validation split (20 clips
of 6 s, SNR uniform in [-5, 20] dB) with SI-SNR, SI-SNRi and wide-band PESQ:

  as trained      the recipe's own evaluation: the float run with its float
                  weights, the SEOFP runs with their quantised weights
                  (`rules.quantize_params` of the float32 masters);
  int-add         the SEOFP runs through `intadd.int_add_apply` (every
                  Dense layer's products as integer additions), on the same
                  quantised weights, plus the largest output difference to
                  the float path relative to the output's peak;
  PTQ k           the float run's weights quantised after training (no
                  quantisation-aware training), for comparison.

  python benchmarks/seofp_quality.py --workdir=/tmp/seofp_quality
  python benchmarks/seofp_quality.py --smoke --workdir=/tmp/seofp_smoke

A run whose workdir already holds its final checkpoint is not retrained
(its recorded wall time is reused); delete the workdir to start over.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from configs import spiking_s4_ndns_seofp
from data_pipelines import input_pipeline
from harness import checkpoint, evaluation, trainer
from s4jax.quant import intadd, rules, seofp
from s4jax.training import program, sharding, steps, tasks

METRICS = ('si_snr', 'si_snri', 'pesq_wb')
VARIANTS = {'float': None, 'seofp5': 5, 'seofp8': 8}


def experiment_config(
  bits: int | None, args: argparse.Namespace
) -> ml_collections.ConfigDict:
  """The recipe with the experiment's data, batch and steps.

  Args:
    bits: exponent bits, or None for float training.
    args: command-line options.

  Returns:
    The config; only `config.quant` differs between variants.
  """
  config = spiking_s4_ndns_seofp.get_config(
    f'bits={bits or 5},smoke={args.smoke}'
  )
  config.quant.enabled = bits is not None
  config.data.name = 'synthetic'
  if not args.smoke:  # The built-in set's sizes (the smoke recipe's are tiny).
    config.data.synthetic_train_seconds = 1200.0
    config.data.synthetic_eval_seconds = 120.0
  config.data.segment_seconds = args.segment
  config.train.batch_size = args.batch
  config.train.num_steps = args.steps
  config.train.log_every = max(args.steps // 20, 1)
  config.train.eval_every = max(args.steps // 2, 1)
  config.train.checkpoint_every = args.steps
  config.train.keep_checkpoints = 1
  config.eval.batch_size = 4
  config.eval.num_examples = 2 if args.smoke else 0
  config.eval.metrics = ('si_snr', 'si_snri')
  config.eval.best_metric = 'si_snr'
  config.eval.num_workers = 0
  config.eval.num_audio_examples = 0
  return config


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (unless done before); returns wall/CPU seconds and the history."""
  record = os.path.join(workdir, 'timing.json')
  if os.path.exists(record):
    with open(record) as f:
      done = json.load(f)
    if done['steps'] == int(config.train.num_steps):
      logging.info('Reusing the finished run in %s.', workdir)
      return done
  wall, cpu = time.perf_counter(), time.process_time()
  result = trainer.train_and_evaluate(config, workdir, input_pipeline)
  done = {
    'steps': int(config.train.num_steps),
    'wall_s': time.perf_counter() - wall,
    'cpu_s': time.process_time() - cpu,
    'history': result.history,
    'evals': result.evals,
  }
  with open(record, 'w') as f:
    json.dump(done, f, indent=1, default=float)
  return done


def load_params(config: ml_collections.ConfigDict, workdir: str) -> Any:
  """The float32 master parameters of the run's latest checkpoint."""
  run = program.Program.build(config, sharding.create_mesh())
  ckpt = checkpoint.Checkpointer(
    checkpoint.checkpoint_dir(os.path.abspath(workdir)), read_only=True
  )
  try:
    if ckpt.latest_step() != int(config.train.num_steps):
      raise RuntimeError(f'{workdir} has no final checkpoint; train first.')
    return checkpoint.restore_or_init(run, ckpt).params
  finally:
    ckpt.close()


@dataclasses.dataclass(frozen=True)
class IntAddModel:
  """Stands in for a Linen model in a `Task`: `apply` on the int-add path."""

  model: Any
  quant_rules: rules.QuantRules
  log: intadd.InterceptLog

  def apply(self, *args, **kwargs):
    return intadd.int_add_apply(self.model.apply, self.quant_rules, self.log)(
      *args, **kwargs
    )


def quantised_task(
  config: ml_collections.ConfigDict, bits: int, int_add: bool
) -> tuple[tasks.Task, rules.QuantRules, intadd.InterceptLog]:
  """A task that runs on pre-quantised weights (float or int-add path)."""
  quant = ml_collections.ConfigDict(config.quant.to_dict())
  quant.enabled, quant.exponent_bits = True, bits
  quant_rules = rules.from_config(quant)
  task = dataclasses.replace(
    tasks.create_task(config), param_transform=lambda p: p
  )
  log = intadd.InterceptLog()
  if int_add:
    task = dataclasses.replace(
      task, model=IntAddModel(task.model, quant_rules, log)
    )
  return task, quant_rules, log


def score(
  config: ml_collections.ConfigDict, task: tasks.Task, params: Any
) -> tuple[dict[str, float], Any]:
  """Validation means of `METRICS`, and the jitted eval step used.

  The means come with `per_example`: each metric's per-clip values (lists),
  for paired comparisons between runs.
  """
  eval_step = jax.jit(steps.make_eval_step(task))
  res = evaluation.evaluate(
    task,
    params,
    input_pipeline.create_eval_iterator(config),
    eval_step=eval_step,
    mesh=sharding.create_mesh(),
    metric_names=METRICS,
  )
  per = {k: np.asarray(res.per_example[k]).tolist() for k in METRICS}
  return {**{k: res.metrics[k] for k in METRICS}, 'per_example': per}, eval_step


def max_relative_difference(config, step_a, step_b, params) -> float:
  """Max |a - b| / max |a| of two eval steps' estimates on validation."""
  mesh = sharding.create_mesh()
  diff = peak = 0.0
  for batch in input_pipeline.create_eval_iterator(config):
    batch = sharding.to_global(batch, mesh)
    a = np.asarray(step_a(params, batch)['estimate'])
    b = np.asarray(step_b(params, batch)['estimate'])
    diff = max(diff, float(np.max(np.abs(a - b))))
    peak = max(peak, float(np.max(np.abs(a))))
  return diff / peak


def noisy_scores(config: ml_collections.ConfigDict) -> dict[str, float]:
  """`METRICS` of the unprocessed noisy input (the estimate = noisy)."""
  rows = []
  for batch in input_pipeline.create_eval_iterator(config):
    mask = batch['mask'].astype(bool)
    noisy, clean = batch['noisy'][mask], batch['clean'][mask]
    rows.append(
      evaluation.library_metrics(
        METRICS, noisy, clean, noisy, int(config.data.sample_rate)
      )
    )
  return {
    k: float(np.mean(np.concatenate([r[k] for r in rows]))) for k in METRICS
  }


def exponent_span(params: Any, quant_rules: rules.QuantRules) -> dict:
  """How many exponents the quantised kernels need, and what k bits flush.

  Returns:
    `span`: the largest `top - lowest` rounded exponent over the selected
    tensors (non-zero weights); `flushed`: weights below the k-bit window.
  """
  span, flushed = 0, 0
  chosen = rules.selection(params, quant_rules)
  for c, w in zip(
    jax.tree.leaves(chosen), jax.tree.leaves(params), strict=True
  ):
    if not c:
      continue
    _, e = seofp.rounded_exponent(w, quant_rules.quant.rounding)
    e = np.asarray(e)[np.asarray(e) > 0]
    if e.size:
      span = max(span, int(e.max() - e.min()))
      flushed += int(np.sum(e < e.max() - (quant_rules.quant.window - 1)))
  return dict(span=span, flushed=flushed)


def _quantised_row(name, label, config, params, bits):
  """Score `params` quantised to `bits` on the float path.

  Returns:
    The table row, the quantised parameters and the jitted eval step.
  """
  task, quant_rules, _ = quantised_task(config, bits, int_add=False)
  q = rules.quantize_params(params, quant_rules)
  metrics, step = score(config, task, q)
  row = dict(
    run=name, weights=label, **exponent_span(params, quant_rules), **metrics
  )
  return row, q, step


def evaluate_variant(name, bits, config, workdir) -> list[dict[str, Any]]:
  """Table rows of one trained variant (see the module docstring)."""
  params = load_params(config, workdir)
  if bits is None:
    metrics, _ = score(config, tasks.create_task(config), params)
    rows = [dict(run=name, weights='float32', **metrics)]
    for k in (5, 8):
      label = f'PTQ sign+{k}-bit exp'
      rows.append(_quantised_row(name, label, config, params, k)[0])
    return rows
  label = f'sign+{bits}-bit exp'
  row, q, float_step = _quantised_row(name, label, config, params, bits)
  int_task, _, log = quantised_task(config, bits, int_add=True)
  metrics, int_step = score(config, int_task, q)
  rel = max_relative_difference(config, float_step, int_step, q)
  int_row = dict(
    run=name,
    weights=f'{label}, int-add',
    max_rel_diff=rel,
    rerouted=sorted(set(log.rerouted)),
    **metrics,
  )
  return [row, int_row]


def _paired(row, base, metric: str, fmt: str) -> str:
  """Mean per-clip difference to `base` +- its standard error."""
  d = np.asarray(row['per_example'][metric]) - base['per_example'][metric]
  se = np.std(d, ddof=1) / np.sqrt(d.size) if d.size > 1 else float('nan')
  return f'{np.mean(d):+{fmt}} +- {se:{fmt}}'


def markdown(rows, runs, noisy) -> str:
  """Result tables as Markdown."""
  out = [
    '| run | weights evaluated | SI-SNR dB | SI-SNRi dB | PESQ-WB | '
    'paired d SI-SNR dB | paired d PESQ |',
    '|---|---|---:|---:|---:|---:|---:|',
    f'| - | noisy input | {noisy["si_snr"]:.2f} | 0.00 | '
    f'{noisy["pesq_wb"]:.3f} | | |',
  ]
  base = next((r for r in rows if r['weights'] == 'float32'), None)
  for r in rows:
    d_snr = d_pesq = ''
    if base is not None and r is not base:
      d_snr = _paired(r, base, 'si_snr', '.2f')
      d_pesq = _paired(r, base, 'pesq_wb', '.3f')
    out.append(
      f'| {r["run"]} | {r["weights"]} | {r["si_snr"]:.2f} | '
      f'{r["si_snri"]:.2f} | {r["pesq_wb"]:.3f} | {d_snr} | {d_pesq} |'
    )
  out += [
    '',
    '| run | steps | train wall s | train CPU s | final train loss | '
    'in-loop SI-SNRi dB (step) |',
    '|---|---:|---:|---:|---:|---|',
  ]
  for name, run in runs.items():
    loss = run['history'][-1]['loss'] if run['history'] else float('nan')
    curve = ', '.join(f'{e["si_snri"]:.2f} ({e["step"]})' for e in run['evals'])
    out.append(
      f'| {name} | {run["steps"]} | {run["wall_s"]:.0f} | '
      f'{run["cpu_s"]:.0f} | {loss:.3f} | {curve} |'
    )
  for r in rows:
    if 'span' in r:
      out.append(
        f'\n{r["run"]} ({r["weights"]}): the quantised kernels span '
        f'{r["span"]} exponents (top to smallest non-zero weight); '
        f'{r["flushed"]} weights fall below the window and are zero.'
      )
    if 'max_rel_diff' in r:
      out.append(
        f'\n{r["run"]}: int-add vs float path on the same quantised weights: '
        f'max |diff| / max |output| = {r["max_rel_diff"]:.2e}; rerouted '
        f'{len(r["rerouted"])} Dense layers: {", ".join(r["rerouted"])}'
      )
  return '\n'.join(out)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', default='/tmp/seofp_quality')
  parser.add_argument('--steps', type=int, default=1000)
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--segment', type=float, default=4.0, help='crop, s')
  parser.add_argument(
    '--variants', default=','.join(VARIANTS), help='comma-separated'
  )
  parser.add_argument(
    '--smoke', action='store_true', help='tiny model, few steps'
  )
  args = parser.parse_args()
  if args.smoke:
    args.steps, args.batch, args.segment = 4, 2, 0.5
  logging.set_verbosity(logging.WARNING)
  names = [v for v in args.variants.split(',') if v]
  unknown = sorted(set(names) - set(VARIANTS))
  if unknown:
    parser.error(f'unknown variants {unknown}; known: {sorted(VARIANTS)}')
  runs, rows = {}, []
  for name in names:  # One after the other: the machine is shared.
    config = experiment_config(VARIANTS[name], args)
    workdir = os.path.join(args.workdir, name)
    runs[name] = train(config, workdir)
    print(f'{name}: trained in {runs[name]["wall_s"]:.0f} s', flush=True)
  for name in names:
    config = experiment_config(VARIANTS[name], args)
    workdir = os.path.join(args.workdir, name)
    rows += evaluate_variant(name, VARIANTS[name], config, workdir)
  noisy = noisy_scores(experiment_config(None, args))
  table = markdown(rows, runs, noisy)
  print(table)
  with open(os.path.join(args.workdir, 'results.json'), 'w') as f:
    json.dump(dict(rows=rows, runs=runs, noisy=noisy), f, indent=1)
  with open(os.path.join(args.workdir, 'results.md'), 'w') as f:
    f.write(table + '\n')


if __name__ == '__main__':
  main()
