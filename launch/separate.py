r"""Separates mixtures into sources with a trained separation model.

  python launch/separate.py --workdir=runs/s4m mixture.wav folder/ \
      --output_dir=separated [--step=best]

Writes one file per source (`<name>_s1.wav`, `<name>_s2.wav`, ...). Inputs,
resampling, mono mix-down, constant-memory windows and error handling are
those of `launch/enhance.py`; the speaker order is kept consistent across
windows by matching the audio the overlapping windows share. Streaming is not
available for separation models.
"""

from __future__ import annotations

from absl import app, flags

from launch import enhance
from s4jax.training import runtime

flags.adopt_module_key_flags(enhance)

if __name__ == '__main__':
  app.run(enhance.cli_main('separation'), flags_parser=runtime.parse_flags)
