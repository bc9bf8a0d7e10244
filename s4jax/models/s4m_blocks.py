"""Building blocks of S4M (Chen et al., Interspeech 2023), channels-last.

S4M is TDANet (Li, Yang, Hu, ICLR 2023) with an S4 + feed-forward global
path and gated fusion at every scale. The layers here follow the authors'
release (`JusperLee/S4M`, `S4M.py`, built on `JusperLee/TDANet`,
`look2hear/models/TDANet.py`) in PyTorch's conventions, written for Flax
Linen with `(B, T, C)` inputs:

* `GlobalLayerNorm`: gLN, statistics over time and channels jointly, eps
  1e-8 inside the square root, per-channel gain and bias.
* `prelu`: one shared slope initialised at 0.25 (PyTorch `nn.PReLU()`).
* `pointwise` (1x1 `Conv1d` as `nn.Dense`) and `DepthwiseConv1d` with
  PyTorch's default initialisation (`s4jax.layers.init`) and padding, so output lengths are
  PyTorch's `floor((T + 2 p - k) / stride) + 1`.
* `ConvTranspose1d`: PyTorch's `ConvTranspose1d` (output length
  `(T - 1) stride - 2 p + k`).
* `adaptive_avg_pool` and `nearest_resize`: PyTorch's
  `F.adaptive_avg_pool1d` and `F.interpolate(mode='nearest')` index
  arithmetic, as static gathers.
* `GatedFusion` (the release's `LALayer`), `S4Residual` (pre-norm S4 block),
  `FFResidual` (pre-norm feed-forward block) and `S4MBlock`, the
  weight-shared separator block.

The S4 kernels of a block depend only on its parameters and the sequence
lengths, so `S4MBlock.kernels` computes them once and the separator passes
them to all the weight-shared iterations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from s4jax import portable_ops
from s4jax.layers import init as init_lib
from s4jax.layers import s4 as s4_layer

__all__ = [
  'ConvTranspose1d',
  'DepthwiseConv1d',
  'FFResidual',
  'GLN_EPS',
  'GatedFusion',
  'GlobalLayerNorm',
  'LAYER_NORM_EPS',
  'PRELU_INIT',
  'S4MBlock',
  'S4Residual',
  'SSM_MODES',
  'adaptive_avg_pool',
  'adaptive_pool_bins',
  'conv_lengths',
  'conv_transpose_overlap_add',
  'depthwise_conv1d',
  'global_layer_norm',
  'nearest_indices',
  'nearest_resize',
  'pointwise',
  'prelu',
]

SSM_MODES = ('s4', 's4d', 'identity')
PRELU_INIT = 0.25  # PyTorch nn.PReLU() default (Flax's is 0.01).
GLN_EPS = 1e-8
LAYER_NORM_EPS = 1e-5  # PyTorch nn.LayerNorm default.

# Primitives with hand-written gradients ---------------------------------------
#
# XLA:CPU runs grouped (depthwise) convolutions and the per-channel column
# sums that autodiff emits for gains and biases an order of magnitude below
# memory speed; these versions use shifted slices and one plain reduction
# per parameter. Both are checked against autodiff of the plain
# formulas in tests/models/s4m_test.py.


def _channel_sum(p: jnp.ndarray) -> jnp.ndarray:
  """Sum over every axis but the last."""
  return jnp.sum(p, axis=tuple(range(p.ndim - 1)))


@jax.custom_vjp
def global_layer_norm(
  x: jnp.ndarray, gamma: jnp.ndarray, beta: jnp.ndarray
) -> jnp.ndarray:
  """GLN. x: real (B, T, C); gamma, beta: (C,). Stats over (T, C), eps 1e-8."""
  return _gln_fwd(x, gamma, beta)[0]


def _mean_time_channels(x: jnp.ndarray) -> jnp.ndarray:
  """Mean over time and channels, `(B, T, C) -> (B, 1, 1)`.

  Inside `s4jax.portable_ops.portable_ops()` the mean is taken over channels,
  then time: ONNX Runtime sums the `T C` float32 terms of one reduction in a
  sequential pass, which at `T C ~ 2.5e5` (S4M-tiny, 0.5 s) loses about
  2e-6 of relative accuracy per norm (1e-7 in two stages, as in XLA).
  """
  if portable_ops.enabled():
    return jnp.mean(jnp.mean(x, axis=2, keepdims=True), axis=1, keepdims=True)
  return jnp.mean(x, axis=(1, 2), keepdims=True)


def _gln_fwd(x, gamma, beta):
  mean = _mean_time_channels(x)
  var = _mean_time_channels(jnp.square(x - mean))
  rstd = jax.lax.rsqrt(var + GLN_EPS)
  return (x - mean) * rstd * gamma + beta, (x, mean, rstd, gamma)


def _gln_bwd(res, g):
  x, mean, rstd, gamma = res
  y = (x - mean) * rstd
  gy = g * gamma
  a = jnp.mean(gy, axis=(1, 2), keepdims=True)
  b = jnp.mean(gy * y, axis=(1, 2), keepdims=True)
  return (gy - a - y * b) * rstd, _channel_sum(g * y), _channel_sum(g)


global_layer_norm.defvjp(_gln_fwd, _gln_bwd)


def _taps(xp: jnp.ndarray, k: int, stride: int, out: int):
  """The k shifted (strided) views `xp[:, j + stride * t]`, t < out."""
  return [
    jax.lax.slice_in_dim(xp, j, j + stride * (out - 1) + 1, stride, axis=1)
    for j in range(k)
  ]


def _dw_out_len(length: int, k: int, stride: int, pad: int) -> int:
  return (length + 2 * pad - k) // stride + 1


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def depthwise_conv1d(
  x: jnp.ndarray, w: jnp.ndarray, b: jnp.ndarray, stride: int, pad: int
) -> jnp.ndarray:
  """PyTorch depthwise `Conv1d` (groups = channels), channels-last.

  `y[:, t, c] = b[c] + sum_j xp[:, stride t + j, c] w[j, c]` with `xp` the
  input zero-padded by `pad` on both sides.

  Args:
    x: real `(B, T, C)`.
    w: `(k, C)` taps.
    b: `(C,)` bias.
    stride: stride (static).
    pad: zeros on each side (static).

  Returns:
    `(B, (T + 2 pad - k) // stride + 1, C)`.
  """
  return _dw_fwd(x, w, b, stride, pad)[0]


def _dw_fwd(x, w, b, stride, pad):
  k = w.shape[0]
  out = _dw_out_len(x.shape[1], k, stride, pad)
  xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
  y = sum(v * w[j] for j, v in enumerate(_taps(xp, k, stride, out)))
  return y + b, (x, w)


def _dw_bwd(stride, pad, res, g):
  x, w = res
  k, length, out = w.shape[0], x.shape[1], g.shape[1]
  xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
  gw = jnp.stack([_channel_sum(v * g) for v in _taps(xp, k, stride, out)])
  if stride > 1:  # Dilate: g[t] sits at padded position stride * t.
    gd = jnp.stack([g] + [jnp.zeros_like(g)] * (stride - 1), axis=2)
    g = gd.reshape(g.shape[0], out * stride, g.shape[2])
  # dx[t] = sum_j g[t + pad - j] w[j]: zero-pad g by k - 1 on the left.
  right = max(0, length + pad - g.shape[1])
  gp = jnp.pad(g, ((0, 0), (k - 1, right), (0, 0)))
  gx = sum(
    jax.lax.slice_in_dim(gp, pad + k - 1 - j, pad + k - 1 - j + length, axis=1)
    * w[j]
    for j in range(k)
  )
  return gx, gw, _channel_sum(g)


depthwise_conv1d.defvjp(_dw_fwd, _dw_bwd)


# Index arithmetic ------------------------------------------------------------


def adaptive_pool_bins(length: int, out: int) -> tuple[np.ndarray, np.ndarray]:
  """Bins of PyTorch's `adaptive_avg_pool1d`: `[floor(i L/out), ceil((i+1) L/out))`.

  Args:
    length: input length L.
    out: output length.

  Returns:
    int64 `(out,)` starts and ends (exclusive), exact integer arithmetic.
  """
  i = np.arange(out, dtype=np.int64)
  start = (i * length) // out
  end = -((-(i + 1) * length) // out)
  return start, end


def nearest_indices(length: int, out: int) -> np.ndarray:
  """Source indices of PyTorch's `F.interpolate(size=out, mode='nearest')`.

  PyTorch (`aten/src/ATen/native/UpSample.h`, `nearest_idx`) computes the
  scale `L / out` and the product `i * scale` in float32 and floors it, so
  an exact `floor(i L / out)` can differ by one where `i L / out` is an
  integer (e.g. L=8, out=82, i=41 gives 3, not 4). This reproduces the
  float32 arithmetic.

  Args:
    length: input length L.
    out: output length.

  Returns:
    int64 `(out,)` indices into the input.
  """
  scale = np.float32(length) / np.float32(out)
  pos = np.arange(out, dtype=np.int64).astype(np.float32) * scale
  return np.minimum(np.floor(pos).astype(np.int64), length - 1)


def _window_gather(
  x: jnp.ndarray, starts: np.ndarray, ends: np.ndarray, weights: np.ndarray
) -> jnp.ndarray:
  """`y[:, i] = sum_{s <= t < e} w_i x[:, t]` over windows `[s_i, e_i)`.

  Args:
    x: `(B, T, C)`.
    starts: int `(O,)` window starts.
    ends: int `(O,)` window ends (exclusive, `> starts`).
    weights: float `(O,)` weight of every element of window i.

  Returns:
    `(B, O, C)`.
  """
  width = int(np.max(ends - starts))
  offs = np.arange(width)
  idx = np.minimum(starts[:, None] + offs, x.shape[1] - 1)  # (O, W)
  valid = offs[None, :] < (ends - starts)[:, None]
  w = np.where(valid, weights[:, None], 0.0)  # cast to x.dtype per use
  out = 0.0
  for j in range(width):  # W (~10) slices of (B, O, C): no (B, O, W, C).
    out = out + jnp.take(x, idx[:, j], axis=1) * w[:, j, None].astype(x.dtype)
  return out


def adaptive_avg_pool(x: jnp.ndarray, out: int) -> jnp.ndarray:
  """PyTorch `F.adaptive_avg_pool1d` over time. x: `(B, T, C)` -> `(B, out, C)`."""
  length = x.shape[1]
  if out == length:
    return x
  if length % out == 0:  # Equal, non-overlapping bins.
    r = length // out
    return jnp.mean(x.reshape(x.shape[0], out, r, x.shape[2]), axis=2)
  start, end = adaptive_pool_bins(length, out)
  return _window_gather(x, start, end, 1.0 / (end - start))


def nearest_resize(x: jnp.ndarray, out: int) -> jnp.ndarray:
  """PyTorch `F.interpolate(mode='nearest')` over time. x: `(B, T, C)`."""
  length = x.shape[1]
  if out == length:
    return x
  idx = nearest_indices(length, out)
  if out % length == 0 and np.array_equal(
    idx, np.arange(out) // (out // length)
  ):
    return jnp.repeat(x, out // length, axis=1)  # Integer upsampling.
  return jnp.take(x, idx, axis=1)


def conv_lengths(length: int, depth: int) -> list[int]:
  """Lengths of the `depth` scales: stride 1, then k=5, p=2, stride 2 convs."""
  out = [length]
  for _ in range(depth - 1):
    out.append((out[-1] + 2 * 2 - 5) // 2 + 1)
  return out


# Layers ----------------------------------------------------------------------


class GlobalLayerNorm(nn.Module):
  """gLN: `(x - mean) / sqrt(var + eps) * gamma + beta`, stats over (T, C).

  Statistics are taken per example over time and channels jointly (asteroid
  / TDANet `GlobLN`); computed in float32, returned in the input dtype.
  """

  eps: float = GLN_EPS

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: real (B, T, C) -> (B, T, C)."""
    c = x.shape[-1]
    gamma = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    beta = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    y = global_layer_norm(x.astype(jnp.float32), gamma, beta)
    return y.astype(x.dtype)


def prelu(name: str | None = None) -> nn.PReLU:
  """PyTorch `nn.PReLU()`: one learned slope, initialised at 0.25."""
  return nn.PReLU(negative_slope_init=PRELU_INIT, name=name)


def pointwise(
  in_features: int,
  features: int,
  *,
  dtype: Any = jnp.float32,
  name: str | None = None,
) -> nn.Dense:
  """PyTorch `Conv1d(in, out, 1)` as a dense layer on channels-last input."""
  return nn.Dense(
    features,
    dtype=dtype,
    kernel_init=init_lib.torch_kernel_init,
    bias_init=init_lib.torch_uniform(in_features),
    name=name,
  )


class DepthwiseConv1d(nn.Module):
  """PyTorch `Conv1d(C, C, k, stride, padding, groups=C)`, channels-last.

  Attributes:
    kernel_size: k.
    stride: stride.
    padding: zeros on each side; None gives TDANet's `(k - 1) // 2`.
    use_bias: add a per-channel bias.
    dtype: compute dtype.
  """

  kernel_size: int = 5
  stride: int = 1
  padding: int | None = None
  use_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: real (B, T, C) -> (B, (T + 2 p - k) // stride + 1, C)."""
    k, c = self.kernel_size, x.shape[-1]
    uniform = init_lib.torch_uniform(k)  # fan_in = (C / groups) k = k.
    w = self.param('kernel', uniform, (k, c), jnp.float32)
    if self.use_bias:
      b = self.param('bias', uniform, (c,), jnp.float32)
    else:
      b = jnp.zeros((c,), jnp.float32)
    pad = (k - 1) // 2 if self.padding is None else self.padding
    x = x.astype(self.dtype)
    return depthwise_conv1d(
      x, w.astype(self.dtype), b.astype(self.dtype), self.stride, pad
    )

  def macs(self, x, out) -> int:
    """`summary.trace_macs` rule: k per output element (one tap per channel)."""
    del x
    return math.prod(out.shape) * self.kernel_size


class ConvTranspose1d(nn.Module):
  """PyTorch `ConvTranspose1d` (groups 1, no bias), channels-last.

  `y[t] = sum_{f, k: t = f stride + k - padding} x[f] W[k]`, output length
  `(T - 1) stride - 2 padding + kernel_size`. Computed as a convolution of
  the stride-dilated input padded by `k - 1 - padding` with the flipped
  kernel (inside `s4jax.portable_ops.portable_ops()`, by
  `conv_transpose_overlap_add`). The kernel is stored `(k, in, out)` with
  Xavier-uniform init (as the release's decoder).
  """

  features: int
  kernel_size: int
  stride: int
  padding: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: real (B, T, C_in) -> (B, (T-1) stride - 2 p + k, features)."""
    k = self.kernel_size
    w = self.param(
      'kernel',
      nn.initializers.xavier_uniform(in_axis=-2, out_axis=-1),
      (k, x.shape[-1], self.features),
      jnp.float32,
    )
    pad = k - 1 - self.padding
    if pad < 0:
      raise ValueError(f'padding {self.padding} must be < kernel size {k}.')
    if portable_ops.enabled():
      return conv_transpose_overlap_add(
        x.astype(self.dtype), w.astype(self.dtype), self.stride, self.padding
      )
    return jax.lax.conv_general_dilated(
      x.astype(self.dtype),
      jnp.flip(w, axis=0).astype(self.dtype),
      window_strides=(1,),
      padding=[(pad, pad)],
      lhs_dilation=(self.stride,),
      dimension_numbers=('NWC', 'WIO', 'NWC'),
    )

  def macs(self, x, out) -> int:
    """`summary.trace_macs` rule: input frames * k * C_in * C_out."""
    del out
    return (
      math.prod(x.shape[:-1]) * self.kernel_size * x.shape[-1] * (self.features)
    )


def conv_transpose_overlap_add(
  x: jnp.ndarray, w: jnp.ndarray, stride: int, padding: int
) -> jnp.ndarray:
  """`ConvTranspose1d` as one matrix product and an overlap-add.

  The portable form of `ConvTranspose1d` (no dilated convolution, which
  LiteRT cannot express): every input frame becomes `k` output samples
  `x[f] W[j]`, placed at `f stride + j - padding` and summed. The taps are
  zero-padded to a multiple of the stride, so the overlap-add is a sum of
  `ceil(k / stride)` shifted copies.

  Args:
    x: real `(B, T, C_in)`.
    w: `(k, C_in, C_out)` kernel, as `ConvTranspose1d` stores it.
    stride: hop between the frames.
    padding: samples cropped at each end.

  Returns:
    `(B, (T - 1) stride - 2 padding + k, C_out)`.
  """
  k, c_in, c_out = w.shape
  frames = x.shape[1]
  r = -(-k // stride)
  w = jnp.pad(w, ((0, r * stride - k), (0, 0), (0, 0)))
  z = jnp.matmul(
    x,
    jnp.transpose(w, (1, 0, 2)).reshape(c_in, r * stride * c_out),
    precision=jax.lax.Precision.HIGHEST,
  ).reshape(*x.shape[:-2], frames, r, stride * c_out)
  y = sum(
    jnp.pad(z[..., i, :], ((0, 0), (i, r - 1 - i), (0, 0))) for i in range(r)
  )  # (B, T + r - 1, stride C_out): frame f + i, tap block i.
  y = y.reshape(*x.shape[:-2], (frames + r - 1) * stride, c_out)
  length = (frames - 1) * stride - 2 * padding + k
  return y[..., padding : padding + length, :]


class GatedFusion(nn.Module):
  """TDANet's `LA` layer: `dw(local) * up(sigmoid(dw(g))) + up(dw(g))`.

  Each `dw` is a depthwise conv (no bias, kernel k, 'same' padding) followed
  by gLN; `up` is PyTorch nearest resizing of the global input to the local
  length.
  """

  kernel_size: int = 1
  dtype: Any = jnp.float32

  def _dw_norm(self, x: jnp.ndarray, name: str) -> jnp.ndarray:
    y = DepthwiseConv1d(
      self.kernel_size, use_bias=False, dtype=self.dtype, name=f'{name}_conv'
    )(x)
    return GlobalLayerNorm(name=f'{name}_norm')(y)

  @nn.compact
  def __call__(self, local: jnp.ndarray, glob: jnp.ndarray) -> jnp.ndarray:
    """local: (B, T, C), glob: (B, T', C) -> (B, T, C)."""
    t = local.shape[1]
    loc = self._dw_norm(local, 'local')
    gate = nn.sigmoid(self._dw_norm(glob, 'gate'))
    feat = self._dw_norm(glob, 'global')
    return loc * nearest_resize(gate, t) + nearest_resize(feat, t)


class S4Residual(nn.Module):
  """Pre-norm residual S4 block: `x + S4(LayerNorm(x))` (sashimi.py).

  `ssm='identity'` makes the whole block the identity (for cost studies).
  The S4 layer is bidirectional with GELU and a GLU output projection, as
  the release's `S4(d_model, d_state=16, bidirectional=True)`.
  """

  ssm: str = 's4'
  d_state: int = 16
  dropout: float = 0.0
  dtype: Any = jnp.float32

  def setup(self):
    if self.ssm == 'identity':
      return
    self.norm = nn.LayerNorm(epsilon=LAYER_NORM_EPS, dtype=self.dtype)
    self.layer = s4_layer.S4Layer(
      d_state=self.d_state,
      mode=self.ssm,
      bidirectional=True,
      activation='gelu',
      postact='glu',
      dropout=self.dropout,
      dtype=self.dtype,
    )

  def kernel(self, h: int, length: int) -> jnp.ndarray | None:
    """The S4 kernel `(2, H, length)` (None for the identity block)."""
    if self.ssm == 'identity':
      return None
    return self.layer.kernel(h, length)

  def __call__(
    self,
    x: jnp.ndarray,
    kernel: jnp.ndarray | None = None,
    deterministic: bool = True,
  ) -> jnp.ndarray:
    """x: (B, T, H); kernel: optional precomputed `self.kernel(H, T)`."""
    if self.ssm == 'identity':
      return x
    return x + self.layer(self.norm(x), deterministic, kernel=kernel)


class FFResidual(nn.Module):
  """Pre-norm feed-forward block `x + W2 gelu(W1 LayerNorm(x))` (sashimi.py)."""

  expand: int = 2
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, deterministic: bool = True):
    """x: (B, T, H) -> (B, T, H)."""
    h = x.shape[-1]
    z = nn.LayerNorm(epsilon=LAYER_NORM_EPS, dtype=self.dtype, name='norm')(x)
    z = nn.Dense(
      h * self.expand,
      dtype=self.dtype,
      kernel_init=init_lib.torch_kernel_init,
      bias_init=init_lib.torch_uniform(h),
      name='dense_in',
    )(z)
    z = jax.nn.gelu(z, approximate=False)  # PyTorch nn.GELU() is exact.
    z = nn.Dropout(self.dropout)(z, deterministic=deterministic)
    z = nn.Dense(
      h,
      dtype=self.dtype,
      kernel_init=init_lib.torch_kernel_init,
      bias_init=init_lib.torch_uniform(h * self.expand),
      name='dense_out',
    )(z)
    return x + z


class S4MBlock(nn.Module):
  """The weight-shared separator block (release: `TDANetBlock`).

  1x1 conv `bottleneck -> hidden` + gLN + PReLU; bottom-up decomposition into
  `depth` scales (depthwise k=5 convs + gLN, the first stride 1, the others
  stride 2); the scales adaptively average-pooled to the coarsest length and
  summed; an S4 residual block and a feed-forward residual block on that
  global feature; gated fusion of the global feature into every scale
  (k=1); top-down reconstruction by `depth - 1` gated layers (k=5); 1x1 conv
  `hidden -> bottleneck` plus the block input.

  Attributes:
    bottleneck: channels at the block input and output (set by `S4M`).
    dtype: compute dtype of the convolutions and dense layers (set by
      `S4M`).
    hidden: channels inside the block (512).
    depth: number of scales (4).
    ssm: 's4' (DPLR, HiPPO-LegS, as released), 's4d' or 'identity'.
    d_state: S4 state size N.
    ff_expand: feed-forward expansion (512 -> 1024 -> 512).
    reconstruction_s4: add an S4 residual block after every top-down gated
      layer (full S4M, see `configs/s4m.py`).
    topdown_quirk: reproduce the release's first top-down step, which fuses
      scale `depth - 2` with scale `(depth - 3) mod depth` (TDANet's
      `x_fused[i - 1]`) instead of the coarsest scale `depth - 1`.
    dropout: dropout inside the S4 and feed-forward blocks (release: 0).
  """

  bottleneck: int
  dtype: Any
  hidden: int = 512
  depth: int = 4
  ssm: str = 's4'
  d_state: int = 16
  ff_expand: int = 2
  reconstruction_s4: bool = False
  topdown_quirk: bool = True
  dropout: float = 0.0

  def setup(self):
    if self.depth < 2:
      raise ValueError(f'S4M needs depth >= 2 scales, got {self.depth}.')
    if self.ssm not in SSM_MODES:
      raise ValueError(f'Unknown ssm {self.ssm!r}; choose one of {SSM_MODES}.')
    c = self.hidden
    self.proj = pointwise(self.bottleneck, c, dtype=self.dtype)
    self.proj_norm = GlobalLayerNorm()
    self.proj_act = prelu()
    self.down = [
      DepthwiseConv1d(5, stride=1 if i == 0 else 2, dtype=self.dtype)
      for i in range(self.depth)
    ]
    self.down_norm = [GlobalLayerNorm() for _ in range(self.depth)]
    s4 = dict(
      ssm=self.ssm, d_state=self.d_state, dropout=self.dropout, dtype=self.dtype
    )
    self.global_s4 = S4Residual(**s4)
    self.global_ff = FFResidual(self.ff_expand, self.dropout, self.dtype)
    self.fuse = [GatedFusion(1, self.dtype) for _ in range(self.depth)]
    self.recon = [GatedFusion(5, self.dtype) for _ in range(self.depth - 1)]
    if self.reconstruction_s4:
      self.recon_s4 = [S4Residual(**s4) for _ in range(self.depth - 1)]
    self.res_conv = pointwise(c, self.bottleneck, dtype=self.dtype)

  def scale_lengths(self, length: int) -> list[int]:
    """Sequence lengths of the scales for a block input of `length` frames."""
    return conv_lengths(length, self.depth)

  def kernels(self, length: int) -> dict[str, Any]:
    """S4 kernels of this block for inputs of `length` frames.

    Returns:
      `{'global': (2, H, L_coarse), 'recon': [(2, H, L_i) for i = depth-2..0]}`
      (None entries for the identity block).
    """
    lengths = self.scale_lengths(length)
    out = {'global': self.global_s4.kernel(self.hidden, lengths[-1])}
    if self.reconstruction_s4:
      out['recon'] = [
        self.recon_s4[i].kernel(self.hidden, lengths[i])
        for i in range(self.depth - 2, -1, -1)
      ]
    return out

  def __call__(
    self,
    x: jnp.ndarray,
    kernels: dict[str, Any] | None = None,
    deterministic: bool = True,
  ) -> jnp.ndarray:
    """x: (B, T, bottleneck) -> (B, T, bottleneck).

    Args:
      x: block input.
      kernels: `self.kernels(T)`, or None to compute them here.
      deterministic: disables dropout.

    Returns:
      The block output.
    """
    if kernels is None:
      kernels = self.kernels(x.shape[1])
    y = self.proj_act(self.proj_norm(self.proj(x)))
    scales = []
    for conv, norm in zip(self.down, self.down_norm, strict=True):
      y = norm(conv(y))
      scales.append(y)
    coarse = scales[-1].shape[1]
    g = sum(adaptive_avg_pool(s, coarse) for s in scales)
    g = self.global_s4(g, kernels['global'], deterministic)
    g = self.global_ff(g, deterministic)
    fused = [f(s, g) for f, s in zip(self.fuse, scales, strict=True)]
    out = self._top_down(fused, kernels, deterministic)
    return self.res_conv(out) + x

  def _top_down(
    self,
    fused: Sequence[jnp.ndarray],
    kernels: dict[str, Any],
    deterministic: bool,
  ) -> jnp.ndarray:
    """Coarse-to-fine reconstruction from scale `depth - 2` down to 0."""
    top = self.depth - 2
    out = None
    for step, i in enumerate(range(top, -1, -1)):
      if i == top:
        # Release: `last_layer[i](x_fused[i], x_fused[i - 1])` (Python
        # negative indexing when i = 0).
        src = (i - 1) % self.depth if self.topdown_quirk else self.depth - 1
        glob = fused[src]
      else:
        glob = out
      out = self.recon[i](fused[i], glob)
      if self.reconstruction_s4:
        out = self.recon_s4[i](out, kernels['recon'][step], deterministic)
    return out
