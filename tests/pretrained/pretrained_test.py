"""pretrained/: export a run, list, load, and the errors of bad folders."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
import soundfile as sf
from flax import serialization

from harness import inference, trainer
from pretrained import export, hub
from s4jax.training import tasks, testing
from tests.launch import cli
from tests.models import config_test
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


def test_unknown_name_lists_the_available_ones(exported, tmp_path):
  root = exported[0]
  with pytest.raises(hub.PretrainedError) as caught:
    hub.from_pretrained('nope', root=root)
  message = str(caught.value)
  assert "Unknown pretrained model 'nope'" in message, message
  assert f'available: {NAME}' in message, message
  with pytest.raises(hub.PretrainedError, match='none is installed'):
    hub.from_pretrained('nope', root=str(tmp_path))
  assert hub.available(str(tmp_path / 'missing')) == []


def test_incomplete_folder_is_not_listed_and_the_missing_file_named(
  exported, tmp_path
):
  root, folder = _copy(exported, tmp_path)
  os.remove(os.path.join(folder, 'MODEL_CARD.md'))
  os.makedirs(os.path.join(root, '.hidden'))
  assert hub.available(root) == []
  with pytest.raises(hub.PretrainedError) as caught:
    hub.from_pretrained(NAME, root=root)
  assert os.path.join(folder, 'MODEL_CARD.md') in str(caught.value)


def _drop_checksum(folder):
  path = os.path.join(folder, 'MODEL_CARD.md')
  with open(path) as f:
    lines = [x for x in f if not x.startswith('params_sha256:')]
  with open(path, 'w') as f:
    f.writelines(lines)


def test_corrupt_params_name_the_file_without_a_msgpack_traceback(
  exported, tmp_path
):
  root, folder = _copy(exported, tmp_path)
  path = os.path.join(folder, 'params.msgpack')
  with open(path, 'rb') as f:
    blob = f.read()
  with open(path, 'wb') as f:
    f.write(blob[: len(blob) // 2])
  with pytest.raises(hub.PretrainedError) as caught:
    hub.from_pretrained(NAME, root=root)
  assert f'{path} is corrupt' in str(caught.value), str(caught.value)
  assert 'params_sha256' in str(caught.value)
  # Without the checksum, msgpack's own failure becomes one clear error.
  _drop_checksum(folder)
  for bad in (blob[: len(blob) // 2], b'\x00garbage', b''):
    with open(path, 'wb') as f:
      f.write(bad)
    with pytest.raises(hub.PretrainedError) as caught:
      hub.from_pretrained(NAME, root=root)
    assert f'{path} is corrupt' in str(caught.value), str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_params_of_another_model_say_what_differs(exported, tmp_path):
  root, folder = _copy(exported, tmp_path)
  path = os.path.join(folder, 'config.json')
  with open(path) as f:
    config = json.load(f)
  config['model']['hidden'] = 8
  with open(path, 'w') as f:
    json.dump(config, f)
  with pytest.raises(hub.PretrainedError) as caught:
    hub.from_pretrained(NAME, root=root)
  message = str(caught.value)
  for fragment in (
    'params.msgpack does not match the model of its config.json',
    '4 of another shape or dtype',
    'encoder/kernel is (32, 16) float32, the model wants (32, 8) float32',
    'log_dt is (16,) float32, the model wants (8,) float32',
  ):
    assert fragment in message, f'{fragment!r} not in {message!r}'
  with open(path, 'w') as f:
    f.write('{"task": ')
  with pytest.raises(hub.PretrainedError, match=f'{path} is not valid JSON'):
    hub.from_pretrained(NAME, root=root)


def test_flat_config_of_an_older_version_loads_the_same_model(tmp_path):
  """The shipped Spiking-S4 with its config.json as older versions wrote it."""
  folder = tmp_path / 'old_spiking_s4'
  shutil.copytree(hub.model_dir('spiking_s4'), folder)
  path = folder / 'config.json'
  config = json.loads(path.read_text())
  config['model'] = config_test.FLAT_SPIKING_S4
  path.write_text(json.dumps(config))
  old = hub.from_pretrained('old_spiking_s4', root=str(tmp_path))
  new = hub.from_pretrained('spiking_s4')
  assert old.config.model.to_dict() == new.config.model.to_dict()
  x = np.random.default_rng(2).standard_normal(4000).astype(np.float32) * 0.1
  np.testing.assert_array_equal(old(x), new(x))
  config['model'] = {**config_test.FLAT_SPIKING_S4, 'neuron': {'v_th': 2.0}}
  path.write_text(json.dumps(config))
  with pytest.raises(hub.PretrainedError, match=f'{path}: .*v_th'):
    hub.from_pretrained('old_spiking_s4', root=str(tmp_path))


def test_hand_written_separation_folder_loads(tmp_path):
  """The three files alone (no front matter) make a usable model."""
  config = toy_config.get_config('task=separation')
  params = tasks.create_task(config).init(jax.random.key(1), 512)
  folder = tmp_path / 'toy_sep'
  folder.mkdir()
  (folder / 'config.json').write_text(config.to_json_best_effort())
  (folder / 'params.msgpack').write_bytes(serialization.to_bytes(params))
  (folder / 'MODEL_CARD.md').write_text('# toy_sep\n')
  model = hub.from_pretrained('toy_sep', root=str(tmp_path))
  assert model.separates and model.num_outputs == 2 and model.step == 0
  x = np.random.default_rng(1).standard_normal(512).astype(np.float32)
  y = model(x)
  assert y.shape == (2, 512), y.shape
  want = tasks.create_task(config).apply(params, x[None], train=False)
  np.testing.assert_array_equal(y, np.asarray(want['estimates'][0]))


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
