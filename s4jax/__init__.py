"""s4jax: structured state-space models in JAX for speech enhancement/separation.

The library is pure, jittable JAX + Flax: no TensorFlow, no flags or
processes, and no file I/O except `s4jax.pretrained`, which loads the models
that ship with it (the training/evaluation shell is the `harness` folder of
the repository, which the wheel does not install). Subpackages:

* `s4jax.ssm`: pure-functional S4/S4D kernels, FFT convolution, streaming.
* `s4jax.layers`: thin Flax modules holding parameters and calling the math.
* `s4jax.spiking`: spike functions with surrogate gradients, PLIF neurons.
* `s4jax.models`: Spiking-S4 (enhancement), S4M (separation), their energy
  and cost (`summary`), export forms (`portable`), `build` (from_config).
* `s4jax.quant`: SEOFP sign-exponent-only quantisation.
* `s4jax.audio`: STFT, losses, PIT, permutation search, resampling.
* `s4jax.training`: train state, optimisers, sharding, tasks, train step.
* `s4jax.inference`: the `SpeechModel` interface; offline, chunked and
  streamed processing of signals.
* `s4jax.pretrained`: the shipped models: `available()`, `from_pretrained`.

`s4jax.from_pretrained(name)` is `s4jax.pretrained.from_pretrained`. The
subpackages and `from_pretrained` are imported on first use, so
`import s4jax` stays light and reads no file.
"""

from __future__ import annotations

import importlib
import typing

__version__ = '0.2.0.dev0'

__all__ = [
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
]

_SUBMODULES = frozenset(__all__) - {'from_pretrained'}

if typing.TYPE_CHECKING:
  from s4jax.pretrained.hub import from_pretrained


def __getattr__(name: str) -> typing.Any:
  """Imports a subpackage, or `from_pretrained`, on first use (PEP 562)."""
  if name in _SUBMODULES:
    return importlib.import_module(f's4jax.{name}')
  if name == 'from_pretrained':
    from s4jax.pretrained import hub  # pylint: disable=g-import-not-at-top

    return hub.from_pretrained
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted({*globals(), *__all__})
