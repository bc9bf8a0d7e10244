"""Tests for s4jax.training.sharding: the (data, model) mesh and batches.

Multi-device behaviour runs on 4 simulated CPU devices in a subprocess
(simulated_devices.py); the rest on this process's devices.
"""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from s4jax.training import sharding
from tests.training import simulated_devices

# Prints what the tests below check, on 4 simulated devices.
SCRIPT = r"""
import json
import jax
import numpy as np
from s4jax.training import sharding


def error(fn, *args):
  try:
    fn(*args)
  except ValueError as e:
    return str(e)
  return None


mesh = sharding.create_mesh()
batch = {'x': np.arange(16, dtype=np.float32).reshape(8, 2)}
x = sharding.to_global(batch, mesh)['x']
w = sharding.put_replicated({'w': np.arange(3.0)}, mesh)['w']
print('RESULT', json.dumps({
    'devices': jax.device_count(),
    'axes': list(mesh.axis_names),
    'shape': dict(mesh.shape),
    'shape_model_2': dict(sharding.create_mesh(2).shape),
    'model_3_error': error(sharding.create_mesh, 3),
    'local_data_devices': sharding.local_data_devices(mesh),
    'global_shape': list(x.shape),
    'shard_rows': sorted(
        [s.index[0].start, s.index[0].stop] for s in x.addressable_shards
    ),
    'back_to_local': sharding.to_local({'x': x}, mesh)['x'].tolist(),
    'uneven_error': error(
        sharding.to_global, {'x': np.zeros((6, 2), np.float32)}, mesh
    ),
    'batch_size_error': error(
        sharding.check_batch_size, 6, mesh, 'train.batch_size'
    ),
    'replicated_devices': len(w.sharding.device_set),
    'replicated_shards': [s.data.tolist() for s in w.addressable_shards],
}))
"""


@pytest.fixture(scope='module')
def four():
  return simulated_devices.result(simulated_devices.launch(SCRIPT, (), 4))


def test_mesh_has_data_and_model_axes_over_all_devices(four):
  assert four['devices'] == 4, four['devices']
  assert four['axes'] == ['data', 'model'], four['axes']
  assert four['shape'] == {'data': 4, 'model': 1}, four['shape']
  assert four['shape_model_2'] == {'data': 2, 'model': 2}, four
  assert four['local_data_devices'] == 4, four['local_data_devices']


def test_model_axis_must_divide_the_device_count(four):
  want = 'model_axis_size=3 must divide the device count 4.'
  assert four['model_3_error'] == want, four['model_3_error']
  with pytest.raises(ValueError, match='model_axis_size=0'):
    sharding.create_mesh(0)


def test_batches_are_split_along_data_and_come_back_whole(four):
  assert four['global_shape'] == [8, 2], four['global_shape']
  want = [[0, 2], [2, 4], [4, 6], [6, 8]]
  assert four['shard_rows'] == want, (
    f'expected 2 rows per device {want}, got {four["shard_rows"]}'
  )
  back = np.asarray(four['back_to_local'])
  np.testing.assert_array_equal(back, np.arange(16).reshape(8, 2))


def test_uneven_batches_are_refused_naming_the_sizes(four):
  assert "'x' has 6 rows" in four['uneven_error'], four['uneven_error']
  assert 'its 4 data devices' in four['uneven_error'], four['uneven_error']
  msg = four['batch_size_error']
  assert msg.startswith('train.batch_size=6 is not divisible by the 4'), msg
  assert 'choose a multiple of 4' in msg, msg


def test_replicated_values_are_whole_on_every_device(four):
  assert four['replicated_devices'] == 4, four['replicated_devices']
  assert four['replicated_shards'] == [[0.0, 1.0, 2.0]] * 4, four


def test_shardings_name_the_data_axis_in_this_process():
  mesh = sharding.create_mesh()
  assert mesh.shape == {'data': jax.device_count(), 'model': 1}, mesh.shape
  assert sharding.batch_sharding(mesh).spec == P('data')
  assert sharding.replicated(mesh).spec == P()
  rows = 2 * jax.device_count()
  batch = {'a': np.arange(rows * 3, dtype=np.int32).reshape(rows, 3)}
  local = sharding.to_local(sharding.to_global(batch, mesh), mesh)
  np.testing.assert_array_equal(local['a'], batch['a'])
  sharding.check_batch_size(rows, mesh, 'eval.batch_size')  # no error
