"""Mesh and sharding helpers for data-parallel training by sharding.

One `Mesh` spans every device of every process with axes `('data', 'model')`.
Batches are split along `'data'`; the train state is replicated. The `'model'`
axis (size 1 by default) leaves room for tensor parallelism later: a
parameter rule would map weight dimensions to it. Axis types are `Auto`
(GSPMD propagation), since `jax.make_mesh` defaults to explicit axes.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import mesh_utils, multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
  'DATA',
  'MODEL',
  'batch_sharding',
  'check_batch_size',
  'create_mesh',
  'local_data_devices',
  'put_replicated',
  'replicated',
  'to_global',
  'to_local',
]

DATA = 'data'
MODEL = 'model'


def create_mesh(
  model_axis_size: int = 1, devices: Sequence[jax.Device] | None = None
) -> Mesh:
  """A `(data, model)` mesh over `devices` (default: every process's).

  Args:
    model_axis_size: size of the `'model'` axis; must divide the count.
    devices: the devices to span, e.g. compile-only TPU devices from
      `jax.experimental.topologies` (then nothing here looks at the host's
      own devices). Devices of several slices (multi-slice TPU) are laid out
      slice by slice along `'data'`, so that only the gradient all-reduce
      crosses the data-centre network.

  Returns:
    The mesh, with `Auto` axis types.
  """
  devices = jax.devices() if devices is None else list(devices)
  count = len(devices)
  if model_axis_size < 1 or count % model_axis_size:
    raise ValueError(
      f'model_axis_size={model_axis_size} must divide the device count {count}.'
    )
  shape = (count // model_axis_size, model_axis_size)
  slices = collections.Counter(getattr(d, 'slice_index', 0) for d in devices)
  if len(slices) > 1:
    per_slice = set(slices.values())
    if len(per_slice) > 1 or min(per_slice) % model_axis_size:
      raise ValueError(
        f'Slices of {sorted(slices.values())} devices with '
        f'model_axis_size={model_axis_size}: slices must be of one size and '
        'the model axis must fit within one slice (divide its devices).'
      )
    grid = mesh_utils.create_hybrid_device_mesh(
      (shape[0] // len(slices), model_axis_size),
      (len(slices), 1),
      devices,
    )
    return Mesh(grid, (DATA, MODEL), axis_types=(AxisType.Auto,) * 2)
  return jax.make_mesh(
    shape, (DATA, MODEL), axis_types=(AxisType.Auto,) * 2, devices=devices
  )


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of an array copied on every device."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of an array split along its first axis over `'data'`."""
  return NamedSharding(mesh, P(DATA))


def local_data_devices(mesh: Mesh) -> int:
  """Number of distinct `'data'` positions held by this process."""
  shards = batch_sharding(mesh).addressable_devices_indices_map(
    (mesh.shape[DATA],)
  )
  return len({idx[0].start for idx in shards.values()})


def check_batch_size(global_batch: int, mesh: Mesh, what: str) -> None:
  """Raises a clear error unless `global_batch` splits evenly."""
  data = mesh.shape[DATA]
  if global_batch % data:
    raise ValueError(
      f'{what}={global_batch} is not divisible by the {data} devices of '
      f"the mesh's data axis; choose a multiple of {data}."
    )


def to_global(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, Any]:
  """Assembles per-process numpy batches into global `jax.Array`s.

  Args:
    batch: this process's rows (`global rows / process_count` each).
    mesh: the training mesh.

  Returns:
    The same keys as global arrays sharded along `'data'`.
  """
  sharding = batch_sharding(mesh)
  per_process = local_data_devices(mesh)
  for k, v in batch.items():
    if np.shape(v)[0] % per_process:
      raise ValueError(
        f'Batch entry {k!r} has {np.shape(v)[0]} rows on this process, '
        f'not a multiple of its {per_process} data devices; make the '
        'global batch size a multiple of the device count.'
      )
  return {
    k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
    for k, v in batch.items()
  }


def to_local(tree: Any, mesh: Mesh) -> Any:
  """This process's rows of `'data'`-sharded global arrays, as numpy."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  local = multihost_utils.global_array_to_host_local_array(
    tree, mesh, jax.tree.map(lambda _: P(DATA), tree)
  )
  return jax.tree.map(np.asarray, local)


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Host values identical on every process, as replicated arrays."""
  sharding = replicated(mesh)
  return jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
    tree,
  )
