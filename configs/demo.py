r"""Demo: a small Spiking-S4 enhancer on the built-in synthetic speech data.

The README's main job: `launch/demo.py` trains it on a 2-core CPU, evaluates
it on the whole built-in validation set and enhances an example file:

  python launch/demo.py --workdir=runs/demo      # train -> evaluate -> enhance
  python launch/train.py --config=configs/demo.py --workdir=runs/demo

Model: Spiking-S4 (PLIF neurons, S4D layers, magnitude mask) at width 128
with two layers and S4D state 32, STFT 512/128 at 16 kHz, trained for 3000
steps of 8 random 2 s crops with the authors' loss (0.001 MSE - SI-SNR) and
optimiser (RAdam lr 1e-2, clip 10) under a cosine schedule. `spiking=False`
gives the non-spiking (GELU) baseline of the same size.

Expected result (`benchmarks/RESULTS.md`, "Training system and the demo
recipe"): SI-SNRi 7.6 dB on the built-in validation set (SI-SNR 7.7 -> 15.3
dB, PESQ-WB 1.22 -> 1.62, STOI 0.82 -> 0.85); the whole demo took 7 minutes
on a shared 2-core CPU VM.
"""

from __future__ import annotations

import ml_collections

from configs import base, spiking_s4_ndns


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Demo recipe; `arg`: 'smoke=True', 'spiking=False', 'steps=N', ..."""
  arg = base.parse_arg(
    arg, smoke=False, spiking=True, steps=3000, width=128, layers=2
  )
  config = base.get_base_config()
  config.task = 'enhancement'

  config.model = spiking_s4_ndns.spiking_s4_model('linear')
  config.model.d_model = arg.width
  config.model.n_layers = arg.layers
  config.model.block.d_state = 32
  config.model.neuron.spiking = arg.spiking
  config.loss = spiking_s4_ndns.spiking_s4_loss(config.model)

  config.data.name = 'synthetic'
  config.data.sample_rate = 16000
  config.data.segment_seconds = 2.0
  config.data.synthetic_train_seconds = 1200.0
  config.data.synthetic_eval_seconds = 120.0

  config.optimizer.name = 'radam'
  config.optimizer.learning_rate = 1e-2
  config.optimizer.clip_norm = 10.0
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 50

  config.train.batch_size = 8
  config.train.num_steps = arg.steps
  config.train.log_every = 50
  config.train.eval_every = 1000
  config.train.checkpoint_every = 1000
  config.train.keep_checkpoints = 2

  config.eval.batch_size = 8
  config.eval.metrics = ('si_snr', 'si_snri')
  config.eval.best_metric = 'si_snri'
  config.eval.num_workers = 0
  config.eval.num_audio_examples = 2

  if arg.smoke:
    config.model.d_model = 16
    config.model.n_layers = 1
    config.model.block.d_state = 8
    base.shrink_run_for_smoke(config)
  return config
