r"""Spiking-S4 on VoiceBank+DEMAND (16 kHz).

The model is the paper's configuration (linear emission, 530,442 parameters)
with the front end and loss of the N-DNS recipe (`configs/spiking_s4_ndns.py`).
The paper's VoiceBank+DEMAND training settings could not be verified; this
recipe keeps the authors' optimiser (RAdam lr 1e-2, weight decay 1e-5, clip
10) and trains on random 4 s crops (VB utterances average about 3 s and are
zero-padded), batch 32, 100 epochs of the 11,572 training utterances, with
the validation metrics computed on whole test utterances.

Run:
  python -m launch.train --config=configs/spiking_s4_vbd.py \
    --config.data.manual_dir=/data/voicebank_demand --workdir=...
  python -m launch.train --config=configs/spiking_s4_vbd.py:smoke=True ...

Target (paper, as quoted by SEMamba, Table 3): PESQ 3.39, CSIG 4.92,
CBAK 2.64, COVL 4.31 (noisy: PESQ 1.97).
"""

from __future__ import annotations

import ml_collections

from configs import base, spiking_s4_ndns

VBD_TRAIN_UTTERANCES = 11_572


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Spiking-S4 VoiceBank+DEMAND recipe; `arg`: 'smoke=True,emission=glu'."""
  arg = base.parse_arg(arg, smoke=False, emission='linear')
  config = base.get_base_config()
  config.task = 'enhancement'

  config.model = spiking_s4_ndns.spiking_s4_model(arg.emission)
  config.loss = spiking_s4_ndns.spiking_s4_loss(config.model)

  config.data.name = 'voicebank_demand'
  config.data.sample_rate = 16000
  config.data.segment_seconds = 4.0

  config.optimizer.name = 'radam'
  config.optimizer.learning_rate = 1e-2
  config.optimizer.weight_decay = 1e-5
  config.optimizer.clip_norm = 10.0
  config.optimizer.schedule = 'constant'
  config.optimizer.ssm_weight_decay = 1e-5

  config.train.batch_size = 32
  base.train_for_epochs(config, VBD_TRAIN_UTTERANCES, 100, eval_every_epochs=5)
  config.train.log_every = 50
  config.train.compute_dtype = 'float32'

  config.eval.batch_size = 1  # whole utterances of different lengths
  config.eval.metrics = ('pesq_wb', 'stoi', 'csig', 'cbak', 'covl', 'si_snr')
  config.eval.best_metric = 'pesq_wb'
  config.eval.best_mode = 'max'

  if arg.smoke:
    spiking_s4_ndns.smoke_model(config.model)
    base.shrink_run_for_smoke(config)
    config.eval.metrics = ('si_snr',)
  return config
