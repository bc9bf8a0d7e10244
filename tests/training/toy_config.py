"""A seconds-long recipe over the toy model and data of `s4jax.training.testing`.

Run: `python launch/train.py --config=tests/training/toy_config.py
--input_pipeline=s4jax.training.testing --workdir=/tmp/toy`.
"""

from configs import base


def get_config(arg=None):
  arg = base.parse_arg(arg, task='enhancement', steps=8, batch=4)
  config = base.get_base_config()
  config.task = arg.task
  config.model.name = 's4jax.training.testing'
  config.model.frame = 32
  config.model.hidden = 16
  config.model.num_sources = 2 if arg.task == 'separation' else 0
  config.data.sample_rate = 8000
  config.data.segment_seconds = 0.064  # 512 samples.
  config.data.num_sources = 2
  config.optimizer.learning_rate = 3e-3
  config.optimizer.clip_norm = 5.0
  config.train.batch_size = arg.batch
  config.train.num_steps = arg.steps
  config.train.log_every = 1
  config.train.eval_every = 4
  config.train.checkpoint_every = 4
  config.train.keep_checkpoints = 2
  config.train.max_consecutive_skips = 3
  config.eval.batch_size = 4
  config.eval.num_examples = 6
  config.eval.metrics = ('si_snr', 'si_snri')
  config.eval.num_workers = 0
  config.eval.num_audio_examples = 1
  if arg.task == 'separation':
    config.eval.metrics = ('si_sdr', 'si_sdri')
    config.eval.best_metric = 'si_sdr'
  return config
