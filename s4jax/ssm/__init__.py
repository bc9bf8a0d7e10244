"""Pure-functional structured state-space math (S4, S4D).

Every function here is a plain JAX function with shape-annotated docstrings,
usable from Linen, NNX, Equinox or bare JAX under `jit`, `vmap` and `grad`.
"""

from s4jax.ssm.discretize import (
  DPLRSSM,
  discretize_diag,
  discretize_dplr,
  log_abar_diag,
)
from s4jax.ssm.init import (
  DIAGONAL_INITS,
  hippo_legs,
  hippo_legs_nplr,
  log_dt_uniform,
  s4d_init,
)
from s4jax.ssm.kernels import (
  cauchy_kernel,
  dplr_c_from_tilde,
  dplr_c_tilde,
  fft_conv,
  vandermonde_kernel,
)
from s4jax.ssm.recurrence import (
  DiagSSM,
  diag_ssm,
  forward,
  init_state,
  step,
)

__all__ = [
  'DIAGONAL_INITS',
  'DPLRSSM',
  'DiagSSM',
  'cauchy_kernel',
  'diag_ssm',
  'discretize_diag',
  'discretize_dplr',
  'dplr_c_from_tilde',
  'dplr_c_tilde',
  'fft_conv',
  'forward',
  'hippo_legs',
  'hippo_legs_nplr',
  'init_state',
  'log_abar_diag',
  'log_dt_uniform',
  's4d_init',
  'step',
  'vandermonde_kernel',
]
