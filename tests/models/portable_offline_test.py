"""Offline (whole-clip) portable forms against the JAX models and exports.

`s4jax.models.portable.offline` folds parameter-only work into constants and
swaps the FFT convolution, STFT and transposed convolution for real forms;
the results must match the normal JAX models in float32 (jitted), and so
must their ONNX (onnxruntime) and LiteRT exports. Small random models keep
the default run fast (S4M's exports are checked on S4M-tiny only); the
pretrained Spiking-S4 on a 2 s clip and S4M-tiny are `slow`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deploy import formats, runners
from s4jax import portable_ops
from s4jax.audio import stft as stft_lib
from s4jax.models import portable, s4m, spiking_s4
from s4jax.models import s4m_blocks as blocks
from s4jax.ssm import kernels
from tests import fast_compiles


@pytest.fixture(scope='module', autouse=True)
def _fast_compiles():
  """Small models need no XLA optimisation (compiles dominate here)."""
  with fast_compiles.unoptimised():
    yield


TOL = 1e-4  # Max abs error as a fraction of the reference's peak (float32).
OP_TOL = 1e-5  # The same for single operations.


def _peak_error(got, want) -> float:
  """Max abs difference as a fraction of `want`'s peak."""
  want = np.asarray(want, np.float64)
  err = np.max(np.abs(np.asarray(got, np.float64) - want))
  return float(err / np.max(np.abs(want)))


def _check(got, want, tol, what):
  assert np.shape(got) == np.shape(want), (
    f'{what}: expected shape {np.shape(want)}, got {np.shape(got)}'
  )
  err = _peak_error(got, want)
  assert err <= tol, (
    f'{what}: expected max abs error <= {tol:.0e} of the peak, got {err:.2e}'
  )


def _signal(batch, n, seed=0, rate=16000):
  """A deterministic test signal: a modulated tone in white noise."""
  rng = np.random.default_rng(seed)
  t = np.arange(n) / rate
  tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
  x = tone + 0.05 * rng.standard_normal((batch, n))
  return x.astype(np.float32)


def _primitives(fn, *args):
  """Primitive names and dtypes in the jaxpr of `fn` (nested included)."""
  names, dtypes = set(), set()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      names.add(eqn.primitive.name)
      dtypes.update(str(v.aval.dtype) for v in eqn.outvars)
      for param in eqn.params.values():
        sub = getattr(param, 'jaxpr', None)
        if sub is not None:
          walk(getattr(sub, 'jaxpr', sub))

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return names, dtypes


# The switch -----------------------------------------------------------------


def test_portable_ops_is_scoped_and_nests():
  assert not portable_ops.enabled()
  with portable_ops.portable_ops():
    assert portable_ops.enabled()
    with portable_ops.portable_ops(False):
      assert not portable_ops.enabled()
    assert portable_ops.enabled()
  assert not portable_ops.enabled()


# fft_conv -------------------------------------------------------------------


def _np_conv(u, k):
  """float64 reference of `fft_conv` with `np.convolve`, per channel."""
  u = np.asarray(u, np.float64)
  length = u.shape[-2]
  k = np.asarray(k, np.float64)[..., :length]
  k = np.pad(k, [(0, 0)] * (k.ndim - 1) + [(0, length - k.shape[-1])])
  y = np.zeros(u.shape)
  for idx in np.ndindex(*u.shape[:-2], u.shape[-1]):
    *lead, h = idx
    x = u[(*lead, slice(None), h)]
    if k.ndim == 2:
      y[(*lead, slice(None), h)] = np.convolve(x, k[h])[:length]
    else:
      fwd = np.convolve(x, k[0, h])[:length]
      bwd = np.convolve(x[::-1], k[1, h])[:length][::-1]
      y[(*lead, slice(None), h)] = fwd + bwd
  return y


@pytest.mark.parametrize(
  'u_shape, k_shape',
  [
    ((2, 37, 5), (5, 37)),  # causal
    ((2, 37, 5), (2, 5, 37)),  # bidirectional
    ((3, 2, 40, 4), (4, 25)),  # extra batch axis, kernel zero-padded
    ((40, 4), (2, 4, 60)),  # no batch axis, kernel truncated
    ((1, 1, 3), (2, 3, 1)),  # length 1: both lag-0 taps add
  ],
)
def test_direct_fft_conv_equals_fft_and_numpy(u_shape, k_shape):
  rng = np.random.default_rng(0)
  u = rng.standard_normal(u_shape).astype(np.float32)
  k = rng.standard_normal(k_shape).astype(np.float32)
  want = _np_conv(u, k)
  # Fresh lambdas: JAX caches traces per function, across `jax.jit` wrappers.
  with portable_ops.portable_ops():
    direct = jax.jit(lambda u, k: kernels.fft_conv(u, k))(u, k)
    names, dtypes = _primitives(lambda u, k: kernels.fft_conv(u, k), u, k)
  fft = jax.jit(lambda u, k: kernels.fft_conv(u, k))(u, k)
  assert direct.dtype == jnp.float32, f'expected float32, got {direct.dtype}'
  assert 'conv_general_dilated' in names and not any('fft' in n for n in names)
  assert not any('complex' in d for d in dtypes), dtypes
  _check(direct, want, OP_TOL, 'direct fft_conv vs float64 np.convolve')
  _check(direct, fft, OP_TOL, 'direct fft_conv vs FFT fft_conv')


@pytest.mark.parametrize('k, stride, pad', [(32, 8, 16), (5, 2, 1), (7, 3, 0)])
def test_conv_transpose_overlap_add_equals_dilated_conv(k, stride, pad):
  x = np.random.default_rng(1).standard_normal((2, 11, 6)).astype(np.float32)
  layer = blocks.ConvTranspose1d(3, k, stride, pad)
  v = layer.init(jax.random.PRNGKey(0), x)
  want = jax.jit(lambda v, x: layer.apply(v, x))(v, x)
  with portable_ops.portable_ops():
    got = jax.jit(lambda v, x: layer.apply(v, x))(v, x)
    names, _ = _primitives(lambda v, x: layer.apply(v, x), v, x)
  assert 'conv_general_dilated' not in names, sorted(names)
  _check(got, want, OP_TOL, f'ConvTranspose1d(k={k}, stride={stride})')


# STFT -----------------------------------------------------------------------


@pytest.mark.parametrize(
  'n_fft, hop, window, win_length, center',
  [
    (512, 128, 'rect', None, True),
    (64, 16, 'hann', 48, True),
    (64, 24, 'hann', None, True),  # hop does not divide n_fft
    (64, 16, 'rect', None, False),
  ],
)
def test_real_stft_and_istft_equal_stft_lib(
  n_fft, hop, window, win_length, center
):
  kw = dict(
    n_fft=n_fft,
    hop_length=hop,
    win_length=win_length,
    window=window,
    center=center,
  )
  x = jnp.asarray(_signal(2, 2000))
  want = stft_lib.stft(x, **kw)
  re, im = jax.jit(lambda x: portable.real_stft(x, **kw))(x)
  _check(re, want.real, OP_TOL, 'real_stft real part')
  _check(im, want.imag, OP_TOL, 'real_stft imaginary part')
  length = 2000 if center else None
  want_y = stft_lib.istft(want, length=length, **kw)
  got_y = jax.jit(
    lambda re, im: portable.real_istft(re, im, length=length, **kw)
  )(want.real, want.imag)
  _check(got_y, want_y, OP_TOL, 'real_istft vs istft')
  if center:
    _check(got_y, x, OP_TOL, 'real_istft(real_stft(x)) vs x')


def test_real_stft_refuses_short_signals():
  with pytest.raises(ValueError, match='too short'):
    portable.real_stft(jnp.zeros((1, 100)), n_fft=512)


# Small random models --------------------------------------------------------


def _export(fn, n, in_name, out_name):
  """ONNX and LiteRT bytes of `fn` on `(1, n)` float32 inputs."""
  specs = formats.arg_specs([((n,), 'float32')], symbolic_batch=False)
  traced = portable.trace_offline(fn, specs)
  onnx = formats.to_onnx(lambda x: (traced(x),), specs, [in_name], [out_name])
  tflite = formats.to_tflite(lambda x: (fn(x),), specs, [in_name], [out_name])
  return {'onnx': onnx, 'tflite': tflite}


def _check_exports(files, x, want, in_name, out_name, what):
  for fmt, data in files.items():
    run = runners.runner(fmt, data, [in_name], [out_name])
    got = run.run({in_name: x})[out_name]
    _check(got, want, TOL, f'{what} {fmt}')


SMALL_SPIKING = dict(d_model=32, n_layers=2, block=dict(d_state=8))
SPIKING_SAMPLES = 8000  # 0.5 s at 16 kHz.


@pytest.fixture(scope='module')
def small_spiking():
  model = spiking_s4.from_config(SMALL_SPIKING)
  x = _signal(1, SPIKING_SAMPLES)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  want = jax.jit(lambda x: model.apply(variables, x)['estimate'])(x)
  fn = portable.spiking_s4_offline(variables, model, SPIKING_SAMPLES)
  return fn, x, np.asarray(want)


def test_offline_spiking_s4_equals_the_model(small_spiking):
  fn, x, want = small_spiking
  got = jax.jit(fn)(x)
  _check(got, want, TOL, 'offline Spiking-S4 (jit) vs model')
  names, dtypes = _primitives(fn, x)
  assert not any('fft' in n for n in names), sorted(names)
  assert not any('complex' in d for d in dtypes), sorted(dtypes)


def test_offline_spiking_s4_refuses_other_lengths(small_spiking):
  fn, _, _ = small_spiking
  with pytest.raises(ValueError, match='build one per clip length'):
    fn(jnp.zeros((1, SPIKING_SAMPLES + 1)))


def test_offline_spiking_s4_exports(small_spiking):
  fn, x, want = small_spiking
  files = _export(fn, SPIKING_SAMPLES, 'noisy', 'estimate')
  _check_exports(files, x, want, 'noisy', 'estimate', 'small Spiking-S4')


# Diagonal S4 keeps the default run short: folding the DPLR (Cauchy) kernel
# eagerly costs many small compilations; S4M-tiny below checks it.
SMALL_S4M = dict(
  bottleneck=8,
  num_blocks=2,
  block=dict(hidden=16, depth=3, d_state=4, ssm='s4d'),
)
S4M_SAMPLES = 2000  # 0.25 s at 8 kHz.


@pytest.fixture(scope='module')
def small_s4m():
  model = s4m.from_config(SMALL_S4M)
  x = _signal(1, S4M_SAMPLES, rate=8000)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  want = jax.jit(lambda x: model.apply(variables, x)['estimates'])(x)
  return portable.s4m_offline(variables, model), x, np.asarray(want)


def test_offline_s4m_equals_the_model(small_s4m):
  fn, x, want = small_s4m
  got = jax.jit(fn)(x)
  _check(got, want, TOL, 'offline S4M (jit) vs model')
  names, dtypes = _primitives(fn, x)
  assert not any('fft' in n for n in names), sorted(names)
  assert not any('complex' in d for d in dtypes), sorted(dtypes)


# Full-size models -----------------------------------------------------------


@pytest.mark.slow
def test_pretrained_spiking_s4_offline_and_exports_on_2_seconds():
  from s4jax.pretrained import hub  # pylint: disable=g-import-not-at-top

  enh = hub.from_pretrained('spiking_s4')
  n = 2 * enh.task.sample_rate
  x = _signal(1, n)
  want = jax.jit(
    lambda x: enh.task.estimate(enh.task.apply(enh.params, x, train=False))
  )(x)
  fn = portable.spiking_s4_offline({'params': enh.params}, enh.config.model, n)
  _check(jax.jit(fn)(x), want, TOL, 'pretrained Spiking-S4 offline (jit)')
  files = _export(fn, n, 'noisy', 'estimate')
  _check_exports(files, x, want, 'noisy', 'estimate', 'pretrained Spiking-S4')


@pytest.mark.slow
def test_s4m_tiny_offline_and_exports():
  from configs import s4m_tiny  # pylint: disable=g-import-not-at-top
  from s4jax.training import tasks  # pylint: disable=g-import-not-at-top

  task = tasks.create_task(s4m_tiny.get_config())
  n = task.sample_rate // 2  # 0.5 s at 8 kHz.
  x = _signal(1, n, rate=task.sample_rate)
  params = jax.jit(task.init, static_argnums=1)(jax.random.PRNGKey(0), n)
  want = jax.jit(lambda x: task.estimate(task.apply(params, x, train=False)))(x)
  fn = portable.s4m_offline({'params': params}, task.model)
  _check(jax.jit(fn)(x), want, TOL, 'S4M-tiny offline (jit)')
  files = _export(fn, n, 'mixture', 'estimates')
  _check_exports(files, x, want, 'mixture', 'estimates', 'S4M-tiny')
