"""Composite quality measures CSIG/CBAK/COVL and their components (NumPy).

Hu & Loizou, "Evaluation of objective quality measures for speech
enhancement", IEEE TASLP 16(1):229-238, 2008, eqs. (11)-(13), and the
`composite.m` MATLAB code of Loizou, "Speech Enhancement: Theory and
Practice" (2007/2013):

  CSIG = 3.093 - 1.029 LLR + 0.603 PESQ - 0.009 WSS
  CBAK = 1.634 + 0.478 PESQ - 0.007 WSS + 0.063 segSNR
  COVL = 1.594 + 0.805 PESQ - 0.512 LLR - 0.007 WSS

each clipped to [1, 5]. Components (as in `composite.m`):

* frames of 30 ms, hop = floor(win / 4), `floor(T / hop - win / hop)`
  frames, Hann window `0.5 (1 - cos(2 pi n / (win + 1)))`, n = 1..win;
  `eps` (float64) is added to both signals first;
* LLR: LPC order 10 below 10 kHz, 16 above, from the autocorrelation of each
  windowed frame (Levinson-Durbin);
  `LLR = log(a_d R_c a_d' / a_c R_c a_c')`; mean of the lowest 95 % of
  frames;
* WSS (Klatt 1982): 25 Gaussian critical-band filters on the power spectrum
  (FFT length `2^ceil(log2(2 win))`), band energies in dB (floor 1e-10),
  spectral slopes, weights `Kmax / (Kmax + dBmax - E)` times
  `Klocmax / (Klocmax + Epeak - E)` (Kmax 20, Klocmax 1) averaged over the
  two signals, slope distance normalised by the sum of weights; mean of the
  lowest 95 % of frames. The nearest-peak search to the right keeps the
  reference code's `energy(n - 1)` (one band before the peak) so the numbers
  match published CSIG/COVL values;
* segSNR: per-frame `10 log10(|x|^2 / (|x - y|^2 + eps) + eps)` of the
  windowed frames, clipped to [-10, 35] dB, mean over frames.

PESQ: `composite.m` uses the raw P.862 score. Like pysepm (which the
Spiking-S4 evaluation follows), `pesq_mode='auto'` uses wide-band MOS-LQO at
16 kHz and the raw narrow-band score (P.862.1 mapping inverted) at 8 kHz.
Frames where the LLR is not finite (digital silence) are left out.
"""

from __future__ import annotations

import numpy as np

from harness import metrics_common, metrics_pesq

ALPHA = 0.95  # fraction of best frames kept for LLR and WSS
SEGSNR_RANGE = (-10.0, 35.0)
WSS_KMAX = 20.0
WSS_KLOCMAX = 1.0

# Critical bands of `composite.m` (centre frequency, bandwidth) in Hz.
CENTER_FREQS = np.array([
    50.0, 120.0, 190.0, 260.0, 330.0, 400.0, 470.0, 540.0, 617.372,
    703.378, 798.717, 904.128, 1020.38, 1148.30, 1288.72, 1442.54,
    1610.70, 1794.16, 1993.93, 2211.08, 2446.71, 2701.97, 2978.04,
    3276.17, 3597.63,
])  # fmt: skip
BANDWIDTHS = np.array([
    70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 77.3724, 86.0056, 95.3398,
    105.411, 116.256, 127.914, 140.423, 153.823, 168.154, 183.457,
    199.776, 217.153, 235.631, 255.255, 276.072, 298.126, 321.465,
    346.136,
])  # fmt: skip

# Hu & Loizou (2008) regression coefficients.
CSIG_COEF = {'const': 3.093, 'llr': -1.029, 'pesq': 0.603, 'wss': -0.009}
CBAK_COEF = {'const': 1.634, 'pesq': 0.478, 'wss': -0.007, 'segsnr': 0.063}
COVL_COEF = {'const': 1.594, 'pesq': 0.805, 'llr': -0.512, 'wss': -0.007}


def frame_params(sample_rate: int) -> tuple[int, int]:
  """(window, hop) in samples: 30 ms and a quarter of it."""
  win = int(round(30 * sample_rate / 1000))
  return win, win // 4


def hann(win: int) -> np.ndarray:
  """`0.5 (1 - cos(2 pi n / (win + 1)))`, n = 1..win (no zero end points)."""
  n = np.arange(1, win + 1)
  return 0.5 * (1 - np.cos(2 * np.pi * n / (win + 1)))


def frames(x: np.ndarray, sample_rate: int) -> np.ndarray:
  """Windowed 30 ms frames `(M, win)` of `x` `(T,)`, hop = win // 4."""
  win, hop = frame_params(sample_rate)
  num = int(len(x) / hop - win / hop)
  if num < 1:
    raise metrics_common.MetricError(
      f'Signal of {len(x)} samples is shorter than one 30 ms frame '
      f'({win} samples at {sample_rate} Hz).'
    )
  idx = np.arange(num)[:, None] * hop + np.arange(win)[None, :]
  return x[idx] * hann(win)


def _prepare(reference, estimate) -> tuple[np.ndarray, np.ndarray]:
  ref = metrics_common.as_signal(reference, 'reference')
  est = metrics_common.as_signal(estimate, 'estimate')
  metrics_common.check_same_length(ref, est, 'reference and estimate')
  eps = np.finfo(np.float64).eps
  return ref + eps, est + eps


def _mean_lowest(values: np.ndarray, alpha: float = ALPHA) -> float:
  values = np.sort(values[np.isfinite(values)])
  if values.size == 0:
    raise metrics_common.MetricError('No valid frames (silent signal?).')
  keep = max(int(round(len(values) * alpha)), 1)
  return float(np.mean(values[:keep]))


# ---------------------------------------------------------------- segSNR


def segsnr_frames(
  reference: np.ndarray, estimate: np.ndarray, sample_rate: int
) -> np.ndarray:
  """Per-frame segmental SNR in dB `(M,)`, clipped to [-10, 35]."""
  ref, est = _prepare(reference, estimate)
  x, y = frames(ref, sample_rate), frames(est, sample_rate)
  eps = np.finfo(np.float64).eps
  signal = np.sum(x**2, axis=-1)
  noise = np.sum((x - y) ** 2, axis=-1)
  snr = 10 * np.log10(signal / (noise + eps) + eps)
  return np.clip(snr, *SEGSNR_RANGE)


def segsnr(reference, estimate, sample_rate: int) -> float:
  """Segmental SNR (dB): mean of `segsnr_frames` (Loizou `comp_snr`)."""
  return float(np.mean(segsnr_frames(reference, estimate, sample_rate)))


# ------------------------------------------------------------------- LLR


def autocorrelation(x: np.ndarray, order: int) -> np.ndarray:
  """Lags 0..order of `x` `(M, win)` -> `(M, order + 1)`."""
  win = x.shape[-1]
  return np.stack(
    [np.sum(x[:, : win - k] * x[:, k:], axis=-1) for k in range(order + 1)],
    axis=-1,
  )


def levinson(r: np.ndarray) -> np.ndarray:
  """Prediction-error filters `[1, a_1..a_p]` from autocorrelations.

  Args:
    r: real `(M, p + 1)` autocorrelation lags.

  Returns:
    Real `(M, p + 1)`: `a` minimising `a R a'` with `a_0 = 1`, where `R` is
    the Toeplitz matrix of `r`.
  """
  num, order = r.shape[0], r.shape[1] - 1
  a = np.zeros((num, order + 1))
  a[:, 0] = 1.0
  err = r[:, 0].copy()
  for i in range(1, order + 1):
    acc = r[:, i] + np.sum(a[:, 1:i] * r[:, i - 1 : 0 : -1], axis=-1)
    safe = np.where(err > 0, err, 1.0)
    k = np.where(err > 0, -acc / safe, 0.0)
    prev = a.copy()
    a[:, 1:i] = prev[:, 1:i] + k[:, None] * prev[:, i - 1 : 0 : -1]
    a[:, i] = k
    err = err * (1 - k**2)
  return a


def _toeplitz_quadratic(a: np.ndarray, r: np.ndarray) -> np.ndarray:
  """`a R a'` per row, `R` the symmetric Toeplitz matrix of lags `r`."""
  p = r.shape[-1]
  lag = np.abs(np.arange(p)[:, None] - np.arange(p)[None, :])
  big_r = r[:, lag]  # (M, p, p)
  return np.einsum('mi,mij,mj->m', a, big_r, a)


def llr_frames(
  reference: np.ndarray, estimate: np.ndarray, sample_rate: int
) -> np.ndarray:
  """Per-frame log-likelihood ratio `(M,)` (NaN where undefined)."""
  ref, est = _prepare(reference, estimate)
  order = 10 if sample_rate < 10000 else 16
  r_ref = autocorrelation(frames(ref, sample_rate), order)
  r_est = autocorrelation(frames(est, sample_rate), order)
  a_ref, a_est = levinson(r_ref), levinson(r_est)
  num = _toeplitz_quadratic(a_est, r_ref)
  den = _toeplitz_quadratic(a_ref, r_ref)
  with np.errstate(divide='ignore', invalid='ignore'):
    ratio = num / den
    return np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1.0)), np.nan)


def llr(reference, estimate, sample_rate: int) -> float:
  """LLR: mean of the lowest 95 % of `llr_frames`."""
  return _mean_lowest(llr_frames(reference, estimate, sample_rate))


# ------------------------------------------------------------------- WSS


def critical_band_filters(sample_rate: int, n_fft: int) -> np.ndarray:
  """Gaussian critical-band weights `(25, n_fft // 2)` of `composite.m`."""
  half = n_fft // 2
  max_freq = sample_rate / 2
  j = np.arange(half)[None, :]
  f0 = np.floor(CENTER_FREQS / max_freq * half)[:, None]
  bw = (BANDWIDTHS / max_freq * half)[:, None]
  norm = (np.log(BANDWIDTHS[0]) - np.log(BANDWIDTHS))[:, None]
  filt = np.exp(-11 * ((j - f0) / bw) ** 2 + norm)
  min_factor = np.exp(-30.0 / (2 * 2.303))  # -30 dB point
  return filt * (filt > min_factor)


def band_energies_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
  """Critical-band energies in dB `(M, 25)` of windowed frames `(M, win)`."""
  win = x.shape[-1]
  n_fft = int(2 ** np.ceil(np.log2(2 * win)))
  spec = np.abs(np.fft.fft(x, n_fft, axis=-1)[:, : n_fft // 2]) ** 2
  energy = spec @ critical_band_filters(sample_rate, n_fft).T
  return 10 * np.log10(np.maximum(energy, 1e-10))


def nearest_peaks(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
  """Nearest spectral peak level for each band, as in `composite.m`.

  A rising band searches right to the first non-rising slope `n` and takes
  `energy[n - 1]`; a falling band searches left to the last rising slope `n`
  and takes `energy[n + 1]`.

  Args:
    energy: `(M, K)` band energies in dB.
    slope: `(M, K - 1)` differences `energy[k + 1] - energy[k]`.

  Returns:
    `(M, K - 1)` peak levels.
  """
  num, k = slope.shape
  next_flat = np.full((num, k + 1), k)  # first n >= i with slope <= 0
  for i in range(k - 1, -1, -1):
    next_flat[:, i] = np.where(slope[:, i] <= 0, i, next_flat[:, i + 1])
  prev_rise = np.full((num, k + 1), -1)  # last n <= i with slope > 0
  for i in range(k):
    prev_rise[:, i + 1] = np.where(slope[:, i] > 0, i, prev_rise[:, i])
  rows = np.arange(num)[:, None]
  right = energy[rows, next_flat[:, :k] - 1]
  left = energy[rows, prev_rise[:, 1:] + 1]
  return np.where(slope > 0, right, left)


def _wss_weights(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
  peak = nearest_peaks(energy, slope)
  e = energy[:, :-1]
  w_max = WSS_KMAX / (WSS_KMAX + energy.max(axis=-1, keepdims=True) - e)
  w_loc = WSS_KLOCMAX / (WSS_KLOCMAX + peak - e)
  return w_max * w_loc


def wss_frames(
  reference: np.ndarray, estimate: np.ndarray, sample_rate: int
) -> np.ndarray:
  """Per-frame weighted spectral slope distance `(M,)` (Klatt 1982)."""
  ref, est = _prepare(reference, estimate)
  e_ref = band_energies_db(frames(ref, sample_rate), sample_rate)
  e_est = band_energies_db(frames(est, sample_rate), sample_rate)
  s_ref, s_est = np.diff(e_ref, axis=-1), np.diff(e_est, axis=-1)
  w = 0.5 * (_wss_weights(e_ref, s_ref) + _wss_weights(e_est, s_est))
  return np.sum(w * (s_ref - s_est) ** 2, axis=-1) / np.sum(w, axis=-1)


def wss(reference, estimate, sample_rate: int) -> float:
  """WSS: mean of the lowest 95 % of `wss_frames`."""
  return _mean_lowest(wss_frames(reference, estimate, sample_rate))


# ------------------------------------------------------------- composite


def _clip_mos(x: float) -> float:
  return float(min(max(x, 1.0), 5.0))


def combine(pesq: float, llr: float, wss: float, segsnr: float):
  """Hu & Loizou (2008) regressions, clipped to [1, 5].

  Args:
    pesq: PESQ score used by the regression.
    llr: LLR (95 % mean).
    wss: WSS (95 % mean).
    segsnr: segmental SNR (dB).

  Returns:
    `{'csig', 'cbak', 'covl'}`.
  """
  parts = {
    'const': 1.0,
    'pesq': pesq,
    'llr': llr,
    'wss': wss,
    'segsnr': segsnr,
  }

  def lin(coef):
    return sum(c * parts[k] for k, c in coef.items())

  return {
    'csig': _clip_mos(lin(CSIG_COEF)),
    'cbak': _clip_mos(lin(CBAK_COEF)),
    'covl': _clip_mos(lin(COVL_COEF)),
  }


def mos_lqo_to_raw(mos_lqo: float) -> float:
  """Inverts the P.862.1 mapping `0.999 + 4 / (1 + exp(-1.4945 x + 4.6607))`."""
  return (4.6607 - np.log(4.0 / (mos_lqo - 0.999) - 1.0)) / 1.4945


def composite_pesq(
  reference, estimate, sample_rate: int, pesq_mode: str = 'auto'
) -> float:
  """The PESQ value fed to the regressions (see module docstring).

  Args:
    reference: clean `(T,)`.
    estimate: processed `(T,)`.
    sample_rate: 8000 or 16000 (others are resampled by the PESQ wrapper).
    pesq_mode: 'auto' (wide-band MOS-LQO at >= 16 kHz, raw narrow-band
      below, as pysepm), 'wb' (wide-band MOS-LQO) or 'nb_raw' (raw
      narrow-band P.862, as `composite.m`).

  Returns:
    The PESQ value.
  """
  if pesq_mode == 'auto':
    pesq_mode = 'wb' if sample_rate >= 16000 else 'nb_raw'
  if pesq_mode == 'wb':
    return metrics_pesq.pesq(estimate, reference, sample_rate, mode='wb')
  if pesq_mode == 'nb_raw':
    return mos_lqo_to_raw(
      metrics_pesq.pesq(estimate, reference, sample_rate, mode='nb')
    )
  raise metrics_common.MetricError(
    f"pesq_mode must be 'auto', 'wb' or 'nb_raw', got {pesq_mode!r}."
  )


def composite(
  reference,
  estimate,
  sample_rate: int,
  pesq_value: float | None = None,
  pesq_mode: str = 'auto',
) -> dict[str, float]:
  """CSIG, CBAK, COVL and their components for one clip.

  Args:
    reference: clean `(T,)`.
    estimate: processed `(T,)`, same length.
    sample_rate: rate of both signals.
    pesq_value: PESQ to use; computed with `composite_pesq` when None.
    pesq_mode: see `composite_pesq`.

  Returns:
    `{'csig', 'cbak', 'covl', 'llr', 'wss', 'segsnr', 'composite_pesq'}`.
  """
  parts = {
    'llr': llr(reference, estimate, sample_rate),
    'wss': wss(reference, estimate, sample_rate),
    'segsnr': segsnr(reference, estimate, sample_rate),
  }
  if pesq_value is None:
    pesq_value = composite_pesq(reference, estimate, sample_rate, pesq_mode)
  out = combine(pesq_value, **parts)
  out.update(parts)
  out['composite_pesq'] = float(pesq_value)
  return out
