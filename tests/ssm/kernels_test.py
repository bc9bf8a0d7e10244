"""Kernels against float64 dense references, identities and cost checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.ssm import init as ssm_init
from s4jax.ssm import kernels
from tests.ssm import reference

H, N = 3, 16


def _dplr_params(rank, seed=0, dt=None):
  rng = np.random.default_rng(seed)
  lam, p, b, _ = ssm_init.hippo_legs_nplr(N, rank)
  lam = np.tile(lam, (H, 1))
  p = np.tile(p[:, None], (1, H, 1))
  if rank > 1:  # Make the extra rank rows non-trivial.
    p[1:] = 0.3 * (
      rng.normal(size=p[1:].shape) + 1j * rng.normal(size=p[1:].shape)
    )
  b = np.tile(b, (H, 1))
  c = rng.normal(size=(H, N // 2)) + 1j * rng.normal(size=(H, N // 2))
  if dt is None:
    dt = np.array([1e-3, 1e-2, 1e-1])
  return lam, p, b, c, dt


def _as(dtype, *xs):
  return [jnp.asarray(x, dtype) for x in xs]


def _rel_err(got, want):
  return float(np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize('length', [1, 2, 257, 1024, 4096])
@pytest.mark.parametrize('rank', [1, 2])
def test_cauchy_kernel_matches_dense_powers_float32(length, rank):
  lam, p, b, c, dt = _dplr_params(rank)
  want = reference.dplr_kernel(lam, p, b, c, dt, length)
  got = kernels.cauchy_kernel(
    *_as(jnp.complex64, lam, p, b, c), jnp.asarray(dt, jnp.float32), length
  )
  assert got.shape == (H, length)
  err = _rel_err(got, want)
  assert err < 1e-4, f'max|dK|/max|K| = {err:.2e}, expected < 1e-4'


@pytest.mark.parametrize('length', [257, 1024])
def test_cauchy_kernel_from_c_tilde_matches_dense_powers(length):
  """With C~ from a dense float64 matrix power, the kernel skips the correction
  and still equals the plain-C reference."""
  lam, p, b, c, dt = _dplr_params(2)
  c_tilde = reference.dplr_c_tilde(lam, p, c, dt, length)
  want = reference.dplr_kernel(lam, p, b, c, dt, length)
  got = kernels.cauchy_kernel(
    *_as(jnp.complex64, lam, p, b, c_tilde),
    jnp.asarray(dt, jnp.float32),
    length,
    c_tilde=True,
  )
  err = _rel_err(got, want)
  assert err < 1e-4, f'max|dK|/max|K| = {err:.2e}, expected < 1e-4'


def test_c_tilde_and_its_inverse_match_dense_reference_x64():
  lam, p, _, c, dt = _dplr_params(2)
  want = reference.dplr_c_tilde(lam, p, c, dt, 1000)
  with jax.enable_x64(True):
    lam_j, p_j, c_j = _as(jnp.complex128, lam, p, c)
    got = kernels.dplr_c_tilde(lam_j, p_j, jnp.asarray(dt), c_j, 1000)
    back = kernels.dplr_c_from_tilde(
      lam_j, p_j, jnp.asarray(dt), jnp.asarray(want), 1000
    )
  err = _rel_err(got, want)
  assert err < 1e-10, f'C~: max|d|/max = {err:.2e}, expected < 1e-10'
  err = _rel_err(back, c)
  assert err < 1e-10, f'C from C~: max|d|/max = {err:.2e}, expected < 1e-10'


@pytest.mark.parametrize('length', [255, 1024])
def test_cauchy_kernel_matches_dense_powers_x64(length):
  lam, p, b, c, dt = _dplr_params(2)
  want = reference.dplr_kernel(lam, p, b, c, dt, length)
  with jax.enable_x64(True):
    got = kernels.cauchy_kernel(
      *_as(jnp.complex128, lam, p, b, c), jnp.asarray(dt), length
    )
    assert got.dtype == jnp.float64
  err = _rel_err(got, want)
  assert err < 1e-10, f'max|dK|/max|K| = {err:.2e}, expected < 1e-10'


def test_cauchy_kernel_keeps_leading_output_axes():
  lam, p, b, c, dt = _dplr_params(1)
  c2 = np.stack([c, np.conj(c) * 0.5])
  want = reference.dplr_kernel(lam, p, b, c2, dt, 100)
  got = kernels.cauchy_kernel(
    *_as(jnp.complex64, lam, p, b, c2), jnp.asarray(dt, jnp.float32), 100
  )
  assert got.shape == (2, H, 100)
  assert _rel_err(got, want) < 1e-4


@pytest.mark.parametrize('method', ['zoh', 'bilinear'])
@pytest.mark.parametrize('init', ssm_init.DIAGONAL_INITS)
@pytest.mark.parametrize('length', [1, 999, 4096])
def test_vandermonde_kernel_matches_powers(method, init, length):
  rng = np.random.default_rng(1)
  a, b = ssm_init.s4d_init(init, N // 2)
  a, b = np.tile(a, (H, 1)), np.tile(b, (H, 1))
  c = rng.normal(size=(H, N // 2)) + 1j * rng.normal(size=(H, N // 2))
  dt = np.array([1e-3, 1e-2, 1e-1])
  want = reference.diag_kernel(a, b, c, dt, length, method)
  got = kernels.vandermonde_kernel(
    *_as(jnp.complex64, a, b, c), jnp.asarray(dt, jnp.float32), length, method
  )
  err = _rel_err(got, want)
  assert err < 1e-4, f'{init}/{method}: max|dK|/max|K| = {err:.2e} >= 1e-4'
  with jax.enable_x64(True):
    got64 = kernels.vandermonde_kernel(
      *_as(jnp.complex128, a, b, c), jnp.asarray(dt), length, method
    )
  err64 = _rel_err(got64, want)
  assert err64 < 1e-10, f'x64: {err64:.2e} >= 1e-10'


def test_cauchy_with_zero_p_equals_bilinear_vandermonde():
  rng = np.random.default_rng(2)
  a, b = ssm_init.s4d_init('legs', N // 2)
  a, b = np.tile(a, (H, 1)), np.tile(b, (H, 1))
  c = rng.normal(size=(H, N // 2)) + 1j * rng.normal(size=(H, N // 2))
  dt = jnp.asarray([2e-3, 2e-2, 2e-1], jnp.float32)
  a, b, c = _as(jnp.complex64, a, b, c)
  k_dplr = kernels.cauchy_kernel(
    a, jnp.zeros((1, H, N // 2), a.dtype), b, c, dt, 600
  )
  k_diag = kernels.vandermonde_kernel(a, b, c, dt, 600, 'bilinear')
  err = _rel_err(k_dplr, np.asarray(k_diag))
  assert err < 1e-5, f'P=0 DPLR vs bilinear diagonal: {err:.2e}'


@pytest.mark.parametrize('length', [16, 17])
def test_fft_conv_matches_direct_convolution(length):
  rng = np.random.default_rng(3)
  u = rng.normal(size=(2, length, 4)).astype(np.float32)
  k = rng.normal(size=(4, length)).astype(np.float32)
  want = reference.causal_conv(u, k)
  got = kernels.fft_conv(jnp.asarray(u), jnp.asarray(k))
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_fft_conv_bidirectional_matches_direct_sum():
  rng = np.random.default_rng(4)
  length = 13
  u = rng.normal(size=(length, 3))
  k = rng.normal(size=(2, 3, length))
  want = (
    reference.causal_conv(u, k[0]) + reference.causal_conv(u[::-1], k[1])[::-1]
  )
  got = kernels.fft_conv(
    jnp.asarray(u, jnp.float32), jnp.asarray(k, jnp.float32)
  )
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_fft_conv_bidirectional_reversal_symmetry():
  rng = np.random.default_rng(5)
  u = jnp.asarray(rng.normal(size=(2, 50, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(2, 3, 50)), jnp.float32)
  y = kernels.fft_conv(u, k)
  y_rev = kernels.fft_conv(u[:, ::-1], k[::-1])
  np.testing.assert_allclose(y_rev[:, ::-1], y, atol=1e-5, rtol=1e-5)


def _lagged_products(w, u, length):
  """`sum_{b, t} w[b, t, h] u[b, t - j, h]` for `j < length`: (H, length)."""
  return np.stack(
    [
      np.einsum('bth,bth->h', w[:, j:], u[:, : u.shape[1] - j])
      for j in range(length)
    ],
    axis=-1,
  )


@pytest.mark.parametrize('length', [1, 2, 7, 64])
@pytest.mark.parametrize('bidirectional', [False, True])
def test_fft_conv_gradients_match_closed_form_correlations(
  length, bidirectional
):
  """d/du and d/dK of sum(w * conv(u, K)) are correlations with K and u."""
  rng = np.random.default_rng(11)
  u = rng.normal(size=(3, length, 4))
  w = rng.normal(size=(3, length, 4))
  k = rng.normal(size=((2,) if bidirectional else ()) + (4, length))
  rev = lambda x: x[:, ::-1]  # noqa: E731
  k_fwd = k[0] if bidirectional else k
  want_du = rev(reference.causal_conv(rev(w), k_fwd))
  want_dk = _lagged_products(w, u, length)
  if bidirectional:
    want_du = want_du + reference.causal_conv(w, k[1])
    want_dk = np.stack([want_dk, _lagged_products(u, w, length)])
  du, dk = jax.grad(
    lambda u, k: jnp.sum(kernels.fft_conv(u, k) * jnp.asarray(w, jnp.float32)),
    argnums=(0, 1),
  )(jnp.asarray(u, jnp.float32), jnp.asarray(k, jnp.float32))
  for name, got, want in (('du', du, want_du), ('dK', dk, want_dk)):
    err = float(np.max(np.abs(np.asarray(got) - want)))
    assert err < 1e-4 * max(1.0, np.max(np.abs(want))), (
      f'{name}: max abs error {err:.2e} against the direct correlation'
    )


def test_fft_conv_rejects_channel_mismatch():
  with pytest.raises(ValueError, match='channels'):
    kernels.fft_conv(jnp.zeros((1, 10, 4)), jnp.zeros((3, 10)))


def _loss(kernel_fn, args, weights):
  return jnp.sum(kernel_fn(*args) * weights)


def test_cauchy_kernel_gradient_matches_finite_differences_x64():
  lam, p, b, c, dt = _dplr_params(1, dt=np.array([3e-2, 5e-2, 1e-1]))
  length = 64
  rng = np.random.default_rng(6)
  with jax.enable_x64(True):
    w = jnp.asarray(rng.normal(size=(H, length)))
    lam_, p_, b_, c_ = _as(jnp.complex128, lam, p, b, c)

    def f(log_dt, lam_re, p_re):
      return _loss(
        lambda: kernels.cauchy_kernel(
          lam_re + 1j * lam_.imag,
          p_re + 1j * p_.imag,
          b_,
          c_,
          jnp.exp(log_dt),
          length,
        ),
        (),
        w,
      )

    args = (jnp.log(jnp.asarray(dt)), lam_.real, p_.real)
    grads = jax.jit(jax.grad(f, argnums=(0, 1, 2)))(*args)
    f = jax.jit(f)  # Compiled once for the 30 evaluations below.
    eps = 1e-6
    for i, (arg, grad) in enumerate(zip(args, grads, strict=True)):
      flat = np.asarray(arg).ravel()
      for j in range(0, flat.size, max(1, flat.size // 5)):
        e = np.zeros_like(flat)
        e[j] = eps
        plus = list(args)
        minus = list(args)
        plus[i] = jnp.asarray((flat + e).reshape(arg.shape))
        minus[i] = jnp.asarray((flat - e).reshape(arg.shape))
        fd = (f(*plus) - f(*minus)) / (2 * eps)
        g = np.asarray(grad).ravel()[j]
        assert abs(g - fd) <= 1e-6 * max(1.0, abs(fd)), (
          f'arg {i} index {j}: autodiff {g:.8e} vs finite difference {fd:.8e}'
        )


def test_cauchy_kernel_chunked_and_unchunked_agree_with_gradients():
  lam, p, b, c, dt = _dplr_params(2)
  args = _as(jnp.complex64, lam, p, b, c)
  dt = jnp.asarray(dt, jnp.float32)
  w = jnp.asarray(np.random.default_rng(7).normal(size=(H, 1000)), jnp.float32)

  def f(c_re, node_chunk):
    k = kernels.cauchy_kernel(
      args[0],
      args[1],
      args[2],
      c_re + 1j * args[3].imag,
      dt,
      1000,
      node_chunk=node_chunk,
    )
    return jnp.sum(k * w), k

  f = jax.jit(jax.value_and_grad(f, has_aux=True), static_argnums=1)
  (_, k_small), g_small = f(args[3].real, 37)
  (_, k_big), g_big = f(args[3].real, 100000)
  assert _rel_err(k_small, np.asarray(k_big)) < 1e-6
  assert _rel_err(g_small, np.asarray(g_big)) < 1e-3


def test_vandermonde_gradient_matches_materialised_x64():
  a, b = ssm_init.s4d_init('lin', N // 2)
  rng = np.random.default_rng(8)
  c = rng.normal(size=(H, N // 2)) + 1j * rng.normal(size=(H, N // 2))
  length = 300
  with jax.enable_x64(True):
    a_, b_, c_ = _as(jnp.complex128, np.tile(a, (H, 1)), np.tile(b, (H, 1)), c)
    w = jnp.asarray(rng.normal(size=(H, length)))

    def factored(log_dt, a_re):
      a2 = a_re + 1j * a_.imag
      k = kernels.vandermonde_kernel(a2, b_, c_, jnp.exp(log_dt), length)
      return jnp.sum(k * w)

    def materialised(log_dt, a_re):
      dta = jnp.exp(log_dt)[:, None] * (a_re + 1j * a_.imag)
      abar = jnp.exp(dta)
      bbar = jnp.expm1(dta) / (a_re + 1j * a_.imag) * b_
      powers = jnp.exp(dta[..., None] * jnp.arange(length))
      k = 2 * jnp.einsum('hn,hnl->hl', c_ * bbar, powers).real
      del abar
      return jnp.sum(k * w)

    args = (jnp.log(jnp.asarray([1e-3, 1e-2, 1e-1])), a_.real)
    g1 = jax.grad(factored, argnums=(0, 1))(*args)
    g2 = jax.grad(materialised, argnums=(0, 1))(*args)
  for x, y in zip(g1, g2, strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)


def test_kernels_do_not_retrace_for_same_shapes():
  lam, p, b, c, dt = _dplr_params(1)
  args = _as(jnp.complex64, lam, p, b, c)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def both(lam, p, b, c, dt):
    return kernels.cauchy_kernel(
      lam, p, b, c, dt, 128
    ) + kernels.vandermonde_kernel(lam, b, c, dt, 128)

  dt = jnp.asarray(dt, jnp.float32)
  both(*args, dt).block_until_ready()
  both(*[x * 1.01 for x in args], dt * 1.1).block_until_ready()
  chex.clear_trace_counter()


@pytest.mark.parametrize('family', ['cauchy', 'vandermonde'])
def test_no_h_n_l_intermediate_at_long_length(family):
  """Compiled temporary memory stays far below one (H, N2, L) complex tensor."""
  h, n2, length = 64, 32, 16000
  lam, p, b, _ = ssm_init.hippo_legs_nplr(2 * n2)
  args = dict(
    lam=jnp.tile(jnp.asarray(lam, jnp.complex64), (h, 1)),
    p=jnp.tile(jnp.asarray(p, jnp.complex64)[:, None], (1, h, 1)),
    b=jnp.tile(jnp.asarray(b, jnp.complex64), (h, 1)),
    c=jnp.ones((h, n2), jnp.complex64),
    dt=jnp.full((h,), 1e-2, jnp.float32),
  )

  def fwd_bwd(c_re):
    c = c_re + 0j
    if family == 'cauchy':
      k = kernels.cauchy_kernel(
        args['lam'], args['p'], args['b'], c, args['dt'], length
      )
    else:
      k = kernels.vandermonde_kernel(
        args['lam'], args['b'], c, args['dt'], length
      )
    return jnp.sum(k**2)

  compiled = jax.jit(jax.grad(fwd_bwd)).lower(jnp.ones((h, n2))).compile()
  stats = compiled.memory_analysis()
  one_hnl = h * n2 * length * 8  # bytes of one complex64 (H, N2, L) tensor
  assert stats.temp_size_in_bytes < one_hnl / 4, (
    f'temporary buffers {stats.temp_size_in_bytes / 2**20:.1f} MiB; an '
    f'(H, N2, L) tensor is {one_hnl / 2**20:.1f} MiB'
  )


@pytest.mark.parametrize('n', [1, 2, 7, 97, 7501, 31999, 32001])
def test_fast_fft_length_is_smallest_5_smooth_at_least_n(n):
  def smooth(m):
    for p in (2, 3, 5):
      while m % p == 0:
        m //= p
    return m == 1

  got = kernels.fast_fft_length(n)
  want = next(m for m in range(n, 4 * n + 2) if smooth(m))
  assert got == want, f'fast_fft_length({n}) = {got}, expected {want}'
