"""Branch-free, real-valued forms of the models, for export without JAX.

Export formats and the small runtimes on devices take a narrower set of
operations than XLA: ONNX Runtime has no complex arithmetic, `jax2onnx` no
FFT, and LiteRT's `IF` op returned zeros for both branches in our tests
(ai-edge-litert 2.3). The forms here therefore use only real matrix
products, elementwise arithmetic, gathers with constant indices and selects.

`SpikingS4Stream` is the streaming Spiking-S4 enhancer as one pure function
`step(hop, state) -> (out, state)`: one hop of samples and the state in, one
hop and the next state out, the state a flat dict of named real tensors (no
state hidden in a runtime). Inside, the STFT analysis and synthesis are
products with DFT matrices (window folded in), the S4D recurrence runs on
`(Re h, Im h)` pairs with the discretised system precomputed
(`SpikingS4Block.real_step_constants`), and the centred, reflect-padded
start of the offline STFT is a gather from the input buffer chosen by a
one-hot select on the hop counter.

Schedule and latency: frame `k` is analysed when hop `k + p` arrives
(`p = n_fft / (2 hop)`, 2 at 512 / 128), because the reflect padding of
frame 0 reaches sample `n_fft / 2`. `s4jax.models.spiking_s4.stream_step`
can analyse frames 0 and 1 together one hop earlier, but that needs a
branch that runs the network twice; here every hop runs it once, and the
output is `stream_step`'s delayed by one hop: output hop `m` leaves with
input hop `m + 2p`, a latency of `n_fft + hop` samples (40 ms at 16 kHz).

Offline (whole-clip) forms: `offline(fn)` traces a model function with the
parameter-only work (S4 kernels, complex included) folded into constants
and the FFT convolutions as direct ones (`s4jax.portable_ops`);
`trace_offline` does that trace once, ahead of `jax2onnx`.
`spiking_s4_offline` (STFT and iSTFT as real DFT products, `real_stft`,
`real_istft`) and `s4m_offline` build the two models' exportable functions
for one clip length; exports take fixed shapes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core

from s4jax import portable_ops
from s4jax.audio import stft as stft_lib
from s4jax.models import s4m, spiking_s4

__all__ = [
  'SpikingS4Stream',
  'StateSpec',
  'analysis_matrices',
  'dft_matrices_from_tables',
  'offline',
  'real_istft',
  'real_stft',
  's4m_offline',
  'spiking_s4_offline',
  'start_indices',
  'synthesis_matrices',
  'trace_offline',
]

_HIGHEST = jax.lax.Precision.HIGHEST


def analysis_matrices(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Real and imaginary rfft matrices with the window folded in.

  Args:
    window: float64 `(N,)` analysis window.

  Returns:
    float64 `(N, N/2 + 1)` pair `(A_re, A_im)`, so that for a frame `x`,
    `rfft(x * window) = x @ A_re + 1j * (x @ A_im)`.
  """
  n = window.shape[0]
  angle = 2 * np.pi * np.outer(np.arange(n), np.arange(n // 2 + 1)) / n
  return window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)


def synthesis_matrices(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Inverse rfft matrices with the synthesis window folded in.

  Args:
    window: float64 `(N,)` synthesis window (N even).

  Returns:
    float64 `(N/2 + 1, N)` pair `(S_re, S_im)`, so that for a half spectrum
    `X`, `irfft(X, N) * window = Re X @ S_re + Im X @ S_im`. Like `irfft`,
    it ignores the imaginary parts of the DC and Nyquist bins.
  """
  n = window.shape[0]
  f = np.arange(n // 2 + 1)
  weight = np.where((f == 0) | (f == n // 2), 1.0, 2.0) / n
  angle = 2 * np.pi * np.outer(f, np.arange(n)) / n
  s_re = weight[:, None] * np.cos(angle) * window[None]
  s_im = -weight[:, None] * np.sin(angle) * window[None]
  s_im[0] = 0.0
  s_im[-1] = 0.0
  return s_re, s_im


def dft_matrices_from_tables(
  window: np.ndarray,
) -> tuple[jnp.ndarray, ...]:
  """`analysis_matrices` and `synthesis_matrices` built from small tables.

  The `(N, N/2 + 1)` matrices repeat the N values `cos(2 pi k / N)` and
  `sin(2 pi k / N)` at `k = n f mod N`. Traced inside an exported function,
  this stores the two tables and the window (3 N floats) instead of four
  matrices (about 2 N^2 floats, 2.1 MB at N = 512); the gathers act on
  constants only, so ONNX Runtime folds them when the session loads. The
  values agree with the float64-built matrices to float32 rounding.

  Args:
    window: float64 `(N,)` window (N even).

  Returns:
    float32 `(A_re, A_im, S_re, S_im)` as the two functions return them.
  """
  n = window.shape[0]
  k = np.arange(n)
  cos = jnp.asarray(np.cos(2 * np.pi * k / n), jnp.float32)
  sin = jnp.asarray(np.sin(2 * np.pi * k / n), jnp.float32)
  win = jnp.asarray(window, jnp.float32)
  f = jnp.arange(n // 2 + 1, dtype=jnp.int32)
  phase = (jnp.arange(n, dtype=jnp.int32)[:, None] * f[None]) % n  # (N, F)
  a_re = win[:, None] * cos[phase]
  a_im = -win[:, None] * sin[phase]
  edge = (f == 0) | (f == n // 2)
  weight = jnp.where(edge, 1.0, 2.0) / n  # (F,)
  s_re = weight[:, None] * cos[phase.T] * win[None]
  s_im = jnp.where(edge[:, None], 0.0, -weight[:, None] * sin[phase.T])
  return a_re, a_im, s_re, s_im * win[None]


def start_indices(n_fft: int, hop: int) -> np.ndarray:
  """Where each analysed frame's samples sit in the input buffer.

  The buffer holds the last `n_fft + hop` samples. Row `j < p` gives frame
  `j` (reflect-padded at the start: sample `-t` stands for `t`) when hop
  `j + p` has arrived; row `p` gives every later frame (the buffer without
  its newest hop).

  Returns:
    int32 `(p + 1, n_fft)`.
  """
  half, size = n_fft // 2, n_fft + hop
  p = half // hop
  rows = []
  for j in range(p):
    t = j * hop - half + np.arange(n_fft)  # Signal times of frame j.
    end = (j + p + 1) * hop  # Samples received when frame j is analysed.
    rows.append(np.abs(t) - end + size)
  rows.append(np.arange(n_fft))
  idx = np.stack(rows)
  if idx.min() < 0 or idx.max() >= size:
    raise AssertionError(f'Start indices out of the buffer: {idx}.')
  return idx.astype(np.int32)


def _where(active: jnp.ndarray, new: jnp.ndarray, old: jnp.ndarray):
  """Per-stream select: `active` `(B,)` against `(B, ...)` arrays."""
  return jnp.where(
    active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old
  )


@dataclasses.dataclass(frozen=True)
class StateSpec:
  """One named state tensor: shape after the batch axis, dtype name."""

  name: str
  shape: tuple[int, ...]
  dtype: str


class SpikingS4Stream:
  """The streaming Spiking-S4 enhancer as a pure, exportable step.

  Example::

    stream = SpikingS4Stream(variables, config.model)
    state = stream.init_state(batch=1)
    step = jax.jit(stream.step)
    for hop in hops:                       # (1, hop_length) float32 each
      out, state = step(hop, state)        # zeros for the first 2p hops

  Attributes:
    model: the `SpikingS4` module.
    hop_length: the model's STFT hop.
    n_fft: the model's STFT size.
    pad_hops: `p = n_fft / (2 hop)`.
    delay_hops: output hop `m` leaves with input hop `m + delay_hops`.
    latency_samples: algorithmic latency, `(delay_hops + 1) * hop`.
    state_specs: the named state tensors, in a fixed order.
  """

  def __init__(self, variables: Any, model_or_config):
    model = spiking_s4._as_model(model_or_config)  # pylint: disable=protected-access
    self.model = model
    self.variables = jax.tree.map(jnp.asarray, variables)
    stream = model.streaming_stft  # Validates hop and window.
    self.n_fft, self.hop_length = stream.n_fft, stream.hop_length
    self.pad_hops = stream.pad_hops
    self.delay_hops = 2 * self.pad_hops
    self.latency_samples = (self.delay_hops + 1) * self.hop_length
    window = stft_lib.window_array(model.window, model.n_fft, model.win_length)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    self._a_re, self._a_im = map(f32, analysis_matrices(window))
    self._s_re, self._s_im = map(f32, synthesis_matrices(window))
    self._win2 = f32(window**2)
    self._window = window
    self._idx = start_indices(self.n_fft, self.hop_length)
    consts = model.apply(
      self.variables, method=spiking_s4.SpikingS4.real_step_constants
    )
    self._consts = jax.tree.map(f32, consts)
    h, n2 = model.d_model, model.block_settings['d_state'] // 2
    specs = [
      StateSpec('count', (), 'int32'),
      StateSpec('inputs', (self.n_fft + self.hop_length,), 'float32'),
      StateSpec('ola', (self.n_fft,), 'float32'),
      StateSpec('env', (self.n_fft,), 'float32'),
      StateSpec('lif_in', (h,), 'float32'),
    ]
    for i in range(model.n_layers):
      specs += [
        StateSpec(f'layer{i}_s4_re', (h, n2), 'float32'),
        StateSpec(f'layer{i}_s4_im', (h, n2), 'float32'),
        StateSpec(f'layer{i}_lif_ssm', (h,), 'float32'),
        StateSpec(f'layer{i}_lif_out', (h,), 'float32'),
      ]
    self.state_specs = tuple(specs)

  @property
  def state_names(self) -> tuple[str, ...]:
    return tuple(s.name for s in self.state_specs)

  def init_state(self, batch: int = 1) -> dict[str, np.ndarray]:
    """Zero state for `batch` streams (NumPy, so runtimes can use it)."""
    return {
      s.name: np.zeros((batch, *s.shape), s.dtype) for s in self.state_specs
    }

  def _carry(self, state: dict) -> dict:
    layers = range(self.model.n_layers)
    return {
      'lif_in': state['lif_in'],
      'blocks': [
        {
          's4': (state[f'layer{i}_s4_re'], state[f'layer{i}_s4_im']),
          'lif_ssm': state[f'layer{i}_lif_ssm'],
          'lif_out': state[f'layer{i}_lif_out'],
        }
        for i in layers
      ],
    }

  def _flat(self, carry: dict) -> dict:
    out = {'lif_in': carry['lif_in']}
    for i, block in enumerate(carry['blocks']):
      out[f'layer{i}_s4_re'], out[f'layer{i}_s4_im'] = block['s4']
      out[f'layer{i}_lif_ssm'] = block['lif_ssm']
      out[f'layer{i}_lif_out'] = block['lif_out']
    return out

  def _analyse(self, inputs: jnp.ndarray, count: jnp.ndarray, mats):
    """The frame due at this hop, as `(Re, Im)` of its spectrum `(B, F)`."""
    p = self.pad_hops
    phase = jnp.clip(count - p, 0, p)
    onehot = (phase[:, None] == jnp.arange(p + 1)[None]).astype(inputs.dtype)
    frames = inputs[:, self._idx]  # (B, p + 1, N), constant indices
    frame = jnp.sum(onehot[..., None] * frames, axis=1)
    re = jnp.matmul(frame, mats[0], precision=_HIGHEST)
    im = jnp.matmul(frame, mats[1], precision=_HIGHEST)
    return re, im

  def step(
    self,
    hop: jnp.ndarray,
    state: dict[str, jnp.ndarray],
    variables: Any = None,
    compact_dft: bool = False,
  ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """One hop: hop float32 `(B, hop_length)` -> (out `(B, hop_length)`, state).

    Pure and jittable; `state` holds the tensors of `state_specs`.
    `variables` optionally replaces the model variables of the dense layers
    (e.g. weights decoded inside an exported graph); the precomputed S4
    constants always come from the variables given at construction.
    `compact_dft` builds the DFT matrices in the graph from small tables
    (`dft_matrices_from_tables`): smaller exported files, the same
    function up to float32 rounding of the matrices.
    """
    p, hop_len = self.pad_hops, self.hop_length
    count = state['count']
    inputs = jnp.concatenate(
      [state['inputs'][:, hop_len:], hop.astype(jnp.float32)], axis=-1
    )
    if compact_dft:
      mats = dft_matrices_from_tables(self._window)
    else:
      mats = (self._a_re, self._a_im, self._s_re, self._s_im)
    re, im = self._analyse(inputs, count, mats)
    mag = jnp.sqrt(re * re + im * im)
    mask, carry = self.model.apply(
      self.variables if variables is None else variables,
      self._carry(state),
      mag,
      self._consts,
      method=spiking_s4.SpikingS4.frame_step,
    )
    frame = jnp.matmul(re * mask, mats[2], precision=_HIGHEST)
    frame += jnp.matmul(im * mask, mats[3], precision=_HIGHEST)
    ola = state['ola'] + frame
    env = state['env'] + self._win2
    head = env[:, :hop_len]
    out = ola[:, :hop_len] / jnp.where(head > 0, head, 1.0)
    zeros = jnp.zeros_like(ola[:, :hop_len])
    new = self._flat(carry)
    new['ola'] = jnp.concatenate([ola[:, hop_len:], zeros], axis=-1)
    new['env'] = jnp.concatenate([env[:, hop_len:], zeros], axis=-1)
    active = count >= p
    next_state = {k: _where(active, v, state[k]) for k, v in new.items()}
    next_state['inputs'] = inputs
    next_state['count'] = jnp.minimum(count + 1, 2 * p).astype(count.dtype)
    out = _where(count >= 2 * p, out, zeros)
    return out, {name: next_state[name] for name in self.state_names}


# Offline (whole-clip) forms -------------------------------------------------


def offline(fn: Callable[..., Any]) -> Callable[..., Any]:
  """`fn` in its exportable whole-clip form: parameters folded, no FFT.

  Calling the returned function runs `fn` inside
  `jax.ensure_compile_time_eval()` and `s4jax.portable_ops.portable_ops()`.
  So while `fn` is traced, every computation on concrete arrays only (on the
  closed-over parameters: the S4 kernels with their complex Vandermonde or
  Cauchy evaluation and inverse FFT, PLIF time constants, ...) runs eagerly
  and enters the graph as a constant, and `s4jax.ssm.kernels.fft_conv`
  traces to a direct convolution. What is left depends on the arguments
  and is real-valued; `jax2tf` -> LiteRT converts it as it is, `jax2onnx`
  after `trace_offline`.

  Parameters passed as arguments are traced, not folded: `fn` should close
  over them. Its signature and outputs are kept, e.g. for S4M
  `mixture (B, T) -> estimates (B, S, T)`. The eager evaluation compiles
  every operation on its own, so the first trace in a process is slow
  (S4M-tiny: ~15 s on a CPU); later ones reuse those compilations.

  Args:
    fn: a function of arrays.

  Returns:
    The wrapped function; it composes with `jax.jit`.
  """

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.ensure_compile_time_eval(), portable_ops.portable_ops():
      return fn(*args, **kwargs)

  return wrapped


def trace_offline(
  fn: Callable[..., Any], specs: Sequence[jax.ShapeDtypeStruct]
) -> Callable[..., Any]:
  """`offline(fn)` traced once at `specs` and returned as a replay.

  `jax2onnx` traces with its own versions of many `jax.numpy` functions
  patched in, and some of them (`jnp.tile`, `jnp.concatenate`) fail when
  they run eagerly, as constant folding makes them do. Tracing here, outside
  the converter, hands it `lax` primitives on the arguments with the folded
  constants closed over; the folding is also done once for all formats.

  Args:
    fn: as for `offline`.
    specs: a `jax.ShapeDtypeStruct` per positional argument, fixed shapes
      (folding evaluates shape-dependent constants, which a symbolic batch
      leaves unknown).

  Returns:
    A function of arrays of `specs`' shapes and dtypes returning what `fn`
    returns.
  """
  closed, out_shape = jax.make_jaxpr(offline(fn), return_shape=True)(*specs)
  out_tree = jax.tree.structure(out_shape)
  run = jax_core.jaxpr_as_fun(closed)

  def replay(*args):
    return jax.tree.unflatten(out_tree, run(*args))

  return replay


def real_stft(
  x: jnp.ndarray,
  n_fft: int = 512,
  hop_length: int = 128,
  win_length: int | None = None,
  window: str = 'rect',
  center: bool = True,
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """`s4jax.audio.stft.stft` as `(Re, Im)`, by one real matrix product.

  The centred reflect padding is two gathers with constant indices, the
  framing a reshape into hops, and the windowed rfft a product with
  `analysis_matrices`. Arguments as `stft.stft`'s.

  Returns:
    `(re, im)`, each real `(..., T, n_fft // 2 + 1)` with
    `T = stft.num_frames(L, hop_length, n_fft, center)`, dtype of `x`.
  """
  a_re, a_im = analysis_matrices(
    stft_lib.window_array(window, n_fft, win_length)
  )
  mat = jnp.asarray(np.concatenate([a_re, a_im], axis=1), x.dtype)
  frames = stft_lib.signal_frames(x, n_fft, hop_length, center)
  spec = jnp.matmul(frames, mat, precision=_HIGHEST)
  bins = stft_lib.n_bins(n_fft)
  return spec[..., :bins], spec[..., bins:]


def real_istft(
  re: jnp.ndarray,
  im: jnp.ndarray,
  n_fft: int = 512,
  hop_length: int = 128,
  win_length: int | None = None,
  window: str = 'rect',
  center: bool = True,
  length: int | None = None,
) -> jnp.ndarray:
  """`s4jax.audio.stft.istft` of `re + 1j im`, by one real matrix product.

  The windowed irfft of every frame is a product with `synthesis_matrices`,
  followed by an overlap-add of shifted hop blocks and the division by the
  (constant) overlap-added squared window.

  Args:
    re: real `(..., T, n_fft // 2 + 1)`, real part of the spectrogram.
    im: its imaginary part, like `re`.
    n_fft: even FFT size; it and the other settings as given to `stft`.
    hop_length: see `stft.istft`.
    win_length: see `stft.istft`.
    window: see `stft.istft`.
    center: see `stft.istft`.
    length: see `stft.istft`.

  Returns:
    Real `(..., length)`, dtype of `re`.
  """
  bins = stft_lib.n_bins(n_fft)
  if re.shape != im.shape or re.shape[-1] != bins:
    raise ValueError(
      f'Expected real and imaginary parts (..., frames, {bins}) for '
      f'n_fft={n_fft}, got {re.shape} and {im.shape}.'
    )
  if n_fft % 2:
    raise ValueError(f'real_istft needs an even n_fft, got {n_fft}.')
  win = stft_lib.window_array(window, n_fft, win_length)
  s_re, s_im = synthesis_matrices(win)
  mat = jnp.asarray(np.concatenate([s_re, s_im], axis=0), re.dtype)
  spec = jnp.concatenate([re, im], axis=-1)
  frames = jnp.matmul(spec, mat, precision=_HIGHEST)  # Window folded in.
  return stft_lib.synthesize(frames, win, hop_length, window, center, length)


def spiking_s4_offline(
  variables: Any, model_or_config, num_samples: int
) -> Callable[[jnp.ndarray], jnp.ndarray]:
  """The whole-clip Spiking-S4 enhancer as an exportable function.

  `enhance(noisy)` computes `SpikingS4.__call__(noisy)['estimate']` with the
  STFT and iSTFT as real DFT products (`real_stft`, `real_istft`): the
  magnitude and the masked spectrum are formed from `(Re, Im)` pairs, and
  `SpikingS4.masks` runs under `offline` (direct S4 convolutions). The S4D
  kernels for the clip's frame count are computed once, here.

  Example::

    enhance = spiking_s4_offline({'params': params}, config.model, 32000)
    estimate = jax.jit(enhance)(noisy)        # (B, 32000) float32

  Args:
    variables: the model variables (`{'params': ...}`).
    model_or_config: a `SpikingS4` or its `config.model`.
    num_samples: the clip length L the function takes.

  Returns:
    `enhance`: real `(B, L)` noisy waveforms -> `(B, L)` estimates.
  """
  model = spiking_s4._as_model(model_or_config)  # pylint: disable=protected-access
  variables = jax.tree.map(jnp.asarray, variables)
  frames = stft_lib.num_frames(num_samples, model.hop_length, model.n_fft)
  kernels = jax.jit(
    lambda v: model.apply(v, frames, method=spiking_s4.SpikingS4.ssm_kernels)
  )(variables)
  stft_kwargs = model.stft_kwargs

  def enhance(noisy: jnp.ndarray) -> jnp.ndarray:
    if noisy.ndim != 2 or noisy.shape[-1] != num_samples:
      raise ValueError(
        f'This enhancer takes noisy waveforms (batch, {num_samples}), got '
        f'shape {noisy.shape}; build one per clip length.'
      )
    x = noisy.astype(model.float_dtype)
    re, im = real_stft(x, **stft_kwargs)
    mag = jnp.sqrt(re * re + im * im)
    mask, _ = model.apply(
      variables, mag, True, kernels, method=spiking_s4.SpikingS4.masks
    )
    return real_istft(re * mask, im * mask, length=num_samples, **stft_kwargs)

  return offline(enhance)


def s4m_offline(
  variables: Any, model_or_config
) -> Callable[[jnp.ndarray], jnp.ndarray]:
  """The S4M separator as an exportable function.

  `separate(mixture)` is `S4M.__call__(mixture)['estimates']` under
  `offline`: S4 kernels folded, direct bidirectional S4 convolutions and the
  transposed-conv decoder as a product and an overlap-add
  (`s4m_blocks.conv_transpose_overlap_add`). Rematerialisation (a training
  device) is switched off; the shared-block `scan` is kept, so an exported
  graph holds the block once.

  Args:
    variables: the model variables (`{'params': ...}`).
    model_or_config: an `S4M` or its `config.model`.

  Returns:
    `separate`: real `(B, T)` mixtures -> `(B, S, T)` estimates.
  """
  model = model_or_config
  if not isinstance(model, s4m.S4M):
    model = s4m.from_config(model_or_config)
  model = model.clone(remat=False)
  variables = jax.tree.map(jnp.asarray, variables)

  def separate(mixture: jnp.ndarray) -> jnp.ndarray:
    return model.apply(variables, mixture)['estimates']

  return offline(separate)
