"""Initialisers for structured state-space parameters.

All constructions run in float64 NumPy (they happen once, outside `jit`) and
return NumPy arrays; callers cast them to the working dtype.

References:
  * HiPPO-LegS and its normal-plus-low-rank (NPLR) form: Gu et al., "Efficiently
    Modeling Long Sequences with Structured State Spaces" (ICLR 2022), and the
    `nplr`/`transition`/`rank_correction` functions of state-spaces/s4.
  * S4D initialisations (LegS, Lin, Inv, Real): Gu et al., "On the
    Parameterization and Initialization of Diagonal State Space Models"
    (NeurIPS 2022), section 4.
"""

from __future__ import annotations

import numpy as np

__all__ = [
  'DIAGONAL_INITS',
  'hippo_legs',
  'hippo_legs_nplr',
  'log_dt_uniform',
  's4d_init',
]

DIAGONAL_INITS = ('legs', 'lin', 'inv', 'real')


def hippo_legs(n: int) -> tuple[np.ndarray, np.ndarray]:
  """Dense HiPPO-LegS transition matrices.

  Args:
    n: state size N.

  Returns:
    `(A, B)`: real `(N, N)` and `(N,)` with
    `A[i, j] = -sqrt(2i+1) sqrt(2j+1)` for `i > j`, `-(i+1)` on the diagonal,
    0 above it, and `B[i] = sqrt(2i+1)`.
  """
  q = np.arange(n, dtype=np.float64)
  r = np.sqrt(2 * q + 1)
  a = -np.tril(np.outer(r, r), -1) - np.diag(q + 1)
  return a, r.copy()


def hippo_legs_nplr(
  n: int, rank: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """HiPPO-LegS in diagonal-plus-low-rank form over conjugate pairs.

  `A_legs = V (diag(w) - P P^*) V^*` with `V` unitary. Only one member of each
  conjugate pair is kept (the half with negative imaginary part), so a real
  input driven through the half system with outputs `2 Re(...)` reproduces the
  full real system.

  Args:
    n: state size N (even).
    rank: rank R of the correction; rows beyond the first are zero.

  Returns:
    `(Lambda, P, B, V)`: complex `(N/2,)`, `(R, N/2)`, `(N/2,)` and the
    `(N, N/2)` eigenvector block.
  """
  if n % 2:
    raise ValueError(f'HiPPO-LegS NPLR needs an even state size, got {n}.')
  a, b = hippo_legs(n)
  p = np.zeros((rank, n))
  p[0] = np.sqrt(np.arange(n) + 0.5)
  ap = a + p.T @ p  # (-1/2) I + skew-symmetric.
  w_re = np.mean(np.diag(ap))
  w_im, v = np.linalg.eigh(ap * -1j)
  order = np.argsort(w_im, kind='stable')
  v = v[:, order][:, : n // 2]
  w = w_re + 1j * w_im[order][: n // 2]
  v_inv = v.conj().T
  return w, p @ v_inv.T, v_inv @ b, v


def s4d_init(
  kind: str, n2: int, b_clip: float | None = 2.0
) -> tuple[np.ndarray, np.ndarray]:
  """Diagonal state matrices of S4D.

  Args:
    kind: 'legs' (diagonal part of HiPPO-LegS NPLR), 'lin' (`-1/2 + i pi n`),
      'inv' (`-1/2 + i (N/pi)(N/(2n+1) - 1)`) or 'real' (`-(n+1)`).
    n2: number of conjugate pairs N/2.
    b_clip: for 'legs', clip the imaginary part of B to +-b_clip (None: no
      clip); the other initialisations use B = 1.

  Returns:
    `(A, B)` complex `(N/2,)`.
  """
  n = np.arange(n2, dtype=np.float64)
  b = np.ones(n2, dtype=np.complex128)
  if kind == 'legs':
    a, _, b, _ = hippo_legs_nplr(2 * n2)
    if b_clip is not None:
      b = b.real + 1j * np.clip(b.imag, -b_clip, b_clip)
  elif kind == 'lin':
    a = -0.5 + 1j * np.pi * n
  elif kind == 'inv':
    big_n = 2 * n2
    a = -0.5 + 1j * (big_n / np.pi) * (big_n / (2 * n + 1) - 1)
  elif kind == 'real':
    a = -(n + 1) + 0j
  else:
    raise ValueError(
      f'Unknown S4D initialisation {kind!r}; choose one of {DIAGONAL_INITS}.'
    )
  return a.astype(np.complex128), b


def log_dt_uniform(
  rng: np.random.Generator | None,
  shape: tuple[int, ...],
  dt_min: float = 1e-3,
  dt_max: float = 1e-1,
) -> np.ndarray:
  """Log step sizes drawn uniformly in `[log dt_min, log dt_max]` (NumPy)."""
  if not 0 < dt_min <= dt_max:
    raise ValueError(f'Need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}.')
  rng = rng or np.random.default_rng(0)
  return rng.uniform(np.log(dt_min), np.log(dt_max), size=shape)
