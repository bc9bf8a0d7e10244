"""Spiking neurons: a Heaviside spike with surrogate gradients and PLIF cells.

`spike(u)` is the Heaviside step `u >= 0` (spikingjelly's convention; snntorch,
norse and spyx use `u > 0`) in the forward pass. Its derivative is replaced by
a surrogate through `jax.custom_jvp`, so forward mode (`jvp`, `jacfwd`) and
reverse mode (`grad`, `vjp`) both see the surrogate. Surrogates, each with a
sharpness `alpha` (defaults in `DEFAULT_ALPHA`):

  sigmoid       alpha sig(alpha u) (1 - sig(alpha u))      spikingjelly Sigmoid
  arctan        (alpha/2) / (1 + (pi alpha u / 2)^2)       spikingjelly/snntorch
  fast_sigmoid  1 / (1 + alpha |u|)^2                      SuperSpike (Zenke &
                (alias 'superspike')                       Ganguli 2018)
  triangle      alpha max(0, 1 - alpha |u|)                unit area
  boxcar        (alpha / 2) 1[|alpha u| <= 1]              unit area

All of them stay finite for any finite `u` (the sigmoid form uses `sig`, not
`exp`, which is what overflows in snntorch issue #427).

Parametric LIF (PLIF, Fang et al. 2021, arXiv 2007.05785; spikingjelly
`ParametricLIFNode` with `decay_input=True`): one learnable scalar `w` per
neuron group, `k = sigmoid(w) = 1 / tau`, `w0 = -log(init_tau - 1)`.

  charge:  v <- v + (x - (v - v_reset)) k
  fire:    s = spike(v - v_th)
  reset:   hard: v <- (1 - s) v + s v_reset   soft: v <- v - s v_th
           (with `detach_reset`, `s` carries no gradient in the reset)

Modes:
  'stateless': every input frame charges a neuron at rest once,
    `s = spike(v_reset + x k - v_th)`. This is exactly what the Spiking-S4
    authors' code computes (spikingjelly single-step node applied once to the
    whole sequence, reset after every batch), so there are no dynamics over
    frames.
  'temporal': the membrane is carried across frames with `lax.scan` (time is
    axis -2, channels last).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
  'DEFAULT_ALPHA',
  'NEURON_MODES',
  'PLIF',
  'RESETS',
  'SURROGATES',
  'lif_scan',
  'lif_stateless',
  'lif_step',
  'spike',
  'surrogate_grad',
  'tau_to_w',
]

SURROGATES = (
  'sigmoid',
  'arctan',
  'fast_sigmoid',
  'superspike',
  'triangle',
  'boxcar',
)
DEFAULT_ALPHA = {
  'sigmoid': 4.0,
  'arctan': 2.0,
  'fast_sigmoid': 25.0,
  'superspike': 25.0,
  'triangle': 1.0,
  'boxcar': 1.0,
}
NEURON_MODES = ('stateless', 'temporal')
RESETS = ('hard', 'soft')


def _check_surrogate(name: str) -> None:
  if name not in SURROGATES:
    raise ValueError(f'Unknown surrogate {name!r}; choose one of {SURROGATES}.')


def surrogate_grad(name: str, u: jnp.ndarray, alpha: float) -> jnp.ndarray:
  """Derivative of the smooth stand-in for the Heaviside step at `u`.

  Args:
    name: one of `SURROGATES`.
    u: real array (membrane minus threshold).
    alpha: sharpness.

  Returns:
    Array like `u`.
  """
  _check_surrogate(name)
  if name == 'sigmoid':
    # sig(a) (1 - sig(a)) written as sig(a) sig(-a): no cancellation in the
    # tails, no overflow.
    return alpha * jax.nn.sigmoid(alpha * u) * jax.nn.sigmoid(-alpha * u)
  if name == 'arctan':
    return (alpha / 2) / (1.0 + jnp.square(math.pi / 2 * alpha * u))
  if name in ('fast_sigmoid', 'superspike'):
    return 1.0 / jnp.square(1.0 + alpha * jnp.abs(u))
  if name == 'triangle':
    return alpha * jnp.maximum(0.0, 1.0 - alpha * jnp.abs(u))
  return jnp.where(jnp.abs(alpha * u) <= 1.0, alpha / 2, 0.0).astype(u.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _spike(u: jnp.ndarray, name: str, alpha: float) -> jnp.ndarray:
  return (u >= 0).astype(u.dtype)


@_spike.defjvp
def _spike_jvp(name, alpha, primals, tangents):
  (u,), (du,) = primals, tangents
  grad = surrogate_grad(name, u, alpha).astype(u.dtype)
  return _spike(u, name, alpha), grad * du


def spike(
  u: jnp.ndarray, surrogate: str = 'sigmoid', alpha: float | None = None
) -> jnp.ndarray:
  """Heaviside spike `u >= 0` with a surrogate derivative.

  Args:
    u: real floating array (membrane potential minus threshold).
    surrogate: one of `SURROGATES`.
    alpha: surrogate sharpness; None takes `DEFAULT_ALPHA[surrogate]`.

  Returns:
    0/1 array of `u`'s dtype.
  """
  _check_surrogate(surrogate)
  if not jnp.issubdtype(jnp.result_type(u), jnp.floating):
    raise TypeError(f'spike expects a floating-point input, got {u.dtype}.')
  alpha = DEFAULT_ALPHA[surrogate] if alpha is None else float(alpha)
  return _spike(u, surrogate, alpha)


def tau_to_w(tau: float) -> float:
  """PLIF parameter for a time constant: `w = -log(tau - 1)` (tau > 1)."""
  if tau <= 1:
    raise ValueError(f'PLIF needs init_tau > 1, got {tau}.')
  return -math.log(tau - 1.0)


def lif_stateless(
  x: jnp.ndarray,
  w: jnp.ndarray,
  v_th: float = 1.0,
  v_reset: float = 0.0,
  surrogate: str = 'sigmoid',
  alpha: float | None = None,
) -> jnp.ndarray:
  """A PLIF neuron charged once from rest by each input: `spike(v - v_th)`.

  Args:
    x: real `(...)` input current.
    w: scalar PLIF parameter, `1 / tau = sigmoid(w)`.
    v_th: threshold.
    v_reset: rest (and reset) potential.
    surrogate: surrogate name (see `spike`).
    alpha: surrogate sharpness (see `spike`).

  Returns:
    0/1 spikes like `x`.
  """
  v = v_reset + x * jax.nn.sigmoid(w).astype(x.dtype)
  return spike(v - v_th, surrogate, alpha)


def lif_step(
  v: jnp.ndarray,
  x: jnp.ndarray,
  w: jnp.ndarray,
  v_th: float = 1.0,
  v_reset: float = 0.0,
  reset: str = 'hard',
  detach_reset: bool = False,
  surrogate: str = 'sigmoid',
  alpha: float | None = None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """One charge-fire-reset step of a PLIF neuron.

  Args:
    v: real `(...)` membrane before the step.
    x: real `(...)` input current.
    w: scalar PLIF parameter, `1 / tau = sigmoid(w)`.
    v_th: threshold.
    v_reset: rest and reset potential.
    reset: 'hard' (to `v_reset`) or 'soft' (subtract `v_th`).
    detach_reset: stop the gradient through the spike in the reset.
    surrogate: surrogate name (see `spike`).
    alpha: surrogate sharpness (see `spike`).

  Returns:
    `(spikes, v_next)`, both like `x`.
  """
  if reset not in RESETS:
    raise ValueError(f'Unknown reset {reset!r}; choose one of {RESETS}.')
  v = v + (x - (v - v_reset)) * jax.nn.sigmoid(w).astype(x.dtype)
  s = spike(v - v_th, surrogate, alpha)
  s_r = jax.lax.stop_gradient(s) if detach_reset else s
  if reset == 'hard':
    v = (1.0 - s_r) * v + s_r * v_reset
  else:
    v = v - s_r * v_th
  return s, v


def lif_scan(
  x: jnp.ndarray,
  w: jnp.ndarray,
  v0: jnp.ndarray | None = None,
  unroll: int = 1,
  time_axis: int = -2,
  **kwargs,
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """PLIF dynamics over time with `lax.scan`.

  Args:
    x: real `(..., T, H)` input (time on `time_axis`).
    w: scalar PLIF parameter.
    v0: initial membrane, `x` without its time axis (None: `v_reset`).
    unroll: `lax.scan` unroll factor.
    time_axis: the time axis of `x` (-2: channels last; -1: channels first).
    **kwargs: `v_th`, `v_reset`, `reset`, `detach_reset`, `surrogate`,
      `alpha` as in `lif_step`.

  Returns:
    `(spikes (..., T, H), v_T (..., H))`.
  """
  xt = jnp.moveaxis(x, time_axis, 0)
  if v0 is None:
    v0 = jnp.full(xt.shape[1:], kwargs.get('v_reset', 0.0), x.dtype)

  def body(v, x_t):
    s, v = lif_step(v, x_t, w, **kwargs)
    return v, s

  v_t, s = jax.lax.scan(body, v0, xt, unroll=unroll)
  return jnp.moveaxis(s, 0, time_axis), v_t


class PLIF(nn.Module):
  """Parametric LIF neurons with one learnable time constant.

  Calling the module on `(..., T, H)` (time on the `time_axis` argument,
  -2: channels last, -1: channels first) returns `(spikes, firing_rate)`,
  the rate being the mean spike count per neuron and frame (a float32
  scalar) for energy accounting. `init_state` / `step` run
  one frame at a time; in 'stateless' mode the state is unused.

  Attributes:
    mode: 'stateless' or 'temporal' (see the module docstring).
    init_tau: initial time constant (spikingjelly default 2, i.e. `w = 0`).
    v_th: firing threshold.
    v_reset: rest and reset potential.
    reset: 'hard' or 'soft' ('temporal' mode).
    detach_reset: no gradient through the reset ('temporal' mode).
    surrogate: surrogate gradient name.
    alpha: surrogate sharpness (0 or None: the surrogate's default,
      `DEFAULT_ALPHA`).
    unroll: `lax.scan` unroll factor ('temporal' mode).
  """

  mode: str = 'stateless'
  init_tau: float = 2.0
  v_th: float = 1.0
  v_reset: float = 0.0
  reset: str = 'hard'
  detach_reset: bool = False
  surrogate: str = 'sigmoid'
  alpha: float | None = 0.0
  unroll: int = 1

  def setup(self):
    if self.mode not in NEURON_MODES:
      raise ValueError(
        f'Unknown neuron mode {self.mode!r}; choose one of {NEURON_MODES}.'
      )
    if self.reset not in RESETS:
      raise ValueError(f'Unknown reset {self.reset!r}; choose one of {RESETS}.')
    _check_surrogate(self.surrogate)
    w0 = tau_to_w(self.init_tau)
    self.w = self.param('w', lambda _: jnp.asarray(w0, jnp.float32))

  def _kwargs(self) -> dict:
    return dict(
      v_th=self.v_th,
      v_reset=self.v_reset,
      reset=self.reset,
      detach_reset=self.detach_reset,
      surrogate=self.surrogate,
      alpha=self.alpha or None,
    )

  def _stateless(self, x: jnp.ndarray) -> jnp.ndarray:
    kw = self._kwargs()
    return lif_stateless(
      x, self.w, kw['v_th'], kw['v_reset'], kw['surrogate'], kw['alpha']
    )

  def __call__(
    self, x: jnp.ndarray, time_axis: int = -2
  ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """x: real, time on `time_axis` -> (spikes like x, firing rate scalar)."""
    if self.mode == 'stateless':
      s = self._stateless(x)
    else:
      s, _ = lif_scan(
        x,
        self.w,
        unroll=self.unroll,
        time_axis=time_axis,
        **self._kwargs(),
      )
    return s, jnp.mean(s.astype(jnp.float32))

  def init_state(
    self, shape: tuple[int, ...], dtype=jnp.float32
  ) -> jnp.ndarray:
    """Resting membrane `(*shape)` for `step`."""
    return jnp.full(shape, self.v_reset, dtype)

  def step(
    self, v: jnp.ndarray, x: jnp.ndarray
  ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """One frame. v, x: real (..., H) -> (spikes, next membrane)."""
    if self.mode == 'stateless':
      return self._stateless(x), v
    return lif_step(v, x, self.w, **self._kwargs())
