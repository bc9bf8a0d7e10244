"""The branch-free streaming Spiking-S4 step against the JAX streaming model.

`SpikingS4Stream.step` must give `spiking_s4.stream_step`'s output delayed by
one hop (its documented schedule), with only real arithmetic; the DFT
matrices must equal NumPy's float64 rfft/irfft.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.audio import stft as stft_lib
from s4jax.models import portable, spiking_s4
from tests import fast_compiles


@pytest.fixture(scope='module', autouse=True)
def _fast_compiles():
  """Small models need no XLA optimisation (compiles dominate here)."""
  with fast_compiles.unoptimised():
    yield


@pytest.mark.parametrize('window', ['rect', 'hann'])
def test_dft_matrices_equal_numpy_rfft_and_irfft(window):
  w = stft_lib.window_array(window, 64)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, 64))
  a_re, a_im = portable.analysis_matrices(w)
  want = np.fft.rfft(x * w, axis=-1)
  np.testing.assert_allclose(x @ a_re + 1j * (x @ a_im), want, atol=1e-12)
  spec = rng.standard_normal((3, 33)) + 1j * rng.standard_normal((3, 33))
  s_re, s_im = portable.synthesis_matrices(w)
  want = np.fft.irfft(spec, n=64, axis=-1) * w
  np.testing.assert_allclose(
    spec.real @ s_re + spec.imag @ s_im, want, atol=1e-12
  )


@pytest.mark.parametrize('n_fft,hop', [(512, 128), (256, 128), (512, 64)])
def test_start_indices_rebuild_the_reflect_padded_frames(n_fft, hop):
  """Row j, applied to the buffer at hop j + p, is frame j of the STFT."""
  x = np.arange(1, 40 * hop + 1, dtype=np.float64)
  padded = np.pad(x, n_fft // 2, mode='reflect')
  idx = portable.start_indices(n_fft, hop)
  p = n_fft // 2 // hop
  size = n_fft + hop
  for k in range(p + 3):
    end = (k + p + 1) * hop
    buf = np.concatenate([np.zeros(size), x])[end : end + size]
    got = buf[idx[min(k, p)]]
    want = padded[k * hop : k * hop + n_fft]
    np.testing.assert_array_equal(got, want, err_msg=f'frame {k}')


def _model(**kw):
  cfg = dict(d_model=32, n_layers=2, block=dict(d_state=8))
  cfg['neuron'] = dict(mode='temporal')
  cfg.update(kw)
  return spiking_s4.from_config(cfg)


@pytest.mark.parametrize(
  'kw',
  [
    {},
    {'window': 'hann'},
    {'n_fft': 256, 'hop_length': 64},
    {'neuron': {'spiking': False}},
  ],
  ids=['rect', 'hann', 'n_fft256', 'gelu'],
)
def test_stream_equals_stream_step_one_hop_later(kw):
  model = _model(**kw)
  hop = model.hop_length
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 60 * hop)).astype(np.float32)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 4 * hop)))
  # Larger weights so that the thresholds are crossed often.
  variables = jax.tree.map(lambda v: v * 3.0, variables)
  stream = portable.SpikingS4Stream(variables, model)
  state = stream.init_state(2)
  step = jax.jit(stream.step)
  ref_state = spiking_s4.init_stream(variables, model, 2)
  got, want = [], []
  for m in range(x.shape[-1] // hop):
    h = x[:, m * hop : (m + 1) * hop]
    out, state = step(h, state)
    got.append(np.asarray(out))
    out, ref_state = spiking_s4.stream_step(
      variables, ref_state, jnp.asarray(h)
    )
    want.append(np.asarray(out))
  got = np.concatenate(got[1:], -1)
  want = np.concatenate(want[:-1], -1)
  peak = np.abs(want).max()
  assert peak > 0
  err = np.abs(got - want).max()
  assert err <= 1e-5 * peak, f'max error {err} against peak {peak}'
  delay = stream.delay_hops * hop
  assert np.all(got[:, : delay - hop] == 0) and np.any(got[:, delay - hop :])


def test_streams_at_different_positions_share_a_batch():
  """Each row has its own counter: a stream joining late starts cleanly."""
  model = _model()
  hop = model.hop_length
  variables = model.init(jax.random.key(0), jnp.zeros((1, 4 * hop)))
  stream = portable.SpikingS4Stream(variables, model)
  x = np.random.default_rng(2).standard_normal((20 * hop,)).astype(np.float32)
  step = jax.jit(stream.step)
  alone = stream.init_state(1)
  outs_alone = []
  for m in range(20):
    out, alone = step(x[None, m * hop : (m + 1) * hop], alone)
    outs_alone.append(np.asarray(out[0]))
  both = stream.init_state(2)
  zero = stream.init_state(1)
  outs = []
  for m in range(25):  # Row 1 starts 5 hops after row 0.
    if m <= 5:  # Row 1 idles on junk input, then starts from zero state.
      both = {
        k: np.concatenate([np.asarray(v)[:1], zero[k]]) for k, v in both.items()
      }
    a = x[m * hop : (m + 1) * hop] if m < 20 else np.zeros(hop, np.float32)
    b = x[(m - 5) * hop : (m - 4) * hop] if m >= 5 else np.ones(hop, np.float32)
    out, both = step(np.stack([a, b]), both)
    outs.append(np.asarray(out[1]))
  want = np.concatenate(outs_alone)
  err = np.abs(np.concatenate(outs[5:]) - want).max()
  assert err <= 1e-5 * np.abs(want).max(), f'late stream differs by {err}'


def test_state_specs_name_every_tensor_of_the_state():
  model = _model()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 512)))
  stream = portable.SpikingS4Stream(variables, model)
  state = stream.init_state(3)
  assert list(state) == list(stream.state_names)
  _, new = jax.jit(stream.step)(np.zeros((3, 128), np.float32), state)
  assert set(new) == set(stream.state_names)  # jit returns sorted keys.
  for spec in stream.state_specs:
    assert new[spec.name].shape == (3, *spec.shape), spec
    assert new[spec.name].dtype == np.dtype(spec.dtype), spec
  assert stream.latency_samples == 640 and stream.delay_hops == 4


@pytest.mark.parametrize('window', ['rect', 'hann'])
def test_dft_matrices_from_tables_equal_the_float64_ones(window):
  w = stft_lib.window_array(window, 512)
  got = jax.jit(lambda: portable.dft_matrices_from_tables(w))()
  want = [*portable.analysis_matrices(w), *portable.synthesis_matrices(w)]
  for name, g, x in zip(
    ['A_re', 'A_im', 'S_re', 'S_im'], got, want, strict=True
  ):
    err = np.abs(np.asarray(g, np.float64) - x).max()
    assert err <= 2e-7 * np.abs(x).max(), f'{name}: error {err}'


def test_compact_dft_step_equals_the_constant_matrix_step():
  model = _model()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 512)))
  variables = jax.tree.map(lambda v: v * 3.0, variables)
  stream = portable.SpikingS4Stream(variables, model)
  x = np.random.default_rng(4).standard_normal((1, 30 * 128)).astype('float32')
  outs = {}
  for compact in (False, True):
    state = stream.init_state(1)
    step = jax.jit(lambda h, s, c=compact: stream.step(h, s, None, c))
    got = []
    for m in range(30):
      out, state = step(x[:, m * 128 : (m + 1) * 128], state)
      got.append(np.asarray(out))
    outs[compact] = np.concatenate(got, -1)
  err = np.abs(outs[True] - outs[False]).max()
  assert err <= 1e-5 * np.abs(outs[False]).max(), f'compact DFT off by {err}'
