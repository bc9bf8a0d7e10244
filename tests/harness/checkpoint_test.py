"""Tests for harness.checkpoint: save, restore, retention and clear errors."""

import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from harness import checkpoint, evaluation, trainer
from s4jax.training import program, sharding, testing
from tests.training import toy_config

# After the deliberately failed restore of a corrupt checkpoint, a background
# Orbax/TensorStore callback may later hit its closed asyncio loop; Python
# reports that as an unraisable exception in whichever test runs next.
pytestmark = pytest.mark.filterwarnings(
  'ignore:Exception ignored in:pytest.PytestUnraisableExceptionWarning'
)


def _state(value):
  return {
    'w': jnp.full((3, 2), value, jnp.float32),
    'step': jnp.asarray(int(value), jnp.int32),
  }


def _saved(directory, steps, best_metric=None, **kw):
  """A Checkpointer that has saved `_state(s)` at each step `s` of `steps`.

  Args:
    directory: the checkpoint folder.
    steps: step -> value of `best_metric` saved with it (None without one).
    best_metric: passed to the Checkpointer (retention of the best step).
    **kw: other Checkpointer options.
  """
  ckpt = checkpoint.Checkpointer(
    str(directory), asynchronous=False, best_metric=best_metric, **kw
  )
  for s, value in steps.items():
    metrics = {best_metric: value} if best_metric else None
    ckpt.save(s, _state(s), meta={'config': {'seed': s}}, metrics=metrics)
  ckpt.wait()
  return ckpt


# First in the file: the unraisable-exception filter above then also covers
# the tests that run after it.
def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
  config = toy_config.get_config('steps=4')
  trainer.train_and_evaluate(config, str(tmp_path), testing)
  for path in glob.glob(
    str(tmp_path / 'checkpoints/4/state/**/d/*'), recursive=True
  ):
    with open(path, 'wb') as f:
      f.write(b'garbage')
  with pytest.raises(
    checkpoint.CheckpointError,
    match='Cannot restore the checkpoint .*checkpoints/4',
  ):
    trainer.train_and_evaluate(
      toy_config.get_config('steps=6'), str(tmp_path), testing
    )


def test_save_then_restore_round_trips_state_and_meta(tmp_path):
  ckpt = _saved(tmp_path, {1: None, 2: None})
  got = ckpt.restore(2, _state(0))
  np.testing.assert_array_equal(got['w'], np.full((3, 2), 2.0, np.float32))
  assert int(got['step']) == 2, f'expected step leaf 2, got {got["step"]}'
  assert ckpt.restore_meta(1) == {'config': {'seed': 1}}, ckpt.restore_meta(1)
  assert ckpt.all_steps() == [1, 2], ckpt.all_steps()
  assert ckpt.latest_step() == 2, ckpt.latest_step()
  assert ckpt.step_path(2) == os.path.join(str(tmp_path), '2')
  ckpt.close()


def test_saving_a_step_twice_is_refused_and_keeps_the_first(tmp_path):
  ckpt = _saved(tmp_path, {3: None})
  assert ckpt.save(3, _state(9), meta={}) is False, 'second save of step 3'
  got = float(ckpt.restore(3, _state(0))['w'][0, 0])
  assert got == 3.0, f'expected the first save (3.0), got {got}'
  ckpt.close()


def test_retention_keeps_the_last_n_plus_the_best(tmp_path):
  # Step 1 has the best (largest) metric; keep=2 keeps steps 3 and 4 too.
  ckpt = _saved(
    tmp_path, {1: 9.0, 2: 1.0, 3: 2.0, 4: 3.0}, keep=2, best_metric='si_snr'
  )
  assert ckpt.all_steps() == [1, 3, 4], (
    f'expected [1, 3, 4], got {ckpt.all_steps()}'
  )
  ckpt.close()


def test_restore_into_a_different_shape_is_a_checkpoint_error(tmp_path):
  ckpt = _saved(tmp_path, {1: None})
  target = {'w': jnp.zeros((4, 4)), 'step': jnp.zeros((), jnp.int32)}
  with pytest.raises(
    checkpoint.CheckpointError, match=r'Cannot restore the checkpoint .*/1:'
  ) as e:
    ckpt.restore(1, target)
  assert 'different model/optimiser' in str(e.value), str(e.value)
  ckpt.close()


def test_missing_metadata_step_is_a_checkpoint_error(tmp_path):
  ckpt = _saved(tmp_path, {1: None})
  with pytest.raises(
    checkpoint.CheckpointError, match=r'Cannot read the metadata .*/7'
  ):
    ckpt.restore_meta(7)
  ckpt.close()


def test_read_only_on_a_missing_directory_names_it(tmp_path):
  missing = tmp_path / 'nope'
  with pytest.raises(checkpoint.CheckpointError, match=f'{missing}.*--workdir'):
    checkpoint.Checkpointer(str(missing), read_only=True)


def test_checkpoint_dir_is_absolute_and_urls_are_kept(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  got = checkpoint.checkpoint_dir('run')
  want = str(tmp_path / 'run' / 'checkpoints')
  assert got == want, f'expected {want}, got {got}'
  assert checkpoint.absolute('gs://bucket/run') == 'gs://bucket/run'


def test_resolve_step_latest_number_best_and_errors(tmp_path):
  config = toy_config.get_config()
  config.eval.best_metric, config.eval.best_mode = 'si_snr', 'max'
  ckpt = _saved(tmp_path / 'checkpoints', {2: None, 4: None, 6: None})
  for step in (None, 'latest', ''):
    got = checkpoint.resolve_step(ckpt, str(tmp_path), config, step)
    assert got == 6, f'{step!r}: expected the latest step 6, got {got}'
  assert checkpoint.resolve_step(ckpt, str(tmp_path), config, '4') == 4
  for step, value in ((2, 1.0), (4, 5.0), (6, 3.0)):
    result = evaluation.EvalResult({'si_snr': value}, {}, 1, [], {})
    evaluation.write_report(
      str(tmp_path / 'eval'), step, result, split='validation'
    )
  got = checkpoint.resolve_step(ckpt, str(tmp_path), config, 'best')
  assert got == 4, f'expected the best-reported step 4, got {got}'
  with pytest.raises(
    checkpoint.CheckpointError, match=r'step 5 .*available: \[2, 4, 6\]'
  ):
    checkpoint.resolve_step(ckpt, str(tmp_path), config, 5)
  ckpt.close()
  empty = checkpoint.Checkpointer(str(tmp_path / 'empty'))
  with pytest.raises(checkpoint.CheckpointError, match='No checkpoints in'):
    checkpoint.resolve_step(empty, str(tmp_path), config, None)
  empty.close()


def test_restore_or_init_is_fresh_without_checkpoints_then_restores(tmp_path):
  config = toy_config.get_config()
  run = program.Program.build(config, sharding.create_mesh())
  ckpt = checkpoint.Checkpointer(str(tmp_path), asynchronous=False)
  fresh = checkpoint.restore_or_init(run, ckpt)
  assert int(fresh.step) == 0, (
    f'expected a fresh state at step 0, got {fresh.step}'
  )
  saved = fresh.replace(step=fresh.step + 5)
  meta = {'config': json.loads(config.to_json_best_effort())}
  ckpt.save(5, saved, meta=meta)
  ckpt.wait()
  back = checkpoint.restore_or_init(run, ckpt)
  assert int(back.step) == 5, f'expected the saved step 5, got {back.step}'
  for a, b in zip(
    jax.tree.leaves(saved.params), jax.tree.leaves(back.params), strict=True
  ):
    np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
  loaded = checkpoint.load_config_from_checkpoint(ckpt, 5)
  assert loaded.to_dict() == meta['config'], (
    f'expected the config saved with step 5, got {loaded}'
  )
  assert loaded.model.hidden == config.model.hidden == 16, loaded.model
  ckpt.close()


def test_saved_config_upgrades_a_flat_model_config_of_an_older_run():
  old = {
    'task': 'enhancement',
    'model': {'name': 'spiking_s4', 'neuron_mode': 'temporal', 'd_state': 32},
  }
  config = checkpoint.saved_config(old)
  got = (config.model.neuron.mode, config.model.block.d_state)
  assert got == ('temporal', 32), f'expected (temporal, 32), got {got}'
  assert 'neuron_mode' not in config.model, config.model
  assert old['model']['neuron_mode'] == 'temporal', 'input must not change'
