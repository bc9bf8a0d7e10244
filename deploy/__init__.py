"""Export of trained s4jax models to files that run without JAX.

`deploy.formats` turns a pure JAX function into serialized StableHLO
(`jax.export`), ONNX (`jax2onnx`, run with onnxruntime) and LiteRT/TFLite
(`jax2tf` -> TF SavedModel -> `tf.lite.TFLiteConverter`, run with
`ai-edge-litert`); `deploy.artifacts` builds the exportable forms of the
models (`s4jax.models.portable`), writes them with their metadata and checks
them against JAX. This package needs the `[export]` extra; the `s4jax`
library itself stays free of these dependencies and of file I/O.
"""

import os as _os

# The LiteRT converter's C++ warnings and TensorFlow's oneDNN banner are noise
# here; set these variables before running to see them.
_os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
_os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
