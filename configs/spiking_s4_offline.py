r"""Spiking-S4 (the paper's 530,442-parameter model) on real recorded speech.

Trains on the offline corpus of real speech and noise built from Debian
packages (`python launch/build_corpus.py --install`; see "The offline
corpus" in docs/reference/data.md), so that the model improves real
recordings, not only the built-in source-filter speech:

  python launch/build_corpus.py --install
  python launch/train.py --config=configs/spiking_s4_offline.py \
      --workdir=runs/ss4_offline

Model: the paper's (Du, Liu & Chua, ICASSP 2024) linear-emission Spiking-S4
at width 256 with 4 layers, as in `configs/spiking_s4_ndns.py`. Loss: the
authors' `0.001 MSE(|S_hat|, |S|) - SI-SNR` plus `compressed_weight` times
the power-law compressed magnitude MSE (`|S|^0.3`, Braun & Tashev 2021),
which weighs quiet speech components that SI-SNR alone lets the model
suppress. The N-DNS settings where they fit a 2-core CPU: RAdam lr 1e-2,
clip 10, weight decay 1e-5, but batch 8 of 3 s crops (not 128 x 30 s) and
a cosine schedule for a run of hours. Checkpoints are chosen by PESQ-WB on
the validation split (held-out real speakers).

The shipped model `s4jax/pretrained/spiking_s4` comes from this recipe; its
model card gives the steps, wall time and scores on real recordings.
"""

from __future__ import annotations

import ml_collections

from configs import base, spiking_s4_ndns


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Offline-corpus recipe; `arg`: 'smoke=True', 'steps=N', 'compressed=W'."""
  arg = base.parse_arg(arg, smoke=False, steps=8000, compressed=100.0)
  config = base.get_base_config()
  config.task = 'enhancement'

  config.model = spiking_s4_ndns.spiking_s4_model('linear')
  config.loss = spiking_s4_ndns.spiking_s4_loss(config.model)
  config.loss.compressed_weight = arg.compressed

  config.data.name = 'offline'
  config.data.sample_rate = 16000
  config.data.segment_seconds = 3.0

  config.optimizer.name = 'radam'
  config.optimizer.learning_rate = 1e-2
  config.optimizer.weight_decay = 1e-5
  config.optimizer.clip_norm = 10.0
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 100
  config.optimizer.ssm_learning_rate = 0.0  # authors: one group for all
  config.optimizer.ssm_weight_decay = 1e-5

  config.train.batch_size = 8
  config.train.num_steps = arg.steps
  config.train.log_every = 100
  config.train.eval_every = 1000
  config.train.checkpoint_every = 500
  config.train.keep_checkpoints = 2

  config.eval.batch_size = 8
  config.eval.metrics = ('si_snr', 'si_snri', 'pesq_wb', 'stoi')
  config.eval.best_metric = 'pesq_wb'
  config.eval.best_mode = 'max'
  config.eval.num_workers = 0
  config.eval.num_audio_examples = 2

  if arg.smoke:
    spiking_s4_ndns.smoke_model(config.model)
    base.shrink_run_for_smoke(config)
    config.eval.metrics = ('si_snr',)
    config.eval.best_metric = 'si_snr'
  return config
