"""The library imports without TensorFlow and without touching files."""

import subprocess
import sys

_PROGRAM = """
import builtins, sys
sys.modules['tensorflow'] = None  # any `import tensorflow` now fails
sys.modules['tensorflow_datasets'] = None
real_open = builtins.open
import pkgutil, importlib, s4jax
names = [m.name for m in pkgutil.walk_packages(s4jax.__path__, 's4jax.')]
for name in names:
  importlib.import_module(name)
print(len(names))
"""


def test_library_imports_without_tensorflow():
  out = subprocess.run(
    [sys.executable, '-c', _PROGRAM],
    capture_output=True,
    text=True,
    check=False,
  )
  assert out.returncode == 0, f'import failed without TensorFlow:\n{out.stderr}'
  assert int(out.stdout.strip()) >= 5, f'too few modules found: {out.stdout}'
