r"""S4M-tiny two-speaker separation (Chen et al., Interspeech 2023).

The model is the authors' release (`JusperLee/S4M`, `S4M.py`) with a 4 ms
encoder window: 1,828,967 parameters at 8 kHz, about 5.6 G MACs per second
of audio (conv and dense layers; `s4jax.models.s4m.count_macs`). The
training recipe is TDANet's (`JusperLee/TDANet`, `configs/tdanet.yml`),
which the S4M authors used: permutation-invariant negative SNR with a -30 dB
threshold, Adam lr 1e-3, learning rate halved after 15 evaluations without
improvement, global gradient clipping 5, 3 s random crops, batch 4 (1 per
GPU on 4 GPUs), up to 500 epochs of Libri2Mix train-100 (13,900 mixtures,
8 kHz, min): one evaluation per epoch.

The default data is the built-in synthetic two-source set, so the command
runs on a fresh machine:

  python launch/train.py --config=configs/s4m_tiny.py --workdir=/tmp/s4m_tiny

Real Libri2Mix (generated with `generate_librimix.sh`; the folder holding
`Libri2Mix/wav8k/min/...`):

  python launch/train.py --config=configs/s4m_tiny.py \
    --config.data.name=librimix --config.data.manual_dir=/path/to/LibriMix \
    --workdir=/tmp/s4m_tiny_libri2mix

Other switches: `:smoke=True` (seconds on a CPU), `:ssm=s4d` (diagonal S4
instead of the released DPLR S4), `:sample_rate=16000`;
`--config.model.block.topdown_quirk=False` uses the coarsest scale in the
first top-down step instead of the release's indexing.

Target (paper, Table 2): Libri2Mix SI-SDRi 16.2 dB, SDRi 16.6 dB. An
independent reproduction with batch 8 for 150 epochs reached 14.3 / 14.8
(JusperLee/S4M#7).
"""

from __future__ import annotations

import ml_collections

from configs import base
from s4jax.models import s4m

LIBRI2MIX_TRAIN100 = 13_900  # mixtures in Libri2Mix train-100


def s4m_model(
  config: ml_collections.ConfigDict, ssm: str = 's4'
) -> ml_collections.ConfigDict:
  """`config.model` of S4M-tiny: the module defaults, the release's values.

  The layout and the defaults come from the modules
  (`s4jax.models.s4m.default_config`): the `S4M` attributes at the top
  (enc_kernel_ms 4: S4M-tiny, the release's file default is 21; num_blocks,
  remat, scan, ...) and `block.*`, the weight-shared
  `s4m_blocks.S4MBlock` (hidden, depth, ssm, d_state, reconstruction_s4,
  topdown_quirk, ...).
  """
  m = s4m.default_config()
  m.num_sources = config.data.get_ref('num_sources')
  m.sample_rate = config.data.get_ref('sample_rate')
  m.block.ssm = ssm  # 's4' (release: DPLR, HiPPO-LegS), 's4d' or 'identity'
  return m


def s4m_loss() -> ml_collections.ConfigDict:
  """`config.loss`: TDANet's PIT negative SNR with a -30 dB threshold."""
  loss = ml_collections.ConfigDict()
  loss.pair_fn = 'neg_snr'  # or 'neg_si_snr', 'neg_si_sdr'
  loss.threshold_db = -30.0
  loss.all_dropped = 'mean'  # TDANet: plain mean if every example is dropped
  return loss


def smoke(config: ml_collections.ConfigDict) -> None:
  """Shrinks model and run so a training test takes seconds on a CPU."""
  m = config.model
  m.bottleneck = 16
  m.num_blocks = 2
  m.block.hidden = 32
  m.block.depth = 3
  m.block.d_state = 8
  m.block.ff_expand = 2
  base.shrink_run_for_smoke(config, segment_seconds=0.25)
  config.eval.metrics = ('si_sdr', 'si_sdri')
  config.eval.num_workers = 0
  config.eval.num_audio_examples = 1


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """S4M-tiny recipe; `arg`: 'smoke=True', 'ssm=s4d', 'sample_rate=16000'."""
  arg = base.parse_arg(arg, smoke=False, ssm='s4', sample_rate=8000)
  config = base.get_base_config()
  config.task = 'separation'

  config.data.name = 'synthetic'  # or librimix (set manual_dir), wham
  config.data.sample_rate = arg.sample_rate
  config.data.num_sources = 2
  config.data.segment_seconds = 3.0

  config.model = s4m_model(config, arg.ssm)
  config.loss = s4m_loss()

  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 0.0
  config.optimizer.clip_norm = 5.0
  config.optimizer.schedule = 'plateau'
  config.optimizer.plateau_factor = 0.5
  config.optimizer.plateau_patience = 15

  config.train.batch_size = 4
  base.train_for_epochs(config, LIBRI2MIX_TRAIN100, 500)  # 3475 steps/epoch
  config.train.log_every = 100
  config.train.compute_dtype = 'float32'

  config.eval.batch_size = 1  # whole utterances of different lengths
  config.eval.metrics = ('si_sdr', 'si_sdri', 'sdr', 'sdri')
  config.eval.best_metric = 'si_sdri'
  config.eval.best_mode = 'max'

  if arg.smoke:
    smoke(config)
  return config
