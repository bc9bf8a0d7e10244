"""s4jax: structured state-space models in JAX for speech enhancement/separation.

The library is pure, jittable JAX + Flax: no TensorFlow, no file I/O, no
flags or processes (the training/evaluation shell is the sibling package
`harness`). Subpackages:

* `s4jax.ssm`: pure-functional S4/S4D kernels, FFT convolution, streaming.
* `s4jax.layers`: thin Flax modules holding parameters and calling the math.
* `s4jax.spiking`: spike functions with surrogate gradients, PLIF neurons.
* `s4jax.models`: Spiking-S4 (enhancement), S4M (separation), their energy
  and cost (`summary`), export forms (`portable`), `build` (from_config).
* `s4jax.quant`: SEOFP sign-exponent-only quantisation.
* `s4jax.audio`: STFT, losses, PIT, permutation search, resampling.
* `s4jax.training`: train state, optimisers, sharding, tasks, train step.
* `s4jax.inference`: the `SpeechModel` interface; offline, chunked and
  streamed processing of signals.
"""

__version__ = '0.1.0'
