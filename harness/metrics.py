"""Evaluation metrics for speech enhancement and separation (NumPy, float64).

Entry points:

* `compute_metrics(names, estimate, reference, noisy=None, sample_rate)`:
  enhancement metrics of one clip -> `{name: float}`.
* `compute_separation_metrics(estimates, references, mixture)`: separation
  metrics of one mixture (any number of sources), PIT-aligned.
* `evaluate_examples(examples, names, ...)`: many clips, optionally in
  worker processes (`concurrent.futures.ProcessPoolExecutor`, spawn start
  method so it is safe from a process that has JAX loaded).
* `summarize(results)`: mean / std / count per metric, NaNs left out.

Enhancement metric names (`ENHANCEMENT_METRICS`):

* `si_snr`, `si_snri`: the Intel N-DNS challenge SI-SNR (`snr.py`, see
  `s4jax.audio.losses.si_snr`) and its improvement over `noisy`.
* `si_sdr`, `si_sdri`, `snr`: asteroid SI-SDR and plain SNR (dB).
* `pesq_wb`, `pesq_nb`: ITU-T P.862.2 / P.862(.1) MOS-LQO through the `pesq`
  package. Wide-band needs 16 kHz: higher rates are resampled to 16 kHz,
  lower rates are an error. Narrow-band runs at 8 or 16 kHz as given; other
  rates are resampled to 16 kHz (above 16 kHz) or 8 kHz (between).
* `stoi`, `estoi`: `pystoi` (it resamples to 10 kHz itself).
* `dnsmos_sig`, `dnsmos_bak`, `dnsmos_ovrl` (+ `_raw`): DNSMOS P.835, see
  `metrics_dnsmos`. Needs only the estimate.
* `csig`, `cbak`, `covl`, `llr`, `wss`, `segsnr`: Hu & Loizou composite
  measures, see `metrics_composite`.

Separation metric names (`SEPARATION_METRICS`): `si_sdr`, `si_sdri` (PIT
over sources, zero-mean, eps 1e-8, as TDANet/asteroid report SI-SNRi),
`sdr`, `sdri`, `sir`, `sar` (BSS-Eval v3 with a 512-tap distortion filter,
through `fast_bss_eval`, equal to `mir_eval.separation.bss_eval_sources`).
Improvements subtract the score of the mixture used as every estimate.

Heavy packages (pesq, pystoi, onnxruntime, fast_bss_eval, scipy) are imported
inside the functions that need them, so `import harness.metrics` is light
and TensorFlow-free. Bad input raises `MetricError` (a `ValueError`) with a
message naming the problem; with `on_error='nan'` the affected metrics
become NaN instead and the message is kept under `'errors'` by
`evaluate_examples`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from harness import metrics_common, metrics_pesq, pools
from s4jax.audio import permutation

MetricError = metrics_common.MetricError
resample = metrics_common.resample
pesq = metrics_pesq.pesq

EPS = 1e-8

ENHANCEMENT_METRICS = (
  'si_snr',
  'si_snri',
  'si_sdr',
  'si_sdri',
  'snr',
  'pesq_wb',
  'pesq_nb',
  'stoi',
  'estoi',
  'dnsmos_sig',
  'dnsmos_bak',
  'dnsmos_ovrl',
  'dnsmos_sig_raw',
  'dnsmos_bak_raw',
  'dnsmos_ovrl_raw',
  'csig',
  'cbak',
  'covl',
  'llr',
  'wss',
  'segsnr',
)
SEPARATION_METRICS = ('si_sdr', 'si_sdri', 'sdr', 'sdri', 'sir', 'sar')
# Metrics that need the noisy input.
NEEDS_NOISY = ('si_snri', 'si_sdri')
# Metrics that need only the estimate.
NON_INTRUSIVE = tuple(m for m in ENHANCEMENT_METRICS if m.startswith('dnsmos'))


# ------------------------------------------------------------ SNR family


def _zero_mean(x: np.ndarray) -> np.ndarray:
  return x - np.mean(x, axis=-1, keepdims=True)


def _ratio_db(num: np.ndarray, den: np.ndarray, eps: float) -> np.ndarray:
  return 10 * np.log10(num / (den + eps) + eps)


def _project(est: np.ndarray, ref: np.ndarray, denom_eps: float):
  dot = np.sum(est * ref, axis=-1, keepdims=True)
  norm = np.sum(ref**2, axis=-1, keepdims=True) + denom_eps
  scale = np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)
  return scale * ref


def si_snr(estimate, reference, eps: float = EPS) -> np.ndarray:
  """N-DNS SI-SNR (dB) over the last axis; -80 dB for a silent reference.

  Args:
    estimate: real `(..., T)`.
    reference: real `(..., T)`.
    eps: regulariser (the challenge's 1e-8).

  Returns:
    float64 `(...)`.
  """
  est = _zero_mean(np.asarray(estimate, np.float64))
  ref = _zero_mean(np.asarray(reference, np.float64))
  proj = _project(est, ref, 0.0)
  return _ratio_db(np.sum(proj**2, -1), np.sum((est - proj) ** 2, -1), eps)


def si_sdr(
  estimate, reference, eps: float = EPS, zero_mean: bool = True
) -> np.ndarray:
  """Asteroid/TDANet SI-SDR (dB) over the last axis.

  Args:
    estimate: real `(..., T)`.
    reference: real `(..., T)`.
    eps: added to the reference energy, the error energy and in the log.
    zero_mean: remove the means first.

  Returns:
    float64 `(...)`.
  """
  est = np.asarray(estimate, np.float64)
  ref = np.asarray(reference, np.float64)
  if zero_mean:
    est, ref = _zero_mean(est), _zero_mean(ref)
  proj = _project(est, ref, eps)
  return _ratio_db(np.sum(proj**2, -1), np.sum((est - proj) ** 2, -1), eps)


def snr(estimate, reference, eps: float = EPS) -> np.ndarray:
  """Plain SNR (dB) `10 log10(|s|^2 / (|s - s_hat|^2 + eps) + eps)`."""
  est = np.asarray(estimate, np.float64)
  ref = np.asarray(reference, np.float64)
  return _ratio_db(np.sum(ref**2, -1), np.sum((ref - est) ** 2, -1), eps)


# -------------------------------------------------------------- PESQ/STOI


def stoi(
  estimate, reference, sample_rate: int, extended: bool = False
) -> float:
  """STOI (Taal et al. 2011) or extended STOI (Jensen & Taal 2016), pystoi.

  Args:
    estimate: processed `(T,)`.
    reference: clean `(T,)`, same length.
    sample_rate: rate of both (pystoi resamples to 10 kHz).
    extended: ESTOI instead of STOI.

  Returns:
    The score (about 0-1; ESTOI can be slightly negative).

  Raises:
    MetricError: if fewer than 30 frames (about 0.4 s of speech at 10 kHz)
      remain after pystoi drops silent frames (pystoi would warn and return
      1e-5).
  """
  ref = metrics_common.as_signal(reference, 'reference')
  est = metrics_common.as_signal(estimate, 'estimate')
  metrics_common.check_same_length(ref, est, 'reference and estimate')
  import pystoi

  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    value = pystoi.stoi(ref, est, sample_rate, extended=extended)
  if any('Not enough STFT frames' in str(w.message) for w in caught):
    raise MetricError(
      'Too little speech for STOI: fewer than 30 frames (384 ms at 10 kHz) '
      'remain after removing silent frames of the reference.'
    )
  return float(value)


# ------------------------------------------------------------ enhancement


def _group_si(est, ref, noisy, names):
  out = {}
  if 'si_snr' in names or 'si_snri' in names:
    out['si_snr'] = float(si_snr(est, ref))
    if noisy is not None:
      out['si_snri'] = out['si_snr'] - float(si_snr(noisy, ref))
  if 'si_sdr' in names or 'si_sdri' in names:
    out['si_sdr'] = float(si_sdr(est, ref))
    if noisy is not None:
      out['si_sdri'] = out['si_sdr'] - float(si_sdr(noisy, ref))
  if 'snr' in names:
    out['snr'] = float(snr(est, ref))
  return out


def _group_pesq(est, ref, noisy, names, sample_rate):
  del noisy
  out = {}
  for mode in ('wb', 'nb'):
    if f'pesq_{mode}' in names:
      out[f'pesq_{mode}'] = pesq(est, ref, sample_rate, mode)
  return out


def _group_stoi(est, ref, noisy, names, sample_rate):
  del noisy
  out = {}
  if 'stoi' in names:
    out['stoi'] = stoi(est, ref, sample_rate)
  if 'estoi' in names:
    out['estoi'] = stoi(est, ref, sample_rate, extended=True)
  return out


def _group_dnsmos(est, ref, noisy, names, sample_rate):
  del ref, noisy, names
  from harness import metrics_dnsmos

  return metrics_dnsmos.dnsmos(est, sample_rate, num_threads=_ORT_THREADS)


def _group_composite(est, ref, noisy, names, sample_rate, cache):
  del noisy, names
  from harness import metrics_composite

  pesq_value = cache.get('pesq_wb') if sample_rate >= 16000 else None
  if pesq_value is not None and not math.isfinite(pesq_value):
    pesq_value = None  # Recompute so that the PESQ error surfaces here.
  return metrics_composite.composite(ref, est, sample_rate, pesq_value)


# name -> group; a group computes several related metrics in one go.
_GROUPS: dict[str, tuple[str, ...]] = {
  'si': ('si_snr', 'si_snri', 'si_sdr', 'si_sdri', 'snr'),
  'pesq': ('pesq_wb', 'pesq_nb'),
  'stoi': ('stoi', 'estoi'),
  'dnsmos': tuple(m for m in ENHANCEMENT_METRICS if m.startswith('dnsmos')),
  'composite': ('csig', 'cbak', 'covl', 'llr', 'wss', 'segsnr'),
}
_ORT_THREADS = 0  # onnxruntime threads (set to 1 inside worker processes)


def _check_names(names: Iterable[str], known: Sequence[str]) -> list[str]:
  if isinstance(names, str):
    names = [n.strip() for n in names.split(',') if n.strip()]
  names = list(dict.fromkeys(names))
  unknown = [n for n in names if n not in known]
  if unknown:
    raise MetricError(f'Unknown metric(s) {unknown}; known: {list(known)}.')
  if not names:
    raise MetricError('No metric names given.')
  return names


def _run_group(group, est, ref, noisy, names, sample_rate, cache):
  if group == 'si':
    return _group_si(est, ref, noisy, names)
  if group == 'composite':
    return _group_composite(est, ref, noisy, names, sample_rate, cache)
  fn = {
    'pesq': _group_pesq,
    'stoi': _group_stoi,
    'dnsmos': _group_dnsmos,
  }[group]
  return fn(est, ref, noisy, names, sample_rate)


def compute_metrics(
  names: Iterable[str] | str,
  estimate,
  reference=None,
  noisy=None,
  sample_rate: int = 16000,
  on_error: str = 'raise',
  errors: dict[str, str] | None = None,
) -> dict[str, float]:
  """Enhancement metrics of one clip.

  Args:
    names: metric names (see `ENHANCEMENT_METRICS`), or a comma string.
    estimate: enhanced `(T,)`.
    reference: clean `(T,)`, same length (may be None when every name is a
      DNSMOS metric).
    noisy: noisy input `(T,)`, needed for `si_snri` / `si_sdri`.
    sample_rate: rate of all signals (Hz).
    on_error: 'raise' (default) or 'nan' (failed metrics become NaN).
    errors: if given, filled with `{metric: message}` for failures.

  Returns:
    `{name: value}` for every requested name, in order.

  Raises:
    MetricError: unknown names, missing/invalid inputs, or a metric that
      cannot be computed (with `on_error='raise'`).
  """
  names = _check_names(names, ENHANCEMENT_METRICS)
  if on_error not in ('raise', 'nan'):
    raise MetricError(f"on_error must be 'raise' or 'nan', got {on_error!r}.")
  est = metrics_common.as_signal(estimate, 'estimate')
  ref = None
  if any(n not in NON_INTRUSIVE for n in names):
    if reference is None:
      raise MetricError(f'Metrics {names} need a reference signal.')
    ref = metrics_common.as_signal(reference, 'reference')
    metrics_common.check_same_length(ref, est, 'reference and estimate')
  if any(n in NEEDS_NOISY for n in names):
    if noisy is None:
      raise MetricError(
        f'{[n for n in names if n in NEEDS_NOISY]} need the noisy input.'
      )
    noisy = metrics_common.as_signal(noisy, 'noisy')
    metrics_common.check_same_length(noisy, est, 'noisy and estimate')
  wanted = set(names)
  cache: dict[str, float] = {}
  for group, members in _GROUPS.items():
    if not wanted.intersection(members):
      continue
    try:
      cache.update(
        _run_group(group, est, ref, noisy, wanted, sample_rate, cache)
      )
    except MetricError as e:
      if on_error == 'raise':
        raise
      for m in wanted.intersection(members):
        cache[m] = math.nan
        if errors is not None:
          errors[m] = str(e)
  return {n: float(cache[n]) for n in names}


# ------------------------------------------------------------- separation


def _as_sources(x, name: str) -> np.ndarray:
  arr = np.asarray(x)
  if arr.ndim == 1:
    arr = arr[None]
  if arr.ndim != 2 or arr.size == 0:
    raise MetricError(f'{name} must be (S, T), got shape {arr.shape}.')
  arr = arr.astype(np.float64)
  if not np.all(np.isfinite(arr)):
    raise MetricError(f'{name} contains NaN or Inf samples.')
  return arr


def best_permutation(score: np.ndarray) -> np.ndarray:
  """Estimate index per reference maximising the mean of `score[est, ref]`.

  `s4jax.audio.permutation.best_permutation`: exhaustive for up to 3
  sources, Hungarian (scipy) above.

  Args:
    score: `(S, S)` higher-is-better scores, `[i, j]` = estimate i vs ref j.

  Returns:
    int `(S,)`: `perm[j]` is the estimate matched to reference `j`.
  """
  return permutation.best_permutation(score)


def pit_si_sdr(estimates, references, eps: float = EPS) -> tuple:
  """PIT-aligned SI-SDR per reference.

  Args:
    estimates: `(S, T)`.
    references: `(S, T)`.
    eps: SI-SDR regulariser.

  Returns:
    `(si_sdr (S,), perm (S,))`, `perm[j]` the estimate matched to ref `j`.
  """
  est = _as_sources(estimates, 'estimates')
  ref = _as_sources(references, 'references')
  pair = si_sdr(est[:, None, :], ref[None, :, :], eps)  # (S_est, S_ref)
  perm = best_permutation(pair)
  return pair[perm, np.arange(len(perm))], perm


def bss_eval(estimates, references, filter_length: int = 512) -> dict:
  """BSS-Eval v3 SDR/SIR/SAR with permutation (fast_bss_eval, numpy).

  Args:
    estimates: `(S, T)`.
    references: `(S, T)`.
    filter_length: distortion filter taps (512 as mir_eval).

  Returns:
    `{'sdr', 'sir', 'sar'}`: `(S,)` arrays in reference order, and `'perm'`.
  """
  est = _as_sources(estimates, 'estimates')
  ref = _as_sources(references, 'references')
  for name, arr in (('reference', ref), ('estimate', est)):
    silent = np.where(~np.any(arr, axis=-1))[0]
    if silent.size:
      raise MetricError(
        f'BSS-Eval SDR is undefined for a silent {name} (index {silent}).'
      )
  import fast_bss_eval

  if len(ref) == 1:
    # One source: no interference, SIR = +inf and SAR = SDR (as mir_eval);
    # fast_bss_eval's bss_eval_sources fails on a single channel.
    sdr_ = fast_bss_eval.sdr(ref, est, filter_length=filter_length)
    return {
      'sdr': sdr_,
      'sir': np.full(1, np.inf),
      'sar': sdr_,
      'perm': np.zeros(1, int),
    }
  sdr_, sir_, sar_, perm = fast_bss_eval.bss_eval_sources(
    ref, est, filter_length=filter_length, compute_permutation=True
  )
  return {'sdr': sdr_, 'sir': sir_, 'sar': sar_, 'perm': perm}


def compute_separation_metrics(
  estimates,
  references,
  mixture=None,
  names: Iterable[str] | str = ('si_sdr', 'si_sdri', 'sdr', 'sdri'),
  on_error: str = 'raise',
  errors: dict[str, str] | None = None,
) -> dict[str, float]:
  """Separation metrics of one mixture, averaged over sources.

  Args:
    estimates: `(S, T)` separated sources, any order.
    references: `(S, T)` true sources.
    mixture: `(T,)`, needed for the improvements `si_sdri` / `sdri`.
    names: subset of `SEPARATION_METRICS`.
    on_error: 'raise' or 'nan'.
    errors: if given, filled with `{metric: message}` for failures.

  Returns:
    `{name: mean over sources}`.
  """
  names = _check_names(names, SEPARATION_METRICS)
  est = _as_sources(estimates, 'estimates')
  ref = _as_sources(references, 'references')
  if est.shape != ref.shape:
    raise MetricError(
      f'estimates {est.shape} and references {ref.shape} differ in shape.'
    )
  mix = None
  if any(n.endswith('i') for n in names):
    if mixture is None:
      raise MetricError('si_sdri / sdri need the mixture.')
    mix = metrics_common.as_signal(mixture, 'mixture')
    metrics_common.check_same_length(mix, ref, 'mixture and references')
    mix = np.broadcast_to(mix, ref.shape)
  out: dict[str, float] = {}

  def guarded(keys, fn):
    try:
      out.update(fn())
    except MetricError as e:
      if on_error == 'raise':
        raise
      for k in keys:
        out[k] = math.nan
        if errors is not None:
          errors[k] = str(e)

  def si_part():
    val = pit_si_sdr(est, ref)[0]
    res = {'si_sdr': float(val.mean())}
    if mix is not None:
      base = si_sdr(mix, ref)
      res['si_sdri'] = float((val - base).mean())
    return res

  def bss_part():
    res = bss_eval(est, ref)
    vals = {k: float(np.mean(res[k])) for k in ('sdr', 'sir', 'sar')}
    if mix is not None:
      base = bss_eval(mix, ref)['sdr']
      vals['sdri'] = float(np.mean(res['sdr'] - base))
    return vals

  if {'si_sdr', 'si_sdri'} & set(names):
    guarded(('si_sdr', 'si_sdri'), si_part)
  if {'sdr', 'sdri', 'sir', 'sar'} & set(names):
    guarded(('sdr', 'sdri', 'sir', 'sar'), bss_part)
  return {n: out[n] for n in names}


# --------------------------------------------------------------- batches


def _evaluate_one(task, names, sample_rate, on_error, example):
  errors: dict[str, str] = {}
  try:
    if task == 'enhancement':
      res = compute_metrics(
        names,
        example.get('estimate'),
        example.get('reference'),
        example.get('noisy'),
        example.get('sample_rate', sample_rate),
        on_error=on_error,
        errors=errors,
      )
    else:
      res = compute_separation_metrics(
        example.get('estimate'),
        example.get('reference'),
        example.get('mixture', example.get('noisy')),
        names,
        on_error=on_error,
        errors=errors,
      )
  except MetricError as e:
    if on_error == 'raise':
      raise
    res = {n: math.nan for n in _check_names(names, _known(task))}
    errors = {'input': str(e)}
  if errors:
    res['errors'] = errors
  return res


def _known(task: str) -> Sequence[str]:
  if task == 'enhancement':
    return ENHANCEMENT_METRICS
  if task == 'separation':
    return SEPARATION_METRICS
  raise MetricError(
    f"task must be 'enhancement' or 'separation', got {task!r}."
  )


def use_one_thread() -> None:
  """Runs onnxruntime sessions of this process on one thread (workers)."""
  global _ORT_THREADS
  _ORT_THREADS = 1


def single_thread_worker() -> None:
  """Initialiser for metric workers: one OpenMP/onnxruntime thread each.

  N workers on N cores would otherwise start N x N OpenMP threads. Pass it
  to `pools.process_pool(workers, metrics.single_thread_worker)`.
  """
  os.environ.setdefault('OMP_NUM_THREADS', '1')
  use_one_thread()


def _normalise(example) -> dict:
  if isinstance(example, Mapping):
    return dict(example)
  keys = ('estimate', 'reference', 'noisy')
  return dict(zip(keys, example, strict=False))


def evaluate_examples(
  examples: Iterable[Mapping | Sequence],
  names: Iterable[str] | str,
  sample_rate: int = 16000,
  num_workers: int = 0,
  task: str = 'enhancement',
  on_error: str = 'nan',
  progress: Callable[[int], None] | None = None,
) -> list[dict]:
  """Metrics of many clips, in worker processes when `num_workers > 1`.

  Args:
    examples: each a mapping with `'estimate'`, `'reference'` and optionally
      `'noisy'` and `'sample_rate'` (enhancement) or `'mixture'`
      (separation; `(S, T)` estimates and references), or a tuple
      `(estimate, reference[, noisy])`.
    names: metric names for `task`.
    sample_rate: rate of the clips without their own `'sample_rate'`.
    num_workers: processes; 0 or 1 computes in this process. Workers use the
      'spawn' start method and one onnxruntime thread each.
    task: 'enhancement' or 'separation'.
    on_error: 'nan' (default: a failed metric is NaN and its message is
      stored under the result's `'errors'` key) or 'raise'.
    progress: optional callback called with the number of finished clips.

  Returns:
    One result dict per example, in input order.
  """
  names = _check_names(names, _known(task))
  examples = [_normalise(e) for e in examples]
  results: list[dict] = []
  if num_workers <= 1 or len(examples) <= 1:
    for i, ex in enumerate(examples):
      results.append(_evaluate_one(task, names, sample_rate, on_error, ex))
      if progress:
        progress(i + 1)
    return results
  with pools.process_pool(num_workers, single_thread_worker) as pool:
    futures = [
      pool.submit(_evaluate_one, task, names, sample_rate, on_error, ex)
      for ex in examples
    ]
    for i, fut in enumerate(futures):
      results.append(fut.result())
      if progress:
        progress(i + 1)
  return results


def summarize(results: Sequence[Mapping]) -> dict[str, dict[str, float]]:
  """Mean, standard deviation and count of the finite values per metric.

  Args:
    results: result dicts from `compute_metrics` / `evaluate_examples`.

  Returns:
    `{name: {'mean', 'std', 'count', 'failed'}}` (`failed` counts NaNs).
  """
  names: list[str] = []
  for r in results:
    names.extend(k for k in r if k != 'errors' and k not in names)
  out = {}
  for name in names:
    vals = np.array([r.get(name, math.nan) for r in results], np.float64)
    ok = vals[np.isfinite(vals)]
    out[name] = {
      'mean': float(ok.mean()) if ok.size else math.nan,
      'std': float(ok.std()) if ok.size else math.nan,
      'count': int(ok.size),
      'failed': int(vals.size - ok.size),
    }
  return out
