"""Run exported artifacts: one `run(feeds) -> outputs` for every format.

Used by the export checks, the tests and the benchmarks. Each runner takes
the artifact bytes and runs on one CPU thread by default (the latency
figures in benchmarks/RESULTS.md are single-core).
"""

from __future__ import annotations

import jax
import numpy as np


class OnnxRunner:
  """An onnxruntime session over ONNX bytes."""

  def __init__(self, data: bytes, threads: int = 1):
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.log_severity_level = 3  # Errors only.
    self.session = ort.InferenceSession(
      data, options, providers=['CPUExecutionProvider']
    )
    self.output_names = [o.name for o in self.session.get_outputs()]

  def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    outs = self.session.run(None, feeds)
    return dict(zip(self.output_names, outs, strict=True))


class LiteRTRunner:
  """The LiteRT interpreter's `serving_default` signature."""

  def __init__(self, data: bytes, threads: int = 1):
    from ai_edge_litert import interpreter  # pylint: disable=g-import-not-at-top

    self.interpreter = interpreter.Interpreter(
      model_content=data, num_threads=threads
    )
    self.runner = self.interpreter.get_signature_runner('serving_default')

  def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return dict(self.runner(**feeds))


class StableHLORunner:
  """`jax.export.deserialize` + `call` under `jax.jit`, named like the form."""

  def __init__(self, data: bytes, input_names, output_names):
    exported = jax.export.deserialize(bytearray(data))
    self.input_names = list(input_names)
    self.output_names = list(output_names)
    self._call = jax.jit(exported.call)

  def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    outs = self._call(*[feeds[n] for n in self.input_names])
    return {
      n: np.asarray(o) for n, o in zip(self.output_names, outs, strict=True)
    }


def runner(fmt: str, data: bytes, input_names, output_names, threads: int = 1):
  """The runner of format `fmt` for artifact bytes `data`."""
  if fmt == 'onnx':
    return OnnxRunner(data, threads)
  if fmt == 'tflite':
    return LiteRTRunner(data, threads)
  if fmt == 'stablehlo':
    return StableHLORunner(data, input_names, output_names)
  raise ValueError(f'Unknown format {fmt!r}.')
