r"""Separates mixtures into sources with a trained separation model.

  python launch/separate.py --workdir=runs/s4m mixture.wav folder/ \
      --output_dir=separated [--step=best] [--strict]
  python launch/separate.py --pretrained=s4m_tiny mixture.wav \
      --output_dir=separated

Writes one file per source (`<name>_s1.wav`, `<name>_s2.wav`, ...). The
model flags (exactly one of `--workdir`, `--checkpoint` and `--pretrained`),
the other required flags, inputs, resampling, mono mix-down, constant-memory
windows, the checks of every input before anything is written (`refused:
PATH: REASON` lines, the good files processed anyway and exit status 1, or
nothing written with `--strict`) and the protection of inputs are those of
`launch/enhance.py`; the speaker order is kept consistent across windows by
matching the audio the overlapping windows share. S4M is not causal (its
stream in `s4jax.inference` is these same windows, computed as the audio
arrives), so there is no `--streaming` flag.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

from absl import app, flags

from harness import runtime
from launch import audio_batch

flags.adopt_module_key_flags(audio_batch)

if __name__ == '__main__':
  app.run(audio_batch.cli_main('separation'), flags_parser=runtime.parse_flags)
