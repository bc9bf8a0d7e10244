"""Trained speech models behind one interface, and running them on signals.

`SpeechModel` is what every trained model offers, whatever it computes:

  model.sample_rate, model.num_outputs      # Hz; 1 (enhancement) or S
  model.hop_length, model.latency           # samples
  y = model.offline(x)                      # (B, T) -> (B, S, T)
  state = model.init_stream(batch)
  out, state = model.stream_step(state, hop)   # (B, hop_length) -> (B, S, .)
  tail = model.flush(state)                 # (B, S, latency - hop_length)
  tail = model.flush(state, last)           # last (B, r < hop_length) in,
                                            # (B, S, latency - hop + r) out
  model.count_macs(seconds)                 # {'total', 'per_module', ...}

Concatenated, the stream's outputs and the flushed tail are the model's
output on the input stream delayed by `latency - hop_length` samples: the
output for input sample `t` has been returned once sample `t + latency - 1`
has arrived. A signal that ends inside a hop passes its last `r` samples to
`flush`, so that the stream ends where the signal does.

Implementations, each built from `(model_config, params)`:

* `SpikingS4Model`: Spiking-S4 (`s4jax.models.spiking_s4`); its streaming
  is exact and causal, frame by frame (latency one STFT window, 512 samples
  at 16 kHz with n_fft 512, hop 128).
* `S4MModel`: S4M separation (`s4jax.models.s4m`). S4M is not causal, so it
  streams block-online: blocks of `block_seconds` processed with
  `context_seconds` of audio on each side (the right side is look-ahead),
  latency `block + context`.
* `TaskModel`: any other model following the task conventions of
  `s4jax.training.tasks` (offline only).

`from_run_config(config, params)` picks the implementation for a run's
config. Every model also carries `config` (the run's, if known), `step`,
`params` (as trained), `task` and `model(x)` for one mono signal.

Running a model on a signal of any length (`x` real `(T,)`, outputs `(S, T)`):

* `chunked(model, x, chunk=..., context=...)`: constant memory; windows of
  `chunk` samples with `context` samples of extra audio on each side
  (processed, then trimmed off), the speaker order of each window matched
  to the previous one on the audio they share. A signal that fits in one
  window (`T <= chunk + 2 context`) is processed whole, with no artificial
  context: the result is exactly `model.offline`.
* `streamed(model, x)`: hop by hop through the streaming mode, aligned.
* `process(model, x, rate, mode=...)`: either of those (or 'offline') on a
  signal at any sample rate, resampled to the model's rate and back, with
  the sample-exact stretch resampling of `s4jax.audio.resample.Rates`.
* `iter_chunks`, `iter_stream`, `iter_process`: the same, reading the input
  through `read(a, b)` and yielding the result piece by piece, so a file of
  any length needs constant memory (`launch/enhance.py` writes the pieces).

Pure: NumPy, SciPy and JAX; no files, flags or processes.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from s4jax.audio import permutation
from s4jax.audio import resample as resample_lib
from s4jax.audio import stft as stft_lib
from s4jax.training import tasks as tasks_lib

__all__ = [
  'BlockStreamState',
  'MODES',
  'Piece',
  'Reader',
  'S4MModel',
  'SpeechModel',
  'SpikingS4Model',
  'StreamingUnsupportedError',
  'TaskModel',
  'chunked',
  'from_run_config',
  'iter_chunks',
  'iter_process',
  'iter_stream',
  'match_order',
  'process',
  'streamed',
]

Reader = resample_lib.Reader
MODES = ('offline', 'chunked', 'stream')
_OFFLINE_CACHE = 4  # Spiking-S4 clip lengths whose S4 kernels are kept.


class StreamingUnsupportedError(ValueError):
  """The model has no streaming mode."""


@runtime_checkable
class SpeechModel(Protocol):
  """A trained enhancement or separation model (see the module docstring).

  Attributes:
    sample_rate: Hz of every signal in and out.
    num_outputs: 1 for enhancement, the number of sources S for separation.
    hop_length: samples per `stream_step` (from the model config).
    latency: algorithmic latency in samples: the stream returns the output
      for input sample `t` once sample `t + latency - 1` has arrived (at
      the latest); None when the model does not stream. The stream's
      outputs are the offline output delayed by `latency - hop_length`.
  """

  sample_rate: int
  num_outputs: int
  hop_length: int
  latency: int | None

  def offline(self, x: np.ndarray) -> np.ndarray:
    """Whole signals: real `(B, T)` -> float32 `(B, S, T)`."""

  def init_stream(self, batch: int = 1) -> Any:
    """State of `batch` fresh streams."""

  def stream_step(self, state: Any, hop: np.ndarray) -> tuple[np.ndarray, Any]:
    """One hop `(B, hop_length)` in; `(out (B, S, hop_length), state)`."""

  def flush(self, state: Any, last: np.ndarray | None = None) -> np.ndarray:
    """Ends the streams: the last `(B, S, latency - hop_length + r)` samples.

    `last` is the signals' final `(B, r)` samples, `0 <= r < hop_length`,
    when they end inside a hop (None: `r = 0`).
    """

  def count_macs(self, seconds: float = 1.0) -> dict[str, Any]:
    """MACs of one offline pass on `seconds` of audio, batch 1.

    Returns:
      `{'total': int, 'per_module': {name: int}, 'source': function that
      counted, 'counted': what it counts}`.
    """


def _as_batch(x: Any) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(
      f'Expected signals (batch, samples), got shape {x.shape}; add a batch '
      'axis with x[None] for one signal.'
    )
  return x


class _Model:
  """What every implementation shares: metadata and the mono call.

  The implementations are dataclasses of what they are built from, so
  `dataclasses.replace(model, params=other)` is the same model with other
  parameters.

  Attributes:
    model_config: `config.model` as the model is built from it.
    params: the parameters as trained (before any `task.param_transform`).
    task: the `s4jax.training.tasks.Task` (model, batch layout, transform).
    config: the run config, when known (None otherwise).
    step: the training step of the parameters, when known.
  """

  model_config: Any
  params: Any
  task: tasks_lib.Task
  config: Any
  step: int | None
  sample_rate: int

  @property
  def name(self) -> str:
    """The model's `config.model.name`."""
    return str(self.model_config.get('name', type(self.task.model).__name__))

  @property
  def separates(self) -> bool:
    return self.task.name == 'separation'

  @property
  def variables(self) -> dict[str, Any]:
    """`{'params': task.param_transform(params)}`, what the model runs with.

    With a SEOFP-trained run these are the quantised weights.
    """
    if self._variables is None:
      self._variables = {
        'params': jax.jit(self.task.param_transform)(self.params)
      }
    return self._variables

  def _jit_offline(self) -> None:
    """`self._run(params, x)`: `task.apply` (with its transform) under jit."""
    task = self.task
    self._variables = None
    self._run = jax.jit(
      lambda p, x: task.estimate(task.apply(p, x, train=False))
    )

  def __call__(self, x: np.ndarray) -> np.ndarray:
    """One mono signal: real `(T,)` -> `(T,)` (enhancement) or `(S, T)`."""
    x = np.asarray(x)
    if x.ndim != 1:
      raise ValueError(f'Expected a mono signal (T,), got shape {x.shape}.')
    y = self.offline(x[None])[0]
    return y[0] if not self.separates else y

  def __repr__(self) -> str:
    return (
      f'{type(self).__name__}({self.name!r}, {self.task.name}, '
      f'{self.sample_rate} Hz, step {self.step})'
    )


@dataclasses.dataclass(eq=False, repr=False)
class TaskModel(_Model):
  """Any model following the task conventions; offline only.

  `offline` runs `task.apply` (with its parameter transform) under `jit`,
  one compilation per input shape.

  Attributes:
    num_outputs: 1 for enhancement, S for separation.
  """

  task: tasks_lib.Task
  model_config: Any
  params: Any
  num_outputs: int = 1
  config: Any = None
  step: int | None = None

  hop_length = 1
  latency = None

  def __post_init__(self):
    self.sample_rate = int(self.task.sample_rate)
    self._jit_offline()

  def offline(self, x: np.ndarray) -> np.ndarray:
    """Real `(B, T)` -> float32 `(B, S, T)`."""
    y = self._run(self.params, jnp.asarray(_as_batch(x), jnp.float32))
    y = np.asarray(y, np.float32)
    return y if y.ndim == 3 else y[:, None]

  def init_stream(self, batch: int = 1) -> Any:
    del batch
    raise StreamingUnsupportedError(
      f'Model {self.name!r} has no streaming mode.'
    )

  def stream_step(self, state: Any, hop: np.ndarray) -> tuple[np.ndarray, Any]:
    del state, hop
    return self.init_stream()

  def flush(self, state: Any, last: np.ndarray | None = None) -> np.ndarray:
    del state, last
    return self.init_stream()

  def count_macs(self, seconds: float = 1.0) -> dict[str, Any]:
    """Dense/Conv (and LayerNorm) MACs traced from shapes (`trace_macs`)."""
    from s4jax.models import summary  # pylint: disable=g-import-not-at-top

    samples = int(round(seconds * self.sample_rate))
    x = jax.ShapeDtypeStruct((1, samples), jnp.float32)
    counts = summary.trace_macs(
      self.task.model, {'params': self.params}, x, train=False
    )
    return _mac_report(
      counts,
      's4jax.models.summary.trace_macs',
      'Dense/Conv layers, and LayerNorm at 5 per element (fvcore rules)',
    )


# Spiking-S4 --------------------------------------------------------------------


@dataclasses.dataclass(eq=False, repr=False)
class SpikingS4Model(_Model):
  """Spiking-S4 enhancement: offline with cached S4 kernels, exact streaming.

  `offline` uses `spiking_s4.offline_enhancer` (the S4D kernels of the last
  few clip lengths are kept); the stream is `spiking_s4.init_stream /
  stream_step / stream_flush`, whose output equals the offline one at any
  length (a partial last hop given to `flush` is reflect-padded about the
  signal's last sample, as the offline STFT pads).

  Attributes:
    sample_rate: Hz (the run's `config.data.sample_rate`).
  """

  model_config: Any
  params: Any
  sample_rate: int = 16000
  task: tasks_lib.Task | None = None
  config: Any = None
  step: int | None = None

  num_outputs = 1

  def __post_init__(self):
    from s4jax.models import spiking_s4  # pylint: disable=g-import-not-at-top

    self._lib = spiking_s4
    self.sample_rate = int(self.sample_rate)
    if self.task is None:
      self.task = tasks_lib.Task(
        name='enhancement',
        model=spiking_s4.from_config(self.model_config),
        model_module=spiking_s4,
        loss_config=None,
        sample_rate=self.sample_rate,
      )
    self.module = self.task.model
    self._variables = None
    self._offline = collections.OrderedDict()

  @property
  def hop_length(self) -> int:
    return int(self.module.hop_length)

  @property
  def latency(self) -> int:
    """One hop more than the stream's delay (n_fft for n_fft = 4 hops)."""
    delay = stft_lib.stream_reference_delay(self.module.streaming_stft)
    return self.hop_length * (delay + 1)

  def offline(self, x: np.ndarray) -> np.ndarray:
    """Real `(B, T)` -> float32 `(B, 1, T)`."""
    x = _as_batch(x)
    length = x.shape[-1]
    run = self._offline.pop(length, None) or self._lib.offline_enhancer(
      self.variables, self.module, length
    )
    self._offline[length] = run
    while len(self._offline) > _OFFLINE_CACHE:
      self._offline.popitem(last=False)
    return np.asarray(run(x), np.float32)[:, None]

  def init_stream(self, batch: int = 1) -> Any:
    """`spiking_s4.StreamState` of `batch` streams."""
    return self._lib.init_stream(self.variables, self.module, batch)

  def stream_step(self, state: Any, hop: np.ndarray) -> tuple[np.ndarray, Any]:
    out, state = self._lib.stream_step(self.variables, state, jnp.asarray(hop))
    return np.asarray(out, np.float32)[:, None], state

  def flush(self, state: Any, last: np.ndarray | None = None) -> np.ndarray:
    tail, _ = self._lib.stream_flush(self.variables, state, last)
    return np.asarray(tail, np.float32)[:, None]

  def count_macs(self, seconds: float = 1.0) -> dict[str, Any]:
    """Analytic Dense + LayerNorm MACs (`s4jax.models.energy.count_macs`)."""
    from s4jax.models import energy  # pylint: disable=g-import-not-at-top

    counts = energy.count_macs(self.module, seconds, self.sample_rate)
    return _mac_report(
      {**counts['per_layer'], 'total': counts['per_clip']},
      's4jax.models.energy.count_macs',
      'Dense layers, and LayerNorm at 5 per element (fvcore rules)',
    )


# S4M ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BlockStreamState:
  """State of block-online streams (host arrays; see `S4MModel`).

  Attributes:
    inputs: float32 `(B, n)` input from position `inputs_start` on (the
      left context of the next block and what follows).
    inputs_start: position of `inputs[:, 0]` (negative: zeros before 0).
    received: input samples received so far.
    next_block: start of the next block to compute.
    outputs: float32 `(B, S, m)` computed, not yet returned output from
      position `outputs_start` on.
    outputs_start: position of `outputs[..., 0]`.
    returned: output samples returned so far (the leading zeros included).
    previous: the last window's output `(B, S, W)` (speaker order), or None.
  """

  inputs: np.ndarray
  inputs_start: int
  received: int
  next_block: int
  outputs: np.ndarray
  outputs_start: int
  returned: int
  previous: np.ndarray | None


@dataclasses.dataclass(eq=False, repr=False)
class S4MModel(_Model):
  """S4M separation; offline, or block-online streaming.

  Offline runs the whole signal. The stream buffers the input and, once a
  block of `block` samples and `context` samples of look-ahead have
  arrived, separates the window `[start - context, start + block +
  context)` and keeps its middle block, in the speaker order that best
  matches the previous window on the `2 context` samples they share. This is
  `chunked(model, x, chunk=block, context=context)` computed as the input
  arrives; the latency is `block + context` samples.

  Attributes:
    block_seconds: the stream's block, rounded to whole hops in `block`
      (samples).
    context_seconds: the stream's context on each side, rounded to whole
      hops in `context` (samples).
    hop_length: the encoder hop (`s4m.encoder_window`: a quarter of the
      encoder window).
  """

  model_config: Any
  params: Any
  block_seconds: float = 1.0
  context_seconds: float = 1.0
  task: tasks_lib.Task | None = None
  config: Any = None
  step: int | None = None

  def __post_init__(self):
    from s4jax.models import s4m  # pylint: disable=g-import-not-at-top

    self._lib = s4m
    if self.task is None:
      module = s4m.from_config(self.model_config)
      self.task = tasks_lib.Task(
        name='separation',
        model=module,
        model_module=s4m,
        loss_config=None,
        sample_rate=int(module.sample_rate),
      )
    self.module = self.task.model
    self.sample_rate = int(self.task.sample_rate)
    self.num_outputs = int(self.module.num_sources)
    _, self.hop_length = s4m.encoder_window(
      self.module.enc_kernel_ms, int(self.module.sample_rate)
    )
    hop, rate = self.hop_length, self.sample_rate
    self.block = max(hop, hop * round(self.block_seconds * rate / hop))
    self.context = hop * round(self.context_seconds * rate / hop)
    self.latency = self.block + self.context
    self._jit_offline()

  def offline(self, x: np.ndarray) -> np.ndarray:
    """Real `(B, T)` -> float32 `(B, S, T)`."""
    y = self._run(self.params, jnp.asarray(_as_batch(x), jnp.float32))
    return np.asarray(y, np.float32)

  def init_stream(self, batch: int = 1) -> BlockStreamState:
    return BlockStreamState(
      inputs=np.zeros((batch, self.context), np.float32),
      inputs_start=-self.context,
      received=0,
      next_block=0,
      outputs=np.zeros((batch, self.num_outputs, 0), np.float32),
      outputs_start=0,
      returned=0,
      previous=None,
    )

  def _next_block(self, state: BlockStreamState) -> BlockStreamState:
    """Separates the window around `state.next_block` (zeros past the end)."""
    block, context = self.block, self.context
    start = state.next_block
    a = start - context - state.inputs_start
    window = resample_lib.window(state.inputs, a, a + block + 2 * context)
    out = self.offline(window)  # (B, S, W)
    if state.previous is not None:
      out = np.stack(
        [
          o[match_order(p[:, block:], o[:, : 2 * context])]
          for p, o in zip(state.previous, out, strict=True)
        ]
      )
    keep = start + block - context - state.inputs_start
    return dataclasses.replace(
      state,
      inputs=state.inputs[:, keep:],
      inputs_start=state.inputs_start + keep,
      next_block=start + block,
      outputs=np.concatenate(
        [state.outputs, out[..., context : context + block]], axis=-1
      ),
      previous=out,
    )

  def _take(
    self, state: BlockStreamState, n: int
  ) -> tuple[np.ndarray, BlockStreamState]:
    """The next `n` output samples (zeros for input before position 0)."""
    first = state.returned - (self.latency - self.hop_length)
    out = resample_lib.window(
      state.outputs,
      first - state.outputs_start,
      first - state.outputs_start + n,
    )
    cut = max(first + n - state.outputs_start, 0)
    return out, dataclasses.replace(
      state,
      outputs=state.outputs[..., cut:],
      outputs_start=state.outputs_start + cut,
      returned=state.returned + n,
    )

  def stream_step(
    self, state: BlockStreamState, hop: np.ndarray
  ) -> tuple[np.ndarray, BlockStreamState]:
    hop = np.asarray(hop, np.float32)
    want = (state.inputs.shape[0], self.hop_length)
    if hop.shape != want:
      raise ValueError(
        f'stream_step expects a hop of shape {want} (batch, hop_length), '
        f'got {hop.shape}.'
      )
    state = dataclasses.replace(
      state,
      inputs=np.concatenate([state.inputs, hop], axis=-1),
      received=state.received + self.hop_length,
    )
    while state.received >= state.next_block + self.block + self.context:
      state = self._next_block(state)
    return self._take(state, self.hop_length)

  def flush(
    self, state: BlockStreamState, last: np.ndarray | None = None
  ) -> np.ndarray:
    r = 0 if last is None else np.shape(last)[-1]
    if r >= self.hop_length:
      raise ValueError(f'last must be a partial hop, got {np.shape(last)}.')
    if r:
      state = dataclasses.replace(
        state,
        inputs=np.concatenate([state.inputs, last], axis=-1, dtype=np.float32),
        received=state.received + r,
      )
    while state.next_block < state.received:
      state = self._next_block(state)
    tail, _ = self._take(state, self.latency - self.hop_length + r)
    return tail

  def count_macs(self, seconds: float = 1.0) -> dict[str, Any]:
    """Conv and dense MACs (`s4jax.models.s4m.count_macs`)."""
    return _mac_report(
      self._lib.count_macs(self.model_config, seconds=seconds),
      's4jax.models.s4m.count_macs',
      'conv and dense layers (FFT convolutions and S4 kernels not counted)',
    )


def _mac_report(counts: dict, source: str, counted: str) -> dict[str, Any]:
  """`count_macs`' result from `{name: MACs, 'total': MACs}` counts."""
  per_module = {k: int(v) for k, v in counts.items() if k != 'total'}
  return {
    'total': int(counts['total']),
    'per_module': per_module,
    'source': source,
    'counted': counted,
  }


# Building ------------------------------------------------------------------------

_IMPLEMENTATIONS: dict[str, type] = {
  's4jax.models.spiking_s4': SpikingS4Model,
  's4jax.models.s4m': S4MModel,
}


def from_run_config(
  config: Any,
  params: Any,
  *,
  step: int | None = None,
  task: tasks_lib.Task | None = None,
) -> SpeechModel:
  """The model of a training run's `config` with `params`.

  Args:
    config: the run config (`task`, `model`, `data`, `train`, ...).
    params: its parameters as trained.
    step: the training step they come from.
    task: `tasks.create_task(config)`, if already built.

  Returns:
    `SpikingS4Model`, `S4MModel` or, for other models, `TaskModel`.
  """
  task = task or tasks_lib.create_task(config)
  model_config = tasks_lib.model_config_for(config)
  kind = _IMPLEMENTATIONS.get(task.model_module.__name__)
  common = dict(task=task, config=config, step=step)
  if kind is SpikingS4Model and task.name == 'enhancement':
    return SpikingS4Model(
      model_config, params, sample_rate=task.sample_rate, **common
    )
  if kind is S4MModel and task.name == 'separation':
    return S4MModel(model_config, params, **common)
  separates = task.name == 'separation'
  return TaskModel(
    task,
    model_config,
    params,
    num_outputs=int(config.data.num_sources) if separates else 1,
    config=config,
    step=step,
  )


# Speaker order -------------------------------------------------------------------


def match_order(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
  """Order of `current` `(S, n)` sources best matching `reference` `(S, n)`.

  Both are the same stretch of audio seen by two overlapping windows; see
  `s4jax.audio.permutation.match_order`. With one source, or nothing shared
  (`n = 0`), the order is kept.
  """
  if current.shape[0] == 1 or not current.shape[-1]:
    return np.arange(current.shape[0])
  return permutation.match_order(reference, current)


# Signals of any length -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Piece:
  """Consecutive output of a long signal, with `margin` samples each side.

  Attributes:
    start: model-rate position of the first sample the piece is for.
    audio: float32 `(S, length + 2 margin)`: output for `[start - margin,
      start + length + margin)` (outside the signal: what the model gave,
      or zeros).
    margin: samples kept beyond each end, for a resampler to use.
  """

  start: int
  audio: np.ndarray
  margin: int

  @property
  def length(self) -> int:
    return self.audio.shape[-1] - 2 * self.margin

  def middle(self) -> np.ndarray:
    """`(S, length)`: the samples of `[start, start + length)`."""
    return self.audio[:, self.margin : self.margin + self.length]


def iter_chunks(
  model: SpeechModel,
  read: Reader,
  num_samples: int,
  *,
  chunk: int,
  context: int,
  margin: int = 0,
) -> Iterator[Piece]:
  """`model.offline` over windows; constant memory (see the module doc).

  Args:
    model: the model.
    read: `read(a, b)` float32 `(b - a,)` input samples `[a, b)` at the
      model rate, zeros outside `[0, num_samples)`.
    num_samples: input length.
    chunk: samples each window keeps.
    context: samples of extra audio on each side of a window.
    margin: samples kept beyond each end of a piece (at most `context`).

  Yields:
    `Piece`s of `chunk` samples starting at 0, `chunk`, ... (every window
    has `chunk + 2 context` samples: one compilation), or, when the signal
    fits in one window, one piece of `num_samples` from `model.offline` on
    the signal alone (`margin` zeros each side).
  """
  if chunk <= 0 or context < 0 or margin < 0:
    raise ValueError(
      f'Need chunk > 0, context >= 0 and margin >= 0; got {chunk}, '
      f'{context}, {margin}.'
    )
  if num_samples <= chunk + 2 * context:
    out = model.offline(np.asarray(read(0, num_samples), np.float32)[None])
    yield Piece(0, np.pad(out[0], ((0, 0), (margin, margin))), margin)
    return
  q = min(margin, context)
  previous = None
  for start in range(0, num_samples, chunk):
    window = np.asarray(read(start - context, start + chunk + context))
    out = model.offline(window.astype(np.float32)[None])[0]  # (S, W)
    if previous is not None:
      # The speaker order: match the stretch both windows saw.
      out = out[match_order(previous[:, chunk:], out[:, : 2 * context])]
    previous = out
    yield Piece(start, out[:, context - q : context + chunk + q], q)


def iter_stream(
  model: SpeechModel,
  read: Reader,
  num_samples: int,
  *,
  chunk: int,
  margin: int = 0,
) -> Iterator[Piece]:
  """The streaming mode fed `chunk` samples at a time, re-aligned.

  Arguments as in `iter_chunks`, for a `model` that streams; `chunk` (a
  multiple of `model.hop_length`) is the samples read at a time. The stream
  ends with the signal: its whole hops are streamed, and a last partial hop
  is given to `model.flush` (no zeros are streamed after `num_samples`).

  Yields:
    `Piece`s of `chunk` samples starting at 0, `chunk`, ...: the model's
    output at the same positions as the input (the stream's delay removed).
  """
  hop = model.hop_length
  if chunk <= 0 or chunk % hop:
    raise ValueError(f'chunk {chunk} must be a positive multiple of {hop}.')
  state = model.init_stream(1)
  produced = hop - model.latency  # Position of the next stream output.
  buffer = np.zeros((model.num_outputs, margin), np.float32)
  buffer_start = -margin
  target = 0  # Start of the next piece.

  def add(out, buffer, produced):
    # The stream's delay: outputs for positions before 0 are dropped.
    skip = min(max(-produced, 0), out.shape[-1])
    buffer = np.concatenate([buffer, out[:, skip:]], axis=-1)
    return buffer, produced + out.shape[-1]

  last = None  # A partial last hop, for flush.
  for start in range(0, num_samples, chunk):
    x = np.asarray(read(start, min(start + chunk, num_samples)), np.float32)
    whole = len(x) - len(x) % hop
    if whole < len(x):
      last = x[None, whole:]
    outs = [np.zeros((model.num_outputs, 0), np.float32)]
    for h in range(0, whole, hop):
      out, state = model.stream_step(state, x[None, h : h + hop])
      outs.append(out[0])
    buffer, produced = add(np.concatenate(outs, axis=-1), buffer, produced)
    while buffer_start + buffer.shape[-1] >= target + chunk + margin:
      a = target - margin - buffer_start
      yield Piece(target, buffer[:, a : a + chunk + 2 * margin], margin)
      cut = max(target + chunk - margin - buffer_start, 0)
      buffer, buffer_start = buffer[:, cut:], buffer_start + cut
      target += chunk
  buffer, produced = add(model.flush(state, last)[0], buffer, produced)
  while target < num_samples:
    a = target - margin - buffer_start
    audio = resample_lib.window(buffer, a, a + chunk + 2 * margin)
    yield Piece(target, audio, margin)
    target += chunk


def chunked(
  model: SpeechModel, x: np.ndarray, *, chunk: int, context: int
) -> np.ndarray:
  """`iter_chunks` on a whole signal: real `(T,)` -> float32 `(S, T)`."""
  x = np.asarray(x)
  pieces = iter_chunks(
    model, resample_lib.read_array(x), x.shape[-1], chunk=chunk, context=context
  )
  return np.concatenate([p.middle() for p in pieces], axis=-1)[:, : len(x)]


def streamed(model: SpeechModel, x: np.ndarray) -> np.ndarray:
  """`x` real `(T,)` hop by hop through the stream -> float32 `(S, T)`.

  The output is aligned with the input (the stream's delay removed). The
  whole hops are streamed and a last partial hop is given to `model.flush`,
  so the stream sees the signal and nothing after it: for Spiking-S4 the
  result equals `model.offline(x)` at any length, to float32 rounding (the
  recurrence against the FFT convolution).
  """
  x = np.asarray(x, np.float32)
  if not len(x):
    return np.zeros((model.num_outputs, 0), np.float32)
  whole = len(x) + -len(x) % model.hop_length  # One chunk of whole hops.
  pieces = iter_stream(model, resample_lib.read_array(x), len(x), chunk=whole)
  return np.concatenate([p.middle() for p in pieces], axis=-1)[:, : len(x)]


def iter_process(
  model: SpeechModel,
  read: Reader,
  num_samples: int,
  sample_rate: int,
  *,
  mode: str = 'chunked',
  chunk_seconds: float = 8.0,
  context_seconds: float = 1.0,
  margin_seconds: float = 0.05,
) -> Iterator[np.ndarray]:
  """A signal at any rate through the model, piece by piece.

  The input is resampled to `model.sample_rate` and each output piece back
  to `sample_rate`, stretch by stretch (`resample.Rates`): windows start on
  the two rates' common grid, and each piece keeps `margin_seconds` of output
  beyond its ends (at most the context) for the resampler's filter.

  Args:
    model: the model.
    read: `read(a, b)` float32 `(b - a,)` samples `[a, b)` at
      `sample_rate`, zeros outside `[0, num_samples)`.
    num_samples: input length.
    sample_rate: Hz of the input and the output.
    mode: 'chunked' (`iter_chunks`: windows of `chunk_seconds` with
      `context_seconds` each side, a signal that fits in one window whole),
      'stream' (`iter_stream`, fed `chunk_seconds` at a time, rounded to
      whole hops; a signal shorter than that is streamed as whole hops) or
      'offline' (the whole signal in one call: memory grows with it).
    chunk_seconds: window or read length.
    context_seconds: extra audio each side of a window ('chunked').
    margin_seconds: output kept beyond each piece for resampling back.

  Yields:
    Float32 `(S, n)` consecutive pieces at `sample_rate`, `num_samples` in
    all.
  """
  if mode not in MODES:
    raise ValueError(f'Unknown mode {mode!r}; choose one of {MODES}.')
  if chunk_seconds <= 0 or context_seconds < 0:
    raise ValueError('chunk_seconds must be > 0, context_seconds >= 0.')
  rates = resample_lib.Rates(sample_rate, model.sample_rate)
  n = rates.to_model(num_samples)

  def read_model(a: int, b: int) -> np.ndarray:
    return rates.convert(read, a, b, rates.signal_rate)

  if mode == 'stream':
    hop = model.hop_length
    step = math.lcm(rates.unit_model, hop)
    chunk = min(rates.grid(chunk_seconds, hop), step * -(-n // step))
    pieces = iter_stream(
      model, read_model, n, chunk=chunk, margin=rates.grid(margin_seconds)
    )
  else:
    chunk, context = n, 0
    if mode == 'chunked':
      chunk = rates.grid(chunk_seconds)
      context = rates.grid(context_seconds) if context_seconds > 0 else 0
    margin = min(context, rates.grid(margin_seconds))
    pieces = iter_chunks(
      model, read_model, n, chunk=chunk, context=context, margin=margin
    )
  done = 0
  for piece in pieces:
    first = piece.start // rates.unit_model * rates.unit_signal
    last = -(
      -(piece.start + piece.length) * rates.unit_signal // rates.unit_model
    )
    offset = piece.start - piece.margin
    y = rates.convert(
      lambda a, b, s=piece.audio, o=offset: resample_lib.window(
        s, a - o, b - o
      ),
      first,
      last,
      rates.model_rate,
    )
    y = y[..., : max(num_samples - done, 0)]
    done += y.shape[-1]
    if y.shape[-1]:
      yield y


def process(
  model: SpeechModel,
  x: np.ndarray,
  sample_rate: int,
  *,
  mode: str = 'chunked',
  chunk_seconds: float = 8.0,
  context_seconds: float = 1.0,
) -> np.ndarray:
  """`iter_process` on a whole signal: real `(T,)` -> float32 `(S, T)`."""
  x = np.asarray(x, np.float32)
  pieces = iter_process(
    model,
    resample_lib.read_array(x),
    len(x),
    sample_rate,
    mode=mode,
    chunk_seconds=chunk_seconds,
    context_seconds=context_seconds,
  )
  return np.concatenate(list(pieces), axis=-1)
