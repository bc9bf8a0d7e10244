"""The import graph of the checkout: no circles, and no import goes up.

Every `.py` file of the checkout is parsed (not imported) and every import
statement in it counts, at module level or inside a function (the lazy
imports that would otherwise hide a circle), under `if TYPE_CHECKING:` too.
An import names a module of the checkout as precisely as it can:
`from harness import metrics` is an edge to `harness.metrics`, `from
s4jax.models import build` an edge to the package `s4jax.models`; importing
a submodule does not count as importing its package's `__init__`. Imports of
other distributions are left out.

The top-level folders form layers. `LAYERS` says which folders each may
import besides itself; everything else is an upward import:

  s4jax                    the library: imports nothing beside it
  configs, harness         recipes; the I/O shell around the library
  data_pipelines, deploy   input pipelines; export (both use harness)
  launch, benchmarks, ...  programs, on top of everything
  tests                    may import anything
"""

import ast
import collections
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_LIBRARY = {'s4jax'}
_SHELL = _LIBRARY | {'configs', 'harness', 'data_pipelines', 'deploy'}
# Folder (or root-level module) -> the folders it may import besides itself.
LAYERS: dict[str, set[str]] = {
  's4jax': set(),
  'configs': _LIBRARY,
  'harness': _LIBRARY,
  'data_pipelines': _LIBRARY | {'harness'},
  'deploy': _LIBRARY | {'harness'},
  'launch': _SHELL,
  'benchmarks': _SHELL,
  'docs': _SHELL,
  'examples': _LIBRARY,  # Programs a user copies: the library alone.
  'tests': _SHELL | {'launch', 'benchmarks', 'docs', 'examples', 'conftest'},
  'conftest': _SHELL,  # The root conftest.py (documentation examples).
}
# Not part of the code: environments, build output, generated pages.
_SKIP_DIRS = {'.venv', 'venv', 'build', 'dist', '_build', '__pycache__'}


def _python_files() -> list[pathlib.Path]:
  """The checkout's .py files: tracked and untracked, not git-ignored."""
  try:
    out = subprocess.run(
      ['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      check=True,
    ).stdout.splitlines()
  except (OSError, subprocess.CalledProcessError):  # Not a git checkout.
    out = []
    for folder, dirs, files in os.walk(ROOT):
      dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and d[0] != '.']
      out += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files]
  paths = [ROOT / p for p in out if p.endswith('.py')]
  return sorted(
    p
    for p in paths
    if p.is_file()
    and not _SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
    and not any(part.endswith('.egg-info') for part in p.parts)
  )


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix('').parts)
  if parts[-1] == '__init__':
    parts.pop()
  return '.'.join(parts)


class Graph:
  """Modules of the checkout and the imports between them."""

  def __init__(self, paths: list[pathlib.Path]):
    self.paths = {_module_name(p): p for p in paths}
    self.packages = {_module_name(p) for p in paths if p.name == '__init__.py'}
    # (importer, imported) -> first line of the import in the importer.
    self.edges: dict[tuple[str, str], int] = {}
    for name, path in self.paths.items():
      tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
      for node in ast.walk(tree):
        for target in self._targets(name, node):
          if target != name:
            self.edges.setdefault((name, target), node.lineno)

  def _known(self, dotted: str) -> str | None:
    """The longest prefix of `dotted` that is a module of the checkout."""
    parts = dotted.split('.')
    for n in range(len(parts), 0, -1):
      candidate = '.'.join(parts[:n])
      if candidate in self.paths:
        return candidate
    return None

  def _resolve(self, importer: str, dotted: str) -> str | None:
    found = self._known(dotted)
    if found is not None:
      return found
    # A program run as a file imports its neighbours by their bare names
    # (launch/_checkout.py as `_checkout`).
    sibling = f'{importer.rpartition(".")[0]}.{dotted}'
    return sibling if sibling in self.paths else None

  def _base(self, importer: str, node: ast.ImportFrom) -> str:
    """The absolute module name of `from <base> import ...`."""
    if not node.level:
      return node.module or ''
    parts = importer.split('.')
    if importer not in self.packages:
      parts.pop()  # A module's relative imports start at its package.
    parts = parts[: len(parts) - node.level + 1]
    return '.'.join([*parts, *filter(None, [node.module])])

  def _targets(self, importer: str, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = self._base(importer, node)
      names = [f'{base}.{alias.name}' for alias in node.names]
    else:
      return []
    found = (self._resolve(importer, n) for n in names)
    return sorted({f for f in found if f is not None})

  def cycles(self) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    succ = collections.defaultdict(list)
    for a, b in self.edges:
      succ[a].append(b)
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
      index[v] = low[v] = len(index)
      stack.append(v)
      on_stack.add(v)
      for w in succ[v]:
        if w not in index:
          visit(w)
          low[v] = min(low[v], low[w])
        elif w in on_stack:
          low[v] = min(low[v], index[w])
      if low[v] == index[v]:
        component = []
        while True:
          w = stack.pop()
          on_stack.discard(w)
          component.append(w)
          if w == v:
            break
        if len(component) > 1:
          out.append(sorted(component))

    for v in sorted(self.paths):
      if v not in index:
        visit(v)
    return out

  def where(self, a: str, b: str) -> str:
    path = self.paths[a].relative_to(ROOT)
    return f'{path}:{self.edges[a, b]} imports {b}'


def _top(module: str) -> str:
  return module.split('.')[0]


@pytest.fixture(scope='module')
def graph() -> Graph:
  return Graph(_python_files())


def test_the_graph_sees_the_checkout(graph):
  for module in ('s4jax.ssm.kernels', 'harness.metrics', 'launch.train'):
    assert module in graph.paths, f'{module} not found: {sorted(graph.paths)}'
  # A lazy (function-level) import is an edge like any other.
  assert ('harness.evaluation', 'harness.metrics') in graph.edges
  assert ('launch.train', 'launch._checkout') in graph.edges


def test_no_import_cycles(graph):
  lines = []
  for component in graph.cycles():
    members = set(component)
    lines.append('circle: ' + ' <-> '.join(component))
    lines += [
      f'  {graph.where(a, b)}'
      for a, b in sorted(graph.edges)
      if a in members and b in members
    ]
  assert not lines, (
    'Import circles (lazy imports count): move what both sides need into a '
    'module below them.\n' + '\n'.join(lines)
  )


def test_every_top_level_folder_has_a_layer(graph):
  unknown = sorted({_top(m) for m in graph.paths} - set(LAYERS))
  assert not unknown, (
    f'{unknown}: not in LAYERS of {__file__}; add each with the folders it '
    'may import.'
  )


def test_the_layers_themselves_form_no_circle():
  order, seen = [], set()

  def visit(folder, path):
    assert folder not in path, f'LAYERS circle: {" -> ".join(path + [folder])}'
    if folder in seen:
      return
    for below in sorted(LAYERS.get(folder, ())):
      visit(below, path + [folder])
    seen.add(folder)
    order.append(folder)

  for folder in sorted(LAYERS):
    visit(folder, [])
  assert order.index('s4jax') == 0 and not LAYERS['s4jax']


def test_no_upward_imports(graph):
  bad = [
    f'{graph.where(a, b)}: {_top(a)} may import only '
    f'{sorted(LAYERS.get(_top(a), ())) or "nothing beside itself"}'
    for a, b in sorted(graph.edges)
    if _top(a) != _top(b)
    and _top(a) in LAYERS
    and _top(b) not in LAYERS.get(_top(a), set())
  ]
  assert not bad, (
    'Imports against the layering (tests/import_graph_test.py LAYERS); '
    'move the shared code down a layer:\n' + '\n'.join(bad)
  )
