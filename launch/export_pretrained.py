r"""Exports a training checkpoint as a pretrained model that ships with s4jax.

  python launch/export_pretrained.py --workdir=runs/ss4 --name=spiking_s4 \
      [--step=best|latest|N] [--output_root=s4jax/pretrained] \
      [--seofp_bits=5] \
      [--overwrite]

Writes `<output_root>/<name>/`: `config.json` (the run's config),
`params.msgpack` (float32 parameters only, no optimiser state), a
`MODEL_CARD.md` skeleton (model, parameter count, config summary, training
step, and TODO placeholders for the data, recipe, wall time and quality
tables) and, with `--seofp_bits`, `params.seofp`, a SEOFP-packed copy whose
size report is printed and added to the card. The model is then usable with
no workdir: `launch/enhance.py --pretrained=<name>` (or `separate.py`) and
`s4jax.from_pretrained('<name>')` (`seofp=True` for the packed copy). The
work is done by `harness.export_pretrained`.

Files are written to a hidden temporary folder, loaded back and compared,
then renamed into place, so an interrupted export leaves nothing that loads.
An existing `<output_root>/<name>` is refused unless `--overwrite`.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

from absl import app, flags

from harness import runtime

_WORKDIR = flags.DEFINE_string(
  'workdir',
  None,
  'Required. Training run directory (launch/train.py), or one checkpoint '
  'folder <workdir>/checkpoints/<step>.',
)
_NAME = flags.DEFINE_string(
  'name',
  None,
  'Required. Name of the pretrained model, e.g. spiking_s4: the folder '
  'written and the value of --pretrained (letters, digits, _ - .).',
)
_STEP = flags.DEFINE_string(
  'step',
  'best',
  "Checkpoint to export: best (by config.eval.best_metric, from the run's "
  'eval reports), latest or a step number.',
)
_OUTPUT_ROOT = flags.DEFINE_string(
  'output_root',
  None,
  'Folder to write <name>/ into (default: $S4JAX_PRETRAINED_DIR, else the '
  's4jax/pretrained/ package folder, where --pretrained and '
  's4jax.from_pretrained look).',
)
_SEOFP_BITS = flags.DEFINE_integer(
  'seofp_bits',
  None,
  'Also write params.seofp: the parameters SEOFP-packed (sign + this many '
  "exponent bits, 1-8) with the run's config.quant rules; its size report "
  'is printed and added to the card.',
)
_OVERWRITE = flags.DEFINE_bool(
  'overwrite',
  False,
  'Replace an existing <output_root>/<name> (refused without it).',
)
flags.mark_flags_as_required(['workdir', 'name'])


def main(argv):
  """Program entry point (after flag parsing)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from harness import export_pretrained  # pylint: disable=g-import-not-at-top

  runtime.quiet_library_logs()
  with runtime.errors_as_messages():
    result = export_pretrained.export_run(
      _WORKDIR.value,
      name=_NAME.value,
      step=_STEP.value,
      output_root=_OUTPUT_ROOT.value,
      seofp_bits=_SEOFP_BITS.value,
      overwrite=_OVERWRITE.value,
    )
  print(
    f'Exported step {result.step} ({result.num_params:,} parameters) to '
    f'{result.path}:'
  )
  for file_name, size in sorted(result.files.items()):
    print(f'  {file_name:<16}{size:>14,} bytes')
  if result.seofp_report:
    print(result.seofp_report)
  print(
    f'Fill in the TODOs of {result.path}/MODEL_CARD.md (data, recipe, wall '
    'time, quality) before publishing it.'
  )


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
