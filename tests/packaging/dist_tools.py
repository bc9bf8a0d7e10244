"""Building the sdist and the wheel of the checkout, and running pip.

`python -m build` (sdist, then the wheel from the sdist, as a release is
built) runs on a copy of the checkout's files (tracked and untracked, not
git-ignored), so nothing is written into the checkout. The copy carries a
stale `s4jax.egg-info/SOURCES.txt` listing every file, as an editable
install made while the research folders were packages leaves behind:
setuptools re-reads that list when it makes an sdist, and `MANIFEST.in`
must keep the research folders out anyway.

The build needs setuptools and wheel (pyproject.toml [build-system]) from
the package index. Offline, set `S4JAX_WHEELHOUSE` to a folder of wheels:
pip then installs from it alone (`--no-index --find-links`), for the build
and for the clean-room test.
"""

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WHEELHOUSE_VAR = 'S4JAX_WHEELHOUSE'


def pip_env() -> dict[str, str]:
  """The environment for subprocesses that run pip (build isolation too)."""
  env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1')
  env.pop('PYTHONPATH', None)
  wheelhouse = os.environ.get(WHEELHOUSE_VAR)
  if wheelhouse:
    env.update(PIP_NO_INDEX='1', PIP_FIND_LINKS=wheelhouse)
  return env


def checkout_files() -> list[str]:
  """Paths (relative to ROOT) of the checkout, as git sees them."""
  out = subprocess.run(
    ['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'],
    cwd=ROOT,
    capture_output=True,
    check=True,
  ).stdout.decode()
  return sorted(p for p in out.split('\0') if p and (ROOT / p).is_file())


def run(args, timeout: int, **kwargs) -> subprocess.CompletedProcess:
  """Runs `args`; fails the test with the output's tail if it fails."""
  result = subprocess.run(
    args, capture_output=True, text=True, timeout=timeout, **kwargs
  )
  if result.returncode:
    pytest.fail(
      f'{" ".join(map(str, args))} failed ({result.returncode}):\n'
      f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}'
    )
  return result


@dataclasses.dataclass(frozen=True)
class Dists:
  wheel: pathlib.Path
  sdist: pathlib.Path


def build_dists(tmp: pathlib.Path) -> Dists:
  """Builds the sdist, then the wheel from it, under `tmp` (see module doc)."""
  src, out = tmp / 'src', tmp / 'out'
  files = checkout_files()
  for path in files:
    (src / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / path, src / path)
  stale = src / 's4jax.egg-info' / 'SOURCES.txt'
  stale.parent.mkdir()
  stale.write_text('\n'.join(files) + '\n')
  run(
    [sys.executable, '-m', 'build', '--outdir', str(out), str(src)],
    timeout=900,
    env=pip_env(),
  )
  (wheel,) = out.glob('*.whl')
  (sdist,) = out.glob('*.tar.gz')
  return Dists(wheel, sdist)
