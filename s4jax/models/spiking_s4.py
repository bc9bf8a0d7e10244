"""Spiking-S4 speech enhancement (Du, Liu, Chua, ICASSP 2024, arXiv 2309.03641).

The network as the authors' N-DNS code builds it (`dyabel/dns-challenge-
submission`: `train_sdnn_s4_snn.py`, `s4/s4_model_snn.py`, `s4/s4d.py`):

  |Y| = |STFT(noisy)|   (n_fft 512, hop 128, rectangular window, centred)
  x = |Y| - 0.2 -> Linear(257 -> 256) -> PLIF
  4 x [ y = S4D(x) + D x -> PLIF -> y = Emission(y) + y -> PLIF -> dropout
        x = LayerNorm(x + y) ]                                   (post-norm)
  mask = relu(Linear(256 -> 257)(x) + 1)
  s_hat = iSTFT(|Y| mask e^{j angle(Y)})

Emission is 'linear' (Linear 256 -> 256: the paper's 0.53 M = 530,442
parameters) or 'glu' (Conv1d 256 -> 512 + GLU: the competition entry's 793 K =
793,610). The S4D layer is `s4jax.layers.S4Layer` in diagonal mode with the
minimal-S4D setup (S4D-Lin init, B fixed to 1, ZOH, one kernel per channel,
causal FFT convolution). Each PLIF group has one learnable time constant
(`s4jax.spiking.PLIF`); 'stateless' neurons reproduce the authors' code,
'temporal' ones carry their membrane across STFT frames. `neuron=Gelu`
(config `neuron.spiking=False`, preset `S4Baseline`) replaces every PLIF by
GELU: the non-spiking S4 baseline of equal size used for the energy
comparison.

Configuration (`default_config`, `from_config`): `config.model` holds the
`SpikingS4` attributes, `config.model.neuron` the `spiking.PLIF` ones (plus
`spiking`) and `config.model.block` the `SpikingS4Block` ones; each is
declared once, in the module that uses it.

Dense layers are initialised like PyTorch's `nn.Linear` / `nn.Conv1d`
(weights and biases uniform in `+-1/sqrt(fan_in)`, `s4jax.layers.init`),
LayerNorm uses `eps=1e-5`, so the thresholds see the activations the
reference saw.

Training contract (used by `s4jax.training`):
  `from_config(model_config) -> SpikingS4`;
  `model.apply(variables, noisy (B, T), train=..., rngs={'dropout': k})`
  returns `{'estimate' (B, T), 'est_mag', 'noisy_mag', 'mask' (B, frames,
  257), 'firing_rates': {layer: scalar}}`;
  `loss_fn(outputs, batch, loss_config) -> (loss, metrics)`.

Streaming (frame by frame, exact; see `init_stream`):
  state = init_stream(variables, model_config, batch=1)
  out_hop, state = stream_step(variables, state, hop)   # (B, 128) each
  tail, state = stream_flush(variables, state)           # last 384 samples
  tail, state = stream_flush(variables, state, last)     # last (B, r < 128)
                                                         # in, 384 + r out
Output hop k leaves with input hop k + 3: one window (32 ms) of algorithmic
latency. `enhance_streaming` strings these together and returns a signal
aligned with the offline output, for any length (a signal ending inside a
hop is flushed with its partial hop, reflect-padded at its true end).
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from s4jax import models, spiking
from s4jax.audio import losses, spectral_losses
from s4jax.audio import stft as stft_lib
from s4jax.layers import init as init_lib
from s4jax.layers import s4 as s4_layer

__all__ = [
  'DTYPES',
  'EMISSIONS',
  'Gelu',
  'MASKS',
  'MSE_TARGETS',
  'S4Baseline',
  'SpikingS4',
  'SpikingS4Block',
  'SpikingS4Glu',
  'StreamState',
  'check_waveform',
  'default_config',
  'enhance_streaming',
  'from_config',
  'init_stream',
  'loss_fn',
  'neuron_from_config',
  'offline_enhancer',
  'stream_flush',
  'stream_step',
]

EMISSIONS = ('linear', 'glu')
MASKS = ('relu', 'sigmoid')
DTYPES = ('float32', 'bfloat16', 'float64')
MSE_TARGETS = ('magnitude', 'mask')


def _dense(features: int, fan_in: int, dtype: Any, name: str) -> nn.Dense:
  init = init_lib.torch_uniform(fan_in)
  return nn.Dense(
    features, dtype=dtype, kernel_init=init, bias_init=init, name=name
  )


class Gelu(nn.Module):
  """Non-spiking stand-in for `spiking.PLIF` with the same interface.

  The 'rate' it reports is the fraction of non-zero outputs (the N-DNS event
  rate of a dense activation). Elementwise, so `time_axis` does not matter.
  """

  def __call__(self, x, time_axis: int = -2):
    del time_axis  # Elementwise.
    y = jax.nn.gelu(x, approximate=False)
    return y, jnp.mean((y != 0).astype(jnp.float32))

  def init_state(self, shape, dtype=jnp.float32):
    return jnp.zeros(shape, dtype)

  def step(self, v, x):
    return jax.nn.gelu(x, approximate=False), v


def neuron_from_config(
  group: Any, where: str = 'config.model.neuron'
) -> models.ModuleDef:
  """The neuron constructor for `config.model.neuron`.

  Args:
    group: `spiking` (default True; False: the GELU baseline, `Gelu`) and
      any `spiking.PLIF` attribute.
    where: the group's config path, for messages.

  Returns:
    `spiking.PLIF` with the settings bound, or `Gelu`.

  Raises:
    ValueError: for a key that is neither `spiking` nor a PLIF attribute.
  """
  values = models.config_group(group, where)
  is_spiking = values.pop('spiking', True)
  plif = models.configure(spiking.PLIF, values, where, extra=('spiking',))
  return plif if is_spiking else Gelu


def _s4d_step_real(consts: dict, state: tuple, x: jnp.ndarray):
  """The diagonal S4 step on real pairs: no complex dtype in the graph.

  Args:
    consts: `real_step_constants()`: `abar_re/_im`, `bbar_re/_im`, `c_re/_im`
      `(H, N2)` and `d` `(H,)`.
    state: `(Re h, Im h)`, each real `(B, H, N2)`.
    x: real `(B, H)` input.

  Returns:
    `(y (B, H), (Re h', Im h'))` with `h' = Abar h + Bbar u` and
    `y = 2 Re(C h') + D u`, written out as real products.
  """
  u = x.astype(jnp.float32)
  re, im = state
  ar, ai = consts['abar_re'], consts['abar_im']
  new_re = ar * re - ai * im + consts['bbar_re'] * u[..., None]
  new_im = ar * im + ai * re + consts['bbar_im'] * u[..., None]
  y = 2 * jnp.sum(consts['c_re'] * new_re - consts['c_im'] * new_im, axis=-1)
  return (y + consts['d'] * u).astype(x.dtype), (new_re, new_im)


class SpikingS4Block(nn.Module):
  """One residual Spiking-S4 layer on channels-first `(B, H, L)` activations.

  Time is the last axis, as in the authors' code and as the FFT of the S4D
  convolution needs it: `S4Layer`'s channels-last transposes then cancel
  against ours instead of becoming strided copies.

  Attributes:
    d_model: width H (set by `SpikingS4`).
    neuron: constructor of the two neuron groups (set by `SpikingS4`).
    dtype: compute dtype of the emission layer (set by `SpikingS4`).
    d_state: S4D state size N (N/2 conjugate pairs).
    emission: 'linear' (paper) or 'glu' (competition code).
    dropout: dropout rate after the second neuron group (whole channels,
      like PyTorch `Dropout1d`).
    dt_min: S4D step-size initialisation range, low end.
    dt_max: S4D step-size initialisation range, high end.
  """

  d_model: int
  neuron: models.ModuleDef
  dtype: Any
  d_state: int = 64
  emission: str = 'linear'
  dropout: float = 0.0
  dt_min: float = 1e-3
  dt_max: float = 1e-1

  def setup(self):
    if self.emission not in EMISSIONS:
      raise ValueError(
        f'Unknown emission {self.emission!r}; choose one of {EMISSIONS}.'
      )
    self.s4 = s4_layer.S4Layer(
      d_state=self.d_state,
      mode='s4d',
      init_scheme='lin',
      discretization='zoh',
      learn_b=False,
      activation=None,
      postact=None,
      dropout=0.0,
      dt_min=self.dt_min,
      dt_max=self.dt_max,
    )
    self.lif_ssm = self.neuron(name='lif_ssm')
    h = self.d_model
    width = 2 * h if self.emission == 'glu' else h
    self.emission_dense = _dense(width, h, self.dtype, 'emission')
    self.lif_out = self.neuron(name='lif_out')
    # Whole channels dropped for all frames (PyTorch Dropout1d on (B, H, L)).
    self.drop = nn.Dropout(self.dropout, broadcast_dims=(-1,))
    self.norm = nn.LayerNorm(
      epsilon=1e-5, dtype=jnp.float32, reduction_axes=-2, feature_axes=-2
    )

  def _emission(self, s: jnp.ndarray) -> jnp.ndarray:
    """Emission + shortcut on channels-last spikes `(..., H)`."""
    z = self.emission_dense(s.astype(self.dtype))
    if self.emission == 'glu':
      z = nn.glu(z, axis=-1)  # first half * sigmoid(second half)
    return z.astype(s.dtype) + s

  def _post(self, x, y, deterministic):
    """Everything after the S4D output; x, y: channels-first (B, H, L)."""
    s1, rate_ssm = self.lif_ssm(y, time_axis=-1)
    e = jnp.swapaxes(self._emission(jnp.swapaxes(s1, -1, -2)), -1, -2)
    s2, rate_out = self.lif_out(e, time_axis=-1)
    s2 = self.drop(s2, deterministic=deterministic)
    return self.norm(x + s2), rate_ssm, rate_out

  def ssm_kernel(self, length: int) -> jnp.ndarray:
    """The S4D kernel `(1, H, length)` for `length` frames."""
    return self.s4.kernel(self.d_model, length)

  def __call__(
    self,
    x: jnp.ndarray,
    deterministic: bool = True,
    kernel: jnp.ndarray | None = None,
  ):
    """x: real (B, H, L) -> (B, H, L), {'ssm': rate, 'out': rate}.

    `kernel` is an optional precomputed `ssm_kernel(L)` (inference with
    fixed parameters).
    """
    length = x.shape[-1]
    if kernel is not None and kernel.shape[-1] != length:
      raise ValueError(
        f'Precomputed S4 kernel has length {kernel.shape[-1]}; the input has '
        f'{length} frames.'
      )
    y = self.s4(jnp.swapaxes(x, -1, -2), kernel=kernel)
    x, rate_ssm, rate_out = self._post(
      x, jnp.swapaxes(y, -1, -2), deterministic
    )
    return x, {'ssm': rate_ssm, 'out': rate_out}

  def init_carry(
    self, batch: int, h: int, dtype=jnp.float32
  ) -> dict[str, jnp.ndarray]:
    return {
      's4': self.s4.init_state((batch,), h),
      'lif_ssm': self.lif_ssm.init_state((batch, h), dtype),
      'lif_out': self.lif_out.init_state((batch, h), dtype),
    }

  def step_constants(self) -> dict[str, jnp.ndarray]:
    """Discretised S4D system for `step`, computed once per stream.

    The discretised system (with `Abar = exp(dt A)`, `DiagSSM.abar`) is
    computed once, so a step costs no discretisation or complex exponential.
    """
    ssm = self.s4.discrete_ssm(self.d_model)
    d = self.s4.ssm(self.d_model)['d']
    return {'abar': ssm.abar, 'bbar': ssm.bbar, 'c': ssm.c, 'd': d}

  def real_step_constants(self) -> dict[str, jnp.ndarray]:
    """`step_constants` with each complex array split into `_re`/`_im`."""
    out = {}
    for key, value in self.step_constants().items():
      if jnp.iscomplexobj(value):
        out[f'{key}_re'], out[f'{key}_im'] = value.real, value.imag
      else:
        out[key] = value
    return out

  def step(self, carry: dict, x: jnp.ndarray, consts: dict | None = None):
    """One frame: x real (B, H) -> (B, H), next carry.

    With `consts` (from `step_constants`) the S4D recurrence
    `h' = Abar h + Bbar u`, `y = 2 Re(C h') + D u` (`s4jax.ssm.recurrence.
    step` with `Abar` precomputed) runs here; without, `S4Layer.step` does.
    With `real_step_constants` the same recurrence runs on `(Re h, Im h)`
    pairs in real arithmetic (`_s4d_step_real`), the form that exports.
    """
    if consts is None:
      y, s4_state = self.s4.step(carry['s4'], x)
    elif 'abar_re' in consts:
      y, s4_state = _s4d_step_real(consts, carry['s4'], x)
    else:
      u = x.astype(jnp.float32)
      s4_state = consts['abar'] * carry['s4'] + consts['bbar'] * u[..., None]
      y = 2 * jnp.sum(consts['c'] * s4_state, axis=-1).real
      y = (y.astype(u.dtype) + consts['d'] * u).astype(x.dtype)
    s1, v1 = self.lif_ssm.step(carry['lif_ssm'], y)
    s2, v2 = self.lif_out.step(carry['lif_out'], self._emission(s1))
    x = self.norm((x + s2)[..., None])[..., 0]
    return x, {'s4': s4_state, 'lif_ssm': v1, 'lif_out': v2}


class SpikingS4(nn.Module):
  """Spiking-S4 magnitude-mask enhancer (see the module docstring).

  Attributes:
    n_fft: STFT size.
    hop_length: STFT hop.
    win_length: STFT window length (0 or None: `n_fft`).
    window: STFT window, 'rect' (the authors') or 'hann'.
    input_offset: subtracted from the magnitude (authors: 0.2).
    d_model: width H.
    n_layers: number of Spiking-S4 blocks.
    mask: 'relu' (`relu(x + 1)`, unbounded above) or 'sigmoid'
      (`mask_bound * sigmoid(x)`).
    mask_bound: upper bound of the sigmoid mask (2: mask 1 at x = 0).
    dtype: compute dtype of the dense layers, a name ('float32', 'bfloat16';
      'float64' for numerical checks under x64). S4D, STFT, neurons and
      LayerNorm stay float32 (float64 under 'float64').
    neuron: constructor of every neuron group: `spiking.PLIF` with its
      settings bound (`models.module_def`), or `Gelu` for the non-spiking
      baseline of equal size.
    block: constructor of the layers, `SpikingS4Block` with its settings
      (S4D state size, emission, dropout, step-size range) bound.
  """

  n_fft: int = 512
  hop_length: int = 128
  win_length: int | None = None
  window: str = 'rect'
  input_offset: float = 0.2
  d_model: int = 256
  n_layers: int = 4
  mask: str = 'relu'
  mask_bound: float = 2.0
  dtype: str = 'float32'
  neuron: models.ModuleDef = models.module_def(spiking.PLIF)
  block: models.ModuleDef = models.module_def(SpikingS4Block)

  def _check(self) -> None:
    if self.mask not in MASKS:
      raise ValueError(f'Unknown mask {self.mask!r}; choose one of {MASKS}.')
    models.compute_dtype(self.dtype, DTYPES)

  @property
  def n_freq(self) -> int:
    return stft_lib.n_bins(self.n_fft)

  @property
  def is_spiking(self) -> bool:
    """False for the GELU baseline."""
    return models.module_class(self.neuron) is not Gelu

  @property
  def block_settings(self) -> dict[str, Any]:
    """The layers' `SpikingS4Block` settings (those this module sets aside)."""
    return models.settings_of(self.block)

  @property
  def stft_kwargs(self) -> dict[str, Any]:
    return dict(
      n_fft=self.n_fft,
      hop_length=self.hop_length,
      win_length=self.win_length or None,
      window=self.window,
    )

  @property
  def streaming_stft(self) -> stft_lib.StreamingSTFT:
    return stft_lib.StreamingSTFT(**self.stft_kwargs)

  @property
  def compute_dtype(self):
    return models.compute_dtype(self.dtype, DTYPES)

  @property
  def float_dtype(self):
    """Dtype of the signal path (STFT, SSM, neurons, LayerNorm)."""
    return jnp.float64 if self.compute_dtype == jnp.float64 else jnp.float32

  def setup(self):
    self._check()
    self.encoder = _dense(
      self.d_model, self.n_freq, self.compute_dtype, 'encoder'
    )
    self.lif_in = self.neuron(name='lif_in')
    self.blocks = [
      self.block(
        d_model=self.d_model,
        neuron=self.neuron,
        dtype=self.compute_dtype,
        name=f'layer{i}',
      )
      for i in range(self.n_layers)
    ]
    self.decoder = _dense(
      self.n_freq, self.d_model, self.compute_dtype, 'decoder'
    )

  def _encode(self, mag: jnp.ndarray) -> jnp.ndarray:
    x = (mag - self.input_offset).astype(self.compute_dtype)
    return self.encoder(x).astype(self.float_dtype)

  def _mask(self, x: jnp.ndarray) -> jnp.ndarray:
    z = self.decoder(x.astype(self.compute_dtype)).astype(self.float_dtype)
    if self.mask == 'relu':
      return jax.nn.relu(z + 1.0)
    return self.mask_bound * jax.nn.sigmoid(z)

  def ssm_kernels(self, num_frames: int) -> tuple[jnp.ndarray, ...]:
    """Every block's S4D kernel for `num_frames` frames (for `kernels=`)."""
    return tuple(b.ssm_kernel(num_frames) for b in self.blocks)

  def masks(
    self,
    mag: jnp.ndarray,
    deterministic: bool = True,
    kernels: tuple[jnp.ndarray, ...] | None = None,
  ):
    """Masks from magnitudes.

    Args:
      mag: real `(B, T, F)` noisy magnitude.
      deterministic: disables dropout.
      kernels: optional precomputed `ssm_kernels(T)`.

    Returns:
      `(mask (B, T, F), firing_rates dict of scalars)`.
    """
    x, rate = self.lif_in(self._encode(mag))
    rates = {'encoder': rate}
    kernels = kernels or (None,) * self.n_layers
    x = jnp.swapaxes(x, -1, -2)  # The blocks run channels-first.
    for i, (block, k) in enumerate(zip(self.blocks, kernels, strict=True)):
      x, r = block(x, deterministic, k)
      rates.update({f'layer{i}_{k}': v for k, v in r.items()})
    return self._mask(jnp.swapaxes(x, -1, -2)), rates

  def __call__(
    self,
    noisy: jnp.ndarray,
    train: bool = False,
    kernels: tuple[jnp.ndarray, ...] | None = None,
  ) -> dict:
    """Enhances `noisy` real `(B, T)`; see the module docstring for outputs.

    `kernels` optionally passes precomputed `ssm_kernels(frames)`, which
    saves their generation when the parameters are fixed (inference).
    """
    if noisy.ndim != 2:
      raise ValueError(
        f'SpikingS4 expects noisy waveforms (batch, samples), got shape '
        f'{noisy.shape}; add a batch axis for a single signal.'
      )
    noisy = noisy.astype(self.float_dtype)
    spec = stft_lib.stft(noisy, **self.stft_kwargs)
    mag = jnp.abs(spec)
    mask, rates = self.masks(mag, deterministic=not train, kernels=kernels)
    estimate = stft_lib.istft(
      stft_lib.apply_magnitude_mask(spec, mask),
      length=noisy.shape[-1],
      **self.stft_kwargs,
    )
    return {
      'estimate': estimate,
      'est_mag': mag * mask,
      'noisy_mag': mag,
      'mask': mask,
      'firing_rates': rates,
    }

  # Frame-by-frame mode ------------------------------------------------------

  def init_carry(self, batch: int) -> dict:
    """Recurrent state of every layer for `batch` streams."""
    h = self.d_model
    return {
      'lif_in': self.lif_in.init_state((batch, h), self.float_dtype),
      'blocks': [b.init_carry(batch, h, self.float_dtype) for b in self.blocks],
    }

  def step_constants(self) -> list[dict[str, jnp.ndarray]]:
    """Every block's `step_constants` (computed once per stream)."""
    return [b.step_constants() for b in self.blocks]

  def real_step_constants(self) -> list[dict[str, jnp.ndarray]]:
    """Every block's `real_step_constants` (for exported steps)."""
    return [b.real_step_constants() for b in self.blocks]

  def frame_step(
    self, carry: dict, mag: jnp.ndarray, consts: list | None = None
  ):
    """Mask of one frame. mag: real (B, F) -> (mask (B, F), next carry).

    `consts` optionally passes `step_constants()`.
    """
    s, v = self.lif_in.step(carry['lif_in'], self._encode(mag))
    consts = consts or [None] * self.n_layers
    new_blocks = []
    for block, c, k in zip(self.blocks, carry['blocks'], consts, strict=True):
      s, c = block.step(c, s, k)
      new_blocks.append(c)
    return self._mask(s), {'lif_in': v, 'blocks': new_blocks}


def from_config(model_config: ml_collections.ConfigDict | dict) -> SpikingS4:
  """Builds `SpikingS4` from `config.model` (see `default_config`).

  Raises:
    ValueError: for a key that is not a setting (named, with the known ones).
  """
  return models.build(
    SpikingS4, model_config, children={'neuron': neuron_from_config}
  )


def default_config() -> ml_collections.ConfigDict:
  """`config.model` of Spiking-S4 with every setting at its module default.

  Top level: the `SpikingS4` attributes; `neuron`: `spiking` (False: the
  GELU baseline) and the `spiking.PLIF` attributes; `block`: the
  `SpikingS4Block` settings. Overrides such as
  `--config.model.neuron.v_th=0.5` are type-checked against these values.
  """
  config = models.settings_tree(SpikingS4)
  config['neuron'] = {'spiking': True, **config['neuron']}
  return ml_collections.ConfigDict({'name': 'spiking_s4', **config})


# Presets (`functools.partial`, flax-imagenet style).
SpikingS4Glu = functools.partial(  # The N-DNS competition entry, 793,610.
  SpikingS4, block=models.module_def(SpikingS4Block, emission='glu')
)
S4Baseline = functools.partial(SpikingS4, neuron=Gelu)  # No spikes.


def _as_model(model_or_config) -> SpikingS4:
  if isinstance(model_or_config, SpikingS4):
    return model_or_config
  return from_config(model_or_config)


def check_waveform(noisy: Any, hop_length: int | None = None) -> np.ndarray:
  """Validates a `(batch, samples)` waveform on the host.

  Args:
    noisy: array-like.
    hop_length: if given, the length must be a multiple of it (streaming).

  Returns:
    The waveform as a NumPy array (dtype kept).

  Raises:
    ValueError: wrong rank, empty, non-finite samples or a length that is
      not a multiple of `hop_length`.
  """
  x = np.asarray(noisy)
  if x.ndim != 2:
    raise ValueError(
      f'Expected waveforms (batch, samples), got shape {x.shape}; add a '
      'batch axis for one signal, and mix stereo down to mono first.'
    )
  if x.size == 0:
    raise ValueError(f'Empty waveform batch {x.shape}.')
  if not np.all(np.isfinite(x)):
    raise ValueError('The waveform contains NaN or infinite samples.')
  if hop_length and x.shape[-1] % hop_length:
    raise ValueError(
      f'Streaming needs (batch, samples) with samples a multiple of '
      f'{hop_length}, got {x.shape}; zero-pad the last hop.'
    )
  return x


def offline_enhancer(variables: Any, model_or_config, num_samples: int):
  """A jitted `noisy (B, num_samples) -> estimate` with cached S4 kernels.

  The S4D kernels depend only on the parameters and the number of frames,
  so for inference at one clip length they are computed once here.

  Args:
    variables: model variables.
    model_or_config: a `SpikingS4` or its `config.model`.
    num_samples: the clip length the function will be called with.

  Returns:
    A function of `noisy` returning the enhanced `(B, num_samples)`.
  """
  model = _as_model(model_or_config)
  frames = stft_lib.num_frames(num_samples, model.hop_length, model.n_fft)
  kernels = jax.jit(
    lambda v: model.apply(v, frames, method=SpikingS4.ssm_kernels)
  )(variables)
  run = jax.jit(lambda v, k, x: model.apply(v, x, kernels=k)['estimate'])

  def enhance(noisy):
    x = check_waveform(noisy)
    if x.shape[-1] != num_samples:
      raise ValueError(
        f'This enhancer was built for {num_samples} samples, got '
        f'{x.shape[-1]}; build one per clip length.'
      )
    return run(variables, kernels, x)

  return enhance


# Loss ---------------------------------------------------------------------


def loss_fn(
  outputs: dict, batch: dict, loss_config
) -> tuple[jnp.ndarray, dict]:
  """`mse_weight * MSE - mean SI-SNR` (the authors' loss minus its constant).

  The authors minimise `0.001 MSE(|S_hat|, |S|) + (100 - mean SI-SNR)`; the
  constant 100 is left out. SI-SNR is the N-DNS challenge definition
  (`s4jax.audio.losses.si_snr`, zero-mean, eps 1e-8) on whole waveforms.

  Args:
    outputs: the model's output dict.
    batch: `{'noisy', 'clean'}`, real `(B, T)`.
    loss_config: fields (all optional) `mse_weight` (0.001), `mse_target`
      ('magnitude': `|S_hat|` vs `|S|`; 'mask': the mask vs the ideal
      amplitude mask `|S| / |Y|`, clipped to `[0, mask_target_max]`),
      `mask_target_max` (10), `si_snr_eps` (1e-8) and the STFT settings
      `n_fft`, `hop_length`, `win_length`, `window` (must match the model);
      perceptual terms `compressed_weight` (0) with `compress_power` (0.3)
      and `mrstft_weight` (0), see `s4jax.audio.spectral_losses`.

  Returns:
    `(loss, metrics)` with scalar metrics `si_snr`, `mse`,
    `firing_rate_<layer>` and each active perceptual term.
  """
  get = lambda k, d: loss_config.get(k, d) if loss_config else d  # noqa: E731
  clean = batch['clean']
  estimate = outputs['estimate']
  if estimate.shape != clean.shape:
    raise ValueError(
      f'Estimate shape {estimate.shape} differs from clean {clean.shape}.'
    )
  stft_kwargs = dict(
    n_fft=get('n_fft', 512),
    hop_length=get('hop_length', 128),
    win_length=get('win_length', None) or None,
    window=get('window', 'rect'),
  )
  clean_mag = jnp.abs(stft_lib.stft(clean.astype(jnp.float32), **stft_kwargs))
  if clean_mag.shape != outputs['est_mag'].shape:
    raise ValueError(
      f'loss STFT gives {clean_mag.shape} but the model gave '
      f'{outputs["est_mag"].shape}: loss and model STFT settings differ.'
    )
  target = get('mse_target', 'magnitude')
  if target == 'magnitude':
    mse = jnp.mean(jnp.square(outputs['est_mag'] - clean_mag))
  elif target == 'mask':
    ideal = clean_mag / jnp.maximum(outputs['noisy_mag'], 1e-8)
    ideal = jnp.clip(ideal, 0.0, get('mask_target_max', 10.0))
    mse = jnp.mean(jnp.square(outputs['mask'] - ideal))
  else:
    raise ValueError(
      f'Unknown loss.mse_target {target!r}; choose one of {MSE_TARGETS}.'
    )
  score = losses.si_snr(estimate, clean, eps=get('si_snr_eps', 1e-8))
  loss = get('mse_weight', 1e-3) * mse - jnp.mean(score)
  metrics = {'si_snr': jnp.mean(score), 'mse': mse}
  loss += _spectral_terms(estimate, clean, get, metrics)
  for name, rate in outputs.get('firing_rates', {}).items():
    metrics[f'firing_rate_{name}'] = rate
  return loss, metrics


def _spectral_terms(estimate, clean, get, metrics) -> jnp.ndarray:
  """The optional perceptual terms `compressed_weight`, `mrstft_weight`.

  Adds each active term's value to `metrics` and returns their weighted sum
  (0 when both weights are 0, the paper's loss).
  """
  total = jnp.zeros((), jnp.float32)
  estimate = estimate.astype(jnp.float32)
  clean = clean.astype(jnp.float32)
  if get('compressed_weight', 0.0):
    value = jnp.mean(
      spectral_losses.compressed_magnitude_loss(
        estimate, clean, power=get('compress_power', 0.3)
      )
    )
    metrics['compressed_mag'] = value
    total += get('compressed_weight', 0.0) * value
  if get('mrstft_weight', 0.0):
    value = jnp.mean(
      spectral_losses.multi_resolution_stft_loss(estimate, clean)
    )
    metrics['mrstft'] = value
    total += get('mrstft_weight', 0.0) * value
  return total


# Streaming ------------------------------------------------------------------


@flax.struct.dataclass
class StreamState:
  """State of a streaming enhancement (a pytree; `model` is static)."""

  model: SpikingS4 = flax.struct.field(pytree_node=False)
  count: jnp.ndarray  # int32: hops received so far
  buffers: stft_lib.StreamBuffers
  carry: dict
  consts: list  # per block `step_constants()`, fixed for the stream


def init_stream(variables: Any, model_or_config, batch: int = 1) -> StreamState:
  """Fresh streaming state for `batch` streams.

  Args:
    variables: the model variables (`{'params': ...}`).
    model_or_config: a `SpikingS4` or its `config.model`.
    batch: number of parallel streams.

  Returns:
    A `StreamState` for `stream_step`.
  """
  model = _as_model(model_or_config)
  carry = model.apply(variables, batch, method=SpikingS4.init_carry)
  consts = model.apply(variables, method=SpikingS4.step_constants)
  buffers = model.streaming_stft.init((batch,), model.float_dtype)
  return StreamState(
    model=model,
    count=jnp.zeros((), jnp.int32),
    buffers=buffers,
    carry=carry,
    consts=consts,
  )


def _frame(variables, state, carry, buffers, spec):
  """Mask one frame, synthesise it, pop one output hop."""
  model = state.model
  mask, carry = model.apply(
    variables, carry, jnp.abs(spec), state.consts, method=SpikingS4.frame_step
  )
  spec = stft_lib.apply_magnitude_mask(spec, mask)
  buffers, out = model.streaming_stft.overlap_add(buffers, spec)
  return carry, buffers, out


@jax.jit
def stream_step(
  variables: Any, state: StreamState, hop: jnp.ndarray
) -> tuple[jnp.ndarray, StreamState]:
  """Consumes one hop `(B, hop_length)`; returns one hop of output.

  The first `2 * n_fft / (2 hop) - 1` outputs (3 for 512/128) are zeros;
  afterwards output hop `k` is returned with input hop `k + 3`.
  """
  model = state.model
  want = state.buffers.inputs.shape[:-1] + (model.hop_length,)
  if hop.shape != want:
    raise ValueError(
      f'stream_step expects a hop of shape {want} (batch, hop_length), got '
      f'{hop.shape}.'
    )
  st = model.streaming_stft
  p = st.pad_hops
  buffers = st.push(state.buffers, hop.astype(model.float_dtype))
  zeros = jnp.zeros(hop.shape, model.float_dtype)

  def warmup(args):
    carry, buffers = args
    return carry, buffers, zeros

  def start(args):
    carry, buffers = args
    specs = st.start_frames(buffers)
    buffers = st.pad_start(buffers)
    carry, buffers, _ = _frame(variables, state, carry, buffers, specs[:, 0])
    carry, buffers, out = _frame(variables, state, carry, buffers, specs[:, 1])
    return carry, buffers, out if p == 1 else zeros

  def steady(args):
    carry, buffers = args
    return _frame(variables, state, carry, buffers, st.next_frame(buffers))

  branch = jnp.clip(state.count - p + 1, 0, 2)
  carry, buffers, out = jax.lax.switch(
    branch, (warmup, start, steady), (state.carry, buffers)
  )
  return out, state.replace(count=state.count + 1, buffers=buffers, carry=carry)


@functools.partial(jax.jit, static_argnames='pad')
def _flush(variables, state, pad=0):
  model = state.model
  st = model.streaming_stft
  carry, buffers = state.carry, state.buffers
  specs = st.end_frames(buffers, pad)
  outs = []
  for j in range(specs.shape[1]):
    carry, buffers, out = _frame(variables, state, carry, buffers, specs[:, j])
    outs.append(out)
  outs.append(st.tail(buffers, pad))
  return jnp.concatenate(outs, axis=-1), state.replace(
    carry=carry, buffers=buffers
  )


def stream_flush(
  variables: Any, state: StreamState, last: Any = None
) -> tuple[jnp.ndarray, StreamState]:
  """Ends the stream: the last `n_fft - hop + r` samples of output (384 + r).

  Args:
    variables: the model variables.
    state: the stream after its last whole hop.
    last: the signal's last `r` samples `(B, r)`, `0 <= r < hop`, when it
      ends inside a hop (None: it ended with a whole hop). The partial hop
      is completed with the start of the end's reflect padding
      (`StreamingSTFT.last_hop`) and the frames after it are reflected about
      the true last sample, so the output equals the offline model's on
      the `count * hop + r` samples.

  Returns:
    `(tail, state)`: the output's last `(B, n_fft - hop + r)` samples.

  Raises:
    ValueError: when the stream has no more than `n_fft // 2` samples (the
      offline STFT's reflect padding needs more too), or `last` is not a
      partial hop.
  """
  st = state.model.streaming_stft
  hop, count = st.hop_length, int(state.count)
  r = 0 if last is None else int(np.shape(last)[-1])
  if count * hop + r <= st.n_fft // 2:
    raise ValueError(
      f'Only {count} hops and {r} samples were streamed; flushing needs more '
      f'than n_fft // 2 = {st.n_fft // 2} samples (for the reflect padding, '
      'as offline).'
    )
  if not r:
    return _flush(variables, state)
  last = jnp.asarray(last, state.buffers.inputs.dtype)
  want = state.buffers.inputs.shape[:-1] + (r,)
  if r >= hop or last.shape != want:
    raise ValueError(
      f'last must be a partial hop (batch, r) with r < {hop}, got {last.shape}.'
    )
  out, state = stream_step(variables, state, st.last_hop(state.buffers, last))
  tail, state = _flush(variables, state, hop - r)
  return jnp.concatenate([out, tail], axis=-1), state


def enhance_streaming(
  variables: Any, model_or_config, noisy: jnp.ndarray
) -> jnp.ndarray:
  """Runs `noisy` `(B, T)` through `stream_step` hop by hop.

  Args:
    variables: model variables.
    model_or_config: a `SpikingS4` or its `config.model`.
    noisy: real `(B, T)`, `T > n_fft // 2` (as offline); a partial last
      hop goes to `stream_flush`.

  Returns:
    Real `(B, T)`, aligned with (and equal to) the offline `'estimate'`.
  """
  model = _as_model(model_or_config)
  hop = model.hop_length
  noisy = check_waveform(noisy)
  whole = noisy.shape[-1] - noisy.shape[-1] % hop
  state = init_stream(variables, model, noisy.shape[0])
  delay = stft_lib.stream_reference_delay(model.streaming_stft)
  outs = []
  for m in range(whole // hop):
    out, state = stream_step(
      variables, state, noisy[:, m * hop : (m + 1) * hop]
    )
    outs.append(out)
  tail, _ = stream_flush(variables, state, noisy[:, whole:])
  return jnp.concatenate([*outs, tail], axis=-1)[:, delay * hop :]
