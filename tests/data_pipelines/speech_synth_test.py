"""Tests for data_pipelines.speech_synth: source-filter speech-like signals."""

import numpy as np
import pytest

from data_pipelines import mixing, speech_synth

SR = 16000


def test_speech_pitch_and_syllable_rhythm():
  rng = np.random.default_rng(5)
  talker = speech_synth.sample_talker(rng, 'female')
  x = speech_synth.synthesize(rng, talker, 8 * SR, SR)
  # Pitch: autocorrelation peak of the loudest 40 ms frames.
  frame = int(0.04 * SR)
  frames = x[: len(x) // frame * frame].reshape(-1, frame)
  loud = frames[np.argsort(np.sum(frames**2, 1))[-20:]]
  lags = np.arange(SR // 400, SR // 60)
  f0s = []
  for fr in loud:
    ac = np.correlate(fr, fr, 'full')[frame - 1 :]
    f0s.append(SR / lags[np.argmax(ac[lags])])
  f0 = np.median(f0s)
  assert 0.7 * talker.f0 < f0 < 1.5 * talker.f0, (f0, talker.f0)
  # Rhythm: the envelope's modulation spectrum peaks at syllable rates.
  env = np.sqrt(np.mean(frames**2, 1))  # 25 Hz envelope
  spec = np.abs(np.fft.rfft(env - env.mean()))
  freqs = np.fft.rfftfreq(len(env), 0.04)
  peak = freqs[1:][np.argmax(spec[1:])]
  assert 0.5 <= peak <= 8.0, f'envelope modulation peak at {peak} Hz'


def test_speech_energy_mostly_below_4khz_and_pauses():
  rng = np.random.default_rng(6)
  x = speech_synth.synthesize(rng, speech_synth.sample_talker(rng), 6 * SR, SR)
  psd = np.abs(np.fft.rfft(x)) ** 2
  f = np.fft.rfftfreq(len(x), 1 / SR)
  share = psd[f < 4000].sum() / psd.sum()
  assert share > 0.8, f'only {share:.2f} of the energy below 4 kHz'
  act = mixing.activity(x, SR)
  assert 0.3 < act < 0.98, f'activity {act}: speech needs pauses'


@pytest.mark.parametrize('kind', sorted(speech_synth.TALKER_TYPES))
def test_talkers_of_a_kind_have_its_pitch_and_formant_ranges(kind):
  (f_lo, f_hi), (s_lo, s_hi) = speech_synth.TALKER_TYPES[kind]
  for seed in range(10):
    talker = speech_synth.sample_talker(np.random.default_rng(seed), kind)
    assert talker.kind == kind, talker
    assert f_lo <= talker.f0 <= f_hi, f'f0 {talker.f0} not in {f_lo}-{f_hi}'
    assert s_lo <= talker.formant_scale <= s_hi, (
      f'formant scale {talker.formant_scale} not in {s_lo}-{s_hi}'
    )


def test_sample_talker_without_kind_draws_a_known_kind_from_the_seed():
  kinds = set()
  for seed in range(12):
    a = speech_synth.sample_talker(np.random.default_rng(seed))
    b = speech_synth.sample_talker(np.random.default_rng(seed))
    assert a == b, f'seed {seed}: {a} != {b}'
    kinds.add(a.kind)
  assert kinds == set(speech_synth.TALKER_TYPES), (
    f'expected every kind in 12 draws, got {sorted(kinds)}'
  )


def test_unknown_talker_kind_is_refused_naming_it():
  with pytest.raises(ValueError, match="Unknown talker kind 'robot'"):
    speech_synth.sample_talker(np.random.default_rng(0), 'robot')


@pytest.mark.parametrize('sr', [8000, 22050])
def test_synthesize_is_a_float64_function_of_the_seed(sr):
  talker = speech_synth.sample_talker(np.random.default_rng(0))
  a = speech_synth.synthesize(np.random.default_rng(1), talker, sr // 2, sr)
  b = speech_synth.synthesize(np.random.default_rng(1), talker, sr // 2, sr)
  c = speech_synth.synthesize(np.random.default_rng(2), talker, sr // 2, sr)
  assert a.shape == (sr // 2,) and a.dtype == np.float64, (a.shape, a.dtype)
  assert np.all(np.isfinite(a)), 'non-finite samples'
  assert a.tobytes() == b.tobytes(), 'same seed gave different speech'
  assert a.tobytes() != c.tobytes(), 'other seed gave the same speech'


@pytest.mark.parametrize('seed', range(3))
def test_active_speech_rms_is_about_0p1(seed):
  rng = np.random.default_rng(seed)
  x = speech_synth.synthesize(rng, speech_synth.sample_talker(rng), SR, SR)
  frames = x.reshape(-1, SR // 100)  # 10 ms
  rms = np.sqrt(np.mean(frames**2, 1))
  active = frames[rms > 0.1 * rms.max()]  # within 20 dB of the loudest
  got = float(np.sqrt(np.mean(active**2)))
  assert 0.07 < got < 0.14, f'expected an active RMS of about 0.1, got {got}'
