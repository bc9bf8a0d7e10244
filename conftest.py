"""Runs the Python blocks of README.md, the docs and the model cards.

Every ```python block of `README.md`, `docs/**/*.md` and the shipped model
cards (`s4jax/pretrained/*/MODEL_CARD.md`) runs as a test, read by Sybil's
markdown parser. A file is one test: its blocks run in order in one
namespace, as a reader would paste them, so a later block may use what an
earlier one made; a failure names the block's line. One test per file keeps
the blocks together under pytest-xdist and pytest-randomly, which would
otherwise spread or shuffle them.

Blocks that are shell commands are fenced as `bash` and not run. The pages
that `docs/conf.py` generates (`docs/model_cards/`, `docs/_build/`) are not
collected; the cards are tested where they live.
"""

from __future__ import annotations

import fnmatch
import os
import pathlib

# The blocks run on the CPU, as the suite does (tests/conftest.py says why):
# with libtpu installed, JAX would otherwise start a TPU runtime and lock it.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

try:
  from sybil import Sybil
  from sybil.parsers.markdown import PythonCodeBlockParser
except ImportError:  # Without the `docs` extra the blocks are skipped.
  Sybil = None

ROOT = pathlib.Path(__file__).resolve().parent
# fnmatch patterns: `*` also matches '/'.
PATTERNS = (
  'README.md',
  'docs/*.md',
  's4jax/pretrained/*/MODEL_CARD.md',
)
EXCLUDED = ('docs/_build', 'docs/model_cards')


def _is_doc(path: pathlib.Path) -> bool:
  try:
    relative = path.resolve().relative_to(ROOT)
  except ValueError:
    return False
  if any(relative.is_relative_to(folder) for folder in EXCLUDED):
    return False
  return any(fnmatch.fnmatch(relative.as_posix(), p) for p in PATTERNS)


def card_setup(namespace: dict) -> None:
  """What a model card's example takes as given: `x`, 1 s at 16 kHz.

  The cards' example reads `y = model(x)  # x: mono float32 at 16000 Hz`;
  here `x` is a harmonic tone in white noise.
  """
  rng = np.random.default_rng(0)
  t = np.arange(16000) / 16000
  tone = 0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
  namespace['x'] = (tone + 0.03 * rng.normal(size=t.size)).astype(np.float32)


class MarkdownFile(pytest.File):
  """A markdown file whose Python blocks form one test."""

  def collect(self):
    if '```python' in self.path.read_text(encoding='utf-8'):
      yield PythonBlocks.from_parent(self, name='python blocks')


class PythonBlocks(pytest.Item):
  """Runs every Python block of the file, in order, in one namespace."""

  def runtest(self):
    if Sybil is None:
      pytest.skip('Sybil is not installed (pip install -e ".[docs]").')
    document = Sybil(parsers=[PythonCodeBlockParser()]).parse(self.path)
    if self.path.name == 'MODEL_CARD.md':
      card_setup(document.namespace)
    for example in document.examples():
      try:
        example.evaluate()
      except Exception as e:
        e.add_note(f'In the python block at {self.path}:{example.line}.')
        raise

  def reportinfo(self):
    return self.path, 0, f'{self.path.name}: python blocks'


def pytest_collect_file(file_path: pathlib.Path, parent):
  """Collects the markdown files of `PATTERNS` as `MarkdownFile`s."""
  if file_path.suffix == '.md' and _is_doc(file_path):
    return MarkdownFile.from_parent(parent, path=file_path)
  return None
