"""Tests for s4jax.audio.pit."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from s4jax.audio import losses, pit

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


def _assignment_costs(cost, cols):
  """float64 `sum_r cost[..., r, cols[..., r]]`."""
  cost = np.asarray(cost, np.float64)
  cols = np.asarray(cols)
  return np.take_along_axis(cost, cols[..., None], axis=-1)[..., 0].sum(-1)


def _scipy_cols(cost):
  """scipy's column per row for each `(S, S)` matrix of `(N, S, S)`."""
  return np.stack(
    [optimize.linear_sum_assignment(m)[1] for m in np.asarray(cost)]
  )


def _assert_permutations(cols, what):
  cols = np.asarray(cols)
  want = np.arange(cols.shape[-1])
  cols = cols.reshape(-1, want.size)
  bad = np.flatnonzero((np.sort(cols, -1) != want).any(-1))
  assert bad.size == 0, (
    f'{what}: expected permutations of {want}, got {cols[bad[:3]]}'
  )


def _assert_same_cost(cost, got, want, atol, what):
  """Assignments `got` (ours) and `want` (scipy) cost the same within atol."""
  num = np.shape(cost)[-1]
  cost = np.reshape(cost, (-1, num, num))
  got = np.reshape(got, (-1, num))
  want = np.reshape(want, (-1, num))
  got_cost = _assignment_costs(cost, got)
  want_cost = _assignment_costs(cost, want)
  err = np.abs(got_cost - want_cost)
  worst = int(np.argmax(err))
  assert err[worst] <= atol, (
    f'{what}: expected total cost {want_cost[worst]} (scipy {want[worst]}),'
    f' got {got_cost[worst]} ({got[worst]}); |diff| {err[worst]}'
    f' > {atol}'
  )


_RNG_FAMILIES = {
  # Gaussian: the optimum is unique, so the columns must match scipy's.
  'normal': lambda rng, shape: rng.standard_normal(shape),
  # Large, shifted values: the potentials see a wide dynamic range.
  'shifted': lambda rng, shape: 1e5 + 1e3 * rng.standard_normal(shape),
  # Small integers: many exactly tied optima.
  'ties': lambda rng, shape: rng.integers(0, 3, shape).astype(np.float64),
}


@pytest.mark.parametrize('family', sorted(_RNG_FAMILIES))
@pytest.mark.parametrize('num', range(1, 9))
def test_linear_sum_assignment_matches_scipy(num, family):
  rng = np.random.default_rng(100 * num + len(family))
  cost = _RNG_FAMILIES[family](rng, (200, num, num)).astype(np.float32)
  got = np.asarray(jax.jit(pit.linear_sum_assignment)(cost))
  want = _scipy_cols(cost)
  _assert_permutations(got, f'S={num} {family}')
  # float32 solver against float64 scipy: a few float32 ulps of the total;
  # small integer costs are exact in float32, so their totals must be equal.
  atol = 0.0 if family == 'ties' else 4e-7 * float(np.abs(cost).max()) * num
  _assert_same_cost(cost, got, want, atol, f'S={num} {family}')
  if family == 'normal':
    mismatch = np.flatnonzero((got != want).any(-1))
    assert mismatch.size == 0, (
      f'S={num}: expected scipy columns {want[mismatch[0]]}, got '
      f'{got[mismatch[0]]} (matrix {mismatch[0]})'
    )


def test_linear_sum_assignment_all_tied():
  # c[i, j] = a[i] + b[j]: every assignment costs sum(a) + sum(b).
  rng = np.random.default_rng(11)
  solve = jax.jit(pit.linear_sum_assignment)
  for num in (1, 4, 7):
    a, b = rng.integers(-4, 4, (2, num)).astype(np.float32)
    cost = np.stack([a[:, None] + b[None, :], np.zeros((num, num))])
    cost = cost.astype(np.float32)
    got = np.asarray(solve(cost))
    _assert_permutations(got, f'S={num} all tied')
    _assert_same_cost(cost, got, _scipy_cols(cost), 0.0, f'S={num} all tied')


# Stands for the host path's 1e30 in float64 references: it dominates any
# sum of the finite test entries (|x| < 10, S <= 8) and keeps their precision.
_BIG = 1e6


def _nonfinite_problems(rng, num, count):
  cost = rng.standard_normal((count, num, num)).astype(np.float32)
  kind = rng.choice(4, size=cost.shape, p=[0.7, 0.1, 0.1, 0.1])
  cost[kind == 1] = np.nan
  cost[kind == 2] = np.inf
  cost[kind == 3] = -np.inf
  # Whole rows and columns of NaN / +inf, and an all non-finite matrix.
  cost[0, 0, :] = np.nan
  cost[1, :, -1] = np.inf
  cost[2] = np.nan
  cost[3, :, 0] = -np.inf
  return cost


def _nonfinite_reference(cost):
  """scipy's columns per row under the documented order of `pit`."""
  cost = np.asarray(cost, np.float64)
  ref = np.nan_to_num(cost, nan=_BIG, posinf=_BIG, neginf=-_BIG)
  return _scipy_cols(ref)


def _bad_and_finite(cost, cols):
  picked = np.take_along_axis(
    np.asarray(cost, np.float64), np.asarray(cols)[..., None], axis=-1
  )[..., 0]
  bad = np.isnan(picked) | (picked == np.inf)
  bad = bad.sum(-1) - (picked == -np.inf).sum(-1)
  finite = np.where(np.isfinite(picked), picked, 0).sum(-1)
  return bad, finite


@pytest.mark.parametrize('num', range(1, 9))
def test_linear_sum_assignment_nonfinite(num):
  rng = np.random.default_rng(200 + num)
  cost = _nonfinite_problems(rng, num, 100)
  got = np.asarray(jax.jit(pit.linear_sum_assignment)(cost))
  _assert_permutations(got, f'S={num} non-finite')
  want = _nonfinite_reference(cost)
  got_bad, got_fin = _bad_and_finite(cost, got)
  want_bad, want_fin = _bad_and_finite(cost, want)
  wrong = np.flatnonzero(got_bad != want_bad)
  assert wrong.size == 0, (
    f'S={num}: expected (NaN or +inf) - (-inf) count {want_bad[wrong[0]]}, '
    f'got {got_bad[wrong[0]]} for matrix {wrong[0]}:\n{cost[wrong[0]]}'
  )
  err = np.abs(got_fin - want_fin)
  assert err.max() <= 1e-5 * num, (
    f'S={num}: expected finite sum {want_fin[np.argmax(err)]}, got '
    f'{got_fin[np.argmax(err)]} (matrix {np.argmax(err)})'
  )
  # The host path's own mapping (1e30) agrees on the count.
  host = _scipy_cols(
    np.nan_to_num(cost.astype(np.float64), nan=1e30, posinf=1e30, neginf=-1e30)
  )
  host_bad, _ = _bad_and_finite(cost, host)
  np.testing.assert_array_equal(got_bad, host_bad)


@pytest.mark.parametrize('num', range(1, 6))
def test_exhaustive_nonfinite_same_order(num):
  # pw[b, i, j] (estimate i, target j); scipy solves pw.T (targets as rows).
  rng = np.random.default_rng(300 + num)
  pw = _nonfinite_problems(rng, num, 60)
  for method in ('exhaustive', 'hungarian'):
    got = np.asarray(jax.jit(pit.find_best_perm, static_argnums=1)(pw, method))
    _assert_permutations(got, f'{method} S={num}')
    pw_t = np.swapaxes(pw, -1, -2)
    want = _nonfinite_reference(pw_t)
    got_bad, got_fin = _bad_and_finite(pw_t, got)
    want_bad, want_fin = _bad_and_finite(pw_t, want)
    np.testing.assert_array_equal(
      got_bad, want_bad, err_msg=f'{method} S={num}: bad-entry counts'
    )
    np.testing.assert_allclose(
      got_fin, want_fin, atol=1e-5 * num, err_msg=f'{method} S={num}'
    )


@pytest.mark.parametrize('num', range(2, 8))
def test_exhaustive_equals_hungarian(num):
  rng = np.random.default_rng(3 + num)
  pw = jnp.asarray(rng.standard_normal((64, num, num)), jnp.float32)
  a = jax.jit(pit.best_perm_exhaustive)(pw)
  b = jax.jit(pit.best_perm_hungarian)(pw)
  np.testing.assert_allclose(
    np.asarray(pit.matched_loss(pw, a)),
    np.asarray(pit.matched_loss(pw, b)),
    atol=1e-6,
  )
  # Ties are measure-zero for Gaussian matrices: the permutations agree too.
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize('method', ['exhaustive', 'hungarian'])
def test_search_survives_entries_near_the_float_limit(method):
  # Means of entries near 3.4e38 overflow, and a division by their maximum
  # becomes a subnormal reciprocal that XLA flushes to zero; the best
  # assignment of a scaled-down copy is the reference (scale-invariant).
  rng = np.random.default_rng(11)
  small = rng.uniform(0.5, 1.0, (32, 3, 3)).astype(np.float32)
  find = jax.jit(pit.find_best_perm, static_argnums=1)
  got = np.asarray(find(jnp.asarray(small * np.float32(3e38)), method))
  want = np.asarray(find(jnp.asarray(small), method))
  np.testing.assert_array_equal(got, want, err_msg=method)


def test_hungarian_many_sources_matches_scipy_and_grad():
  est, tgt, true_perm = _problem(2, 5, length=1000, seed=4)
  assert pit.MAX_EXHAUSTIVE_SOURCES < 5, 'S=5 should take the Hungarian path'
  loss, perm = jax.jit(lambda e, t: pit.pit_loss(e, t, 'neg_snr'))(est, tgt)
  np.testing.assert_array_equal(np.asarray(perm), true_perm)
  pw = np.asarray(pit.pairwise_neg_snr(est, tgt), np.float64)
  want = np.mean(
    [pw[b].T[optimize.linear_sum_assignment(pw[b].T)].mean() for b in range(2)]
  )
  assert abs(float(loss) - want) < 1e-4, f'expected {want}, got {float(loss)}'
  grad = jax.jit(jax.grad(lambda e: pit.pit_loss(e, tgt, 'neg_snr')[0]))(
    jnp.asarray(est)
  )
  assert np.all(np.isfinite(np.asarray(grad))), 'non-finite gradient'
  # Reference: the gradient of the loss at scipy's (fixed) permutation.
  cols = _scipy_cols(np.swapaxes(pw, -1, -2))

  def fixed(e):
    aligned = e[np.arange(2)[:, None], cols]
    return jnp.mean(losses.neg_snr(aligned, jnp.asarray(tgt), zero_mean=True))

  want_grad = np.asarray(jax.grad(fixed)(jnp.asarray(est)))
  assert np.abs(want_grad).sum() > 0, 'bad setup: zero reference gradient'
  np.testing.assert_allclose(
    np.asarray(grad), want_grad, rtol=1e-4, atol=1e-7 * np.abs(want_grad).max()
  )


@pytest.mark.parametrize('num', [4, 6])
def test_hungarian_under_jit_vmap(num):
  rng = np.random.default_rng(5)
  pw = jnp.asarray(rng.standard_normal((3, 16, num, num)), jnp.float32)
  got = np.asarray(jax.jit(jax.vmap(pit.best_perm_hungarian))(pw))
  want = _scipy_cols(np.swapaxes(np.asarray(pw), -1, -2).reshape(-1, num, num))
  np.testing.assert_array_equal(got.reshape(-1, num), want)
  # Extra leading axes in one call, too.
  np.testing.assert_array_equal(
    np.asarray(jax.jit(pit.linear_sum_assignment)(np.swapaxes(pw, -1, -2))),
    got,
  )


def _jaxpr_text(fn, *args):
  return str(jax.make_jaxpr(fn)(*args))


def test_callback_check_sees_callbacks():
  # Guards the next test: a host callback does show up in the jaxpr text.
  def host(x):
    return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

  assert 'callback' in _jaxpr_text(host, jnp.zeros(3))


@pytest.mark.parametrize('num', [4, 6])
@pytest.mark.parametrize('method', ['auto', 'hungarian'])
def test_pit_loss_has_no_host_callback(num, method):
  est, tgt, _ = _problem(2, num, length=200, seed=12)

  def loss(e, t):
    return pit.pit_loss(e, t, 'neg_snr', method=method)[0]

  cases = {
    'loss': (loss, est, tgt),
    'grad': (jax.grad(loss), est, tgt),
    'vmap': (jax.vmap(loss), est[None], tgt[None]),
  }
  for name, (fn, *args) in cases.items():
    text = _jaxpr_text(fn, *args)
    assert 'callback' not in text, (
      f'S={num} {method} {name}: expected no host callback in the jaxpr, got '
      f'{[ln for ln in text.splitlines() if "callback" in ln][:3]}'
    )
  # The solver is really traced: 'hungarian', and 'auto' above the
  # exhaustive limit, loop with while; the exhaustive search does not.
  hungarian = method == 'hungarian' or num > pit.MAX_EXHAUSTIVE_SOURCES
  assert ('while' in _jaxpr_text(loss, est, tgt)) == hungarian, (
    f'S={num} {method}: expected the Hungarian solver: {hungarian}'
  )


def test_linear_sum_assignment_rejects_non_square():
  with pytest.raises(ValueError, match='square'):
    pit.linear_sum_assignment(jnp.zeros((3, 4)))


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
