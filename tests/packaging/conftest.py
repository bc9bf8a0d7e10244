"""The sdist and the wheel of the checkout, built once per test process.

See `dist_tools` for how, and for building offline (`S4JAX_WHEELHOUSE`).
"""

import pytest

from tests.packaging import dist_tools


@pytest.fixture(scope='session')
def dists(tmp_path_factory) -> dist_tools.Dists:
  return dist_tools.build_dists(tmp_path_factory.mktemp('dists'))
