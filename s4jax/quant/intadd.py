"""Integer-add inference with SEOFP weights: products by adding bit patterns.

For a float32 `x` and a weight `w = +-2^(E-127)` (zero fraction), the float32
product is the bit pattern

  bits(x * w) = bits(x) + bits(w) - 0x3F800000      (mod 2^32)

whenever `x` and the product are normal numbers: the exponent fields add,
0x3F800000 (= 127 << 23) removes one bias, the fraction of `x` is untouched
and adding the sign bits modulo 2^32 XORs them (SEOFP-NET, Lin et al.,
IEEE/ACM TASLP 30, 2022, arXiv 2111.04436: the weights are "slightly
adjusted" before inference so that a floating-point multiplier becomes an
integer adder; here the adjustment is the precomputed `bits(w) - 0x3F800000`).

`multiply_by_adding` takes that path where it is exact and handles every other
case with integer operations so that the result always equals IEEE 754
float32 multiplication with round-to-nearest-even, as NumPy computes it:
zero weights or inputs give signed zeros, overflow gives +-inf, underflow
gives the correctly rounded subnormal (or zero), subnormal inputs are
normalised, inf * 0 is NaN, NaN inputs return NaN. Two documented
deviations:

  * the weight is read as its truncation (sign and exponent only): a weight
    with fraction bits set is not an SEOFP weight, and `x * w` is then
    `x * truncate(w)`;
  * XLA's CPU float multiply flushes subnormal inputs and results to zero;
    this integer path does not, so in those cases it matches NumPy, not
    `jnp.multiply` on CPU.

`int_add_dense` / `int_add_conv1x1` build a dense layer and a 1x1 convolution
on these products; they accumulate in float32 over input channels in order
(a sequential sum, so they differ from `x @ w` only by summation order:
`|y_int - y_dot| <= 2 gamma_n sum_i |x_i w_i|`, `gamma_n = n u / (1 - n u)`,
`u = 2^-24`, `n` the number of input channels per group). A cheap range
check per call picks the bare bit-add kernel when every product is a normal
number and the exact kernel otherwise; both give the same products.

`interceptor` / `int_add_apply` reroute `nn.Dense` and 1x1 `nn.Conv` layers of
any Linen model through this path at trace time, without model changes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from s4jax.quant import rules as rules_lib
from s4jax.quant import seofp

__all__ = [
  'ABS',
  'ALL_ONES',
  'DEFAULT_NAN',
  'EXP',
  'FRACTION',
  'HIDDEN_BIT',
  'IntAddConv1x1',
  'IntAddDense',
  'InterceptLog',
  'ONE_BITS',
  'QUIET_BIT',
  'SIGN',
  'SIGN_EXP',
  'int_add_apply',
  'int_add_conv1x1',
  'int_add_dense',
  'interceptor',
  'multiply_by_adding',
]

ONE_BITS = np.uint32(0x3F800000)  # bits(1.0f) = 127 << 23.
SIGN = seofp.SIGN_MASK
ABS = seofp.ABS_MASK
EXP = seofp.EXP_MASK
SIGN_EXP = np.uint32(0xFF800000)
FRACTION = np.uint32(0x007FFFFF)
HIDDEN_BIT = np.uint32(0x00800000)
QUIET_BIT = np.uint32(0x00400000)
DEFAULT_NAN = np.uint32(0x7FC00000)
ALL_ONES = np.uint32(0xFFFFFFFF)


def _bits(x: jax.Array) -> jax.Array:
  return lax.bitcast_convert_type(x, jnp.uint32)


def _float(b: jax.Array) -> jax.Array:
  return lax.bitcast_convert_type(b, jnp.float32)


def _field(b: jax.Array) -> jax.Array:
  """Biased exponent field (int32) of float32 bits."""
  return ((b & EXP) >> 23).astype(jnp.int32)


def _scaled_magnitude(ax: jax.Array, ew: jax.Array) -> jax.Array:
  """Bits of `|x| * 2^(ew - 127)` rounded to nearest even, IEEE float32.

  Args:
    ax: uint32 bits of a finite, non-zero `|x|` (normal or subnormal).
    ew: int32 exponent field of the weight, 1..254.

  Returns:
    uint32 magnitude bits (normal, subnormal, zero or inf).
  """
  ex = _field(ax)
  m = jnp.where(ex == 0, ax & FRACTION, (ax & FRACTION) | HIDDEN_BIT)
  t = jnp.maximum(ex, 1) - 150 + (ew - 127)  # |x w| = m * 2^t exactly.
  lz = lax.clz(m).astype(jnp.int32) - 8  # Normalise m to [2^23, 2^24).
  m = m << lz.astype(jnp.uint32)
  e = t - lz + 150  # Biased exponent of a normal result.
  normal = (jnp.maximum(e, 0).astype(jnp.uint32) << 23) | (m & FRACTION)
  # Subnormal result: fraction m * 2^(e - 1), rounded to nearest even.
  shift = jnp.clip(1 - e, 1, 25).astype(jnp.uint32)
  q = m >> shift
  rem = m & ((np.uint32(1) << shift) - 1)
  half = np.uint32(1) << (shift - 1)
  up = (rem > half) | ((rem == half) & ((q & 1) == 1))
  sub = q + up.astype(jnp.uint32)  # May carry into the smallest normal.
  return jnp.where(e >= 255, EXP, jnp.where(e >= 1, normal, sub))


def _product_bits(bx: jax.Array, bw: jax.Array) -> jax.Array:
  """IEEE float32 bits of `x * truncate(w)` from the operands' bits."""
  w_nan = (bw & ABS) > EXP
  bw_t = bw & SIGN_EXP
  sign = (bx ^ bw_t) & SIGN
  ax = bx & ABS
  ex, ew = _field(bx), _field(bw_t)
  e = ex + ew - 127
  # The method: one integer add, exact for normal x and a normal product.
  fast = bx + (bw_t - ONE_BITS)
  fast_ok = (ex >= 1) & (ex <= 254) & (ew >= 1) & (ew <= 254)
  fast_ok &= (e >= 1) & (e <= 254)
  x_nan, x_inf, x_zero = ax > EXP, ax == EXP, ax == 0
  w_inf, w_zero = (ew == 255) & ~w_nan, ew == 0
  out = sign | _scaled_magnitude(ax, jnp.clip(ew, 1, 254))
  out = jnp.where(x_zero | w_zero, sign, out)
  out = jnp.where(x_inf | w_inf, sign | EXP, out)
  out = jnp.where((x_inf & w_zero) | (w_inf & x_zero), DEFAULT_NAN, out)
  out = jnp.where(w_nan, bw | QUIET_BIT, out)
  out = jnp.where(x_nan, bx | QUIET_BIT, out)
  return jnp.where(fast_ok, fast, out)


def _check_float32(name: str, x: Any) -> jax.Array:
  x = jnp.asarray(x)
  if x.dtype != jnp.float32:
    raise TypeError(f'{name} must be float32, got {x.dtype}.')
  return x


def multiply_by_adding(x: jax.Array, w: jax.Array) -> jax.Array:
  """`x * w` for SEOFP weights `w`, computed by adding bit patterns.

  Args:
    x: float32 array.
    w: float32 array of signed powers of two or zeros (broadcasts with `x`);
      fraction bits, if any, are ignored (`x * truncate(w)`).

  Returns:
    float32 array equal, bit for bit, to IEEE float32 `x * w` (NaNs compare
    as NaN); see the module docstring.
  """
  x, w = _check_float32('x', x), _check_float32('w', w)
  return _multiply(x, w)


@jax.jit
def _multiply(x: jax.Array, w: jax.Array) -> jax.Array:
  return _float(_product_bits(_bits(x), _bits(w)))


def _fast_dense(bx: jax.Array, bw: jax.Array) -> jax.Array:
  """Sequential sum over inputs of bit-added products, all normal.

  A zero operand zeroes its products with a bit mask, giving +0 where IEEE
  gives a signed zero; a float32 sum started at +0 never holds -0 under
  round-to-nearest, so adding +0 or -0 leaves it unchanged and the sums
  equal those of the exact products.

  Args:
    bx: uint32 input bits, `(I, N)` or grouped `(I, N, G)`.
    bw: uint32 weight bits (fraction bits are ignored), `(I, O)` or grouped
      `(I, G, O)`.

  Returns:
    float32 `(N, O)` or `(N, G, O)`.
  """
  bw = bw & SIGN_EXP
  adj = bw - ONE_BITS  # The weights' precomputed adjustment.
  keep_w = jnp.where((bw & EXP) == 0, np.uint32(0), ALL_ONES)

  def step(acc, inputs):
    bxi, adji, keep_wi = inputs
    keep_x = jnp.where((bxi & ABS) == 0, np.uint32(0), ALL_ONES)
    p = (bxi[..., None] + adji) & keep_x[..., None] & keep_wi
    return acc + _float(p), None

  init = jnp.zeros(bx.shape[1:] + bw.shape[-1:], jnp.float32)
  return lax.scan(step, init, (bx, adj, keep_w))[0]


def _exact_dense(bx: jax.Array, bw: jax.Array) -> jax.Array:
  """As `_fast_dense`, every product through the exact path."""

  def step(acc, inputs):
    bxi, bwi = inputs
    return acc + _float(_product_bits(bxi[..., None], bwi)), None

  init = jnp.zeros(bx.shape[1:] + bw.shape[-1:], jnp.float32)
  return lax.scan(step, init, (bx, bw))[0]


def _all_products_normal(bx: jax.Array, bw: jax.Array) -> jax.Array:
  """Whether every product can take the bare bit-add path.

  True when x has no inf, NaN or subnormal, w no inf or NaN, and the
  exponent extremes keep every product of non-zero operands normal. Magnitude
  bits order like the magnitudes, so two integer reductions per operand
  suffice.
  """
  ax, aw = bx & ABS, bw & EXP
  x_hi, w_hi = jnp.max(ax, initial=0), jnp.max(aw, initial=0)
  # ABS stands for "no non-zero operand" (field 255 keeps the sum >= 128).
  x_lo = jnp.min(jnp.where(ax == 0, ABS, ax), initial=ABS)
  w_lo = jnp.min(jnp.where(aw == 0, ABS, aw), initial=ABS)
  ok = (x_hi < EXP) & (x_lo >= HIDDEN_BIT) & (w_hi < EXP)
  ok &= _field(x_lo) + _field(w_lo) >= 128  # Smallest product normal.
  return ok & (_field(x_hi) + _field(w_hi) <= 381)  # Largest finite.


def int_add_dense(
  x: jax.Array,
  w: jax.Array,
  bias: jax.Array | None = None,
  *,
  groups: int = 1,
) -> jax.Array:
  """Dense layer whose multiplications are integer additions.

  Args:
    x: float32 `(..., I)`.
    w: float32 SEOFP weights `(I // groups, O)` (Flax Dense / Conv layout).
    bias: optional float32 `(O,)`, added in float.
    groups: input/output channel groups (Flax `feature_group_count`): group
      g maps inputs `[g I/G, (g+1) I/G)` to outputs `[g O/G, (g+1) O/G)`.

  Returns:
    float32 `(..., O)`: `x @ w + bias`, products bit-identical to float32
    products, summed in input-channel order.
  """
  x, w = _check_float32('x', x), _check_float32('w', w)
  if w.ndim != 2 or x.ndim < 1:
    raise ValueError(
      f'int_add_dense needs x (..., I) and w (I, O); got {x.shape}, {w.shape}.'
    )
  n_in, n_out = x.shape[-1], w.shape[-1]
  if n_in % groups or n_out % groups or w.shape[0] * groups != n_in:
    raise ValueError(
      f'Shapes x {x.shape}, w {w.shape} do not fit groups={groups}: need '
      'I = groups * w.shape[0] and O divisible by groups.'
    )
  y = _dense(x, w, groups)
  if bias is not None:
    y = y + _check_float32('bias', bias)
  return y


@functools.partial(jax.jit, static_argnums=(2,))
def _dense(x: jax.Array, w: jax.Array, groups: int) -> jax.Array:
  lead, n_out = x.shape[:-1], w.shape[-1]
  x = x.reshape(math.prod(lead), x.shape[-1])
  # The operands enter the conditional as floats and each branch does its own
  # bit casts and layout: handing it the uint32 views instead made the whole
  # layer about 2x slower on XLA:CPU (benchmarks/seofp_bench.py shapes).
  y = lax.cond(
    _all_products_normal(_bits(x), _bits(w)),
    functools.partial(_grouped, _fast_dense, groups=groups),
    functools.partial(_grouped, _exact_dense, groups=groups),
    x,
    w,
  )
  return y.reshape(lead + (n_out,))


def _grouped(fn: Callable, x: jax.Array, w: jax.Array, groups: int):
  """Runs `fn` on the bits of `x (N, I)`, `w (I/G, O)`, input axis first.

  With one group `fn` gets `(I, N)` and `(I, O)`; with G groups
  `(I/G, N, G)` and `(I/G, G, O/G)`.
  """
  n, n_in = x.shape
  bx, bw = _bits(x), _bits(w)
  if groups == 1:
    return fn(bx.T, bw)
  bx = bx.reshape(n, groups, n_in // groups).transpose(2, 0, 1)
  y = fn(bx, bw.reshape(n_in // groups, groups, -1))
  return y.reshape(n, -1)


def int_add_conv1x1(
  x: jax.Array,
  kernel: jax.Array,
  bias: jax.Array | None = None,
  *,
  feature_group_count: int = 1,
) -> jax.Array:
  """1x1 convolution (channels last) as an integer-add dense layer.

  Args:
    x: float32 `(batch..., spatial..., C_in)`.
    kernel: SEOFP Flax Conv kernel `(1, ..., 1, C_in // groups, C_out)`.
    bias: optional `(C_out,)`.
    feature_group_count: groups (C_in for a depthwise convolution).

  Returns:
    float32 `(batch..., spatial..., C_out)`.
  """
  kernel = _check_float32('kernel', kernel)
  if kernel.ndim < 2 or any(k != 1 for k in kernel.shape[:-2]):
    raise ValueError(
      f'int_add_conv1x1 needs a kernel of spatial size 1, got shape '
      f'{kernel.shape}.'
    )
  w = kernel.reshape(kernel.shape[-2:])
  return int_add_dense(x, w, bias, groups=feature_group_count)


class IntAddDense(nn.Module):
  """Drop-in `nn.Dense` (same parameters) for inference on the integer path.

  The float32 kernel is quantised with `quant` (idempotent: SEOFP kernels
  pass unchanged) and applied with `int_add_dense`. Not differentiable; train
  with `nn.Dense` and `rules.fake_quant_params`.
  """

  features: int
  use_bias: bool = True
  quant: seofp.QuantConfig = seofp.QuantConfig()
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    shape = (jnp.shape(x)[-1], self.features)
    kernel = self.quant.quantize(self.param('kernel', self.kernel_init, shape))
    bias = None
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,))
    return int_add_dense(jnp.asarray(x, jnp.float32), kernel, bias)


class IntAddConv1x1(nn.Module):
  """Drop-in 1x1 `nn.Conv` (same parameters) on the integer path."""

  features: int
  spatial_dims: int = 1
  feature_group_count: int = 1
  use_bias: bool = True
  quant: seofp.QuantConfig = seofp.QuantConfig()
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c_in = jnp.shape(x)[-1] // self.feature_group_count
    shape = (1,) * self.spatial_dims + (c_in, self.features)
    kernel = self.quant.quantize(self.param('kernel', self.kernel_init, shape))
    bias = None
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,))
    x = jnp.asarray(x, jnp.float32)
    return int_add_conv1x1(
      x, kernel, bias, feature_group_count=self.feature_group_count
    )


@dataclasses.dataclass
class InterceptLog:
  """What `interceptor` did, filled in at trace time.

  Attributes:
    rerouted: parameter paths of kernels run on the integer-add path.
    skipped: `(path, reason)` of Dense/Conv layers left on the float path.
  """

  rerouted: list[str] = dataclasses.field(default_factory=list)
  skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def _all_ones(value: Any) -> bool:
  if value is None:
    return True
  values = value if isinstance(value, (tuple, list)) else (value,)
  return all(v == 1 for v in values)


def _zero_padding(padding: Any) -> bool:
  if isinstance(padding, str):
    return True  # Every named padding adds nothing to a size-1 kernel.
  flat = np.asarray(padding, dtype=object).ravel().tolist()
  return all(p == 0 for p in flat)


def _float32_module(module: nn.Module) -> str | None:
  for attr in ('dtype', 'param_dtype'):
    dtype = getattr(module, attr)
    if dtype is not None and jnp.dtype(dtype) != jnp.float32:
      return f'{attr} {jnp.dtype(dtype)} (integer path is float32)'
  return None


def _unsupported(module: nn.Module, kernel: jax.Array) -> str | None:
  """Why a bound Dense/Conv cannot take the integer path (None if it can)."""
  reason = _float32_module(module)
  if reason:
    return reason
  if isinstance(module, nn.Dense):
    if module.dot_general is not None or module.dot_general_cls is not None:
      return 'custom dot_general'
    return None
  if any(k != 1 for k in kernel.shape[:-2]):
    return f'kernel size {tuple(kernel.shape[:-2])} is not 1x1'
  if not (_all_ones(module.strides) and _all_ones(module.input_dilation)):
    return 'strided or input-dilated convolution'
  if not _zero_padding(module.padding):
    return f'explicit padding {module.padding!r}'
  if module.mask is not None:
    return 'masked kernel'
  if module.conv_general_dilated is not None:
    return 'custom conv_general_dilated'
  if module.conv_general_dilated_cls is not None:
    return 'custom conv_general_dilated_cls'
  return None


def interceptor(
  rules: rules_lib.QuantRules, log: InterceptLog | None = None
) -> Callable:
  """A `flax.linen.intercept_methods` interceptor for integer-add inference.

  Every `nn.Dense` and 1x1 `nn.Conv` (strides 1, no padding, float32) whose
  kernel path `rules` select is computed with `int_add_dense` on
  `rules.quant.quantize(kernel)` (a no-op on already quantised kernels);
  everything else runs unchanged. Paths are relative to the 'params'
  collection, as in `rules.quantize_params(variables['params'], rules)`.

  Args:
    rules: the rules the parameters were (or would be) quantised with.
    log: optional `InterceptLog` to record rerouted and skipped layers.

  Returns:
    `interceptor(next_fun, args, kwargs, context)`.
  """
  log = InterceptLog() if log is None else log

  def intercept(next_fun, args, kwargs, context):
    module = context.module
    is_layer = isinstance(module, (nn.Dense, nn.Conv))
    if context.method_name != '__call__' or not is_layer:
      return next_fun(*args, **kwargs)
    path = '/'.join(tuple(module.scope.path) + ('kernel',))
    if not module.has_variable('params', 'kernel'):
      log.skipped.append((path, 'kernel not initialised'))
      return next_fun(*args, **kwargs)
    kernel = module.get_variable('params', 'kernel')
    reason = _unsupported(module, kernel)
    if reason is None and not rules.is_selected(path):
      reason = 'kernel not selected by the quant rules'
    if reason is not None:
      log.skipped.append((path, reason))
      return next_fun(*args, **kwargs)
    log.rerouted.append(path)
    x = args[0] if args else kwargs['inputs']
    x = jnp.asarray(x).astype(jnp.float32)
    kernel = rules.quant.quantize(jnp.asarray(kernel, jnp.float32))
    bias = module.get_variable('params', 'bias') if module.use_bias else None
    if isinstance(module, nn.Dense):
      return int_add_dense(x, kernel, bias)
    groups = module.feature_group_count
    return int_add_conv1x1(x, kernel, bias, feature_group_count=groups)

  return intercept


def int_add_apply(
  apply_fn: Callable,
  rules: rules_lib.QuantRules,
  log: InterceptLog | None = None,
) -> Callable:
  """Wraps `model.apply` so its Dense/1x1 Conv layers use the integer path.

  The interceptor is active while the wrapped function runs, so jitting the
  wrapper (`jax.jit(int_add_apply(model.apply, rules))`) traces it in.

  Args:
    apply_fn: a Linen `apply` (or any function that calls Linen modules).
    rules: `rules.QuantRules` used to quantise the parameters.
    log: optional `InterceptLog`.

  Returns:
    A function with `apply_fn`'s signature.
  """
  intercept = interceptor(rules, log)

  def wrapped(*args, **kwargs):
    with nn.intercept_methods(intercept):
      return apply_fn(*args, **kwargs)

  return wrapped
