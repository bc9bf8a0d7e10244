"""Relative links in README.md and docs/ point to files that exist.

Markdown links and images (`[text](path)`), MyST `{doc}` references and the
paths of `{image}`, `{figure}` and `{include}` directives are resolved
against the file that holds them; web links and in-page anchors are not
checked. (Sphinx checks the same for docs/ when it builds with -W; this test
covers README.md too and needs no build.)
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
GENERATED = ('docs/_build', 'docs/model_cards')

_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
_DOC = re.compile(r'\{doc\}`(?:[^`<]*<)?([^`>]+)>?`')
_DIRECTIVE = re.compile(r'^```\{(?:image|figure|include)\}\s+(\S+)', re.M)


def _pages() -> list[pathlib.Path]:
  docs = [
    p
    for p in (ROOT / 'docs').rglob('*.md')
    if not any(p.relative_to(ROOT).is_relative_to(g) for g in GENERATED)
  ]
  return [ROOT / 'README.md', *sorted(docs)]


def _targets(page: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
  """`(link as written, path it names)` for every local link of `page`."""
  text = page.read_text(encoding='utf-8')
  out = []
  for link in _LINK.findall(text) + _DIRECTIVE.findall(text):
    path = link.split('#', 1)[0]
    if not path or re.match(r'^[a-z]+:', path):  # An anchor, or a URL.
      continue
    out.append((link, page.parent / path))
  for ref in _DOC.findall(text):
    base = ROOT / 'docs' if ref.startswith('/') else page.parent
    out.append((ref, base / f'{ref.lstrip("/")}.md'))
  return out


@pytest.mark.parametrize(
  'page', _pages(), ids=lambda p: str(p.relative_to(ROOT))
)
def test_local_links_resolve(page):
  missing = [link for link, path in _targets(page) if not path.exists()]
  assert not missing, (
    f'{page.relative_to(ROOT)} links to missing files: {missing}'
  )


def test_readme_is_short_and_links_into_the_docs():
  readme = (ROOT / 'README.md').read_text(encoding='utf-8')
  assert len(readme.encode('utf-8')) <= 12 * 1024
  linked = {str(path.resolve()) for _, path in _targets(ROOT / 'README.md')}
  assert str((ROOT / 'docs' / 'index.md').resolve()) in linked
