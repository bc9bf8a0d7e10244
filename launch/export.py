r"""Exports a trained model to files that run without JAX.

  python launch/export.py --pretrained=spiking_s4 --output_dir=export/ss4
  python launch/export.py --workdir=runs/ss4 --form=offline --seconds=4 \
      --formats=stablehlo,onnx --output_dir=export/ss4_offline

Forms (`--form`):
  stream   the streaming Spiking-S4 enhancer: one hop of samples and the
           state tensors in, one hop and the next state out (no state
           hidden in the runtime); STFT included, no complex numbers.
  offline  a whole clip of `--seconds` (Spiking-S4 enhancer or S4M
           separator).

Formats (`--formats`, comma-separated): stablehlo (`jax.export`, symbolic
batch), onnx (`jax2onnx`, symbolic batch, run with onnxruntime) and tflite
(LiteRT, batch 1, run with ai-edge-litert). Every artifact is run against
the JAX model before anything is written (the stream hop by hop over a
`--check_seconds` test signal) and refused if it differs by more than
1e-4 of the signal peak. `--output_dir` must not exist; it receives the
artifacts and `metadata.json` (sample rate, hop, window, latency, state
names and shapes, model, step, parameter count, s4jax version, file sizes
and the checks). `examples/stream_enhance.py` runs the streaming ONNX or
LiteRT file on a WAV file with no JAX installed.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

from absl import app, flags

from harness import runtime
from launch import model_flags

flags.adopt_module_key_flags(model_flags)
flags.set_default(model_flags.STEP, 'best')

_FORM = flags.DEFINE_enum(
  'form',
  'stream',
  ['stream', 'offline'],
  'stream: hop in, hop out, explicit state (Spiking-S4 only); offline: a '
  'whole clip of --seconds.',
)
_FORMATS = flags.DEFINE_list(
  'formats',
  ['stablehlo', 'onnx', 'tflite'],
  'Formats to write: stablehlo, onnx, tflite.',
)
_SECONDS = flags.DEFINE_float(
  'seconds', 4.0, 'With --form=offline: the clip length the file takes.'
)
_CHECK_SECONDS = flags.DEFINE_float(
  'check_seconds',
  10.0,
  'Length of the test signal each streaming artifact is checked on.',
)
_SEOFP_BITS = flags.DEFINE_integer(
  'seofp_bits',
  None,
  'With --form=stream: store the Dense weights SEOFP-quantised (sign + '
  "this many exponent bits, 1-8, the run's config.quant rules) as int8 "
  'codes that the graph decodes exactly; the checks then compare with the '
  'quantised JAX model.',
)
_OUTPUT_DIR = flags.DEFINE_string(
  'output_dir',
  None,
  'Required. New folder for the artifacts and metadata.json (an existing '
  'path is refused).',
)
flags.mark_flags_as_required(['output_dir'])


def main(argv):
  """Program entry point (after flag parsing)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  runtime.quiet_library_logs()
  with runtime.errors_as_messages():
    from deploy import artifacts  # pylint: disable=g-import-not-at-top

    artifacts.check_output_dir(_OUTPUT_DIR.value)
    fmts = tuple(f.strip() for f in _FORMATS.value if f.strip())
    artifacts.check_formats(fmts)
    if _SEOFP_BITS.value and _FORM.value != 'stream':
      raise ValueError('--seofp_bits applies to --form=stream only.')
    model, source = model_flags.load(), model_flags.source()
    meta = artifacts.export(
      model,
      _OUTPUT_DIR.value,
      form=_FORM.value,
      fmts=fmts,
      seconds=_SECONDS.value,
      seofp_bits=_SEOFP_BITS.value,
      check_seconds=_CHECK_SECONDS.value,
      source=source,
    )
  print(
    f'Exported {meta["model"]} ({meta["form"]}, step {meta["step"]}, '
    f'{meta["param_count"]:,} parameters) to {_OUTPUT_DIR.value}:'
  )
  for info in meta['files'].values():
    rel = info['check'].get('relative_error')
    print(
      f'  {info["file"]:<34}{info["bytes"]:>12,} bytes   max error '
      f'{rel:.2g} of peak'
    )
  if meta.get('quantisation'):
    q = meta['quantisation']
    print(
      f'SEOFP {q["exponent_bits"]}-bit weights: parameters stored in '
      f'{q["parameter_bytes"]:,} bytes (float32: '
      f'{q["parameter_bytes_float32"]:,}).'
    )
  if 'latency_ms' in meta:
    print(
      f'Latency {meta["latency_samples"]} samples ({meta["latency_ms"]:g} ms '
      f'at {meta["sample_rate"]} Hz); hop {meta["hop_length"]} samples.'
    )


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
