"""S4M: parameter counts, PyTorch index/length arithmetic, loss, learning."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import s4m as s4m_config
from configs import s4m_tiny
from s4jax import models
from s4jax.layers import s4 as s4_layer
from s4jax.models import s4m, summary
from s4jax.models import s4m_blocks as blocks
from tests import fast_compiles


@pytest.fixture(scope='module', autouse=True)
def _fast_compiles():
  """Small models need no XLA optimisation (compiles dominate here)."""
  with fast_compiles.unoptimised():
    yield


SMALL = dict(
  bottleneck=8,
  num_blocks=2,
  remat=False,
  block=dict(hidden=16, depth=3, d_state=4),
)
# S4 residual block of the release: S4(512, d_state=16, bidirectional) with
# its GLU projection (567,296) plus the pre-norm LayerNorm (1,024).
S4_RESIDUAL_PARAMS = 568_320


def _s4m(block=None, **top):
  """S4M from `SMALL` (a nested `config.model`) with overrides."""
  return s4m.from_config(
    {**SMALL, **top, 'block': {**SMALL['block'], **(block or {})}}
  )


def _count(model, samples=800):
  v = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, samples)))
  )
  return summary.count_params(v['params'])


# Parameter counts --------------------------------------------------------------


@pytest.mark.parametrize(
  'sample_rate, window_ms, expected',
  [(8000, 4, 1_828_967), (16000, 4, 1_843_015), (16000, 21, 2_169_143)],
)
def test_parameter_counts_match_the_release(sample_rate, window_ms, expected):
  got = _count(s4m.S4M(sample_rate=sample_rate, enc_kernel_ms=window_ms))
  assert got == expected, f'expected {expected:,} parameters, got {got:,}'


def test_full_s4m_adds_three_s4_blocks():
  tiny = _count(s4m.S4M())
  full = _count(s4m.from_config(s4m_config.get_config().model))
  assert full == tiny + 3 * S4_RESIDUAL_PARAMS, (
    f'expected tiny {tiny:,} + 3 x {S4_RESIDUAL_PARAMS:,}, got {full:,}'
  )
  # The recipes are the module defaults and the presets.
  assert s4m.from_config(s4m_tiny.get_config().model) == s4m.S4MTiny()
  assert s4m.from_config(s4m_config.get_config().model) == s4m.S4MFull()
  assert s4m.from_config(s4m.default_config()) == s4m.S4M()


def test_s4d_and_identity_variants_change_only_the_ssm():
  base = _count(_s4m())
  ident = _count(_s4m(block={'ssm': 'identity'}))
  h, n2 = SMALL['block']['hidden'], SMALL['block']['d_state'] // 2
  # Identity drops LayerNorm (2h), S4 (dt, A re/im, B, P, C x2 dirs, D) and
  # the GLU dense (h x 2h + 2h).
  s4_block = 2 * h + h + 2 * h * n2 + 2 * h * n2 + 2 * h * n2 + 4 * h * n2
  s4_block += h + h * 2 * h + 2 * h
  assert base - ident == s4_block, f'{base - ident} != {s4_block}'
  s4d = _count(_s4m(block={'ssm': 's4d'}))
  assert base - s4d == 2 * h * n2, f'S4D should lack only P: {base - s4d}'


# PyTorch index and length arithmetic -----------------------------------------


def _torch_nearest_reference(length, out):
  """PyTorch nearest_idx: float32 scale, float32 product, floorf, clamp."""
  scale = np.float32(np.float32(length) / np.float32(out))
  idx = []
  for i in range(out):
    if out == length:
      idx.append(i)
    elif out == 2 * length:
      idx.append(i >> 1)
    else:
      idx.append(min(int(np.floor(np.float32(i) * scale)), length - 1))
  return np.array(idx)


@pytest.mark.parametrize(
  'length, out', [(8, 82), (377, 3010), (1505, 753), (5, 10), (7, 7), (3, 16)]
)
def test_nearest_indices_follow_pytorch(length, out):
  got = blocks.nearest_indices(length, out)
  want = _torch_nearest_reference(length, out)
  np.testing.assert_array_equal(got, want, err_msg=f'{length} -> {out}')


def test_nearest_float32_differs_from_exact_floor_where_pytorch_does():
  # 41 * 8 / 82 = 4 exactly, but float32(8/82) * 41 < 4: PyTorch picks 3.
  assert blocks.nearest_indices(8, 82)[41] == 3


@pytest.mark.parametrize('length, out', [(3010, 377), (10, 3), (9, 9), (16, 4)])
def test_adaptive_pool_matches_pytorch_bins(length, out):
  x = np.random.default_rng(0).standard_normal((2, length, 3))
  want = np.stack(
    [
      x[:, (i * length) // out : -(-(i + 1) * length // out)].mean(1)
      for i in range(out)
    ],
    axis=1,
  )
  got = np.asarray(blocks.adaptive_avg_pool(jnp.asarray(x), out))
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_nearest_resize_gathers_the_indices():
  x = np.random.default_rng(1).standard_normal((1, 13, 2)).astype(np.float32)
  for out in (13, 26, 39, 100, 6):
    want = x[:, _torch_nearest_reference(13, out)]
    got = np.asarray(blocks.nearest_resize(jnp.asarray(x), out))
    np.testing.assert_array_equal(got, want, err_msg=f'13 -> {out}')


def _resize_matrix(kind, length, out):
  """Dense (out, length) matrix of adaptive average pooling / nearest resize."""
  a = np.zeros((out, length))
  if kind == 'pool':
    for i in range(out):
      lo, hi = (i * length) // out, -(-(i + 1) * length // out)
      a[i, lo:hi] = 1.0 / (hi - lo)
  else:
    a[np.arange(out), _torch_nearest_reference(length, out)] = 1.0
  return a


@pytest.mark.parametrize('kind', ['pool', 'nearest'])
@pytest.mark.parametrize(
  'length, out', [(3010, 377), (377, 3010), (1505, 753), (753, 1505), (8, 82)]
)
def test_resize_gradients_are_the_matrix_transpose(kind, length, out):
  """Forward and gradient against the dense resampling matrix, float64."""
  rng = np.random.default_rng(length + out)
  x = rng.standard_normal((2, length, 3))
  g = rng.standard_normal((2, out, 3))
  a = _resize_matrix(kind, length, out)
  fn = {'pool': blocks.adaptive_avg_pool, 'nearest': blocks.nearest_resize}
  with jax.enable_x64(True):
    y, vjp = jax.vjp(lambda v: fn[kind](v, out), jnp.asarray(x))
    (gx,) = vjp(jnp.asarray(g))
  np.testing.assert_allclose(
    np.asarray(y), np.einsum('ot,btc->boc', a, x), rtol=0, atol=1e-12
  )
  np.testing.assert_allclose(
    np.asarray(gx),
    np.einsum('ot,boc->btc', a, g),
    rtol=0,
    atol=1e-12,
    err_msg=f'{kind} {length} -> {out}: gradient is not A^T g',
  )


def test_scale_lengths_follow_strided_conv_formula():
  assert blocks.conv_lengths(3010, 4) == [3010, 1505, 753, 377]
  assert blocks.conv_lengths(1, 3) == [1, 1, 1]


def _torch_conv_transpose(x, w, stride, padding):
  """PyTorch ConvTranspose1d by its definition. x: (T, I), w: (K, I, O)."""
  t, k = x.shape[0], w.shape[0]
  full = np.zeros(((t - 1) * stride + k, w.shape[2]))
  for f in range(t):
    full[f * stride : f * stride + k] += np.einsum('i,kio->ko', x[f], w)
  return full[padding : full.shape[0] - padding]


@pytest.mark.parametrize('t, k, stride', [(9, 8, 2), (13, 32, 8), (5, 12, 3)])
def test_transposed_conv_matches_pytorch_definition(t, k, stride):
  rng = np.random.default_rng(2)
  x = rng.standard_normal((1, t, 3))
  mod = blocks.ConvTranspose1d(2, k, stride, k // 2, dtype=jnp.float64)
  with jax.enable_x64(True):
    v = mod.init(jax.random.PRNGKey(0), jnp.asarray(x))
    got = np.asarray(mod.apply(v, jnp.asarray(x)))[0]
    want = _torch_conv_transpose(
      x[0], np.asarray(v['params']['kernel']), stride, k // 2
    )
  assert got.shape == want.shape, f'shape {got.shape}, PyTorch {want.shape}'
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# Hand-written gradients ------------------------------------------------------


@pytest.mark.parametrize(
  't, k, stride, pad',
  [(17, 5, 1, 2), (17, 5, 2, 2), (16, 5, 2, 2), (9, 1, 1, 0), (3, 5, 2, 2)],
)
def test_depthwise_conv_matches_grouped_conv_and_its_gradient(
  t, k, stride, pad
):
  rng = np.random.default_rng(3)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.standard_normal((2, t, 3)))
    w = jnp.asarray(rng.standard_normal((k, 3)))
    b = jnp.asarray(rng.standard_normal(3))

    def ref(x, w, b):
      y = jax.lax.conv_general_dilated(
        x,
        w[:, None, :],
        (stride,),
        [(pad, pad)],
        dimension_numbers=('NWC', 'WIO', 'NWC'),
        feature_group_count=3,
      )
      return y + b

    def ours(x, w, b):
      return blocks.depthwise_conv1d(x, w, b, stride, pad)

    want, vjp_ref = jax.vjp(ref, x, w, b)
    got, vjp_ours = jax.vjp(ours, x, w, b)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    g = jnp.asarray(rng.standard_normal(want.shape))
    for a, r, name in zip(vjp_ours(g), vjp_ref(g), 'xwb', strict=True):
      np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12, err_msg=name)


def test_global_layer_norm_matches_formula_and_gradient():
  rng = np.random.default_rng(4)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.standard_normal((2, 7, 3)) * 3 + 1)
    gam = jnp.asarray(rng.standard_normal(3))
    bet = jnp.asarray(rng.standard_normal(3))

    def ref(x, gam, bet):  # asteroid GlobLN: eps 1e-8 inside the sqrt.
      m = x.mean((1, 2), keepdims=True)
      v = ((x - m) ** 2).mean((1, 2), keepdims=True)
      return (x - m) / jnp.sqrt(v + 1e-8) * gam + bet

    want, vjp_ref = jax.vjp(ref, x, gam, bet)
    got, vjp_ours = jax.vjp(blocks.global_layer_norm, x, gam, bet)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    g = jnp.asarray(rng.standard_normal(x.shape))
    for a, r in zip(vjp_ours(g), vjp_ref(g), strict=True):
      np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-10)


# Model behaviour ---------------------------------------------------------------


def _forward(model, v, x):
  return jax.jit(model.apply)(v, x)['estimates']


@pytest.fixture(scope='module')
def small():
  model = _s4m()
  x = jnp.asarray(
    np.random.default_rng(5).standard_normal((2, 161)), jnp.float32
  )
  return model, jax.jit(model.init)(jax.random.PRNGKey(0), x), x


@pytest.mark.parametrize(
  'sample_rate, window_ms, lengths',
  [(8000, 4, (1, 7, 333, 1001)), (16000, 21, (335, 999))],
)
def test_output_has_the_input_length(sample_rate, window_ms, lengths):
  model = _s4m(sample_rate=sample_rate, enc_kernel_ms=window_ms, num_blocks=1)
  v = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))
  )
  for t in lengths:
    out = jax.eval_shape(lambda v, x: model.apply(v, x), v, jnp.zeros((2, t)))
    assert out['estimates'].shape == (2, 2, t), (
      f'input {t}: {out["estimates"].shape}'
    )


def test_first_and_last_samples_reach_the_output(small):
  model, v, x = small
  # The padding/trim arithmetic must keep sample 0 and sample T-1 in place:
  # an impulse there changes the output there.
  fwd = jax.jit(model.apply)
  base = fwd(v, x)['estimates']
  for pos in (0, x.shape[1] - 1):
    bumped = fwd(v, x.at[:, pos].add(5.0))['estimates']
    assert float(jnp.max(jnp.abs(bumped[..., pos] - base[..., pos]))) > 1e-4, (
      pos
    )


def test_kernel_is_computed_once_per_forward():
  calls = []

  def count(next_fun, args, kwargs, context):
    if (
      isinstance(context.module, s4_layer.S4Layer)
      and context.method_name == 'kernel'
    ):
      calls.append(1)
    return next_fun(*args, **kwargs)

  x = jnp.zeros((1, 200))
  depth = SMALL['block']['depth']
  for recon, expected in ((False, 1), (True, depth)):  # 1 global + depth - 1
    model = _s4m(num_blocks=5, scan=False, block={'reconstruction_s4': recon})
    v = jax.eval_shape(lambda m=model: m.init(jax.random.PRNGKey(0), x))
    calls.clear()
    with nn.intercept_methods(count):
      jax.eval_shape(lambda v, m=model: m.apply(v, x), v)
    assert len(calls) == expected, (
      f'{len(calls)} kernel computations for 5 iterations'
    )


def _loss_and_grads(model, batch):
  params = jax.jit(model.init)(jax.random.PRNGKey(1), batch['mixture'])[
    'params'
  ]
  cfg = s4m_tiny.s4m_loss()

  @jax.jit
  def loss(params):
    out = model.apply({'params': params}, batch['mixture'], train=True)
    return s4m.loss_fn(out, batch, cfg)

  return jax.value_and_grad(loss, has_aux=True)(params)


@pytest.mark.parametrize('ssm', ['s4', 's4d'])
def test_forward_and_gradient_under_jit(ssm):
  # Production settings (scan + remat) with S4 blocks in the top-down path.
  model = _s4m(
    remat=True, block={'depth': 2, 'ssm': ssm, 'reconstruction_s4': True}
  )
  rng = np.random.default_rng(6)
  src = jnp.asarray(rng.standard_normal((2, 2, 160)), jnp.float32)
  batch = {'mixture': src.sum(1), 'sources': src}
  (val, metrics), grads = _loss_and_grads(model, batch)
  assert np.isfinite(float(val)), val
  assert set(metrics) == {'si_sdr', 'si_sdri'}, metrics
  leaves = jax.tree.leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves), (
    'non-finite gradient'
  )
  for name in ('global_s4', 'recon_s4_0'):
    ssm_grads = grads['separator']['shared'][name]['layer']['ssm']
    assert float(jnp.abs(ssm_grads['log_dt']).sum()) > 0, (
      f'no dt gradient: {name}'
    )


@pytest.mark.slow
def test_scan_and_remat_give_the_same_gradients():
  model = _s4m(remat=True, block={'depth': 2, 'reconstruction_s4': True})
  rng = np.random.default_rng(6)
  src = jnp.asarray(rng.standard_normal((2, 2, 160)), jnp.float32)
  batch = {'mixture': src.sum(1), 'sources': src}
  (val, _), grads = _loss_and_grads(model, batch)
  # Unrolled, without recomputation: the same loss and gradients.
  plain = model.clone(scan=False, remat=False)
  (val2, _), grads2 = _loss_and_grads(plain, batch)
  np.testing.assert_allclose(val2, val, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads2), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_topdown_quirk_is_a_switch(small):
  model, v, x = small
  quirk = _forward(model, v, x)
  fixed = model.clone(block=models.module_def(model.block, topdown_quirk=False))
  fixed = _forward(fixed, v, x)
  assert float(jnp.max(jnp.abs(quirk - fixed))) > 1e-4, (
    'quirk flag has no effect'
  )
  # Unrolled (no scan) gives the same forward pass.
  np.testing.assert_allclose(
    _forward(model.clone(scan=False), v, x), quirk, rtol=1e-5, atol=1e-5
  )


def test_bfloat16_compute_returns_float32(small):
  model, v, x = small
  out = _forward(model.clone(dtype='bfloat16'), v, x)
  ref = _forward(model, v, x)
  assert out.dtype == jnp.float32, out.dtype
  rel = float(jnp.linalg.norm(out - ref) / jnp.linalg.norm(ref))
  assert rel < 0.1, f'bfloat16 output off by {rel:.3f} (relative)'


def test_bad_inputs_and_configs_give_clear_errors(small):
  model, v, _ = small
  with pytest.raises(ValueError, match='mono mixture batch'):
    model.apply(v, jnp.zeros((2, 2, 100)))
  with pytest.raises(ValueError, match='empty mixture'):
    model.apply(v, jnp.zeros((1, 0)))
  cfg = ml_collections.ConfigDict(dict(name='s4m', hiden=5))
  with pytest.raises(ValueError, match=r'config\.model\.hiden.*bottleneck'):
    s4m.from_config(cfg)
  cfg = ml_collections.ConfigDict(dict(name='s4m', block=dict(hiden=5)))
  with pytest.raises(ValueError, match=r'config\.model\.block\.hiden.*hidden'):
    s4m.from_config(cfg)
  with pytest.raises(ValueError, match='block.ssm'):
    s4m.from_config(dict(name='s4m', block=dict(ssm='lru')))
  # The flat layout of older versions: the error points to the upgrade.
  with pytest.raises(ValueError, match='upgrade_model_config'):
    s4m.from_config(dict(name='s4m', ssm='s4d'))
  with pytest.raises(ValueError, match='dtype'):
    s4m.from_config(dict(name='s4m', dtype='float16'))
  # Keys the model sets itself are not settings of the block.
  with pytest.raises(ValueError, match=r'config\.model\.block\.bottleneck'):
    s4m.from_config(dict(name='s4m', block=dict(bottleneck=8)))
  with pytest.raises(ValueError, match='samples'):
    s4m.encoder_window(0.2, 8000)


# Loss and metrics --------------------------------------------------------------


def test_loss_is_permutation_invariant():
  rng = np.random.default_rng(7)
  src = jnp.asarray(rng.standard_normal((3, 2, 400)), jnp.float32)
  est = src + 0.3 * jnp.asarray(rng.standard_normal(src.shape), jnp.float32)
  batch = {'mixture': src.sum(1), 'sources': src}
  cfg = s4m_tiny.s4m_loss()
  loss, metrics = s4m.loss_fn({'estimates': est}, batch, cfg)
  for perm in itertools.permutations(range(2)):
    swapped = {'estimates': est[:, list(perm)]}
    loss2, metrics2 = s4m.loss_fn(swapped, batch, cfg)
    np.testing.assert_allclose(loss2, loss, rtol=1e-6, err_msg=str(perm))
    np.testing.assert_allclose(
      metrics2['si_sdri'], metrics['si_sdri'], rtol=1e-6
    )
  # The TDANet loss is the negative zero-mean SNR of the best assignment.
  e, s = np.asarray(est, np.float64), np.asarray(src, np.float64)
  e, s = e - e.mean(-1, keepdims=True), s - s.mean(-1, keepdims=True)
  snr = 10 * np.log10((s**2).sum(-1) / ((s - e) ** 2).sum(-1))
  np.testing.assert_allclose(loss, -snr.mean(), rtol=1e-4)


def test_si_sdri_of_an_oracle_estimate_has_the_closed_form():
  # Orthogonal zero-mean sources: SI-SDR(mixture, s1) = 10 log10(|s1|^2/|s2|^2)
  # and the estimate s1 + a s2 has SI-SDR 10 log10(|s1|^2 / (a^2 |s2|^2)),
  # so SI-SDRi = -20 log10(a) for every source.
  t = np.arange(4000)
  s1 = np.sin(2 * np.pi * 5 * t / 4000)
  s2 = 0.5 * np.cos(2 * np.pi * 9 * t / 4000)
  src = np.stack([s1, s2])[None]
  for a in (0.1, 0.03):
    est = np.stack([s2 + a * s1, s1 + a * s2])[None]  # swapped order
    scores = s4m.separation_scores(
      jnp.asarray(est), jnp.asarray(src), jnp.asarray(src.sum(1))
    )
    want = -20 * np.log10(a)
    np.testing.assert_allclose(
      scores['si_sdri'], [want], rtol=1e-4, err_msg=str(a)
    )


# Cost --------------------------------------------------------------------------


def test_mac_count_matches_the_layer_arithmetic():
  cfg = s4m_tiny.get_config().model
  got = s4m.count_macs(cfg)
  frames = 1010  # 1 s at 8 kHz: window 32, hop 8, padded to 8072 samples.
  lengths = blocks.conv_lengths(frames, 4)
  lc, c, b, bases = lengths[-1], 512, 128, 17
  block_dense = frames * b * c * 2 + lc * (c * 2 * c * 2 + c * 2 * c)
  l0, l1, l2 = lengths[:3]
  # k=5: bottom-up convs at every scale; top-down steps (local, gate, global)
  # with the release's indexing: (l2, l1, l1), (l1, l2, l2), (l0, l1, l1).
  dw = 5 * c * (sum(lengths) + l0 + 5 * l1 + 3 * l2)
  dw += c * (sum(lengths) + 2 * 4 * lc)  # fusion k=1: local + gate + global
  dense = 16 * block_dense + frames * (bases * b + b * 2 * bases)
  conv = 16 * dw + 15 * frames * b + frames * 32 * bases
  decoder = frames * 32 * 2 * bases * 2
  assert got['dense'] == dense, (
    f'dense MACs {got["dense"]:,}, expected {dense:,}'
  )
  assert got['decoder'] == decoder, f'decoder {got["decoder"]:,} != {decoder:,}'
  assert got['conv'] == conv, f'conv MACs {got["conv"]:,}, expected {conv:,}'
  assert 5.5e9 < got['total'] < 5.8e9, (
    f'{got["total"] / 1e9:.2f} G, expected ~5.7'
  )


# Configs -------------------------------------------------------------------------


@pytest.mark.parametrize('module', [s4m_tiny, s4m_config])
def test_configs_default_to_synthetic_separation(module):
  config = module.get_config()
  assert config.data.name == 'synthetic' and config.task == 'separation'
  assert config.data.num_sources == 2 and config.data.sample_rate == 8000
  assert config.loss.pair_fn == 'neg_snr' and config.loss.threshold_db == -30.0
  smoke = module.get_config('smoke=True')
  model = s4m.from_config(smoke.model)
  x = jnp.zeros((1, int(smoke.data.segment_seconds * smoke.data.sample_rate)))
  out = jax.eval_shape(lambda: model.init_with_output(jax.random.PRNGKey(0), x))
  assert out[0]['estimates'].shape == (1, 2, x.shape[1])
  override = module.get_config('sample_rate=16000')
  assert s4m.from_config(override.model).sample_rate == 16000


# Learning ------------------------------------------------------------------------


def _two_tones(length, rate=8000):
  t = np.arange(length) / rate
  env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
  s1 = env * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 440 * t))
  s2 = (1 - env) * np.sign(np.sin(2 * np.pi * 130 * t)) * 0.5
  return np.stack([s1, s2]).astype(np.float32)


@pytest.mark.slow
def test_smoke_model_overfits_one_mixture():
  config = s4m_tiny.get_config('smoke=True')
  model = s4m.from_config(config.model)
  src = jnp.asarray(_two_tones(2000))[None]
  batch = {'mixture': src.sum(1), 'sources': src}
  params = model.init(jax.random.PRNGKey(0), batch['mixture'])['params']
  tx = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(3e-3))
  opt = tx.init(params)

  @jax.jit
  def step(params, opt):
    def loss(p):
      out = model.apply({'params': p}, batch['mixture'], train=True)
      return s4m.loss_fn(out, batch, config.loss)

    (val, metrics), g = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, updates), opt, metrics

  best = -np.inf
  for _ in range(400):
    params, opt, metrics = step(params, opt)
    best = max(best, float(metrics['si_sdri']))
    if best > 15.0:
      break
  assert best > 15.0, f'SI-SDRi reached only {best:.1f} dB after 400 steps'
