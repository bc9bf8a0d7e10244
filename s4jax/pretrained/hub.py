"""Pretrained models shipped with s4jax: list, check and load them.

A pretrained model is a folder `<root>/<name>/` holding

  config.json     the training run's config (ml-collections, as JSON);
  params.msgpack  `flax.serialization.to_bytes(params)`, float32, nothing
                  else (no optimiser state);
  MODEL_CARD.md   what the model is, how it was trained, how good it is. Its
                  front matter (a `---` block of `key: value` lines) records
                  the training `step`, the `params_sha256` of params.msgpack
                  and, with a SEOFP copy, the `seofp_sha256` of params.seofp,
                  which loading checks;

and optionally `params.seofp`, a SEOFP-packed copy (`s4jax.quant.packing`),
which `from_pretrained(name, seofp=True)` runs. `launch/export_pretrained.py`
(`harness.export_pretrained`) writes such folders from a training run.

`<root>` is the `root` argument, else the environment variable
`S4JAX_PRETRAINED_DIR`, else this package's own folder (the models that ship
as package data, so they work from any install). This is the library's one
file reader: everything else in `s4jax` is pure, and nothing here reads a
file before a function is called.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import serialization

from s4jax import inference, models
from s4jax.models import summary
from s4jax.quant import packing
from s4jax.training import tasks as tasks_lib

__all__ = [
  'CARD_FILE',
  'CONFIG_FILE',
  'ENV_VAR',
  'NAME_PATTERN',
  'PARAMS_FILE',
  'REQUIRED_FILES',
  'SEOFP_FILE',
  'PretrainedError',
  'available',
  'check_params',
  'default_root',
  'expected_params',
  'flat_shapes',
  'from_pretrained',
  'load_dir',
  'missing_files',
  'model_dir',
  'param_differences',
  'read_card',
  'read_config',
  'read_params',
  'read_seofp',
  'sha256',
]

flat_shapes = summary.flat_shapes  # Re-exported: part of this module's API.
param_differences = summary.param_differences

ENV_VAR = 'S4JAX_PRETRAINED_DIR'
CONFIG_FILE = 'config.json'
PARAMS_FILE = 'params.msgpack'
CARD_FILE = 'MODEL_CARD.md'
SEOFP_FILE = 'params.seofp'
REQUIRED_FILES = (CONFIG_FILE, PARAMS_FILE, CARD_FILE)
NAME_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


class PretrainedError(ValueError):
  """A pretrained model that is unknown, incomplete or unreadable."""


# Where models live ------------------------------------------------------------


# The models shipped as package data, whose cards must carry their sums.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def default_root() -> str:
  """`$S4JAX_PRETRAINED_DIR` if set, else this package's folder.

  The package folder is `s4jax/pretrained/` of the install (of the checkout,
  with an editable install): the models shipped as package data.
  """
  return os.environ.get(ENV_VAR) or _PACKAGE_DIR


def _root(root: str | None) -> str:
  return os.path.abspath(root or default_root())


def missing_files(folder: str) -> list[str]:
  """The required files (`REQUIRED_FILES`) that `folder` lacks."""
  return [
    f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(folder, f))
  ]


def available(root: str | None = None) -> list[str]:
  """Names of the complete model folders under `root` (see module doc).

  Folders lacking a required file, and hidden ones (an export in progress
  writes to `.<name>...`), are left out.
  """
  root = _root(root)
  if not os.path.isdir(root):
    return []
  return sorted(
    name
    for name in os.listdir(root)
    if NAME_PATTERN.match(name)
    and os.path.isdir(os.path.join(root, name))
    and not missing_files(os.path.join(root, name))
  )


def model_dir(name: str, root: str | None = None) -> str:
  """The folder of the pretrained model `name`.

  Raises:
    PretrainedError: unknown name (the message lists the available ones) or
      a folder that lacks a required file (named).
  """
  root = _root(root)
  text = name if isinstance(name, str) else ''
  folder = os.path.join(root, text)
  if not NAME_PATTERN.match(text) or not os.path.isdir(folder):
    names = available(root)
    have = (
      f'available: {", ".join(names)}'
      if names
      else 'none is installed there yet'
    )
    raise PretrainedError(
      f'Unknown pretrained model {name!r} in {root}; {have}. (Set '
      f'{ENV_VAR}, --pretrained_dir or root= to look elsewhere.)'
    )
  missing = missing_files(folder)
  if missing:
    raise PretrainedError(
      f'The pretrained model {name!r} is incomplete: '
      f'{", ".join(os.path.join(folder, f) for f in missing)} missing.'
    )
  return folder


# Reading ----------------------------------------------------------------------


def _read(path: str, mode: str = 'rb') -> Any:
  try:
    with open(path, mode) as f:
      return f.read()
  except OSError as e:
    raise PretrainedError(f'Cannot read {path}: {e.strerror or e}.') from None
  except UnicodeDecodeError:
    raise PretrainedError(f'{path} is not UTF-8 text.') from None


def read_config(folder: str) -> ml_collections.ConfigDict:
  """The run config in `folder/config.json`, `config.model` in today's layout.

  A flat `config.model` written by an older version is converted
  (`s4jax.models.upgrade_model_config`).

  Raises:
    PretrainedError: the file is missing, not JSON or not a config object.
  """
  path = os.path.join(folder, CONFIG_FILE)
  try:
    values = json.loads(_read(path, 'r'))
  except json.JSONDecodeError as e:
    raise PretrainedError(
      f'{path} is not valid JSON (line {e.lineno}: {e.msg}).'
    ) from None
  if not isinstance(values, dict) or not isinstance(values.get('model'), dict):
    raise PretrainedError(
      f'{path} is not a run config (a JSON object with "task", "model", '
      '"data", ...).'
    )
  try:  # Flat config.model files of older versions.
    values['model'] = models.upgrade_model_config(values['model'])
  except ValueError as e:
    raise PretrainedError(f'{path}: {e}') from None
  return ml_collections.ConfigDict(values)


def read_card(folder: str) -> dict[str, str]:
  """The `key: value` front matter of `folder/MODEL_CARD.md` ({} if none)."""
  text = _read(os.path.join(folder, CARD_FILE), 'r')
  lines = text.splitlines()
  if not lines or lines[0].strip() != '---':
    return {}
  out = {}
  for line in lines[1:]:
    if line.strip() == '---':
      return out
    key, sep, value = line.partition(':')
    if sep and key.strip():
      out[key.strip()] = value.strip()
  return {}  # No closing '---': not front matter.


def sha256(data: bytes) -> str:
  """Hex SHA-256 of `data` (the card's `params_sha256`)."""
  return hashlib.sha256(data).hexdigest()


def _read_checked(path: str, card: dict[str, str] | None, key: str) -> bytes:
  """The bytes of `path`, checked against the card's `key` (if it has one)."""
  blob = _read(path)
  want = (card or {}).get(key)
  if want and sha256(blob) != want:
    raise PretrainedError(
      f'{path} is corrupt: its SHA-256 does not match the {key} in '
      f'{CARD_FILE} ({len(blob):,} bytes). Restore the file (e.g. from '
      'git, or reinstall s4jax) or export the model again.'
    )
  return blob


def read_params(folder: str, card: dict[str, str] | None = None) -> Any:
  """The parameter tree in `folder/params.msgpack` (NumPy leaves).

  Args:
    folder: a model folder.
    card: its card's front matter; its `params_sha256`, if any, is checked.

  Raises:
    PretrainedError: the file is missing, does not match the checksum, or
      is not a msgpack parameter tree.
  """
  path = os.path.join(folder, PARAMS_FILE)
  blob = _read_checked(path, card, 'params_sha256')
  try:
    tree = serialization.msgpack_restore(blob)
  except Exception as e:  # msgpack raises several unrelated types.
    raise PretrainedError(
      f'{path} is corrupt: not a msgpack parameter file '
      f'({type(e).__name__}: {str(e)[:200]}).'
    ) from None
  if not isinstance(tree, dict) or not tree:
    raise PretrainedError(
      f'{path} is corrupt: it holds {type(tree).__name__}, not a parameter '
      'tree (nested dicts of arrays).'
    )
  return tree


def read_seofp(folder: str, card: dict[str, str] | None = None) -> Any:
  """The SEOFP-packed copy in `folder/params.seofp`, unpacked (NumPy leaves).

  The values are `s4jax.quant.rules.quantize_params` of the float
  parameters at the packed precision (`s4jax.quant.packing.unpack`), bit for
  bit.

  Args:
    folder: a model folder.
    card: its card's front matter; its `seofp_sha256`, if any, is checked.

  Raises:
    PretrainedError: the folder has no SEOFP copy, or the file does not
      match the checksum or is not a packed parameter file.
  """
  path = os.path.join(folder, SEOFP_FILE)
  if not os.path.isfile(path):
    raise PretrainedError(
      f'{folder} has no SEOFP copy ({SEOFP_FILE}); load the float model '
      '(seofp=False), or export the run again with '
      'launch/export_pretrained.py --seofp_bits=5.'
    )
  blob = _read_checked(path, card, 'seofp_sha256')
  try:
    return packing.unpack(packing.from_bytes(blob))
  except Exception as e:  # msgpack and the format checks raise several types.
    raise PretrainedError(
      f'{path} is corrupt: not a SEOFP-packed parameter file '
      f'({type(e).__name__}: {str(e)[:200]}).'
    ) from None


# Checking ---------------------------------------------------------------------


def expected_params(
  config: ml_collections.ConfigDict, task: tasks_lib.Task | None = None
) -> Any:
  """Shapes and dtypes (`jax.ShapeDtypeStruct`) of a fresh model's params."""
  task = task or tasks_lib.create_task(config)
  samples = tasks_lib.init_samples(config)
  init = functools.partial(task.init, num_samples=samples)
  return jax.eval_shape(init, jax.random.key(0))


def check_params(
  params: Any,
  config: ml_collections.ConfigDict,
  path: str,
  task: tasks_lib.Task | None = None,
) -> None:
  """Raises `PretrainedError` if `params` do not fit the model of `config`.

  Args:
    params: the parameter tree read from `path`.
    config: the run config.
    path: the parameter file, for the message.
    task: `create_task(config)`, if already built.
  """
  try:
    expected = expected_params(config, task)
  except (ValueError, TypeError, KeyError, AttributeError) as e:
    raise PretrainedError(
      f'The {CONFIG_FILE} beside {path} does not describe a model this '
      f'version of s4jax can build: {e}'
    ) from None
  differences = summary.param_differences(params, expected)
  if differences:
    raise PretrainedError(
      f'{path} does not match the model of its {CONFIG_FILE} '
      f'(model.name={config.model.name!r}): ' + ' | '.join(differences)
    )


# Loading ----------------------------------------------------------------------


def load_dir(folder: str, *, seofp: bool = False) -> inference.SpeechModel:
  """Loads the model in `folder` (any path; see the module doc).

  Args:
    folder: a model folder.
    seofp: run the SEOFP-packed copy (`params.seofp`) instead of the float
      parameters (see `from_pretrained`).

  Returns:
    The same kind of object as `harness.inference.load_model`: an
    `s4jax.inference.SpeechModel` (call it on a mono float32 signal at
    `.sample_rate`).

  Raises:
    PretrainedError: a missing, unreadable or mismatched file (named).
  """
  folder = os.path.abspath(folder)
  missing = missing_files(folder)
  if missing:
    raise PretrainedError(
      f'{folder} is not a complete pretrained model: '
      f'{", ".join(missing)} missing.'
    )
  config = read_config(folder)
  config_path = os.path.join(folder, CONFIG_FILE)
  try:
    task = tasks_lib.create_task(config)
  except (ValueError, TypeError, KeyError, AttributeError) as e:
    raise PretrainedError(
      f'{config_path} does not describe a model this version of s4jax can '
      f'build: {e}'
    ) from None
  card = read_card(folder)
  key = 'seofp_sha256' if seofp else 'params_sha256'
  if os.path.dirname(folder) == _PACKAGE_DIR and key not in card:
    raise PretrainedError(
      f'{os.path.join(folder, CARD_FILE)} has lost the {key} of its front '
      'matter (the --- block at its top), so the shipped weights cannot be '
      'checked. Restore the card (e.g. reinstall s4jax).'
    )
  if seofp:
    params, path = read_seofp(folder, card), os.path.join(folder, SEOFP_FILE)
  else:
    params, path = read_params(folder, card), os.path.join(folder, PARAMS_FILE)
  check_params(params, config, path, task)
  try:
    step = int(card.get('step', 0))
  except ValueError:
    step = 0
  params = jax.tree.map(jnp.asarray, params)
  return inference.from_run_config(config, params, step=step, task=task)


def from_pretrained(
  name: str, root: str | None = None, *, seofp: bool = False
) -> inference.SpeechModel:
  """Loads the pretrained model `name` (one of `available(root)`).

    import s4jax
    model = s4jax.from_pretrained('spiking_s4')
    enhanced = model(noisy)   # mono float32 at model.sample_rate
    small = s4jax.from_pretrained('spiking_s4', seofp=True)

  Args:
    name: a model folder name, e.g. 'spiking_s4' or 's4m_tiny'.
    root: folder holding the models; default `default_root()`.
    seofp: run the SEOFP-packed copy (`params.seofp`, sign + exponent
      weights, 6 bits each at 5 exponent bits) instead of the float32
      parameters: the same model with the packed weights as its `params`.
      Unless the model was trained with the same quantisation rules, its
      outputs differ a little from the float model's (see its MODEL_CARD.md).

  Returns:
    The model, like `harness.inference.load_model` returns it (an
    `s4jax.inference.SpeechModel`): `model(x)` maps a mono float32 signal
    `(T,)` at `model.sample_rate` to the enhanced signal `(T,)` or the
    separated sources `(S, T)`.

  Raises:
    PretrainedError: unknown name (lists the available ones), no SEOFP copy
      (with `seofp`), or a missing, corrupt or mismatched file (named).
  """
  return load_dir(model_dir(name, root), seofp=seofp)
