r"""Parameter table, MACs and (spiking models) energy of a recipe's model.

  python launch/summary.py --config=configs/spiking_s4_ndns.py
  python launch/summary.py --config=configs/demo.py --seconds=30 --json
  python launch/summary.py --config=configs/demo.py --workdir=runs/demo

MACs are counted from shapes (nothing runs) for one clip of `--seconds`
(default: the recipe's segment length) and per second of audio; a model
module's own `count_macs` is used when it has one (S4M), otherwise
`s4jax.training.summary.trace_macs` (Dense/Conv/LayerNorm, fvcore rules).
For spiking models the 45 nm energy and the N-DNS power proxy come from the
firing rates measured on `--energy_seconds` of a built-in synthetic example
(with the trained parameters of `--workdir`, else the initial ones).
`--json` prints one JSON object instead of tables.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from s4jax.training import runtime

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Recipe file (configs/<name>.py[:arg]).', lock_config=True
)
_SECONDS = flags.DEFINE_float(
  'seconds', 0.0, 'Clip length for MACs (0: the recipe segment, else 1 s).'
)
_DEPTH = flags.DEFINE_integer('depth', 1, 'Module depth of the table.')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON object.')
_WORKDIR = flags.DEFINE_string(
  'workdir', None, 'Optional run whose parameters set the firing rates.'
)
_ENERGY_SECONDS = flags.DEFINE_float(
  'energy_seconds', 4.0, 'Audio used to measure firing rates (s).'
)
flags.mark_flags_as_required(['config'])


def _macs(task, model_config, params, seconds: float) -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from s4jax.training import summary  # pylint: disable=g-import-not-at-top

  samples = int(round(seconds * task.sample_rate))
  own = getattr(task.model_module, 'count_macs', None)
  if own is not None:
    counts = own(model_config, seconds=seconds)
    return {
      'total': int(counts['total']),
      'per_module': {k: int(v) for k, v in counts.items() if k != 'total'},
      'source': f'{task.model_module.__name__}.count_macs',
    }
  x = jax.ShapeDtypeStruct((1, samples), jnp.float32)
  counts = summary.trace_macs(task.model, {'params': params}, x, train=False)
  total = counts.pop('total')
  return {
    'total': total,
    'per_module': counts,
    'source': 's4jax.training.summary.trace_macs',
  }


def _energy(config, task, params) -> dict[str, Any] | None:
  """45 nm energy and N-DNS proxy of Spiking-S4 from measured rates."""
  if config.model.name != 'spiking_s4':
    return None
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from data_pipelines import synthetic  # pylint: disable=g-import-not-at-top
  from s4jax.models import energy  # pylint: disable=g-import-not-at-top
  from s4jax.training import tasks  # pylint: disable=g-import-not-at-top

  seconds = _ENERGY_SECONDS.value
  spec = synthetic.SyntheticSpec(
    split='validation',
    total_seconds=seconds,
    clip_seconds=seconds,
    sample_rate=task.sample_rate,
    seed=int(config.seed),
  )
  noisy = synthetic.make_example(spec, 0)['noisy'].astype(np.float32)
  out = task.apply(params, jnp.asarray(noisy)[None], train=False)
  rates = energy.as_float_rates(out['firing_rates'])
  model_config = tasks.model_config_for(config)
  report = energy.report(
    model_config, rates, seconds=1.0, sample_rate=task.sample_rate
  )
  keep = (
    'spiking',
    'mac_ops',
    'ac_ops',
    'energy_per_second_j',
    'ops_per_second',
    'synops_per_step',
    'neuronops_per_step',
    'firing_rates',
  )
  return {k: report[k] for k in keep}


def _params(config, task):
  import jax  # pylint: disable=g-import-not-at-top

  from s4jax.training import inference, tasks  # pylint: disable=g-import-not-at-top

  if _WORKDIR.value:
    return inference.load(_WORKDIR.value).params
  samples = tasks.init_samples(config)
  return jax.jit(lambda: task.init(jax.random.key(config.seed), samples))()


def build_summary(config) -> dict[str, Any]:
  """Everything `summary.py` prints, as one dict."""
  from s4jax.training import summary, tasks  # pylint: disable=g-import-not-at-top

  task = tasks.create_task(config)
  params = _params(config, task)
  seconds = _SECONDS.value or config.data.segment_seconds or 1.0
  macs = _macs(task, tasks.model_config_for(config), params, seconds)
  out = {
    'model': config.model.name,
    'params': summary.count_params(params),
    'params_per_module': summary.params_by_module(params, _DEPTH.value),
    'sample_rate': task.sample_rate,
    'seconds': seconds,
    'macs_per_clip': macs['total'],
    'macs_per_second': macs['total'] / seconds,
    'macs_per_module': macs['per_module'],
    'macs_source': macs['source'],
  }
  energy = _energy(config, task, params)
  if energy is not None:
    out['energy'] = energy
  return out


def _table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
  width = max(len(r[0]) for r in [*rows, header])
  lines = [f'{header[0]:<{width}}  {header[1]:>15}', '-' * (width + 17)]
  lines += [f'{a:<{width}}  {b:>15}' for a, b in rows]
  return '\n'.join(lines)


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
  print(_table(rows, ('module', f'MACs / {s["seconds"]:g} s')))
  print(
    f'\nMACs per clip of {s["seconds"]:g} s: {s["macs_per_clip"]:,} '
    f'({s["macs_per_clip"] / 1e9:.3f} G); per second of audio: '
    f'{s["macs_per_second"] / 1e9:.4f} G  [{s["macs_source"]}]'
  )
  if 'energy' in s:
    e = s['energy']
    print(
      f'\nEnergy (45 nm, per second of audio): '
      f'{e["energy_per_second_j"] * 1e6:.2f} uJ '
      f'({e["mac_ops"] / 1e6:.1f} M MACs + {e["ac_ops"] / 1e6:.1f} M ACs);'
      f' N-DNS power proxy {e["ops_per_second"] / 1e6:.2f} M ops/s'
    )
    rates = ', '.join(f'{k} {v:.3f}' for k, v in e['firing_rates'].items())
    print(f'Firing rates: {rates}')


def main(argv):
  """Program entry point (after flag parsing)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from s4jax.training import errors  # pylint: disable=g-import-not-at-top

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
