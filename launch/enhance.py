r"""Enhances audio files with a trained model.

  python launch/enhance.py --workdir=runs/demo noisy.wav more/ \
      --output_dir=enhanced [--streaming] [--step=best] [--strict]
  python launch/enhance.py --checkpoint=runs/demo/checkpoints/1500 ...
  python launch/enhance.py --pretrained=spiking_s4 noisy.wav --output_dir=out

Exactly one of `--workdir`, `--checkpoint` and `--pretrained` (a model that
ships with s4jax, see `s4jax/pretrained/`; `--pretrained_dir` looks
elsewhere) is required, and so is `--output_dir`. Inputs are WAV/FLAC/OGG/AIFF
files or folders (searched recursively; the folder layout is kept under
`--output_dir`). Any sample rate is accepted: audio is resampled to the
model's rate and the result back to the file's rate; multi-channel files are
mixed down to mono (with a warning). Files are processed in windows of
`--chunk_seconds` with `--context_seconds` of extra audio on each side
(discarded), so memory stays constant however long the file; a file that
fits in one window (chunk plus both contexts) is processed whole, with no
added context. `--streaming` instead feeds the model frame by frame through
its streaming mode (exact, causal; Spiking-S4). The processing is
`s4jax.inference.iter_process`; `s4jax.inference.process` gives the same
result for a signal in memory.

Every input is checked before the model is loaded or anything is written. A
file is refused if it is empty (0 bytes), not audio libsndfile can open (e.g.
text named `.wav`), has no samples, is truncated (its WAV/AIFF header
declares more audio than the file holds, or reading stops early), cannot be
decoded, or holds NaN/Inf samples; a missing path or a folder without audio
files is refused too. Each refused input is listed on stderr as
`refused: PATH: REASON`, followed by a line with the counts and what to do.
Then, by default, every good file is enhanced anyway and the program ends
with `error: N of M files refused (listed above); K enhanced into OUT` and
exit status 1. With `--strict`, any refused input stops the run before
anything is written (the output folder is not even created), with exit
status 1. A file the model fails on (NaN/Inf output) is listed as
`failed: PATH: REASON`, counted in that last line, and leaves no output.

Inputs are only read, never modified. An `--output_dir` where a result
would overwrite an input, or two inputs that would write the same result, is
refused before anything is written. Results are written to a `.partial` file
renamed into place when complete.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

from absl import app, flags

from harness import runtime
from launch import audio_batch

_STREAMING = flags.DEFINE_bool(
  'streaming',
  False,
  'Feed the model frame by frame through its streaming mode (exact and '
  'causal; Spiking-S4 models only) instead of in overlapping windows.',
)
flags.adopt_module_key_flags(audio_batch)

if __name__ == '__main__':
  app.run(
    audio_batch.cli_main('enhancement', _STREAMING),
    flags_parser=runtime.parse_flags,
  )
