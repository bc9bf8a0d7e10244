"""Tests for s4jax.audio.pit."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from s4jax.audio import pit

EPS = 1e-8


def _np_neg_snr(est, tgt, eps=EPS):
  est = est - est.mean(-1, keepdims=True)
  tgt = tgt - tgt.mean(-1, keepdims=True)
  return -10 * np.log10(
    (tgt**2).sum(-1) / (((tgt - est) ** 2).sum(-1) + eps) + eps
  )


def _np_neg_si_sdr(est, tgt, eps=EPS):
  est = est - est.mean(-1, keepdims=True)
  tgt = tgt - tgt.mean(-1, keepdims=True)
  proj = (
    (est * tgt).sum(-1, keepdims=True)
    / ((tgt**2).sum(-1, keepdims=True) + eps)
    * tgt
  )
  return -10 * np.log10(
    (proj**2).sum(-1) / (((est - proj) ** 2).sum(-1) + eps) + eps
  )


def _np_pit(est, tgt, pair):
  """Brute-force float64 PIT: loops over examples and permutations."""
  est = np.asarray(est, np.float64)
  tgt = np.asarray(tgt, np.float64)
  losses, perms = [], []
  for b in range(est.shape[0]):
    best = None
    for p in itertools.permutations(range(est.shape[1])):
      val = np.mean([pair(est[b, p[j]], tgt[b, j]) for j in range(len(p))])
      if best is None or val < best[0]:
        best = (val, p)
    losses.append(best[0])
    perms.append(best[1])
  return np.array(losses), np.array(perms)


def _problem(batch, sources, length=2000, seed=0, noise=0.3):
  """Targets and estimates that are a shuffled, noisy copy of them."""
  rng = np.random.default_rng(seed)
  tgt = rng.standard_normal((batch, sources, length)).astype(np.float32)
  true_perm = np.stack([rng.permutation(sources) for _ in range(batch)])
  est = np.empty_like(tgt)
  for b in range(batch):
    est[b, true_perm[b]] = tgt[b] + noise * rng.standard_normal(
      (sources, length)
    )
  return est, tgt, true_perm


@pytest.mark.parametrize(
  'pair_fn,ref', [('neg_snr', _np_neg_snr), ('neg_si_sdr', _np_neg_si_sdr)]
)
def test_pit_loss_matches_numpy_bruteforce(pair_fn, ref):
  est, tgt, _ = _problem(4, 3)
  loss, perm = jax.jit(lambda e, t: pit.pit_loss(e, t, pair_fn))(est, tgt)
  want_losses, want_perms = _np_pit(est, tgt, ref)
  assert abs(float(loss) - want_losses.mean()) < 2e-3, (
    f'expected {want_losses.mean()}, got {float(loss)}'
  )
  np.testing.assert_array_equal(np.asarray(perm), want_perms)


def test_recovers_true_permutation_and_reorders():
  est, tgt, true_perm = _problem(5, 3, seed=1)
  _, perm = pit.pit_loss(est, tgt, 'neg_si_snr')
  # est[b, true_perm[b, j]] is the noisy copy of tgt[b, j].
  np.testing.assert_array_equal(np.asarray(perm), true_perm)
  aligned = np.asarray(pit.reorder(jnp.asarray(est), perm))
  err = np.abs(aligned - tgt).mean()
  assert err < 0.3, f'reordered estimates should line up, mean |err| {err}'


@pytest.mark.parametrize('pair_fn', ['neg_snr', 'neg_si_snr', 'neg_si_sdr'])
def test_permutation_invariance(pair_fn):
  est, tgt, _ = _problem(3, 3, seed=2, noise=1.0)
  base, _ = pit.pit_loss(est, tgt, pair_fn)
  for p in itertools.permutations(range(3)):
    swapped, _ = pit.pit_loss(est[:, list(p)], tgt, pair_fn)
    assert abs(float(swapped) - float(base)) < 1e-5, (
      f'permutation {p}: {float(swapped)} vs {float(base)}'
    )


def test_exhaustive_equals_hungarian_random_3_sources():
  rng = np.random.default_rng(3)
  pw = jnp.asarray(rng.standard_normal((64, 3, 3)), jnp.float32)
  a = pit.best_perm_exhaustive(pw)
  b = jax.jit(pit.best_perm_hungarian)(pw)
  np.testing.assert_allclose(
    np.asarray(pit.matched_loss(pw, a)),
    np.asarray(pit.matched_loss(pw, b)),
    atol=1e-6,
  )
  # Ties are measure-zero for Gaussian matrices: the permutations agree too.
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_hungarian_many_sources_matches_scipy_and_grad():
  est, tgt, true_perm = _problem(2, 5, length=1000, seed=4)
  loss, perm = jax.jit(lambda e, t: pit.pit_loss(e, t, 'neg_snr'))(est, tgt)
  np.testing.assert_array_equal(np.asarray(perm), true_perm)
  pw = np.asarray(pit.pairwise_neg_snr(est, tgt), np.float64)
  want = np.mean(
    [pw[b].T[optimize.linear_sum_assignment(pw[b].T)].mean() for b in range(2)]
  )
  assert abs(float(loss) - want) < 1e-4, f'expected {want}, got {float(loss)}'
  grad = jax.grad(lambda e: pit.pit_loss(e, tgt, 'neg_snr')[0])(
    jnp.asarray(est)
  )
  assert np.all(np.isfinite(np.asarray(grad))), 'non-finite gradient'
  assert float(jnp.abs(grad).sum()) > 0, 'gradient should flow to estimates'


def test_hungarian_under_vmap():
  rng = np.random.default_rng(5)
  pw = jnp.asarray(rng.standard_normal((3, 2, 4, 4)), jnp.float32)
  got = jax.vmap(pit.best_perm_hungarian)(pw)
  for i in range(3):
    for b in range(2):
      _, col = optimize.linear_sum_assignment(np.asarray(pw[i, b]).T)
      np.testing.assert_array_equal(np.asarray(got[i, b]), col)


def test_pairwise_matrix_orientation():
  est, tgt, _ = _problem(2, 2, seed=6)
  pw = np.asarray(pit.pairwise_neg_snr(est, tgt))
  assert pw.shape == (2, 2, 2), f'expected (2, 2, 2), got {pw.shape}'
  np.testing.assert_allclose(
    pw[1, 0, 1],
    _np_neg_snr(est[1, 0].astype(np.float64), tgt[1, 1]),
    atol=2e-3,
  )


def test_threshold_drops_good_examples():
  # Example 0 is separated to ~60 dB (loss ~ -60), example 1 to ~10 dB.
  rng = np.random.default_rng(7)
  tgt = rng.standard_normal((2, 2, 1000)).astype(np.float32)
  est = tgt.copy()
  est[0] += 1e-3 * rng.standard_normal((2, 1000)).astype(np.float32)
  est[1] += 0.3 * rng.standard_normal((2, 1000)).astype(np.float32)
  per_ex = np.asarray(
    pit.matched_loss(
      pit.pairwise_neg_snr(est, tgt), jnp.asarray([[0, 1], [0, 1]])
    )
  )
  assert per_ex[0] < -30 < per_ex[1], f'bad setup: {per_ex}'
  loss, _ = pit.pit_loss(est, tgt, 'neg_snr', threshold_db=-30.0)
  assert abs(float(loss) - per_ex[1]) < 1e-4, (
    f'expected only example 1 ({per_ex[1]}), got {float(loss)}'
  )
  plain, _ = pit.pit_loss(est, tgt, 'neg_snr')
  assert abs(float(plain) - per_ex.mean()) < 1e-4


@pytest.mark.parametrize('all_dropped', ['zero', 'mean'])
def test_threshold_all_dropped(all_dropped):
  rng = np.random.default_rng(8)
  tgt = jnp.asarray(rng.standard_normal((2, 2, 500)), jnp.float32)
  est = tgt  # perfect: loss ~ -80 dB everywhere, all below -30.

  def f(e):
    return pit.pit_loss(
      e, tgt, 'neg_snr', threshold_db=-30.0, all_dropped=all_dropped
    )[0]

  loss, grad = jax.value_and_grad(f)(est)
  assert np.all(np.isfinite(np.asarray(grad))), 'non-finite gradient'
  if all_dropped == 'zero':
    assert float(loss) == 0.0, f'expected 0, got {float(loss)}'
    assert float(jnp.abs(grad).max()) == 0.0, 'expected zero gradient'
  else:
    assert float(loss) < -30, f'expected the plain mean (< -30), got {loss}'


def test_silent_targets_finite_grad():
  est = jnp.asarray(
    np.random.default_rng(9).standard_normal((2, 2, 400)), jnp.float32
  )
  tgt = jnp.zeros_like(est)
  for pair_fn in ('neg_snr', 'neg_si_snr', 'neg_si_sdr'):
    loss, grad = jax.value_and_grad(
      lambda e, p=pair_fn: pit.pit_loss(e, tgt, p, threshold_db=-30.0)[0]
    )(est)
    assert np.isfinite(float(loss)), f'{pair_fn}: non-finite loss {loss}'
    assert np.all(np.isfinite(np.asarray(grad))), f'{pair_fn}: NaN gradient'


def test_bad_inputs_raise_clear_errors():
  x = jnp.zeros((2, 3, 10))
  with pytest.raises(ValueError, match='same shape'):
    pit.pit_loss(x, jnp.zeros((2, 2, 10)))
  with pytest.raises(ValueError, match='Unknown pair_fn'):
    pit.pit_loss(x, x, 'sdr')
  with pytest.raises(ValueError, match='Unknown PIT method'):
    pit.pit_loss(x, x, method='greedy')
