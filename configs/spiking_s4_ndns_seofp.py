r"""Spiking-S4 (N-DNS recipe) trained with SEOFP sign-exponent-only weights.

SEOFP-NET (Lin et al., IEEE/ACM TASLP 30, 2022, arXiv 2111.04436) keeps only
the sign and a k-bit exponent of each weight, so every multiplication by a
weight becomes an integer addition (`s4jax.quant`). This recipe is
`configs/spiking_s4_ndns.py` with `config.quant` switched on:

* Quantised: the Dense kernels, i.e. the encoder (257 -> 256), the emission
  layer of every block (256 -> 256) and the decoder (256 -> 257): 393,728 of
  the 530,442 parameters, every weight the network multiplies activations by
  in a dense layer. Kept in float32: biases, LayerNorm scales/offsets, the
  PLIF time constants and the S4D parameters (log_dt, A, C, D), which set
  the kernel's time constants and output mix rather than one weight's gain
  (`s4jax.quant.rules`; `quant.include_ssm=True` etc. widen the selection).
* Format: sign + `bits` exponent bits (default 5: 6 bits per weight, 81.25%
  smaller than float32; `bits=8`: 9 bits, 71.875% smaller), one exponent
  window per tensor anchored at the tensor's largest rounded exponent.
* Rounding: `truncate` (drop the 23 fraction bits, the paper's "fraction
  removed"); `rounding=nearest_log` rounds to the nearest power in log2.
* Training: float32 master weights; the loss sees the quantised kernels and
  the gradient passes straight through to the masters (STE, `ste_mask`
  'none'). Checkpoints hold the float32 masters; evaluation, export
  (`packing.pack`) and the integer-add path apply the same quantiser.

Measured cost (`benchmarks/RESULTS.md`, "SEOFP quality cost"; built-in
synthetic data, 1000 steps of 4 x 4 s, one seed): SI-SNR 14.69 dB float,
14.49 at 8 bits, 14.20 at 5 bits; PESQ-WB 1.53 / 1.55 / 1.57. The 5 vs 8-bit
gap is run-to-run noise (both windows hold every weight that matters).

Run (quantisation-aware training from scratch; N-DNS as in the base recipe):
  python launch/train.py --config=configs/spiking_s4_ndns_seofp.py \
    --config.data.manual_dir=/data/MicrosoftDNS_4_ICASSP --workdir=...
  python launch/train.py --config=configs/spiking_s4_ndns_seofp.py:bits=8 ...
  python launch/train.py --config=configs/spiking_s4_ndns_seofp.py:smoke=True \
    --workdir=/tmp/seofp_smoke
On the built-in synthetic data add `--config.data.name=synthetic`
(`benchmarks/seofp_quality.py` measures float vs 5 and 8 bits that way).

Fine-tuning a float checkpoint: the training system has no init-from-
checkpoint field; it resumes from the latest checkpoint in `--workdir`
(parameters, optimiser state and step). So copy the float run's step
directory into a fresh workdir and continue there with this recipe and a
larger `num_steps`:
  mkdir -p /tmp/qat/checkpoints
  cp -r /tmp/float/checkpoints/<STEP> /tmp/qat/checkpoints/
  python launch/train.py --config=configs/spiking_s4_ndns_seofp.py \
    --config.train.num_steps=<STEP + N> --workdir=/tmp/qat
The model and optimiser must match the float run (same `emission`, widths
and optimiser); the step counter and the schedule continue from STEP.
`tests/quant/seofp_models_test.py` runs this path.

Integer-add inference with the trained weights:
  rules = s4jax.quant.rules.from_config(config.quant)
  apply = s4jax.quant.intadd.int_add_apply(model.apply, rules)
"""

from __future__ import annotations

import ml_collections

from configs import base, spiking_s4_ndns
from s4jax.quant import seofp


def apply_seofp(
  config: ml_collections.ConfigDict, bits: int, rounding: str
) -> None:
  """Switches `config.quant` on: sign + `bits`-bit exponent Dense kernels.

  Raises:
    ValueError: for `bits` outside 1..8 or an unknown rounding.
  """
  seofp.QuantConfig(exponent_bits=bits, rounding=rounding)  # Validates.
  config.quant.enabled = True
  config.quant.exponent_bits = bits
  config.quant.rounding = rounding
  config.quant.granularity = 'tensor'
  config.quant.ste_mask = 'none'
  config.quant.include = (r'(^|/)kernel$',)
  config.quant.include_bias = False
  config.quant.include_norm = False
  config.quant.include_ssm = False


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """SEOFP Spiking-S4; `arg`: 'bits=8', 'smoke=True', 'emission=glu', ..."""
  arg = base.parse_arg(
    arg, smoke=False, emission='linear', bits=5, rounding='truncate'
  )
  config = spiking_s4_ndns.get_config(
    f'smoke={arg.smoke},emission={arg.emission}'
  )
  apply_seofp(config, arg.bits, arg.rounding)
  return config
