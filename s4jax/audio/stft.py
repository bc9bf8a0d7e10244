"""Short-time Fourier transform, its inverse and a streaming version, in JAX.

Conventions follow `torch.stft` / `torch.istft` as the Intel N-DNS baseline
and the Spiking-S4 authors call them (`stft_splitter` / `stft_mixer` in
`IntelLabs/IntelNeuromorphicDNSChallenge` and
`dyabel/dns-challenge-submission`): `n_fft=512`, `hop=n_fft//4=128`,
`win_length=n_fft`, no window (rectangular), `center=True` with reflect
padding, one-sided spectrum, no normalisation. The inverse divides the
overlap-added frames by the overlap-added squared window (the NOLA envelope),
so `istft(stft(x)) == x` for every window whose envelope is non-zero.

Layout is channels-last, like the rest of the library: a spectrogram is
complex `(..., T, F)` with `T` frames and `F = n_fft // 2 + 1` bins (torch
returns `(..., F, T)`). With `center=True`, `T = 1 + num_samples // hop`
(480,000 samples at hop 128 give 3,751 frames).

Magnitude-mask enhancement with the noisy phase,
`s_hat = istft(|S_hat| e^{j angle(Y)})` with `|S_hat| = |Y| * mask`, equals
`istft(mask * Y)` exactly (also where `|Y| = 0`); `apply_magnitude_mask`
computes it that way, without `angle`, `cos` and `sin`.

The streaming analysis / synthesis (`StreamingSTFT`) consumes one hop at a
time and reproduces `stft` / `istft` including the reflect padding at both
ends; see its docstring for the timing.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = [
  'StreamBuffers',
  'StreamingSTFT',
  'WINDOWS',
  'apply_magnitude_mask',
  'check_signal',
  'frame_signal',
  'frames_per_second',
  'istft',
  'n_bins',
  'num_frames',
  'overlap_add',
  'reflect_pad',
  'signal_frames',
  'stft',
  'stream_reference_delay',
  'synthesize',
  'window_array',
  'window_envelope',
]

WINDOWS = ('rect', 'hann')


def n_bins(n_fft: int) -> int:
  """Number of one-sided frequency bins, `n_fft // 2 + 1`."""
  return n_fft // 2 + 1


def num_frames(
  num_samples: int, hop_length: int, n_fft: int = 512, center: bool = True
) -> int:
  """Frames `stft` produces for a signal of `num_samples` samples."""
  if center:
    return 1 + num_samples // hop_length
  return 1 + (num_samples - n_fft) // hop_length


def window_array(
  window: str, n_fft: int, win_length: int | None = None
) -> np.ndarray:
  """The analysis/synthesis window, zero-padded to `n_fft` (torch convention).

  Args:
    window: 'rect' (all ones, torch's `window=None`) or 'hann' (periodic,
      `torch.hann_window(win_length)`).
    n_fft: FFT size.
    win_length: window length (<= n_fft); None means n_fft. A shorter window
      is centred in the frame.

  Returns:
    float64 NumPy `(n_fft,)`.
  """
  win_length = n_fft if win_length is None else int(win_length)
  if not 0 < win_length <= n_fft:
    raise ValueError(
      f'win_length must be in (0, n_fft={n_fft}], got {win_length}.'
    )
  if window == 'rect':
    w = np.ones(win_length)
  elif window == 'hann':
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
  else:
    raise ValueError(f'Unknown window {window!r}; choose one of {WINDOWS}.')
  left = (n_fft - win_length) // 2
  return np.pad(w, (left, n_fft - win_length - left))


def reflect_pad(x: jnp.ndarray, pad: int) -> jnp.ndarray:
  """`jnp.pad(mode='reflect')` of `pad` samples each side of the last axis.

  Written as two gathers with constant indices, which every export format
  takes (`s4jax.models.portable`). x: real (..., P) -> (..., P + 2 pad).
  """
  n = x.shape[-1]
  left = np.arange(pad, 0, -1)
  right = np.arange(n - 2, n - 2 - pad, -1)
  return jnp.concatenate([x[..., left], x, x[..., right]], axis=-1)


def frame_signal(
  x: jnp.ndarray, n_fft: int, hop: int, count: int
) -> jnp.ndarray:
  """Overlapping frames. x: real (..., P) -> (..., count, n_fft)."""
  if n_fft % hop == 0:
    # Blocks of one hop; frame t is blocks t .. t + R - 1 side by side.
    r = n_fft // hop
    blocks = x[..., : (count + r - 1) * hop]
    blocks = blocks.reshape(*x.shape[:-1], count + r - 1, hop)
    return jnp.concatenate(
      [blocks[..., i : i + count, :] for i in range(r)], axis=-1
    )
  idx = np.arange(count)[:, None] * hop + np.arange(n_fft)[None, :]
  return x[..., idx]


def signal_frames(
  x: jnp.ndarray, n_fft: int, hop_length: int, center: bool = True
) -> jnp.ndarray:
  """The frames `stft` transforms, before the window.

  Args:
    x: real `(..., L)` signal.
    n_fft: frame length.
    hop_length: hop between frames.
    center: reflect-pad `n_fft // 2` samples on both sides first.

  Returns:
    `(..., T, n_fft)` with `T = num_frames(L, hop_length, n_fft, center)`.
  """
  check_signal(x, n_fft, center)
  if center:
    x = reflect_pad(x, n_fft // 2)
  count = 1 + (x.shape[-1] - n_fft) // hop_length
  return frame_signal(x, n_fft, hop_length, count)


def overlap_add(frames: jnp.ndarray, hop: int) -> jnp.ndarray:
  """Sum of frames placed `hop` apart. (..., T, n) -> (..., (T-1) hop + n).

  Each frame is cut into `r = ceil(n / hop)` blocks of one hop (zero-padded
  to `r hop`); block `i` of frame `t` lands on output block `t + i`, so the
  sum is `r` shifted copies: pads and adds only, no scatter.
  """
  count, n = frames.shape[-2:]
  lead = frames.shape[:-2]
  r = -(-n // hop)
  none = [(0, 0)] * len(lead)
  if r * hop != n:
    frames = jnp.pad(frames, none + [(0, 0), (0, r * hop - n)])
  parts = frames.reshape(*lead, count, r, hop)
  out = sum(
    jnp.pad(parts[..., i, :], none + [(i, r - 1 - i), (0, 0)]) for i in range(r)
  )
  return out.reshape(*lead, (count + r - 1) * hop)[..., : (count - 1) * hop + n]


def window_envelope(win: np.ndarray, hop: int, count: int) -> np.ndarray:
  """Overlap-added squared window (float64 NumPy, static)."""
  idx = np.arange(count)[:, None] * hop + np.arange(win.size)[None, :]
  env = np.zeros((count - 1) * hop + win.size)
  np.add.at(env, idx.ravel(), np.tile(win**2, count))
  return env


def check_signal(x: jnp.ndarray, n_fft: int, center: bool) -> None:
  """Raises ValueError for a non-float or too short `(..., T)` signal."""
  if x.ndim < 1 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
      f'stft expects a real floating-point signal (..., T), got dtype '
      f'{x.dtype} and shape {x.shape}.'
    )
  need = n_fft // 2 + 1 if center else n_fft
  if x.shape[-1] < need:
    raise ValueError(
      f'Signal of {x.shape[-1]} samples is too short for n_fft={n_fft} '
      f'(need at least {need}{" for reflect padding" if center else ""}).'
    )


def synthesize(
  frames: jnp.ndarray,
  win: np.ndarray,
  hop_length: int,
  window: str = 'rect',
  center: bool = True,
  length: int | None = None,
) -> jnp.ndarray:
  """Windowed frames to a signal: overlap-add over the window envelope.

  The last step of `istft` (torch.istft semantics), shared with the
  real-valued `s4jax.models.portable.real_istft`.

  Args:
    frames: real `(..., T, n_fft)` synthesis frames, already multiplied by
      the window.
    win: the window, float64 NumPy `(n_fft,)` (`window_array`).
    hop_length: hop between frames.
    window: the window's name (for the error message).
    center: whether the analysis padded `n_fft // 2` samples each side.
    length: output length (see `istft`).

  Returns:
    Real `(..., length)`.

  Raises:
    ValueError: some output sample gets no window weight (NOLA violated).
  """
  count, n_fft = frames.shape[-2:]
  y = overlap_add(frames, hop_length)
  env = window_envelope(win, hop_length, count)
  start = n_fft // 2 if center else 0
  if length is None:
    length = y.shape[-1] - 2 * start
  stop = min(y.shape[-1], start + length)
  if np.any(env[start:stop] < 1e-11):
    raise ValueError(
      f'The {window!r} window with hop {hop_length} violates the NOLA '
      'condition (some output samples get no window weight); use a smaller '
      'hop or another window.'
    )
  y = y[..., start:stop] / jnp.asarray(env[start:stop], y.dtype)
  if y.shape[-1] < length:
    y = jnp.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, length - y.shape[-1])])
  return y


def stft(
  x: jnp.ndarray,
  n_fft: int = 512,
  hop_length: int = 128,
  win_length: int | None = None,
  window: str = 'rect',
  center: bool = True,
) -> jnp.ndarray:
  """One-sided STFT, channels-last.

  Args:
    x: real `(..., L)` signal (float32 or float64).
    n_fft: FFT size (frame length).
    hop_length: hop between frames.
    win_length: window length (None: n_fft).
    window: 'rect' (the authors' and torch's default) or 'hann'.
    center: reflect-pad `n_fft // 2` samples on both sides first.

  Returns:
    Complex `(..., T, n_fft // 2 + 1)` with `T = num_frames(L, hop_length)`.
  """
  win = jnp.asarray(window_array(window, n_fft, win_length), x.dtype)
  frames = signal_frames(x, n_fft, hop_length, center) * win
  return jnp.fft.rfft(frames, n=n_fft, axis=-1)


def istft(
  spec: jnp.ndarray,
  n_fft: int = 512,
  hop_length: int = 128,
  win_length: int | None = None,
  window: str = 'rect',
  center: bool = True,
  length: int | None = None,
) -> jnp.ndarray:
  """Inverse of `stft` by windowed overlap-add (torch.istft semantics).

  Args:
    spec: complex `(..., T, n_fft // 2 + 1)`.
    n_fft: FFT size, as given to `stft`.
    hop_length: hop, as given to `stft`.
    win_length: window length, as given to `stft`.
    window: window name, as given to `stft`.
    center: whether `stft` padded the signal.
    length: output length; None gives `(T - 1) * hop_length` (centred). A
      longer length is zero-padded, a shorter one truncated.

  Returns:
    Real `(..., length)`.
  """
  if spec.shape[-1] != n_bins(n_fft):
    raise ValueError(
      f'Spectrogram has {spec.shape[-1]} bins but n_fft={n_fft} needs '
      f'{n_bins(n_fft)} (layout is (..., frames, bins)).'
    )
  win_np = window_array(window, n_fft, win_length)
  frames = jnp.fft.irfft(spec, n=n_fft, axis=-1)
  frames = frames * jnp.asarray(win_np, frames.dtype)
  return synthesize(frames, win_np, hop_length, window, center, length)


def apply_magnitude_mask(spec: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """`|Y| mask e^{j angle(Y)}`, computed as `mask * Y`.

  Args:
    spec: complex `(..., T, F)` noisy spectrogram Y.
    mask: real `(..., T, F)` magnitude mask.

  Returns:
    Complex `(..., T, F)` enhanced spectrogram with the noisy phase.
  """
  return spec * mask.astype(spec.real.dtype)


# Streaming ------------------------------------------------------------------


class StreamBuffers(NamedTuple):
  """State of `StreamingSTFT`.

  Attributes:
    inputs: real `(..., n_fft)`, the last `n_fft` input samples.
    ola: real `(..., n_fft)`, pending overlap-added output, aligned at the
      padded-signal position of the next frame.
    env: real `(n_fft,)`, the squared-window envelope accumulated alongside.
  """

  inputs: jnp.ndarray
  ola: jnp.ndarray
  env: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class StreamingSTFT:
  """Hop-by-hop `stft` / `istft` (centred, reflect-padded) with exact output.

  With `p = n_fft // 2 // hop` hops of padding, frame `t` covers input hops
  `t - p .. t + p - 1` and the reflect padding at the start reaches one
  sample into hop `p`. So the first call that can analyse anything is the one
  that receives hop `p`; it yields frames 0 and 1 (`start_frames`) and puts
  the start's padding in the buffer (`pad_start`, for frames 2 .. `p - 1`
  when `p > 2`). Every later call yields one frame (`next_frame`), frame
  `m - p + 1` on hop `m`.
  Each synthesised frame is overlap-added (`overlap_add`) and completes one
  hop of output. Output hop `k` therefore leaves with input hop `k + 2p - 1`:
  the algorithmic latency is one window (`n_fft` samples, 32 ms at 512 / 16
  kHz), counting the hop being collected. At the end of the signal
  `end_frames` gives the last `p` frames (reflect padding at the end) and the
  remaining `p - 1` hops of output are read with `tail`.

  A signal that ends inside a hop (`r` samples of it, `0 < r < hop`) is
  exact too: `last_hop` completes the partial hop with the start of the
  end's reflect padding, which repeats samples already received; that hop is
  pushed and analysed as any other, and `end_frames(buf, pad)` and
  `tail(buf, pad)` with `pad = hop - r` give the remaining `p - 1` frames
  and `p hops - pad` samples of output, reflected about the signal's true
  last sample as `stft` does.

  The class only holds static settings; all methods are pure functions of
  `StreamBuffers`.
  """

  n_fft: int = 512
  hop_length: int = 128
  win_length: int | None = None
  window: str = 'rect'

  def __post_init__(self):
    half = self.n_fft // 2
    if self.n_fft % 2 or half % self.hop_length:
      raise ValueError(
        f'Streaming needs hop_length ({self.hop_length}) to divide n_fft // 2 '
        f'({half}).'
      )
    window_array(self.window, self.n_fft, self.win_length)  # Validates.

  @property
  def pad_hops(self) -> int:
    """Hops of reflect padding on each side, `n_fft // 2 // hop`."""
    return self.n_fft // 2 // self.hop_length

  @property
  def latency_samples(self) -> int:
    """Algorithmic latency: one window."""
    return self.n_fft

  def _win(self, dtype) -> jnp.ndarray:
    return jnp.asarray(
      window_array(self.window, self.n_fft, self.win_length), dtype
    )

  def init(
    self, batch_shape: tuple[int, ...], dtype=jnp.float32
  ) -> StreamBuffers:
    """Empty buffers for a batch of streams."""
    zeros = jnp.zeros((*batch_shape, self.n_fft), dtype)
    return StreamBuffers(zeros, zeros, jnp.zeros((self.n_fft,), dtype))

  def push(self, buf: StreamBuffers, hop: jnp.ndarray) -> StreamBuffers:
    """Appends one hop `(..., hop_length)` of input."""
    if hop.shape[-1] != self.hop_length:
      raise ValueError(
        f'Expected hops of {self.hop_length} samples, got {hop.shape}.'
      )
    inputs = jnp.concatenate(
      [buf.inputs[..., self.hop_length :], hop.astype(buf.inputs.dtype)], -1
    )
    return buf._replace(inputs=inputs)

  def _spectra(self, frames: jnp.ndarray) -> jnp.ndarray:
    return jnp.fft.rfft(frames * self._win(frames.dtype), n=self.n_fft, axis=-1)

  def start_frames(self, buf: StreamBuffers) -> jnp.ndarray:
    """Frames 0 and 1, once hop `pad_hops` has been pushed: `(..., 2, F)`."""
    half, hop = self.n_fft // 2, self.hop_length
    seen = buf.inputs[..., self.n_fft - half - hop :]  # x[0 : half + hop]
    lead = jnp.flip(seen[..., 1 : half + 1], axis=-1)  # x[half] .. x[1]
    padded = jnp.concatenate([lead, seen], axis=-1)
    return self._spectra(
      jnp.stack(
        [padded[..., : self.n_fft], padded[..., hop : hop + self.n_fft]], -2
      )
    )

  def pad_start(self, buf: StreamBuffers) -> StreamBuffers:
    """Puts the start's reflect padding in the buffer, at hop `pad_hops`.

    Call once, when hop `pad_hops` has been pushed (with `start_frames`):
    the zeros before sample 0 become `x[-t] = x[t]`, which frames 2 ..
    `pad_hops - 1` read through `next_frame` (none with `pad_hops <= 2`:
    the buffer is returned as it is).
    """
    if self.pad_hops <= 2:
      return buf
    lead = (self.pad_hops - 1) * self.hop_length  # Samples before 0 held.
    x = buf.inputs
    head = jnp.flip(x[..., lead + 1 : 2 * lead + 1], axis=-1)
    return buf._replace(inputs=jnp.concatenate([head, x[..., lead:]], -1))

  def next_frame(self, buf: StreamBuffers) -> jnp.ndarray:
    """The frame ending with the last pushed hop: `(..., F)`."""
    return self._spectra(buf.inputs)

  def last_hop(self, buf: StreamBuffers, last: jnp.ndarray) -> jnp.ndarray:
    """A partial final hop `(..., r)`, `0 < r < hop`, completed to a hop.

    The `hop - r` samples added are the start of the reflect padding after
    the signal's last sample (`x[T + k] = x[T - 2 - k]`), as `stft` pads;
    they come from `last` and the samples pushed before it.
    """
    r, hop = last.shape[-1], self.hop_length
    if not 0 < r < hop:
      raise ValueError(f'A partial hop has 1 to {hop - 1} samples, got {r}.')
    seen = jnp.concatenate([buf.inputs, last.astype(buf.inputs.dtype)], -1)
    return jnp.concatenate(
      [seen[..., -r:], jnp.flip(seen[..., -(hop - r) - 1 : -1], axis=-1)], -1
    )

  def end_frames(self, buf: StreamBuffers, pad: int = 0) -> jnp.ndarray:
    """The frames left after the final hop: `(..., pad_hops - (pad > 0), F)`.

    Args:
      buf: the buffers after the final hop.
      pad: samples at the end of that hop past the signal's end (it was a
        partial hop completed by `last_hop`), `0 <= pad < hop_length`.
    """
    half, hop = self.n_fft // 2, self.hop_length
    if not 0 <= pad < hop:
      raise ValueError(f'pad must be in [0, {hop}), got {pad}.')
    seen = buf.inputs[..., : self.n_fft - pad]  # Ends with the last sample.
    trail = jnp.flip(seen[..., -half - 1 : -1], axis=-1)
    ext = jnp.concatenate([seen, trail], axis=-1)
    frames = [
      ext[..., (1 + j) * hop : (1 + j) * hop + self.n_fft]
      for j in range(self.pad_hops - (pad > 0))
    ]
    if not frames:  # pad_hops 1: the completed hop's frame was the last.
      return self._spectra(ext[..., None, : self.n_fft])[..., :0, :]
    return self._spectra(jnp.stack(frames, axis=-2))

  def overlap_add(
    self, buf: StreamBuffers, spec: jnp.ndarray
  ) -> tuple[StreamBuffers, jnp.ndarray]:
    """Synthesises one frame `(..., F)` and returns the completed hop.

    Returns:
      `(buffers, out)`: `out` is real `(..., hop_length)`, the normalised
      output hop that no later frame touches (padding region for the first
      `pad_hops` frames).
    """
    hop = self.hop_length
    frame = jnp.fft.irfft(spec, n=self.n_fft, axis=-1)
    win = self._win(frame.dtype)
    ola = buf.ola + frame * win
    env = buf.env + win**2
    out = ola[..., :hop] / jnp.where(env[:hop] > 0, env[:hop], 1.0)
    ola = jnp.pad(ola[..., hop:], [(0, 0)] * (ola.ndim - 1) + [(0, hop)])
    env = jnp.pad(env[hop:], (0, hop))
    return buf._replace(
      ola=ola.astype(buf.ola.dtype), env=env.astype(buf.env.dtype)
    ), out

  def tail(self, buf: StreamBuffers, pad: int = 0) -> jnp.ndarray:
    """Output left after the last frame.

    Args:
      buf: the buffers after the last frame.
      pad: as in `end_frames`.

    Returns:
      Real `(..., (pad_hops - 1) * hop)`, or with `pad > 0`, `(...,
      pad_hops * hop - pad)`: the output up to the signal's last sample.
    """
    n = (self.pad_hops - (pad == 0)) * self.hop_length - pad
    env = buf.env[:n]
    return buf.ola[..., :n] / jnp.where(env > 0, env, 1.0)


def stream_reference_delay(stream: StreamingSTFT) -> int:
  """Hops between an input hop and the output hop with the same samples."""
  return 2 * stream.pad_hops - 1


def frames_per_second(sample_rate: int, hop_length: int) -> float:
  """STFT frame rate (125 frames/s at 16 kHz, hop 128)."""
  return sample_rate / hop_length
