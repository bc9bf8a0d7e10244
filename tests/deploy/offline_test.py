"""Offline (whole-clip) exports of both models, re-run against JAX."""

import json
import os

import jax
import numpy as np
import pytest

from configs import s4m_tiny
from deploy import artifacts, formats, runners
from s4jax import inference
from s4jax.training import tasks

TOL = 1e-4  # Of the output peak.


def _s4m_model():
  """A smoke-size S4M separator with random weights, as `load_model`."""
  config = s4m_tiny.get_config('smoke=True')
  task = tasks.create_task(config)
  # Jitted: eager initialisation compiles each operation on its own.
  params = jax.jit(task.init, static_argnums=1)(jax.random.key(0), 2000)
  return inference.from_run_config(config, params, step=0, task=task)


@pytest.mark.parametrize('which', ['spiking_s4', 's4m'])
def test_offline_export_matches_jax_in_every_format(
  which, tmp_path, monkeypatch
):
  if which == 'spiking_s4':
    from s4jax.pretrained import hub

    model, seconds = hub.from_pretrained('spiking_s4'), 1.0
  else:
    model, seconds = _s4m_model(), 0.25
  # The form `export` builds is kept for the reference below: folding the
  # parameters into a form costs as much as an export's own checks.
  forms = []
  offline_form = artifacts.offline_form

  def keep(*args, **kwargs):
    forms.append(offline_form(*args, **kwargs))
    return forms[-1]

  monkeypatch.setattr(artifacts, 'offline_form', keep)
  out = str(tmp_path / 'out')
  meta = artifacts.export(model, out, form='offline', seconds=seconds)
  (form,) = forms
  with open(os.path.join(out, 'metadata.json')) as f:
    assert json.load(f) == meta
  length = meta['num_samples']
  assert length == round(seconds * model.sample_rate)
  x = artifacts.test_signal(seconds, model.sample_rate, seed=11)
  (want,) = jax.jit(form.fn)(x)
  want = np.asarray(want)
  if model.separates:
    assert want.shape == (1, 2, length), want.shape
  for fmt, info in meta['files'].items():
    with open(os.path.join(out, info['file']), 'rb') as f:
      r = runners.runner(fmt, f.read(), form.input_names, form.output_names)
    got = r.run({'noisy': x})[form.output_names[0]]
    err = np.abs(np.asarray(got) - want).max()
    assert err <= TOL * np.abs(want).max(), f'{which} {fmt}: error {err}'
    if fmt == 'stablehlo':
      assert err == 0.0, f'StableHLO round trip differs by {err}'
    batch = 'B' if fmt == 'stablehlo' else 1
    assert info['inputs'][0]['shape'] == [batch, length], info['inputs']


def test_offline_clip_too_short_and_stream_seofp_only(tmp_path):
  from s4jax.pretrained import hub

  model = hub.from_pretrained('spiking_s4')
  with pytest.raises(formats.ExportError, match='at least 1024 samples'):
    artifacts.offline_form(model, 'test', 0.01)
  with pytest.raises(formats.ExportError, match='stream form only'):
    artifacts.export(model, str(tmp_path / 'x'), form='offline', seofp_bits=5)
  assert not (tmp_path / 'x').exists()
