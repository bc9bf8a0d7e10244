r"""The README's main job: train -> evaluate -> enhance, on built-in data.

  python launch/demo.py --workdir=runs/demo

1. `launch/train.py --config=configs/demo.py` trains a small Spiking-S4 on
   the built-in synthetic speech data (generated on first use, cached).
2. `launch/evaluate.py` scores the last checkpoint on the whole built-in
   validation set (SI-SNR, SI-SNRi, PESQ-WB, STOI) and writes
   `<workdir>/eval/validation_step_<N>.{json,md}`. The same metrics of the
   noisy input itself (the same clips, scored as if they were the output) are
   the "before" column: the demo prints noisy input -> enhanced for each
   metric and writes that table to
   `<workdir>/eval/noisy_vs_enhanced_validation_step_<N>.md`.
3. A clip of the synthetic test split is written to `<workdir>/example/`
   (`noisy.wav`, `clean.wav`), `launch/enhance.py` enhances it into
   `<workdir>/example/enhanced.wav`, and its SI-SNR before and after is
   printed.

Each step is the command-line program a user would run, in its own process;
the demo prints each command ready to paste into a shell. Rerunning resumes
or skips finished work. `--smoke` runs the same pipeline in seconds (tests).
"""

from __future__ import annotations

if not __package__:  # Run as a file: see launch/_checkout.py.
  import _checkout  # noqa: F401

import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence

from absl import app, flags

from harness import runtime

_WORKDIR = flags.DEFINE_string(
  'workdir',
  'runs/demo',
  'Run directory: checkpoints, TensorBoard logs, eval/ reports and the '
  'example/ clips (rerunning resumes).',
)
_CONFIG = flags.DEFINE_string(
  'config', 'configs/demo.py', 'Recipe file given to train.py and evaluate.py.'
)
_SMOKE = flags.DEFINE_bool(
  'smoke',
  False,
  'Tiny model, data and run that finish in seconds (tests); adds '
  ':smoke=True to --config and scores SI-SNR and SI-SNRi only.',
)

FULL_METRICS = ('si_snr', 'si_snri', 'pesq_wb', 'stoi')
SMOKE_METRICS = ('si_snr', 'si_snri')
SPLIT = 'validation'
LAUNCH = os.path.dirname(os.path.abspath(__file__))
LABELS = {
  'si_snr': 'SI-SNR (dB)',
  'si_snri': 'SI-SNRi (dB)',
  'si_sdr': 'SI-SDR (dB)',
  'si_sdri': 'SI-SDRi (dB)',
  'snr': 'SNR (dB)',
  'pesq_wb': 'PESQ-WB',
  'pesq_nb': 'PESQ-NB',
  'stoi': 'STOI',
  'estoi': 'ESTOI',
}


def metrics_override(names: Sequence[str]) -> str:
  """`--config.eval.metrics=(...)` for `names`, a Python tuple literal."""
  items = ','.join(f'"{n}"' for n in names)
  return f'--config.eval.metrics=({items}{"," if len(names) == 1 else ""})'


def _run(
  title: str, cmd: list[str], rename: tuple[str, str] | None = None
) -> None:
  """Prints `cmd` as a shell command line, runs it, exits if it fails.

  Args:
    title: the step's name.
    cmd: the program and its arguments.
    rename: `(source, destination)` moved afterwards (printed as `mv`).
  """
  print(f'\n=== {title} ===', flush=True)
  start = time.time()
  print(shlex.join(cmd), flush=True)
  done = subprocess.run(cmd, check=False)
  if done.returncode:
    name = os.path.basename(cmd[1])
    sys.exit(f'error: {name} failed (exit {done.returncode}).')
  if rename is not None:
    print(shlex.join(['mv', *rename]), flush=True)
    os.replace(*rename)
  print(f'--- {title}: {time.time() - start:.0f} s', flush=True)


def _tool(script: str, *args: str) -> list[str]:
  return [sys.executable, os.path.join(LAUNCH, script), *args]


def write_example(folder: str, sample_rate: int, seconds: float) -> str:
  """Writes a synthetic test-split clip (`noisy.wav`, `clean.wav`)."""
  from data_pipelines import audio_io, synthetic  # pylint: disable=g-import-not-at-top

  spec = synthetic.SyntheticSpec(
    split='test',
    total_seconds=seconds,
    clip_seconds=seconds,
    sample_rate=sample_rate,
  )
  example = synthetic.make_example(spec, 0)
  for name in ('noisy', 'clean'):
    audio_io.write_audio(
      os.path.join(folder, f'{name}.wav'),
      example[name],
      sample_rate,
      subtype='FLOAT',
    )
  return os.path.join(folder, 'noisy.wav')


def _si_snr(path: str, clean: str) -> float:
  from data_pipelines import audio_io  # pylint: disable=g-import-not-at-top
  from harness import metrics  # pylint: disable=g-import-not-at-top

  x, _ = audio_io.read_audio(path)
  ref, _ = audio_io.read_audio(clean)
  return metrics.compute_metrics(['si_snr'], x, ref)['si_snr']


def latest_report(workdir: str, split: str = SPLIT) -> str:
  """The `<workdir>/eval/<split>_step_<N>.json` with the largest N."""
  pattern = os.path.join(workdir, 'eval', f'{split}_step_*.json')
  steps = {}
  for path in glob.glob(pattern):
    found = re.fullmatch(rf'{split}_step_(\d+)\.json', os.path.basename(path))
    if found:
      steps[int(found.group(1))] = path
  if not steps:
    sys.exit(f'error: evaluation wrote no report matching {pattern}.')
  return steps[max(steps)]


def noisy_baseline(workdir: str, names: Sequence[str]) -> dict[str, float]:
  """Means of `names` with the noisy input as the estimate, on `SPLIT`.

  The clips, lengths and metric code are those evaluation scores the model
  output with; metrics relative to the input (SI-SNRi, SI-SDRi) are 0 by
  definition and left out. Cached in `<workdir>/eval/noisy_input_<split>.json`.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  from harness import metrics  # pylint: disable=g-import-not-at-top

  names = [n for n in names if n not in metrics.NEEDS_NOISY]
  with open(os.path.join(workdir, 'config.json')) as f:
    config_json = json.load(f)
  cache = os.path.join(workdir, 'eval', f'noisy_input_{SPLIT}.json')
  if os.path.exists(cache):
    with open(cache) as f:
      cached = json.load(f)
    if cached.get('data') == config_json['data'] and set(names) <= set(
      cached['metrics']
    ):
      return {n: cached['metrics'][n] for n in names}
  config = ml_collections.ConfigDict(config_json)
  examples = []
  batches = input_pipeline.create_eval_iterator(
    config, SPLIT, process_index=0, process_count=1
  )
  for batch in batches:
    if 'noisy' not in batch or 'clean' not in batch:
      return {}  # Not an enhancement recipe: no noisy-input baseline.
    full = batch['noisy'].shape[-1]
    lengths = batch.get('length', np.full(len(batch['noisy']), full))
    for i in np.flatnonzero(batch['mask']):
      n = int(min(lengths[i], full))
      examples.append((batch['noisy'][i, :n], batch['clean'][i, :n]))
  results = metrics.evaluate_examples(
    examples,
    names,
    sample_rate=int(config.data.sample_rate),
    num_workers=2 if set(names) - {'si_snr', 'si_sdr', 'snr'} else 0,
  )
  means = {k: v['mean'] for k, v in metrics.summarize(results).items()}
  with open(cache, 'w') as f:
    json.dump(
      {'data': config_json['data'], 'count': len(examples), 'metrics': means},
      f,
      indent=1,
    )
  return {n: means[n] for n in names}


def comparison_table(
  report: dict, baseline: dict[str, float], names: Sequence[str]
) -> str:
  """Markdown table: metric | noisy input | enhanced | change."""
  lines = [
    f'Built-in {report["split"]} split, {report["num_examples"]} '
    f'clip{"s" if report["num_examples"] != 1 else ""}, '
    f'step {report["step"]}: noisy input -> enhanced.',
    '',
    '| metric | noisy input | enhanced | change |',
    '|---|---:|---:|---:|',
  ]
  for name in names:
    after = report['metrics'].get(name)
    if after is None:
      continue
    digits = 3 if name in ('stoi', 'estoi') else 2
    before = baseline.get(name)
    if before is None:
      cells = ('-', f'{after:.{digits}f}', '-')
    else:
      cells = (
        f'{before:.{digits}f}',
        f'{after:.{digits}f}',
        f'{after - before:+.{digits}f}',
      )
    lines.append(f'| {LABELS.get(name, name)} | {" | ".join(cells)} |')
  return '\n'.join(lines)


def main(argv):
  """Runs the three steps (see the module docstring)."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  workdir = os.path.abspath(_WORKDIR.value)
  config = _CONFIG.value + (':smoke=True' if _SMOKE.value else '')
  names = SMOKE_METRICS if _SMOKE.value else FULL_METRICS
  start = time.time()
  _run(
    'train',
    _tool('train.py', f'--config={config}', f'--workdir={workdir}'),
  )
  _run(
    'evaluate',
    _tool(
      'evaluate.py',
      f'--config={config}',
      f'--workdir={workdir}',
      metrics_override(names),
      '--config.eval.num_workers=2',
    ),
  )
  with open(latest_report(workdir)) as f:
    report = json.load(f)
  table = comparison_table(report, noisy_baseline(workdir, names), names)
  table_path = os.path.join(
    workdir, 'eval', f'noisy_vs_enhanced_{SPLIT}_step_{report["step"]}.md'
  )
  with open(table_path, 'w') as f:
    f.write(table + '\n')
  print(f'\n{table}\n(written to {table_path})', flush=True)

  folder = os.path.join(workdir, 'example')
  noisy = write_example(folder, 16000, 2.0 if _SMOKE.value else 6.0)
  # enhance.py names its output after the input; it goes to a scratch folder
  # and is renamed, so example/ holds noisy.wav, clean.wav and enhanced.wav.
  scratch = os.path.join(folder, 'enhance_output')
  enhanced = os.path.join(folder, 'enhanced.wav')
  _run(
    'enhance',
    _tool(
      'enhance.py',
      f'--workdir={workdir}',
      noisy,
      f'--output_dir={scratch}',
      '--subtype=FLOAT',
    ),
    rename=(os.path.join(scratch, 'noisy.wav'), enhanced),
  )
  try:
    os.rmdir(scratch)
  except OSError:
    pass  # Not empty: leave what else is there.
  clean = os.path.join(folder, 'clean.wav')
  before, after = _si_snr(noisy, clean), _si_snr(enhanced, clean)
  print(
    f'\nExample clip in {folder}: SI-SNR of noisy.wav {before:.2f} dB -> '
    f'enhanced.wav {after:.2f} dB ({after - before:+.2f} dB) against '
    'clean.wav.'
  )
  print(f'Demo finished in {time.time() - start:.0f} s.')


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
