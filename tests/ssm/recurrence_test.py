"""Streaming (step and chunked) equals convolution mode for S4 and S4D."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax import ssm
from s4jax.ssm import init as ssm_init
from s4jax.ssm import recurrence


def _system(family, h=4, n=64, seed=0):
  rng = np.random.default_rng(seed)
  c = jnp.asarray(
    rng.normal(size=(h, n // 2)) + 1j * rng.normal(size=(h, n // 2)),
    jnp.complex64,
  ) * np.sqrt(0.5)
  dt = jnp.asarray(
    np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), h)), jnp.float32
  )
  if family == 's4':
    lam, p, b, _ = ssm_init.hippo_legs_nplr(n)
    lam = jnp.tile(jnp.asarray(lam, jnp.complex64), (h, 1))
    p = jnp.tile(jnp.asarray(p, jnp.complex64)[:, None], (1, h, 1))
    b = jnp.tile(jnp.asarray(b, jnp.complex64), (h, 1))
    return (
      recurrence.discretize_dplr(lam, p, b, c, dt),
      lambda length: ssm.cauchy_kernel(lam, p, b, c, dt, length),
    )
  a, b = ssm_init.s4d_init('legs', n // 2)
  a = jnp.tile(jnp.asarray(a, jnp.complex64), (h, 1))
  b = jnp.tile(jnp.asarray(b, jnp.complex64), (h, 1))
  return (
    recurrence.diag_ssm(a, b, c, dt),
    lambda length: ssm.vandermonde_kernel(a, b, c, dt, length),
  )


@jax.jit
def _scan_steps(system, u, state):
  def body(x, u_t):
    y, x = recurrence.step(system, x, u_t)
    return x, y

  state, y = jax.lax.scan(body, state, jnp.swapaxes(u, 0, 1))
  return jnp.swapaxes(y, 0, 1), state


@pytest.mark.parametrize('family', ['s4', 's4d'])
def test_step_and_chunked_stream_equal_convolution_at_16000(family):
  length = 16000
  system, kernel = _system(family)
  u = jax.random.normal(jax.random.PRNGKey(0), (2, length, 4))
  y_conv = ssm.fft_conv(u, kernel(length))
  state0 = recurrence.init_state((2,), system)
  y_step, final = _scan_steps(system, u, state0)
  err = float(jnp.max(jnp.abs(y_step - y_conv)))
  assert err < 1e-4, f'{family}: per-step vs convolution max abs diff {err:.2e}'
  ys, state = [], state0
  for lo, hi in [(0, 1000), (1000, 1001), (1001, 7000), (7000, length)]:
    y, state = recurrence.forward(system, u[:, lo:hi], state)
    ys.append(y)
  err = float(jnp.max(jnp.abs(jnp.concatenate(ys, axis=1) - y_conv)))
  assert err < 1e-4, f'{family}: chunked vs convolution max abs diff {err:.2e}'
  state_err = float(jnp.max(jnp.abs(state - final)))
  assert state_err < 1e-4 * float(jnp.max(jnp.abs(final))) + 1e-5, (
    f'{family}: chunked final state differs from stepped by {state_err:.2e}'
  )


def test_diag_chunk_forward_matches_reference_recurrence_x64():
  """Chunked diagonal forward vs a NumPy float64 loop from a nonzero state."""
  rng = np.random.default_rng(1)
  h, n2, length = 3, 8, 77
  a = -np.exp(rng.normal(size=(h, n2))) + 1j * rng.normal(size=(h, n2)) * 3
  b = rng.normal(size=(h, n2)) + 1j * rng.normal(size=(h, n2))
  c = rng.normal(size=(h, n2)) + 1j * rng.normal(size=(h, n2))
  dt = np.array([1e-2, 5e-2, 2e-1])
  x0 = rng.normal(size=(2, h, n2)) + 1j * rng.normal(size=(2, h, n2))
  u = rng.normal(size=(2, length, h))
  abar = np.exp(dt[:, None] * a)
  bbar = (abar - 1) / a * b
  x, ys = x0.copy(), []
  for t in range(length):
    x = abar * x + bbar * u[:, t, :, None]
    ys.append(2 * np.sum(c * x, -1).real)
  with jax.enable_x64(True):
    system = recurrence.diag_ssm(*map(jnp.asarray, (a, b, c, dt)))
    y, state = recurrence.forward(system, jnp.asarray(u), jnp.asarray(x0))
  np.testing.assert_allclose(y, np.stack(ys, 1), rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(state, x, rtol=1e-9, atol=1e-9)


def test_dplr_step_matches_dense_bilinear_x64():
  from tests.ssm import reference

  rng = np.random.default_rng(2)
  lam, p, b, _ = ssm_init.hippo_legs_nplr(8, rank=2)
  p[1] = 0.2 * rng.normal(size=4)
  c = rng.normal(size=4) + 1j * rng.normal(size=4)
  dt = 0.07
  x0 = rng.normal(size=4) + 1j * rng.normal(size=4)
  abar, bbar = reference.dense_dplr(lam, p, b, dt)
  x_full = reference.full_basis(x0)
  with jax.enable_x64(True):
    system = recurrence.discretize_dplr(
      *(
        jnp.asarray(v)[None] if v.ndim == 1 else jnp.asarray(v)[:, None]
        for v in (lam, p, b, c)
      ),
      jnp.asarray([dt]),
    )
    state = jnp.asarray(x0)[None, None]
    for u_t in [0.3, -1.2, 0.0, 2.0]:
      y, state = recurrence.step(system, state, jnp.asarray([[u_t]]))
      x_full = abar @ x_full + bbar * u_t
      y_ref = (reference.full_basis(c) @ x_full).real
      np.testing.assert_allclose(y[0, 0], y_ref, rtol=1e-10)
      np.testing.assert_allclose(
        state[0, 0], x_full[:4], rtol=1e-10, atol=1e-12
      )
