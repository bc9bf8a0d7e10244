"""Procedural speech-like signals from a source-filter model (pure NumPy).

A talker produces phrases of syllables separated by pauses. Each syllable has
an optional consonant onset (fricative, stop, nasal, liquid or /h/), a vowel
nucleus and an optional coda. The source is a Rosenberg glottal pulse train
(Rosenberg 1971) whose pitch follows a phrase contour (declination plus
accents) with cycle-to-cycle jitter and shimmer, plus aspiration noise;
frication is band-shaped noise. The voiced source goes through a cascade of
five formant resonators (Klatt 1980) whose frequencies move between vowel
targets (Peterson & Barney 1952 averages, scaled per talker). Filtering is
done frame by frame in the STFT domain (8 ms hop), which makes the
time-varying filter cheap and fully vectorised.

The output is not intelligible speech, but it has speech's structure at the
time scales an enhancement model relies on: harmonic voiced segments with
moving formants, noisy unvoiced segments, syllable-rate (3-7 Hz) amplitude
modulation and pauses.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Peterson & Barney (1952) average adult-male formants F1-F3 (Hz) for ten
# American English vowels; F4 and F5 are typical values.
VOWELS = np.array(
  [
    [270, 2290, 3010, 3500, 4200],  # i
    [390, 1990, 2550, 3400, 4200],  # I
    [530, 1840, 2480, 3400, 4200],  # E
    [660, 1720, 2410, 3400, 4200],  # ae
    [730, 1090, 2440, 3400, 4200],  # a
    [570, 840, 2410, 3300, 4100],  # open o
    [440, 1020, 2240, 3300, 4100],  # U
    [300, 870, 2240, 3300, 4100],  # u
    [640, 1190, 2390, 3400, 4200],  # wedge
    [490, 1350, 1690, 3300, 4100],  # r-coloured
  ],
  np.float64,
)
BANDWIDTHS = np.array([70.0, 100.0, 140.0, 220.0, 300.0])

# Talker types: (f0 range Hz, formant scale range), after typical adult male,
# adult female and child values (Peterson & Barney 1952; Hillenbrand 1995).
TALKER_TYPES = {
  'male': ((85.0, 150.0), (0.95, 1.05)),
  'female': ((165.0, 255.0), (1.12, 1.22)),
  'child': ((240.0, 340.0), (1.25, 1.38)),
}


@dataclasses.dataclass(frozen=True)
class Talker:
  """Voice parameters of one synthetic talker.

  Attributes:
    kind: 'male', 'female' or 'child'.
    f0: median pitch in Hz.
    formant_scale: multiplies all formant frequencies (vocal tract length).
    jitter: std of the relative cycle-to-cycle period perturbation.
    shimmer: std of the relative cycle-to-cycle amplitude perturbation.
    breathiness: aspiration noise relative to the glottal pulses.
    open_quotient: open fraction of the glottal cycle.
    rate: syllables per second.
    pitch_range: relative size of the pitch accents.
  """

  kind: str
  f0: float
  formant_scale: float
  jitter: float
  shimmer: float
  breathiness: float
  open_quotient: float
  rate: float
  pitch_range: float


def sample_talker(rng: np.random.Generator, kind: str | None = None) -> Talker:
  """Draws a talker; `kind` None picks one of TALKER_TYPES uniformly."""
  if kind is None:
    kind = str(rng.choice(sorted(TALKER_TYPES)))
  if kind not in TALKER_TYPES:
    raise ValueError(f'Unknown talker kind {kind!r}; known: {TALKER_TYPES}.')
  (f_lo, f_hi), (s_lo, s_hi) = TALKER_TYPES[kind]
  return Talker(
    kind=kind,
    f0=float(np.exp(rng.uniform(np.log(f_lo), np.log(f_hi)))),
    formant_scale=float(rng.uniform(s_lo, s_hi)),
    jitter=float(rng.uniform(0.003, 0.015)),
    shimmer=float(rng.uniform(0.02, 0.08)),
    breathiness=float(rng.uniform(0.02, 0.15)),
    open_quotient=float(rng.uniform(0.5, 0.7)),
    rate=float(rng.uniform(3.0, 6.5)),
    pitch_range=float(rng.uniform(0.08, 0.25)),
  )


# Consonant classes: name -> (probability, duration range in s).
_ONSETS = {
  'fricative': (0.3, (0.06, 0.14)),
  'stop': (0.25, (0.05, 0.11)),
  'nasal': (0.15, (0.05, 0.09)),
  'liquid': (0.15, (0.04, 0.08)),
  'h': (0.05, (0.04, 0.08)),
  'none': (0.10, (0.0, 0.0)),
}
# Fricative noise bands: (centre Hz, half-width Hz, level re vowel).
_FRICATIVES = (
  (6200.0, 1500.0, 0.2),  # s
  (3300.0, 1000.0, 0.2),  # sh
  (4500.0, 3000.0, 0.06),  # f / th
)
# Second-formant loci of stop and nasal places (labial, alveolar, velar).
_LOCI = (900.0, 1700.0, 2300.0)


@dataclasses.dataclass
class _Track:
  """Frame-rate control parameters (F frames)."""

  voiced: np.ndarray  # (F,) voiced amplitude
  aspir: np.ndarray  # (F,) /h/ aspiration amplitude (through the tract)
  fric: np.ndarray  # (F,) frication amplitude
  fric_fc: np.ndarray  # (F,) frication band centre
  fric_bw: np.ndarray  # (F,) frication band half-width
  nasal: np.ndarray  # (F,) nasality 0..1 (damps higher formants)
  pitch: np.ndarray  # (F,) relative pitch (1 = talker median)
  anchors: list  # [(frame, formant vector (5,))]


def _new_track(num_frames: int) -> _Track:
  z = lambda: np.zeros(num_frames)  # noqa: E731
  return _Track(z(), z(), z(), z() + 4000.0, z() + 1000.0, z(), z() + 1.0, [])


def _ramp(n: int, rise: int, fall: int) -> np.ndarray:
  """A raised-cosine on/off envelope of n frames."""
  env = np.ones(n)
  rise, fall = min(rise, n // 2), min(fall, n // 2)
  if rise:
    env[:rise] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(rise) + 0.5) / rise)
  if fall:
    env[n - fall :] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(fall) + 0.5) / fall)
  return env


def _consonant(tr, rng, kind, t0, n, gain, vowel, fps):
  """Writes one consonant of `n` frames at frame `t0` into the track."""
  if n <= 0:
    return
  s = slice(t0, t0 + n)
  locus = rng.choice(_LOCI)
  if kind == 'fricative':
    fc, bw, lvl = _FRICATIVES[rng.integers(len(_FRICATIVES))]
    tr.fric[s] = lvl * gain * _ramp(n, 2, 2)
    tr.fric_fc[s], tr.fric_bw[s] = fc, bw
    if rng.random() < 0.3:  # voiced fricative (z, v, zh)
      tr.voiced[s] = 0.25 * gain * _ramp(n, 2, 2)
    tr.anchors.append((t0 + n // 2, np.r_[350.0, locus, vowel[2:]]))
  elif kind == 'stop':
    closure = max(1, int(n * rng.uniform(0.5, 0.7)))
    burst = n - closure
    tr.fric[t0 + closure : t0 + n] = 0.25 * gain * _ramp(burst, 0, 2)
    tr.fric_fc[s] = locus + rng.uniform(500.0, 2500.0)
    tr.fric_bw[s] = 2500.0
    if rng.random() < 0.4:  # voiced stop: a weak voice bar in the closure
      tr.voiced[t0 : t0 + closure] = 0.08 * gain
    tr.anchors.append((t0 + closure, np.r_[250.0, locus, vowel[2:]]))
  elif kind in ('nasal', 'liquid'):
    lvl = 0.3 if kind == 'nasal' else 0.55
    tr.voiced[s] = lvl * gain * _ramp(n, 2, 1)
    if kind == 'nasal':
      tr.nasal[s] = 1.0
      target = np.r_[260.0, locus, 2500.0, 3300.0, 4100.0]
    else:
      target = np.r_[350.0, rng.uniform(800.0, 1300.0), 1700.0, vowel[3:]]
    tr.anchors.append((t0 + n // 2, target))
  elif kind == 'h':
    tr.aspir[s] = 0.12 * gain * _ramp(n, 2, 1)


def _plan(rng: np.random.Generator, talker: Talker, num_frames: int, fps):
  """Lays out phrases, syllables and pauses as frame-rate tracks."""
  tr = _new_track(num_frames)
  scale = talker.formant_scale
  kinds = list(_ONSETS)
  probs = np.array([_ONSETS[k][0] for k in kinds])
  t = int(rng.uniform(0.0, 0.4) * fps)
  while t < num_frames:
    n_syl = int(rng.integers(2, 11))
    phrase_start, accents = t, []
    for i in range(n_syl):
      if t >= num_frames:
        break
      gain = rng.uniform(0.45, 1.0) * (1.0 - 0.3 * i / n_syl)
      vowel = VOWELS[rng.integers(len(VOWELS))] * scale
      vowel = vowel * rng.uniform(0.93, 1.07, size=5)
      onset = kinds[rng.choice(len(kinds), p=probs)]
      lo, hi = _ONSETS[onset][1]
      n_on = int(rng.uniform(lo, hi) * fps)
      _consonant(tr, rng, onset, t, min(n_on, num_frames - t), gain, vowel, fps)
      t += n_on
      dur = rng.uniform(0.6, 1.4) / talker.rate - n_on / fps
      n_v = max(int(dur * fps), int(0.06 * fps))
      n_v = min(n_v, max(num_frames - t, 0))
      if n_v > 0:
        tr.voiced[t : t + n_v] = gain * _ramp(n_v, 3, 5)
        tr.anchors.append((t + n_v // 2, vowel))
        if gain > 0.75:
          accents.append((t + n_v // 2, n_v, gain))
      t += n_v
      if rng.random() < 0.25 and t < num_frames:
        kind = ('fricative', 'stop', 'nasal')[rng.integers(3)]
        n_c = min(int(rng.uniform(0.04, 0.09) * fps), num_frames - t)
        _consonant(tr, rng, kind, t, n_c, 0.7 * gain, vowel, fps)
        t += n_c
    _pitch_contour(tr, rng, talker, phrase_start, min(t, num_frames), accents)
    t += int(rng.uniform(0.12, 0.7) * fps)
  return tr


def _pitch_contour(tr, rng, talker, t0, t1, accents):
  """Declination over the phrase plus a bump on each accented syllable."""
  n = t1 - t0
  if n <= 0:
    return
  start, end = rng.uniform(0.05, 0.15), rng.uniform(-0.15, -0.05)
  rel = 1.0 + np.linspace(start, end, n)
  frames = np.arange(t0, t1)
  for centre, width, gain in accents:
    bump = np.exp(-0.5 * ((frames - centre) / max(width * 0.6, 1.0)) ** 2)
    rel += talker.pitch_range * gain * rng.uniform(0.5, 1.2) * bump
  if rng.random() < 0.3:  # a rising, question-like phrase end
    rel += np.linspace(0.0, 0.25, n) ** 2 * 4.0 * rng.uniform(0.1, 0.3)
  tr.pitch[t0:t1] = rel


def _formant_tracks(tr, num_frames, scale, fps):
  """Interpolates formant anchors frame by frame and smooths them."""
  if not tr.anchors:
    return np.tile(VOWELS[4] * scale, (num_frames, 1))
  tr.anchors.sort(key=lambda a: a[0])
  pos = np.array([a[0] for a in tr.anchors], np.float64)
  val = np.stack([a[1] for a in tr.anchors])
  frames = np.arange(num_frames)
  fmt = np.stack([np.interp(frames, pos, val[:, k]) for k in range(5)], 1)
  k = max(1, int(0.03 * fps))
  kernel = np.ones(k) / k
  pad = np.pad(fmt, ((k, k), (0, 0)), mode='edge')
  return np.stack(
    [np.convolve(pad[:, i], kernel, 'same')[k:-k] for i in range(5)], 1
  )


def _glottal_source(rng, talker, f0, sr):
  """Rosenberg pulse train derivative with jitter and shimmer.

  Args:
    rng: random generator.
    talker: voice parameters.
    f0: real (T,) instantaneous pitch in Hz.
    sr: sample rate.

  Returns:
    (source, open_phase): real (T,) radiated glottal flow derivative and the
    glottal opening (T,) in [0, 1] used to modulate aspiration noise.
  """
  n_cyc = int(np.sum(f0) / sr) + 4
  jit = 1.0 + talker.jitter * rng.standard_normal(n_cyc)
  shim = np.exp(talker.shimmer * rng.standard_normal(n_cyc))
  base = np.floor(np.cumsum(f0) / sr).astype(np.int64)
  phase = np.cumsum(f0 * jit[np.minimum(base, n_cyc - 1)]) / sr
  cyc = np.minimum(phase.astype(np.int64), n_cyc - 1)
  frac = phase - np.floor(phase)
  oq = talker.open_quotient
  tp = 0.65 * oq  # opening phase, then a faster closing phase
  flow = np.where(
    frac < tp,
    0.5 - 0.5 * np.cos(np.pi * frac / tp),
    np.where(frac < oq, np.cos(0.5 * np.pi * (frac - tp) / (oq - tp)), 0.0),
  )
  flow = flow * shim[cyc]
  source = np.diff(flow, prepend=0.0) * sr / np.maximum(f0, 1.0)
  return source, flow


def _frames(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
  """Hann-windowed frames, real (F, n_fft), centred with hop spacing."""
  pad = np.pad(x, (n_fft // 2, n_fft // 2 + hop))
  count = (len(pad) - n_fft) // hop + 1
  idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
  win = np.hanning(n_fft + 1)[:-1].astype(np.float32)
  return pad.astype(np.float32)[idx] * win


def _overlap_add(frames: np.ndarray, hop: int, length: int) -> np.ndarray:
  """Weighted overlap-add of Hann-windowed frames (n_fft = 4 hop)."""
  f, n_fft = frames.shape
  win = np.hanning(n_fft + 1)[:-1]
  frames = frames * win
  out = np.zeros((f + n_fft // hop) * hop)
  norm = np.zeros_like(out)
  for j in range(n_fft // hop):
    seg = frames[:, j * hop : (j + 1) * hop].reshape(-1)
    out[j * hop : j * hop + len(seg)] += seg
    w = np.tile(win[j * hop : (j + 1) * hop] ** 2, f)
    norm[j * hop : j * hop + len(w)] += w
  out = out / np.maximum(norm, 1e-3)
  start = n_fft // 2
  return out[start : start + length]


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
  """Centred moving average of `width` samples, real (T,) -> (T,)."""
  c = np.cumsum(np.pad(x, (width // 2 + 1, width - width // 2)))
  return (c[width:] - c[:-width])[: len(x)] / width


def _resonator_response(freq, bw, sr, omega):
  """Complex response of Klatt resonators, unit gain at DC.

  Args:
    freq: real (F, K) centre frequencies in Hz.
    bw: real (F, K) bandwidths in Hz.
    sr: sample rate.
    omega: real (W,) normalised angular frequencies of the FFT bins.

  Returns:
    complex (F, W): the product of the K resonators' responses.
  """
  valid = freq < 0.46 * sr
  r = np.exp(-np.pi * bw / sr)
  c = 2.0 * r * np.cos(2.0 * np.pi * np.minimum(freq, 0.46 * sr) / sr)
  z1 = np.exp(-1j * omega).astype(np.complex64)
  c, r2 = c.astype(np.float32), (r**2).astype(np.float32)
  num = (1.0 - c + r2)[..., None]
  den = 1.0 - c[..., None] * z1 + r2[..., None] * (z1 * z1)
  h = np.where(valid[..., None], num / den, np.complex64(1.0))
  return np.prod(h, axis=1)


def synthesize(
  rng: np.random.Generator, talker: Talker, num_samples: int, sr: int
) -> np.ndarray:
  """Synthesises `num_samples` of speech-like signal for one talker.

  Args:
    rng: random generator (the only source of randomness).
    talker: voice parameters (see `sample_talker`).
    num_samples: output length.
    sr: sample rate in Hz (8000 or more).

  Returns:
    real (num_samples,) float64 with an active-speech RMS of about 0.1.
  """
  hop = max(1, sr // 125)  # 8 ms
  n_fft = 4 * hop
  fps = sr / hop
  num_frames = num_samples // hop + 2
  tr = _plan(rng, talker, num_frames, fps)
  fmt = _formant_tracks(tr, num_frames, talker.formant_scale, fps)

  t_frames = np.arange(num_frames) * hop
  t = np.arange(num_samples)
  drift = 1.0 + 0.02 * np.sin(
    2 * np.pi * rng.uniform(0.1, 0.4) * t / sr + rng.uniform(0, 2 * np.pi)
  )
  f0 = talker.f0 * np.interp(t, t_frames, tr.pitch) * drift
  source, flow = _glottal_source(rng, talker, f0, sr)
  white = rng.standard_normal((3, num_samples))
  breath = talker.breathiness * white[0] * (0.4 + 0.6 * flow)
  voiced = np.interp(t, t_frames, tr.voiced)
  aspir = np.interp(t, t_frames, tr.aspir)
  fric = np.interp(t, t_frames, tr.fric)
  excite_tract = (source + breath) * voiced + aspir * white[1] * 3.0
  excite_fric = fric * white[2] * 3.0

  omega = np.pi * np.arange(n_fft // 2 + 1) / (n_fft // 2)
  spec_t = np.fft.rfft(_frames(excite_tract, n_fft, hop), axis=1)
  spec_f = np.fft.rfft(_frames(excite_fric, n_fft, hop), axis=1)
  # Filters are evaluated every second frame (16 ms): the tracks are smooth.
  f_count = spec_t.shape[0]
  idx = np.minimum(np.arange(0, f_count, 2), num_frames - 1)
  nasal = tr.nasal[idx, None] * (np.arange(5)[None, :] > 0)
  bw = BANDWIDTHS[None, :] * (1.0 + 2.0 * nasal)
  h_tract = _resonator_response(fmt[idx], bw, sr, omega)
  freqs = (omega * sr / (2 * np.pi)).astype(np.float32)
  fc = np.minimum(tr.fric_fc[idx], 0.42 * sr)[:, None].astype(np.float32)
  width = tr.fric_bw[idx, None].astype(np.float32)
  h_fric = np.exp(-0.5 * ((freqs[None, :] - fc) / width) ** 2) + 0.003
  spec = spec_t * np.repeat(h_tract, 2, axis=0)[:f_count]
  spec += spec_f * np.repeat(h_fric, 2, axis=0)[:f_count]
  frames = np.fft.irfft(spec, n=n_fft, axis=1)
  y = _overlap_add(frames, hop, num_samples)
  y = y - _moving_average(y, sr // 50)  # removes DC and rumble
  active = np.abs(np.interp(t, t_frames, tr.voiced + tr.fric)) > 0.05
  ref = np.sqrt(np.mean(y[active] ** 2)) if np.any(active) else 1.0
  return y * (0.1 / max(ref, 1e-9))
