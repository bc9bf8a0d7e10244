r"""Renders s4jax's plain-text docstrings as valid reStructuredText.

s4jax docstrings follow the Google style (`Args:`, `Returns:`, ...), which
`sphinx.ext.napoleon` reads, and write everything else as plain text meant
for `help()`: indented formulas, shapes and code after a line ending in a
colon, markdown tables, `|x|` for magnitudes, and "`jax.Array`s". Read as
reST those are syntax errors. Before napoleon runs, this extension turns

* an indented block that is not a list into a literal block (shown as
  written), a markdown table likewise;
* an indented list into a list, set apart by blank lines;
* `|` outside code into `\|` (no substitution), and a word glued to a
  closing backtick ("`x`s") into "`x`\ s".

Google-style sections are left to napoleon. Signatures of Flax modules
lose the `parent` and `name` fields that every Linen module has.
"""

from __future__ import annotations

import inspect
import re

_SECTIONS = re.compile(
  r'^\s*(Args|Arguments|Attributes|Example|Examples|Keyword Args|'
  r'Keyword Arguments|Methods|Note|Notes|Other Parameters|Parameters|'
  r'Raises|References|Return|Returns|See Also|Todo|Warning|Warnings|Warns|'
  r'Yield|Yields):\s*$'
)
_BULLET = re.compile(r'^(\s*)([*+-]|\d+[.)]) +')
_CODE = re.compile(r'(`[^`]*`)')
_GLUED = re.compile(r'(`[^`\s][^`]*`)(?=[A-Za-z0-9])')


def _indent(line: str) -> int:
  return len(line) - len(line.lstrip())


def escape_inline(line: str) -> str:
  """`line` with `|` escaped outside backticks and glued suffixes split."""
  parts = _CODE.split(line)
  for i in range(0, len(parts), 2):  # Even parts are outside backticks.
    parts[i] = parts[i].replace('|', r'\|')
  return _GLUED.sub(r'\1\\ ', ''.join(parts))


def _block_end(lines: list[str], start: int, base: int) -> int:
  """The end of the run of lines after `start` indented deeper than `base`."""
  end = start
  i = start
  while i < len(lines):
    if lines[i].strip():
      if _indent(lines[i]) <= base:
        break
      end = i + 1
    i += 1
  return end


def _literal(out: list[str], block: list[str], indent: str = '') -> None:
  """Appends `block` as a literal block (turning a trailing ':' into '::')."""
  while out and not out[-1].strip():
    out.pop()
  if out and out[-1].rstrip().endswith(':') and not _SECTIONS.match(out[-1]):
    out[-1] = out[-1].rstrip() + ':'
  else:
    out.extend(['', '::'] if out else ['::'])
  out.append('')
  out.extend(indent + line if line.strip() else '' for line in block)
  out.append('')


def fix_lines(lines: list[str]) -> list[str]:
  """The docstring `lines` (dedented) as valid reST for napoleon."""
  out: list[str] = []
  i = 0
  prev_bullet = False  # The paragraph before is a list item at indent 0.
  while i < len(lines):
    line = lines[i]
    if not line.strip():
      out.append('')
      i += 1
      continue
    indent = _indent(line)
    if indent == 0 and _SECTIONS.match(line):
      end = _block_end(lines, i + 1, 0)
      out.extend(escape_inline(x) for x in lines[i:end])
      i, prev_bullet = end, False
      continue
    if indent == 0 and line.lstrip().startswith('|'):
      end = i
      while end < len(lines) and lines[end].lstrip().startswith('|'):
        end += 1
      _literal(out, lines[i:end], '  ')
      i, prev_bullet = end, False
      continue
    if indent == 0:
      if out and out[-1].strip() and _indent(out[-1]) > 0:
        out.append('')  # A paragraph right after an indented block.
      prev_bullet = bool(_BULLET.match(line)) or (
        prev_bullet and bool(out and out[-1].strip())
      )
      out.append(escape_inline(line))
      i += 1
      continue
    # An indented block.
    end = _block_end(lines, i, 0)
    block = lines[i:end]
    if prev_bullet and out and out[-1].strip():
      out.extend(escape_inline(x) for x in block)  # A list item continues.
    elif _BULLET.match(block[0]):
      if out and out[-1].strip():
        out.append('')
      out.extend(escape_inline(x) for x in block)
      out.append('')
    else:
      _literal(out, block)
    i, prev_bullet = end, False
  return out


def _process(app, what, name, obj, options, lines):
  del app, name, options
  if what in ('data', 'attribute') and _is_type_doc(obj, lines):
    lines[:] = []  # A constant without its own doc: not `dict`'s docstring.
    return
  lines[:] = fix_lines(lines)


def _is_type_doc(obj, lines: list[str]) -> bool:
  """Whether `lines` are merely the docstring of `obj`'s type."""
  doc = inspect.getdoc(type(obj))
  return bool(doc) and '\n'.join(lines).strip() == doc.strip()


_FLAX_FIELDS = re.compile(r', parent: [^=]*= <[^>]*>(, name: [^=]*= None)?')


def _signature(app, what, name, obj, options, signature, return_annotation):
  """Drops the `parent` and `name` fields every Flax Linen module has."""
  del app, what, name, obj, options
  if signature and 'parent: ' in signature:
    signature = _FLAX_FIELDS.sub('', signature)
  return signature, return_annotation


def setup(app):
  """Connects before napoleon (priority 500) so it reads the fixed text."""
  app.connect('autodoc-process-docstring', _process, priority=100)
  app.connect('autodoc-process-signature', _signature)
  return {'parallel_read_safe': True, 'parallel_write_safe': True}
