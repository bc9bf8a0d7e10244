"""Exports a training checkpoint as a pretrained model folder.

`export_run(workdir, name=...)` restores a checkpoint with
`harness.inference.load_model`, then writes `<root>/<name>/` in the layout
that `s4jax.pretrained.hub` reads: `config.json`, `params.msgpack` (float32
parameters only), a `MODEL_CARD.md` skeleton for the author to complete and,
with `seofp_bits`, a SEOFP-packed `params.seofp`. Everything is written into
a hidden temporary folder next to the destination, loaded back and compared,
then renamed into place: a failed or interrupted export never leaves a
folder that `available()` lists. `launch/export_pretrained.py` is its
command line; the default root is the `s4jax/pretrained/` package folder.

Tooling, not library: it reads checkpoints through `harness`, so it lives
here, above `s4jax`, whose `pretrained` subpackage only reads such folders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import serialization, traverse_util

from harness import inference
from s4jax import inference as inference_lib
from s4jax.models import summary
from s4jax.pretrained import hub


class ExportError(ValueError):
  """An export that cannot be done as asked."""


@dataclasses.dataclass
class Exported:
  """The result of `export_run`.

  Attributes:
    path: the written model folder.
    step: the exported checkpoint step.
    num_params: number of parameters.
    files: `{file name: size in bytes}` of the folder.
    seofp_report: the SEOFP size report (text), or None.
  """

  path: str
  step: int
  num_params: int
  files: dict[str, int]
  seofp_report: str | None = None


def float32_params(params: Any) -> Any:
  """`params` as NumPy arrays, floating leaves in float32."""

  def convert(x):
    x = np.asarray(x)
    return x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x

  return jax.tree.map(convert, params)


# The model card ---------------------------------------------------------------

_SUMMARY_FIELDS = (
  'task',
  'data.name',
  'data.sample_rate',
  'data.segment_seconds',
  'data.num_sources',
  'train.batch_size',
  'train.num_steps',
  'train.compute_dtype',
  'optimizer.name',
  'optimizer.learning_rate',
  'optimizer.schedule',
  'quant.enabled',
  'quant.exponent_bits',
)


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  node = config
  for key in dotted.split('.'):
    if not hasattr(node, 'get') or key not in node:
      return None
    node = node[key]
  return node


def config_summary(config: ml_collections.ConfigDict) -> list[str]:
  """Markdown list lines: every `model.*` field and the main run fields."""
  model = traverse_util.flatten_dict(config.model.to_dict(), sep='.')
  lines = [f'- `model.{k}` = `{json.dumps(v)}`' for k, v in model.items()]
  for dotted in _SUMMARY_FIELDS:
    value = _get(config, dotted)
    if value is not None:
      lines.append(f'- `{dotted}` = `{json.dumps(value)}`')
  return lines


def _validation_lines(workdir: str, step: int) -> list[str]:
  """The run's own validation report at `step`, as Markdown lines."""
  path = os.path.join(workdir, 'eval', f'validation_step_{step}.json')
  try:
    with open(path) as f:
      metrics = json.load(f)['metrics']
  except (OSError, ValueError, KeyError, TypeError):
    return []
  rows = [
    f'| {k} | {v:.4g} |'
    for k, v in sorted(metrics.items())
    if isinstance(v, int | float)
  ]
  if not rows:
    return []
  return [
    '',
    f"The run's own validation report at step {step} (`eval/"
    f'validation_step_{step}.json` of the run; the validation split of '
    '`config.data`, not a test set), as a starting point:',
    '',
    '| metric | mean |',
    '|---|---|',
    *rows,
  ]


def model_card(
  name: str,
  model: inference_lib.SpeechModel,
  *,
  count: int,
  params_bytes: int,
  params_sha256: str,
  how: str,
  validation: list[str],
  seofp_report: str | None,
  seofp_sha256: str | None = None,
) -> str:
  """The MODEL_CARD.md skeleton (front matter read by `s4jax.pretrained`)."""
  config = model.config
  tool = 'separate.py' if model.separates else 'enhance.py'
  steps = int(config.train.num_steps)
  out = [
    '---',
    f'name: {name}',
    f'task: {model.task.name}',
    f'model: {config.model.name}',
    f'sample_rate: {model.sample_rate}',
    f'step: {model.step}',
    f'num_params: {count}',
    f'params_sha256: {params_sha256}',
    *([f'seofp_sha256: {seofp_sha256}'] if seofp_sha256 else []),
    '---',
    '',
    f'# {name}',
    '',
    '<!-- Written by launch/export_pretrained.py. Replace every TODO; keep',
    'the block between the --- lines above: s4jax.from_pretrained reads the',
    'step from it and checks the parameter files against their sha256. -->',
    '',
    '| | |',
    '|---|---|',
    f'| model | `{config.model.name}` ({model.task.name}) |',
    f'| parameters | {count:,} (float32, {params_bytes:,} bytes in '
    '`params.msgpack`) |',
    f'| sample rate | {model.sample_rate} Hz (other rates are resampled) |',
    f'| training step | {model.step} of {steps} ({how}) |',
    '',
    'TODO: one paragraph: what the model does, for which audio, and what it',
    'is not meant for.',
    '',
    '## Use',
    '',
    '```bash',
    f'python launch/{tool} --pretrained={name} INPUT... --output_dir=OUT',
    '```',
    '',
    '```python',
    'import s4jax',
    f"model = s4jax.from_pretrained('{name}')",
    f'y = model(x)  # x: mono float32 at {model.sample_rate} Hz',
    '```',
    '',
    '## Config summary',
    '',
    *config_summary(config),
    '',
    'The full config is in `config.json`.',
    '',
    '## Training data',
    '',
    'TODO: corpus and version, splits, amount of audio, SNR range, noise and',
    'reverberation, licence.',
    '',
    '## Recipe',
    '',
    'TODO: the exact command (`python launch/train.py --config=... '
    '--workdir=...`',
    'with every override), the code commit and the random seed.',
    '',
    '## Training cost',
    '',
    'TODO: hardware (accelerator, hosts), wall time, steps per second.',
    '',
    '## Quality',
    '',
    'TODO: test-set results (`python launch/evaluate.py --workdir=... '
    '--split=test`),',
    'with the unprocessed input for comparison.',
    '',
    '| metric | input | this model |',
    '|---|---|---|',
    '| TODO | | |',
    *validation,
    '',
    '## Limitations',
    '',
    'TODO: known failure cases, languages, noise types, latency.',
  ]
  if seofp_report is not None:
    out += [
      '',
      '## SEOFP-packed copy',
      '',
      '`params.seofp` holds the same parameters packed with '
      '`s4jax.quant.packing`',
      f"(`s4jax.from_pretrained('{name}', seofp=True)` runs them):",
      '',
      '```',
      seofp_report,
      '```',
    ]
  return '\n'.join(out) + '\n'


# SEOFP ------------------------------------------------------------------------


def seofp_rules(config: ml_collections.ConfigDict, bits: int) -> Any:
  """The run's `config.quant` rules, enabled, at `bits` exponent bits."""
  from s4jax.quant import rules  # pylint: disable=g-import-not-at-top

  if not 1 <= bits <= 8:
    raise ExportError(f'--seofp_bits={bits}: choose 1 to 8 exponent bits.')
  quant = config.get('quant')
  values = quant.to_dict() if quant is not None else {}
  values.update(enabled=True, exponent_bits=bits)
  return rules.from_config(values)


def seofp_blob(params: Any, config: ml_collections.ConfigDict, bits: int):
  """`(params.seofp bytes, size report text)`."""
  from s4jax.quant import packing  # pylint: disable=g-import-not-at-top

  r = seofp_rules(config, bits)
  blob = packing.to_bytes(packing.pack(params, r))
  report = packing.format_size_report(packing.size_report(params, r))
  quant = config.get('quant')
  trained = quant is not None and quant.get('enabled', False)
  if not trained:
    note = (
      'The model was trained in float32 (config.quant.enabled=False): the '
      'packed weights are rounded to powers of two and change its outputs.'
    )
  elif int(quant.exponent_bits) != bits:
    note = (
      f'The model was trained with {quant.exponent_bits}-bit exponents; this '
      f'copy uses {bits}, so its outputs differ from the float model.'
    )
  else:
    note = (
      'The model was trained with these quantisation rules: the packed '
      'weights are exactly the ones its forward pass uses.'
    )
  return blob, f'{report}\n{note}'


# Export -----------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
  """Whether two parameter trees are bit-identical."""
  if hub.flat_shapes(a) != hub.flat_shapes(b):
    return False
  return all(
    np.asarray(x).tobytes() == np.asarray(y).tobytes()
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


def _write(folder: str, files: dict[str, bytes]) -> None:
  for file_name, data in files.items():
    with open(os.path.join(folder, file_name), 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())


def _step_how(step: int | str | None, config: ml_collections.ConfigDict):
  if step == 'best':
    return (
      f'best checkpoint by {config.eval.best_metric} '
      f'({config.eval.best_mode}) on the validation split'
    )
  if step in (None, '', 'latest'):
    return 'latest checkpoint'
  return 'chosen step'


def export_run(
  workdir: str,
  *,
  name: str,
  step: int | str | None = 'best',
  output_root: str | None = None,
  seofp_bits: int | None = None,
  overwrite: bool = False,
) -> Exported:
  """Writes the checkpoint of `workdir` as the pretrained model `name`.

  Args:
    workdir: a training workdir or one checkpoint folder
      (`<workdir>/checkpoints/<step>`).
    name: the model's folder name (letters, digits, `_`, `-`, `.`).
    step: 'best', 'latest'/None or a step number (workdir only).
    output_root: where `<name>/` goes; default
      `s4jax.pretrained.default_root()`.
    seofp_bits: also write `params.seofp` packed at this many exponent bits.
    overwrite: replace an existing `<output_root>/<name>`.

  Returns:
    What was written.

  Raises:
    ExportError: a bad name, an existing destination without `overwrite`.
    FileNotFoundError, CheckpointError: nothing usable at `workdir`.
  """
  if not hub.NAME_PATTERN.match(name or ''):
    raise ExportError(
      f'--name={name!r}: use letters, digits, "_", "-" and "." (not first).'
    )
  root = os.path.abspath(output_root or hub.default_root())
  dest = os.path.join(root, name)
  if os.path.lexists(dest) and not overwrite:
    raise ExportError(
      f'{dest} already exists; pass --overwrite to replace it, or choose '
      'another --name.'
    )
  model = inference.load_model(workdir=workdir, step=step)
  params = float32_params(model.params)
  count = summary.count_params(params)
  params_blob = serialization.to_bytes(params)
  digest = hub.sha256(params_blob)
  files = {
    hub.CONFIG_FILE: (model.config.to_json_best_effort(indent=2) + '\n'),
    hub.PARAMS_FILE: params_blob,
  }
  report = seofp_digest = None
  if seofp_bits:
    files[hub.SEOFP_FILE], report = seofp_blob(params, model.config, seofp_bits)
    seofp_digest = hub.sha256(files[hub.SEOFP_FILE])
  files[hub.CARD_FILE] = model_card(
    name,
    model,
    count=count,
    params_bytes=len(params_blob),
    params_sha256=digest,
    how=_step_how(step, model.config),
    validation=_validation_lines(workdir, model.step),
    seofp_report=report,
    seofp_sha256=seofp_digest,
  )
  files = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}

  def verify(tmp: str) -> None:
    loaded = hub.load_dir(tmp)
    if not _same(loaded.params, params) or loaded.step != model.step:
      raise ExportError(f'The model read back from {tmp} differs; not saved.')
    if seofp_bits:
      hub.load_dir(tmp, seofp=True)  # Checksum and shapes of params.seofp.

  write_folder(dest, files, overwrite=overwrite, verify=verify)
  return Exported(
    path=dest,
    step=model.step,
    num_params=count,
    files={k: len(v) for k, v in files.items()},
    seofp_report=report,
  )


def write_folder(
  dest: str,
  files: dict[str, bytes],
  *,
  overwrite: bool = False,
  verify: Callable[[str], None] | None = None,
) -> None:
  """Writes `files` as the folder `dest`, all or nothing.

  They go into a hidden temporary folder beside `dest` (fsynced), which
  `verify(tmp)` may read back, and which is then renamed into place, so an
  interrupted or failed write leaves nothing that could be taken for a
  finished folder. Shared with `deploy.artifacts.write`.

  Raises:
    ExportError: `dest` exists (or appeared meanwhile) and not `overwrite`.
  """
  root = os.path.dirname(os.path.abspath(dest))
  os.makedirs(root, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(dest)}.partial-', dir=root)
  try:
    _write(tmp, files)
    if verify is not None:
      verify(tmp)
    _move_into_place(tmp, dest, overwrite)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def _move_into_place(tmp: str, dest: str, overwrite: bool) -> None:
  """Renames `tmp` to `dest` (replacing it if `overwrite`)."""
  os.chmod(tmp, 0o755)  # mkdtemp makes it private.
  if not os.path.lexists(dest):
    os.rename(tmp, dest)
    return
  if not overwrite:
    raise ExportError(f'{dest} appeared during the export; not replaced.')
  old = tempfile.mkdtemp(
    prefix=f'.{os.path.basename(dest)}.old-', dir=os.path.dirname(dest)
  )
  os.rmdir(old)
  os.rename(dest, old)
  try:
    os.rename(tmp, dest)
  except BaseException:
    os.rename(old, dest)
    raise
  if os.path.isdir(old) and not os.path.islink(old):
    shutil.rmtree(old)
  else:
    os.remove(old)
