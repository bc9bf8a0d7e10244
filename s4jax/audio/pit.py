"""Permutation-invariant training (PIT) losses in JAX.

Follows the `pw_mtx` path of asteroid's / TDANet's `PITLossWrapper`
(`JusperLee/TDANet:look2hear/losses/pit_wrapper.py`):

1. a pairwise loss matrix `pw[b, i, j] = loss(estimate i, target j)`;
2. the permutation minimising the mean of the matched entries, found by
   exhaustive search over all `S!` permutations for `S <= 3` sources (pure
   JAX), and by the Hungarian algorithm above;
3. optional `threshold_byloss`: examples whose best loss is at or below
   `threshold_db` (e.g. -30, i.e. separated to better than 30 dB SNR) are
   dropped from the batch mean, as in TDANet / SpeechBrain.

Hungarian assignment is not differentiable and has no convenient exact JAX
form, so it runs on the host through `jax.pure_callback` calling
`scipy.optimize.linear_sum_assignment` on the stop-gradient loss matrix; the
loss itself is then gathered from the matrix in JAX, so its gradient is
exact. It works under `jit` and `vmap` (the callback loops over the batch);
scipy is imported only when that path runs.

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

PairFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]

# Largest source count searched exhaustively (S! permutations) by 'auto'.
MAX_EXHAUSTIVE_SOURCES = 3


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


def best_perm_exhaustive(pw: jnp.ndarray) -> jnp.ndarray:
  """Best permutation by trying all `S!` of them (pure JAX).

  Args:
    pw: real `(B, S, S)` pairwise losses (estimate, target).

  Returns:
    int32 `(B, S)`: estimate index for each target.
  """
  num_sources = pw.shape[-1]
  perms = jnp.asarray(permutations(num_sources))  # (P, S)
  cols = jnp.arange(num_sources)
  loss_set = jnp.mean(pw[:, perms, cols], axis=-1)  # (B, P)
  return perms[jnp.argmin(loss_set, axis=-1)]


def _hungarian_host(pw: np.ndarray) -> np.ndarray:
  """`linear_sum_assignment` over any leading axes of `(..., S, S)`."""
  from scipy import optimize  # Host-side only; keeps the import lazy.

  pw = np.asarray(pw, dtype=np.float64)
  flat = pw.reshape(-1, *pw.shape[-2:])
  out = np.empty(flat.shape[:2], dtype=np.int32)
  for b, mat in enumerate(flat):
    # scipy rejects NaN; a non-finite entry becomes a huge finite cost.
    mat = np.nan_to_num(mat, nan=1e30, posinf=1e30, neginf=-1e30)
    # Rows: targets, columns: estimates -> column index per target.
    _, col = optimize.linear_sum_assignment(mat.T)
    out[b] = col
  return out.reshape(pw.shape[:-1])


def best_perm_hungarian(pw: jnp.ndarray) -> jnp.ndarray:
  """Best permutation by the Hungarian algorithm (host callback to scipy).

  Args:
    pw: real `(B, S, S)` pairwise losses (estimate, target).

  Returns:
    int32 `(B, S)`: estimate index for each target. No gradient flows
    through the assignment.
  """
  pw = jax.lax.stop_gradient(pw)
  shape = jax.ShapeDtypeStruct(pw.shape[:-1], jnp.int32)
  return jax.pure_callback(
    _hungarian_host, shape, pw, vmap_method='broadcast_all'
  )


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
    method: 'auto' (exhaustive for S <= 3, Hungarian above), 'exhaustive'
      or 'hungarian'.
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
