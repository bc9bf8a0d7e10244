"""s4jax.inference: the SpeechModel interface and running models on signals."""

import dataclasses
import itertools
import math

import jax
import numpy as np
import pytest
from scipy import signal as scipy_signal

from s4jax import inference
from s4jax.audio import permutation
from s4jax.audio import resample as resample_lib
from s4jax.training import tasks


def _init(task, samples):
  """Task parameters, initialised under jit (one compile, not one per op)."""
  return jax.jit(task.init, static_argnums=1)(jax.random.key(0), samples)


@pytest.fixture(scope='module')
def spiking():
  """A smoke-size Spiking-S4 with random weights (16 kHz, hop 128)."""
  from configs import demo

  config = demo.get_config('smoke=True')
  params = _init(tasks.create_task(config), 2048)
  return inference.from_run_config(config, params, step=0)


@pytest.fixture(scope='module')
def s4m():
  """A smoke-size S4M with random weights: 8 kHz, 2 sources, hop 8."""
  from configs import s4m_tiny

  config = s4m_tiny.get_config('smoke=True')
  params = _init(tasks.create_task(config), 2000)
  model = inference.from_run_config(config, params, step=0)
  # Blocks of 0.1 s with 0.05 s of context: a short stream has several.
  return dataclasses.replace(model, block_seconds=0.1, context_seconds=0.05)


@pytest.fixture(scope='module')
def toy():
  """The toy separator of the training tests (frame-local, 32 samples)."""
  from tests.training import toy_config

  config = toy_config.get_config('task=separation')
  params = tasks.create_task(config).init(jax.random.key(0), 512)
  return inference.from_run_config(config, params, step=3)


def _noise(n, seed=0, scale=0.1):
  return (scale * np.random.default_rng(seed).standard_normal(n)).astype(
    np.float32
  )


class _Identity:
  """A SpeechModel written from scratch: each output is the input."""

  sample_rate = 8000
  num_outputs = 1
  hop_length = 4
  latency = 8

  def offline(self, x):
    return np.asarray(x, np.float32)[:, None]

  def init_stream(self, batch=1):
    return np.zeros((batch, self.latency - self.hop_length), np.float32)

  def stream_step(self, state, hop):
    both = np.concatenate([state, hop], axis=-1)
    return both[:, None, : self.hop_length], both[:, self.hop_length :]

  def flush(self, state, last=None):
    if last is not None:
      state = np.concatenate([state, last], axis=-1)
    return state[:, None]

  def count_macs(self, seconds=1.0):
    del seconds
    return {'total': 0, 'per_module': {}, 'source': 'none', 'counted': ''}


# The interface --------------------------------------------------------------


def test_every_implementation_is_a_speech_model(spiking, s4m, toy):
  for model in (spiking, s4m, toy, _Identity()):
    assert isinstance(model, inference.SpeechModel), type(model)
  assert isinstance(spiking, inference.SpikingS4Model)
  assert isinstance(s4m, inference.S4MModel)
  assert isinstance(toy, inference.TaskModel)
  got = [
    (m.sample_rate, m.num_outputs, m.hop_length, m.latency)
    for m in (spiking, s4m, toy)
  ]
  # Spiking-S4: one window (n_fft 512) of latency; S4M: block + context.
  assert got == [(16000, 1, 128, 512), (8000, 2, 8, 1200), (8000, 2, 1, None)]
  assert not isinstance(object(), inference.SpeechModel)


def test_offline_shapes_and_the_mono_call(spiking, s4m, toy):
  for model, n in ((spiking, 2048), (s4m, 800), (toy, 512)):
    x = _noise(n)
    y = model.offline(np.stack([x, 2 * x]))
    assert y.shape == (2, model.num_outputs, n) and y.dtype == np.float32
    mono = model(x)
    want = y[0, 0] if model.num_outputs == 1 else y[0]
    np.testing.assert_allclose(mono, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r'\(batch, samples\)'):
    toy.offline(_noise(512))


def test_replace_gives_the_same_model_with_other_params(toy):
  zeros = jax.tree.map(np.zeros_like, toy.params)
  other = dataclasses.replace(toy, params=zeros)
  assert type(other) is type(toy) and other.step == toy.step
  x = _noise(512)
  assert np.any(toy(x)) and not np.array_equal(other(x), toy(x))


def test_only_models_that_stream_offer_it(toy):
  with pytest.raises(inference.StreamingUnsupportedError, match='no streaming'):
    toy.init_stream(1)


def test_count_macs(spiking, s4m, toy):
  from s4jax.models import energy
  from s4jax.models import s4m as s4m_lib

  got = spiking.count_macs(2.0)
  want = energy.count_macs(spiking.module, 2.0, 16000)
  assert got['total'] == want['per_clip'] and got['per_module']
  got = s4m.count_macs(1.0)
  assert got['total'] == s4m_lib.count_macs(s4m.model_config)['total']
  # Toy: 250 frames/s, Dense 32 -> 16 and 16 -> 2 * 32 per frame.
  got = toy.count_macs(1.0)
  assert got['total'] == 250 * (32 * 16 + 16 * 64), got
  for model in (spiking, s4m, toy):
    counts = model.count_macs(1.0)
    assert set(counts) == {'total', 'per_module', 'source', 'counted'}


# Streaming ------------------------------------------------------------------


def test_spiking_stream_equals_its_own_enhance_streaming(spiking):
  from s4jax.models import spiking_s4

  x = _noise(16 * 128 + 40, seed=1)
  got = inference.streamed(spiking, x)
  want = spiking_s4.enhance_streaming(
    spiking.variables, spiking.module, x[None]
  )
  assert got.shape == (1, len(x))
  np.testing.assert_array_equal(got[0], np.asarray(want)[0])


# Whole hops and not: 257 samples is the shortest signal the STFT pads
# (more than n_fft / 2); 2049 and 2175 end 1 and 127 samples into a hop.
@pytest.mark.parametrize('length', [257, 300, 2048, 2049, 2175])
def test_spiking_stream_equals_offline_at_any_length(spiking, length):
  """The stream ends where the signal does, as offline.

  A partial last hop is given to `flush`, which reflect-pads it about the
  signal's last sample as the offline STFT does, so no sample differs by
  more than float32 rounding (the S4D recurrence against the FFT
  convolution): 1e-5 of the output's peak. (Zero-padding the last hop
  instead changed the last `n_fft - hop + r` samples by up to 20% of the
  peak with the pretrained model.)
  """
  x = _noise(length, seed=length)
  got = inference.streamed(spiking, x)[0]
  want = spiking.offline(x[None])[0, 0]
  assert got.shape == want.shape == (length,)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_stream_step_delay_is_latency_minus_hop():
  model = _Identity()
  x = _noise(40)
  state = model.init_stream(1)
  outs = []
  for m in range(10):
    out, state = model.stream_step(state, x[None, 4 * m : 4 * m + 4])
    outs.append(out[0, 0])
  tail = model.flush(state)
  assert tail.shape == (1, 1, model.latency - model.hop_length)
  stream = np.concatenate(outs + [tail[0, 0]])
  np.testing.assert_array_equal(stream[:4], 0)
  np.testing.assert_array_equal(stream[4:], x)
  # A partial last hop: r more samples out.
  tail = model.flush(state, x[None, :3])
  assert tail.shape == (1, 1, model.latency - model.hop_length + 3)
  np.testing.assert_array_equal(inference.streamed(model, x[:37])[0], x[:37])


def test_s4m_streams_block_online_as_chunked_windows(s4m):
  assert (s4m.block, s4m.context) == (800, 400)
  x = _noise(3 * 800 + 123, seed=2)
  state = s4m.init_stream(1)
  out, _ = s4m.stream_step(state, x[None, :8])
  assert out.shape == (1, 2, 8)
  got = inference.streamed(s4m, x)
  want = inference.chunked(s4m, x, chunk=s4m.block, context=s4m.context)
  assert got.shape == want.shape == (2, len(x))
  np.testing.assert_array_equal(got, want)
  tail = s4m.flush(s4m.init_stream(2))
  assert tail.shape == (2, 2, s4m.latency - s4m.hop_length)
  tail = s4m.flush(s4m.init_stream(2), np.zeros((2, 3), np.float32))
  assert tail.shape == (2, 2, s4m.latency - s4m.hop_length + 3)


# Windows with context ---------------------------------------------------------


def test_a_signal_that_fits_one_window_is_the_offline_output(spiking, s4m):
  # No artificial context: the model sees the signal alone.
  for model, n, chunk, context in (
    (spiking, 3000, 2048, 512),
    (spiking, 3000, 4096, 0),
    (s4m, 900, 500, 200),
  ):
    x = _noise(n, seed=3)
    got = inference.chunked(model, x, chunk=chunk, context=context)
    np.testing.assert_array_equal(got, model.offline(x[None])[0])


def test_chunked_equals_offline_for_a_frame_local_model(toy):
  # The toy model masks 32-sample frames independently, so windows that
  # start on frames reproduce it: only the placement of windows is tested.
  x = _noise(32 * 101, seed=4)
  got = inference.chunked(toy, x, chunk=320, context=64)
  want = toy.offline(x[None])[0]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_chunked_spiking_s4_stays_close_to_the_whole_signal():
  """The trained Spiking-S4 on 12 s in windows of 4 s with 1 s of context.

  Not exact, and more context does not make it so: the S4D layers remember
  for seconds and the neurons threshold, so a window's different start
  moves spikes whose effect outlasts the context (the error does not decay
  with the distance from a window's start). Measured: 6.8% rms of the
  output's rms (24% of the peak at most, in the first window, whose left
  context is zeros). A window misplaced by one hop gives over 50%.
  """
  from data_pipelines import synthetic
  from s4jax.pretrained import hub

  model = hub.from_pretrained('spiking_s4')
  spec = synthetic.SyntheticSpec(
    split='validation',
    total_seconds=12.0,
    clip_seconds=12.0,
    sample_rate=16000,
    seed=0,
  )
  x = synthetic.make_example(spec, 0)['noisy'].astype(np.float32)
  want = model.offline(x[None])[0]
  got = inference.chunked(model, x, chunk=4 * 16000, context=16000)
  rms = lambda a: float(np.sqrt(np.mean(a**2)))  # noqa: E731
  assert rms(got - want) < 0.1 * rms(want), rms(got - want) / rms(want)
  shifted = np.roll(want, 128, axis=-1)
  assert rms(shifted - want) > 0.5 * rms(want)


class _Swapper:
  """A fake separator knowing the true sources, swapped in odd windows.

  Windows come in order, so the `k`-th call is the window starting at
  `k * chunk - context`.
  """

  sample_rate, num_outputs, hop_length, latency = 8000, 2, 1, None

  def __init__(self, sources, chunk, context):
    self.sources, self.chunk, self.context = sources, chunk, context
    self.calls = 0

  def offline(self, x):
    start = self.calls * self.chunk - self.context
    out = resample_lib.window(self.sources, start, start + x.shape[-1])
    out = out[::-1] if self.calls % 2 else out
    self.calls += 1
    return out[None]


def test_speaker_order_is_kept_across_windows():
  t = np.arange(4000) / 8000
  sources = np.stack(
    [np.sin(2 * np.pi * 220 * t), np.sign(np.sin(2 * np.pi * 31 * t))]
  ).astype(np.float32)
  model = _Swapper(sources, chunk=500, context=100)
  x = sources.sum(0)
  got = inference.chunked(model, x, chunk=500, context=100)
  assert model.calls == 8
  np.testing.assert_array_equal(got, sources)
  # Without shared audio (no context) the order cannot be matched.
  model = _Swapper(sources, chunk=500, context=0)
  got = inference.chunked(model, x, chunk=500, context=0)
  np.testing.assert_array_equal(got[:, 500:1000], sources[::-1, 500:1000])


def test_best_permutation_matches_brute_force():
  rng = np.random.default_rng(5)
  for num in (1, 2, 3, 5):
    score = rng.standard_normal((num, num))
    got = permutation.best_permutation(score)
    best = max(
      itertools.permutations(range(num)),
      key=lambda p: sum(score[p[j], j] for j in range(num)),
    )
    assert tuple(got) == best, (num, got, best)
  a = rng.standard_normal((3, 50))
  order = np.array([2, 0, 1])
  got = permutation.match_order(a, a[np.argsort(order)])
  np.testing.assert_array_equal(np.argsort(order)[got], [0, 1, 2])


# Sample rates -----------------------------------------------------------------


def test_resample_matches_a_sine_and_scipy():
  rate_in, rate_out, f = 44100, 16000, 440.0
  n = rate_in // 2
  x = np.sin(2 * np.pi * f * np.arange(n) / rate_in)
  y = resample_lib.resample(x, rate_in, rate_out)
  assert y.dtype == x.dtype and len(y) == math.ceil(n * rate_out / rate_in)
  want = np.sin(2 * np.pi * f * np.arange(len(y)) / rate_out)
  inner = slice(200, -200)  # Away from the filter's edge effects.
  np.testing.assert_allclose(y[inner], want[inner], atol=2e-3)
  ref = scipy_signal.resample_poly(x, 160, 441)
  np.testing.assert_array_equal(y, ref)
  back = resample_lib.resample(y, rate_out, rate_in)[:n]
  np.testing.assert_allclose(back[inner], x[inner], atol=5e-3)
  assert resample_lib.resample(x, 8000, 8000) is x
  with pytest.raises(ValueError, match='must be positive'):
    resample_lib.resample(x, 0, 8000)


def test_rates_stretches_join_into_the_whole_signal():
  rates = resample_lib.Rates(44100, 8000)
  assert (rates.unit_signal, rates.unit_model) == (441, 80)
  x = _noise(44100, seed=6)
  whole = resample_lib.resample(x, 44100, 8000)
  read = resample_lib.read_array(x)
  parts = [
    rates.convert(read, a, min(a + 800, len(whole)), 44100)
    for a in range(0, len(whole), 800)
  ]
  np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
  assert rates.grid(0.5) == 4000 and rates.grid(0.01, 128) == 640


def test_process_resamples_in_and_out_and_keeps_the_length():
  x = np.sin(2 * np.pi * 300 * np.arange(2 * 44100) / 44100).astype('f4')
  for mode in ('offline', 'chunked', 'stream'):
    y = inference.process(
      _Identity(), x, 44100, mode=mode, chunk_seconds=0.5, context_seconds=0.1
    )
    assert y.shape == (1, len(x)), (mode, y.shape)
    # The two passes of resample_poly's filter keep the gain within 0.5%.
    inner = slice(1000, -1000)
    np.testing.assert_allclose(y[0, inner], x[inner], atol=5e-3, err_msg=mode)


def test_process_of_a_short_signal_is_the_offline_mode(spiking):
  x = _noise(20000, seed=7)  # 1.25 s; 1 s chunks + 2 x 1 s context: whole.
  got = inference.process(spiking, x, 16000, chunk_seconds=1.0)
  want = inference.process(spiking, x, 16000, mode='offline')
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(got, spiking.offline(x[None])[0])
  with pytest.raises(ValueError, match='Unknown mode'):
    inference.process(spiking, x, 16000, mode='fast')
