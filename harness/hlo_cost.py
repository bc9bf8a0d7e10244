"""Flops and bytes of a compiled XLA program with loop trip counts put back.

XLA's `HloCostAnalysis` (behind `Compiled.cost_analysis()`) visits a while
loop's body once, whatever its trip count (jax-ml/jax#13956, #18672), so a
train step whose model runs `nn.scan` over 16 blocks, or a time-step scan,
is under-counted by up to the trip count. This module corrects for it from
the optimised HLO text of the program:

1. the module is split into its computations, and every `while` is found
   with its condition and body;
2. each loop's trip count is read from XLA's `known_trip_count` annotation
   when present, else from the usual counted-loop shape: the condition
   compares a tuple element with a constant (`i < N`), the init tuple starts
   that element at a constant and the body adds a constant to it;
3. each computation is costed on its own by XLA's generic `HloCostAnalysis`
   (jaxlib's CPU client, run on the target's optimised module with that
   computation as the entry), and the full cost is
   `F(c) = C(c) + sum over loops w reached from c (T_w F(body_w) - C(body_w))`,
   which replaces the body counted once by its trip count of full bodies
   (nested loops multiply); XLA counts a `conditional` as its costliest
   branch, so loops inside branches add the largest branch's correction.

A loop whose trip count cannot be read is counted once and listed in
`LoopCost.unknown`, so an estimate never silently hides one. Collectives and
custom calls are not modelled by the analysis (XLA counts them as zero
flops).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Any

import numpy as np

__all__ = [
  'Loop',
  'LoopCost',
  'Module',
  'describe',
  'generic_cost',
  'loop_corrected_cost',
]

_HEADER = re.compile(r'^(ENTRY )?%([\w.\-]+) \(.*\{\s*$')
_INSTR = re.compile(r'^\s*(ROOT )?%([\w.\-]+) = (.*)$')
_WHILE = re.compile(
  r'\swhile\((%[\w.\-]+)\), condition=%([\w.\-]+), body=%([\w.\-]+)'
)
_CALLED = re.compile(
  r'(?:calls|to_apply|true_computation|false_computation|'
  r'called_computations|branch_computations|async_wrapped_computation)='
  r'\{?([%\w.\-, ]+)\}?'
)
_BRANCHES = re.compile(
  r'(?:true_computation|false_computation)=%?([\w.\-]+)|'
  r'branch_computations=\{([%\w.\-, ]+)\}'
)
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_KEYS = ('flops', 'transcendentals', 'bytes accessed')


@dataclasses.dataclass(frozen=True)
class Loop:
  """One `while` instruction of the module.

  Attributes:
    computation: the computation holding the `while`.
    condition: its condition computation.
    body: its body computation.
    trip_count: iterations, or None when it could not be read.
    op_name: the JAX op name from the instruction's metadata ('' if none).
  """

  computation: str
  condition: str
  body: str
  trip_count: int | None
  op_name: str


@dataclasses.dataclass(frozen=True)
class LoopCost:
  """Per-device cost of a program, loop bodies counted once and corrected.

  Attributes:
    counted_once: XLA's generic analysis of the whole module, each loop body
      once (`flops`, `transcendentals`, `bytes accessed`).
    corrected: the same with every loop body multiplied by its trip count.
    loops: every `while` of the module.
    unknown: loops whose trip count could not be read (counted once).
  """

  counted_once: dict[str, float]
  corrected: dict[str, float]
  loops: tuple[Loop, ...]
  unknown: tuple[Loop, ...]


class Module:
  """The computations and instructions of an HLO module's text.

  Args:
    text: `Compiled.as_text()` (optimised HLO of one device's program).
  """

  def __init__(self, text: str):
    self.lines = text.split('\n')
    self.spans: dict[str, tuple[int, int]] = {}
    self.entry = None
    self._index()
    if self.entry is None:
      raise ValueError('No ENTRY computation in the HLO text.')

  def _index(self) -> None:
    current = None
    for i, line in enumerate(self.lines):
      header = _HEADER.match(line)
      if header:
        current = (header.group(2), i)
        if header.group(1):
          self.entry = header.group(2)
      elif line == '}' and current:
        self.spans[current[0]] = (current[1], i)
        current = None

  @functools.cached_property
  def instructions(self) -> dict[str, dict[str, str]]:
    """`{computation: {instruction name: its text after '='}}`."""
    out = {}
    for name, (start, end) in self.spans.items():
      table = {}
      for line in self.lines[start + 1 : end]:
        m = _INSTR.match(line)
        if m:
          table[m.group(2)] = m.group(3)
          if m.group(1):
            table['ROOT'] = m.group(2)
      out[name] = table
    return out

  def text_with_entry(self, name: str) -> str:
    """The module's text with computation `name` as its entry."""
    lines = list(self.lines)
    first = next(i for i, x in enumerate(lines) if x.startswith('HloModule'))
    lines[first] = 'HloModule cost_of_' + re.sub(r'\W', '_', name)
    for other, (start, _) in self.spans.items():
      header = lines[start].removeprefix('ENTRY ')
      lines[start] = 'ENTRY ' + header if other == name else header
    return '\n'.join(lines)

  def loops(self) -> list[Loop]:
    """Every `while` instruction, with its trip count when readable."""
    found = []
    for comp, table in self.instructions.items():
      for inst in table.values():
        m = _WHILE.search(' ' + inst)
        if not m:
          continue
        trip = _TRIP.search(inst)
        count = int(trip.group(1)) if trip else None
        if count is None:
          count = self._counted_loop_trips(
            comp, m.group(1)[1:], *m.groups()[1:]
          )
        op = re.search(r'op_name="([^"]*)"', inst)
        found.append(
          Loop(comp, m.group(2), m.group(3), count, op.group(1) if op else '')
        )
    return found

  def conditionals(self, comp: str) -> list[tuple[str, ...]]:
    """The branch computations of each `conditional` in `comp`."""
    out = []
    for inst in self.instructions.get(comp, {}).values():
      if ' conditional(' not in ' ' + inst:
        continue
      names = []
      for single, group in _BRANCHES.findall(inst):
        names += [single] if single else group.split(',')
      names = [n.strip().lstrip('%') for n in names]
      out.append(tuple(n for n in names if n in self.spans))
    return out

  def callees(self, comp: str) -> set[str]:
    """Computations called from `comp` other than by a `while` or branch."""
    out = set()
    for inst in self.instructions.get(comp, {}).values():
      text = ' ' + inst
      if _WHILE.search(text) or ' conditional(' in text:
        continue
      for group in _CALLED.findall(inst):
        for ref in group.split(','):
          ref = ref.strip().lstrip('%')
          if ref in self.spans:
            out.add(ref)
    return out

  def reachable(self, comp: str) -> set[str]:
    """`comp` and every computation it calls, loop bodies included."""
    seen, todo = set(), [comp]
    while todo:
      name = todo.pop()
      if name in seen or name not in self.spans:
        continue
      seen.add(name)
      todo += self.callees(name)
      for inst in self.instructions.get(name, {}).values():
        m = _WHILE.search(' ' + inst)
        if m:
          todo += [m.group(2), m.group(3)]
    return seen

  def library_gemm_cost(self, comp: str) -> np.ndarray:
    """`[flops, 0, bytes]` of the library matmuls called in `comp`.

    XLA's GPU compiler turns dots into custom calls to cuBLAS, which the
    generic analysis counts as nothing; their flops are `2 * output
    elements * contracted size` and their bytes the operands and output.
    """
    total = np.zeros(3)
    table = self.instructions.get(comp, {})
    for inst in table.values():
      if 'custom_call_target="__cublas' not in inst:
        continue
      dims = re.search(r'"lhs_contracting_dimensions":\[([^\]]*)\]', inst)
      args = self._operands(inst)
      out = _shapes(inst.split(' custom-call(')[0])
      if not dims or not args or not out:
        continue
      lhs = _shapes(table.get(args[0], ''))
      if not lhs:
        continue
      contract = [int(x.strip('" ')) for x in dims.group(1).split(',') if x]
      k = math.prod(lhs[0][1][i] for i in contract)
      out_dtype, out_shape = out[0]
      total[0] += 2 * math.prod(out_shape) * k
      operands = [_shapes(table.get(a, '')) for a in args]
      total[2] += sum(_nbytes(*x[0]) for x in operands + [[out[0]]] if x)
    return total

  # Counted loops: `i < N` on tuple element k, k starting at a constant and
  # stepping by a constant. `_expr` reads an instruction as a small
  # expression, looking through copies, converts and fusions (whose
  # parameters stand for the fusion's operands).

  def _counted_loop_trips(
    self, comp: str, init: str, cond: str, body: str
  ) -> int | None:
    test = self._expr(cond, self._root(cond))
    if test[0] != 'compare':
      return None
    _, direction, a, b = test
    if b[0] == 'gte' and a[0] == 'constant':
      flip = {'GT': 'LT', 'GE': 'LE', 'LT': 'GT', 'LE': 'GE', 'NE': 'NE'}
      a, b, direction = b, a, flip.get(direction, '')
    if a[0] != 'gte' or b[0] != 'constant':
      return None
    index, bound = a[1], b[1]
    start = self._tuple_element(comp, init, index)
    step = self._step(body, index)
    if start is None or not step:
      return None
    span = bound - start
    if direction == 'LE':
      span += step
    elif direction not in ('LT', 'NE'):
      return None
    return max(0, math.ceil(span / step))

  def _root(self, comp: str) -> str:
    return self.instructions.get(comp, {}).get('ROOT', '')

  def _operands(self, inst: str) -> list[str]:
    m = re.search(r'\s[\w\-]+\(([^)]*)\)', ' ' + inst.split(', metadata=')[0])
    if not m:
      return []
    return [x.strip().lstrip('%') for x in m.group(1).split(',') if x.strip()]

  def _opcode(self, inst: str) -> str:
    m = re.search(r'\s([\w\-]+)\(', ' ' + inst.split(', metadata=')[0])
    return m.group(1) if m else ''

  def _expr(self, comp: str, name: str, outer: tuple | None = None) -> tuple:
    """Instruction `name` of `comp` as a small expression tuple.

    Returns:
      `('constant', c)`, `('gte', k)`, `('add', x, y)`,
      `('compare', direction, x, y)`, or `('?',)` for anything else.
    """
    inst = self.instructions.get(comp, {}).get(name, '')
    op, args = self._opcode(inst), self._operands(inst)
    if op in ('copy', 'bitcast', 'convert', 'reshape') and args:
      return self._expr(comp, args[0], outer)
    if op == 'parameter' and outer is not None:
      pos = int(re.search(r'parameter\((\d+)\)', inst).group(1))
      outer_comp, outer_args, outer_outer = outer
      if pos < len(outer_args):
        return self._expr(outer_comp, outer_args[pos], outer_outer)
    if op == 'fusion':
      called = re.search(r'calls=%([\w.\-]+)', inst)
      if called:
        fused = called.group(1)
        return self._expr(fused, self._root(fused), (comp, args, outer))
    if op == 'constant':
      m = re.search(r'constant\((-?\d+)\)', inst)
      return ('constant', int(m.group(1))) if m else ('?',)
    if op == 'get-tuple-element':
      m = re.search(r'index=(\d+)', inst)
      return ('gte', int(m.group(1))) if m else ('?',)
    if op == 'add' and len(args) == 2:
      return ('add', self._expr(comp, args[0], outer),
              self._expr(comp, args[1], outer))  # fmt: skip
    if op == 'compare' and len(args) == 2:
      direction = re.search(r'direction=(\w+)', inst)
      return ('compare', direction.group(1) if direction else '',
              self._expr(comp, args[0], outer),
              self._expr(comp, args[1], outer))  # fmt: skip
    return ('?',)

  def _tuple_element(self, comp: str, init: str, index: int) -> int | None:
    inst = self.instructions[comp].get(init, '')
    args = self._operands(inst)
    if self._opcode(inst) != 'tuple' or index >= len(args):
      return None
    value = self._expr(comp, args[index])
    return value[1] if value[0] == 'constant' else None

  def _step(self, body: str, index: int) -> int | None:
    root = self.instructions.get(body, {}).get(self._root(body), '')
    args = self._operands(root)
    if self._opcode(root) != 'tuple' or index >= len(args):
      return None
    update = self._expr(body, args[index])
    if update[0] != 'add':
      return None
    for counter, const in ((update[1], update[2]), (update[2], update[1])):
      if counter == ('gte', index) and const[0] == 'constant':
        return const[1]
    return None


_SHAPE = re.compile(r'\b([a-z]+\d*)\[([\d,]*)\]')
_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'bf16': 2, 'f16': 2, 'c64': 8}


def _shapes(text: str) -> list[tuple[str, tuple[int, ...]]]:
  """`(dtype, dims)` of every array shape at the start of an instruction."""
  head = text.split('(', 1)[0] if not text.startswith('(') else text
  head = head.split(' custom-call')[0].split(')')[0] + ')'
  return [
    (d, tuple(int(x) for x in dims.split(',') if x))
    for d, dims in _SHAPE.findall(head)
  ]


def _nbytes(dtype: str, dims: tuple[int, ...]) -> int:
  width = _BYTES.get(dtype)
  if width is None:
    bits = re.search(r'(\d+)$', dtype)
    width = int(bits.group(1)) // 8 if bits else 4
  return width * math.prod(dims)


def generic_cost(module_text: str) -> dict[str, float]:
  """XLA's generic `HloCostAnalysis` of an HLO module's text.

  Runs jaxlib's CPU client analysis, which reads any platform's optimised
  HLO (TPU tile layouts included) but knows nothing of TPU tile padding.

  Returns:
    `{'flops', 'transcendentals', 'bytes accessed'}` for one device.
  """
  # pylint: disable=g-import-not-at-top
  import jax
  from jax._src.lib import _jax
  from jaxlib import _hlo

  module = _hlo.hlo_module_from_text(module_text)
  client = jax.devices('cpu')[0].client
  raw = _jax.hlo_module_cost_analysis(client, module)
  return {k: max(float(raw.get(k, 0.0)), 0.0) for k in _KEYS}


def loop_corrected_cost(text: str) -> LoopCost:
  """Per-device flops and bytes of an optimised HLO module, loops corrected.

  Args:
    text: `Compiled.as_text()`.

  Returns:
    A `LoopCost` (see the module docstring for the method).
  """
  module = Module(text)
  loops = module.loops()
  by_comp: dict[str, list[Loop]] = {}
  for loop in loops:
    by_comp.setdefault(loop.computation, []).append(loop)

  @functools.cache
  def counted_once(comp: str) -> tuple[float, ...]:
    cost = generic_cost(module.text_with_entry(comp))
    gemms = sum(
      (module.library_gemm_cost(c) for c in module.reachable(comp)),
      np.zeros(3),
    )
    return tuple(float(cost[k] + g) for k, g in zip(_KEYS, gemms, strict=True))

  @functools.cache
  def extra(comp: str) -> np.ndarray:
    """What the loops reached from `comp` add to XLA's count of `comp`."""
    total = np.zeros(len(_KEYS))
    for loop in by_comp.get(comp, ()):
      if loop.trip_count is not None:
        body = np.asarray(counted_once(loop.body))
        total += loop.trip_count * (body + extra(loop.body)) - body
    for branches in module.conditionals(comp):
      # XLA costs a conditional as its most expensive branch, key by key
      # (HloCostAnalysis::HandleConditional): add the largest correction.
      if branches:
        total += np.max([extra(b) for b in branches], axis=0)
    for callee in sorted(module.callees(comp)):
      total += extra(callee)
    return total

  def full(comp: str) -> tuple[float, ...]:
    return tuple(float(x) for x in np.asarray(counted_once(comp)) + extra(comp))

  entry = module.entry
  return LoopCost(
    counted_once=dict(zip(_KEYS, counted_once(entry), strict=True)),
    corrected=dict(zip(_KEYS, full(entry), strict=True)),
    loops=tuple(loops),
    unknown=tuple(x for x in loops if x.trip_count is None),
  )


def describe(cost: LoopCost) -> list[dict[str, Any]]:
  """The loops of `cost` as JSON-ready rows (op name, trip count)."""
  return [
    {'op_name': x.op_name, 'trip_count': x.trip_count, 'body': x.body}
    for x in cost.loops
  ]
