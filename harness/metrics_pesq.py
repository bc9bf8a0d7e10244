"""PESQ (ITU-T P.862 / P.862.2) through the `pesq` package, with its checks.

Shared by `harness.metrics` (`pesq_wb`, `pesq_nb`) and
`harness.metrics_composite` (the PESQ term of CSIG/CBAK/COVL), which is why
it sits below both. Rates: wide-band needs 16 kHz (higher rates are
resampled to 16 kHz, lower ones are an error); narrow-band runs at 8 or
16 kHz as given, other rates are resampled to 16 kHz (above 16 kHz) or
8 kHz (between). The `pesq` package is imported on the first call.
"""

from __future__ import annotations

import numpy as np

from harness import metrics_common


def _pesq_rate(sample_rate: int, mode: str) -> int:
  if mode == 'wb':
    if sample_rate < 16000:
      raise metrics_common.MetricError(
        f'Wide-band PESQ needs 16 kHz audio; got {sample_rate} Hz (too low '
        "to upsample meaningfully). Use 'pesq_nb' for 8 kHz audio."
      )
    return 16000
  if mode == 'nb':
    if sample_rate in (8000, 16000):
      return sample_rate
    if sample_rate < 8000:
      raise metrics_common.MetricError(
        f'Narrow-band PESQ needs at least 8 kHz audio; got {sample_rate} Hz.'
      )
    return 16000 if sample_rate > 16000 else 8000
  raise metrics_common.MetricError(
    f"PESQ mode must be 'wb' or 'nb', got {mode!r}."
  )


def pesq(estimate, reference, sample_rate: int, mode: str = 'wb') -> float:
  """PESQ MOS-LQO through the `pesq` package (ludlows/python-pesq).

  Args:
    estimate: degraded/processed `(T,)`.
    reference: clean `(T,)`, same length.
    sample_rate: rate of both; resampled as the module docstring says.
    mode: 'wb' (P.862.2) or 'nb' (P.862 + P.862.1 mapping).

  Returns:
    The score (about 1.0-4.64 wide-band, 1.0-4.55 narrow-band).

  Raises:
    MetricError: bad rate, silent or too short signals, or no speech found.
  """
  ref = metrics_common.as_signal(reference, 'reference')
  est = metrics_common.as_signal(estimate, 'estimate')
  metrics_common.check_same_length(ref, est, 'reference and estimate')
  rate = _pesq_rate(sample_rate, mode)
  ref, est = (
    metrics_common.resample(ref, sample_rate, rate),
    metrics_common.resample(est, sample_rate, rate),
  )
  for name, x in (('reference', ref), ('estimate', est)):
    if not np.any(x):
      raise metrics_common.MetricError(
        f'PESQ is undefined for a silent {name}.'
      )
  import pesq as pesq_lib

  try:
    return float(pesq_lib.pesq(rate, ref, est, mode))
  except pesq_lib.BufferTooShortError as e:
    raise metrics_common.MetricError(
      f'Signal too short for PESQ ({len(ref) / rate:.3f} s); it needs at '
      'least 0.25 s, and a few seconds of speech for a reliable score.'
    ) from e
  except pesq_lib.NoUtterancesError as e:
    raise metrics_common.MetricError(
      'PESQ found no speech ("No utterances detected") in the reference or '
      'the estimate: the signal is too quiet, too short or not speech.'
    ) from e
  except pesq_lib.PesqError as e:
    raise metrics_common.MetricError(f'PESQ failed: {e}') from e
  except ValueError as e:  # NaN inside the C code (near-silent input).
    raise metrics_common.MetricError(
      f'PESQ failed numerically ({e}); this happens for near-silent or '
      'extremely short speech.'
    ) from e
