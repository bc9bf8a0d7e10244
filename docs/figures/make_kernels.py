r"""Draws S4 (DPLR) and S4D kernels at several step sizes: `kernels.png`.

  python docs/figures/make_kernels.py [--output=docs/figures/kernels.png]

One channel, state size N = 64, at the step sizes dt = 0.1, 0.01 and 0.001
(the range the layers initialise dt in), so the plot shows what dt does:

* top, S4 (`s4jax.ssm.cauchy_kernel`, HiPPO-LegS in DPLR form, bilinear):
  the kernels that read the state coordinates 0 and 2 of the dense LegS
  system (C = row 0 or 2 of the eigenvector block V of
  `ssm.hippo_legs_nplr`). Smooth windows over the past whose length scales
  as 1/dt;
* bottom, S4D-Lin (`s4jax.ssm.vandermonde_kernel`, ZOH) with
  C_n = exp(-n / 3): a decay over about 1/dt samples, with an echo every
  2/dt samples, where the modes `exp(i pi n dt l)` all return to phase.

Each curve is scaled to a peak of 1. Takes a few seconds on a CPU.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import matplotlib
import numpy as np
from absl import app, flags

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # noqa: E402

from s4jax import ssm  # noqa: E402

_OUTPUT = flags.DEFINE_string(
  'output',
  os.path.join(os.path.dirname(__file__), 'kernels.png'),
  'Where to write the PNG.',
)

N = 64  # State size (N / 2 conjugate pairs).
LENGTH = 4096
DTS = (0.1, 0.01, 0.001)
S4_ROWS = (0, 2)  # State coordinates of the dense LegS system read by C.


def _tile(x: np.ndarray, h: int) -> jnp.ndarray:
  """`x` repeated over a new leading channel axis of size `h`, complex64."""
  return jnp.tile(jnp.asarray(x, jnp.complex64)[None], (h,) + (1,) * x.ndim)


def s4_kernels(row: int) -> np.ndarray:
  """HiPPO-LegS kernels reading state `row`, one per dt: `(len(DTS), L)`."""
  lam, p, b, v = ssm.hippo_legs_nplr(N, rank=1)
  h = len(DTS)
  kernel = ssm.cauchy_kernel(
    _tile(lam, h),
    jnp.moveaxis(_tile(p, h), 0, 1),  # (R, H, N2)
    _tile(b, h),
    _tile(v[row], h),
    jnp.asarray(DTS, jnp.float32),
    LENGTH,
  )
  return np.asarray(kernel)


def s4d_kernels() -> np.ndarray:
  """S4D-Lin kernels with C_n = exp(-n/3), one per dt: `(len(DTS), L)`."""
  a, b = ssm.s4d_init('lin', N // 2)
  h = len(DTS)
  kernel = ssm.vandermonde_kernel(
    _tile(a, h),
    _tile(b, h),
    _tile(np.exp(-np.arange(N // 2) / 3.0), h),
    jnp.asarray(DTS, jnp.float32),
    LENGTH,
  )
  return np.asarray(kernel)


def plot(path: str) -> None:
  """Computes both kernel families and writes the figure to `path`."""
  fig, axes = plt.subplots(2, 1, figsize=(7.0, 5.0), sharex=True)
  lags = np.arange(LENGTH)
  colors = plt.rcParams['axes.prop_cycle'].by_key()['color'][: len(DTS)]
  for row, style in zip(S4_ROWS, ('-', '--'), strict=True):
    for dt, k, color in zip(DTS, s4_kernels(row), colors, strict=True):
      axes[0].plot(
        lags + 1,
        k / np.max(np.abs(k)),
        style,
        color=color,
        lw=1.0,
        label=f'dt = {dt:g}' if row == S4_ROWS[0] else None,
      )
  axes[0].set_title(
    'S4: HiPPO-LegS (DPLR), cauchy_kernel; C reads state 0 (solid) or 2 '
    '(dashed)',
    fontsize=9,
  )
  for k, color in zip(s4d_kernels(), colors, strict=True):
    axes[1].plot(lags + 1, k / np.max(np.abs(k)), color=color, lw=1.0)
  axes[1].set_title(
    'S4D-Lin (diagonal), vandermonde_kernel; C_n = exp(-n/3)', fontsize=9
  )
  for ax in axes:
    ax.set_xscale('log')
    ax.set_ylabel('K[l] / max |K|')
    ax.grid(alpha=0.3)
  axes[-1].set_xlabel('lag l + 1 (samples, log scale)')
  fig.legend(loc='upper center', ncol=len(DTS), fontsize=8, frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 0.95))
  fig.savefig(path, dpi=90)
  print(f'wrote {path}')


def main(argv):
  """Draws the figure."""
  del argv
  plot(_OUTPUT.value)


if __name__ == '__main__':
  app.run(main)
