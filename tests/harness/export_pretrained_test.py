"""harness.export_pretrained: a run exported as a pretrained model folder.

The folder is read back with `s4jax.pretrained` (its own tests, with folders
written by hand, are in tests/pretrained/hub_test.py).
"""

import os
import shutil

import jax
import numpy as np
import pytest
import soundfile as sf
from flax import serialization

from harness import export_pretrained as export
from harness import inference, trainer
from s4jax.pretrained import hub
from s4jax.training import testing
from tests.launch import cli
from tests.training import toy_config

NAME = 'toy_se'


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A 2-step toy enhancement run (seconds; see tests/launch/enhance_cli)."""
  workdir = str(tmp_path_factory.mktemp('runs') / 'enhancement')
  trainer.train_and_evaluate(
    toy_config.get_config('task=enhancement,steps=2'), workdir, testing
  )
  return workdir


@pytest.fixture(scope='module')
def exported(run, tmp_path_factory):
  """`run` exported (with a SEOFP copy) under a fresh root."""
  root = str(tmp_path_factory.mktemp('pretrained'))
  result = export.export_run(run, name=NAME, output_root=root, seofp_bits=5)
  return root, result


def _copy(exported, tmp_path):
  """A private copy of the exported root, for tests that damage it."""
  root = str(tmp_path / 'root')
  shutil.copytree(exported[0], root)
  return root, os.path.join(root, NAME)


def test_export_writes_a_folder_that_loads_to_the_same_outputs(
  run, exported, monkeypatch
):
  root, result = exported
  assert os.listdir(root) == [NAME], os.listdir(root)  # No leftovers.
  assert set(result.files) == {
    'config.json',
    'params.msgpack',
    'params.seofp',
    'MODEL_CARD.md',
  }, result.files
  original = inference.load_model(workdir=run, step='best')
  assert result.step == original.step == 2, (result.step, original.step)
  loaded = hub.from_pretrained(NAME, root=root)
  assert hub.available(root) == [NAME], hub.available(root)
  assert loaded.step == 2 and not loaded.separates, loaded.step
  x = np.random.default_rng(0).standard_normal(32 * 40).astype(np.float32)
  got, want = loaded(x), original(x)
  assert got.shape == x.shape and np.array_equal(got, want), (
    f'outputs differ by up to {np.max(np.abs(got - want))}'
  )
  # The default root comes from the environment variable.
  monkeypatch.setenv(hub.ENV_VAR, root)
  assert hub.available() == [NAME]
  assert np.array_equal(hub.from_pretrained(NAME)(x), want)


def test_params_file_is_float32_params_only_and_seofp_copy_unpacks(
  run, exported
):
  from s4jax.quant import packing, rules

  folder = os.path.join(exported[0], NAME)
  with open(os.path.join(folder, 'params.msgpack'), 'rb') as f:
    params = serialization.msgpack_restore(f.read())
  original = inference.load_model(workdir=run, step='best').params
  assert jax.tree.structure(params) == jax.tree.structure(original)
  for got, want in zip(
    jax.tree.leaves(params), jax.tree.leaves(original), strict=True
  ):
    assert got.dtype == np.float32 and np.array_equal(got, want)
  with open(os.path.join(folder, 'params.seofp'), 'rb') as f:
    packed = packing.unpack(packing.from_bytes(f.read()))
  r = export.seofp_rules(inference.load_model(workdir=run).config, 5)
  want = rules.quantize_params(params, r)
  jax.tree.map(np.testing.assert_array_equal, packed, want)
  assert '81.' in exported[1].seofp_report, exported[1].seofp_report
  # The loader serves the packed copy, checked against the card's digest.
  loaded = hub.from_pretrained(NAME, root=exported[0], seofp=True)
  jax.tree.map(np.testing.assert_array_equal, loaded.params, want)
  with open(os.path.join(folder, 'params.seofp'), 'rb') as f:
    digest = hub.sha256(f.read())
  assert hub.read_card(folder)['seofp_sha256'] == digest


def test_model_card_records_model_count_step_and_placeholders(exported):
  root, result = exported
  folder = os.path.join(root, NAME)
  card = hub.read_card(folder)
  want = {
    'name': NAME,
    'task': 'enhancement',
    'model': 's4jax.training.testing',
    'sample_rate': '8000',
    'step': '2',
    'num_params': str(result.num_params),
  }
  assert {k: card.get(k) for k in want} == want, card
  # encoder 32x16 + 16, log_dt 16, decoder 16x32 + 32.
  assert result.num_params == 32 * 16 + 16 + 16 + 16 * 32 + 32
  with open(os.path.join(folder, 'MODEL_CARD.md')) as f:
    text = f.read()
  for fragment in (
    '## Training data',
    '## Recipe',
    '## Training cost',
    '## Quality',
    'TODO',
    '`model.hidden` = `16`',
    'training step | 2 of 2',
    '--pretrained=toy_se',
    "model = s4jax.from_pretrained('toy_se')",
    "s4jax.from_pretrained('toy_se', seofp=True)",
    'SEOFP sign + 5-bit exponent',
  ):
    assert fragment in text, f'{fragment!r} not in the card:\n{text}'


def test_existing_name_is_refused_unless_overwrite(run, exported, tmp_path):
  root, folder = _copy(exported, tmp_path)
  with pytest.raises(export.ExportError, match='already exists.*--overwrite'):
    export.export_run(run, name=NAME, output_root=root)
  result = export.export_run(run, name=NAME, output_root=root, overwrite=True)
  assert 'params.seofp' not in result.files
  assert sorted(os.listdir(root)) == [NAME], os.listdir(root)
  assert 'params.seofp' not in os.listdir(folder)
  hub.from_pretrained(NAME, root=root)


def test_a_failed_export_leaves_nothing(run, tmp_path, monkeypatch):
  def fail(folder):
    raise RuntimeError(f'simulated crash while checking {folder}')

  monkeypatch.setattr(hub, 'load_dir', fail)
  with pytest.raises(RuntimeError, match='simulated crash'):
    export.export_run(run, name=NAME, output_root=str(tmp_path))
  assert os.listdir(tmp_path) == [], os.listdir(tmp_path)
  with pytest.raises(export.ExportError, match='--name'):
    export.export_run(run, name='../up', output_root=str(tmp_path))


def test_command_lines_export_then_enhance_with_pretrained(run, tmp_path):
  root = tmp_path / 'pretrained'
  result = cli.run(
    'export_pretrained.py',
    f'--workdir={run}',
    '--name=cli_se',
    '--step=latest',
    f'--output_root={root}',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Exported step 2 (1,088 parameters) to {root}/cli_se' in (
    result.stdout
  ), result.stdout
  again = cli.run(
    'export_pretrained.py',
    f'--workdir={run}',
    '--name=cli_se',
    f'--output_root={root}',
  )
  cli.assert_fails_with(again, 'already exists', '--overwrite')

  rng = np.random.default_rng(0)
  sf.write(tmp_path / 'in.wav', 0.1 * rng.standard_normal(4000), 8000)
  out = tmp_path / 'out'
  result = cli.run(
    'enhance.py',
    '--pretrained=cli_se',
    f'--pretrained_dir={root}',
    str(tmp_path / 'in.wav'),
    f'--output_dir={out}',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  info = sf.info(out / 'in.wav')
  assert (info.samplerate, info.frames) == (8000, 4000), info

  wrong = cli.run(
    'separate.py',
    '--pretrained=cli_se',
    f'--pretrained_dir={root}',
    str(tmp_path / 'in.wav'),
    f'--output_dir={tmp_path}/sep',
  )
  cli.assert_fails_with(
    wrong, 'holds a enhancement model; use launch/enhance.py'
  )
  unknown = cli.run(
    'enhance.py',
    '--pretrained=nope',
    f'--pretrained_dir={root}',
    str(tmp_path / 'in.wav'),
    f'--output_dir={out}',
  )
  cli.assert_fails_with(unknown, "Unknown pretrained model 'nope'", 'cli_se')
  both = cli.run(
    'enhance.py',
    '--pretrained=cli_se',
    f'--workdir={run}',
    str(tmp_path / 'in.wav'),
    f'--output_dir={out}',
  )
  cli.assert_fails_with(
    both, 'exactly one of --workdir, --checkpoint and --pretrained'
  )
