"""Room impulse responses: RT60, direct path, determinism."""

import numpy as np

from data_pipelines import rir

SR = 16000


def test_rt60_and_direct_path():
  rirs, info = rir.sample_rirs(0, 12, SR, (0.1, 0.8))
  assert rirs.shape[0] == 12 and rirs.dtype == np.float32
  for h, i in zip(rirs, info, strict=True):
    assert 0.1 <= i['rt60'] <= 0.8
    assert i['direct'] == rir.LEAD and h[rir.LEAD] == 1.0
    assert np.all(h[: rir.LEAD - 1] == 0) or np.max(np.abs(h[:6])) < 1e-6
    measured = rir.measured_rt60(h[: i['length']], SR)
    assert abs(measured - i['rt60']) < 0.25 * i['rt60'] + 0.03, (measured, i)
  again, _ = rir.sample_rirs(0, 12, SR, (0.1, 0.8))
  assert rirs.tobytes() == again.tobytes()


def test_sabine_absorption_is_bounded():
  a_short = rir.sabine_absorption((5.0, 4.0, 3.0), 0.1)
  a_long = rir.sabine_absorption((5.0, 4.0, 3.0), 0.8)
  assert 0 < a_long < a_short < 1
