"""Discretisation of diagonal state-space models.

For a diagonal continuous system `x' = A x + B u` (elementwise `A`):

* zero-order hold: `Abar = exp(dt A)`, `Bbar = (Abar - 1) / A * B`;
* bilinear (Tustin): `Abar = (1 + dt A/2) / (1 - dt A/2)`,
  `Bbar = dt B / (1 - dt A/2)`.

The DPLR (S4) system `A = Lambda - P P^*` is only discretised with the
bilinear method: `discretize_dplr` precomputes the Woodbury factors of
`(I - dt A / 2)^-1` and `dplr_transition` applies `Abar` in O(N R) per step.
`s4jax.ssm.kernels` (the truncation correction of `C`) and
`s4jax.ssm.recurrence` (streaming) both build on them; `cauchy_kernel`
evaluates the same bilinear system in the frequency domain.

State layout of the DPLR system: complex `(..., H, N2)`, one member of each
conjugate pair. The low-rank term couples each pair to its conjugate, so the
half-basis transition is real-linear: the inner products with `P` are
`P^* x_full = 2 Re(sum_n conj(P_n) x_n)`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

__all__ = [
  'DISCRETIZATIONS',
  'DPLRSSM',
  'check_discretization',
  'discretize_diag',
  'discretize_dplr',
  'dplr_transition',
  'log_abar_diag',
]

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


class DPLRSSM(NamedTuple):
  """Bilinear DPLR SSM with the factors of its O(N R) implicit step."""

  lam: jnp.ndarray  # complex (H, N2)
  p: jnp.ndarray  # complex (R, H, N2)
  b: jnp.ndarray  # complex (H, N2)
  c: jnp.ndarray  # complex (H, N2)
  dt: jnp.ndarray  # real (H,)
  d_inv: jnp.ndarray  # complex (H, N2): 1 / (1 - dt Lambda / 2)
  m_inv: jnp.ndarray  # real (H, R, R): (2/dt I + P^* D^-1 P)^-1


def _p_inner(p: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
  """`P^* x` over the full (conjugate-completed) basis: real `(..., H, R)`."""
  return 2 * jnp.einsum('rhn,...hn->...hr', p.conj(), x).real


def discretize_dplr(
  lam: jnp.ndarray,
  p: jnp.ndarray,
  b: jnp.ndarray,
  c: jnp.ndarray,
  dt: jnp.ndarray,
) -> DPLRSSM:
  """Precomputes the Woodbury factors of `(I - dt A / 2)^-1` for DPLR `A`.

  Args:
    lam: complex `(H, N2)`.
    p: complex `(R, H, N2)`.
    b: complex `(H, N2)`.
    c: complex `(H, N2)`.
    dt: real `(H,)`.

  Returns:
    The discretised system.
  """
  d_inv = 1.0 / (1.0 - dt[:, None] * lam / 2)
  m = 2 * jnp.einsum('rhn,shn->hrs', p.conj(), p * d_inv).real  # (H, R, R)
  eye = jnp.eye(p.shape[0], dtype=m.dtype)
  m_inv = jnp.linalg.inv(2.0 / dt[:, None, None] * eye + m)
  return DPLRSSM(lam, p, b, c, dt, d_inv, m_inv)


def _dplr_apply_a(ssm: DPLRSSM, x: jnp.ndarray) -> jnp.ndarray:
  """Continuous `A x = Lambda x - P (P^* x)` in the half basis."""
  return ssm.lam * x - jnp.einsum('rhn,...hr->...hn', ssm.p, _p_inner(ssm.p, x))


def _dplr_solve(ssm: DPLRSSM, v: jnp.ndarray) -> jnp.ndarray:
  """`(I - dt A / 2)^-1 v` by the Woodbury identity."""
  w = ssm.d_inv * v
  s = jnp.einsum('hrs,...hs->...hr', ssm.m_inv, _p_inner(ssm.p, w))
  return w - ssm.d_inv * jnp.einsum('rhn,...hr->...hn', ssm.p, s)


def dplr_transition(
  ssm: DPLRSSM, x: jnp.ndarray, drive: jnp.ndarray | None = None
) -> jnp.ndarray:
  """`Abar x` for the bilinear DPLR system, plus an optional input term.

  Args:
    ssm: the discretised system.
    x: complex `(..., H, N2)` state.
    drive: complex `(..., H, N2)` or None; if given, the result is
      `(I - dt A / 2)^-1 ((I + dt A / 2) x + drive)`, e.g. one step of the
      system with `drive = dt B u`.

  Returns:
    Complex `(..., H, N2)`.
  """
  v = x + ssm.dt[:, None] / 2 * _dplr_apply_a(ssm, x)
  if drive is not None:
    v = v + drive
  return _dplr_solve(ssm, v)
