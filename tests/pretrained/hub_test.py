"""s4jax.pretrained: list, check and load model folders, float or SEOFP.

Folders are written here by hand (config.json, params.msgpack, a card with
its checksums, params.seofp), so the loader is tested without the export
tool (tests/harness/export_pretrained_test.py tests that the two agree).
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from flax import serialization

import s4jax
from s4jax.pretrained import hub
from s4jax.quant import packing, rules
from s4jax.training import tasks
from tests.models import config_test
from tests.training import toy_config

NAME = 'toy_se'
# The SEOFP copy of the shipped Spiking-S4 is post-training quantised (it
# was trained in float32), so its output is not the float model's: on the
# signal below it stays within -10 dB of it (measured: -20.8 dB; -11 to -21
# dB on speech-like signals with white noise of std 0.02 to 0.1).
SEOFP_MAX_RELATIVE_ERROR_DB = -10.0


def _card(step, **checksums):
  lines = ['---', f'name: {NAME}', f'step: {step}']
  lines += [f'{k}: {v}' for k, v in checksums.items()]
  return '\n'.join([*lines, '---', '', f'# {NAME}', ''])


def _write_model(root, name=NAME, task='enhancement', step=3, seofp=True):
  """A complete model folder `root/name`; returns `(folder, params)`."""
  config = toy_config.get_config(f'task={task}')
  params = tasks.create_task(config).init(jax.random.key(1), 512)
  params = jax.tree.map(np.asarray, params)
  folder = os.path.join(root, name)
  os.makedirs(folder)
  blob = serialization.to_bytes(params)
  files = {
    'config.json': config.to_json_best_effort().encode(),
    'params.msgpack': blob,
  }
  checksums = {'params_sha256': hub.sha256(blob)}
  if seofp:
    r = rules.from_config({'enabled': True, 'exponent_bits': 5})
    files['params.seofp'] = packing.to_bytes(packing.pack(params, r))
    checksums['seofp_sha256'] = hub.sha256(files['params.seofp'])
  files['MODEL_CARD.md'] = _card(step, **checksums).encode()
  for file_name, data in files.items():
    with open(os.path.join(folder, file_name), 'wb') as f:
      f.write(data)
  return folder, params


@pytest.fixture
def toy(tmp_path):
  root = str(tmp_path / 'root')
  folder, params = _write_model(root)
  return root, folder, params


def _signal(seconds, rate, seed):
  """`(clean, noisy)`: an amplitude-modulated tone in white noise."""
  t = np.arange(int(seconds * rate)) / rate
  clean = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(6 * np.pi * t))
  noise = 0.1 * np.random.default_rng(seed).standard_normal(t.size)
  return clean.astype(np.float32), (clean + noise).astype(np.float32)


def _si_snr(estimate, reference):
  estimate, reference = estimate - estimate.mean(), reference - reference.mean()
  target = np.dot(estimate, reference) / np.dot(reference, reference)
  target = target * reference
  return 10 * np.log10(np.sum(target**2) / np.sum((estimate - target) ** 2))


def test_a_hand_written_folder_loads_and_is_listed(toy, monkeypatch):
  root, _, params = toy
  assert hub.available(root) == [NAME], hub.available(root)
  model = hub.from_pretrained(NAME, root=root)
  assert model.step == 3 and not model.separates, model
  jax.tree.map(np.testing.assert_array_equal, model.params, params)
  x = np.random.default_rng(0).standard_normal(512).astype(np.float32)
  config = toy_config.get_config('task=enhancement')
  task = tasks.create_task(config)
  want = task.estimate(task.apply(params, x[None], train=False))
  np.testing.assert_array_equal(model(x), np.asarray(want)[0])
  # The default root comes from the environment variable.
  monkeypatch.setenv(hub.ENV_VAR, root)
  assert hub.available() == [NAME]
  assert hub.from_pretrained(NAME).step == 3


def test_seofp_loads_the_packed_weights_checked_against_the_card(toy):
  root, folder, params = toy
  model = hub.from_pretrained(NAME, root=root, seofp=True)
  r = rules.from_config({'enabled': True, 'exponent_bits': 5})
  want = rules.quantize_params(params, r)
  jax.tree.map(np.testing.assert_array_equal, model.params, want)
  assert model.step == 3
  path = os.path.join(folder, 'params.seofp')
  with open(path, 'rb') as f:
    blob = f.read()
  with open(path, 'wb') as f:
    f.write(blob[:-10])
  with pytest.raises(hub.PretrainedError) as caught:
    hub.from_pretrained(NAME, root=root, seofp=True)
  message = str(caught.value)
  assert f'{path} is corrupt' in message and 'seofp_sha256' in message, message
  hub.from_pretrained(NAME, root=root)  # The float copy is unaffected.


def test_a_folder_without_seofp_copy_says_how_to_make_one(tmp_path):
  root = str(tmp_path)
  _write_model(root, seofp=False)
  assert hub.available(root) == [NAME]  # The copy is optional.
  with pytest.raises(hub.PretrainedError) as caught:
    hub.from_pretrained(NAME, root=root, seofp=True)
  message = str(caught.value)
  assert 'has no SEOFP copy (params.seofp)' in message, message
  assert '--seofp_bits' in message, message


def test_a_packed_file_that_is_not_one_is_named(toy):
  root, folder, _ = toy
  path = os.path.join(folder, 'params.seofp')
  _drop_card_line(folder, 'seofp_sha256:')
  for bad in (b'\x00garbage', b'', serialization.msgpack_serialize({'a': 1})):
    with open(path, 'wb') as f:
      f.write(bad)
    with pytest.raises(hub.PretrainedError) as caught:
      hub.from_pretrained(NAME, root=root, seofp=True)
    message = str(caught.value)
    assert f'{path} is corrupt: not a SEOFP-packed' in message, message


def test_unknown_name_lists_the_available_ones(toy, tmp_path):
  root = toy[0]
  with pytest.raises(hub.PretrainedError) as caught:
    hub.from_pretrained('nope', root=root)
  message = str(caught.value)
  assert "Unknown pretrained model 'nope'" in message, message
  assert f'available: {NAME}' in message, message
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(hub.PretrainedError, match='none is installed'):
    hub.from_pretrained('nope', root=str(empty))
  assert hub.available(str(tmp_path / 'missing')) == []


def test_incomplete_folder_is_not_listed_and_the_missing_file_named(toy):
  root, folder, _ = toy
  os.remove(os.path.join(folder, 'MODEL_CARD.md'))
  os.makedirs(os.path.join(root, '.hidden'))
  assert hub.available(root) == []
  with pytest.raises(hub.PretrainedError) as caught:
    hub.from_pretrained(NAME, root=root)
  assert os.path.join(folder, 'MODEL_CARD.md') in str(caught.value)


def _drop_card_line(folder, prefix):
  path = os.path.join(folder, 'MODEL_CARD.md')
  with open(path) as f:
    lines = [x for x in f if not x.startswith(prefix)]
  with open(path, 'w') as f:
    f.writelines(lines)


def test_corrupt_params_name_the_file_without_a_msgpack_traceback(toy):
  root, folder, _ = toy
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
  _drop_card_line(folder, 'params_sha256:')
  for bad in (blob[: len(blob) // 2], b'\x00garbage', b''):
    with open(path, 'wb') as f:
      f.write(bad)
    with pytest.raises(hub.PretrainedError) as caught:
      hub.from_pretrained(NAME, root=root)
    assert f'{path} is corrupt' in str(caught.value), str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_params_of_another_model_say_what_differs(toy):
  root, folder, _ = toy
  path = os.path.join(folder, 'config.json')
  with open(path) as f:
    config = json.load(f)
  config['model']['hidden'] = 8
  with open(path, 'w') as f:
    json.dump(config, f)
  for seofp, file_name in ((False, 'params.msgpack'), (True, 'params.seofp')):
    with pytest.raises(hub.PretrainedError) as caught:
      hub.from_pretrained(NAME, root=root, seofp=seofp)
    message = str(caught.value)
    for fragment in (
      f'{file_name} does not match the model of its config.json',
      '4 of another shape or dtype',
      'encoder/kernel is (32, 16) float32, the model wants (32, 8) float32',
      'log_dt is (16,) float32, the model wants (8,) float32',
    ):
      assert fragment in message, f'{fragment!r} not in {message!r}'
  with open(path, 'w') as f:
    f.write('{"task": ')
  with pytest.raises(hub.PretrainedError, match=f'{path} is not valid JSON'):
    hub.from_pretrained(NAME, root=root)


def test_config_field_of_the_wrong_type_is_named_not_a_traceback(toy):
  root, folder, _ = toy
  path = os.path.join(folder, 'config.json')
  with open(path) as f:
    config = json.load(f)
  config['model']['hidden'] = 'abc'
  with open(path, 'w') as f:
    json.dump(config, f)
  with pytest.raises(hub.PretrainedError, match='does not describe a model'):
    hub.from_pretrained(NAME, root=root)


def test_a_shipped_card_without_its_checksums_is_refused(toy, monkeypatch):
  root, folder, _ = toy
  monkeypatch.setattr(hub, '_PACKAGE_DIR', os.path.abspath(root))
  hub.from_pretrained(NAME, root=root)  # The intact card: loads.
  card = os.path.join(folder, 'MODEL_CARD.md')
  with open(card, encoding='utf-8') as f:
    text = f.read()
  with open(card, 'w', encoding='utf-8') as f:  # The closing --- is lost.
    f.write(text.replace('---\n\n#', '\n#'))
  for seofp, key in ((False, 'params_sha256'), (True, 'seofp_sha256')):
    with pytest.raises(hub.PretrainedError, match=f'has lost the {key}'):
      hub.from_pretrained(NAME, root=root, seofp=seofp)


def test_a_name_that_is_not_a_string_is_unknown(toy):
  root, _, _ = toy
  with pytest.raises(
    hub.PretrainedError, match='Unknown pretrained model None'
  ):
    hub.from_pretrained(None, root=root)


def test_hand_written_separation_folder_without_front_matter_loads(tmp_path):
  """The three files alone (no front matter) make a usable model."""
  folder, params = _write_model(str(tmp_path), 'toy_sep', 'separation')
  with open(os.path.join(folder, 'MODEL_CARD.md'), 'w') as f:
    f.write('# toy_sep\n')
  model = hub.from_pretrained('toy_sep', root=str(tmp_path))
  assert model.separates and model.num_outputs == 2 and model.step == 0
  x = np.random.default_rng(1).standard_normal(512).astype(np.float32)
  y = model(x)
  assert y.shape == (2, 512), y.shape
  config = toy_config.get_config('task=separation')
  want = tasks.create_task(config).apply(params, x[None], train=False)
  np.testing.assert_array_equal(y, np.asarray(want['estimates'][0]))


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


def test_shipped_spiking_s4_float_and_seofp_copies():
  """`s4jax.from_pretrained` on the package data: both copies, one signal."""
  assert 'spiking_s4' in s4jax.pretrained.available()
  assert s4jax.from_pretrained is hub.from_pretrained
  model = s4jax.from_pretrained('spiking_s4')
  packed = s4jax.from_pretrained('spiking_s4', seofp=True)
  assert (model.step, packed.step, model.sample_rate) == (7000, 7000, 16000)
  # The packed copy is the float parameters SEOFP-quantised at 5 bits.
  quant = {**model.config.quant.to_dict(), 'enabled': True, 'exponent_bits': 5}
  want = rules.quantize_params(model.params, rules.from_config(quant))
  jax.tree.map(np.testing.assert_array_equal, packed.params, want)
  clean, noisy = _signal(1.0, 16000, seed=0)
  y, y_packed = model(noisy), packed(noisy)
  for out in (y, y_packed):
    assert out.shape == noisy.shape and np.all(np.isfinite(out))
  error_db = 10 * np.log10(np.sum((y_packed - y) ** 2) / np.sum(y**2))
  assert error_db <= SEOFP_MAX_RELATIVE_ERROR_DB, (
    f'the SEOFP copy is {error_db:.1f} dB from the float output '
    f'(allowed: {SEOFP_MAX_RELATIVE_ERROR_DB} dB)'
  )
  # Both enhance: measured 7.0 dB in, 20.7 (float) and 19.7 (SEOFP) dB out.
  base = _si_snr(noisy, clean)
  for name, out in (('float', y), ('seofp', y_packed)):
    gain = _si_snr(out, clean) - base
    assert gain >= 6.0, f'{name}: SI-SNR {base:.1f} dB -> {gain:+.1f} dB'
