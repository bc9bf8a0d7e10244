"""Skips a test module where compile-only TPU devices cannot exist.

libtpu (the `[tpu]` extra, installed by `.ci/run`) ships for x86-64 Linux
only. There it must be installed and the tests run; elsewhere they are
skipped with this reason.
"""

import platform
import sys

import pytest

AVAILABLE = sys.platform == 'linux' and platform.machine() == 'x86_64'
REASON = (
  f'libtpu ships for x86-64 Linux only, not {sys.platform} '
  f'{platform.machine()}: no compile-only TPU devices here.'
)


def skip_module_without_libtpu() -> None:
  """Call at module level of a test file that compiles for TPUs."""
  if not AVAILABLE:
    pytest.skip(REASON, allow_module_level=True)
