"""Loop-corrected cost analysis against closed-form flop counts (CPU HLO)."""

import re

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from harness import accelerators, hlo_cost
from s4jax.training import sharding
from tests import tpu_target

# What `launch/compile.py` reads is XLA's optimised program: test on it.
OPTIMISED_XLA = True

M, K = 32, 64
MATMUL = 2 * M * K * K  # flops of one (M, K) @ (K, K) product


def _matmul_loop(length: int, start: int = 0):
  """`length` chained matmuls in a counted loop starting at `start`."""

  def f(x, w):
    body = lambda i, c: jnp.tanh(c @ w + i)  # noqa: E731
    return jax.lax.fori_loop(start, start + length, body, x).sum()

  return f


def _text(f, *shapes) -> str:
  args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
  return jax.jit(f).lower(*args).compile().as_text()


def _without_trip_annotations(text: str) -> str:
  return re.sub(r'"known_trip_count":\{"n":"\d+"\}', '"x":{}', text)


@pytest.mark.parametrize('annotated', [True, False])
@pytest.mark.parametrize('length,start', [(10, 0), (7, 2)])
def test_counted_loop_flops_match_the_closed_form(annotated, length, start):
  text = _text(_matmul_loop(length, start), (M, K), (K, K))
  if not annotated:  # The counted-loop pattern alone must give the count.
    text = _without_trip_annotations(text)
  cost = hlo_cost.loop_corrected_cost(text)
  assert [x.trip_count for x in cost.loops] == [length], cost.loops
  expected = length * MATMUL
  got = cost.corrected['flops']
  # Besides the matmuls: adds and tanh, a few flops per element per step.
  assert expected <= got <= expected * 1.1, (expected, got)
  once = cost.counted_once['flops']
  assert once < 1.1 * MATMUL + 4 * M * K, (
    f'XLA should count one loop body ({MATMUL} matmul flops), counted {once}'
  )
  assert cost.unknown == ()


def test_nested_loops_multiply():
  def f(x, w):
    inner = lambda i, c: jnp.tanh(c @ w)  # noqa: E731
    outer = lambda i, c: jax.lax.fori_loop(0, 4, inner, c)  # noqa: E731
    return jax.lax.fori_loop(0, 3, outer, x).sum()

  cost = hlo_cost.loop_corrected_cost(_text(f, (M, K), (K, K)))
  assert sorted(x.trip_count for x in cost.loops) == [3, 4], cost.loops
  expected = 12 * MATMUL
  got = cost.corrected['flops']
  assert expected <= got <= expected * 1.1, (expected, got)


def test_scan_over_layers_counts_every_layer():
  def f(x, ws):
    return jax.lax.scan(lambda c, w: (jnp.tanh(c @ w), None), x, ws)[0].sum()

  cost = hlo_cost.loop_corrected_cost(_text(f, (M, K), (16, K, K)))
  expected = 16 * MATMUL
  assert expected <= cost.corrected['flops'] <= expected * 1.1, cost.corrected
  # Bytes grow with the trip count too: each layer reads its (K, K) weights.
  assert cost.corrected['bytes accessed'] >= 16 * K * K * 4, cost.corrected


def test_loops_in_branches_count_the_costliest_branch_once():
  # XLA counts a conditional as its costliest branch: 10 matmuls, not 15.
  def f(p, x, w):
    ten = lambda x: jax.lax.fori_loop(0, 10, lambda i, c: c @ w, x)  # noqa: E731
    five = lambda x: jax.lax.fori_loop(0, 5, lambda i, c: c @ w, x)  # noqa: E731
    return jax.lax.cond(p.sum() > 0, ten, five, x).sum()

  cost = hlo_cost.loop_corrected_cost(_text(f, (), (M, K), (K, K)))
  assert sorted(x.trip_count for x in cost.loops) == [5, 10], cost.loops
  expected = 10 * MATMUL
  got = cost.corrected['flops']
  assert expected <= got <= expected * 1.1, (expected, got)


def test_data_dependent_loop_is_counted_once_and_listed():
  def f(x, w):
    cond = lambda c: c[1] < c[0].sum()  # noqa: E731
    body = lambda c: (jnp.tanh(c[0] @ w), c[1] + 1.0)  # noqa: E731
    return jax.lax.while_loop(cond, body, (x, 0.0))[0].sum()

  cost = hlo_cost.loop_corrected_cost(_text(f, (M, K), (K, K)))
  assert len(cost.unknown) == 1 and cost.unknown[0].trip_count is None
  assert cost.corrected == cost.counted_once


def test_module_without_entry_is_refused():
  with pytest.raises(ValueError, match='ENTRY'):
    hlo_cost.Module('HloModule m\n')


@pytest.mark.skipif(not tpu_target.AVAILABLE, reason=tpu_target.REASON)
def test_tpu_loop_flops_per_chip_match_the_closed_form():
  devices = accelerators.tpu_devices('v5e:2x2')
  mesh = sharding.create_mesh(devices=devices)
  rows, width, layers = 4 * 256, 512, 12

  def f(x, ws):
    return jax.lax.scan(lambda c, w: (jnp.tanh(c @ w), None), x, ws)[0].sum()

  x = jax.ShapeDtypeStruct(
    (rows, width), jnp.float32, sharding=NamedSharding(mesh, P('data'))
  )
  ws = jax.ShapeDtypeStruct(
    (layers, width, width), jnp.float32, sharding=NamedSharding(mesh, P())
  )
  compiled = jax.jit(f).lower(x, ws).compile()
  cost = hlo_cost.loop_corrected_cost(compiled.as_text())
  per_chip = layers * 2 * (rows // 4) * width * width
  got = cost.corrected['flops']
  assert per_chip <= got <= 1.05 * per_chip, (per_chip, got)
  assert [x.trip_count for x in cost.loops] == [layers], cost.loops
  tpu_once = compiled.cost_analysis()['flops']
  assert tpu_once < 0.2 * per_chip, f'XLA counted {tpu_once}: not once?'
