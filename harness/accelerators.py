"""Accelerators to compile for without having them: chips, topologies, specs.

* `CHIPS`: per-chip memory, peak matrix throughput and memory bandwidth of
  Cloud TPU generations and NVIDIA GPUs, each with its public source. They
  feed the roofline estimate of `harness.compile_report`.
* `tpu_devices(name, num_slices)`: compile-only TPU devices of a topology
  (`jax.experimental.topologies`, needs `libtpu`: the `[tpu]` extra), e.g.
  `v5e:2x2` (4 chips, one host), `v5e:4x4` (16 chips over 4 hosts),
  `v5p:4x4x4` (64 chips) or `v6e:16x16`, optionally over several slices.
* `gpu_devices(name, count)`: compile-only CUDA devices from a target
  description (`GpuTargetConfigProto` text), which needs a CUDA jaxlib
  (`pip install "jax[cuda12]"`) but no GPU and no driver.

Host layouts follow Cloud TPU's (and MaxText's `accelerator_to_spec_map.py`):
v5e and v6e hosts hold up to 8 chips (single-host slices of 1, 4 or 8 chips)
or 4 chips in bigger slices; v4 and v5p hosts hold 4 chips (megacore: one
JAX device per chip); slices of 64 chips and more are tori.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from typing import Any

from harness import runtime

__all__ = [
  'CHIPS',
  'Chip',
  'TopologyError',
  'chip_for_device',
  'gpu_devices',
  'gpu_target_config',
  'parse_topology',
  'tpu_devices',
]

_TPU_DOCS = 'https://cloud.google.com/tpu/docs/'
_GIB = 2**30


class TopologyError(ValueError):
  """A topology name that does not describe a TPU slice or GPU set."""


@dataclasses.dataclass(frozen=True)
class Chip:
  """Figures of one accelerator chip.

  Attributes:
    name: the generation, as in topology names ('v5e', 'h100').
    platform: 'tpu' or 'gpu'.
    hbm_bytes: device memory.
    peak_flops: dense matrix throughput per second at bfloat16.
    peak_flops_f32: dense matrix throughput for float32 operands at the
      platform's default precision (TPU: bfloat16 passes, same peak; NVIDIA:
      TF32 tensor cores).
    hbm_bandwidth: device memory bandwidth, bytes per second.
    source: where the figures come from.
    device_kinds: `jax.Device.device_kind` strings of the chip.
  """

  name: str
  platform: str
  hbm_bytes: int
  peak_flops: float
  peak_flops_f32: float
  hbm_bandwidth: float
  source: str
  device_kinds: tuple[str, ...]

  def peak(self, compute_dtype: str) -> float:
    """Matrix throughput for a recipe's `train.compute_dtype`."""
    return (
      self.peak_flops if compute_dtype == 'bfloat16' else self.peak_flops_f32
    )


def _tpu(name, hbm_gib, tflops, gbps, kinds):
  return Chip(
    name, 'tpu', int(hbm_gib * _GIB), tflops * 1e12, tflops * 1e12,
    gbps * 1e9, f'{_TPU_DOCS}{name} (HBM, peak bf16, HBM bandwidth)', kinds,
  )  # fmt: skip


# Cloud TPU system-architecture pages.
CHIPS: dict[str, Chip] = {
  'v4': _tpu('v4', 32, 275, 1200, ('TPU v4',)),
  'v5e': _tpu('v5e', 16, 197, 819, ('TPU v5 lite', 'TPU v5e')),
  'v5p': _tpu('v5p', 95, 459, 2765, ('TPU v5', 'TPU v5p')),
  'v6e': _tpu('v6e', 32, 918, 1640, ('TPU v6 lite', 'TPU v6e')),
  'h100': Chip(
    'h100',
    'gpu',
    84942979072,
    989.4e12,
    494.7e12,
    3.35e12,
    'NVIDIA H100 Tensor Core GPU datasheet (SXM5: dense BF16 989.4 TFLOPS, '
    'TF32 494.7 TFLOPS, HBM3 "80 GB" at 3.35 TB/s); memory as the device '
    'reports it (XLA h100 spec, device_memory_size: 79.1 GiB)',
    ('NVIDIA H100 80GB HBM3', 'H100'),
  ),  # fmt: skip
  'h200': Chip(
    'h200',
    'gpu',
    141 * _GIB,
    989.4e12,
    494.7e12,
    4.8e12,
    'NVIDIA H200 Tensor Core GPU datasheet (SXM: dense BF16 989 TFLOPS, '
    'TF32 494.7 TFLOPS, HBM3e "141 GB" at 4.8 TB/s; binary units, as the '
    'H100\'s "80 GB")',
    ('NVIDIA H200',),
  ),  # fmt: skip
}

# Chips per host of multi-host slices, and the largest single-host slice.
_HOST = {
  'v4': ((2, 2, 1), 4),
  'v5p': ((2, 2, 1), 4),
  'v5e': ((2, 2, 1), 8),
  'v6e': ((2, 2, 1), 8),
}
_LIBTPU_NAME = {'v4': 'v4', 'v5p': 'v5', 'v5e': 'v5e', 'v6e': 'v6e'}
_ALIASES = {'v5': 'v5p', 'v5litepod': 'v5e', 'v6': 'v6e'}


def chip_for_device(device: Any) -> Chip | None:
  """The `Chip` of a JAX device (by `device_kind`), or None if unknown."""
  kind = getattr(device, 'device_kind', '')
  for exact in (True, False):  # 'TPU v5 lite ...' is a v5e, not a 'TPU v5'.
    for chip in CHIPS.values():
      for k in chip.device_kinds:
        if kind == k if exact else kind.startswith(k + ' '):
          return chip
  return None


def parse_topology(name: str) -> tuple[str, tuple[int, ...]]:
  """`'v5e:4x4'` -> `('v5e', (4, 4))`; also `v5p:2x2x1`, `v6e:16x16`.

  Raises:
    TopologyError: naming the accepted forms.
  """
  m = re.fullmatch(r'\s*([a-z0-9]+):(\d+(?:x\d+){1,2})\s*', name or '')
  gen = _ALIASES.get(m.group(1), m.group(1)) if m else ''
  if not m or gen not in _HOST:
    raise TopologyError(
      f'--topology={name!r} is not a TPU topology; use '
      '<generation>:<chips per axis>, e.g. v5e:2x2 (4 chips), v5e:4x4 (16 '
      'chips, 4 hosts), v5e:16x16, v6e:8x8, v4:2x2x2 or v5p:4x4x4; '
      f'generations: {", ".join(_HOST)}.'
    )
  dims = tuple(int(x) for x in m.group(2).split('x'))
  want = 3 if gen in ('v4', 'v5p') else 2
  example = 'v5p:2x2x1.' if want == 3 else 'v5e:2x2.'
  if len(dims) != want:
    raise TopologyError(
      f'--topology={name!r}: {gen} topologies have {want} axes, e.g. {example}'
    )
  if min(dims) < 1:
    raise TopologyError(
      f'--topology={name!r}: every axis needs at least 1 chip, e.g. {example}'
    )
  return gen, dims


def _host_bounds(gen: str, dims: tuple[int, ...]) -> tuple[int, int, int]:
  per_host, single_max = _HOST[gen]
  chips = math.prod(dims)
  if chips <= single_max and len(dims) == 2:
    return (dims[0], dims[1], 1)  # One host holds the whole slice.
  if gen in ('v4', 'v5p') and chips < math.prod(per_host):
    return tuple(dims)  # type: ignore[return-value]
  for d, p in zip(dims, per_host, strict=False):
    if d % p:
      raise TopologyError(
        f'{gen}:{"x".join(map(str, dims))} does not split into hosts of '
        f'{"x".join(map(str, per_host[: len(dims)]))} chips; pick axes that '
        'are multiples of it.'
      )
  return per_host


def _wrap(gen: str, dims: tuple[int, ...]) -> tuple[bool, bool, bool]:
  if gen in ('v4', 'v5p'):
    torus = math.prod(dims) >= 64
    return (torus, torus, torus)
  wrap = [d >= 16 for d in dims] + [False]
  return tuple(wrap[:3])  # type: ignore[return-value]


def tpu_devices(name: str, num_slices: int = 1) -> list[Any]:
  """Compile-only devices of a TPU topology (`libtpu` must be installed).

  Args:
    name: e.g. 'v5e:2x2' (see `parse_topology`).
    num_slices: slices joined over the data-centre network.

  Returns:
    `jax.Device`s that jit can lower and compile for, not run on.

  Raises:
    TopologyError: an unknown topology.
    RuntimeError: when libtpu is missing, with the install command.
  """
  gen, dims = parse_topology(name)
  if num_slices < 1:
    raise TopologyError(f'--num_slices={num_slices} must be at least 1.')
  try:
    import libtpu  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise RuntimeError(
      'Compiling for TPUs needs libtpu: pip install -c constraints.txt '
      '-e ".[tpu]" (Linux x86-64 only).'
    ) from e
  runtime.quiet_libtpu_without_chips()
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top

  return list(
    topologies.get_topology_desc(
      topology_name=f'{_LIBTPU_NAME[gen]}:{"x".join(map(str, dims))}',
      platform='tpu',
      chip_config_name='megacore' if gen in ('v4', 'v5p') else 'default',
      chips_per_host_bounds=_host_bounds(gen, dims),
      num_slices=num_slices,
      wrap=_wrap(gen, dims),
    ).devices
  )


# Figures of `gpu_target_config`, from XLA's own device descriptions
# (openxla/xla, xla/backends/gpu/target_config/specs/<name>.txtpb), keeping
# the fields this jaxlib's GpuTargetConfigProto knows.
_GPU_SPECS = {
  'h100': dict(
    description='NVIDIA H100 80GB HBM3',
    core_count=132,
    fpus_per_core=128,
    clock_rate_ghz=1.98,
    memory_bandwidth=3352320000000,
    device_memory_size=84942979072,
    l2_cache_size=52428800,
    shared_memory_per_block=49152,
    shared_memory_per_core=233472,
    shared_memory_per_block_optin=232448,
    compute_capability=(9, 0),
  ),
}


def gpu_target_config(name: str) -> str:
  """`GpuTargetConfigProto` text of a GPU in `_GPU_SPECS` (e.g. 'h100')."""
  if name not in _GPU_SPECS:
    raise TopologyError(
      f'Unknown GPU {name!r}; known: {sorted(_GPU_SPECS)}, or pass '
      '--gpu_target_config=FILE with a GpuTargetConfigProto text (XLA keeps '
      'them in xla/backends/gpu/target_config/specs/).'
    )
  s = _GPU_SPECS[name]
  major, minor = s['compute_capability']
  return f"""gpu_device_info {{
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: {s['shared_memory_per_block']}
  shared_memory_per_core: {s['shared_memory_per_core']}
  threads_per_core_limit: 2048
  core_count: {s['core_count']}
  fpus_per_core: {s['fpus_per_core']}
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: {s['memory_bandwidth']}
  l2_cache_size: {s['l2_cache_size']}
  clock_rate_ghz: {s['clock_rate_ghz']}
  device_memory_size: {s['device_memory_size']}
  shared_memory_per_block_optin: {s['shared_memory_per_block_optin']}
  cuda_compute_capability {{ major: {major} minor: {minor} }}
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}}
platform_name: "CUDA"
dnn_version_info {{ major: 9 minor: 8 patch: 0 }}
device_description_str: "{s['description']}"
"""


def gpu_devices(name: str, count: int, target_config: str | None = None):
  """Compile-only CUDA devices, `count` GPUs on one host.

  Args:
    name: a GPU of `CHIPS` (e.g. 'h100').
    count: GPUs.
    target_config: `GpuTargetConfigProto` text (default: `gpu_target_config`).

  Raises:
    RuntimeError: when this jaxlib cannot compile for CUDA.
  """
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top

  text = target_config or gpu_target_config(name)
  try:
    desc = topologies.get_topology_desc(
      name, 'cuda', target_config=text, topology=f'1x1x{int(count)}'
    )
  except Exception as e:  # pylint: disable=broad-except
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if importlib.util.find_spec('jax_cuda12_plugin') is not None:
      raise RuntimeError(
        f'XLA refused the {name} target description ({first}); check '
        '--gpu_target_config against GpuTargetConfigProto.'
      ) from e
    raise RuntimeError(
      'Compiling for GPUs needs a CUDA jaxlib (pip install "jax[cuda12]", '
      f'about 5.6 GB; no GPU or driver needed): {first}'
    ) from e
  return list(desc.devices)
