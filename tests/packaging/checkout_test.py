"""The research folders work from a checkout without being installed.

The wheel (and so the editable install) holds `s4jax` alone. The programs in
`launch/` and `benchmarks/` put the checkout root on `sys.path` themselves
when run as files (`launch/_checkout.py`); here they run from another
working directory with no `PYTHONPATH`, as a user runs them.
"""

import ast
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.packaging.dist_tools import ROOT

PROGRAM_FOLDERS = ('launch', 'benchmarks')


def _env():
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('PYTHONPATH', None)
  return env


def _python(*args, cwd, timeout=300):
  return subprocess.run(
    [sys.executable, *args],
    cwd=cwd,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def _programs() -> list[pathlib.Path]:
  return sorted(
    path
    for folder in PROGRAM_FOLDERS
    for path in (ROOT / folder).glob('*.py')
    if "__name__ == '__main__'" in path.read_text(encoding='utf-8')
  )


def _first_statements(path: pathlib.Path) -> list[ast.stmt]:
  """The module's statements after its docstring and `__future__` imports."""
  body = ast.parse(path.read_text(encoding='utf-8')).body
  while body and (
    isinstance(body[0], ast.Expr)
    or (isinstance(body[0], ast.ImportFrom) and body[0].module == '__future__')
  ):
    body = body[1:]
  return body


@pytest.mark.parametrize(
  'path', _programs(), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_every_program_finds_the_checkout_first(path):
  first = ast.unparse(_first_statements(path)[0])
  assert (
    first == 'if not __package__:\n    import _checkout'
    and (path.parent / '_checkout.py').is_file()
  ), (
    f'{path.relative_to(ROOT)} must start (after its docstring) with\n\n'
    f'  if not __package__:  # Run as a file: see {path.parent.name}/'
    '_checkout.py.\n    import _checkout  # noqa: F401\n\n'
    'so that `python '
    f'{path.relative_to(ROOT)}` finds the folders beside {path.parent.name}/.'
  )


def test_the_research_folders_are_not_installed(tmp_path):
  """Else the programs below would pass without finding the checkout."""
  result = _python('-c', 'import harness', cwd=tmp_path)
  assert 'ModuleNotFoundError' in result.stderr, (
    '`import harness` works outside the checkout: the installed s4jax is '
    'older than this checkout (it maps the research folders); reinstall '
    'with pip install -c constraints.txt -e ".[all]".'
  )


def test_tools_run_as_files_and_as_modules(tmp_path):
  rng = np.random.default_rng(0)
  sf.write(tmp_path / 'in.wav', 0.1 * rng.standard_normal(8000), 16000)
  enhance = _python(
    str(ROOT / 'launch' / 'enhance.py'),
    '--pretrained=spiking_s4',
    str(tmp_path / 'in.wav'),
    f'--output_dir={tmp_path / "out"}',
    cwd=tmp_path,
  )
  assert enhance.returncode == 0, enhance.stderr[-3000:]
  assert sf.info(tmp_path / 'out' / 'in.wav').frames == 8000
  bench = _python(str(ROOT / 'benchmarks' / 'kernel_bench.py'), '-h', cwd=ROOT)
  assert bench.returncode == 0 and 'usage' in bench.stdout, bench.stderr
  module = _python('-m', 'launch.summary', '--helpshort', cwd=ROOT)
  assert 'Traceback' not in module.stderr, module.stderr[-3000:]
  assert '--workdir' in module.stdout + module.stderr, module.stdout
