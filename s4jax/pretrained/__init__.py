"""Pretrained s4jax models that ship with the package (see `hub`).

  import s4jax
  s4jax.pretrained.available()             # ['spiking_s4', ...]
  model = s4jax.from_pretrained('spiking_s4')
  enhanced = model(noisy)                  # mono float32 at model.sample_rate
  packed = s4jax.from_pretrained('spiking_s4', seofp=True)  # SEOFP weights

Each model is a folder `s4jax/pretrained/<name>/` (config.json,
params.msgpack, MODEL_CARD.md, optionally params.seofp) shipped as package
data and checked against the SHA-256 sums in its MODEL_CARD.md when loaded.
`launch/export_pretrained.py` writes such folders from a training run. This
subpackage is the library's one file reader; it reads nothing on import.
"""

from s4jax.pretrained.hub import (
  ENV_VAR,
  PretrainedError,
  available,
  default_root,
  from_pretrained,
  load_dir,
  model_dir,
)

__all__ = [
  'ENV_VAR',
  'PretrainedError',
  'available',
  'default_root',
  'from_pretrained',
  'load_dir',
  'model_dir',
]
