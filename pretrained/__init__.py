"""Pretrained s4jax models that ship with the package (see `hub`).

  from pretrained import available, from_pretrained
  available()                          # ['s4m_tiny', 'spiking_s4', ...]
  model = from_pretrained('spiking_s4')
  enhanced = model(noisy)              # mono float32 at model.sample_rate

Each model is a folder `pretrained/<name>/` (config.json, params.msgpack,
MODEL_CARD.md) written by `launch/export_pretrained.py`. This package reads
files, so it lives outside the pure library `s4jax`.
"""

from pretrained.hub import (
  ENV_VAR,
  PretrainedError,
  available,
  default_root,
  from_pretrained,
  load_dir,
)

__all__ = [
  'ENV_VAR',
  'PretrainedError',
  'available',
  'default_root',
  'from_pretrained',
  'load_dir',
]
