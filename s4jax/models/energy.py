"""Compute and energy accounting for Spiking-S4 from measured firing rates.

Three figures, each per layer and in total:

* **MACs** (multiply-accumulates) of the dense layers and LayerNorm, the
  convention behind the paper's "0.53 M parameters, 1.50 G FLOPs": fvcore
  counts one MAC as one flop, a Linear/1x1-Conv layer as `in * out` per frame
  (bias not counted), LayerNorm as 5 per element, and skips FFTs and
  elementwise ops. For the linear-emission model this gives 398,848 MACs per
  STFT frame and 1.496 G per 30 s clip (3,751 frames), ~49.9 M per second of
  audio. Options add the S4D kernel-generation einsum (`H N/2` per frame per
  layer, fvcore's count of the authors' `'hn,hnl->hl'`) or the recurrent S4D
  step (`include_ssm`; the streaming path's work: input `2 N/2`, transition
  `4 N/2`, readout `2 N/2` and `D` skip `1` real MACs per channel).
* **45 nm energy** (Horowitz, ISSCC 2014; as in Spikformer and the
  Spike-driven Transformer): a layer whose input is spikes costs
  `E_AC = 0.9 pJ` per synaptic accumulate, `rate * MACs` of them; every other
  operation costs `E_MAC = 4.6 pJ`.
* **N-DNS power proxy** (Timcheck et al. 2023, `IntelNeuromorphicDNSChallenge`
  README): `(SynOPS + 10 NeuronOPS) / dt` with `dt` the hop (8 ms), SynOPS
  per step the sum over synaptic layers of the presynaptic event rate times
  the layer's synapses (real-valued inputs have event rate 1), NeuronOPS per
  step the number of neurons of non-output layers.

Firing rates come from the model's `'firing_rates'` output (keys `encoder`,
`layer{i}_ssm`, `layer{i}_out`); the non-spiking baseline
(`neuron.spiking=False`) reports the non-zero fraction of its GELU outputs
under the same keys, and all its operations are priced as MACs.

`trace_macs` counts Dense and LayerNorm MACs of any Linen model by
intercepting the calls while tracing its shapes; the analytic and traced
counts are tested against each other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from s4jax.audio import stft as stft_lib
from s4jax.models import summary

__all__ = [
  'E_AC_PJ',
  'E_MAC_PJ',
  'LAYERNORM_OPS_PER_ELEMENT',
  'LayerOps',
  'NEURON_OP_WEIGHT',
  'as_float_rates',
  'count_macs',
  'energy_45nm',
  'frames',
  'layer_ops',
  'ndns_power_proxy',
  'neurons_per_step',
  'report',
  'trace_macs',
]

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
LAYERNORM_OPS_PER_ELEMENT = 5
NEURON_OP_WEIGHT = 10


@dataclasses.dataclass(frozen=True)
class LayerOps:
  """Per-frame work of one operation of the model.

  Attributes:
    name: e.g. 'encoder', 'layer0/emission'.
    macs: MACs per STFT frame.
    rate_key: firing-rate key of its presynaptic activation, or None for a
      real-valued input (magnitude, LayerNorm output, SSM state).
    synaptic: counted in SynOPS (False for LayerNorm and kernel generation).
  """

  name: str
  macs: int
  rate_key: str | None = None
  synaptic: bool = True


def _model(model_or_config):
  from s4jax.models import spiking_s4  # pylint: disable=g-import-not-at-top

  if isinstance(model_or_config, spiking_s4.SpikingS4):
    return model_or_config
  return spiking_s4.from_config(model_or_config)


def layer_ops(
  model_or_config, include_ssm: bool = False, include_kernel: bool = False
) -> list[LayerOps]:
  """The operations of a Spiking-S4 model per STFT frame.

  Args:
    model_or_config: a `SpikingS4` or its `config.model`.
    include_ssm: add the recurrent S4D step.
    include_kernel: add the S4D kernel-generation einsum.

  Returns:
    A list of `LayerOps`.
  """
  m = _model(model_or_config)
  block = m.block_settings
  h, f, n2 = m.d_model, m.n_freq, block['d_state'] // 2
  out_width = 2 * h if block['emission'] == 'glu' else h
  ops = [LayerOps('encoder', f * h)]
  for i in range(m.n_layers):
    p = f'layer{i}'
    ssm_in = 'encoder' if i == 0 else None
    if include_kernel:
      ops.append(LayerOps(f'{p}/kernel', h * n2, synaptic=False))
    if include_ssm:
      ops.append(LayerOps(f'{p}/ssm_input', h * (2 * n2 + 1), ssm_in))
      ops.append(LayerOps(f'{p}/ssm_state', h * 6 * n2))
    ops.append(LayerOps(f'{p}/emission', h * out_width, f'{p}_ssm'))
    ops.append(
      LayerOps(f'{p}/norm', LAYERNORM_OPS_PER_ELEMENT * h, synaptic=False)
    )
  ops.append(LayerOps('decoder', h * f))
  return ops


def neurons_per_step(model_or_config, include_ssm: bool = False) -> int:
  """Neurons of non-output layers (PLIF or GELU units, SSM states)."""
  m = _model(model_or_config)
  count = m.d_model * (1 + 2 * m.n_layers)
  if include_ssm:
    count += m.n_layers * m.d_model * (m.block_settings['d_state'] // 2)
  return count


def frames(num_samples: int, hop_length: int = 128) -> int:
  """STFT frames of a centred transform (3,751 for 480,000 samples)."""
  return stft_lib.num_frames(num_samples, hop_length)


def count_macs(
  model_or_config,
  seconds: float = 30.0,
  sample_rate: int = 16000,
  include_ssm: bool = False,
  include_kernel: bool = False,
) -> dict[str, Any]:
  """MACs of one clip of `seconds`, per layer, in total and per second.

  Args:
    model_or_config: a `SpikingS4` or its `config.model`.
    seconds: clip duration (N-DNS clips are 30 s).
    sample_rate: Hz.
    include_ssm: add the recurrent S4D step (see `layer_ops`).
    include_kernel: add the kernel-generation einsum (see `layer_ops`).

  Returns:
    `{'frames', 'per_frame', 'per_clip', 'per_second', 'per_layer'}` where
    `per_layer` maps names to MACs per clip.
  """
  m = _model(model_or_config)
  n = frames(int(round(seconds * sample_rate)), m.hop_length)
  ops = layer_ops(m, include_ssm, include_kernel)
  per_frame = sum(o.macs for o in ops)
  return {
    'frames': n,
    'per_frame': per_frame,
    'per_clip': per_frame * n,
    'per_second': per_frame * n / seconds,
    'per_layer': {o.name: o.macs * n for o in ops},
  }


def _rate(firing_rates: dict, key: str | None) -> float:
  if key is None:
    return 1.0
  if key not in firing_rates:
    raise KeyError(
      f'No firing rate {key!r}; the model reported {sorted(firing_rates)}.'
    )
  return float(firing_rates[key])


def energy_45nm(
  model_or_config,
  firing_rates: dict,
  seconds: float = 30.0,
  sample_rate: int = 16000,
  include_ssm: bool = False,
) -> dict[str, Any]:
  """45 nm energy estimate of one clip from measured firing rates.

  Args:
    model_or_config: a `SpikingS4` or its `config.model`.
    firing_rates: the model's `'firing_rates'` output.
    seconds: clip duration.
    sample_rate: Hz.
    include_ssm: price the recurrent S4D step too.

  Returns:
    `{'mac_ops', 'ac_ops', 'energy_j', 'energy_per_second_j', 'per_layer_j'}`
    (operations per clip).
  """
  m = _model(model_or_config)
  n = frames(int(round(seconds * sample_rate)), m.hop_length)
  mac_ops = ac_ops = 0.0
  per_layer = {}
  for o in layer_ops(m, include_ssm):
    if m.is_spiking and o.rate_key is not None:
      ops = _rate(firing_rates, o.rate_key) * o.macs * n
      ac_ops += ops
      per_layer[o.name] = ops * E_AC_PJ * 1e-12
    else:
      mac_ops += o.macs * n
      per_layer[o.name] = o.macs * n * E_MAC_PJ * 1e-12
  energy = sum(per_layer.values())
  return {
    'mac_ops': mac_ops,
    'ac_ops': ac_ops,
    'energy_j': energy,
    'energy_per_second_j': energy / seconds,
    'per_layer_j': per_layer,
  }


def ndns_power_proxy(
  model_or_config,
  firing_rates: dict,
  sample_rate: int = 16000,
  include_ssm: bool = False,
) -> dict[str, float]:
  """Intel N-DNS power proxy `(SynOPS + 10 NeuronOPS) / dt`.

  Args:
    model_or_config: a `SpikingS4` or its `config.model`.
    firing_rates: the model's `'firing_rates'` output (event rates).
    sample_rate: Hz; `dt = hop / sample_rate`.
    include_ssm: count the S4D step's synapses and state neurons.

  Returns:
    `{'synops_per_step', 'neuronops_per_step', 'ops_per_second', 'dt_s'}`.
  """
  m = _model(model_or_config)
  synops = sum(
    _rate(firing_rates, o.rate_key) * o.macs
    for o in layer_ops(m, include_ssm)
    if o.synaptic
  )
  neuronops = neurons_per_step(m, include_ssm)
  dt = m.hop_length / sample_rate
  return {
    'synops_per_step': synops,
    'neuronops_per_step': float(neuronops),
    'ops_per_second': (synops + NEURON_OP_WEIGHT * neuronops) / dt,
    'dt_s': dt,
  }


def report(
  model_or_config,
  firing_rates: dict,
  seconds: float = 30.0,
  sample_rate: int = 16000,
  include_ssm: bool = False,
) -> dict[str, Any]:
  """MACs, 45 nm energy and the N-DNS proxy of one model, in one dict."""
  m = _model(model_or_config)
  macs = count_macs(m, seconds, sample_rate, include_ssm)
  return {
    'spiking': m.is_spiking,
    'macs_per_clip': macs['per_clip'],
    'macs_per_second': macs['per_second'],
    **energy_45nm(m, firing_rates, seconds, sample_rate, include_ssm),
    **ndns_power_proxy(m, firing_rates, sample_rate, include_ssm),
    'firing_rates': {k: float(v) for k, v in firing_rates.items()},
  }


def trace_macs(
  module: nn.Module, variables: Any, *args, **kwargs
) -> dict[str, int]:
  """Dense and LayerNorm MACs of `module.apply(variables, *args)`, traced.

  The shape-traced count (`summary.trace_macs`: Dense `prod(batch dims) *
  in * out`, LayerNorm 5 per element, fvcore) that checks `count_macs`'
  analytic one.

  Returns:
    `{'dense': int, 'norm': int, 'total': int}`.
  """
  counts = {'dense': 0, 'norm': 0}
  counts.update(
    summary.trace_macs(module, variables, *args, bucket=_mac_bucket, **kwargs)
  )
  return counts


def _mac_bucket(layer: nn.Module, path: str) -> str | None:
  del path
  if isinstance(layer, nn.Dense):
    return 'dense'
  return 'norm' if isinstance(layer, nn.LayerNorm) else None


def as_float_rates(firing_rates: dict) -> dict[str, float]:
  """Converts a firing-rate dict of arrays to Python floats."""
  return {k: float(jnp.asarray(v)) for k, v in firing_rates.items()}
