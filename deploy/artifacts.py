"""Exportable forms of trained models, written as checked artifacts.

A form is a pure function of named tensors plus its metadata:

* `stream` (Spiking-S4 enhancers): `hop (B, hop_length)` and the state
  tensors `state_<name>` in; `out (B, hop_length)` and `next_<name>` out
  (`s4jax.models.portable.SpikingS4Stream`).
* `offline` (both models): `noisy (B, T)` of a fixed length in;
  `enhanced (B, T)` (enhancement) or `sources (B, S, T)` (separation) out.

`write` exports a form in each requested format into a new folder (built
under a temporary name and renamed when complete, so a failed export leaves
nothing), runs every artifact against the JAX function it came from, and
refuses to finish when one differs by more than `TOLERANCE` of the signal
peak. `metadata.json` beside the artifacts records the sample rate, hop,
window, latency, the state tensors, the model, its step and parameter count,
the s4jax version, the checks and each file's size and sha256; the ONNX file
carries the same metadata as model properties.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deploy import formats, quant, runners
from harness import export_pretrained
from s4jax import inference
from s4jax.models import portable, summary
from s4jax.training import tasks as tasks_lib

FORMS = ('stream', 'offline')
TOLERANCE = 1e-4  # Max abs error allowed, relative to the output peak.
ExportError = formats.ExportError


@dataclasses.dataclass(frozen=True)
class Tensor:
  """A named graph input or output: shape after the batch axis, dtype."""

  name: str
  shape: tuple[int, ...]
  dtype: str = 'float32'

  def describe(self, batch: str | int) -> dict[str, Any]:
    return {
      'name': self.name,
      'shape': [batch, *self.shape],
      'dtype': self.dtype,
    }


@dataclasses.dataclass(frozen=True)
class Form:
  """One exportable function of a trained model.

  Attributes:
    name: file stem, e.g. 'spiking_s4_stream'.
    fn: `fn(*inputs) -> tuple of outputs`, parameters closed over; the
      function exported to StableHLO and the JAX reference of every check.
    portable_fn: the same function without complex dtypes or FFTs (what
      ONNX and LiteRT can express); `fn` when it already is.
    inputs, outputs: the named tensors, in order.
    metadata: JSON-able description (sample rate, latency, ...).
    portable_batch: whether `portable_fn` takes a symbolic batch (the
      offline forms are traced at batch 1, `portable.trace_offline`).
    lite_fn: what LiteRT exports, when not `portable_fn` (the LiteRT
      converter does not fold constant gathers: the stream keeps its DFT
      matrices as constants there).
  """

  name: str
  fn: Callable[..., tuple]
  portable_fn: Callable[..., tuple]
  inputs: tuple[Tensor, ...]
  outputs: tuple[Tensor, ...]
  metadata: dict[str, Any]
  portable_batch: bool = True
  lite_fn: Callable[..., tuple] | None = None

  def symbolic(self, fmt: str, symbolic_batch: bool) -> bool:
    """Whether format `fmt` gets a symbolic batch axis."""
    if fmt == 'tflite':
      return False
    if fmt == 'onnx':
      return symbolic_batch and self.portable_batch
    return symbolic_batch

  @property
  def input_names(self) -> list[str]:
    return [t.name for t in self.inputs]

  @property
  def output_names(self) -> list[str]:
    return [t.name for t in self.outputs]

  def specs(self, symbolic_batch: bool) -> list[jax.ShapeDtypeStruct]:
    return formats.arg_specs(
      [(t.shape, t.dtype) for t in self.inputs], symbolic_batch
    )


def s4jax_version() -> str:
  """The installed s4jax version ('unknown' when not installed)."""
  try:
    return importlib_metadata.version('s4jax')
  except importlib_metadata.PackageNotFoundError:
    return 'unknown'


def _model_metadata(model, source: str) -> dict[str, Any]:
  """What every form records about the model it came from."""
  config = model.config
  return {
    'model': str(config.model.name),
    'task': model.task.name,
    'source': source,
    'step': int(model.step),
    'sample_rate': int(model.sample_rate),
    'param_count': summary.count_params(model.params),
    's4jax_version': s4jax_version(),
  }


def _seofp(model, bits: int | None):
  """`(params, encoded or None, metadata)` with SEOFP weights when `bits`.

  The params returned are the quantised values (what the exported graph
  decodes), so the JAX reference of every check is the quantised model.
  """
  if not bits:
    return model.params, None, None
  rules = export_pretrained.seofp_rules(model.config, bits)
  encoded = quant.encode_params(model.params, rules)
  params = jax.device_get(jax.jit(lambda: quant.decode_params(encoded))())
  stored, full = quant.stored_bytes(encoded)
  trained = bool(model.config.get('quant', {}).get('enabled', False))
  meta = {
    'scheme': 'seofp',
    'exponent_bits': bits,
    'parameter_bytes': stored,
    'parameter_bytes_float32': full,
    'trained_with_quantisation': trained,
  }
  return params, encoded, meta


def stream_form(model, source: str, seofp_bits: int | None = None) -> Form:
  """The streaming Spiking-S4 enhancer of a loaded model.

  Args:
    model: a loaded `s4jax.inference.SpeechModel`.
    source: where it came from, for the metadata.
    seofp_bits: store the Dense weights SEOFP-quantised at this many
      exponent bits (int8 codes decoded in the graph, `deploy.quant`).

  Raises:
    ExportError: the model has no streaming form (a separator, S4M).
  """
  if not isinstance(model, inference.SpikingS4Model):
    raise ExportError(
      f'Model {model.config.model.name!r} has no streaming form; only '
      'Spiking-S4 enhancers stream. Export it with --form=offline.'
    )
  model_config = tasks_lib.model_config_for(model.config)
  params, encoded, quant_meta = _seofp(model, seofp_bits)
  stream = portable.SpikingS4Stream({'params': params}, model_config)
  names = stream.state_names

  def step(compact_dft: bool):
    def fn(hop, *state):
      variables = None
      if encoded is not None:  # Decoded in the graph from int8 codes.
        variables = {'params': quant.decode_params(encoded)}
      state = dict(zip(names, state, strict=True))
      out, new = stream.step(hop, state, variables, compact_dft)
      return (out, *(new[n] for n in names))

    return fn

  hop = stream.hop_length
  states = [
    Tensor(f'state_{s.name}', s.shape, s.dtype) for s in stream.state_specs
  ]
  nexts = [
    Tensor(f'next_{s.name}', s.shape, s.dtype) for s in stream.state_specs
  ]
  mc = model.config.model
  meta = _model_metadata(model, source)
  meta.update(
    form='stream',
    quantisation=quant_meta,
    hop_length=hop,
    n_fft=stream.n_fft,
    win_length=int(mc.get('win_length') or stream.n_fft),
    window=str(mc.get('window', 'rect')),
    delay_hops=stream.delay_hops,
    latency_samples=stream.latency_samples,
    latency_ms=1000.0 * stream.latency_samples / model.sample_rate,
    state=[
      {
        'input': s.name,
        'output': n.name,
        'shape': list(s.shape),
        'dtype': s.dtype,
      }
      for s, n in zip(states, nexts, strict=True)
    ],
    usage=(
      'Start from all-zero state tensors. Per hop, feed `hop` and every '
      '`state_<name>`; read `out` and feed each `next_<name>` back as '
      f'`state_<name>`. Output hop m is input hop m - {stream.delay_hops} '
      f'enhanced (zeros before); feed {stream.delay_hops} hops of zeros '
      'after the signal to read its end.'
    ),
  )
  return Form(
    name='spiking_s4_stream' + (f'_seofp{seofp_bits}' if encoded else ''),
    # The ONNX file stores small tables for the DFT matrices, which
    # onnxruntime folds when the session loads; XLA and LiteRT get the
    # matrices as constants (LiteRT would gather them at every hop).
    fn=step(compact_dft=False),
    portable_fn=step(compact_dft=True),
    lite_fn=step(compact_dft=False),
    inputs=(Tensor('hop', (hop,)), *states),
    outputs=(Tensor('out', (hop,)), *nexts),
    metadata=meta,
  )


def offline_form(model, source: str, seconds: float) -> Form:
  """The whole-clip form of a loaded model for clips of `seconds`.

  Args:
    model: a loaded `s4jax.inference.SpeechModel` (enhancer or
      separator).
    source: where it came from, for the metadata.
    seconds: the clip length the exported function takes.

  Raises:
    ExportError: a length below one STFT window or not positive.
  """
  rate = int(model.sample_rate)
  length = int(round(seconds * rate))
  if length < 1024:
    raise ExportError(
      f'--seconds={seconds:g} is {length} samples; export clips of at '
      f'least 1024 samples ({1024 / rate:.3g} s at {rate} Hz).'
    )
  task, params = model.task, model.params

  def fn(noisy):
    return (task.estimate(task.apply(params, noisy, train=False)),)

  model_config = tasks_lib.model_config_for(model.config)
  variables = {'params': params}
  if isinstance(model, inference.SpikingS4Model):
    run = portable.spiking_s4_offline(variables, model_config, length)
  elif isinstance(model, inference.S4MModel):
    run = portable.s4m_offline(variables, model_config)
  else:
    raise ExportError(
      f'No offline export for model {model.config.model.name!r}; s4jax '
      'exports spiking_s4 and s4m.'
    )
  spec = formats.arg_specs([((length,), 'float32')], symbolic_batch=False)
  portable_fn = portable.trace_offline(lambda x: (run(x),), spec)

  if model.separates:
    out = Tensor('sources', (model.num_outputs, length))
  else:
    out = Tensor('enhanced', (length,))
  meta = _model_metadata(model, source)
  meta.update(
    form='offline',
    num_samples=length,
    seconds=length / rate,
    latency_samples=length,
    usage=(
      f'Feed `noisy` (batch, {length}) float32 at {rate} Hz; read '
      f'`{out.name}`. Zero-pad shorter clips; cut longer ones.'
    ),
  )
  return Form(
    name=f'{meta["model"]}_offline',
    fn=fn,
    portable_fn=portable_fn,
    inputs=(Tensor('noisy', (length,)),),
    outputs=(out,),
    metadata=meta,
    portable_batch=False,
  )


# Writing and checking --------------------------------------------------------


def check_formats(fmts: tuple[str, ...]) -> None:
  """Refuses an empty or unknown format list."""
  unknown = sorted(set(fmts) - set(formats.FORMATS))
  if unknown or not fmts:
    raise ExportError(
      f'Unknown or no formats {unknown or list(fmts)}; choose from '
      f'{", ".join(formats.FORMATS)}.'
    )


def build(form: Form, fmt: str, symbolic_batch: bool) -> bytes:
  """The artifact bytes of `form` in format `fmt` (one of `formats.FORMATS`)."""
  symbolic = form.symbolic(fmt, symbolic_batch)
  if fmt == 'stablehlo':
    return formats.to_stablehlo(form.fn, form.specs(symbolic))
  if fmt == 'onnx':
    props = {'s4jax': json.dumps(form.metadata, sort_keys=True)}
    return formats.to_onnx(
      form.portable_fn,
      form.specs(symbolic),
      form.input_names,
      form.output_names,
      props,
    )
  if fmt == 'tflite':
    return formats.to_tflite(
      form.lite_fn or form.portable_fn,
      form.specs(False),
      form.input_names,
      form.output_names,
    )
  raise ExportError(f'Unknown format {fmt!r}; choose from {formats.FORMATS}.')


def check_output_dir(out_dir: str) -> None:
  """Refuses an existing path: an export never overwrites anything."""
  if os.path.lexists(out_dir):
    raise ExportError(
      f'{out_dir} already exists; exports never overwrite. Choose a new '
      '--output_dir or remove the old one.'
    )
  parent = os.path.dirname(os.path.abspath(out_dir))
  if not os.path.isdir(parent):
    raise ExportError(f'The parent folder of {out_dir} does not exist.')


def write(
  form: Form,
  out_dir: str,
  fmts: tuple[str, ...],
  check: Callable[[str, bytes], dict[str, Any]] | None = None,
  symbolic_batch: bool = True,
) -> dict[str, Any]:
  """Exports `form` in `fmts` into the new folder `out_dir`.

  Args:
    form: what to export.
    out_dir: a path that must not exist yet.
    fmts: formats from `formats.FORMATS`.
    check: `check(fmt, data) -> report` run on each artifact before anything
      is written; it raises `ExportError` when the artifact is wrong.
    symbolic_batch: a symbolic batch axis in StableHLO and ONNX (LiteRT is
      always batch 1).

  Returns:
    The metadata written to `metadata.json`.
  """
  check_output_dir(out_dir)
  check_formats(fmts)
  artifacts, meta = {}, dict(form.metadata)
  meta['files'] = {}
  for fmt in fmts:
    data = build(form, fmt, symbolic_batch)
    report = check(fmt, data) if check else {}
    batch = formats.BATCH if form.symbolic(fmt, symbolic_batch) else 1
    file_name = form.name + formats.SUFFIX[fmt]
    artifacts[file_name] = data
    meta['files'][fmt] = {
      'file': file_name,
      'bytes': len(data),
      'sha256': hashlib.sha256(data).hexdigest(),
      'inputs': [t.describe(batch) for t in form.inputs],
      'outputs': [t.describe(batch) for t in form.outputs],
      'check': report,
    }
  text = json.dumps(meta, indent=2, sort_keys=True) + '\n'
  artifacts['metadata.json'] = text.encode()
  export_pretrained.write_folder(out_dir, artifacts)
  return meta


def test_signal(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
  """A deterministic check signal `(1, T)`: a voiced-like tone plus noise.

  A 140 Hz pulse train with 30 harmonics, amplitude-modulated at 4 Hz like
  syllables, in white noise at about 5 dB SNR; peak 0.5. It makes the
  spiking layers fire, so the checks cover the spike thresholds.
  """
  rng = np.random.default_rng(seed)
  t = np.arange(int(round(seconds * sample_rate))) / sample_rate
  voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 31))
  voiced *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
  noise = rng.standard_normal(t.shape) * np.std(voiced) * 10 ** (-5 / 20)
  x = voiced + noise
  return (0.5 * x / np.max(np.abs(x)))[None].astype(np.float32)


def zero_state(form: Form, batch: int) -> list[np.ndarray]:
  """The all-zero state tensors of a stream form, in input order."""
  return [np.zeros((batch, *t.shape), t.dtype) for t in form.inputs[1:]]


def stream_reference(form: Form, signal: np.ndarray) -> np.ndarray:
  """`form.fn` run hop by hop (one `lax.scan` under jit) over `(B, T)`."""
  hop = form.inputs[0].shape[0]
  b, t = signal.shape
  hops = jnp.asarray(signal[:, : t // hop * hop]).reshape(b, -1, hop)

  @jax.jit
  def scan(hops, state):
    def body(state, x):
      out, *state = form.fn(x, *state)
      return tuple(state), out

    _, outs = jax.lax.scan(body, tuple(state), jnp.swapaxes(hops, 0, 1))
    return jnp.swapaxes(outs, 0, 1).reshape(b, -1)

  return np.asarray(scan(hops, zero_state(form, b)))


def run_stream(run: Callable, form: Form, signal: np.ndarray) -> np.ndarray:
  """Feeds `signal` `(B, T)` hop by hop to `run(feeds) -> outputs`."""
  hop = form.inputs[0].shape[0]
  names = form.input_names
  state = zero_state(form, signal.shape[0])
  outs = []
  for m in range(signal.shape[-1] // hop):
    args = [signal[:, m * hop : (m + 1) * hop], *state]
    feeds = dict(zip(names, args, strict=True))
    res = run(feeds)
    outs.append(np.asarray(res[form.output_names[0]]))
    state = [np.asarray(res[n]) for n in form.output_names[1:]]
  return np.concatenate(outs, axis=-1)


def compare(fmt: str, got: np.ndarray, want: np.ndarray, what: str) -> dict:
  """Report of `got` against the JAX `want`; raises beyond `TOLERANCE`."""
  err = float(np.max(np.abs(got - want)))
  peak = float(np.max(np.abs(want)))
  report = {
    'compared': what,
    'max_abs_error': err,
    'peak': peak,
    'relative_error': err / peak if peak else err,
    'tolerance': TOLERANCE,
  }
  if not np.all(np.isfinite(got)) or report['relative_error'] > TOLERANCE:
    raise ExportError(
      f'The {fmt} artifact differs from the JAX model: max abs error '
      f'{err:.3g} against a peak of {peak:.3g} ({what}); allowed '
      f'{TOLERANCE:g} of the peak. Nothing was written.'
    )
  return report


def stream_check(form: Form, seconds: float = 10.0, threads: int = 1):
  """A `write` check: each artifact hop by hop against `stream_reference`."""
  signal = test_signal(seconds, form.metadata['sample_rate'])
  want = stream_reference(form, signal)

  def check(fmt: str, data: bytes) -> dict[str, Any]:
    r = runners.runner(fmt, data, form.input_names, form.output_names, threads)
    got = run_stream(r.run, form, signal)
    what = f'{seconds:g} s test signal, hop by hop, batch 1'
    return compare(fmt, got, want, what)

  return check


def offline_check(form: Form, threads: int = 1):
  """A `write` check: each artifact on the test signal against `form.fn`."""
  length = form.inputs[0].shape[0]
  signal = test_signal(
    length / form.metadata['sample_rate'], form.metadata['sample_rate']
  )
  (want,) = jax.jit(form.fn)(jnp.asarray(signal))
  want = np.asarray(want)

  def check(fmt: str, data: bytes) -> dict[str, Any]:
    r = runners.runner(fmt, data, form.input_names, form.output_names, threads)
    got = r.run({'noisy': signal})[form.output_names[0]]
    what = f'{length} samples of the test signal, batch 1'
    return compare(fmt, np.asarray(got), want, what)

  return check


def export(
  model,
  out_dir: str,
  *,
  form: str = 'stream',
  fmts: tuple[str, ...] = formats.FORMATS,
  seconds: float = 4.0,
  seofp_bits: int | None = None,
  check_seconds: float = 10.0,
  source: str = 'python',
) -> dict[str, Any]:
  """Exports a loaded model in one call (what `launch/export.py` does).

  Example::

    import s4jax
    from deploy import artifacts
    meta = artifacts.export(s4jax.from_pretrained('spiking_s4'), 'out/ss4')

  Args:
    model: a loaded `s4jax.inference.SpeechModel`
      (`harness.inference.load_model(...)` or `s4jax.from_pretrained(name)`).
    out_dir: a new folder.
    form: 'stream' or 'offline'.
    fmts: formats from `formats.FORMATS`.
    seconds: clip length of the offline form.
    seofp_bits: SEOFP weights (stream form).
    check_seconds: length of the stream check signal.
    source: recorded in the metadata.

  Returns:
    The metadata written to `out_dir/metadata.json`.
  """
  check_output_dir(out_dir)
  check_formats(fmts)
  if form == 'stream':
    f = stream_form(model, source, seofp_bits)
    check = stream_check(f, check_seconds)
  elif form == 'offline':
    if seofp_bits:
      raise ExportError('SEOFP weights are exported with the stream form only.')
    f = offline_form(model, source, seconds)
    check = offline_check(f)
  else:
    raise ExportError(f'Unknown form {form!r}; choose from {FORMS}.')
  return write(f, out_dir, fmts, check=check)
