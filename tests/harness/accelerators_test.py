"""harness.accelerators: topology names, chip figures, compile-only TPUs."""

import numpy as np
import pytest

from harness import accelerators
from s4jax.training import sharding
from tests import tpu_target


def test_parse_topology_rejects_wrong_axes():
  assert accelerators.parse_topology('v5e:4x4') == ('v5e', (4, 4))
  assert accelerators.parse_topology('v5p:2x2x1') == ('v5p', (2, 2, 1))
  with pytest.raises(accelerators.TopologyError, match='3 axes'):
    accelerators.parse_topology('v4:2x2')
  with pytest.raises(accelerators.TopologyError, match='generations'):
    accelerators.parse_topology('v9:2x2')
  with pytest.raises(accelerators.TopologyError, match='at least 1 chip'):
    accelerators.parse_topology('v5e:0x2')


def test_chip_figures_name_their_source():
  for chip in accelerators.CHIPS.values():
    assert chip.source and chip.hbm_bytes > 0 and chip.peak_flops > 0, chip
    assert np.isfinite(chip.hbm_bandwidth), chip


def test_gpu_memory_is_what_the_compile_target_describes():
  spec = accelerators.gpu_target_config('h100')
  size = int(spec.split('device_memory_size: ')[1].split()[0])
  assert accelerators.CHIPS['h100'].hbm_bytes == size, (
    f'CHIPS says {accelerators.CHIPS["h100"].hbm_bytes} bytes, the H100 '
    f'target description {size}'
  )


@pytest.mark.parametrize(
  ('kind', 'want'),
  [('TPU v5 lite', 'v5e'), ('TPU v5', 'v5p'), ('TPU v5p', 'v5p'),
   ('TPU v6 lite', 'v6e'), ('NVIDIA H100 80GB HBM3', 'h100'),
   ('TPU v7', None)],
)  # fmt: skip
def test_device_kinds_map_to_their_chip(kind, want):
  class Device:
    device_kind = kind

  chip = accelerators.chip_for_device(Device())
  assert (chip and chip.name) == want, f'{kind!r}: {chip and chip.name}'


@pytest.mark.skipif(not tpu_target.AVAILABLE, reason=tpu_target.REASON)
def test_topologies_give_their_chips_hosts_and_slices():
  cases = {
    ('v5e:1x1', 1): (1, 1, 1),
    ('v5e:2x2', 1): (4, 1, 1),
    ('v5e:4x4', 1): (16, 4, 1),
    ('v5e:2x2', 2): (8, 2, 2),
    ('v5p:4x4x4', 1): (64, 16, 1),
    ('v6e:2x4', 1): (8, 1, 1),
  }
  for (name, slices), want in cases.items():
    devices = accelerators.tpu_devices(name, slices)
    got = (
      len(devices),
      len({d.process_index for d in devices}),
      len({getattr(d, 'slice_index', 0) for d in devices}),
    )
    assert got == want, f'{name} x{slices}: (chips, hosts, slices) {got}'
    chip = accelerators.chip_for_device(devices[0])
    assert chip is not None and chip.name == name.split(':')[0]


@pytest.mark.skipif(not tpu_target.AVAILABLE, reason=tpu_target.REASON)
def test_multi_slice_mesh_puts_slices_along_data():
  devices = accelerators.tpu_devices('v5e:2x2', num_slices=2)
  mesh = sharding.create_mesh(devices=devices)
  slices = [d.slice_index for d in mesh.devices[:, 0]]
  assert slices == [0] * 4 + [1] * 4, slices


@pytest.mark.skipif(not tpu_target.AVAILABLE, reason=tpu_target.REASON)
def test_model_axis_across_slices_is_refused():
  devices = accelerators.tpu_devices('v5e:2x2', num_slices=2)
  with pytest.raises(ValueError, match='within one slice'):
    sharding.create_mesh(model_axis_size=8, devices=devices)
