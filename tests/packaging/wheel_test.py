"""The wheel and the sdist install `s4jax` and nothing else.

Top-level names such as `configs`, `harness` or `launch` in site-packages
would collide with users' own packages; the research folders are used from
a checkout (launch/_checkout.py). The pretrained models are package data.
"""

import hashlib
import re
import tarfile
import zipfile

from tests.packaging.dist_tools import ROOT

# What an sdist may hold besides the library: its metadata and the texts
# setuptools adds on its own.
SDIST_EXTRAS = {
  'CHANGELOG.md',
  'MANIFEST.in',
  'PKG-INFO',
  'README.md',
  'pyproject.toml',
  's4jax.egg-info',
  'setup.cfg',
}


def _shipped_models() -> dict[str, str]:
  """`{path in the package: sha256}` of s4jax/pretrained/*/* in the checkout."""
  return {
    path.relative_to(ROOT).as_posix(): hashlib.sha256(
      path.read_bytes()
    ).hexdigest()
    for path in sorted((ROOT / 's4jax' / 'pretrained').glob('*/*'))
    if path.is_file() and '__pycache__' not in path.parts
  }


def test_wheel_installs_s4jax_alone_with_the_pretrained_models(dists):
  with zipfile.ZipFile(dists.wheel) as wheel:
    names = wheel.namelist()
    top = {n.split('/')[0] for n in names}
    packages = {t for t in top if not t.endswith('.dist-info')}
    assert packages == {'s4jax'}, (
      f'{dists.wheel.name} installs {sorted(packages)}; only s4jax belongs '
      'in it (pyproject.toml [tool.setuptools.packages.find])'
    )
    shipped = _shipped_models()
    assert any(p.endswith('/params.msgpack') for p in shipped), shipped
    missing = sorted(set(shipped) - set(names))
    assert not missing, f'package data missing from the wheel: {missing}'
    for path, digest in shipped.items():
      got = hashlib.sha256(wheel.read(path)).hexdigest()
      assert got == digest, f'{path} differs in the wheel'
    assert 's4jax/pretrained/hub.py' in names
    meta = next(n for n in names if n.endswith('.dist-info/METADATA'))
    version = re.search(r'^Version: (\S+)$', wheel.read(meta).decode(), re.M)
    init = wheel.read('s4jax/__init__.py').decode()
    assert version and f"__version__ = '{version[1]}'" in init, (
      f'the wheel is version {version and version[1]}; s4jax.__version__ '
      'in s4jax/__init__.py must say the same (pyproject.toml [project])'
    )


def test_sdist_holds_the_library_and_its_metadata_only(dists):
  with tarfile.open(dists.sdist) as sdist:
    members = [m.name for m in sdist.getmembers() if m.isfile()]
  base = f'{dists.sdist.name.removesuffix(".tar.gz")}/'
  assert all(m.startswith(base) for m in members), members[:5]
  paths = [m.removeprefix(base) for m in members]
  top = {p.split('/')[0] for p in paths}
  extra = sorted(top - SDIST_EXTRAS - {'s4jax'})
  assert not extra, (
    f'{dists.sdist.name} holds {extra} beside s4jax: prune them in '
    'MANIFEST.in (setuptools re-reads stale s4jax.egg-info/SOURCES.txt)'
  )
  missing = sorted(set(_shipped_models()) - set(paths))
  assert not missing, f'package data missing from the sdist: {missing}'
