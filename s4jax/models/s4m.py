"""S4M speech separation (Chen et al., Interspeech 2023, arXiv 2305.16932).

A time-domain masking separator: a learned encoder (Conv1d, window K, hop
K/4, `K // 2 + 1` bases), a separator made of one weight-shared multi-scale
block applied `num_blocks` times (`s4m_blocks.S4MBlock`, S4 on the coarsest
scale), ReLU masks per source and a transposed-conv decoder. The structure
follows the authors' release (`JusperLee/S4M`, `S4M.py`), which is the tiny
model; `reconstruction_s4=True` adds the S4 blocks of the top-down path of
the full model (see `configs/s4m.py` for the reading of the paper).

Module-level API (used by `s4jax.training` and `launch/`):

* `from_config(model_config) -> S4M`.
* `S4M.apply(variables, mixture (B, T), train=False, rngs=...)` returns
  `{'estimates': (B, S, T)}`, the same length as the input.
* `loss_fn(outputs, batch, loss_config) -> (loss, metrics)`: permutation
  invariant negative SNR with TDANet's -30 dB threshold by default.
* `count_macs(model_config, seconds=1.0)`: multiply-accumulates of the
  convolution and dense layers (FFT convolutions and the S4 kernel are not
  counted).

Parameter counts of the release (asserted in `tests/models/s4m_test.py`):
1,828,967 for S4M-tiny at 8 kHz with a 4 ms window, 1,843,015 at 16 kHz and
2,169,143 with the release's 21 ms default at 16 kHz.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from s4jax import models
from s4jax.audio import losses, pit
from s4jax.models import s4m_blocks as blocks
from s4jax.models import summary

__all__ = [
  'DTYPES',
  'S4M',
  'S4MFull',
  'S4MTiny',
  'Separator',
  'count_macs',
  'default_config',
  'encoder_window',
  'from_config',
  'loss_fn',
  'pad_amounts',
  'separation_scores',
]

DTYPES = ('float32', 'bfloat16')


def encoder_window(enc_kernel_ms: float, sample_rate: int) -> tuple[int, int]:
  """Encoder kernel K and hop K // 4 (release: `ms * fs // 1000`)."""
  k = int(enc_kernel_ms * sample_rate // 1000)
  if k < 4:
    raise ValueError(
      f'Encoder window of {enc_kernel_ms} ms at {sample_rate} Hz is {k} '
      'samples; S4M needs at least 4 (hop = window // 4).'
    )
  return k, k // 4


def pad_amounts(num_samples: int, window: int, hop: int) -> tuple[int, int]:
  """The release's `pad_input`: (end padding `rest`, padding on both sides).

  `rest = K - (hop + T mod K) mod K` zeros go at the end, then `K - hop`
  zeros on both sides; the decoder output is trimmed by the same amounts.
  """
  rest = window - (hop + num_samples % window) % window
  return rest, window - hop


class Separator(nn.Module):
  """`num_blocks` applications of one weight-shared `S4MBlock`.

  Iteration 0 takes the bottleneck features `x0`; iteration i > 0 takes
  `PReLU(depthwise_1x1(x0 + y_{i-1}))`. The S4 kernels are computed once per
  call and shared by all iterations (their gradient is accumulated once).

  Attributes:
    block: constructor of the shared block, every setting bound (`S4M`
      binds its `bottleneck` and `dtype`).
    num_blocks: iterations.
    remat: recompute each iteration in the backward pass.
    scan: run all iterations under `nn.scan`.
  """

  block: models.ModuleDef
  num_blocks: int
  remat: bool
  scan: bool

  def setup(self):
    settings = models.settings_of(self.block)
    block_cls = models.module_class(self.block)
    if self.remat:
      block_cls = nn.remat(block_cls, static_argnums=(3,))
    self.shared = block_cls(**settings)
    self.concat_conv = blocks.DepthwiseConv1d(1, dtype=settings['dtype'])
    self.concat_act = blocks.prelu()

  def _iteration(self, y, x0, k, deterministic: bool):
    """Iteration i > 0: `block(PReLU(dw1x1(x0 + y)), kernels)`."""
    z = self.concat_act(self.concat_conv(x0 + y))
    return self.shared(z, k, deterministic)

  def __call__(self, x0: jnp.ndarray, deterministic: bool = True):
    """x0: (B, T, C) -> (B, T, C)."""
    if self.num_blocks < 1:
      raise ValueError(f'num_blocks must be >= 1, got {self.num_blocks}.')
    k = self.shared.kernels(x0.shape[1])
    if self.num_blocks == 1:
      return self.shared(x0, k, deterministic)
    if not self.scan:
      y = self.shared(x0, k, deterministic)
      for _ in range(self.num_blocks - 1):
        y = self._iteration(y, x0, k, deterministic)
      return y

    # All iterations, the first included, run in one scanned body: XLA plans
    # a while loop's buffers apart from the code around it, so a first
    # iteration outside the loop would add a second iteration's worth of
    # activation memory to the peak. The first iteration's block input is
    # selected exactly (its unused 1x1 conv branch costs one (T, C) pass).
    def body(mdl, y, first):
      z = jnp.where(first, x0, mdl.concat_act(mdl.concat_conv(x0 + y)))
      return mdl.shared(z, k, deterministic), None

    scan = nn.scan(
      body,
      variable_broadcast='params',
      split_rngs={'params': False, 'dropout': True},
      length=self.num_blocks,
    )
    first = jnp.arange(self.num_blocks) == 0
    y, _ = scan(self, jnp.zeros_like(x0), first)
    return y


class S4M(nn.Module):
  """S4M separator on waveforms.

  Attributes:
    num_sources: S.
    sample_rate: Hz (sets the encoder window in samples).
    enc_kernel_ms: encoder window in ms (S4M-tiny: 4; release default 21).
    bottleneck: separator channels (128).
    num_blocks: weight-shared block iterations (16).
    remat: recompute block iterations in the backward pass (activation
      memory of one iteration instead of all of them).
    scan: compile the shared-block iterations once with `nn.scan`; False
      unrolls a Python loop (used for MAC counting).
    dtype: compute dtype of convolutions and dense layers, a name
      ('float32' or 'bfloat16'); the S4 kernel, FFT convolutions and norms
      stay float32, the output is float32.
    block: constructor of the weight-shared block, `s4m_blocks.S4MBlock`
      with its settings (hidden channels, scales, SSM kind, ...) bound.
  """

  num_sources: int = 2
  sample_rate: int = 8000
  enc_kernel_ms: float = 4.0
  bottleneck: int = 128
  num_blocks: int = 16
  remat: bool = True
  scan: bool = True
  dtype: str = 'float32'
  block: models.ModuleDef = models.module_def(blocks.S4MBlock)

  @property
  def compute_dtype(self) -> jnp.dtype:
    return models.compute_dtype(self.dtype, DTYPES)

  def check(self) -> None:
    """Raises ValueError for an unknown `dtype` or block `ssm`."""
    models.compute_dtype(self.dtype, DTYPES)
    ssm = models.settings_of(self.block)['ssm']
    if ssm not in blocks.SSM_MODES:
      raise ValueError(
        f'config.model.block.ssm={ssm!r}; choose one of {blocks.SSM_MODES}.'
      )

  def _check(self, mixture: jnp.ndarray) -> jnp.ndarray:
    if mixture.ndim == 3 and mixture.shape[1] == 1:
      mixture = mixture[:, 0]  # (B, 1, T), as the release accepts.
    if mixture.ndim != 2:
      raise ValueError(
        f'S4M expects a mono mixture batch (B, T); got shape {mixture.shape}. '
        'Add a batch axis with x[None] or mix stereo down to mono first.'
      )
    if mixture.shape[1] == 0:
      raise ValueError('S4M got an empty mixture (0 samples).')
    if not jnp.issubdtype(mixture.dtype, jnp.floating):
      raise ValueError(f'S4M expects float audio, got {mixture.dtype}.')
    return mixture

  @nn.compact
  def __call__(self, mixture: jnp.ndarray, train: bool = False):
    """mixture: real (B, T) -> {'estimates': real (B, S, T)}."""
    mixture = self._check(mixture)
    self.check()
    dtype = self.compute_dtype
    b, t = mixture.shape
    window, hop = encoder_window(self.enc_kernel_ms, self.sample_rate)
    bases = window // 2 + 1
    rest, side = pad_amounts(t, window, hop)
    x = jnp.pad(mixture.astype(jnp.float32), ((0, 0), (side, rest + side)))
    enc = nn.Conv(
      bases,
      (window,),
      strides=(hop,),
      padding=[(window // 2, window // 2)],
      use_bias=False,
      dtype=dtype,
      kernel_init=nn.initializers.xavier_uniform(),
      name='encoder',
    )(x[..., None])  # (B, F, bases)
    y = blocks.GlobalLayerNorm(name='encoder_norm')(enc)
    y = blocks.pointwise(
      bases, self.bottleneck, dtype=dtype, name='bottleneck'
    )(y)
    y = Separator(
      block=models.module_def(
        self.block, bottleneck=self.bottleneck, dtype=dtype
      ),
      num_blocks=self.num_blocks,
      remat=self.remat,
      scan=self.scan,
      name='separator',
    )(y, not train)
    y = blocks.prelu(name='mask_act')(y)
    y = blocks.pointwise(
      self.bottleneck,
      self.num_sources * bases,
      dtype=dtype,
      name='mask_conv',
    )(y)
    frames = y.shape[1]
    masks = nn.relu(y.reshape(b, frames, self.num_sources, bases))
    masked = (masks * enc[:, :, None, :]).reshape(b, frames, -1)
    wav = blocks.ConvTranspose1d(
      self.num_sources,
      window,
      hop,
      window // 2,
      dtype=dtype,
      name='decoder',
    )(masked)  # (B, T + rest + 2 side, S)
    wav = wav[:, side : side + t].astype(jnp.float32)
    return {'estimates': jnp.transpose(wav, (0, 2, 1))}


def from_config(model_config: Any) -> S4M:
  """Builds `S4M` from `config.model` (see `default_config`).

  Raises:
    ValueError: for a key that is not a setting (named, with the known
      ones), an unknown `block.ssm` or `dtype`.
  """
  model = models.build(S4M, model_config)
  model.check()
  return model


def default_config() -> ml_collections.ConfigDict:
  """`config.model` of S4M with every setting at its module default.

  Top level: the `S4M` attributes; `block`: the `s4m_blocks.S4MBlock`
  settings (all but `bottleneck` and `dtype`, which `S4M` passes).
  """
  return ml_collections.ConfigDict({'name': 's4m', **models.settings_tree(S4M)})


# Presets (`functools.partial`, flax-imagenet style).
S4MTiny = S4M  # The authors' release.
S4MFull = functools.partial(  # S4 blocks in the top-down path too.
  S4M, block=models.module_def(blocks.S4MBlock, reconstruction_s4=True)
)


def separation_scores(
  estimates: jnp.ndarray, sources: jnp.ndarray, mixture: jnp.ndarray
) -> dict[str, jnp.ndarray]:
  """SI-SDR and SI-SDRi (dB) of PIT-aligned estimates, per example.

  Asteroid / TDANet convention (`losses.si_sdr`: zero-mean, eps 1e-8); the
  permutation maximises the mean SI-SDR.

  Args:
    estimates: real `(B, S, T)`.
    sources: real `(B, S, T)`.
    mixture: real `(B, T)`.

  Returns:
    `{'si_sdr': (B,), 'si_sdri': (B,)}`, means over sources.
  """
  _, perm = pit.pit_loss(estimates, sources, pair_fn='neg_si_sdr')
  aligned = pit.reorder(estimates, perm)
  est = losses.si_sdr(aligned, sources)  # (B, S)
  base = losses.si_sdr(mixture[:, None, :], sources)
  return {'si_sdr': jnp.mean(est, -1), 'si_sdri': jnp.mean(est - base, -1)}


def loss_fn(outputs: dict, batch: dict, loss_config: Any):
  """PIT loss of S4M (TDANet recipe) and training metrics.

  Args:
    outputs: `{'estimates': (B, S, T)}`.
    batch: `{'mixture': (B, T), 'sources': (B, S, T)}`.
    loss_config: `pair_fn` ('neg_snr' default, 'neg_si_snr', 'neg_si_sdr'),
      `threshold_db` (-30 default; None keeps every example), `all_dropped`
      ('mean' default: TDANet falls back to the plain mean).

  Returns:
    `(loss, {'si_sdr', 'si_sdri'})`: scalar loss and batch-mean metrics
    (no gradient).
  """
  cfg = {} if loss_config is None else loss_config
  est, src = outputs['estimates'], batch['sources']
  loss, _ = pit.pit_loss(
    est,
    src,
    pair_fn=cfg.get('pair_fn', 'neg_snr'),
    threshold_db=cfg.get('threshold_db', -30.0),
    all_dropped=cfg.get('all_dropped', 'mean'),
  )
  scores = separation_scores(jax.lax.stop_gradient(est), src, batch['mixture'])
  return loss, {k: jnp.mean(v) for k, v in scores.items()}


# Cost ------------------------------------------------------------------------


def count_macs(model_config: Any, seconds: float = 1.0) -> dict[str, int]:
  """Multiply-accumulates of one forward pass on `seconds` of audio, batch 1.

  Counts every `nn.Conv` and `nn.Dense` call (including the S4 layers' GLU
  output projections) and the transposed-conv decoder, by intercepting the
  module calls while tracing (nothing is computed). Not counted: FFT
  convolutions of the S4 layers, S4 kernel generation, norms, activations,
  pooling and resizing.

  Args:
    model_config: `config.model` (as for `from_config`).
    seconds: input duration.

  Returns:
    `{'total': MACs, 'conv': ..., 'dense': ..., 'decoder': ...}`.
  """
  model = from_config(model_config).clone(scan=False, remat=False)
  x = jax.ShapeDtypeStruct(
    (1, int(round(seconds * model.sample_rate))), jnp.float32
  )
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  counts = {'conv': 0, 'dense': 0, 'decoder': 0}
  counts.update(summary.trace_macs(model, variables, x, bucket=_mac_bucket))
  return counts


def _mac_bucket(layer: nn.Module, path: str) -> str | None:
  """`count_macs`' groups: the layers it counts, by kind."""
  del path
  if isinstance(layer, (nn.Conv, blocks.DepthwiseConv1d)):
    return 'conv'
  if isinstance(layer, nn.Dense):
    return 'dense'
  if isinstance(layer, blocks.ConvTranspose1d):
    return 'decoder'
  return None  # Norms are not in the published S4M figures.
