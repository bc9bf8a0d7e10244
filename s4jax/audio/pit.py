"""Permutation-invariant training (PIT) losses in JAX.

Follows the `pw_mtx` path of asteroid's / TDANet's `PITLossWrapper`
(`JusperLee/TDANet:look2hear/losses/pit_wrapper.py`):

1. a pairwise loss matrix `pw[b, i, j] = loss(estimate i, target j)`;
2. the permutation minimising the mean of the matched entries, found on
   device in pure JAX: by exhaustive search over all `S!` permutations for
   `S <= MAX_EXHAUSTIVE_SOURCES` sources, and by the Hungarian algorithm
   (`linear_sum_assignment`, exact, O(S^3)) above;
3. optional `threshold_byloss`: examples whose best loss is at or below
   `threshold_db` (e.g. -30, i.e. separated to better than 30 dB SNR) are
   dropped from the batch mean, as in TDANet / SpeechBrain.

The permutation is chosen on the stop-gradient loss matrix and has no
gradient; the loss is then gathered from the matrix, so its gradient is
exact. Both searches are traced JAX (`lax` loops over a static `S` for the
Hungarian one), with no host callback: they work under `jit`, `vmap` and
`grad` and compile for any backend, TPU included.

Non-finite losses: a permutation with fewer NaN or +inf entries minus -inf
entries is always preferred; among those, the least mean of the finite
entries wins. This is the order scipy's `linear_sum_assignment` gives on
`np.nan_to_num(pw, nan=1e30, posinf=1e30, neginf=-1e30)` (the old host
path) while the finite sums stay far below 1e30. The loss itself is not
changed: a NaN entry that cannot be avoided makes the loss NaN.

Permutation convention: `perm[b, j]` is the index of the estimate assigned to
target `j`, so `reorder(estimates, perm)[b, j]` lines up with
`targets[b, j]`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from s4jax.audio import losses

__all__ = [
  'MAX_EXHAUSTIVE_SOURCES',
  'PAIR_FNS',
  'PairFn',
  'best_perm_exhaustive',
  'best_perm_hungarian',
  'find_best_perm',
  'linear_sum_assignment',
  'matched_loss',
  'pairwise_neg_si_sdr',
  'pairwise_neg_si_snr',
  'pairwise_neg_snr',
  'permutations',
  'pit_loss',
  'reorder',
  'threshold_mean',
]

PairFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]

# Largest source count searched exhaustively (S! permutations) by 'auto'.
# Jitted on CPU, the exhaustive search is faster up to S = 4 and the
# Hungarian solver from S = 6; at S = 5 it depends on the batch size.
MAX_EXHAUSTIVE_SOURCES = 4


def _pairwise(fn: PairFn, estimates: jnp.ndarray, targets: jnp.ndarray):
  """`fn` on every (estimate i, target j) pair: `(B, S, T)` x2 -> `(B, S, S)`."""
  _check_shapes(estimates, targets)
  return fn(estimates[:, :, None, :], targets[:, None, :, :])


def pairwise_neg_snr(
  estimates: jnp.ndarray,
  targets: jnp.ndarray,
  eps: float = losses.EPS,
  zero_mean: bool = True,
) -> jnp.ndarray:
  """Pairwise negative SNR (TDANet's `pairwise_neg_snr`, zero-mean).

  Args:
    estimates: real `(B, S, T)`.
    targets: real `(B, S, T)`.
    eps: regulariser (1e-8).
    zero_mean: remove each signal's mean first (TDANet default).

  Returns:
    Real `(B, S, S)`, entry `[b, i, j]` for estimate `i` against target `j`.
  """
  return _pairwise(
    lambda e, t: losses.neg_snr(e, t, eps, zero_mean), estimates, targets
  )


def pairwise_neg_si_snr(
  estimates: jnp.ndarray, targets: jnp.ndarray, eps: float = losses.EPS
) -> jnp.ndarray:
  """Pairwise negative SI-SNR (N-DNS definition, `losses.si_snr`).

  Args:
    estimates: real `(B, S, T)`.
    targets: real `(B, S, T)`.
    eps: regulariser (1e-8).

  Returns:
    Real `(B, S, S)`, entry `[b, i, j]` for estimate `i` against target `j`.
  """
  return _pairwise(
    lambda e, t: losses.neg_si_snr(e, t, eps), estimates, targets
  )


def pairwise_neg_si_sdr(
  estimates: jnp.ndarray,
  targets: jnp.ndarray,
  eps: float = losses.EPS,
  zero_mean: bool = True,
) -> jnp.ndarray:
  """Pairwise negative SI-SDR (asteroid/TDANet `pairwise_neg_sisdr`).

  Args:
    estimates: real `(B, S, T)`.
    targets: real `(B, S, T)`.
    eps: regulariser (1e-8).
    zero_mean: remove each signal's mean first.

  Returns:
    Real `(B, S, S)`, entry `[b, i, j]` for estimate `i` against target `j`.
  """
  return _pairwise(
    lambda e, t: losses.neg_si_sdr(e, t, eps, zero_mean), estimates, targets
  )


PAIR_FNS: dict[str, Callable[..., jnp.ndarray]] = {
  'neg_snr': pairwise_neg_snr,
  'neg_si_snr': pairwise_neg_si_snr,
  'neg_si_sdr': pairwise_neg_si_sdr,
}


def _check_shapes(estimates: jnp.ndarray, targets: jnp.ndarray) -> None:
  if estimates.ndim != 3 or estimates.shape != targets.shape:
    raise ValueError(
      'PIT expects estimates and targets of the same shape (B, S, T); got '
      f'{estimates.shape} and {targets.shape}.'
    )


def permutations(num_sources: int) -> np.ndarray:
  """All permutations of `range(num_sources)`, int32 `(S!, S)`."""
  return np.array(
    list(itertools.permutations(range(num_sources))), dtype=np.int32
  ).reshape(-1, num_sources)


def matched_loss(pw: jnp.ndarray, perm: jnp.ndarray) -> jnp.ndarray:
  """Mean over targets of `pw[b, perm[b, j], j]`.

  Args:
    pw: real `(B, S, S)` pairwise losses (estimate, target).
    perm: int `(B, S)`, estimate index for each target.

  Returns:
    Real `(B,)`.
  """
  picked = jnp.take_along_axis(pw, perm[:, None, :], axis=1)[:, 0, :]
  return jnp.mean(picked, axis=-1)


def _bad_count(pw: jnp.ndarray) -> jnp.ndarray:
  """+1 for a NaN or +inf entry, -1 for -inf, 0 for a finite one."""
  return jnp.where(
    jnp.isfinite(pw), 0, jnp.where(pw == -jnp.inf, -1, 1)
  ).astype(jnp.int32)


def best_perm_exhaustive(pw: jnp.ndarray) -> jnp.ndarray:
  """Best permutation by trying all `S!` of them (pure JAX).

  Non-finite entries follow the order of `linear_sum_assignment`: fewest
  (NaN or +inf) minus (-inf) entries first, then the least mean of the
  finite ones. Ties go to the first permutation in `itertools` order.

  Args:
    pw: real `(B, S, S)` pairwise losses (estimate, target).

  Returns:
    int32 `(B, S)`: estimate index for each target.
  """
  pw = jax.lax.stop_gradient(pw)
  num_sources = pw.shape[-1]
  perms = jnp.asarray(permutations(num_sources))  # (P, S)
  cols = jnp.arange(num_sources)
  bad = jnp.sum(_bad_count(pw)[:, perms, cols], axis=-1)  # (B, P)
  finite = jnp.where(jnp.isfinite(pw), pw, 0)
  # Scaled into [-1, 1] per example, so that the mean of entries near the
  # float limit cannot overflow (the order of the means is unchanged).
  finite = _unit_scaled(finite, axis=(-2, -1))
  finite_mean = jnp.mean(finite[:, perms, cols], axis=-1)  # (B, P)
  fewest_bad = bad == jnp.min(bad, axis=-1, keepdims=True)
  loss_set = jnp.where(fewest_bad, finite_mean, jnp.inf)
  return perms[jnp.argmin(loss_set, axis=-1)]


def _unit_scaled(x: jnp.ndarray, axis) -> jnp.ndarray:
  """`x / 2**e` with `2**e` the power of two above `max |x|` over `axis`.

  Exact (a power of two), and done as two multiplications by normal
  powers of two: XLA turns a division by a scalar into a multiplication by
  its reciprocal, which for a maximum near the float limit is subnormal and
  flushed to zero.
  """
  _, e = jnp.frexp(jnp.max(jnp.abs(x), axis=axis, keepdims=True))
  half = e // 2
  one = jnp.ones((), x.dtype)
  return x * jnp.ldexp(one, -half) * jnp.ldexp(one, half - e)


def _finite_cost(cost: jnp.ndarray) -> jnp.ndarray:
  """`(S, S)` cost with finite entries in [-1, 1] and non-finite ones at ±big.

  Dividing by a power of two above the largest finite magnitude
  (`_unit_scaled`) does not change the best
  assignment. NaN and +inf become `big = 2 S + 1` and -inf becomes `-big`;
  as any `S` entries in [-1, 1] sum to within `2 S < big` of each other, an
  assignment with fewer (NaN or +inf) minus (-inf) entries always costs less,
  and among equal counts the finite entries decide. This is the order that
  scipy's `linear_sum_assignment` gives with non-finite entries mapped to
  ±1e30 (`np.nan_to_num(cost, nan=1e30, posinf=1e30, neginf=-1e30)`) while
  the finite sums stay far below 1e30, without the loss of precision that
  1e30 would cause here.
  """
  num = cost.shape[-1]
  finite = jnp.isfinite(cost)
  scaled = _unit_scaled(jnp.where(finite, cost, 0), axis=None)
  big = 2.0 * num + 1.0
  return jnp.where(
    finite, scaled, jnp.where(cost == -jnp.inf, -big, big)
  ).astype(cost.dtype)


def _row_for_each_column(cost: jnp.ndarray) -> jnp.ndarray:
  """Minimum-cost assignment of a square `(S, S)` cost: row per column.

  The Hungarian (Kuhn-Munkres) algorithm with row and column potentials in
  its O(S^3) shortest-augmenting-path form: rows are added one at a time,
  each by a Dijkstra-like search over the reduced costs
  `c[i, j] - u[i] - v[j]`, which stay non-negative on every edge and zero on
  the matching. Sources: H. W. Kuhn, "The Hungarian method for the
  assignment problem", Naval Research Logistics Quarterly 2 (1955); J.
  Munkres, "Algorithms for the assignment and transportation problems",
  J. SIAM 5 (1957); R. Jonker and A. Volgenant, "A shortest augmenting path
  algorithm for dense and sparse linear assignment problems", Computing 38
  (1987). The layout (1-based indices, a dummy column 0 holding the row being
  added, `minv` / `way` arrays) is the textbook one of cp-algorithms.com,
  "Hungarian algorithm for solving the assignment problem"; here each scan
  over the columns is one vector operation and the loops are `lax` loops
  over the static `S`.

  Args:
    cost: finite real `(S, S)`.

  Returns:
    int32 `(S,)`: the row assigned to each column.
  """
  num = cost.shape[-1]
  dtype = cost.dtype
  c = jnp.pad(cost, ((1, 0), (1, 0)))
  inf = jnp.asarray(jnp.inf, dtype)
  zero = jnp.zeros((), dtype)

  def add_row(row, state):
    u, v, match, way = state
    # match[j]: row matched to column j (0: none); the search starts from
    # the dummy column 0, which holds the new row.
    match = match.at[0].set(row)
    minv = jnp.full((num + 1,), inf)  # Least reduced cost into each column.
    used = jnp.zeros((num + 1,), bool)  # Columns in the search tree.

    def search_cond(s):
      _, _, match, _, _, _, col = s
      return match[col] != 0  # Stop at a free column.

    def search_body(s):
      u, v, match, way, minv, used, col = s
      used = used.at[col].set(True)
      i0 = match[col]
      reduced = c[i0] - u[i0] - v
      better = ~used & (reduced < minv)
      minv = jnp.where(better, reduced, minv)
      way = jnp.where(better, col, way)
      free_minv = jnp.where(used, inf, minv)
      nxt = jnp.argmin(free_minv)
      delta = free_minv[nxt]
      # Rows and columns in the tree move by delta (rows of distinct used
      # columns are distinct; unused ones add 0 to the dummy row).
      u = u.at[match].add(jnp.where(used, delta, zero))
      v = jnp.where(used, v - delta, v)
      minv = jnp.where(used, minv, minv - delta)
      return u, v, match, way, minv, used, nxt

    u, v, match, way, _, _, col = jax.lax.while_loop(
      search_cond,
      search_body,
      (u, v, match, way, minv, used, jnp.zeros((), jnp.int32)),
    )

    # Flip the alternating path back from the free column to column 0.
    def flip_body(s):
      match, col = s
      prev = way[col]
      return match.at[col].set(match[prev]), prev

    match, _ = jax.lax.while_loop(lambda s: s[1] != 0, flip_body, (match, col))
    return u, v, match, way

  state = (
    jnp.zeros((num + 1,), dtype),
    jnp.zeros((num + 1,), dtype),
    jnp.zeros((num + 1,), jnp.int32),
    jnp.zeros((num + 1,), jnp.int32),
  )
  _, _, match, _ = jax.lax.fori_loop(1, num + 1, add_row, state)
  return match[1:] - 1


def _solve(cost: jnp.ndarray) -> jnp.ndarray:
  """Row per column of the best assignment of any `(..., S, S)`."""
  if cost.ndim < 2 or cost.shape[-1] != cost.shape[-2]:
    raise ValueError(f'Expected square (..., S, S) costs, got {cost.shape}.')
  dtype = jnp.promote_types(cost.dtype, jnp.float32)
  cost = jax.lax.stop_gradient(cost).astype(dtype)
  if cost.shape[-1] == 0:
    return jnp.zeros(cost.shape[:-1], jnp.int32)
  flat = cost.reshape(-1, *cost.shape[-2:])
  rows = jax.vmap(lambda m: _row_for_each_column(_finite_cost(m)))(flat)
  return rows.reshape(cost.shape[:-1])


def linear_sum_assignment(cost: jnp.ndarray) -> jnp.ndarray:
  """Minimum-cost assignment on device, like scipy's `linear_sum_assignment`.

  Exact (Hungarian algorithm, O(S^3) per matrix, no host callback); works
  under `jit`, `vmap` and inside differentiated functions (the assignment
  itself has no gradient). Non-finite entries: the assignment with the
  fewest (NaN or +inf) minus (-inf) entries wins, then the least sum of the
  finite ones, as scipy's on `np.nan_to_num(cost, nan=1e30, posinf=1e30,
  neginf=-1e30)` (which rejects NaN itself).

  Args:
    cost: real `(..., S, S)`, entry `[..., r, c]` the cost of row `r` taking
      column `c`.

  Returns:
    int32 `(..., S)`: the column of each row, scipy's `col_ind` (its
    `row_ind` is `arange(S)`). Among equal-cost assignments it may pick a
    different one than scipy.
  """
  rows = _solve(cost)
  num = cost.shape[-1]
  cols = jnp.broadcast_to(jnp.arange(num, dtype=jnp.int32), rows.shape)
  # Invert: the column of row rows[..., c] is c.
  return jnp.put_along_axis(
    jnp.zeros_like(rows), rows, cols, axis=-1, inplace=False
  )


def best_perm_hungarian(pw: jnp.ndarray) -> jnp.ndarray:
  """Best permutation by the Hungarian algorithm, on device (pure JAX).

  Args:
    pw: real `(B, S, S)` pairwise losses (estimate, target).

  Returns:
    int32 `(B, S)`: estimate index for each target. No gradient flows
    through the assignment.
  """
  # Rows are estimates and columns targets: the row of each column is the
  # estimate of each target.
  return _solve(pw)


def find_best_perm(pw: jnp.ndarray, method: str = 'auto') -> jnp.ndarray:
  """Best permutation of `pw` `(B, S, S)`; see `pit_loss` for `method`."""
  if method == 'auto':
    method = (
      'exhaustive' if pw.shape[-1] <= MAX_EXHAUSTIVE_SOURCES else 'hungarian'
    )
  if method == 'exhaustive':
    return best_perm_exhaustive(pw)
  if method == 'hungarian':
    return best_perm_hungarian(pw)
  raise ValueError(
    f"Unknown PIT method {method!r}; use 'auto', 'exhaustive' or 'hungarian'."
  )


def reorder(sources: jnp.ndarray, perm: jnp.ndarray) -> jnp.ndarray:
  """Reorders sources by a permutation from `pit_loss`.

  Args:
    sources: `(B, S, ...)`, e.g. the estimates `(B, S, T)`.
    perm: int `(B, S)`, source index for each output slot.

  Returns:
    `(B, S, ...)` with `out[b, j] = sources[b, perm[b, j]]`.
  """
  idx = perm.reshape(perm.shape + (1,) * (sources.ndim - 2))
  return jnp.take_along_axis(sources, idx, axis=1)


def threshold_mean(
  per_example: jnp.ndarray,
  threshold_db: float | None,
  all_dropped: str = 'zero',
) -> jnp.ndarray:
  """Batch mean that drops examples with loss `<= threshold_db`.

  TDANet's `threshold_byloss` keeps `loss > -30`. When every example is
  dropped, TDANet falls back to the plain mean (`all_dropped='mean'`);
  SpeechBrain skips the update, for which `all_dropped='zero'` returns a loss
  of 0 with zero (finite) gradients. Note that with Adam-style optimisers a
  zero gradient still moves parameters through the moments; skip the update
  in the training step if that matters.

  Args:
    per_example: real `(B,)` losses.
    threshold_db: drop level, or None to keep every example.
    all_dropped: 'zero' or 'mean' (see above).

  Returns:
    Real scalar.
  """
  if threshold_db is None:
    return jnp.mean(per_example)
  if all_dropped not in ('zero', 'mean'):
    raise ValueError(
      f"all_dropped must be 'zero' or 'mean', got {all_dropped!r}."
    )
  keep = per_example > threshold_db
  count = jnp.sum(keep)
  kept_mean = jnp.sum(jnp.where(keep, per_example, 0.0)) / jnp.maximum(count, 1)
  fallback = (
    jnp.mean(per_example)
    if all_dropped == 'mean'
    else jnp.zeros((), per_example.dtype)
  )
  return jnp.where(count > 0, kept_mean, fallback)


def pit_loss(
  estimates: jnp.ndarray,
  targets: jnp.ndarray,
  pair_fn: str | Callable[..., jnp.ndarray] = 'neg_snr',
  threshold_db: float | None = None,
  method: str = 'auto',
  all_dropped: str = 'zero',
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Permutation-invariant loss.

  Args:
    estimates: real `(B, S, T)`.
    targets: real `(B, S, T)`.
    pair_fn: 'neg_snr' (TDANet/S4M training loss, zero-mean), 'neg_si_snr'
      (N-DNS SI-SNR), 'neg_si_sdr' (TDANet validation), or a callable
      `(estimates, targets) -> (B, S, S)` loss matrix.
    threshold_db: if set (TDANet uses -30), examples whose best loss is
      `<= threshold_db` are left out of the batch mean.
    method: 'auto' (exhaustive for `S <= MAX_EXHAUSTIVE_SOURCES`,
      Hungarian above), 'exhaustive' or 'hungarian' (both on device).
    all_dropped: what an all-dropped batch returns ('zero' or 'mean'; see
      `threshold_mean`).

  Returns:
    `(loss, best_perm)`: real scalar mean over kept examples of the mean
    matched pair loss, and int32 `(B, S)` estimate index for each target.
  """
  if isinstance(pair_fn, str):
    if pair_fn not in PAIR_FNS:
      raise ValueError(
        f'Unknown pair_fn {pair_fn!r}; known: {sorted(PAIR_FNS)}.'
      )
    pair_fn = PAIR_FNS[pair_fn]
  _check_shapes(estimates, targets)
  pw = pair_fn(estimates, targets)
  perm = find_best_perm(pw, method)
  per_example = matched_loss(pw, perm)
  return threshold_mean(per_example, threshold_db, all_dropped), perm
