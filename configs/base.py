"""Fields shared by every recipe; recipes start from `get_base_config()`.

A recipe file `configs/<name>.py` defines `get_config(arg=None)` returning a
`ConfigDict` built on this base. `arg` is a comma-separated string of
`key=value` pairs parsed by `parse_arg` (big_vision convention); every recipe
understands `smoke=True`, which shrinks model and run to seconds on a CPU.

Field groups:
  task:      'enhancement' or 'separation'.
  model:     `model.name` selects a builder in `s4jax.models`; the other
             fields are the model's own settings, laid out like its modules
             (below).
  data:      input pipeline (see `data_pipelines`).
  loss:      loss options of the task.
  optimizer: optimiser, schedule, clipping and the SSM parameter group.
  train:     steps, batch size, logging, checkpoints, non-finite guard.
  eval:      periodic and standalone evaluation.
  quant:     SEOFP sign-exponent-only weights (`s4jax.quant`); off by default.

`config.model` (flax-imagenet style): every setting is an attribute of the
Flax module that uses it, declared there once with its default; a group
holds the settings of a sub-module the model builds several times (its
constructor is an attribute of the parent). Recipes start from the model's
`default_config()` and override values; `from_config` (through
`s4jax.models.build`) rejects any key nothing reads.

  Spiking-S4 (`s4jax.models.spiking_s4`):
    model.*         `SpikingS4`: n_fft, hop_length, win_length, window,
                    input_offset, d_model, n_layers, mask, mask_bound, dtype
    model.neuron.*  `spiking` (False: the non-spiking GELU baseline) and
                    `s4jax.spiking.PLIF`: mode, init_tau, v_th, v_reset,
                    reset, detach_reset, surrogate, alpha, unroll
    model.block.*   `SpikingS4Block`: d_state, emission, dropout, dt_min,
                    dt_max
  S4M (`s4jax.models.s4m`):
    model.*         `S4M`: num_sources, sample_rate, enc_kernel_ms,
                    bottleneck, num_blocks, remat, scan, dtype
    model.block.*   `s4m_blocks.S4MBlock`: hidden, depth, ssm, d_state,
                    ff_expand, reconstruction_s4, topdown_quirk, dropout

`model.dtype` is a dtype name ('float32', 'bfloat16'), in configs and as
the module attribute of both models; the training code sets it from
`train.compute_dtype`.

Older, flat `config.model` keys and where they went
(`s4jax.models.upgrade_model_config` converts a saved config.json):

  Spiking-S4: spiking -> neuron.spiking, neuron_mode -> neuron.mode,
    surrogate_alpha -> neuron.alpha, scan_unroll -> neuron.unroll;
    init_tau, v_th, v_reset, reset, detach_reset, surrogate -> neuron.<same>;
    d_state, emission, dropout, dt_min, dt_max -> block.<same>;
    fft_friendly removed (`s4jax.ssm.fft_conv` picks a fast FFT size).
  S4M: hidden, depth, ssm, d_state, ff_expand, reconstruction_s4,
    topdown_quirk, dropout -> block.<same>.
  All other keys keep their name and place.
"""

from __future__ import annotations

import ml_collections


def parse_arg(arg: str | None, **defaults):
  """Parses `'a=1,b=x'` into a ConfigDict, typed by `defaults`.

  Args:
    arg: comma-separated `key=value` pairs (or None).
    **defaults: allowed keys and their default values; a value's type decides
      how the string is converted (bool accepts true/false/1/0).

  Returns:
    A ConfigDict with every key of `defaults`.

  Raises:
    ValueError: for an unknown key or a value of the wrong type.
  """
  out = ml_collections.ConfigDict(defaults)
  if not arg:
    return out
  for item in arg.split(','):
    key, sep, value = item.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ValueError(
        f'Unknown config argument {key!r}; known: {sorted(defaults)}.'
      )
    if not sep:
      value = 'true'  # A bare flag means True.
    default = defaults[key]
    if isinstance(default, bool):
      if value.lower() not in ('true', 'false', '1', '0'):
        raise ValueError(f'Config argument {key}={value!r} is not a bool.')
      out[key] = value.lower() in ('true', '1')
    elif default is None:
      out[key] = value
    else:
      try:
        out[key] = type(default)(value)
      except ValueError as e:
        raise ValueError(
          f'Config argument {key}={value!r} is not a {type(default).__name__}.'
        ) from e
  return out


def shrink_run_for_smoke(
  config: ml_collections.ConfigDict, segment_seconds: float = 0.5
) -> None:
  """Run settings every recipe's `smoke=True` shares: tiny built-in data, 2 steps.

  Recipes shrink their own model on top of this.
  """
  config.data.name = 'synthetic'
  config.data.segment_seconds = segment_seconds
  config.data.synthetic_train_seconds = 8.0
  config.data.synthetic_eval_seconds = 2.0
  config.train.batch_size = 2
  config.train.num_steps = 2
  config.train.log_every = 1
  config.train.eval_every = 2
  config.train.checkpoint_every = 2
  config.eval.batch_size = 2
  config.eval.num_examples = 2


def train_for_epochs(
  config: ml_collections.ConfigDict,
  examples: int,
  epochs: int,
  eval_every_epochs: int = 1,
) -> int:
  """Step counts of an epoch-based recipe at `config.train.batch_size`.

  Sets `train.num_steps` to `epochs` epochs of `examples` training examples
  and evaluates and checkpoints every `eval_every_epochs` epochs.

  Returns:
    Steps per epoch, `ceil(examples / batch_size)`.
  """
  steps_per_epoch = -(-examples // config.train.batch_size)
  config.train.num_steps = epochs * steps_per_epoch
  config.train.eval_every = eval_every_epochs * steps_per_epoch
  config.train.checkpoint_every = eval_every_epochs * steps_per_epoch
  return steps_per_epoch


def get_base_config() -> ml_collections.ConfigDict:
  """Returns the shared skeleton; recipes override and extend it."""
  config = ml_collections.ConfigDict()
  config.task = 'enhancement'
  config.seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.name = ''

  config.data = ml_collections.ConfigDict()
  # synthetic, offline (launch/build_corpus.py), voicebank_demand, ndns,
  # librimix, wham
  config.data.name = 'synthetic'
  config.data.sample_rate = 16000
  config.data.segment_seconds = 4.0  # random crop length; 0 = whole clips
  config.data.num_sources = 1  # separation: speakers per mixture
  config.data.manual_dir = ''  # real corpora: folder with the corpus layout
  config.data.data_dir = ''  # tensorflow-datasets cache ('' = default)
  config.data.synthetic_train_seconds = 1200.0  # built-in set sizes
  config.data.synthetic_eval_seconds = 120.0
  config.data.deterministic = True
  config.data.train_split = 'train'  # librimix also has 'train360'
  config.data.eval_segment_seconds = 0.0  # 0 = whole clips, padded
  config.data.mode = 'min'  # librimix/wham: 'min' or 'max' mixtures
  config.data.mixture = ''  # librimix/wham: clean|both|single ('' = task's)
  config.data.synthetic_clip_seconds = 6.0
  config.data.snr_range = (-5.0, 20.0)  # synthetic/offline: dB (N-DNS)
  config.data.level_range = (-35.0, -15.0)  # synthetic/offline: dBFS
  config.data.separation_noise = False  # synthetic separation: add noise
  config.data.generation_workers = 1  # processes generating synthetic data
  # Threads of the trainer's process making training batches, or worker
  # processes instead (> 0; for the offline corpus, whose on-the-fly mixing
  # is Python-bound). On accelerator hosts, enough to make the examples per
  # second that launch/compile.py says the chips consume
  # (benchmarks/feed_bench.py measures the cost of one example).
  config.data.threads = 2
  config.data.workers = 0
  # offline corpus (data_pipelines/offline.py); its folder is manual_dir, else
  # <data_dir or $S4JAX_CACHE_DIR or ~/.cache/s4jax>/offline. snr_range and
  # level_range apply too.
  config.data.offline_train_examples = 100_000  # mixtures per epoch
  config.data.offline_eval_examples = 32  # validation/test mixtures
  config.data.offline_clip_seconds = 6.0  # eval clips (train: segment)
  config.data.offline_reverb_prob = 0.3  # share of reverberant speech
  config.data.offline_early_ms = 50.0  # target keeps early reflections
  config.data.offline_tts_fraction = 0.25  # share of TTS speech in training
  config.data.offline_synthetic_noise_prob = 0.3  # else recorded noise
  config.data.offline_speed_perturb = 0.1  # +-10 % speed (training)

  config.loss = ml_collections.ConfigDict()

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'  # adam, adamw, radam
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 0.0
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  config.optimizer.clip_norm = 0.0  # global-norm clipping; 0 = off
  config.optimizer.schedule = 'constant'  # constant, cosine, plateau
  config.optimizer.warmup_steps = 0
  config.optimizer.plateau_factor = 0.5
  config.optimizer.plateau_patience = 15  # evaluations without improvement
  # SSM parameters (dt, A/Lambda, B, P): own learning rate, no weight decay.
  # 0 = same learning rate as the rest.
  config.optimizer.ssm_learning_rate = 0.0
  config.optimizer.ssm_weight_decay = 0.0

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 8  # global batch size
  config.train.num_steps = 1000
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.keep_checkpoints = 3
  config.train.max_consecutive_skips = 10  # non-finite gradient guard
  config.train.compute_dtype = 'float32'  # or bfloat16 (dense/conv layers)
  config.train.profile_steps = 0

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 4
  config.eval.num_examples = 0  # 0 = whole validation split
  config.eval.metrics = ('si_snr',)
  config.eval.best_metric = 'si_snr'
  config.eval.best_mode = 'max'
  config.eval.num_workers = 2  # processes for CPU-bound metrics
  config.eval.num_audio_examples = 2  # written to TensorBoard

  # SEOFP sign-exponent-only weights (s4jax.quant; rules.py explains the
  # path rules). Training fake-quantises the selected float32 masters with a
  # straight-through gradient; export packs them to 1 + exponent_bits bits.
  config.quant = ml_collections.ConfigDict()
  config.quant.enabled = False
  config.quant.exponent_bits = 5  # 1..8; 5 -> 6 bits/weight, 81.25% smaller
  config.quant.rounding = 'truncate'  # truncate, nearest_linear, nearest_log
  config.quant.granularity = 'tensor'  # exponent window: tensor or channel
  config.quant.channel_axis = -1  # output-channel axis for 'channel'
  config.quant.ste_mask = 'none'  # gradient: none, saturate, range
  config.quant.include = (r'(^|/)kernel$',)  # regexes: weights to quantise
  config.quant.exclude = ()  # regexes on 'a/b/kernel' paths kept in float
  config.quant.include_bias = False
  config.quant.include_norm = False  # LayerNorm/GroupNorm/gLN parameters
  config.quant.include_ssm = False  # log_dt, A, B, P, C, D of S4 layers
  return config
