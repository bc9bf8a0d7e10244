"""Convolution kernels of diagonal (S4D) and DPLR (S4) state-space models.

Both kernels are pure functions of the continuous parameters and compose with
`jit`, `vmap` and `grad`. Neither materialises an `(H, N, L)` tensor:

* `vandermonde_kernel` splits positions `l = m c + j` so that
  `Abar^l = Abar^(m c) Abar^j`; the sum over states becomes one batched real
  matrix product of `(H, M, N)` by `(H, N, c)` with `M c >= L`, `c ~ sqrt(L)`.
* `cauchy_kernel` evaluates the truncated generating function at the `L/2+1`
  non-redundant `L`-th roots of unity (the Cauchy + Woodbury method of Gu et
  al., ICLR 2022, section 3.3 and state-spaces/s4 `SSMKernelDPLR`). On the
  unit circle the bilinear map `(2/dt)(1-z)/(1+z)` is purely imaginary, so each
  conjugate pair costs one real division; the nodes are processed in chunks
  under `jax.checkpoint`, and one inverse real FFT returns to the time domain.

Shapes: `H` channels, `N2` conjugate pairs (state size `N = 2 N2`), `R` rank of
the low-rank term, `L` kernel length. Complex inputs are complex64 (complex128
under x64).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from s4jax import portable_ops
from s4jax.ssm import discretize

__all__ = [
  'NODE_CHUNK',
  'cauchy_kernel',
  'dplr_c_from_tilde',
  'dplr_c_tilde',
  'fast_fft_length',
  'fft_conv',
  'vandermonde',
  'vandermonde_kernel',
  'vandermonde_transpose',
]

# Nodes per chunk of the Cauchy reduction; the live intermediate is about
# (H, NODE_CHUNK, N2) complex numbers.
NODE_CHUNK = 512


def _real_dtype(x: jnp.ndarray) -> jnp.dtype:
  return jnp.finfo(x.dtype).dtype


def _split(length: int) -> tuple[int, int]:
  """Factors positions `l = m * cols + j` with `rows * cols >= length`."""
  cols = math.isqrt(max(length - 1, 0)) + 1
  return -(-length // cols), cols


def vandermonde(
  coef: jnp.ndarray, log_abar: jnp.ndarray, length: int
) -> jnp.ndarray:
  """`2 Re sum_n coef[..., h, n] exp(l log_abar[h, n])` for `l < length`.

  Args:
    coef: complex `(..., H, N2)`.
    log_abar: complex `(H, N2)`.
    length: number of positions (static).

  Returns:
    Real `(..., H, length)`.
  """
  rows, cols = _split(length)
  rdt = _real_dtype(log_abar)
  j = jnp.arange(cols, dtype=rdt)
  m = jnp.arange(rows, dtype=rdt) * cols
  inner = jnp.exp(log_abar[..., None] * j)  # (H, N2, c)
  outer = coef[..., None] * jnp.exp(log_abar[..., None] * m)  # (..., H, N2, M)
  # Re(x y) = Re x Re y - Im x Im y as one real contraction over 2 N2 terms.
  lhs = jnp.concatenate([outer.real, -outer.imag], axis=-2)
  rhs = jnp.concatenate([inner.real, inner.imag], axis=-2)
  k = 2 * jnp.einsum('...hnm,hnj->...hmj', lhs, rhs)
  return k.reshape(*k.shape[:-2], rows * cols)[..., :length]


def vandermonde_transpose(u: jnp.ndarray, log_abar: jnp.ndarray) -> jnp.ndarray:
  """`sum_s u[..., h, s] exp(s log_abar[h, n])`, the transpose of `vandermonde`.

  Args:
    u: real `(..., H, T)`.
    log_abar: complex `(H, N2)`.

  Returns:
    Complex `(..., H, N2)`.
  """
  length = u.shape[-1]
  rows, cols = _split(length)
  rdt = _real_dtype(log_abar)
  u = jnp.pad(u, [(0, 0)] * (u.ndim - 1) + [(0, rows * cols - length)])
  u = u.reshape(*u.shape[:-1], rows, cols)
  inner = jnp.exp(log_abar[..., None] * jnp.arange(cols, dtype=rdt))
  part = jnp.einsum('...hmj,hnj->...hmn', u, inner.real) + 1j * jnp.einsum(
    '...hmj,hnj->...hmn', u, inner.imag
  )  # (..., H, M, N2)
  outer = jnp.exp(
    log_abar[..., None, :] * (jnp.arange(rows, dtype=rdt) * cols)[:, None]
  )
  return jnp.sum(part * outer, axis=-2)


def vandermonde_kernel(
  a: jnp.ndarray,
  b: jnp.ndarray,
  c: jnp.ndarray,
  dt: jnp.ndarray,
  length: int,
  discretization: str = 'zoh',
) -> jnp.ndarray:
  """Convolution kernel of a diagonal SSM over conjugate pairs.

  `K[..., h, l] = 2 Re sum_n C[..., h, n] Abar[h, n]^l Bbar[h, n]`.

  Args:
    a: complex `(H, N2)` diagonal state matrix (Re < 0 for stability).
    b: complex `(H, N2)` input vector.
    c: complex `(..., H, N2)` output vector(s); leading axes are kept (e.g. two
      directions of a bidirectional layer).
    dt: real `(H,)` step sizes.
    length: kernel length L (static).
    discretization: 'zoh' or 'bilinear'.

  Returns:
    Real `(..., H, L)` kernel.
  """
  log_abar = discretize.log_abar_diag(a, dt, discretization)
  _, bbar = discretize.discretize_diag(a, b, dt, discretization)
  return vandermonde(c * bbar, log_abar, int(length))


def _dplr_abar_matrix(
  lam: jnp.ndarray, p: jnp.ndarray, dt: jnp.ndarray
) -> jnp.ndarray:
  """`Abar` of the bilinear DPLR system as a real `(H, 2 N2, 2 N2)` matrix.

  The half-basis dynamics are real-linear (the low-rank term couples each pair
  to its conjugate), so `Abar` acts on `[Re x, Im x]` as a real matrix.

  Args:
    lam: complex `(H, N2)`.
    p: complex `(R, H, N2)`.
    dt: real `(H,)`.

  Returns:
    Real `(H, 2 N2, 2 N2)`; row index is the output coordinate.
  """
  n2 = lam.shape[-1]
  zeros = jnp.zeros_like(lam)
  ssm = discretize.discretize_dplr(lam, p, zeros, zeros, dt)
  eye = jnp.eye(2 * n2, dtype=_real_dtype(dt))
  basis = eye[:, :n2] + 1j * eye[:, n2:]  # (2 N2, N2) complex basis vectors.
  cols = jax.vmap(lambda x: discretize.dplr_transition(ssm, x), in_axes=0)(
    jnp.broadcast_to(basis[:, None, :], (2 * n2,) + lam.shape)
  )  # (2 N2, H, N2): column k of Abar for each channel.
  mat = jnp.concatenate([cols.real, cols.imag], axis=-1)  # (2N2, H, 2N2)
  return jnp.transpose(mat, (1, 2, 0))


def _c_to_row(c: jnp.ndarray) -> jnp.ndarray:
  """Functional `x -> 2 Re(c x)` as a real row vector `w . [Re x, Im x]`."""
  return 2 * jnp.concatenate([c.real, -c.imag], axis=-1)


def _row_to_c(w: jnp.ndarray) -> jnp.ndarray:
  n2 = w.shape[-1] // 2
  return (w[..., :n2] - 1j * w[..., n2:]) / 2


def _dplr_abar_power_apply(
  lam: jnp.ndarray,
  p: jnp.ndarray,
  dt: jnp.ndarray,
  c: jnp.ndarray,
  power: int,
) -> jnp.ndarray:
  """`C Abar^power` for the bilinear DPLR system, as half-basis row vectors.

  `Abar` is raised to `power` by repeated squaring of `_dplr_abar_matrix` and
  applied to the output functional `x -> 2 Re(C x)`.

  Args:
    lam: complex `(H, N2)`.
    p: complex `(R, H, N2)`.
    dt: real `(H,)`.
    c: complex `(..., H, N2)`.
    power: exponent (static).

  Returns:
    Complex `(..., H, N2)`.
  """
  mat = _dplr_abar_matrix(lam, p, dt)
  w_new = _c_to_row(c)
  # Binary powering: log2(power) squarings; the row vector is multiplied in
  # at each set bit, so no matrix-matrix product of partial results.
  while power:
    if power & 1:
      w_new = jnp.einsum('...hi,hij->...hj', w_new, mat)
    power >>= 1
    if power:
      mat = mat @ mat
  return _row_to_c(w_new)


def dplr_c_tilde(
  lam: jnp.ndarray,
  p: jnp.ndarray,
  dt: jnp.ndarray,
  c: jnp.ndarray,
  length: int,
) -> jnp.ndarray:
  """Truncation-corrected output vector `C~ = C (I - Abar^L)` (bilinear DPLR).

  With `C~` the length-`L` kernel is `cauchy_kernel(..., c_tilde=True)`; this
  is the parametrisation state-spaces/s4 learns (`SSMKernelDPLR`, "C is C~").

  Args:
    lam: complex `(H, N2)`.
    p: complex `(R, H, N2)`.
    dt: real `(H,)`.
    c: complex `(..., H, N2)` plain output vector(s).
    length: kernel length L (static).

  Returns:
    Complex `(..., H, N2)`.
  """
  return c - _dplr_abar_power_apply(lam, p, dt, c, int(length))


def dplr_c_from_tilde(
  lam: jnp.ndarray,
  p: jnp.ndarray,
  dt: jnp.ndarray,
  c_tilde: jnp.ndarray,
  length: int,
) -> jnp.ndarray:
  """Inverse of `dplr_c_tilde`: `C = C~ (I - Abar^L)^-1`.

  Forms `Abar^L` by repeated squaring and solves one `(2 N2, 2 N2)` system per
  channel; used to stream, or to change the kernel length, of a layer that
  learns `C~` at a fixed length.

  Args:
    lam: complex `(H, N2)`.
    p: complex `(R, H, N2)`.
    dt: real `(H,)`.
    c_tilde: complex `(..., H, N2)` corrected output vector(s).
    length: the length L that `c_tilde` was corrected for (static).

  Returns:
    Complex `(..., H, N2)`.
  """
  power = int(length)
  mat = _dplr_abar_matrix(lam, p, dt)
  acc = None
  while power:
    if power & 1:
      acc = mat if acc is None else acc @ mat
    power >>= 1
    if power:
      mat = mat @ mat
  eye = jnp.eye(mat.shape[-1], dtype=mat.dtype)
  # Row vectors: w~ = w (I - M), so (I - M)^T w^T = w~^T.
  lhs = jnp.swapaxes(eye - acc, -1, -2)
  rows = _c_to_row(c_tilde)
  lhs = jnp.broadcast_to(lhs, rows.shape[:-1] + lhs.shape[-2:])
  w = jnp.linalg.solve(lhs, rows[..., None])[..., 0]
  return _row_to_c(w)


def _numerators(
  lam: jnp.ndarray, p: jnp.ndarray, b: jnp.ndarray, c_tilde: jnp.ndarray
) -> jnp.ndarray:
  """Real weights `(H, N2, 2V)` of the Cauchy sums: `2 Re(v)`, `2 Re(v lam*)`.

  Order of the V numerators `v`: `C~ B` (O), `C~ P_r` (O x R), `P_r^* B` (R),
  `P_r^* P_s` (R x R), where O is the number of output vectors.
  """
  rank = p.shape[0]
  p_conj = p.conj()
  v = jnp.concatenate(
    [
      c_tilde * b,
      (c_tilde[:, None] * p[None]).reshape(-1, *lam.shape),
      p_conj * b,
      (p_conj[:, None] * p[None]).reshape(rank * rank, *lam.shape),
    ],
    axis=0,
  )  # (V, H, N2)
  w = 2 * jnp.concatenate([v.real, (v * lam.conj()).real], axis=0)
  return jnp.transpose(w, (1, 2, 0))


def _cauchy_chunk(
  y: jnp.ndarray, lam: jnp.ndarray, weights: jnp.ndarray
) -> jnp.ndarray:
  """Scaled conjugate-folded Cauchy sums at nodes on the imaginary axis.

  With `i y = (2/dt)(1 - z)/(1 + z)` (`y` real on the unit circle), each
  resolvent sum `sum_n v/(a - b lam) + conj(v)/(a - b conj(lam))`, with
  `a = (2/dt)(1 - z)` and `b = 1 + z`, equals `S^(v) / b` where

    S^(v) = sum_n (i y 2Re(v) - 2Re(v conj(lam))) / (|lam|^2 - y^2 - 2i Re(lam) y).

  All per-(node, state) work is real: one division per term. `|lam|^2` is
  formed from the real and imaginary parts (a complex `abs` would be fused
  into, and recomputed by, every element of the `(H, K, N2)` loop), and the
  sums come out node-major, `(H, K, .)`, which XLA's batched matmul writes
  without a transpose.

  Args:
    y: real `(H, K)`.
    lam: complex `(H, N2)`.
    weights: real `(H, N2, 2V)` from `_numerators`.

  Returns:
    Complex `(H, K, V)`.
  """
  lam_re, lam_im = lam.real, lam.imag
  mag2 = (lam_re * lam_re + lam_im * lam_im)[:, None, :]
  t1 = mag2 - jnp.square(y)[:, :, None]  # (H, K, N2)
  t2 = -2 * lam_re[:, None, :] * y[:, :, None]
  den = t1 * t1 + t2 * t2
  sr = jnp.einsum('hkn,hnw->hkw', t1 / den, weights)  # sums of w q_re
  si = jnp.einsum('hkn,hnw->hkw', -t2 / den, weights)  # sums of w q_im
  n_v = weights.shape[-1] // 2
  a_re, b_re = sr[..., :n_v], sr[..., n_v:]
  a_im, b_im = si[..., :n_v], si[..., n_v:]
  y = y[..., None]
  return (-b_re - y * a_im) + 1j * (y * a_re - b_im)


def _woodbury(s: jnp.ndarray, rank: int, n_out: int) -> jnp.ndarray:
  """`S_cb - S_cp (I + S_pp)^-1 S_pb` on scaled sums `s` `(H, K, V)` -> (H, K, O)."""
  lead = s.shape[:-1]
  s_cb = s[..., :n_out]
  s_cp = s[..., n_out : n_out * (1 + rank)].reshape(*lead, n_out, rank)
  off = n_out * (1 + rank)
  s_pb = s[..., off : off + rank]
  s_pp = s[..., off + rank :].reshape(*lead, rank, rank)
  if rank == 1:
    return s_cb - s_cp[..., 0] * (s_pb / (1.0 + s_pp[..., 0]))
  eye = jnp.eye(rank, dtype=s.dtype)
  sol = jnp.linalg.solve(eye + s_pp, s_pb[..., None])[..., 0]  # (H, K, R)
  return s_cb - jnp.einsum('...or,...r->...o', s_cp, sol)


def _node_chunks(n_nodes: int, node_chunk: int) -> tuple[int, int]:
  """(number of chunks, nodes per chunk), balanced so padding is < 1 chunk."""
  n_chunks = -(-n_nodes // max(int(node_chunk), 1))
  return n_chunks, -(-n_nodes // n_chunks)


def cauchy_kernel(
  lam: jnp.ndarray,
  p: jnp.ndarray,
  b: jnp.ndarray,
  c: jnp.ndarray,
  dt: jnp.ndarray,
  length: int,
  node_chunk: int = NODE_CHUNK,
  *,
  c_tilde: bool = False,
) -> jnp.ndarray:
  """Convolution kernel of a DPLR SSM (S4), bilinear discretisation.

  The continuous system is `A = diag(Lambda) - sum_r P_r P_r^*` over conjugate
  pairs; the kernel is `K[..., h, l] = 2 Re C Abar^l Bbar`. The function applies
  the truncation correction `C~ = C (I - Abar^L)` itself (unless `c_tilde`)
  and evaluates

    sum_l K[l] z^l = C~ (I - Abar z)^-1 Bbar = 2 C~ [(2/dt)(1-z) - (1+z) A]^-1 B

  at `z_k = exp(-2 pi i k / L)`, `k = 0..L/2`, then inverts with `irfft`. On the
  unit circle `(2/dt)(1-z)/(1+z) = i y` with real `y = -(2/dt) tan(pi k / L)`,
  so by Woodbury `k(z) = (2/(1+z)) [S_cb - S_cp (I + S_pp)^-1 S_pb]` with the
  real-arithmetic sums of `_cauchy_chunk`. The node `z = -1` (even L) is
  evaluated in closed form, `k(-1) = dt sum_n Re(C~_n B_n)`.

  Args:
    lam: complex `(H, N2)` diagonal part (Re < 0).
    p: complex `(R, H, N2)` low-rank factors, R >= 1.
    b: complex `(H, N2)` input vector.
    c: complex `(..., H, N2)` output vector(s).
    dt: real `(H,)` step sizes.
    length: kernel length L (static).
    node_chunk: nodes per checkpointed chunk (static).
    c_tilde: `c` already is `C~ = C (I - Abar^L)` for this `L` (see
      `dplr_c_tilde`), as when a layer learns `C~` directly; the correction,
      `log2 L` products of `(H, 2 N2, 2 N2)` matrices, is then skipped.

  Returns:
    Real `(..., H, L)` kernel.
  """
  length = int(length)
  if p.ndim != 3 or p.shape[1:] != lam.shape:
    raise ValueError(
      f'P must have shape (R, H, N2) = (R, {lam.shape[0]}, {lam.shape[1]}), '
      f'got {p.shape}.'
    )
  h = lam.shape[0]
  lead = c.shape[:-2]
  c_flat = c.reshape(-1, *lam.shape)
  n_out = c_flat.shape[0]
  if not c_tilde:
    c_flat = dplr_c_tilde(lam, p, dt, c_flat, length)
  weights = _numerators(lam, p, b, c_flat)

  n_nodes = length // 2 + 1
  n_chunks, chunk = _node_chunks(n_nodes, node_chunk)
  rdt = _real_dtype(dt)
  half_theta = -jnp.pi * jnp.arange(n_chunks * chunk, dtype=rdt) / length
  nyquist = jnp.arange(n_chunks * chunk) * 2 == length
  # tan is evaluated away from the Nyquist node, which is replaced below.
  y = -(2.0 / dt)[:, None] * jnp.tan(jnp.where(nyquist, 0.0, half_theta))

  def chunk_fn(y_chunk):
    return _woodbury(_cauchy_chunk(y_chunk, lam, weights), p.shape[0], n_out)

  if n_chunks == 1:
    k_hat = chunk_fn(y)  # (H, K, O)
  else:
    y_chunks = jnp.moveaxis(y.reshape(h, n_chunks, chunk), 1, 0)
    k_hat = jax.lax.map(jax.checkpoint(chunk_fn), y_chunks)  # (C, H, K/C, O)
    k_hat = jnp.moveaxis(k_hat, 0, 1).reshape(h, n_chunks * chunk, n_out)
  k_hat = jnp.moveaxis(k_hat[:, :n_nodes], -1, 0)  # (O, H, L/2 + 1)
  # 2 / (1 + z) = exp(-i theta/2) / cos(theta/2).
  half_theta = half_theta[:n_nodes]
  nyquist = nyquist[:n_nodes]
  scale = jnp.exp(-1j * half_theta) / jnp.cos(
    jnp.where(nyquist, 0.0, half_theta)
  )
  k_hat = k_hat * scale
  if length % 2 == 0:
    # weights[..., :n_out] holds 2 Re(C~_n B_n) for each output vector.
    at_nyquist = dt / 2 * jnp.sum(weights[..., :n_out], axis=-2).T  # (O, H)
    k_hat = k_hat.at[..., length // 2].set(at_nyquist.astype(k_hat.dtype))
  k = jnp.fft.irfft(k_hat, n=length, axis=-1)
  return k.reshape(*lead, h, length)


def fast_fft_length(n: int) -> int:
  """Smallest `2^a 3^b 5^c >= n`: FFT sizes the CPU/GPU FFT libraries like."""
  best = 1 << max(n - 1, 0).bit_length()
  p5 = 1
  while p5 < best:
    p35 = p5
    while p35 < best:
      m = p35
      while m < n:
        m *= 2
      best = min(best, m)
      p35 *= 3
    p5 *= 5
  return best


def _direct_conv(u: jnp.ndarray, k: jnp.ndarray) -> jnp.ndarray:
  """`fft_conv` as one depthwise direct convolution (the portable form).

  Causal: the taps `K[L-1] .. K[0]` with `L - 1` zeros of left padding.
  Bidirectional: one kernel over lags `-(L-1) .. L-1`, `K0` at lags >= 0 and
  `K1[j]` at lag `-j`, both lag-0 taps summed, with `L - 1` zeros on both
  sides. `lax.conv_general_dilated` correlates, so the taps are listed
  from the largest lag down.

  Args:
    u: real `(..., L, H)` input.
    k: real `(H, L)` or `(2, H, L)` kernel of the input's length.

  Returns:
    Real `(..., L, H)`, dtype of `u`.
  """
  length, h = u.shape[-2:]
  dtype = jnp.promote_types(u.dtype, k.dtype)
  k = k.astype(dtype)
  if k.ndim == 3:
    fwd, bwd = k[0], k[1]
    taps = jnp.concatenate(
      [jnp.flip(fwd[:, 1:], -1), fwd[:, :1] + bwd[:, :1], bwd[:, 1:]], -1
    )  # (H, 2L - 1): lags L-1 .. -(L-1).
    padding = [(length - 1, length - 1)]
  else:
    taps = jnp.flip(k, -1)  # (H, L): lags L-1 .. 0.
    padding = [(length - 1, 0)]
  lead = u.shape[:-2]
  batch = math.prod(lead) if lead else 1
  y = jax.lax.conv_general_dilated(
    u.astype(dtype).reshape(batch, length, h),
    taps.T[:, None, :],  # (W, 1, H): one input channel per group.
    window_strides=(1,),
    padding=padding,
    dimension_numbers=('NWC', 'WIO', 'NWC'),
    feature_group_count=h,
    precision=jax.lax.Precision.HIGHEST,
  )
  return y.reshape(*lead, length, h).astype(u.dtype)


def fft_conv(u: jnp.ndarray, k: jnp.ndarray) -> jnp.ndarray:
  """Causal or bidirectional convolution by FFT, channels last.

  Causal (`k` of shape `(H, L)`): `y[t] = sum_{s<=t} K[t-s] u[s]`.
  Bidirectional (`k` of shape `(2, H, L)`, forward then backward):
  `y[t] = sum_{s<=t} K0[t-s] u[s] + sum_{s>=t} K1[s-t] u[s]`, so reversing the
  input in time and swapping the kernels reverses the output.

  Args:
    u: real `(..., L, H)` input.
    k: real `(H, Lk)` or `(2, H, Lk)` kernel; it is truncated or zero-padded to
      the input length L.

  Returns:
    Real `(..., L, H)` output, dtype of `u`.

  Inside `s4jax.portable_ops.portable_ops()` the same result comes from one
  depthwise direct convolution (`O(L^2 H)` work, no FFT or complex dtype),
  the form that exports to ONNX and LiteRT.
  """
  length = u.shape[-2]
  if k.ndim not in (2, 3) or (k.ndim == 3 and k.shape[0] != 2):
    raise ValueError(f'Kernel must be (H, L) or (2, H, L), got {k.shape}.')
  if k.shape[-2] != u.shape[-1]:
    raise ValueError(
      f'Kernel has {k.shape[-2]} channels but the input has {u.shape[-1]} '
      '(inputs are channels-last: (..., L, H)).'
    )
  k = k[..., :length]
  k = jnp.pad(k, [(0, 0)] * (k.ndim - 1) + [(0, length - k.shape[-1])])
  if portable_ops.enabled():
    return _direct_conv(u, k)
  n_fft = fast_fft_length(2 * length - 1)
  if k.ndim == 3:
    fwd, bwd = k[0], k[1]
    # Backward taps at negative lags -j, i.e. circular positions n_fft - j.
    back = jnp.concatenate(
      [
        bwd[:, :1],
        jnp.zeros((bwd.shape[0], n_fft - length), bwd.dtype),
        jnp.flip(bwd[:, 1:], axis=-1),
      ],
      axis=-1,
    )
    k_full = jnp.pad(fwd, ((0, 0), (0, n_fft - length))) + back
  else:
    k_full = jnp.pad(k, ((0, 0), (0, n_fft - length)))
  k_f = jnp.fft.rfft(k_full, n=n_fft, axis=-1)  # (H, n_fft // 2 + 1)
  u_f = jnp.fft.rfft(jnp.swapaxes(u, -1, -2), n=n_fft, axis=-1)  # (..., H, .)
  y = jnp.fft.irfft(u_f * k_f, n=n_fft, axis=-1)[..., :length]
  return jnp.swapaxes(y, -1, -2).astype(u.dtype)
