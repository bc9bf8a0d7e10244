r"""Metric parity on real recordings: PESQ, STOI/ESTOI, DNSMOS, composite.

  python benchmarks/metric_parity.py /path/to/audio

`/path/to/audio` holds `python_pesq/` (ludlows/python-pesq `audio/`:
`speech.wav`, `speech_bab_0dB.wav`, 16 kHz) and optionally `pystoi/`
(mpariente/pystoi `samples/`: `clean.wav`, `mixture.wav`, `denoised.wav`);
the `python_pesq/` folder itself may be given instead.

Checks the `harness.metrics` PESQ wrapper against the values in the
python-pesq README (wide-band 1.0832337141036987, narrow-band
1.6072081327438354) and exits 1 if they differ by more than 1e-6; prints
STOI, ESTOI, DNSMOS (and DNSMOS from `speechmos` itself when it can run, its
P.808 branch stubbed because librosa is not a dependency) and the composite
measures for the record.
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import os
import sys
import time
import types

import numpy as np
import soundfile as sf

from harness import metrics

UPSTREAM_PESQ = {'pesq_wb': 1.0832337141036987, 'pesq_nb': 1.6072081327438354}
TOLERANCE = 1e-6


def _read(path: str) -> tuple[np.ndarray, int]:
  x, sr = sf.read(path, dtype='float64')
  if x.ndim != 1:
    raise SystemExit(f'{path} is not mono.')
  return x, sr


def _speechmos_dnsmos(x: np.ndarray, sr: int) -> dict | None:
  """DNSMOS from speechmos with librosa stubbed (P.835 outputs only)."""
  if 'librosa' not in sys.modules:
    stub = types.ModuleType('librosa')
    stub.feature = types.SimpleNamespace(
      melspectrogram=lambda y, sr, n_fft, hop_length, n_mels: np.zeros(
        (n_mels, len(y) // hop_length)
      )
    )
    stub.power_to_db = lambda s, ref=None: s
    sys.modules['librosa'] = stub
  try:
    from speechmos import dnsmos as sm

    out = sm.run(np.clip(x, -1, 1), sr)
  except Exception as e:  # Reference only; never fail the parity run on it.
    print(f'  (speechmos reference unavailable: {e})')
    return None
  return {
    'dnsmos_sig': float(out['sig_mos']),
    'dnsmos_bak': float(out['bak_mos']),
    'dnsmos_ovrl': float(out['ovrl_mos']),
  }


def pesq_parity(folder: str) -> bool:
  ref, sr = _read(os.path.join(folder, 'speech.wav'))
  deg, sr2 = _read(os.path.join(folder, 'speech_bab_0dB.wav'))
  assert sr == sr2 == 16000, (sr, sr2)
  print(f'## {folder} (speech.wav vs speech_bab_0dB.wav, {sr} Hz)')
  ok = True
  for name, want in UPSTREAM_PESQ.items():
    got = metrics.compute_metrics([name], deg, ref, sample_rate=sr)[name]
    diff = abs(got - want)
    ok &= diff <= TOLERANCE
    print(f'  {name}: {got!r} (upstream {want!r}, |diff| {diff:.1e})')
  names = [
    'stoi',
    'estoi',
    'csig',
    'cbak',
    'covl',
    'llr',
    'wss',
    'segsnr',
    'si_snr',
    'dnsmos_sig',
    'dnsmos_bak',
    'dnsmos_ovrl',
  ]
  res = metrics.compute_metrics(names, deg, ref, sample_rate=sr)
  print('  ' + ', '.join(f'{k} {v:.4f}' for k, v in res.items()))
  ref_mos = _speechmos_dnsmos(deg, sr)
  if ref_mos:
    print(
      '  speechmos DNSMOS: '
      + ', '.join(
        f'{k} {v:.6f} (|diff| {abs(v - res[k]):.1e})'
        for k, v in ref_mos.items()
      )
    )
  return ok


def stoi_dnsmos_record(folder: str) -> None:
  clean, sr = _read(os.path.join(folder, 'clean.wav'))
  print(f'## {folder} ({sr} Hz)')
  for other in ('mixture.wav', 'denoised.wav'):
    path = os.path.join(folder, other)
    if not os.path.exists(path):
      continue
    x, sr2 = _read(path)
    assert sr2 == sr, (sr, sr2)
    n = min(len(x), len(clean))
    t0 = time.perf_counter()
    res = metrics.compute_metrics(
      ['stoi', 'estoi', 'dnsmos_sig', 'dnsmos_bak', 'dnsmos_ovrl'],
      x[:n],
      clean[:n],
      sample_rate=sr,
    )
    secs = time.perf_counter() - t0
    trim = f' (both trimmed to {n} samples)' if n != len(clean) else ''
    print(
      f'  {other} vs clean.wav{trim}: '
      + ', '.join(f'{k} {v:.4f}' for k, v in res.items())
      + f'  [{secs:.1f} s]'
    )
  res = metrics.compute_metrics(
    ['dnsmos_sig', 'dnsmos_bak', 'dnsmos_ovrl'], clean, sample_rate=sr
  )
  print('  clean.wav: ' + ', '.join(f'{k} {v:.4f}' for k, v in res.items()))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('folder', help='audio root or the python_pesq folder')
  args = parser.parse_args(argv)
  root = args.folder
  pesq_dir = os.path.join(root, 'python_pesq')
  if not os.path.isdir(pesq_dir):
    pesq_dir = root
  if not os.path.exists(os.path.join(pesq_dir, 'speech.wav')):
    print(f'error: no speech.wav under {root} or {pesq_dir}', file=sys.stderr)
    return 2
  ok = pesq_parity(pesq_dir)
  stoi_dir = os.path.join(root, 'pystoi')
  if os.path.isdir(stoi_dir):
    stoi_dnsmos_record(stoi_dir)
  print('PESQ parity:', 'OK' if ok else 'MISMATCH')
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
