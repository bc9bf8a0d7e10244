r"""Scores enhancement models on real recorded clean/noisy pairs.

  python benchmarks/real_speech.py --audio_dir=PATH \
      --model=offline=pretrained:spiking_s4 --model=demo=runs/demo [--json=OUT]

`--audio_dir` holds real pairs in any of these layouts (found recursively):
`<set>/clean/X.wav` + `<set>/noisy/X.wav` (VoiceBank+DEMAND), `speech.wav` +
`speech_bab_0dB.wav` (python-pesq's sample) and `clean.wav` + `mixture.wav`
(pystoi's sample). Every model enhances every noisy file whole (16 kHz
mono); the table gives PESQ-WB, STOI, SI-SNR and DNSMOS OVRL per set and
over all pairs for the noisy input and each model, plus each model's
change over the noisy input. `--model=NAME=SPEC`: SPEC is a training
workdir (best checkpoint), a checkpoint folder, `pretrained:NAME` or
`pretrained_seofp:NAME` (its SEOFP-packed weights).
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import glob
import json
import os
import sys
import time

import numpy as np
from absl import app, flags

from data_pipelines import audio_io
from harness import metrics as metrics_lib
from harness import runtime

_AUDIO_DIR = flags.DEFINE_string(
  'audio_dir', None, 'Required. Folder with real clean/noisy pairs.'
)
_MODELS = flags.DEFINE_multi_string(
  'model', [], 'NAME=SPEC: SPEC a workdir, a checkpoint or pretrained:NAME.'
)
_METRICS = flags.DEFINE_list(
  'metrics', ['pesq_wb', 'stoi', 'si_snr', 'dnsmos_ovrl'], 'Metric names.'
)
_JSON = flags.DEFINE_string('json', '', 'Also write all scores here.')
flags.mark_flags_as_required(['audio_dir'])

RATE = 16000
_NAMED_PAIRS = (
  ('speech.wav', 'speech_bab_0dB.wav'),
  ('clean.wav', 'mixture.wav'),
)


def find_pairs(root: str) -> list[tuple[str, str, str]]:
  """`(set name, clean path, noisy path)` for every pair under `root`."""
  pairs = []
  for clean in sorted(
    glob.glob(os.path.join(root, '**/clean/*.wav'), recursive=True)
  ):
    noisy = os.path.join(
      os.path.dirname(os.path.dirname(clean)), 'noisy', os.path.basename(clean)
    )
    if os.path.exists(noisy):
      pairs.append(
        (
          os.path.basename(os.path.dirname(os.path.dirname(clean))),
          clean,
          noisy,
        )
      )
  for clean_name, noisy_name in _NAMED_PAIRS:
    for clean in sorted(
      glob.glob(os.path.join(root, '**', clean_name), recursive=True)
    ):
      noisy = os.path.join(os.path.dirname(clean), noisy_name)
      if os.path.exists(noisy):
        pairs.append((os.path.basename(os.path.dirname(clean)), clean, noisy))
  if not pairs:
    raise app.UsageError(f'No clean/noisy pairs found under {root}.')
  return pairs


def _load_model(spec: str):
  if spec.startswith(('pretrained:', 'pretrained_seofp:')):
    import s4jax  # pylint: disable=g-import-not-at-top

    kind, name = spec.split(':', 1)
    # pretrained_seofp: the same model running its SEOFP-packed weights.
    return s4jax.from_pretrained(name, seofp=kind == 'pretrained_seofp')
  from harness import inference  # pylint: disable=g-import-not-at-top

  is_checkpoint = os.path.basename(os.path.normpath(spec)).isdigit()
  return inference.load_model(spec, step=None if is_checkpoint else 'best')


def _read(path: str) -> np.ndarray:
  audio, rate = audio_io.read_audio(path)  # Mono (channels averaged).
  if rate != RATE:
    raise app.UsageError(
      f'{path}: {rate} Hz; this benchmark expects {RATE} Hz.'
    )
  return audio


def score_all(pairs, models) -> dict[str, dict[str, list[dict]]]:
  """`{system: {set: [per-pair metrics]}}` with 'noisy' as a system."""
  names = tuple(_METRICS.value)
  out: dict[str, dict[str, list[dict]]] = {'noisy': {}}
  signals = []
  for set_name, clean_path, noisy_path in pairs:
    clean, noisy = _read(clean_path), _read(noisy_path)
    n = min(len(clean), len(noisy))
    signals.append((set_name, clean[:n], noisy[:n]))
    row = metrics_lib.compute_metrics(
      names, noisy[:n], clean[:n], sample_rate=RATE
    )
    out['noisy'].setdefault(set_name, []).append(row)
  for name, model in models.items():
    out[name] = {}
    start = time.time()
    for set_name, clean, noisy in signals:
      estimate = np.asarray(model(noisy), np.float64)[: len(clean)]
      row = metrics_lib.compute_metrics(
        names, estimate, clean, sample_rate=RATE
      )
      out[name].setdefault(set_name, []).append(row)
    print(f'{name}: scored in {time.time() - start:.1f} s', file=sys.stderr)
  return out


def _mean(rows: list[dict], metric: str) -> float:
  return float(np.mean([r[metric] for r in rows]))


def table(scores) -> str:
  """Markdown: one row per (system, set) and the all-pairs mean."""
  metrics = list(_METRICS.value)
  sets = list(scores['noisy'])
  lines = [
    '| system | set | pairs | ' + ' | '.join(metrics) + ' |',
    '|---|---|---|' + '---|' * len(metrics),
  ]
  for system, by_set in scores.items():
    groups = [(s, by_set[s]) for s in sets]
    groups.append(('all', [r for s in sets for r in by_set[s]]))
    for set_name, rows in groups:
      cells = []
      for m in metrics:
        value = _mean(rows, m)
        cell = f'{value:.3f}' if m != 'si_snr' else f'{value:.2f}'
        if system != 'noisy':
          base = scores['noisy']
          ref_rows = (
            base[set_name]
            if set_name != 'all'
            else [r for s in sets for r in base[s]]
          )
          cell += f' ({value - _mean(ref_rows, m):+.3f})'
        cells.append(cell)
      lines.append(
        f'| {system} | {set_name} | {len(rows)} | ' + ' | '.join(cells) + ' |'
      )
  return '\n'.join(lines)


def main(argv):
  """Scores the noisy input and each `--model` on the pairs."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  pairs = find_pairs(_AUDIO_DIR.value)
  models = {}
  for entry in _MODELS.value:
    name, sep, spec = entry.partition('=')
    if not sep:
      raise app.UsageError(f'--model={entry}: write NAME=SPEC.')
    models[name] = _load_model(spec)
  scores = score_all(pairs, models)
  print(table(scores))
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump(scores, f, indent=1)


if __name__ == '__main__':
  app.run(main, flags_parser=runtime.parse_flags)
