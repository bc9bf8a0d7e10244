"""Flax Linen S4 / S4D layer: parameters here, math in `s4jax.ssm`.

The layer maps channels-last inputs `(B, L, H)` to `(B, L, H)`:

  y = SSM(u) + D u -> activation -> dropout -> output projection

with the SSM in convolution mode (`__call__`) or in streaming mode
(`init_state` / `step` / `forward_chunk`, forward direction only). Both modes
use the same discretised parameters.

Parameters (complex ones stored as real pairs `(..., 2)`):
  log_dt      (H,)              step sizes, `dt = exp(log_dt)`.
  log_A_real  (n_ssm, N2)       `Re A = -exp(log_A_real)` (always stable).
  A_imag      (n_ssm, N2)       `Im A`.
  B           (n_ssm, N2, 2)    input vector (absent when `learn_b=False`).
  P           (R, n_ssm, N2, 2) low-rank factors (mode 's4' only).
  C           (dirs, H, N2, 2)  output vectors, one per direction (with
                                `l_max` set, mode 's4': `C~ = C (I - Abar^l_max)`).
  D           (H,)              skip connection.
`ssm_param_labels` marks log_dt, log_A_real, A_imag, B and P as 'ssm' so an
optimiser can give them their own learning rate and no weight decay.

The `(A, B, P)` parameters are shared by `H // n_ssm` channels (state-spaces/s4
`n_ssm`); `n_ssm=None` gives every channel its own. Mode 's4' is the DPLR
system with HiPPO-LegS initialisation and bilinear discretisation; mode 's4d'
is diagonal (S4D-LegS/Lin/Inv/Real, zoh or bilinear).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from s4jax.ssm import init as ssm_init
from s4jax.ssm import kernels, recurrence

__all__ = [
  'ACTIVATIONS',
  'MODES',
  'OutputProjection',
  'POSTACTS',
  'S4Layer',
  'SSMParams',
  'SSMSettings',
  'SSM_PARAM_NAMES',
  'ssm_param_labels',
]

SSM_PARAM_NAMES = frozenset({'log_dt', 'log_A_real', 'A_imag', 'B', 'P'})
MODES = ('s4', 's4d')
ACTIVATIONS = (None, 'gelu', 'gelu_tanh', 'silu', 'relu', 'tanh')
POSTACTS = (None, 'glu', 'linear')


def ssm_param_labels(params: Any) -> Any:
  """Labels each parameter leaf 'ssm' (dt, A, B, P) or 'regular'.

  Args:
    params: a parameter pytree (nested dicts as returned by Linen `init`).

  Returns:
    A pytree of the same structure with string leaves, suitable for
    `optax.multi_transform`.
  """

  def label(path, _):
    name = getattr(path[-1], 'key', getattr(path[-1], 'name', None))
    return 'ssm' if name in SSM_PARAM_NAMES else 'regular'

  return jax.tree_util.tree_map_with_path(label, params)


def _to_complex(x: jnp.ndarray) -> jnp.ndarray:
  return jax.lax.complex(x[..., 0], x[..., 1])


def _pairs(x: np.ndarray) -> np.ndarray:
  return np.stack([x.real, x.imag], axis=-1).astype(np.float32)


def _ssm_dtype(u: jnp.ndarray) -> jnp.dtype:
  """The SSM runs in float32, or float64 for float64 inputs (never bf16)."""
  return jnp.promote_types(u.dtype, jnp.float32)


def _activation(name: str | None, x: jnp.ndarray) -> jnp.ndarray:
  if name is None:
    return x
  return {
    'gelu': lambda v: jax.nn.gelu(v, approximate=False),
    'gelu_tanh': lambda v: jax.nn.gelu(v, approximate=True),
    'silu': jax.nn.silu,
    'relu': jax.nn.relu,
    'tanh': jnp.tanh,
  }[name](x)


class SSMSettings(nn.Module):
  """The SSM settings `S4Layer` and its `SSMParams` share (declared once).

  Attributes:
    d_state: state size N (N/2 conjugate pairs are stored).
    mode: 's4' (DPLR, Cauchy kernel) or 's4d' (diagonal, Vandermonde kernel).
    init_scheme: S4D initialisation ('legs', 'lin', 'inv', 'real'); mode 's4'
      always uses HiPPO-LegS.
    rank: rank R of the low-rank term (mode 's4').
    n_ssm: number of independent (A, B, P) copies; None means one per channel.
    dt_min: smallest initial step size.
    dt_max: largest initial step size.
    learn_b: learn B (S4D); False fixes B = 1 as the minimal S4D kernel does.
    use_d: add the `D u` skip.
  """

  d_state: int = 64
  mode: str = 's4d'
  init_scheme: str = 'legs'
  rank: int = 1
  n_ssm: int | None = None
  dt_min: float = 1e-3
  dt_max: float = 1e-1
  learn_b: bool = True
  use_d: bool = True

  def ssm_settings(self) -> dict[str, Any]:
    """This module's `SSMSettings` attributes."""
    return {
      f.name: getattr(self, f.name)
      for f in dataclasses.fields(SSMSettings)
      if f.init and f.name not in ('parent', 'name')
    }


class SSMParams(SSMSettings):
  """Holds the continuous SSM parameters; returns them in complex form.

  Called with the channel count H; may be called several times (the
  parameters are created once). See the module docstring for the layout.

  Attributes:
    directions: output vectors `C` per channel (2: bidirectional).
  """

  directions: int = 1

  def _initial(self):
    if self.mode == 's4':
      lam, p, b, _ = ssm_init.hippo_legs_nplr(self.d_state, self.rank)
      return lam, b, p
    a, b = ssm_init.s4d_init(self.init_scheme, self.d_state // 2)
    return a, b, None

  @nn.compact
  def __call__(self, h: int) -> dict[str, jnp.ndarray | None]:
    """Returns dt (H,), a, b (H, N2), p (R, H, N2) or None, c (dirs, H, N2), d."""
    n_ssm = h if self.n_ssm is None else self.n_ssm
    n2 = self.d_state // 2
    a0, b0, p0 = self._initial()

    def tile(x):
      return np.broadcast_to(x, (n_ssm,) + x.shape)

    def const(x):
      return lambda *_: jnp.asarray(x)

    log_dt = self.param(
      'log_dt',
      lambda k, s: jax.random.uniform(
        k,
        s,
        jnp.float32,
        minval=np.log(self.dt_min),
        maxval=np.log(self.dt_max),
      ),
      (h,),
    )
    log_a_real = self.param(
      'log_A_real', const(np.log(-tile(a0.real)).astype(np.float32))
    )
    a_imag = self.param('A_imag', const(tile(a0.imag).astype(np.float32)))
    b = p = d = None
    if self.mode == 's4' or self.learn_b:
      b = _to_complex(self.param('B', const(_pairs(tile(b0)))))
    if self.mode == 's4':
      p_full = np.broadcast_to(p0[:, None], (self.rank, n_ssm, n2))
      p = _to_complex(self.param('P', const(_pairs(p_full))))
    c_init = nn.initializers.normal(stddev=np.sqrt(0.5))
    # Parameters are float32 whatever jax_enable_x64 says (x64 would make
    # the default float64, and complex128 does not compile for TPUs).
    c = _to_complex(
      self.param('C', c_init, (self.directions, h, n2, 2), jnp.float32)
    )
    if self.use_d:
      d = self.param('D', nn.initializers.normal(1.0), (h,), jnp.float32)
    # (A, B, P) copies are tiled across channels: channel i uses copy i % n_ssm.
    reps = h // n_ssm
    a = jnp.tile(-jnp.exp(log_a_real) + 1j * a_imag, (reps, 1))
    b = jnp.ones_like(a) if b is None else jnp.tile(b, (reps, 1))
    if p is not None:
      p = jnp.tile(p, (1, reps, 1))
    return dict(dt=jnp.exp(log_dt), a=a, b=b, p=p, c=c, d=d)


class OutputProjection(nn.Module):
  """'glu': Dense(H -> 2H) + GLU; 'linear': Dense(H -> H); None: identity."""

  postact: str | None = 'glu'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, y: jnp.ndarray) -> jnp.ndarray:
    h = y.shape[-1]
    if self.postact == 'glu':
      return nn.glu(nn.Dense(2 * h, dtype=self.dtype, name='dense')(y), axis=-1)
    if self.postact == 'linear':
      return nn.Dense(h, dtype=self.dtype, name='dense')(y)
    return y


class S4Layer(SSMSettings):
  """S4 (DPLR) or S4D (diagonal) sequence layer, channels-last.

  The SSM itself is set by the attributes inherited from `SSMSettings`
  (`d_state`, `mode`, `init_scheme`, `rank`, `n_ssm`, `dt_min`, `dt_max`,
  `learn_b`, `use_d`); the layer adds the rest.

  Attributes:
    discretization: 'zoh' or 'bilinear' (mode 's4' is always bilinear).
    bidirectional: add an anti-causal kernel (state-spaces/s4 convention: the
      backward kernel starts at lag 1, lag 0 is the forward kernel's and D's).
    activation: nonlinearity after the SSM (None, 'gelu', ...).
    postact: output projection: 'glu' (Dense H -> 2H then GLU), 'linear'
      (Dense H -> H) or None.
    dropout: dropout rate after the activation.
    dtype: compute dtype of the output projection (the SSM stays float32).
    node_chunk: nodes per chunk in the Cauchy kernel.
    l_max: mode 's4' only: when set, the parameter `C` holds
      `C~ = C (I - Abar^l_max)`, the parametrisation state-spaces/s4 learns,
      so kernels of length <= l_max skip the truncation correction (a shorter
      kernel is the l_max one truncated); longer kernels and streaming recover
      `C` with one `(2 N2, 2 N2)` solve per channel. None learns `C` itself
      and corrects it on every call.
  """

  discretization: str = 'zoh'
  bidirectional: bool = False
  activation: str | None = 'gelu'
  postact: str | None = 'glu'
  dropout: float = 0.0
  dtype: Any = jnp.float32
  node_chunk: int = kernels.NODE_CHUNK
  l_max: int | None = None

  def setup(self):
    self._check()
    self.ssm = SSMParams(
      **self.ssm_settings(), directions=2 if self.bidirectional else 1
    )
    self.drop = nn.Dropout(self.dropout)
    self.output_linear = OutputProjection(self.postact, self.dtype)

  def _check(self) -> None:
    if self.mode not in MODES:
      raise ValueError(f'Unknown S4 mode {self.mode!r}; choose one of {MODES}.')
    if self.d_state % 2:
      raise ValueError(f'd_state must be even, got {self.d_state}.')
    if self.activation not in ACTIVATIONS:
      raise ValueError(
        f'Unknown activation {self.activation!r}: {ACTIVATIONS}.'
      )
    if self.postact not in POSTACTS:
      raise ValueError(f'Unknown postact {self.postact!r}: {POSTACTS}.')
    if self.l_max is not None and (self.mode != 's4' or self.l_max < 1):
      raise ValueError(
        f'l_max={self.l_max} is for mode "s4" only and must be a positive '
        'kernel length (or None).'
      )
    if self.mode == 's4d' and self.init_scheme not in ssm_init.DIAGONAL_INITS:
      raise ValueError(
        f'Unknown S4D init {self.init_scheme!r}: {ssm_init.DIAGONAL_INITS}.'
      )

  def _ssm(self, h: int, dtype: Any = jnp.float32):
    """Continuous parameters for H channels, cast to real `dtype` precision."""
    if self.n_ssm is not None and h % self.n_ssm:
      raise ValueError(f'n_ssm={self.n_ssm} must divide the channel count {h}.')
    complex_dtype = jnp.result_type(dtype, jnp.complex64)
    prm = self.ssm(h)
    return {
      k: None
      if v is None
      else v.astype(complex_dtype if jnp.iscomplexobj(v) else dtype)
      for k, v in prm.items()
    }

  def kernel(
    self, h: int, length: int, dtype: Any = jnp.float32
  ) -> jnp.ndarray:
    """Convolution kernel `(dirs, H, L)`; the backward one shifted by a lag.

    `dtype` is the real precision of the computation (float32 or float64).
    """
    prm = self._ssm(h, dtype)
    if self.mode == 's4':
      use_tilde = self.l_max is not None and length <= self.l_max
      k = kernels.cauchy_kernel(
        prm['a'],
        prm['p'],
        prm['b'],
        prm['c'] if use_tilde else self._plain_c(prm),
        prm['dt'],
        self.l_max if use_tilde else length,
        node_chunk=self.node_chunk,
        c_tilde=use_tilde,
      )[..., :length]
    else:
      k = kernels.vandermonde_kernel(
        prm['a'], prm['b'], prm['c'], prm['dt'], length, self.discretization
      )
    if self.bidirectional:
      back = jnp.pad(k[1], ((0, 0), (1, 0)))[:, :length]
      k = jnp.stack([k[0], back])
    return k

  def _plain_c(self, prm) -> jnp.ndarray:
    """The output vector(s) `C` (dirs, H, N2), recovered from `C~` if learnt."""
    if self.l_max is None:
      return prm['c']
    return kernels.dplr_c_from_tilde(
      prm['a'], prm['p'], prm['dt'], prm['c'], self.l_max
    )

  def _post(self, y, u, deterministic: bool):
    """D skip, activation, dropout and output projection. y, u: (..., H)."""
    d = self._ssm(u.shape[-1], u.dtype)['d']
    if d is not None:
      y = y + d * u
    y = _activation(self.activation, y)
    y = self.drop(y, deterministic=deterministic)
    return self.output_linear(y)

  def __call__(
    self,
    u: jnp.ndarray,
    deterministic: bool = True,
    kernel: jnp.ndarray | None = None,
  ) -> jnp.ndarray:
    """Convolution mode. u: real (B, L, H) -> (B, L, H).

    Args:
      u: input, channels last.
      deterministic: disables dropout.
      kernel: optional precomputed `self.kernel(H, L)` (`(dirs, H, L)`), so a
        layer applied several times to sequences of one length (e.g. a
        weight-shared block) computes its kernel once.

    Returns:
      The layer output, dtype of `u`.
    """
    u32 = u.astype(_ssm_dtype(u))
    if kernel is None:
      kernel = self.kernel(u.shape[-1], u.shape[-2], u32.dtype)
    k = kernel
    y = kernels.fft_conv(u32, k[0] if k.shape[0] == 1 else k)
    return self._post(y, u32, deterministic).astype(u.dtype)

  # Streaming mode -----------------------------------------------------------

  def discrete_ssm(self, h: int, dtype: Any = jnp.float32):
    """The forward-direction discretised system (DiagSSM or DPLRSSM)."""
    if self.bidirectional:
      raise ValueError(
        'A bidirectional S4 layer looks at future inputs and cannot stream; '
        'use bidirectional=False for streaming models.'
      )
    prm = self._ssm(h, dtype)
    if self.mode == 's4':
      c = self._plain_c(prm)[0]
      return recurrence.discretize_dplr(
        prm['a'], prm['p'], prm['b'], c, prm['dt']
      )
    return recurrence.diag_ssm(
      prm['a'], prm['b'], prm['c'][0], prm['dt'], self.discretization
    )

  def init_state(
    self, batch_shape: tuple[int, ...], h: int, dtype: Any = jnp.float32
  ) -> jnp.ndarray:
    """Zero state, complex `(*batch_shape, H, N2)` of `dtype` precision."""
    return recurrence.init_state(batch_shape, self.discrete_ssm(h, dtype))

  def step(self, state: jnp.ndarray, u: jnp.ndarray, ssm=None):
    """One time step. u: real (..., H); returns (y (..., H), next state).

    Args:
      state: complex `(..., H, N2)`.
      u: the input at this step.
      ssm: optional `discrete_ssm(H)` computed once per stream, so a step does
        no discretisation work.
    """
    u32 = u.astype(_ssm_dtype(u))
    if ssm is None:
      ssm = self.discrete_ssm(u.shape[-1], u32.dtype)
    y, state = recurrence.step(ssm, state, u32)
    return self._post(y, u32, True).astype(u.dtype), state

  def forward_chunk(self, state: jnp.ndarray, u: jnp.ndarray, ssm=None):
    """A chunk with state forwarding. u: real (..., T, H); `ssm` as in `step`."""
    u32 = u.astype(_ssm_dtype(u))
    if ssm is None:
      ssm = self.discrete_ssm(u.shape[-1], u32.dtype)
    y, state = recurrence.forward(ssm, u32, state)
    return self._post(y, u32, True).astype(u.dtype), state
