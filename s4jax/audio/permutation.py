"""The best assignment of estimated sources to references, on the host.

`best_permutation(score)` is the one host-side (NumPy) permutation search:
the separation metrics (`harness.metrics.pit_si_sdr`) and the speaker order
kept across windows (`s4jax.inference`) use it. It searches all `S!`
permutations for up to `MAX_EXHAUSTIVE_SOURCES` sources (ties go to the
first in `itertools.permutations` order) and uses the Hungarian algorithm
(`scipy.optimize.linear_sum_assignment`) above.

`s4jax.audio.pit` keeps its own JAX search: the PIT loss runs inside the
jitted, differentiated training step, where the exhaustive search must be a
traced JAX computation (the loss is gathered from the pairwise matrix at the
chosen permutation, so its gradient is exact); a NumPy search there would
need a host callback on every step. For more sources than an exhaustive
search can afford it solves the assignment on the device too
(`s4jax.audio.pit.linear_sum_assignment`).

Pure NumPy/SciPy: no files, no JAX.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
  'MAX_EXHAUSTIVE_SOURCES',
  'best_permutation',
  'match_order',
]

# Largest source count searched exhaustively (S! permutations).
MAX_EXHAUSTIVE_SOURCES = 3
_WORST = -1e300  # A NaN score counts as worse than any real one.


def best_permutation(score: np.ndarray) -> np.ndarray:
  """Estimate index per reference maximising the sum of `score[est, ref]`.

  Args:
    score: real `(S, S)` higher-is-better scores, `[i, j]` = estimate `i`
      against reference `j`.

  Returns:
    int `(S,)`: `perm[j]` is the estimate matched to reference `j`, so
    `estimates[perm]` lines up with the references.
  """
  score = np.asarray(score, np.float64)
  if score.ndim != 2 or score.shape[0] != score.shape[1]:
    raise ValueError(f'Expected a square (S, S) score, got {score.shape}.')
  score = np.nan_to_num(score, nan=_WORST, neginf=_WORST, posinf=-_WORST)
  num = score.shape[0]
  if num <= MAX_EXHAUSTIVE_SOURCES:
    perms = np.array(list(itertools.permutations(range(num)))).reshape(-1, num)
    totals = score[perms, np.arange(num)].sum(axis=-1)
    return perms[int(np.argmax(totals))]
  from scipy import optimize  # pylint: disable=g-import-not-at-top

  _, col = optimize.linear_sum_assignment(-score.T)
  return col


def match_order(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
  """Order of `current` sources that best matches `reference`.

  Both are real `(S, n)`: the same stretch of audio as two estimates saw it
  (e.g. the overlap of two windows). The score of a pair is the inner
  product of the two signals.

  Returns:
    int `(S,)`: `current[perm]` lines up with `reference`.
  """
  score = np.asarray(current, np.float64) @ np.asarray(reference, np.float64).T
  return best_permutation(score)
