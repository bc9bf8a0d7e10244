"""The public API of s4jax: the `__all__` of every public module.

`PUBLIC_API` below is the contract: the names each module promises. A name
that disappears (removed, renamed, or dropped from `__all__`) fails
`test_no_public_name_vanished`, naming it; that is a breaking change and
belongs in CHANGELOG.md. A new public module, or a new name in an
`__all__`, fails `test_new_public_names_are_recorded` until it is added
here (and to the CHANGELOG's "Added").

A public module is every module under `s4jax/` whose name has no leading
underscore.
"""

import importlib
import importlib.util
import pkgutil

import s4jax

PUBLIC_API = {
  's4jax': (
    'audio',
    'from_pretrained',
    'inference',
    'layers',
    'models',
    'pretrained',
    'quant',
    'spiking',
    'ssm',
    'training',
  ),
  's4jax.audio': (
    'losses',
    'permutation',
    'pit',
    'resample',
    'spectral_losses',
    'stft',
  ),
  's4jax.audio.losses': (
    'EPS',
    'neg_si_sdr',
    'neg_si_snr',
    'neg_snr',
    'si_sdr',
    'si_snr',
    'snr',
  ),
  's4jax.audio.permutation': (
    'MAX_EXHAUSTIVE_SOURCES',
    'best_permutation',
    'match_order',
  ),
  's4jax.audio.pit': (
    'MAX_EXHAUSTIVE_SOURCES',
    'PAIR_FNS',
    'PairFn',
    'best_perm_exhaustive',
    'best_perm_hungarian',
    'find_best_perm',
    'linear_sum_assignment',
    'matched_loss',
    'pairwise_neg_si_sdr',
    'pairwise_neg_si_snr',
    'pairwise_neg_snr',
    'permutations',
    'pit_loss',
    'reorder',
    'threshold_mean',
  ),
  's4jax.audio.resample': (
    'Rates',
    'Reader',
    'check_rates',
    'read_array',
    'resample',
    'window',
  ),
  's4jax.audio.spectral_losses': (
    'DEFAULT_RESOLUTIONS',
    'compressed_magnitude_loss',
    'multi_resolution_stft_loss',
  ),
  's4jax.audio.stft': (
    'StreamBuffers',
    'StreamingSTFT',
    'WINDOWS',
    'apply_magnitude_mask',
    'check_signal',
    'frame_signal',
    'frames_per_second',
    'istft',
    'n_bins',
    'num_frames',
    'overlap_add',
    'reflect_pad',
    'signal_frames',
    'stft',
    'stream_reference_delay',
    'synthesize',
    'window_array',
    'window_envelope',
  ),
  's4jax.inference': (
    'BlockStreamState',
    'MODES',
    'Piece',
    'Reader',
    'S4MModel',
    'SpeechModel',
    'SpikingS4Model',
    'StreamingUnsupportedError',
    'TaskModel',
    'chunked',
    'from_run_config',
    'iter_chunks',
    'iter_process',
    'iter_stream',
    'match_order',
    'process',
    'streamed',
  ),
  's4jax.layers': (
    'S4Layer',
    'SSM_PARAM_NAMES',
    'ssm_param_labels',
  ),
  's4jax.layers.init': (
    'torch_kernel_init',
    'torch_uniform',
  ),
  's4jax.layers.s4': (
    'ACTIVATIONS',
    'MODES',
    'OutputProjection',
    'POSTACTS',
    'S4Layer',
    'SSMParams',
    'SSMSettings',
    'SSM_PARAM_NAMES',
    'ssm_param_labels',
  ),
  's4jax.models': (
    'Builder',
    'LEGACY_KEYS',
    'ModuleDef',
    'build',
    'compute_dtype',
    'config_group',
    'configure',
    'get_model_module',
    'module_class',
    'module_def',
    'settings_of',
    'settings_tree',
    'upgrade_model_config',
  ),
  's4jax.models.energy': (
    'E_AC_PJ',
    'E_MAC_PJ',
    'LAYERNORM_OPS_PER_ELEMENT',
    'LayerOps',
    'NEURON_OP_WEIGHT',
    'as_float_rates',
    'count_macs',
    'energy_45nm',
    'frames',
    'layer_ops',
    'ndns_power_proxy',
    'neurons_per_step',
    'report',
    'trace_macs',
  ),
  's4jax.models.portable': (
    'SpikingS4Stream',
    'StateSpec',
    'analysis_matrices',
    'dft_matrices_from_tables',
    'offline',
    'real_istft',
    'real_stft',
    's4m_offline',
    'spiking_s4_offline',
    'start_indices',
    'synthesis_matrices',
    'trace_offline',
  ),
  's4jax.models.s4m': (
    'DTYPES',
    'S4M',
    'S4MFull',
    'S4MTiny',
    'Separator',
    'count_macs',
    'default_config',
    'encoder_window',
    'from_config',
    'loss_fn',
    'pad_amounts',
    'separation_scores',
  ),
  's4jax.models.s4m_blocks': (
    'ConvTranspose1d',
    'DepthwiseConv1d',
    'FFResidual',
    'GLN_EPS',
    'GatedFusion',
    'GlobalLayerNorm',
    'LAYER_NORM_EPS',
    'PRELU_INIT',
    'S4MBlock',
    'S4Residual',
    'SSM_MODES',
    'adaptive_avg_pool',
    'adaptive_pool_bins',
    'conv_lengths',
    'conv_transpose_overlap_add',
    'depthwise_conv1d',
    'global_layer_norm',
    'nearest_indices',
    'nearest_resize',
    'pointwise',
    'prelu',
  ),
  's4jax.models.spiking_s4': (
    'DTYPES',
    'EMISSIONS',
    'Gelu',
    'MASKS',
    'MSE_TARGETS',
    'S4Baseline',
    'SpikingS4',
    'SpikingS4Block',
    'SpikingS4Glu',
    'StreamState',
    'check_waveform',
    'default_config',
    'enhance_streaming',
    'from_config',
    'init_stream',
    'loss_fn',
    'neuron_from_config',
    'offline_enhancer',
    'stream_flush',
    'stream_step',
  ),
  's4jax.models.summary': (
    'HasMacsRule',
    'count_params',
    'flat_shapes',
    'param_differences',
    'params_by_module',
    'trace_macs',
  ),
  's4jax.portable_ops': (
    'enabled',
    'portable_ops',
  ),
  's4jax.pretrained': (
    'ENV_VAR',
    'PretrainedError',
    'available',
    'default_root',
    'from_pretrained',
    'load_dir',
    'model_dir',
  ),
  's4jax.pretrained.hub': (
    'CARD_FILE',
    'CONFIG_FILE',
    'ENV_VAR',
    'NAME_PATTERN',
    'PARAMS_FILE',
    'REQUIRED_FILES',
    'SEOFP_FILE',
    'PretrainedError',
    'available',
    'check_params',
    'default_root',
    'expected_params',
    'flat_shapes',
    'from_pretrained',
    'load_dir',
    'missing_files',
    'model_dir',
    'param_differences',
    'read_card',
    'read_config',
    'read_params',
    'read_seofp',
    'sha256',
  ),
  's4jax.quant': (
    'intadd',
    'packing',
    'rules',
    'seofp',
  ),
  's4jax.quant.intadd': (
    'ABS',
    'ALL_ONES',
    'DEFAULT_NAN',
    'EXP',
    'FRACTION',
    'HIDDEN_BIT',
    'IntAddConv1x1',
    'IntAddDense',
    'InterceptLog',
    'ONE_BITS',
    'QUIET_BIT',
    'SIGN',
    'SIGN_EXP',
    'int_add_apply',
    'int_add_conv1x1',
    'int_add_dense',
    'interceptor',
    'multiply_by_adding',
  ),
  's4jax.quant.packing': (
    'FORMAT',
    'VERSION',
    'format_size_report',
    'from_bytes',
    'pack',
    'pack_tensor',
    'packed_nbytes',
    'payload_nbytes',
    'size_report',
    'to_bytes',
    'unpack',
    'unpack_tensor',
  ),
  's4jax.quant.rules': (
    'CATEGORIES',
    'DEFAULT_INCLUDE',
    'DEFAULT_NORM_PATTERN',
    'DEFAULT_SSM_PATTERN',
    'QuantRules',
    'check_dtype',
    'describe',
    'fake_quant_params',
    'from_config',
    'is_float_leaf',
    'make_fake_quant',
    'path_str',
    'quantize_params',
    'selection',
  ),
  's4jax.quant.seofp': (
    'ABS_MASK',
    'EXP_MASK',
    'FRACTION_BITS',
    'GRANULARITIES',
    'MAX_EXPONENT_FIELD',
    'MIN_NORMAL_BITS',
    'QuantConfig',
    'ROUNDINGS',
    'SIGN_MASK',
    'STE_MASKS',
    'decode',
    'encode',
    'fake_quant',
    'is_seofp',
    'quantize',
    'rounded_exponent',
    'window_shape',
    'window_top',
  ),
  's4jax.spiking': (
    'DEFAULT_ALPHA',
    'NEURON_MODES',
    'PLIF',
    'RESETS',
    'SURROGATES',
    'lif_scan',
    'lif_stateless',
    'lif_step',
    'spike',
    'surrogate_grad',
    'tau_to_w',
  ),
  's4jax.ssm': (
    'DIAGONAL_INITS',
    'DPLRSSM',
    'DiagSSM',
    'cauchy_kernel',
    'diag_ssm',
    'discretize_diag',
    'discretize_dplr',
    'dplr_c_from_tilde',
    'dplr_c_tilde',
    'fft_conv',
    'forward',
    'hippo_legs',
    'hippo_legs_nplr',
    'init_state',
    'log_abar_diag',
    'log_dt_uniform',
    's4d_init',
    'step',
    'vandermonde_kernel',
  ),
  's4jax.ssm.discretize': (
    'DISCRETIZATIONS',
    'DPLRSSM',
    'check_discretization',
    'discretize_diag',
    'discretize_dplr',
    'dplr_transition',
    'log_abar_diag',
  ),
  's4jax.ssm.init': (
    'DIAGONAL_INITS',
    'hippo_legs',
    'hippo_legs_nplr',
    'log_dt_uniform',
    's4d_init',
  ),
  's4jax.ssm.kernels': (
    'NODE_CHUNK',
    'cauchy_kernel',
    'dplr_c_from_tilde',
    'dplr_c_tilde',
    'fast_fft_length',
    'fft_conv',
    'vandermonde',
    'vandermonde_kernel',
    'vandermonde_transpose',
  ),
  's4jax.ssm.recurrence': (
    'DPLRSSM',
    'DiagSSM',
    'diag_ssm',
    'discretize_dplr',
    'dplr_transition',
    'forward',
    'init_state',
    'step',
  ),
  's4jax.training': (
    'optim',
    'program',
    'sharding',
    'state',
    'steps',
    'tasks',
    'testing',
  ),
  's4jax.training.optim': (
    'OPTIMIZERS',
    'SCHEDULES',
    'SSM_LEAF_NAMES',
    'create_optimizer',
    'learning_rate_fn',
    'param_labels',
  ),
  's4jax.training.program': (
    'Program',
    'abstract_batch',
    'batch_length',
  ),
  's4jax.training.sharding': (
    'DATA',
    'MODEL',
    'batch_sharding',
    'check_batch_size',
    'create_mesh',
    'local_data_devices',
    'put_replicated',
    'replicated',
    'to_global',
    'to_local',
  ),
  's4jax.training.state': (
    'TrainState',
    'create',
    'plateau_update',
    'step_key',
  ),
  's4jax.training.steps': (
    'LAST_VALUES',
    'StepFn',
    'StepMetrics',
    'UNMASKED',
    'make_eval_step',
    'make_raw_train_step',
    'make_train_step',
  ),
  's4jax.training.tasks': (
    'COMPUTE_DTYPES',
    'LAYOUTS',
    'Task',
    'create_task',
    'init_samples',
    'model_config_for',
    'param_transform',
  ),
  's4jax.training.testing': (
    'EPS',
    'ToyMaskModel',
    'create_eval_iterator',
    'create_train_iterator',
    'from_config',
    'loss_fn',
    'make_batch',
    'si_snr',
  ),
}


def _public_modules() -> list[str]:
  found = [m.name for m in pkgutil.walk_packages(s4jax.__path__, 's4jax.')]
  return ['s4jax'] + sorted(
    m for m in found if not any(p.startswith('_') for p in m.split('.'))
  )


def _resolves(module, name: str) -> bool:
  """`module.name` exists, or is a submodule (lazy or not yet imported)."""
  if hasattr(module, name):
    return True
  return importlib.util.find_spec(f'{module.__name__}.{name}') is not None


def test_every_public_module_has_all_and_is_recorded():
  missing_all = []
  for name in _public_modules():
    if not isinstance(
      getattr(importlib.import_module(name), '__all__', None), (list, tuple)
    ):
      missing_all.append(name)
  assert not missing_all, f'modules without __all__: {missing_all}'
  vanished = sorted(set(PUBLIC_API) - set(_public_modules()))
  assert not vanished, (
    f'public modules that vanished: {vanished} (a breaking change: note it '
    'in CHANGELOG.md and remove them from PUBLIC_API in tests/api_test.py)'
  )


def test_no_public_name_vanished():
  vanished = {}
  for name, expected in PUBLIC_API.items():
    module = importlib.import_module(name)
    exported = set(getattr(module, '__all__', ()))
    gone = sorted(
      n for n in expected if n not in exported or not _resolves(module, n)
    )
    if gone:
      vanished[name] = gone
  assert not vanished, (
    'public names that vanished (a breaking change: note it in '
    'CHANGELOG.md, then update PUBLIC_API in tests/api_test.py):\n'
    + '\n'.join(f'  {m}: {", ".join(n)}' for m, n in vanished.items())
  )


def test_new_public_names_are_recorded():
  new = {}
  for name in _public_modules():
    exported = getattr(importlib.import_module(name), '__all__', ())
    added = sorted(set(exported) - set(PUBLIC_API.get(name, ())))
    if added:
      new[name] = added
  assert not new, (
    'public names not in PUBLIC_API of tests/api_test.py (add them there '
    'and under "Added" in CHANGELOG.md):\n'
    + '\n'.join(f'  {m}: {", ".join(n)}' for m, n in new.items())
  )


def test_every_exported_name_resolves():
  broken = [
    f'{name}.{n}'
    for name in _public_modules()
    for n in importlib.import_module(name).__all__
    if not _resolves(importlib.import_module(name), n)
  ]
  assert not broken, f'names in __all__ that do not exist: {broken}'
