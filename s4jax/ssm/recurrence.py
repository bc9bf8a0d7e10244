"""Exact recurrent (streaming) evaluation of S4D and S4 systems.

The recurrent forms are derived from the same discretised parameters as the
convolution kernels of `s4jax.ssm.kernels`, so a stream processed step by step
or chunk by chunk reproduces the convolution output.

State layout: complex `(..., H, N2)`, one member of each conjugate pair; the
output is `y = 2 Re(C x)`. The DPLR system and its transition are defined in
`s4jax.ssm.discretize` (re-exported here: `DPLRSSM`, `discretize_dplr`,
`dplr_transition`).

Usage::

  ssm = discretize_dplr(lam, p, b, c, dt)       # or diag_ssm(a, b, c, dt)
  state = init_state((batch,), ssm)
  y_t, state = step(ssm, state, u_t)            # u_t: (batch, H)
  y, state = forward(ssm, u_chunk, state)       # u_chunk: (batch, T, H)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from s4jax.ssm import discretize, kernels

__all__ = [
  'DPLRSSM',
  'DiagSSM',
  'diag_ssm',
  'discretize_dplr',
  'dplr_transition',
  'forward',
  'init_state',
  'step',
]

DPLRSSM = discretize.DPLRSSM
discretize_dplr = discretize.discretize_dplr
dplr_transition = discretize.dplr_transition


class DiagSSM(NamedTuple):
  """Discretised diagonal SSM: `x' = Abar x + Bbar u`, `y = 2 Re(C x')`."""

  log_abar: jnp.ndarray  # complex (H, N2)
  abar: jnp.ndarray  # complex (H, N2), exp(log_abar)
  bbar: jnp.ndarray  # complex (H, N2)
  c: jnp.ndarray  # complex (H, N2)


def diag_ssm(
  a: jnp.ndarray,
  b: jnp.ndarray,
  c: jnp.ndarray,
  dt: jnp.ndarray,
  discretization: str = 'zoh',
) -> DiagSSM:
  """A diagonal SSM in streaming form, `DiagSSM`.

  `discretize.discretize_diag` gives `(Abar, Bbar)`; this adds `log Abar`
  (for chunked evaluation) and the output vector `C`. Shapes as in
  `kernels.vandermonde_kernel`.
  """
  abar, bbar = discretize.discretize_diag(a, b, dt, discretization)
  log_abar = discretize.log_abar_diag(a, dt, discretization)
  return DiagSSM(log_abar, abar, bbar, c)


def init_state(
  batch_shape: tuple[int, ...], ssm: DiagSSM | DPLRSSM
) -> jnp.ndarray:
  """Zero state `(*batch_shape, H, N2)` with the SSM's complex dtype."""
  return jnp.zeros((*batch_shape, *ssm.c.shape[-2:]), dtype=ssm.c.dtype)


def step(
  ssm: DiagSSM | DPLRSSM, state: jnp.ndarray, u: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Advances one time step for all channels.

  Args:
    ssm: discretised system.
    state: complex `(..., H, N2)`.
    u: real `(..., H)` input at this step.

  Returns:
    `(y, next_state)`: real `(..., H)` output `2 Re(C x')` and the new state.
  """
  u_c = u[..., None].astype(state.dtype)
  if isinstance(ssm, DiagSSM):
    nxt = ssm.abar * state + ssm.bbar * u_c
  else:
    nxt = dplr_transition(ssm, state, ssm.dt[:, None] * ssm.b * u_c)
  y = 2 * jnp.sum(ssm.c * nxt, axis=-1).real
  return y.astype(u.dtype), nxt


def _forward_scan(ssm, u, state):
  def body(x, u_t):
    y_t, x = step(ssm, x, u_t)
    return x, y_t

  state, y = jax.lax.scan(body, state, jnp.moveaxis(u, -2, 0))
  return jnp.moveaxis(y, 0, -2), state


def _forward_diag(ssm: DiagSSM, u: jnp.ndarray, state: jnp.ndarray):
  length = u.shape[-2]
  k = kernels.vandermonde(ssm.c * ssm.bbar, ssm.log_abar, length)
  y = kernels.fft_conv(u, k)
  # Contribution of the initial state: y[t] += 2 Re(C Abar^(t+1) x0).
  x0_coef = ssm.c * ssm.abar * state  # (..., H, N2)
  y = y + jnp.swapaxes(
    kernels.vandermonde(x0_coef, ssm.log_abar, length), -1, -2
  )
  # x_T = Abar^T x0 + sum_s Abar^s Bbar u[T-1-s].
  u_rev = jnp.flip(jnp.swapaxes(u, -1, -2), axis=-1)
  nxt = jnp.exp(ssm.log_abar * length) * state + ssm.bbar * (
    kernels.vandermonde_transpose(u_rev, ssm.log_abar)
  )
  return y.astype(u.dtype), nxt


def forward(
  ssm: DiagSSM | DPLRSSM, u: jnp.ndarray, state: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Processes a chunk with state forwarding.

  For diagonal systems the chunk is computed in parallel (FFT convolution plus
  Vandermonde products for the incoming and outgoing state); for DPLR systems
  it is an exact `lax.scan` of `step` (O(T N R) work, no matrix powers).

  Args:
    ssm: discretised system.
    u: real `(..., T, H)` chunk.
    state: complex `(..., H, N2)` state before the chunk.

  Returns:
    `(y, next_state)` with `y` real `(..., T, H)`.
  """
  if isinstance(ssm, DiagSSM):
    return _forward_diag(ssm, u, state)
  return _forward_scan(ssm, u, state)
