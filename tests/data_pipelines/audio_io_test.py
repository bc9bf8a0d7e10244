"""Reading, writing and resampling audio files."""

import os

import numpy as np
import pytest
import soundfile as sf

from data_pipelines import audio_io


def _sine(f, sr, seconds, phase=0.0):
  t = np.arange(int(sr * seconds)) / sr
  return 0.5 * np.sin(2 * np.pi * f * t + phase)


def test_roundtrip_pcm16_within_one_lsb(tmp_path):
  x = _sine(440.0, 16000, 0.2)
  path = str(tmp_path / 'a.wav')
  audio_io.write_audio(path, x, 16000)
  y, sr = audio_io.read_audio(path)
  assert sr == 16000 and y.dtype == np.float32, (sr, y.dtype)
  err = np.max(np.abs(y - x))
  assert err <= 1 / 32768 + 1e-7, f'PCM_16 round trip error {err}'


def test_resample_matches_analytic_sine(tmp_path):
  path = str(tmp_path / 'a.wav')
  sf.write(path, _sine(1000.0, 48000, 0.5), 48000, subtype='FLOAT')
  y, sr = audio_io.read_audio(path, 16000)
  ref = _sine(1000.0, 16000, 0.5)
  assert sr == 48000 and len(y) == len(ref), (sr, len(y), len(ref))
  inner = slice(200, -200)  # the polyphase filter's edges
  err = np.max(np.abs(y[inner] - ref[inner]))
  assert err < 2e-3, f'48k->16k sine differs from analytic by {err}'


def test_resample_shapes_and_identity():
  x = np.random.default_rng(0).standard_normal((2, 3, 800)).astype(np.float32)
  assert audio_io.resample(x, 16000, 16000) is x
  y = audio_io.resample(x, 16000, 8000)
  assert y.shape == (2, 3, 400) and y.dtype == np.float32, (y.shape, y.dtype)


def test_stereo_mix_warns_and_averages(tmp_path):
  left, right = _sine(300.0, 8000, 0.1), _sine(500.0, 8000, 0.1)
  path = str(tmp_path / 'st.wav')
  sf.write(path, np.stack([left, right], 1), 8000, subtype='FLOAT')
  with pytest.warns(UserWarning, match='2 channels'):
    y, _ = audio_io.read_audio(path, mono='mix')
  np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)
  y0, _ = audio_io.read_audio(path, mono='first')
  np.testing.assert_allclose(y0, left, atol=1e-6)


def test_stereo_error_names_the_problem(tmp_path):
  path = str(tmp_path / 'st.wav')
  sf.write(path, np.zeros((100, 2)) + 0.1, 8000)
  with pytest.raises(audio_io.AudioError, match='2 channels.*mono'):
    audio_io.read_audio(path, mono='error')


def test_bad_files_give_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.wav'):
    audio_io.read_audio(str(tmp_path / 'nope.wav'))
  text = tmp_path / 'notes.wav'
  text.write_text('not audio')
  with pytest.raises(audio_io.AudioError, match='Cannot read audio file'):
    audio_io.read_audio(str(text))
  empty = str(tmp_path / 'empty.wav')
  sf.write(empty, np.zeros(0), 16000)
  with pytest.raises(audio_io.AudioError, match='empty'):
    audio_io.read_audio(empty)
  nan = str(tmp_path / 'nan.wav')
  sf.write(nan, np.array([0.1, np.nan, 0.2]), 16000, subtype='FLOAT')
  with pytest.raises(audio_io.AudioError, match='NaN'):
    audio_io.read_audio(nan)


def test_write_refuses_protected_path(tmp_path):
  src = str(tmp_path / 'in.wav')
  audio_io.write_audio(src, _sine(200.0, 8000, 0.1), 8000)
  before = open(src, 'rb').read()
  alias = os.path.join(str(tmp_path), '.', 'in.wav')
  with pytest.raises(audio_io.AudioError, match='Refusing to overwrite'):
    audio_io.write_audio(alias, np.zeros(10), 8000, protected=src)
  assert open(src, 'rb').read() == before, 'protected file was modified'


def test_write_rejects_nan_and_warns_on_clipping(tmp_path):
  with pytest.raises(audio_io.AudioError, match='NaN'):
    audio_io.write_audio(str(tmp_path / 'x.wav'), np.array([np.nan]), 8000)
  with pytest.warns(UserWarning, match='clipped'):
    audio_io.write_audio(str(tmp_path / 'y.wav'), np.array([1.5, -0.2]), 8000)
  y, _ = audio_io.read_audio(str(tmp_path / 'y.wav'))
  assert y[0] > 0.999, f'expected saturation at +1, got {y[0]}'


def test_int16_conversion_round_trips():
  x = np.array([-1.0, -0.5, 0.0, 0.25, 0.999], np.float32)
  np.testing.assert_allclose(
    audio_io.from_int16(audio_io.to_int16(x)), x, atol=1 / 32768
  )
