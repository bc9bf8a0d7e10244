"""launch/compile.py: compile-only TPU reports of both models' smoke recipes.

One-host (v5e:2x2, 4 chips) and multi-host (v5e:4x4, 16 chips over 4 hosts)
topologies; S4M compiles with its S4D layers here (the DPLR layers compile
for TPU in tests/layers/s4_tpu_test.py, and the full recipes in
benchmarks/compile_recipes.py), since its DPLR smoke step alone takes a
minute to compile on 2 cores.
"""

import json

import pytest

from tests import tpu_target
from tests.launch import cli

tpu_target.skip_module_without_libtpu()


def _report(result) -> dict:
  assert result.stdout.strip(), result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_spiking_s4_smoke_compiles_on_one_host():
  result = cli.run(
    'compile.py',
    '--config=configs/spiking_s4_ndns.py:smoke=True',
    '--topology=v5e:2x2',
    '--per_chip_batch=1',
    '--json',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = _report(result)
  assert out['compiled'] and out['fits'] and out['eval_compiled'], out
  assert out['eval_seconds'] == 0.5, out  # The smoke recipe's crop.
  assert (out['chips'], out['hosts'], out['chip']) == (4, 1, 'v5e'), out
  assert out['global_batch'] == 4 and out['per_chip_batch'] == 1, out
  memory = out['per_chip_bytes']
  assert memory['arguments'] > 0 and memory['total'] < out['hbm_bytes'], out
  assert out['flops_per_step'] > 0 and out['bytes_per_step'] > 0, out
  want = max(
    out['flops_per_step'] / 197e12, out['bytes_per_step'] / 819e9
  )  # v5e roofline
  assert out['estimated_step_seconds'] == pytest.approx(want), out
  assert out['estimated_run_hours'] == pytest.approx(
    want * out['num_steps'] / 3600
  )
  assert out['compile_seconds'] > 0, out


def test_spiking_s4_smoke_compiles_on_a_multi_host_topology():
  result = cli.run(
    'compile.py',
    '--config=configs/spiking_s4_ndns.py:smoke=True',
    '--topology=v5e:4x4',
    '--per_chip_batch=2',
    '--steps=train',
    '--json',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = _report(result)
  assert (out['chips'], out['hosts'], out['global_batch']) == (16, 4, 32), out
  assert out['compiled'] and out['fits'], out


@pytest.mark.parametrize('topology,hosts', [('v5e:2x2', 1), ('v5e:4x4', 4)])
def test_s4m_smoke_compiles_and_counts_its_block_scan(topology, hosts):
  result = cli.run(
    'compile.py',
    '--config=configs/s4m_tiny.py:smoke=True,ssm=s4d',
    f'--topology={topology}',
    '--per_chip_batch=1',
    '--steps=train',
    '--json',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = _report(result)
  assert (out['hosts'], out['per_chip_batch']) == (hosts, 1), out
  # The smoke S4M scans its 2 blocks, forward and backward: each loop body
  # runs twice, so the corrected counts exceed XLA's once-counted ones.
  assert [x['trip_count'] for x in out['loops']] == [2, 2], out['loops']
  assert out['flops_per_step'] > 1.3 * out['flops_counted_once'], out
  assert out['fits'], out


def test_a_step_too_big_for_the_chip_says_what_to_lower():
  result = cli.run(
    'compile.py',
    '--config=configs/spiking_s4_ndns.py:smoke=True',
    '--topology=v5e:2x2',
    '--per_chip_batch=30000',
    '--steps=train',
  )
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'does not fit a v5e chip' in result.stdout, result.stdout
  fit = int(result.stdout.split('--per_chip_batch=')[1].split()[0])
  assert 0 < fit < 30000, result.stdout


def test_bad_topology_is_one_line():
  result = cli.run(
    'compile.py', '--config=configs/demo.py:smoke=True', '--topology=v5e:3x3'
  )
  cli.assert_fails_with(result, 'does not split into hosts')
  result = cli.run(
    'compile.py', '--config=configs/demo.py:smoke=True', '--topology=tpu9'
  )
  cli.assert_fails_with(result, 'is not a TPU topology', 'v5e:2x2')
