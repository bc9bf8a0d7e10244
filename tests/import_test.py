"""The library imports without TensorFlow and opens no file of its own.

The program below blocks TensorFlow, imports the third-party libraries
(which may read files on import, e.g. JAX probing for TPUs), then wraps every way Python code opens
a file (`builtins.open`, `io.open`, `os.open`, `io.FileIO`) with a recorder
that notes each call made while a frame of `s4jax/` is on the stack, before
importing `s4jax` (and its lazy `from_pretrained`) and every `s4jax`
module and running a forward pass of both models. Python's import
machinery (modules, and package metadata that libraries look up lazily,
e.g. on the first `jnp.linalg` call) is left out: calls with `importlib` on
the stack are not recorded.

Loading a shipped model is the one place the library reads files: those
reads must all come from `s4jax/pretrained/`.
"""

import json
import os
import subprocess
import sys

import pytest

_PROGRAM = """
import builtins, io, json, os, sys, traceback
sys.modules['tensorflow'] = None  # any `import tensorflow` now fails
sys.modules['tensorflow_datasets'] = None
# Third-party libraries may read files when first imported or when JAX
# starts its backend; that happens here, before the guard.
import flax.linen, jax, jax.numpy, ml_collections, numpy, optax
jax.devices()
# The forward passes below check files, not numerics: unoptimised compiles.
jax.config.update('jax_disable_most_optimizations', True)
import importlib.util
root = os.path.dirname(importlib.util.find_spec('s4jax').origin) + os.sep
opened, files = [], []

def guard(real):
  def wrapper(*args, **kwargs):
    stack = traceback.extract_stack()[:-1]
    importing = any('importlib' in f.filename for f in stack)
    ours = [f for f in reversed(stack) if f.filename.startswith(root)]
    if not importing and ours:
      opened.append(f'{args[0]!r} from ' + ' <- '.join(
        f'{os.path.basename(f.filename)}:{f.lineno}' for f in ours))
      files.append(os.path.relpath(ours[0].filename, root))
    return real(*args, **kwargs)
  return wrapper

builtins.open = io.open = guard(io.open)
os.open = guard(os.open)
io.FileIO = type('FileIO', (io.FileIO,), {'__init__': guard(io.FileIO.__init__)})

import s4jax
s4jax.from_pretrained  # Imports the loader (lazily): it reads nothing yet.
import pkgutil, importlib
names = [m.name for m in pkgutil.walk_packages(s4jax.__path__, 's4jax.')]
for name in names:
  importlib.import_module(name)

import jax, jax.numpy as jnp
from s4jax.models import spiking_s4, s4m
from configs import s4m_tiny  # configs/ is plain data (ml_collections)
model = spiking_s4.from_config(dict(d_model=16, n_layers=1, block=dict(d_state=4)))
x = jnp.zeros((1, 1024))
variables = model.init(jax.random.key(0), x)
jax.block_until_ready(model.apply(variables, x)['estimate'])
cfg = s4m_tiny.get_config('smoke=True')
sep = s4m.from_config(cfg.model)
y = jnp.zeros((1, 800))
jax.block_until_ready(sep.apply(sep.init(jax.random.key(0), y), y))
library = list(opened)
# Loading the shipped model: the reads of the one file reader.
s4jax.from_pretrained('spiking_s4')
loader = sorted(set(files[len(library):]))
# The probe: an open() called through a library frame must be recorded.
del opened[len(library):]
from s4jax.models import portable
portable.offline(lambda: open(os.devnull).close())()
print(json.dumps({'modules': len(names), 'opened': library,
                  'loader': loader, 'probe': opened[len(library):]}))
"""


@pytest.fixture(scope='module')
def result() -> dict:
  out = subprocess.run(
    [sys.executable, '-c', _PROGRAM],
    capture_output=True,
    text=True,
    check=False,
  )
  assert out.returncode == 0, f'import or forward pass failed:\n{out.stderr}'
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_library_imports_without_tensorflow_and_opens_no_file(result):
  assert result['modules'] >= 5, f'too few modules found: {result}'
  assert result['opened'] == [], (
    f's4jax opened files on import or in a forward pass: {result["opened"]}'
  )


def test_only_the_pretrained_loader_reads_files(result):
  """`s4jax.from_pretrained` reads its model, from s4jax/pretrained/ only."""
  loader = result['loader']
  assert loader, 'loading spiking_s4 opened no file: the guard missed it'
  readers = [f for f in loader if not f.startswith('pretrained' + os.sep)]
  assert not readers, f'files opened outside s4jax/pretrained/: {readers}'


def test_the_file_guard_sees_an_open_from_the_library(result):
  """The recorder itself works: an `open` made through s4jax is caught."""
  assert len(result['probe']) == 1, result['probe']
  assert repr(os.devnull) in result['probe'][0], result['probe']
