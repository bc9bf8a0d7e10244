"""Export of trained s4jax models to files that run without JAX.

`deploy.formats` turns a pure JAX function into serialized StableHLO
(`jax.export`), ONNX (`jax2onnx`, run with onnxruntime) and LiteRT/TFLite
(`jax2tf` -> TF SavedModel -> `tf.lite.TFLiteConverter`, run with
`ai-edge-litert`); `deploy.artifacts` builds the exportable forms of the
models (`s4jax.models.portable`), writes them with their metadata and checks
them against JAX. This package needs the `[export]` extra; the `s4jax`
library itself stays free of these dependencies and of file I/O.
"""
