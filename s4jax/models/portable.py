"""Branch-free, real-valued forms of the models, for export without JAX.

Export formats and the small runtimes on devices take a narrower set of
operations than XLA: onnxruntime has no complex arithmetic, `jax2onnx` no
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
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from s4jax.audio import stft as stft_lib
from s4jax.models import spiking_s4

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
    hop_length, n_fft: STFT settings of the model.
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
    self._idx = start_indices(self.n_fft, self.hop_length)
    consts = model.apply(
      self.variables, method=spiking_s4.SpikingS4.real_step_constants
    )
    self._consts = jax.tree.map(f32, consts)
    h, n2 = model.d_model, model.d_state // 2
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

  def _analyse(self, inputs: jnp.ndarray, count: jnp.ndarray):
    """The frame due at this hop, as `(Re, Im)` of its spectrum `(B, F)`."""
    p = self.pad_hops
    phase = jnp.clip(count - p, 0, p)
    onehot = (phase[:, None] == jnp.arange(p + 1)[None]).astype(inputs.dtype)
    frames = inputs[:, self._idx]  # (B, p + 1, N), constant indices
    frame = jnp.sum(onehot[..., None] * frames, axis=1)
    re = jnp.matmul(frame, self._a_re, precision=_HIGHEST)
    im = jnp.matmul(frame, self._a_im, precision=_HIGHEST)
    return re, im

  def step(
    self,
    hop: jnp.ndarray,
    state: dict[str, jnp.ndarray],
    variables: Any = None,
  ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """One hop: hop float32 `(B, hop_length)` -> (out `(B, hop_length)`, state).

    Pure and jittable; `state` holds the tensors of `state_specs`.
    `variables` optionally replaces the model variables of the dense layers
    (e.g. weights decoded inside an exported graph); the precomputed S4
    constants always come from the variables given at construction.
    """
    p, hop_len = self.pad_hops, self.hop_length
    count = state['count']
    inputs = jnp.concatenate(
      [state['inputs'][:, hop_len:], hop.astype(jnp.float32)], axis=-1
    )
    re, im = self._analyse(inputs, count)
    mag = jnp.sqrt(re * re + im * im)
    mask, carry = self.model.apply(
      self.variables if variables is None else variables,
      self._carry(state),
      mag,
      self._consts,
      method=spiking_s4.SpikingS4.frame_step,
    )
    frame = jnp.matmul(re * mask, self._s_re, precision=_HIGHEST)
    frame += jnp.matmul(im * mask, self._s_im, precision=_HIGHEST)
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

  def param_count(self) -> int:
    return spiking_s4.param_count(self.variables)
