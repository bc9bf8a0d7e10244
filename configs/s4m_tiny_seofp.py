r"""S4M-tiny two-speaker separation trained with SEOFP weights.

`configs/s4m_tiny.py` (TDANet's recipe, built-in synthetic two-speaker data
by default) with SEOFP-NET's sign-exponent-only weights switched on
(`configs/spiking_s4_ndns_seofp.py` explains the format and the choices):

* Quantised: every Dense and Conv kernel, i.e. the encoder Conv1d (window K,
  hop K/4), the bottleneck, mask, projection and residual 1x1 convolutions,
  the depthwise convolutions of the multi-scale block, the S4 layer's
  output Dense, the feed-forward Dense layers and the transposed-conv
  decoder: 1,752,736 of the 1,828,967 parameters at 8 kHz. Kept in float32:
  biases, gLN/LayerNorm parameters, PReLU slopes and the S4 parameters
  (log_dt, A, B, P, C, D).
* sign + `bits` exponent bits (5 default, 8 option), one window per tensor,
  `truncate` rounding, straight-through gradient to float32 masters.
* Integer-add inference (`s4jax.quant.intadd.int_add_apply`) reroutes the
  `nn.Dense` and 1x1 `nn.Conv` layers: bottleneck, mask conv, the shared
  block's projection and residual convs, feed-forward and S4 output layers
  (1,710,464 of the quantised weights). The strided encoder conv stays on
  the float path with its quantised kernel, and so do the depthwise and
  transposed convolutions (`s4m_blocks` implements them with `lax` calls,
  which the interceptor does not see).

Run:
  python launch/train.py --config=configs/s4m_tiny_seofp.py --workdir=...
  python launch/train.py --config=configs/s4m_tiny_seofp.py:bits=8 ...
  python launch/train.py --config=configs/s4m_tiny_seofp.py:smoke=True ...
  python launch/train.py --config=configs/s4m_tiny_seofp.py \
    --config.data.name=librimix --config.data.manual_dir=/path/to/LibriMix \
    --workdir=...

Fine-tuning a float S4M-tiny checkpoint: there is no init-from-checkpoint
field; copy the float run's `checkpoints/<STEP>` directory into a fresh
workdir's `checkpoints/` and train there with this recipe and
`--config.train.num_steps=<STEP + N>` (the loop resumes from it with the
optimiser state; see `configs/spiking_s4_ndns_seofp.py`).
"""

from __future__ import annotations

import ml_collections

from configs import base, s4m_tiny, spiking_s4_ndns_seofp


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """SEOFP S4M-tiny; `arg`: 'bits=8', 'smoke=True', 'ssm=s4d', ..."""
  arg = base.parse_arg(
    arg,
    smoke=False,
    ssm='s4',
    sample_rate=8000,
    bits=5,
    rounding='truncate',
  )
  config = s4m_tiny.get_config(
    f'smoke={arg.smoke},ssm={arg.ssm},sample_rate={arg.sample_rate}'
  )
  spiking_s4_ndns_seofp.apply_seofp(config, arg.bits, arg.rounding)
  return config
