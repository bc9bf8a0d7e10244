"""s4jax: structured state-space models in JAX for speech enhancement/separation.

The library is pure JAX + Flax: no TensorFlow and no file I/O. Subpackages:

* `s4jax.ssm`: pure-functional S4/S4D kernels, FFT convolution, streaming.
* `s4jax.layers`: thin Flax modules holding parameters and calling the math.
* `s4jax.spiking`: spike functions with surrogate gradients, LIF neurons.
* `s4jax.models`: Spiking-S4 (enhancement) and S4M (separation).
* `s4jax.quant`: SEOFP sign-exponent-only quantisation.
* `s4jax.audio`: STFT, losses and metrics.
* `s4jax.training`: train state, optimisers, sharding, training loop.
"""

__version__ = '0.1.0'
