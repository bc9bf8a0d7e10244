r"""Spiking-S4 on the Intel Neuromorphic DNS Challenge (N-DNS), track 1.

The recipe of the authors' N-DNS code (`dyabel/dns-challenge-submission`,
`train_sdnn_s4_snn.py`, `checkpoints/Traineds4_snn_plif_final/args.txt`):
30 s clips at 16 kHz, |STFT| (512 / 128, rectangular window) - 0.2 into four
Spiking-S4 layers (H 256, S4D N 64, PLIF neurons), mask relu(x + 1), loss
0.001 MSE(|S_hat|, |S|) - SI-SNR, RAdam lr 1e-2, weight decay 1e-5, global
clip 10, batch 128, 50 epochs of the 60,000-clip training set, no schedule,
updates with a non-finite gradient skipped.

The default emission layer is 'linear' (the paper's 0.53 M = 530,442
parameters, 1.50 G MACs per 30 s clip); `emission=glu` gives the authors'
leaderboard entry (793,610 parameters; SI-SNR 14.11 dB on the validation set).

Run:
  python -m launch.train --config=configs/spiking_s4_ndns.py \
    --config.data.manual_dir=/data/MicrosoftDNS_4_ICASSP --workdir=...
  python -m launch.train --config=configs/spiking_s4_ndns.py:emission=glu ...
  python -m launch.train --config=configs/spiking_s4_ndns.py:smoke=True ...

Target: N-DNS validation SI-SNR >= 14.1 dB (noisy 7.62 dB; Intel's SDNN
baseline 12.50 dB).
"""

from __future__ import annotations

import ml_collections

from configs import base
from s4jax.models import spiking_s4

NDNS_TRAIN_CLIPS = 60_000


def spiking_s4_model(emission: str = 'linear') -> ml_collections.ConfigDict:
  """`config.model` of Spiking-S4: the module defaults, the authors' values.

  The layout and the defaults come from the modules
  (`s4jax.models.spiking_s4.default_config`): the `SpikingS4` attributes at
  the top, `neuron.*` (`spiking`, False for the GELU baseline, and the
  `s4jax.spiking.PLIF` attributes: mode, init_tau, v_th, ...) and
  `block.*` (the `SpikingS4Block` attributes: d_state, emission, ...).
  """
  m = spiking_s4.default_config()
  m.win_length = 512  # torch.stft default of the authors' stft_splitter
  m.block.emission = emission  # 'linear' (paper) or 'glu' (competition code)
  return m


def spiking_s4_loss(
  model: ml_collections.ConfigDict,
) -> ml_collections.ConfigDict:
  """`config.loss`: lambda MSE - SI-SNR, STFT settings tied to the model."""
  loss = ml_collections.ConfigDict()
  loss.mse_weight = 1e-3
  loss.mse_target = 'magnitude'  # or 'mask' (ideal amplitude mask)
  loss.mask_target_max = 10.0
  loss.si_snr_eps = 1e-8
  # Perceptual terms (s4jax.audio.spectral_losses); 0 = the paper's loss.
  loss.compressed_weight = 0.0
  loss.compress_power = 0.3
  loss.mrstft_weight = 0.0
  # References, so a model STFT override carries over to the loss.
  loss.n_fft = model.get_ref('n_fft')
  loss.hop_length = model.get_ref('hop_length')
  loss.win_length = model.get_ref('win_length')
  loss.window = model.get_ref('window')
  return loss


def smoke_model(model: ml_collections.ConfigDict) -> None:
  """Shrinks a Spiking-S4 model config to run in seconds on a CPU."""
  model.d_model = 16
  model.n_layers = 1
  model.block.d_state = 8


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Spiking-S4 N-DNS recipe; `arg`: 'smoke=True,emission=glu'."""
  arg = base.parse_arg(arg, smoke=False, emission='linear')
  config = base.get_base_config()
  config.task = 'enhancement'

  config.model = spiking_s4_model(arg.emission)
  config.loss = spiking_s4_loss(config.model)

  config.data.name = 'ndns'
  config.data.sample_rate = 16000
  config.data.segment_seconds = 30.0  # N-DNS clips, padded/cropped to 30 s

  config.optimizer.name = 'radam'
  config.optimizer.learning_rate = 1e-2
  config.optimizer.weight_decay = 1e-5  # L2 in the gradient (torch RAdam)
  config.optimizer.clip_norm = 10.0
  config.optimizer.schedule = 'constant'
  config.optimizer.ssm_learning_rate = 0.0  # authors: one group for all
  config.optimizer.ssm_weight_decay = 1e-5

  config.train.batch_size = 128
  base.train_for_epochs(config, NDNS_TRAIN_CLIPS, 50)  # 469 steps/epoch
  config.train.log_every = 50
  config.train.compute_dtype = 'float32'

  config.eval.batch_size = 16
  config.eval.metrics = (
    'si_snr',
    'si_snri',
    'dnsmos_ovrl',
    'dnsmos_sig',
    'dnsmos_bak',
  )
  config.eval.best_metric = 'si_snr'
  config.eval.best_mode = 'max'

  if arg.smoke:
    smoke_model(config.model)
    base.shrink_run_for_smoke(config)
    config.eval.metrics = ('si_snr',)
  return config
