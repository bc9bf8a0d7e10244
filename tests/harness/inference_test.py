"""harness.inference.load_model: every source, parameters only, the errors."""

import os
import shutil

import jax
import numpy as np
import pytest

from harness import checkpoint as ckpt_lib
from harness import inference, trainer
from s4jax import inference as inference_lib
from s4jax.training import optim, testing
from tests.training import toy_config


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A 4-step toy enhancement run with checkpoints at steps 2 and 4."""
  workdir = str(tmp_path_factory.mktemp('runs') / 'toy')
  config = toy_config.get_config('steps=4')
  config.train.checkpoint_every = 2
  result = trainer.train_and_evaluate(config, workdir, testing)
  return workdir, jax.device_get(result.state.params)


def _equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_workdir_and_checkpoint_load_the_trained_parameters_only(
  run, monkeypatch
):
  workdir, params = run

  def no_optimiser(*args, **kwargs):
    raise AssertionError('load_model built an optimiser')

  monkeypatch.setattr(optim, 'create_optimizer', no_optimiser)
  model = inference.load_model(workdir=workdir)
  assert isinstance(model, inference_lib.SpeechModel)
  assert model.step == 4 and model.config.model.name == testing.__name__
  _equal(model.params, params)
  earlier = inference.load_model(workdir=workdir, step=2)
  ckpt = os.path.join(workdir, 'checkpoints', '2')
  for other in (earlier, inference.load_model(checkpoint=ckpt)):
    assert other.step == 2
  _equal(earlier.params, inference.load_model(checkpoint=ckpt).params)
  # A path as the one argument: the same as workdir= / checkpoint=.
  assert inference.load_model(workdir).step == 4
  assert inference.load_model(ckpt).step == 2
  x = np.random.default_rng(0).standard_normal(512).astype(np.float32)
  assert model(x).shape == (512,)


def test_pretrained_name_as_pretrained_or_source():
  by_flag = inference.load_model(pretrained='spiking_s4')
  assert isinstance(by_flag, inference_lib.SpikingS4Model)
  by_name = inference.load_model('spiking_s4')
  assert by_name.step == by_flag.step
  _equal(by_name.params, by_flag.params)


def test_errors_name_the_problem(run, tmp_path):
  workdir, _ = run
  with pytest.raises(TypeError, match='exactly one'):
    inference.load_model()
  with pytest.raises(TypeError, match='exactly one'):
    inference.load_model(workdir=workdir, pretrained='spiking_s4')
  missing = str(tmp_path / 'nope')
  with pytest.raises(FileNotFoundError, match='does not exist'):
    inference.load_model(workdir=missing)
  with pytest.raises(ckpt_lib.CheckpointError, match='neither a training'):
    inference.load_model(workdir=str(tmp_path))
  with pytest.raises(ckpt_lib.CheckpointError, match='No checkpoint for step'):
    inference.load_model(workdir=workdir, step=3)
  with pytest.raises(ValueError, match="Unknown pretrained model 'nope'"):
    inference.load_model(pretrained='nope')
  with pytest.raises(
    inference.UnknownSourceError, match='neither a pretrained model'
  ):
    inference.load_model(missing)


def test_a_corrupt_checkpoint_is_refused(run, tmp_path):
  workdir, _ = run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  state = copy / 'checkpoints' / '4' / 'state'
  for path in state.rglob('*'):
    if path.is_file() and path.name != '_METADATA':
      path.write_bytes(b'garbage')
  with pytest.raises(
    ckpt_lib.CheckpointError, match='Cannot restore the checkpoint .*/4:'
  ):
    inference.load_model(workdir=str(copy))
