"""Independent float64 NumPy references for state-space kernels.

These build the dense discretised matrices over the full (conjugate-completed)
state and power them step by step: no generating functions, no Woodbury, no
conjugate folding, so they share no code or algebra with `s4jax.ssm`.
"""

import numpy as np


def full_basis(x):
  """Completes half-basis vectors (..., N2) with their conjugates."""
  return np.concatenate([x, np.conj(x)], axis=-1)


def dense_dplr(lam, p, b, dt):
  """Bilinear Abar, Bbar of A = diag(Lambda) - sum_r P_r P_r^* (one channel)."""
  lf = full_basis(lam)
  pf = full_basis(p)  # (R, N)
  a = np.diag(lf) - sum(np.outer(pr, np.conj(pr)) for pr in pf)
  eye = np.eye(len(lf))
  left = eye - dt / 2 * a
  return np.linalg.solve(left, eye + dt / 2 * a), np.linalg.solve(
    left, dt * full_basis(b)
  )


def dplr_c_tilde(lam, p, c, dt, length):
  """`C~ = C (I - Abar^L)` per channel by a dense matrix power, `(H, N2)`."""
  lam, p, c = (np.asarray(v, np.complex128) for v in (lam, p, c))
  dt = np.asarray(dt, np.float64)
  n2 = lam.shape[-1]
  out = np.empty(c.shape, np.complex128)
  for i in range(lam.shape[0]):
    abar, _ = dense_dplr(lam[i], p[:, i], np.zeros(n2), dt[i])
    power = np.linalg.matrix_power(abar, length)
    row = full_basis(c[i]) @ (np.eye(2 * n2) - power)
    out[i] = row[:n2]
  return out


def krylov(abar, bbar, c_full, length):
  """K[l] = C Abar^l Bbar by repeated multiplication (real part)."""
  out = np.empty(length)
  x = bbar.astype(np.complex128)
  for pos in range(length):
    out[pos] = (c_full @ x).real
    x = abar @ x
  return out


def dplr_kernel(lam, p, b, c, dt, length):
  """Reference DPLR kernel, shapes as `s4jax.ssm.cauchy_kernel`."""
  lam, p, b, c = (np.asarray(v, np.complex128) for v in (lam, p, b, c))
  dt = np.asarray(dt, np.float64)
  h = lam.shape[0]
  out = np.empty(c.shape[:-1] + (length,))
  for i in range(h):
    abar, bbar = dense_dplr(lam[i], p[:, i], b[i], dt[i])
    for idx in np.ndindex(c.shape[:-2]):
      out[idx + (i,)] = krylov(abar, bbar, full_basis(c[idx + (i,)]), length)
  return out


def diag_kernel(a, b, c, dt, length, method):
  """Reference diagonal-SSM kernel by explicit powers."""
  a, b, c = (np.asarray(v, np.complex128) for v in (a, b, c))
  dta = np.asarray(dt, np.float64)[:, None] * a
  if method == 'zoh':
    abar = np.exp(dta)
    bbar = (abar - 1) / a * b
  else:
    abar = (1 + dta / 2) / (1 - dta / 2)
    bbar = np.asarray(dt)[:, None] * b / (1 - dta / 2)
  powers = abar[..., None] ** np.arange(length)  # (H, N2, L)
  return 2 * np.einsum('...hn,hnl->...hl', c * bbar, powers).real


def causal_conv(u, k):
  """Direct O(L^2) causal convolution: u (..., L, H), k (H, L)."""
  length = u.shape[-2]
  y = np.zeros(u.shape)
  for t in range(length):
    y[..., t, :] = np.einsum('...sh,hs->...h', u[..., : t + 1, :], k[:, t::-1])
  return y
