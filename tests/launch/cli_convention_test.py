"""Every `launch/` tool follows one command-line convention.

absl flags; `--help` (and `-h`) prints the module docstring and the tool's
own flags to stdout and exits 0; every flag has help text; required flags
say so ('Required.') and the tool refuses to run without them.
"""

import glob
import os
import re

import pytest

from tests.launch import cli

# Tool -> the flags absl must refuse to run without (their help starts with
# 'Required.'). Tools whose requirement is conditional (enhance/separate:
# one of --workdir, --checkpoint and --pretrained; score: --reference unless
# DNSMOS only)
# say so in the help of those flags and check it themselves.
TOOLS = {
  'train.py': {'config', 'workdir'},
  'evaluate.py': {'workdir'},
  'enhance.py': None,
  'separate.py': None,
  'score.py': {'estimate'},
  'summary.py': {'config'},
  'synthesize.py': {'clean_dir', 'noise_dir', 'output_dir'},
  'demo.py': set(),
  'export_pretrained.py': {'workdir', 'name'},
  'build_corpus.py': set(),
  'export.py': {'output_dir'},
  'compile.py': {'config'},
}
_ENTRY = re.compile(r'^  (?:-\S,)?--(?:\[no\])?(\w+): ?(.*)$')


def own_flags(script: str, stdout: str) -> dict[str, str]:
  """`{flag: help}` of the `launch/<script>:` section of a `--help` text."""
  lines = stdout.splitlines()
  heading = f'launch/{script}:'
  assert heading in lines, f'{script} --help: no {heading!r} section'
  flags, name = {}, None
  for line in lines[lines.index(heading) + 1 :]:
    if not line.strip() or not line.startswith('  '):
      break
    found = _ENTRY.match(line)
    if found:
      name = found.group(1)
      flags[name] = found.group(2).strip()
    elif name is not None and not re.fullmatch(r'\(.*\)', line.strip()):
      # A wrapped help line; '(default: ...)' and '(a number)' are not help.
      flags[name] = f'{flags[name]} {line.strip()}'.strip()
  return flags


def test_every_launch_tool_is_checked():
  scripts = {
    os.path.basename(path)
    for path in glob.glob(f'{cli.ROOT}/launch/*.py')
    if "__name__ == '__main__'" in open(path).read()
  }
  assert scripts == set(TOOLS), (
    f'tools with a main: {sorted(scripts)}; checked here: {sorted(TOOLS)}'
  )


@pytest.mark.parametrize('script', sorted(TOOLS))
def test_help_prints_usage_and_every_flag_has_help(script):
  result = cli.run(script, '--help', timeout=120)
  assert result.returncode == 0, (
    f'{script} --help exited {result.returncode}; stderr:\n'
    f'{result.stderr[-2000:]}'
  )
  out = result.stdout
  with open(f'{cli.ROOT}/launch/{script}') as f:
    first_doc_line = f.read().split('"""')[1].splitlines()[0].strip()
  assert first_doc_line in out, (
    f'{script} --help does not start with its module docstring '
    f'({first_doc_line!r}); stdout:\n{out[:2000]}'
  )
  assert 'flags:' in out and 'Traceback' not in result.stderr, out[-2000:]
  flags = own_flags(script, out)
  assert flags, f'{script} --help lists no flags:\n{out[-2000:]}'
  for name, text in flags.items():
    assert text and text != '(no help available)', (
      f'{script}: flag --{name} has no help text (got {text!r})'
    )
  required = TOOLS[script]
  if required is not None:
    marked = {n for n, t in flags.items() if t.startswith('Required.')}
    assert marked == required, (
      f'{script}: flags whose help starts with "Required." are '
      f'{sorted(marked)}, expected {sorted(required)}'
    )


@pytest.mark.parametrize(
  'script, args',
  [('train.py', ['-h']), ('score.py', ['--helpfull'])],
)
def test_short_and_full_help_exit_zero(script, args):
  result = cli.run(script, *args, timeout=120)
  assert result.returncode == 0, (
    f'{script} {" ".join(args)} exited {result.returncode}:\n'
    f'{result.stderr[-2000:]}'
  )
  assert f'launch/{script}:' in result.stdout, result.stdout[-2000:]
  if args == ['--helpfull']:
    # Full help adds the other modules' flags (absl logging, ...).
    assert '--verbosity' in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize(
  'script, args, flag',
  [
    ('summary.py', [], '--config'),
    ('score.py', [], '--estimate'),
    ('synthesize.py', ['--clean_dir=a', '--noise_dir=b'], '--output_dir'),
  ],
)
def test_required_flags_are_enforced(script, args, flag):
  result = cli.run(script, *args, timeout=120)
  cli.assert_fails_with(result, f'Flag {flag} must have a value', '--help')
