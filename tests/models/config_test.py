"""s4jax.models: config.model -> module (`build`), and older flat layouts."""

import copy

import ml_collections
import pytest

from s4jax import models, spiking
from s4jax.models import s4m, s4m_blocks
from s4jax.models import spiking_s4 as ss4

# `config.model` of the shipped Spiking-S4 as older versions wrote it.
FLAT_SPIKING_S4 = {
  'name': 'spiking_s4',
  'n_fft': 512,
  'hop_length': 128,
  'win_length': 512,
  'window': 'rect',
  'input_offset': 0.2,
  'd_model': 256,
  'n_layers': 4,
  'd_state': 64,
  'emission': 'linear',
  'spiking': True,
  'neuron_mode': 'stateless',
  'init_tau': 2.0,
  'v_th': 1.0,
  'v_reset': 0.0,
  'reset': 'hard',
  'detach_reset': False,
  'surrogate': 'sigmoid',
  'surrogate_alpha': 0.0,
  'scan_unroll': 1,
  'mask': 'relu',
  'mask_bound': 2.0,
  'dropout': 0.0,
  'dt_min': 0.001,
  'dt_max': 0.1,
  'dtype': 'float32',
  'fft_friendly': False,
}
FLAT_S4M = {
  'name': 's4m',
  'num_sources': 2,
  'sample_rate': 8000,
  'enc_kernel_ms': 4.0,
  'bottleneck': 128,
  'hidden': 512,
  'num_blocks': 16,
  'depth': 4,
  'ssm': 's4d',
  'd_state': 16,
  'ff_expand': 2,
  'reconstruction_s4': True,
  'topdown_quirk': True,
  'dropout': 0.0,
  'remat': True,
  'scan': True,
  'dtype': 'bfloat16',
}


def test_flat_spiking_s4_config_is_nested():
  before = copy.deepcopy(FLAT_SPIKING_S4)
  got = models.upgrade_model_config(FLAT_SPIKING_S4)
  assert FLAT_SPIKING_S4 == before, 'the input must not change'
  assert got == {
    'name': 'spiking_s4',
    'n_fft': 512,
    'hop_length': 128,
    'win_length': 512,
    'window': 'rect',
    'input_offset': 0.2,
    'd_model': 256,
    'n_layers': 4,
    'mask': 'relu',
    'mask_bound': 2.0,
    'dtype': 'float32',
    'neuron': {
      'spiking': True,
      'mode': 'stateless',
      'init_tau': 2.0,
      'v_th': 1.0,
      'v_reset': 0.0,
      'reset': 'hard',
      'detach_reset': False,
      'surrogate': 'sigmoid',
      'alpha': 0.0,
      'unroll': 1,
    },
    'block': {
      'd_state': 64,
      'emission': 'linear',
      'dropout': 0.0,
      'dt_min': 0.001,
      'dt_max': 0.1,
    },
  }
  # The upgraded config is today's default layout with the same values.
  assert ss4.from_config(got) == ss4.from_config(
    {**ss4.default_config().to_dict(), 'win_length': 512}
  )


def test_flat_s4m_config_is_nested():
  got = models.upgrade_model_config(ml_collections.ConfigDict(FLAT_S4M))
  assert got == {
    'name': 's4m',
    'num_sources': 2,
    'sample_rate': 8000,
    'enc_kernel_ms': 4.0,
    'bottleneck': 128,
    'num_blocks': 16,
    'remat': True,
    'scan': True,
    'dtype': 'bfloat16',
    'block': {
      'hidden': 512,
      'depth': 4,
      'ssm': 's4d',
      'd_state': 16,
      'ff_expand': 2,
      'reconstruction_s4': True,
      'topdown_quirk': True,
      'dropout': 0.0,
    },
  }
  model = s4m.from_config(got)
  assert models.settings_of(model.block)['ssm'] == 's4d'
  assert model.dtype == 'bfloat16'


@pytest.mark.parametrize(
  'config',
  [
    ss4.default_config().to_dict(),
    s4m.default_config().to_dict(),
    {'name': 's4jax.training.testing', 'hidden': 16, 'frame': 32},
    {'name': 'spiking_s4', 'neuron': {'v_th': 0.5}},
  ],
  ids=['spiking_s4', 's4m', 'other_model', 'partial'],
)
def test_nested_and_other_configs_come_back_unchanged(config):
  assert models.upgrade_model_config(config) == config


def test_partly_upgraded_config_merges_and_conflicts_are_errors():
  got = models.upgrade_model_config(
    {'name': 'spiking_s4', 'v_th': 0.5, 'neuron': {'mode': 'temporal'}}
  )
  assert got == {
    'name': 'spiking_s4',
    'neuron': {'mode': 'temporal', 'v_th': 0.5},
  }
  with pytest.raises(ValueError, match='v_th=0.5.*neuron.v_th=1.0'):
    models.upgrade_model_config(
      {'name': 'spiking_s4', 'v_th': 0.5, 'neuron': {'v_th': 1.0}}
    )


def test_build_names_an_unknown_key_and_lists_the_known_ones():
  with pytest.raises(ValueError) as caught:
    ss4.from_config({'name': 'spiking_s4', 'neuron': {'v_thr': 0.5}})
  message = str(caught.value)
  assert 'config.model.neuron.v_thr' in message, message
  for key in ('spiking', 'mode', 'v_th', 'alpha', 'unroll'):
    assert f"'{key}'" in message, message
  with pytest.raises(ValueError, match='config.model.block must be a config'):
    s4m.from_config({'block': 3})


def test_module_defs_compare_by_their_settings():
  a = models.module_def(spiking.PLIF, v_th=1.0)
  assert a == models.module_def(spiking.PLIF) and hash(a) == hash(
    models.module_def(spiking.PLIF)
  )
  assert a != models.module_def(spiking.PLIF, v_th=0.5)
  b = models.module_def(a, mode='temporal')
  assert models.module_class(b) is spiking.PLIF
  assert models.settings_of(b)['mode'] == 'temporal'
  # Attributes a parent sets (no default) are not settings.
  assert 'bottleneck' not in models.settings_of(s4m_blocks.S4MBlock)
  assert models.settings_tree(s4m.S4M)['block']['hidden'] == 512


def test_dtype_is_a_name_in_both_models():
  assert ss4.SpikingS4().dtype == s4m.S4M().dtype == 'float32'
  assert models.compute_dtype('bfloat16', ('float32', 'bfloat16')).name == (
    'bfloat16'
  )
  with pytest.raises(ValueError, match='float16'):
    models.compute_dtype('float16', ('float32', 'bfloat16'))
