"""Data parallelism: 4 simulated devices (and 2 processes) match 1 device."""

import pytest

from tests.training import simulated_devices

# Runs the toy recipe in a fresh interpreter and prints one JSON line.
SCRIPT = r"""
import json, os, sys
import jax
workdir, process_id, num_processes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if num_processes > 1:
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(os.environ['COORD'], num_processes, process_id)
jax.config.update('jax_disable_most_optimizations', True)
from s4jax.training import testing
from harness import trainer
from tests.training import toy_config
config = toy_config.get_config('steps=4')
config.train.eval_every = 4
config.eval.num_examples = 7  # Padded last batch, split over processes.
result = trainer.train_and_evaluate(config, workdir, testing)
params = result.state.params['encoder']['kernel']
print('RESULT', json.dumps({
    'devices': jax.device_count(),
    'processes': jax.process_count(),
    'param_devices': len(params.sharding.device_set),
    'losses': [h['loss'] for h in result.history],
    'eval': result.evals[-1],
}))
"""


def _launch(workdir, devices, process_id=0, num_processes=1, port=0):
  return simulated_devices.launch(
    SCRIPT, (workdir, process_id, num_processes), devices, port
  )


_result = simulated_devices.result


def _assert_same(one, other):
  assert len(one['losses']) == len(other['losses']) == 4
  for i, (a, b) in enumerate(zip(one['losses'], other['losses'], strict=True)):
    assert b == pytest.approx(a, rel=1e-4, abs=1e-5), (
      f'step {i + 1}: 1 device {a} vs sharded {b}'
    )
  for k, v in one['eval'].items():
    assert other['eval'][k] == pytest.approx(v, rel=1e-4, abs=1e-5), k


def test_four_devices_match_one_device(tmp_path):
  procs = [_launch(tmp_path / 'one', 1), _launch(tmp_path / 'four', 4)]
  one, four = (_result(p) for p in procs)
  assert one['devices'] == 1 and four['devices'] == 4
  assert four['param_devices'] == 4, 'state should be replicated on 4'
  _assert_same(one, four)


def _free_port():
  import socket

  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_device(tmp_path):
  port = _free_port()
  procs = [_launch(tmp_path / 'one', 1)] + [
    _launch(tmp_path / 'multi', 2, i, 2, port) for i in range(2)
  ]
  one, *multi = (_result(p) for p in procs)
  assert [m['processes'] for m in multi] == [2, 2]
  assert multi[0]['devices'] == 4
  for m in multi:
    _assert_same(one, m)
