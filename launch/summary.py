r"""Parameter table, MACs and (spiking models) energy of a recipe's model.

  python launch/summary.py --config=configs/spiking_s4_ndns.py
  python launch/summary.py --config=configs/demo.py --seconds=30 --json
  python launch/summary.py --config=configs/demo.py --workdir=runs/demo

MACs (multiply-accumulates) are counted from shapes (nothing runs) for one
clip of `--seconds` (default: the recipe's segment length) and divided by its
length for the per-second figure, by the model's
`s4jax.inference.SpeechModel.count_macs`: Spiking-S4's analytic count
(`s4jax.models.energy`: Dense, and LayerNorm at 5 per element, fvcore
rules), S4M's own (conv and dense layers), otherwise
`s4jax.models.summary.trace_macs` (Dense/Conv, and LayerNorm at 5 per
element). FFTs and elementwise operations are not counted.
Parameter and MAC counts do not depend on the weights.

For spiking models the energy lines split the same work by what the hardware
does, per second of audio: layers fed real values (the |STFT| encoder,
LayerNorm, the decoder) cost full MACs (4.6 pJ each, 45 nm), layers fed
spikes cost one accumulate (AC, 0.9 pJ) per spike and synapse, i.e. their
MACs times the measured firing rate. The N-DNS power proxy counts synaptic
and neuron operations per second. Firing rates, and so the energy and the
proxy, come from running the model on `--energy_seconds` of a built-in
synthetic example and depend on the weights: pass `--workdir` for a trained
run's figures; without it they describe freshly initialised (untrained)
parameters, and the output says so.

`--json` prints one JSON object instead of tables.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

import json
import re
import sys
import textwrap
from typing import Any

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from harness import runtime

_CONFIG = config_flags.DEFINE_config_file(
  'config',
  None,
  'Required. Recipe file, configs/<name>.py[:arg]; change its fields with '
  '--config.a.b=value.',
  lock_config=True,
)
_SECONDS = flags.DEFINE_float(
  'seconds',
  0.0,
  'Clip length in seconds for the per-clip MAC counts (0: the recipe '
  'segment length, else 1 s).',
)
_DEPTH = flags.DEFINE_integer(
  'depth', 1, 'Module-path depth of the parameter table (1: top level).'
)
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON object, no tables.')
_WORKDIR = flags.DEFINE_string(
  'workdir',
  None,
  'Training run whose latest parameters are measured (firing rates and '
  'energy); default: freshly initialised, untrained parameters.',
)
_ENERGY_SECONDS = flags.DEFINE_float(
  'energy_seconds',
  4.0,
  'Seconds of built-in synthetic audio run through the model to measure '
  'firing rates (spiking models).',
)
flags.mark_flags_as_required(['config'])


def _macs(config, task, params, seconds: float) -> dict[str, Any]:
  """`SpeechModel.count_macs` of the run's model (see the module doc)."""
  from s4jax import inference  # pylint: disable=g-import-not-at-top

  model = inference.from_run_config(config, params, task=task)
  return model.count_macs(seconds)


def _energy(config, task, params, seconds: float) -> dict[str, Any] | None:
  """45 nm energy and N-DNS proxy of Spiking-S4 from measured rates.

  Operation counts are per second of audio, from a clip of `seconds` (the
  one the MAC table uses), so `mac_ops + spike_driven_macs` equals the
  table's MACs per second.
  """
  from s4jax import inference  # pylint: disable=g-import-not-at-top

  model = inference.from_run_config(config, params, task=task)
  if not isinstance(model, inference.SpikingS4Model):
    return None  # Energy per spike is a Spiking-S4 measure.
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from data_pipelines import synthetic  # pylint: disable=g-import-not-at-top
  from s4jax.models import energy  # pylint: disable=g-import-not-at-top
  from s4jax.training import tasks  # pylint: disable=g-import-not-at-top

  spec = synthetic.SyntheticSpec(
    split='validation',
    total_seconds=_ENERGY_SECONDS.value,
    clip_seconds=_ENERGY_SECONDS.value,
    sample_rate=task.sample_rate,
    seed=int(config.seed),
  )
  noisy = synthetic.make_example(spec, 0)['noisy'].astype(np.float32)
  # One compiled program (op by op, the forward pass compiles each op).
  apply = jax.jit(lambda p, x: task.apply(p, x, train=False))
  out = apply(params, jnp.asarray(noisy)[None])
  rates = energy.as_float_rates(out['firing_rates'])
  model_config = tasks.model_config_for(config)
  report = energy.report(
    model_config, rates, seconds=seconds, sample_rate=task.sample_rate
  )
  spiking = bool(report['spiking'])
  ops = energy.layer_ops(model_config)
  keep = (
    'energy_per_second_j',
    'ops_per_second',
    'synops_per_step',
    'neuronops_per_step',
    'firing_rates',
  )
  return {
    'spiking': spiking,
    # Per second of audio (the keys predate the unit-explicit ones below).
    'mac_ops': report['mac_ops'] / seconds,
    'ac_ops': report['ac_ops'] / seconds,
    **{k: report[k] for k in keep},
    'spike_driven_macs': (report['macs_per_clip'] - report['mac_ops'])
    / seconds,
    'mac_layers': [o.name for o in ops if not spiking or o.rate_key is None],
    'ac_layers': [o.name for o in ops if spiking and o.rate_key is not None],
    'energy_seconds': _ENERGY_SECONDS.value,
    'units': {
      'mac_ops': 'MACs per second of audio, layers fed real values (4.6 pJ)',
      'ac_ops': 'accumulates per second of audio, layers fed spikes '
      '(0.9 pJ): their MACs times the firing rate',
      'spike_driven_macs': 'MACs per second of audio of the layers fed '
      'spikes, before the firing rate',
      'energy_per_second_j': 'joules per second of audio (watts)',
      'ops_per_second': 'N-DNS proxy (SynOPS + 10 NeuronOPS) per second',
    },
  }


def _params(config, task) -> tuple[Any, int | None]:
  """`(params, checkpoint step)`: `--workdir`'s, else initial (step None)."""
  import jax  # pylint: disable=g-import-not-at-top

  from harness import inference
  from s4jax.training import tasks  # pylint: disable=g-import-not-at-top

  if _WORKDIR.value:
    run = inference.load_model(workdir=_WORKDIR.value)
    return run.params, int(run.step)
  samples = tasks.init_samples(config)
  params = jax.jit(lambda: task.init(jax.random.key(config.seed), samples))()
  return params, None


def build_summary(config) -> dict[str, Any]:
  """Everything `summary.py` prints, as one dict."""
  from s4jax.models import summary  # pylint: disable=g-import-not-at-top
  from s4jax.training import tasks  # pylint: disable=g-import-not-at-top

  task = tasks.create_task(config)
  params, step = _params(config, task)
  seconds = _SECONDS.value or config.data.segment_seconds or 1.0
  macs = _macs(config, task, params, seconds)
  out = {
    'model': config.model.name,
    'weights': 'trained' if step is not None else 'initial',
    'workdir': _WORKDIR.value or None,
    'step': step,
    'params': summary.count_params(params),
    'params_per_module': summary.params_by_module(params, _DEPTH.value),
    'sample_rate': task.sample_rate,
    'seconds': seconds,
    'macs_per_clip': macs['total'],
    'macs_per_second': macs['total'] / seconds,
    'macs_per_module': macs['per_module'],
    'macs_source': macs['source'],
    'macs_counted': macs['counted'],
  }
  energy = _energy(config, task, params, seconds)
  if energy is not None:
    out['energy'] = energy
  return out


def _table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
  width = max(len(r[0]) for r in [*rows, header])
  lines = [f'{header[0]:<{width}}  {header[1]:>15}', '-' * (width + 17)]
  lines += [f'{a:<{width}}  {b:>15}' for a, b in rows]
  return '\n'.join(lines)


def _mega(x: float) -> str:
  return f'{x / 1e6:.3g} M'


def _layers(names: list[str]) -> str:
  """'encoder, layer*/norm, decoder' for per-layer names, in order."""
  return ', '.join(
    dict.fromkeys(re.sub(r'^layer\d+', 'layer*', n) for n in names)
  )


def _say(text: str, indent: str = '') -> None:
  """Prints `text` wrapped at 79 columns (continuations indented further)."""
  hanging = indent + '    ' if indent else ''
  print(
    textwrap.fill(text, 79, initial_indent=indent, subsequent_indent=hanging)
  )


def print_tables(s: dict[str, Any]) -> None:
  """Prints the parameter and MAC tables and the energy lines."""
  total = s['params']
  rows = [
    (k, f'{v:,} ({100 * v / max(total, 1):.1f}%)')
    for k, v in s['params_per_module'].items()
  ]
  print(_table(rows + [('total', f'{total:,}')], ('module', 'parameters')))
  print()
  rows = [(k, f'{v:,}') for k, v in s['macs_per_module'].items()]
  clip = f'{s["seconds"]:g} s'
  print(_table(rows, ('module', f'MACs per {clip} clip')))
  print()
  _say(
    f'MACs (multiply-accumulates) counted from shapes: {s["macs_counted"]}; '
    f'FFTs and elementwise operations not counted [{s["macs_source"]}].'
  )
  print(
    f'  per clip of {clip}:  {s["macs_per_clip"]:,} '
    f'({s["macs_per_clip"] / 1e9:.3f} G)\n'
    f'  per second of audio: {_mega(s["macs_per_second"])} '
    f'({s["macs_per_second"] / 1e9:.4f} G)'
  )
  if 'energy' not in s:
    return
  e = s['energy']
  if s['weights'] == 'initial':
    weights = 'freshly initialised, UNTRAINED parameters (no --workdir)'
  else:
    weights = f'the trained parameters of {s["workdir"]} (step {s["step"]})'
  print()
  _say(
    'Energy (45 nm) and power per second of audio, from firing rates '
    f'measured on {e["energy_seconds"]:g} s of built-in synthetic audio with '
    f'{weights}:'
  )
  if e['spiking']:
    _say(
      f'{_mega(e["mac_ops"])} MACs x 4.6 pJ (layers fed real values: '
      f'{_layers(e["mac_layers"])})',
      '  ',
    )
    _say(
      f'+ {_mega(e["ac_ops"])} ACs x 0.9 pJ (layers fed spikes: '
      f'{_layers(e["ac_layers"])}; their {_mega(e["spike_driven_macs"])} '
      'MACs x the firing rate)',
      '  ',
    )
  else:
    _say(
      f'{_mega(e["mac_ops"])} MACs x 4.6 pJ (non-spiking: every layer)', '  '
    )
  uj = e['energy_per_second_j'] * 1e6
  print(f'  = {uj:.2f} uJ per second of audio ({uj:.2f} uW in real time)')
  _say(
    f'N-DNS power proxy: {e["ops_per_second"] / 1e6:.2f} M ops/s '
    '((SynOPS + 10 NeuronOPS) per second)'
  )
  rates = ', '.join(f'{k} {v:.3f}' for k, v in e['firing_rates'].items())
  _say(f'Firing rates: {rates}')
  if s['weights'] == 'initial':
    print()
    _say(
      'Note: the firing rates, energy and power above describe an UNTRAINED '
      'model and change with training; pass --workdir=<run> for a trained '
      'one. Parameter and MAC counts do not depend on the weights.'
    )


def main(argv):
  """Program entry point (after flag parsing)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from harness import errors  # pylint: disable=g-import-not-at-top

  runtime.quiet_library_logs()
  try:
    if _SECONDS.value < 0 or _ENERGY_SECONDS.value <= 0:
      raise ValueError('--seconds must be >= 0 and --energy_seconds > 0.')
    result = build_summary(runtime.loaded_config(_CONFIG))
  except errors.USER_ERRORS as e:
    logging.debug('Stopped by', exc_info=True)
    sys.exit(f'error: {e}')
  if _JSON.value:
    print(json.dumps(result))
  else:
    print_tables(result)


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
