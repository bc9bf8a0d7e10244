"""SEOFP on the real models: integer-add inference, training recipes, sizes.

* Integer-add inference (`intadd.int_add_apply`) of Spiking-S4 and S4M
  against the float path on the same quantised weights. The products are
  bit-identical, so only the summation order differs: for an n-term float32
  sum any two orders differ by at most `2 gamma_n sum |terms|`,
  `gamma_n = n u / (1 - n u)`, `u = 2^-24` (Higham, Accuracy and Stability
  of Numerical Algorithms, 2nd ed., Sec. 4.2).
* `configs/*_seofp.py:smoke=True` train through `s4jax.training`; the saved
  float32 masters quantise to signed powers of two, and the loop evaluated
  the quantised weights.
* Packed size of the full-size models: sign + 5 / 8 exponent bits is 6/32 /
  9/32 of float32 on the quantised tensors (81.25% / 71.875% smaller, plus
  one byte per tensor).
"""

import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import s4m_tiny_seofp, spiking_s4_ndns, spiking_s4_ndns_seofp
from data_pipelines import input_pipeline
from harness import checkpoint, evaluation, trainer
from s4jax.audio import stft
from s4jax.models import s4m, spiking_s4
from s4jax.quant import intadd, packing, rules, seofp
from s4jax.training import program, sharding, tasks

U = 2.0**-24  # float32 unit roundoff.


@pytest.fixture(scope='module', autouse=True)
def _fast_compiles():
  """Smoke models need no XLA optimisation (compiles dominate these tests)."""
  before = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', before)


def _gamma(n: int) -> float:
  return n * U / (1 - n * U)


def _quantised(config, params):
  r = rules.from_config(config.quant)
  return r, rules.quantize_params(params, r)


def _int_add(model, r):
  log = intadd.InterceptLog()
  return jax.jit(intadd.int_add_apply(model.apply, r, log)), log


def _irfft_abs_bound(z_abs: np.ndarray, n_fft: int) -> np.ndarray:
  """Bound on `max |irfft(Z, n_fft)|` from `|Z|` (..., n_fft // 2 + 1).

  `irfft(Z)[m] = (Z_0 + Z_{N/2} (-1)^m + 2 Re sum_k Z_k e^{...}) / N`.
  """
  inner = 2 * np.sum(z_abs[..., 1:-1], axis=-1)
  return (z_abs[..., 0] + z_abs[..., -1] + inner) / n_fft


def test_spiking_s4_int_add_matches_float_path_on_quantised_weights():
  config = spiking_s4_ndns_seofp.get_config('smoke=True')
  config.model.n_layers = 2
  model = spiking_s4.from_config(config.model)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 8000)).astype(np.float32)
  params = jax.jit(model.init)(jax.random.key(0), x)['params']
  # An untrained model barely spikes past its first PLIF; emission gains of
  # 16 (a power of two: still SEOFP after quantisation) make every PLIF
  # group fire, so the spike paths are exercised.
  for i in range(config.model.n_layers):
    emission = params[f'layer{i}']['emission']
    emission['kernel'] = emission['kernel'] * 16.0
  r, q = _quantised(config, params)
  want, inter = jax.jit(
    lambda p, x: model.apply(
      {'params': p}, x, capture_intermediates=True, mutable=['intermediates']
    )
  )(q, x)
  int_apply, log = _int_add(model, r)
  got = int_apply({'params': q}, x)
  assert sorted(set(log.rerouted)) == [
    'decoder/kernel',
    'encoder/kernel',
    'layer0/emission/kernel',
    'layer1/emission/kernel',
  ], log.rerouted
  assert log.skipped == [], log.skipped
  rates = np.array([float(v) for v in want['firing_rates'].values()])
  assert np.all((rates > 0) & (rates < 1)), f'degenerate spiking: {rates}'

  # Upstream of the decoder every signal is a spike train or a LayerNorm of
  # spikes, so an encoder/emission summation difference cannot reach the
  # output unless it flips a spike (the membrane within ~1e-7 of the
  # threshold). The mask `relu(x @ W + b + 1)` sums n + 2 terms in both
  # paths; relu is 1-Lipschitz: |d mask| <= 2 gamma_{n+2} (|x| @ |W| +
  # |b| + 1), x the last block's output.
  x_dec = np.swapaxes(inter['intermediates']['layer1']['__call__'][0][0], 1, 2)
  w, b = np.asarray(q['decoder']['kernel']), np.asarray(q['decoder']['bias'])
  terms = np.abs(x_dec) @ np.abs(w) + np.abs(b) + 1.0
  mask_bound = 2 * _gamma(w.shape[0] + 2) * terms
  d_mask = np.abs(np.asarray(got['mask']) - np.asarray(want['mask']))
  assert np.all(d_mask <= mask_bound), (
    f'mask differs by up to {d_mask.max():.3g}; summation order allows '
    f'{mask_bound.max():.3g} (a flipped spike?)'
  )
  # The estimate is istft(Y mask): a rectangular-window overlap-add is a
  # mean of irfft frames, so |d estimate| <= max over frames of the irfft
  # bound of |Y| |d mask|. Plus the iSTFT's own rounding in each path
  # (log2(512) FFT stages of a few u each: 1e-6 of the output scale).
  spec = np.asarray(stft.stft(jnp.asarray(x), n_fft=512, hop_length=128))
  est_bound = np.max(_irfft_abs_bound(np.abs(spec) * mask_bound, 512))
  scale = np.max(np.abs(np.asarray(want['estimate'])))
  d_est = np.max(np.abs(np.asarray(got['estimate'] - want['estimate'])))
  assert d_est <= est_bound + 1e-6 * scale, (
    f'estimate differs by {d_est:.3g}; bound {est_bound:.3g} + '
    f'{1e-6 * scale:.3g}'
  )
  # The tolerance is far below what quantisation itself changes.
  unquantised = jax.jit(model.apply)({'params': params}, x)['estimate']
  d_quant = np.max(np.abs(np.asarray(unquantised - want['estimate'])))
  assert d_quant > 100 * (est_bound + 1e-6 * scale), (d_quant, est_bound)


# S4M has no spikes, so summation differences travel through every layer.
# A rerouted layer's outputs differ by at most 2 gamma_n sum |x w| (n its
# fan-in); with normalised activations sum |x w| is of the order of the
# output scale, and the differences of L chained layers add up. Stated
# tolerance: L * 2 gamma_{n_max} of the output peak, L the rerouted layer
# applications per forward pass (the shared block counted num_blocks times).


def test_s4m_int_add_matches_float_path_on_quantised_weights():
  config = s4m_tiny_seofp.get_config('smoke=True')
  model = s4m.from_config(config.model)
  rng = np.random.default_rng(1)
  x = (0.1 * rng.standard_normal((2, 2000))).astype(np.float32)
  params = jax.jit(model.init)(jax.random.key(0), x)['params']
  r, q = _quantised(config, params)
  want = np.asarray(jax.jit(model.apply)({'params': q}, x)['estimates'])
  int_apply, log = _int_add(model, r)
  got = np.asarray(int_apply({'params': q}, x)['estimates'])
  rerouted = set(log.rerouted)
  shared = 'separator/shared/'
  assert rerouted == {
    'bottleneck/kernel',
    'mask_conv/kernel',
    shared + 'proj/kernel',
    shared + 'res_conv/kernel',
    shared + 'global_ff/dense_in/kernel',
    shared + 'global_ff/dense_out/kernel',
    shared + 'global_s4/layer/output_linear/dense/kernel',
  }, sorted(rerouted)
  # The strided encoder stays on the float path (with quantised weights);
  # depthwise and transposed convolutions are not nn.Conv, so never seen.
  assert set(log.skipped) == {
    ('encoder/kernel', 'kernel size (32,) is not 1x1')
  }
  flat = {
    rules.path_str(k): v for k, v in jax.tree_util.tree_leaves_with_path(q)
  }
  fan_in = max(math.prod(flat[p].shape[:-1]) for p in rerouted)
  in_block = sum(p.startswith(shared) for p in rerouted)
  calls = len(rerouted) + (config.model.num_blocks - 1) * in_block
  rtol = calls * 2 * _gamma(fan_in)
  scale = np.max(np.abs(want))
  err = np.max(np.abs(got - want))
  assert err <= rtol * scale, (
    f'int-add vs float: max error {err:.3g}, allowed {rtol:.3g} x {scale:.3g}'
  )
  unquantised = np.asarray(
    jax.jit(model.apply)({'params': params}, x)['estimates']
  )
  assert np.max(np.abs(unquantised - want)) > 100 * rtol * scale


def _restore_params(config, workdir):
  run = program.Program.build(config, sharding.create_mesh())
  ckpt = checkpoint.Checkpointer(
    checkpoint.checkpoint_dir(str(workdir)), read_only=True
  )
  try:
    step = ckpt.latest_step()
    state = checkpoint.restore_or_init(run, ckpt)
  finally:
    ckpt.close()
  return step, jax.device_get(state.params)


def _assert_saved_weights_are_seofp(config, params):
  r = rules.from_config(config.quant)
  q = rules.quantize_params(params, r)
  chosen = jax.tree_util.tree_leaves_with_path(rules.selection(params, r))
  quantised, kept = 0, 0
  for (path, c), w, qw in zip(
    chosen, jax.tree.leaves(params), jax.tree.leaves(q), strict=True
  ):
    name = rules.path_str(path)
    if not c:
      kept += 1
      np.testing.assert_array_equal(qw, w, err_msg=f'{name} was changed')
      continue
    quantised += 1
    qw = np.asarray(qw)
    assert np.all(np.asarray(seofp.is_seofp(qw))), f'{name}: not 2^e'
    assert not np.all(np.asarray(seofp.is_seofp(w))), (
      f'{name}: float32 master already on the grid (no STE update?)'
    )
    mag = np.abs(qw[qw != 0])
    e = np.log2(mag)
    np.testing.assert_array_equal(e, np.round(e), err_msg=name)
    span = e.max() - e.min()
    assert span <= 2**config.quant.exponent_bits - 2, (name, span)
  assert quantised >= 3 and kept > 0, (quantised, kept)
  return q


def _eval_si_snr(config, task, params):
  """Mean SI-SNR of the plain model on `params` over the loop's eval set."""
  values = []
  apply = jax.jit(lambda p, x: task.model.apply({'params': p}, x)['estimate'])
  for batch in input_pipeline.create_eval_iterator(config):
    mask = batch['mask'].astype(bool)
    est = np.asarray(apply(params, batch['noisy']))[mask]
    got = evaluation.library_metrics(('si_snr',), est, batch['clean'][mask])
    values.append(got['si_snr'])
  return float(np.mean(np.concatenate(values)))


def test_spiking_s4_smoke_fine_tunes_float_checkpoint_with_seofp(tmp_path):
  """Float smoke run, its checkpoint copied, then SEOFP training on top."""
  cache = str(tmp_path / 'cache')
  float_config = spiking_s4_ndns.get_config('smoke=True')
  float_config.data.data_dir = cache
  trainer.train_and_evaluate(
    float_config, str(tmp_path / 'float'), input_pipeline
  )
  (tmp_path / 'qat' / 'checkpoints').mkdir(parents=True)
  shutil.copytree(
    tmp_path / 'float' / 'checkpoints' / '2',
    tmp_path / 'qat' / 'checkpoints' / '2',
  )
  config = spiking_s4_ndns_seofp.get_config('smoke=True')
  config.data.data_dir = cache
  config.train.num_steps = 4
  config.train.eval_every = 4
  config.train.checkpoint_every = 4
  result = trainer.train_and_evaluate(
    config, str(tmp_path / 'qat'), input_pipeline
  )
  assert [h['step'] for h in result.history] == [3, 4], result.history
  step, params = _restore_params(config, tmp_path / 'qat')
  assert step == 4, step
  q = _assert_saved_weights_are_seofp(config, params)
  # The loop evaluated the quantised weights, not the float32 masters.
  task = tasks.create_task(config)
  want = _eval_si_snr(config, task, q)
  got = result.evals[-1]['si_snr']
  assert got == pytest.approx(want, abs=1e-4), (got, want)


def test_s4m_tiny_seofp_smoke_trains(tmp_path):
  config = s4m_tiny_seofp.get_config('smoke=True,bits=8')
  config.data.data_dir = str(tmp_path / 'cache')
  result = trainer.train_and_evaluate(
    config, str(tmp_path / 'run'), input_pipeline
  )
  assert [h['step'] for h in result.history] == [1, 2], result.history
  assert all(np.isfinite(h['loss']) for h in result.history)
  step, params = _restore_params(config, tmp_path / 'run')
  assert step == 2, step
  _assert_saved_weights_are_seofp(config, params)


def _expected_reduction(shapes, bits):
  """Closed form: ceil(n (1 + k) / 8) bytes + 1 window byte per tensor."""
  packed = sum(-(-math.prod(s) * (1 + bits) // 8) + 1 for s in shapes)
  return 1 - packed / sum(4 * math.prod(s) for s in shapes)


@pytest.mark.parametrize('bits, figure', [(5, 0.8125), (8, 0.71875)])
def test_full_size_packed_reduction(bits, figure):
  arg = f'bits={bits}'
  for name, config, module, x, num_params in (
    (
      'spiking_s4',
      spiking_s4_ndns_seofp.get_config(arg),
      spiking_s4,
      jnp.zeros((1, 16000)),
      530_442,  # The paper's count.
    ),
    (
      's4m_tiny',
      s4m_tiny_seofp.get_config(arg),
      s4m,
      jnp.zeros((1, 8000)),
      1_828_967,  # The release's count at 8 kHz, 4 ms encoder.
    ),
  ):
    # Spiking-S4: encoder 257 x 256, four 256 x 256 emissions, decoder.
    want_count = 2 * 257 * 256 + 4 * 256 * 256 if name == 'spiking_s4' else 0
    model = module.from_config(config.model)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)['params']
    report = packing.size_report(shapes, rules.from_config(config.quant))
    kernels = [
      leaf.shape
      for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)
      if rules.path_str(path).endswith('/kernel')
    ]
    assert report['num_params'] == num_params, (name, report['num_params'])
    assert report['num_quantized'] == sum(map(math.prod, kernels)), name
    if want_count:
      assert report['num_quantized'] == want_count, report['num_quantized']
    got = report['quantized']['reduction']
    want = _expected_reduction(kernels, bits)
    assert got == pytest.approx(want, abs=1e-12), (name, got, want)
    assert abs(got - figure) < 5e-6, (
      f'{name}: {100 * got:.4f}% on the quantised tensors, expected '
      f'{100 * figure:.3f}%'
    )


def test_configs_reject_bad_bits_and_keep_the_recipe():
  with pytest.raises(ValueError, match='exponent_bits must be in 1..8'):
    spiking_s4_ndns_seofp.get_config('bits=9')
  with pytest.raises(ValueError, match='rounding must be one of'):
    s4m_tiny_seofp.get_config('rounding=floor')
  for module, base_name in (
    (spiking_s4_ndns_seofp, 'configs.spiking_s4_ndns'),
    (s4m_tiny_seofp, 'configs.s4m_tiny'),
  ):
    base = __import__(base_name, fromlist=['get_config'])
    for smoke in (False, True):
      config = module.get_config(f'smoke={smoke},bits=8').to_dict()
      plain = base.get_config(f'smoke={smoke}').to_dict()
      quant = config.pop('quant')
      assert quant['enabled'] and quant['exponent_bits'] == 8, quant
      assert not plain.pop('quant')['enabled']
      assert config == plain, f'{module.__name__} changed more than quant'
