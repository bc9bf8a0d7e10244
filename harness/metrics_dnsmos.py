"""DNSMOS P.835 (SIG, BAK, OVRL), computed offline with onnxruntime.

The model is `sig_bak_ovr.onnx` as shipped inside the `speechmos` wheel
(`speechmos/dnsmos_models/`), the same network the Microsoft DNS Challenge's
`DNSMOS/dnsmos_local.py` and the Intel N-DNS challenge's `dnsmos.py` load.
The procedure follows those two scripts:

* audio at 16 kHz (other rates are resampled here; `dnsmos_local.py` does the
  same with librosa);
* a clip shorter than 9.01 s is tiled (concatenated with itself) until it is
  at least 9.01 s long;
* windows of `int(9.01 * 16000) = 144160` samples, hop 1 s,
  `floor(len / fs - 9.01) + 1` of them. The reference scripts cut window
  `idx` as `audio[int(idx * fs):int((idx + 9.01) * fs)]` and skip any
  window shorter than 144160 samples; because `(idx + 9.01) * 16000` rounds
  to just below an integer for `7 <= idx <= 23`, those windows are skipped,
  so a 30 s clip is scored on its first 7 windows (0-15 s) only.
  `windows` reproduces this by default for parity with published numbers;
  `all_windows=True` scores every window instead;
* the raw network outputs of each window are mapped by the challenge's
  quadratic fits (`np.poly1d` coefficients, highest power first):
  SIG `[-0.08397278, 1.22083953, 0.00524390]`,
  BAK `[-0.13166888, 1.60915514, -0.39604546]`,
  OVRL `[-0.06766283, 1.11546468, 0.04602535]`,
  and the mapped scores are averaged over windows.

The raw waveform (float32) is the network input: the P.835 model computes its
own features, so no mel front end is needed (that belongs to the separate
P.808 model, not used here). The model file is located with
`importlib.util.find_spec`, which does not import `speechmos` (and so not
librosa). `onnxruntime` is imported lazily.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

import numpy as np

from harness import metrics_common

SAMPLE_RATE = 16000
INPUT_LENGTH = 9.01  # seconds per window
WINDOW = int(INPUT_LENGTH * SAMPLE_RATE)  # 144160 samples
BATCH = 8  # windows per onnxruntime call

# N-DNS `dnsmos.py` / DNS Challenge `dnsmos_local.py` polynomial fits.
POLYFIT = {
  'sig': (-0.08397278, 1.22083953, 0.00524390),
  'bak': (-0.13166888, 1.60915514, -0.39604546),
  'ovrl': (-0.06766283, 1.11546468, 0.04602535),
}
# Column order of the network output.
OUTPUT_ORDER = ('sig', 'bak', 'ovrl')

_SESSIONS: dict[tuple[str, int], object] = {}


def model_path() -> str:
  """Path of `sig_bak_ovr.onnx` inside the installed `speechmos` package.

  Raises:
    ImportError: if `speechmos` is not installed or lacks the model.
  """
  spec = importlib.util.find_spec('speechmos')
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(
      'DNSMOS needs the ONNX model shipped in the `speechmos` wheel: '
      "pip install 's4jax[eval]' (or `pip install speechmos`)."
    )
  path = os.path.join(
    spec.submodule_search_locations[0], 'dnsmos_models', 'sig_bak_ovr.onnx'
  )
  if not os.path.isfile(path):
    raise ImportError(f'DNSMOS model not found at {path}.')
  return path


def _session(num_threads: int):
  key = (model_path(), num_threads)
  if key not in _SESSIONS:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if num_threads > 0:
      options.intra_op_num_threads = num_threads
      options.inter_op_num_threads = 1
    _SESSIONS[key] = ort.InferenceSession(
      key[0], sess_options=options, providers=['CPUExecutionProvider']
    )
  return _SESSIONS[key]


def polyfit(raw: np.ndarray) -> np.ndarray:
  """Maps raw network outputs `(..., 3)` [sig, bak, ovrl] to MOS scale."""
  raw = np.asarray(raw, np.float64)
  cols = [
    np.polyval(POLYFIT[name], raw[..., i])
    for i, name in enumerate(OUTPUT_ORDER)
  ]
  return np.stack(cols, axis=-1)


def windows(audio: np.ndarray, all_windows: bool = False) -> np.ndarray:
  """Tiles and frames 16 kHz audio as the challenge scripts do.

  Args:
    audio: real `(T,)` at 16 kHz, `T > 0`.
    all_windows: keep the windows the reference scripts drop through float
      rounding (see the module docstring).

  Returns:
    float32 `(W, 144160)` windows with a 1 s hop.
  """
  audio = np.asarray(audio, np.float64)
  while len(audio) < WINDOW:
    audio = np.concatenate([audio, audio])
  num_hops = int(np.floor(len(audio) / SAMPLE_RATE) - INPUT_LENGTH) + 1
  out = []
  for idx in range(num_hops):
    start = int(idx * SAMPLE_RATE)
    if all_windows:
      stop = start + WINDOW
    else:
      stop = int((idx + INPUT_LENGTH) * SAMPLE_RATE)  # Reference rounding.
    seg = audio[start:stop]
    if len(seg) == WINDOW:
      out.append(seg)
  return np.asarray(out, np.float32).reshape(-1, WINDOW)


def raw_scores(frames: np.ndarray, num_threads: int = 0) -> np.ndarray:
  """Network outputs `(W, 3)` [sig, bak, ovrl] for `(W, 144160)` windows."""
  sess = _session(num_threads)
  outs = [
    sess.run(None, {'input_1': frames[i : i + BATCH]})[0]
    for i in range(0, len(frames), BATCH)
  ]
  return np.concatenate(outs, axis=0)


def dnsmos(
  audio: np.ndarray,
  sample_rate: int = SAMPLE_RATE,
  num_threads: int = 0,
  resample: bool = True,
  all_windows: bool = False,
) -> dict[str, float]:
  """DNSMOS SIG, BAK and OVRL of one clip.

  Args:
    audio: real `(T,)`, mono, finite, not empty.
    sample_rate: rate of `audio`; resampled to 16 kHz when different.
    num_threads: onnxruntime intra-op threads (0 = its default).
    resample: if False, a rate other than 16 kHz is an error.
    all_windows: see `windows` (False reproduces the reference scripts).

  Returns:
    `{'dnsmos_sig', 'dnsmos_bak', 'dnsmos_ovrl'}` (the mean over windows of
    the polynomial-mapped scores) and the raw means `'dnsmos_*_raw'`.

  Raises:
    MetricError: (a ValueError) for empty, non-finite or multi-channel audio, or a rate other
      than 16 kHz with `resample=False`.
  """
  audio = metrics_common.as_signal(audio, 'DNSMOS input')
  if sample_rate != SAMPLE_RATE:
    if not resample:
      raise metrics_common.MetricError(
        f'DNSMOS needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz.'
      )
    audio = metrics_common.resample(audio, sample_rate, SAMPLE_RATE)
  raw = raw_scores(windows(audio, all_windows), num_threads)
  mos = polyfit(raw).mean(axis=0)
  raw = raw.astype(np.float64).mean(axis=0)
  out = {}
  for i, name in enumerate(OUTPUT_ORDER):
    out[f'dnsmos_{name}'] = float(mos[i])
    out[f'dnsmos_{name}_raw'] = float(raw[i])
  return out


def dnsmos_batch(
  clips: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE
) -> list[dict[str, float]]:
  """`dnsmos` for each clip (one shared onnxruntime session)."""
  return [dnsmos(c, sample_rate) for c in clips]
