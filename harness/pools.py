"""Worker processes for CPU-bound work (metrics, data generation).

One rule everywhere: processes are started with 'spawn', never 'fork'. The
caller has usually started threads already (JAX, TensorFlow, onnxruntime),
and a forked child of a multithreaded process can deadlock on a lock some
other thread held at the fork.

This module knows nothing of the work: initialisers come from their users
(e.g. `harness.metrics.single_thread_worker` for metric workers).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable


def process_pool(
  workers: int, initializer: Callable[[], None] | None = None
) -> concurrent.futures.ProcessPoolExecutor:
  """A 'spawn' process pool of `workers` processes (use it with `with`).

  Args:
    workers: number of processes (>= 1).
    initializer: called once in each process before any work.

  Raises:
    ValueError: for `workers < 1`.
  """
  if workers < 1:
    raise ValueError(f'A process pool needs workers >= 1, got {workers}.')
  return concurrent.futures.ProcessPoolExecutor(
    max_workers=workers,
    mp_context=multiprocessing.get_context('spawn'),
    initializer=initializer,
  )
