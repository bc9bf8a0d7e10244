"""Discretisation of diagonal state-space models.

For a diagonal continuous system `x' = A x + B u` (elementwise `A`):

* zero-order hold: `Abar = exp(dt A)`, `Bbar = (Abar - 1) / A * B`;
* bilinear (Tustin): `Abar = (1 + dt A/2) / (1 - dt A/2)`,
  `Bbar = dt B / (1 - dt A/2)`.

The DPLR (S4) system is only discretised with the bilinear method, inside
`s4jax.ssm.kernels.cauchy_kernel` and `s4jax.ssm.recurrence`.
"""

from __future__ import annotations

import jax.numpy as jnp

DISCRETIZATIONS = ('zoh', 'bilinear')


def check_discretization(method: str) -> None:
  """Raises a ValueError naming the valid choices for an unknown method."""
  if method not in DISCRETIZATIONS:
    raise ValueError(
      f'Unknown discretization {method!r}; choose one of {DISCRETIZATIONS}.'
    )


def discretize_diag(
  a: jnp.ndarray, b: jnp.ndarray, dt: jnp.ndarray, method: str = 'zoh'
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Discretises a diagonal SSM.

  Args:
    a: complex `(H, N2)` continuous state matrix (diagonal).
    b: complex `(H, N2)` input vector.
    dt: real `(H,)` step sizes.
    method: 'zoh' or 'bilinear'.

  Returns:
    `(Abar, Bbar)`, complex `(H, N2)`.
  """
  check_discretization(method)
  dta = dt[:, None] * a
  if method == 'zoh':
    # expm1 keeps (Abar - 1) accurate when dt A is small.
    return jnp.exp(dta), jnp.expm1(dta) / a * b
  denom = 1.0 - dta / 2
  return (1.0 + dta / 2) / denom, dt[:, None] * b / denom


def log_abar_diag(a: jnp.ndarray, dt: jnp.ndarray, method: str) -> jnp.ndarray:
  """`log(Abar)` of a diagonal SSM, `(H, N2)`: `Abar^l = exp(l * log_abar)`."""
  check_discretization(method)
  dta = dt[:, None] * a
  if method == 'zoh':
    return dta
  return jnp.log1p(dta / 2) - jnp.log1p(-dta / 2)
