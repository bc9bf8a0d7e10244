"""Flax modules that hold parameters and call the math in `s4jax.ssm`."""

from s4jax.layers.s4 import SSM_PARAM_NAMES, S4Layer, ssm_param_labels

__all__ = ['S4Layer', 'SSM_PARAM_NAMES', 'ssm_param_labels']
