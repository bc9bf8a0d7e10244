"""SEOFP sign-exponent-only weight quantisation (SEOFP-NET).

* `s4jax.quant.seofp`: the quantiser (`quantize`, `fake_quant` with a
  straight-through gradient, `QuantConfig`, `encode`/`decode`).
* `s4jax.quant.rules`: which parameters to quantise, by path rules built from
  `config.quant`; `fake_quant_params` / `quantize_params` on any pytree.
* `s4jax.quant.packing`: 1 + k bits per weight export, exact unpack, size
  report.
* `s4jax.quant.intadd`: products by integer addition, integer-add dense and
  1x1 convolution, and a Linen interceptor that runs a model's Dense / 1x1
  Conv layers on that path.
"""

__all__ = [
  'intadd',
  'packing',
  'rules',
  'seofp',
]
