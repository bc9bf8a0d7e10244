"""configs/: every recipe builds its model; nested overrides are type-checked."""

import importlib
import json
import os
import pathlib

import pytest
from absl import flags
from ml_collections import config_flags

from s4jax import models

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPES = sorted(
  p.stem for p in (ROOT / 'configs').glob('*.py') if p.stem[0] != '_'
)
RECIPES.remove('base')


@pytest.mark.parametrize('name', RECIPES)
def test_every_recipe_builds_its_model(name):
  config = importlib.import_module(f'configs.{name}').get_config('smoke=True')
  module = models.get_model_module(config.model.name)
  model = module.from_config(config.model)
  assert model is not None
  # Nothing of the old flat layout is left to upgrade.
  model_dict = config.model.to_dict()
  assert models.upgrade_model_config(model_dict) == model_dict


def _parse(*overrides, recipe='spiking_s4_ndns.py'):
  """`--config=configs/<recipe> <overrides>` as launch/train.py parses it."""
  path = os.path.join(ROOT, 'configs', recipe)
  argv = ['prog', f'--config={path}', *overrides]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file(
    'config', flag_values=values, lock_config=True, sys_argv=argv
  )
  values(argv)
  return values.config


def test_nested_command_line_overrides_reach_the_model():
  config = _parse(
    '--config.model.neuron.v_th=0.5',
    '--config.model.neuron.alpha=4',
    '--config.model.neuron.mode=temporal',
    '--config.model.neuron.spiking=false',
    '--config.model.block.d_state=8',
    '--config.model.block.emission=glu',
  )
  assert config.model.neuron.v_th == 0.5
  assert config.model.neuron.alpha == 4.0
  assert isinstance(config.model.neuron.alpha, float)
  assert config.model.block.d_state == 8
  model = models.get_model_module('spiking_s4').from_config(config.model)
  assert not model.is_spiking
  assert model.block_settings['emission'] == 'glu'
  s4m_config = _parse(
    '--config.model.block.hidden=64',
    '--config.model.block.ssm=s4d',
    recipe='s4m_tiny.py',
  )
  assert s4m_config.model.block.hidden == 64


@pytest.mark.parametrize(
  'override',
  [
    '--config.model.neuron.v_th=abc',  # Not a float.
    '--config.model.block.d_state=8.5',  # Not an int.
    '--config.model.neuron.vth=1.0',  # No such key.
    '--config.model.v_th=1.0',  # The old flat key.
  ],
)
def test_bad_command_line_overrides_stop_at_parsing(override):
  # absl reports a bad value as flags.Error; ml_collections reports an
  # unknown key as AttributeError (as launch/train.py's users see them).
  with pytest.raises((flags.Error, AttributeError)):
    _parse(override)


def test_the_shipped_model_config_is_its_recipe():
  from configs import spiking_s4_offline

  with open(ROOT / 's4jax' / 'pretrained' / 'spiking_s4' / 'config.json') as f:
    shipped = json.load(f)['model']
  assert shipped == spiking_s4_offline.get_config().model.to_dict()
