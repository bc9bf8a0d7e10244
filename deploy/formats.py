"""A pure JAX function to StableHLO, ONNX and LiteRT bytes.

Every converter takes the same description of a function: `fn(*args)`
returning a tuple of arrays, the argument specs (`jax.ShapeDtypeStruct`,
with the batch axis symbolic where the format allows it), and names for the
inputs and outputs. Parameters are closed over by `fn`, so they become
constants of the exported graph.

Choices (packages from PyPI, pinned in constraints.txt):
* StableHLO: `jax.export`, part of JAX. Its serialized form is what
  `jax.export.deserialize` reads back; XLA and IREE run it.
* ONNX: `jax2onnx` traces the jaxpr directly to ONNX (opset 23). The
  alternative route, jax2tf -> tf2onnx, fails here: jax2tf (JAX 0.10)
  wraps the whole function in one `XlaCallModule` op of serialized
  StableHLO, which tf2onnx 1.17 cannot convert.
* LiteRT: `jax2tf` (native StableHLO serialization) -> TF SavedModel ->
  `tf.lite.TFLiteConverter.from_saved_model` with built-in ops only, so the
  plain `ai-edge-litert` interpreter runs it (no Flex delegate).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence

import jax
import numpy as np

FORMATS = ('stablehlo', 'onnx', 'tflite')
SUFFIX = {'stablehlo': '.stablehlo', 'onnx': '.onnx', 'tflite': '.tflite'}
BATCH = 'B'  # Name of the symbolic batch dimension.


class ExportError(ValueError):
  """An export that cannot be done; the message says what to change."""


@contextlib.contextmanager
def _quiet_converters():
  """Keeps the converters' INFO/WARNING chatter off the console."""
  names = ('onnx_ir', 'jax2onnx', 'tensorflow', 'absl')
  # jax2onnx logs its settings through the root logger.
  loggers = [logging.getLogger()] + [logging.getLogger(n) for n in names]
  levels = [lg.level for lg in loggers]
  for lg in loggers:
    lg.setLevel(logging.ERROR)
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    absl_logging.set_verbosity(verbosity)
    for lg, level in zip(loggers, levels, strict=True):
      lg.setLevel(level)


def arg_specs(
  shapes: Sequence[tuple[tuple[int, ...], str]], symbolic_batch: bool
) -> list[jax.ShapeDtypeStruct]:
  """Specs for arguments given as `(shape after batch, dtype)` pairs.

  Args:
    shapes: per argument, its shape without the batch axis and its dtype.
    symbolic_batch: a symbolic batch axis `B` (else batch 1).

  Returns:
    `jax.ShapeDtypeStruct` per argument, batch axis first.
  """
  (batch,) = jax.export.symbolic_shape(BATCH) if symbolic_batch else (1,)
  return [jax.ShapeDtypeStruct((batch, *s), np.dtype(d)) for s, d in shapes]


def to_stablehlo(fn: Callable, specs: Sequence[jax.ShapeDtypeStruct]) -> bytes:
  """Serialized `jax.export` of `jax.jit(fn)` (CPU; symbolic dims kept)."""
  exported = jax.export.export(jax.jit(fn), platforms=('cpu',))(*specs)
  return bytes(exported.serialize())


def to_onnx(
  fn: Callable,
  specs: Sequence[jax.ShapeDtypeStruct],
  input_names: Sequence[str],
  output_names: Sequence[str],
  metadata: dict[str, str] | None = None,
) -> bytes:
  """ONNX model bytes via `jax2onnx`, with `metadata` as model properties."""
  import jax2onnx  # pylint: disable=g-import-not-at-top
  import onnx  # pylint: disable=g-import-not-at-top

  try:
    with _quiet_converters():
      model = jax2onnx.to_onnx(
        fn,
        list(specs),
        input_names=list(input_names),
        output_names=list(output_names),
        model_name='s4jax',
      )
  except NotImplementedError as e:
    raise ExportError(f'ONNX cannot express this model: {e}') from e
  if metadata:
    onnx.helper.set_model_props(model, dict(metadata))
  return model.SerializeToString()


def to_tflite(
  fn: Callable,
  specs: Sequence[jax.ShapeDtypeStruct],
  input_names: Sequence[str],
  output_names: Sequence[str],
) -> bytes:
  """LiteRT flatbuffer with one signature `serving_default` (fixed shapes).

  Raises:
    ExportError: when a spec has a symbolic dimension (LiteRT models here
      have fixed shapes) or the converter rejects an operation.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top

  for spec in specs:
    if not all(isinstance(d, int) for d in spec.shape):
      raise ExportError(
        f'LiteRT export needs fixed shapes, got {spec.shape}; export with '
        'a fixed batch.'
      )
  converted = jax2tf.convert(fn, with_gradient=False)
  signature = [
    tf.TensorSpec(s.shape, tf.as_dtype(s.dtype), name=n)
    for s, n in zip(specs, input_names, strict=True)
  ]

  @tf.function(autograph=False, input_signature=signature)
  def serve(*args):
    outs = converted(*args)
    return dict(zip(output_names, outs, strict=True))

  tf.get_logger().setLevel(logging.ERROR)  # Saver INFO lines.
  module = tf.Module()
  module.serve = serve
  with tempfile.TemporaryDirectory() as tmp, _quiet_converters():
    path = os.path.join(tmp, 'saved_model')
    tf.saved_model.save(module, path, signatures={'serving_default': serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(path)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
      return bytes(converter.convert())
    except Exception as e:  # The converter raises a bare ConverterError.
      raise ExportError(f'LiteRT cannot express this model: {e}') from e
