"""STFT / iSTFT / streaming STFT against float64 NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.audio import stft as stft_lib


def _np_window(kind, n_fft, win_length):
  n = np.arange(win_length)
  w = (
    np.ones(win_length)
    if kind == 'rect'
    else (0.5 - 0.5 * np.cos(2 * np.pi * n / win_length))
  )
  left = (n_fft - win_length) // 2
  return np.pad(w, (left, n_fft - win_length - left))


def _np_stft(x, n_fft, hop, window, win_length=None):
  """torch.stft(center=True, pad_mode='reflect', onesided) written out."""
  w = _np_window(window, n_fft, win_length or n_fft)
  xp = np.pad(np.asarray(x, np.float64), n_fft // 2, mode='reflect')
  count = 1 + (xp.size - n_fft) // hop
  frames = np.stack([xp[t * hop : t * hop + n_fft] * w for t in range(count)])
  return np.fft.rfft(frames, axis=-1)  # (T, F)


def _np_istft(spec, n_fft, hop, window, length):
  """Windowed overlap-add divided by the squared-window envelope."""
  w = _np_window(window, n_fft, n_fft)
  count = spec.shape[0]
  total = (count - 1) * hop + n_fft
  y, env = np.zeros(total), np.zeros(total)
  for t in range(count):
    y[t * hop : t * hop + n_fft] += np.fft.irfft(spec[t], n=n_fft) * w
    env[t * hop : t * hop + n_fft] += w**2
  start = n_fft // 2
  return y[start : start + length] / env[start : start + length]


def _signal(shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_frame_count_of_a_30s_clip():
  assert stft_lib.num_frames(480_000, 128) == 3751
  spec = jax.eval_shape(
    stft_lib.stft, jax.ShapeDtypeStruct((2, 480_000), jnp.float32)
  )
  assert spec.shape == (2, 3751, 257), (
    f'expected (2, 3751, 257), got {spec.shape}'
  )


@pytest.mark.parametrize('window', ['rect', 'hann'])
@pytest.mark.parametrize(
  'n_fft,hop,win', [(512, 128, None), (64, 16, 48), (60, 25, None)]
)
def test_stft_matches_numpy_reference(window, n_fft, hop, win):
  x = _signal(1000)
  got = np.asarray(stft_lib.stft(jnp.asarray(x), n_fft, hop, win, window))
  want = _np_stft(x, n_fft, hop, window, win)
  assert got.shape == want.shape, f'shape {got.shape}, expected {want.shape}'
  err = np.max(np.abs(got - want)) / np.max(np.abs(want))
  assert err < 2e-6, f'relative error {err:.2e}, expected < 2e-6'


@pytest.mark.parametrize('window', ['rect', 'hann'])
@pytest.mark.parametrize('length', [480_000, 1000, 1001])
def test_perfect_reconstruction_float32(window, length):
  x = _signal((2, length), 1)
  y = stft_lib.istft(
    stft_lib.stft(jnp.asarray(x), window=window), window=window, length=length
  )
  err = np.max(np.abs(np.asarray(y) - x))
  assert y.shape == x.shape
  assert err < 5e-6, f'max |istft(stft(x)) - x| = {err:.2e}, expected < 5e-6'


@pytest.mark.parametrize('window', ['rect', 'hann'])
def test_perfect_reconstruction_float64(window):
  x = np.random.default_rng(2).normal(size=(3, 4000))
  with jax.enable_x64(True):
    y = stft_lib.istft(
      stft_lib.stft(jnp.asarray(x), window=window),
      window=window,
      length=x.shape[-1],
    )
    assert y.dtype == jnp.float64
  err = np.max(np.abs(np.asarray(y) - x))
  assert err < 1e-12, f'max error {err:.2e}, expected < 1e-12'


@pytest.mark.parametrize('window', ['rect', 'hann'])
def test_istft_of_arbitrary_spectrogram_matches_reference(window):
  rng = np.random.default_rng(3)
  spec = rng.normal(size=(20, 257)) + 1j * rng.normal(size=(20, 257))
  spec[:, 0] = spec[:, 0].real
  spec[:, -1] = spec[:, -1].real
  got = stft_lib.istft(
    jnp.asarray(spec, jnp.complex64), window=window, length=19 * 128
  )
  want = _np_istft(spec, 512, 128, window, 19 * 128)
  err = np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want))
  assert err < 1e-5, f'relative error {err:.2e}, expected < 1e-5'


def test_istft_default_length_and_padding():
  x = _signal(1280)
  spec = stft_lib.stft(jnp.asarray(x))
  assert stft_lib.istft(spec).shape == (1280,)
  # The overlap-add covers 1280 + 256 samples (torch.istft semantics);
  # a longer request is zero-padded.
  padded = np.asarray(stft_lib.istft(spec, length=1600))
  assert padded.shape == (1600,)
  assert np.max(np.abs(padded[:1280] - x)) < 5e-6
  assert np.all(padded[1536:] == 0), 'samples past the frames must be zeros'


def test_magnitude_mask_uses_noisy_phase():
  rng = np.random.default_rng(4)
  spec = rng.normal(size=(5, 9)) + 1j * rng.normal(size=(5, 9))
  spec[0, 0] = 0.0  # angle(0) = 0 must give 0 as well.
  mask = rng.uniform(0, 2, size=(5, 9))
  want = np.abs(spec) * mask * np.exp(1j * np.angle(spec))
  got = stft_lib.apply_magnitude_mask(
    jnp.asarray(spec, jnp.complex64), jnp.asarray(mask, jnp.float32)
  )
  err = np.max(np.abs(np.asarray(got) - want))
  assert err < 1e-5, f'max error {err:.2e}, expected < 1e-5'


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match='too short'):
    stft_lib.stft(jnp.zeros(200))
  with pytest.raises(ValueError, match='Unknown window'):
    stft_lib.stft(jnp.zeros(2000), window='hamming')
  with pytest.raises(ValueError, match='floating'):
    stft_lib.stft(jnp.zeros(2000, jnp.int32))
  with pytest.raises(ValueError, match='bins'):
    stft_lib.istft(jnp.zeros((4, 100), jnp.complex64))
  with pytest.raises(ValueError, match='NOLA'):
    stft_lib.istft(
      jnp.zeros((4, 257), jnp.complex64), hop_length=512, window='hann'
    )
  with pytest.raises(ValueError, match='divide'):
    stft_lib.StreamingSTFT(n_fft=512, hop_length=100)


def _stream(st, x, gain):
  """Streams x (B, L) hop by hop with a per-bin gain; returns (B, L).

  A partial last hop is completed with `last_hop` and ended with `pad`.
  """
  buf = st.init(x.shape[:1])
  p, hop, outs = st.pad_hops, st.hop_length, []
  pad = -x.shape[-1] % hop
  for m in range(-(-x.shape[-1] // hop)):
    hop_in = jnp.asarray(x[:, m * hop : (m + 1) * hop])
    if hop_in.shape[-1] < hop:
      hop_in = st.last_hop(buf, hop_in)
    buf = st.push(buf, hop_in)
    if m < p:
      continue
    if m == p:
      specs, buf = st.start_frames(buf), st.pad_start(buf)
    else:
      specs = st.next_frame(buf)[:, None]
    for j in range(specs.shape[1]):
      buf, out = st.overlap_add(buf, specs[:, j] * gain)
      frame = j if m == p else m - p + 1
      if frame >= p:  # The first p hops out are the start's padding.
        outs.append(np.asarray(out))
  specs = st.end_frames(buf, pad)
  for j in range(specs.shape[1]):
    buf, out = st.overlap_add(buf, specs[:, j] * gain)
    if m - p + 2 + j >= p:  # Frame m - p + 2 + j.
      outs.append(np.asarray(out))
  outs.append(np.asarray(st.tail(buf, pad)))
  return np.concatenate(outs, axis=-1)


@pytest.mark.parametrize('window', ['rect', 'hann'])
def test_streaming_stft_equals_offline(window):
  x = _signal((2, 128 * 40), 5)
  gain = jnp.asarray(np.random.default_rng(6).uniform(0, 2, 257), jnp.float32)
  st = stft_lib.StreamingSTFT(window=window)
  got = _stream(st, x, gain)
  spec = stft_lib.stft(jnp.asarray(x), window=window)
  want = np.asarray(
    stft_lib.istft(spec * gain, window=window, length=x.shape[-1])
  )
  err = np.max(np.abs(got - want))
  assert got.shape == x.shape, f'streamed {got.shape}, expected {x.shape}'
  assert err < 1e-5, f'streaming vs offline max error {err:.2e}'


@pytest.mark.parametrize(
  'n_fft, hop, length',
  [
    (512, 128, 128 * 20 + 1),
    (512, 128, 128 * 20 + 64),
    (512, 128, 128 * 20 + 127),
    (512, 128, 257),  # The shortest signal stft pads.
    (512, 128, 300),
    (256, 128, 128 * 6 + 50),  # One hop of padding: no frame left to flush.
    (512, 64, 64 * 30),  # Four hops of padding: frames 2 and 3 too.
    (512, 64, 64 * 30 + 17),
    (512, 64, 257),
  ],
)
def test_streaming_stft_equals_offline_for_any_length(n_fft, hop, length):
  # A signal ending inside a hop: the end's reflect padding is about its
  # true last sample, as offline.
  x = _signal((2, length), 9)
  bins = n_fft // 2 + 1
  gain = jnp.asarray(np.random.default_rng(10).uniform(0, 2, bins), jnp.float32)
  st = stft_lib.StreamingSTFT(n_fft=n_fft, hop_length=hop)
  got = _stream(st, x, gain)
  kw = dict(n_fft=n_fft, hop_length=hop)
  spec = stft_lib.stft(jnp.asarray(x), **kw)
  want = np.asarray(stft_lib.istft(spec * gain, length=length, **kw))
  assert got.shape == x.shape, f'streamed {got.shape}, expected {x.shape}'
  err = np.max(np.abs(got - want))
  assert err < 1e-5, f'streaming vs offline max error {err:.2e}'


def test_streaming_latency_is_one_window():
  st = stft_lib.StreamingSTFT()
  assert st.latency_samples == 512
  assert stft_lib.stream_reference_delay(st) == 3
  # With a filtering gain, output hop k depends on input hops up to k + 3
  # and no further: perturbing hops 8.. changes output hop 5, not 0..4.
  x = _signal((1, 128 * 12), 7)
  y = x.copy()
  y[:, 128 * 8 :] += 1.0
  gain = jnp.asarray(np.random.default_rng(8).uniform(0, 2, 257), jnp.float32)
  a, b = _stream(st, x, gain), _stream(st, y, gain)
  assert np.max(np.abs(a[:, : 128 * 5] - b[:, : 128 * 5])) < 1e-6
  assert (
    np.max(np.abs(a[:, 128 * 5 : 128 * 6] - b[:, 128 * 5 : 128 * 6])) > 1e-3
  )
