"""Tests for harness.pools: spawned worker processes, with the metric
workers' initialiser (harness.metrics.single_thread_worker)."""

import multiprocessing
import os

import pytest

from harness import metrics, pools


def _square_and_pid(x):
  return x * x, os.getpid()


def _start_method(_):
  return multiprocessing.get_start_method()


def _thread_settings(_):
  """`(OMP_NUM_THREADS, onnxruntime threads of harness.metrics)` here."""
  ort_threads = metrics._ORT_THREADS  # pylint: disable=protected-access
  return os.environ.get('OMP_NUM_THREADS'), ort_threads


def test_pool_runs_work_in_other_processes_and_keeps_the_order():
  with pools.process_pool(2) as pool:
    got = list(pool.map(_square_and_pid, range(6)))
  assert [v for v, _ in got] == [0, 1, 4, 9, 16, 25], got
  pids = {pid for _, pid in got}
  assert os.getpid() not in pids, f'work ran in the caller {os.getpid()}'


def test_pool_workers_are_spawned_not_forked():
  with pools.process_pool(1) as pool:
    got = pool.submit(_start_method, None).result()
  assert got == 'spawn', f"expected start method 'spawn', got {got!r}"


@pytest.mark.parametrize('workers', [0, -2])
def test_fewer_than_one_worker_is_refused_naming_the_count(workers):
  with pytest.raises(ValueError, match=f'workers >= 1, got {workers}'):
    pools.process_pool(workers)


def test_single_thread_worker_sets_one_omp_and_onnxruntime_thread(
  monkeypatch,
):
  # Spawned workers inherit the caller's environment at start-up.
  monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
  with pools.process_pool(1, metrics.single_thread_worker) as pool:
    got = pool.submit(_thread_settings, None).result()
  assert got == ('1', 1), (
    f"expected OMP_NUM_THREADS '1' and 1 onnxruntime thread, got {got}"
  )
  with pools.process_pool(1) as pool:
    plain = pool.submit(_thread_settings, None).result()
  assert plain == (None, 0), f'expected no thread limit without it, got {plain}'
