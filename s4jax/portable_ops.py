"""A trace-time switch to export-friendly forms of a few operations.

Export converters and small runtimes take a narrower set of operations than
XLA: `jax2onnx` has no FFT, LiteRT no inverse real FFT, and neither handles
complex dtypes. Functions that use such operations check `enabled()` while
they are traced and, inside `portable_ops()`, emit an equivalent made of
real convolutions, matrix products and elementwise arithmetic instead. The
results agree up to float rounding; the FFT forms stay the default because
they are much faster for long sequences.

Example::

  with portable_ops():
    y = jax.jit(lambda u: kernels.fft_conv(u, k))(u)  # A direct convolution.

The switch is a `contextvars.ContextVar`, read only while a function is
traced. JAX caches a trace per Python function (shared by every `jax.jit`
of it), so a function traced outside the context keeps its FFT form inside
it, and the other way round: trace a fresh function object in the context,
as `s4jax.models.portable.offline` does.

Users: `s4jax.ssm.kernels.fft_conv`, and in `s4jax.models.s4m_blocks` the
transposed convolution and the global layer norm.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = [
  'enabled',
  'portable_ops',
]

_PORTABLE = contextvars.ContextVar('s4jax_portable_ops', default=False)


def enabled() -> bool:
  """Whether the code being traced should emit its portable form."""
  return _PORTABLE.get()


@contextlib.contextmanager
def portable_ops(enable: bool = True) -> Iterator[None]:
  """Context in which functions trace to their portable forms.

  Args:
    enable: False switches the portable forms off again (nesting).

  Yields:
    Nothing; the previous setting is restored on exit.
  """
  token = _PORTABLE.set(bool(enable))
  try:
    yield
  finally:
    _PORTABLE.reset(token)
