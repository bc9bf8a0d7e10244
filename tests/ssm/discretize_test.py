"""`s4jax.ssm.discretize` against independent float64 NumPy/SciPy references.

The references treat each channel's diagonal system as a dense matrix:
zero-order hold from the matrix exponential of the augmented system
(Van Loan: `expm(dt [[A, B], [0, 0]]) = [[Abar, Bbar], [0, 1]]`), bilinear
from two linear solves, `(I - dt A/2)^-1 (I + dt A/2)` and
`(I - dt A/2)^-1 dt B`. Tolerance: 1e-12 relative in float64 (x64), 2e-6 in
float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from s4jax.ssm import discretize

H, N2 = 3, 5
RTOL_X64 = 1e-12
RTOL_F32 = 2e-6


def _system(seed=0, dt=(1e-3, 3e-2, 0.5)):
  rng = np.random.default_rng(seed)
  a = -np.exp(rng.normal(size=(H, N2))) + 1j * rng.normal(size=(H, N2)) * 5
  b = rng.normal(size=(H, N2)) + 1j * rng.normal(size=(H, N2))
  return a, b, np.asarray(dt, np.float64)


def _reference(a, b, dt, method):
  """Dense per-channel references, complex128 `(H, N2)` each."""
  abar = np.zeros_like(a)
  bbar = np.zeros_like(b)
  for h in range(a.shape[0]):
    big_a, big_b = np.diag(a[h]), b[h][:, None]
    if method == 'zoh':
      aug = np.zeros((N2 + 1, N2 + 1), np.complex128)
      aug[:N2, :N2], aug[:N2, N2:] = big_a, big_b
      full = scipy.linalg.expm(dt[h] * aug)
      abar[h], bbar[h] = np.diag(full[:N2, :N2]), full[:N2, N2]
    else:
      eye = np.eye(N2)
      left = eye - dt[h] / 2 * big_a
      abar[h] = np.diag(np.linalg.solve(left, eye + dt[h] / 2 * big_a))
      bbar[h] = np.linalg.solve(left, dt[h] * big_b)[:, 0]
  return abar, bbar


def _rel(got, want):
  return float(np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize('method', discretize.DISCRETIZATIONS)
def test_discretize_diag_matches_dense_reference_x64(method):
  a, b, dt = _system()
  want_a, want_b = _reference(a, b, dt, method)
  with jax.enable_x64(True):
    got_a, got_b = discretize.discretize_diag(
      jnp.asarray(a), jnp.asarray(b), jnp.asarray(dt), method
    )
    log_abar = discretize.log_abar_diag(jnp.asarray(a), jnp.asarray(dt), method)
    assert got_a.dtype == jnp.complex128
    # exp(log Abar) = Abar: `Abar^l` is computed as `exp(l log Abar)`.
    err_log = _rel(np.exp(np.asarray(log_abar)), want_a)
  assert _rel(got_a, want_a) < RTOL_X64, f'{method} Abar'
  assert _rel(got_b, want_b) < RTOL_X64, f'{method} Bbar'
  assert err_log < RTOL_X64, f'{method} exp(log Abar)'


def test_zoh_input_vector_is_accurate_for_tiny_steps_x64():
  """`(Abar - 1) / A` for `dt A ~ 1e-9` (expm1, not exp - 1)."""
  a, b, _ = _system(seed=1)
  dt = np.array([1e-9, 1e-10, 1e-8])
  _, want_b = _reference(a, b, dt, 'zoh')
  with jax.enable_x64(True):
    _, got_b = discretize.discretize_diag(
      jnp.asarray(a), jnp.asarray(b), jnp.asarray(dt), 'zoh'
    )
  assert _rel(got_b, want_b) < RTOL_X64


@pytest.mark.parametrize('method', discretize.DISCRETIZATIONS)
def test_discretize_diag_float32(method):
  a, b, dt = _system(seed=2)
  want_a, want_b = _reference(a, b, dt, method)
  got_a, got_b = discretize.discretize_diag(
    jnp.asarray(a, jnp.complex64),
    jnp.asarray(b, jnp.complex64),
    jnp.asarray(dt, jnp.float32),
    method,
  )
  assert got_a.dtype == jnp.complex64
  assert _rel(got_a, want_a) < RTOL_F32, f'{method} Abar'
  assert _rel(got_b, want_b) < RTOL_F32, f'{method} Bbar'


def test_unknown_method_names_the_choices():
  a, b, dt = _system()
  with pytest.raises(ValueError, match="'zoh', 'bilinear'"):
    discretize.discretize_diag(a, b, dt, 'euler')
  with pytest.raises(ValueError, match='euler'):
    discretize.log_abar_diag(a, dt, 'euler')
