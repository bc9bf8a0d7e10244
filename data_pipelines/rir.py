"""Room impulse responses: image sources plus a decaying noise tail (NumPy).

A shoebox room with the same absorption on every wall is set to the wanted
reverberation time with Sabine's formula, `RT60 = 0.161 V / (S alpha)`. The
early part (direct path and reflections up to `early_ms`, default 80 ms) is
computed with the image-source method (Allen & Berkley 1979), each image a
fractional-delay windowed sinc with amplitude `beta^reflections / distance`,
`beta = sqrt(1 - alpha)`. The late part is Gaussian noise with an
exponential envelope falling 60 dB in RT60 seconds, low-passed (high
frequencies decay faster in real rooms) and scaled to continue the energy
of the image sources at the switch-over time; this "hybrid" response is what
fast RIR generators do instead of millions of high-order images.

Responses are returned with the direct path at sample `LEAD` and scaled so
that it has unit amplitude, so a dry signal convolved with
`rir[:direct + LEAD + 1]` is the signal delayed by `LEAD` samples (the
training target for the early-reverberant case keeps `rir[:direct + early]`).
`pyroomacoustics` (PyPI, a compiled extension) does the same with
frequency-dependent absorption; this module avoids the dependency.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import signal

SPEED_OF_SOUND = 343.0  # m/s
LEAD = 8  # samples before the direct path (room for the sinc's left taps)
_SINC_HALF = 8  # taps each side of a fractional delay


@dataclasses.dataclass(frozen=True)
class Room:
  """A shoebox room, a source and a microphone.

  Attributes:
    size: (3,) room dimensions in metres.
    source: (3,) source position in metres.
    mic: (3,) microphone position in metres.
    rt60: reverberation time in seconds.
  """

  size: tuple[float, float, float]
  source: tuple[float, float, float]
  mic: tuple[float, float, float]
  rt60: float


def sabine_absorption(size, rt60: float) -> float:
  """Wall absorption coefficient alpha in (0, 1) giving `rt60` seconds."""
  lx, ly, lz = size
  volume = lx * ly * lz
  surface = 2.0 * (lx * ly + lx * lz + ly * lz)
  return float(np.clip(0.161 * volume / (surface * rt60), 1e-3, 0.999))


def sample_room(rng: np.random.Generator, rt60_range=(0.1, 0.8)) -> Room:
  """Draws a room (3-10 x 3-8 x 2.5-4 m), positions and RT60.

  The source and the microphone are at least 0.5 m from every wall and
  0.5-3 m apart (a talker across a room, not in the next one).
  """
  size = (
    rng.uniform(3.0, 10.0),
    rng.uniform(3.0, 8.0),
    rng.uniform(2.5, 4.0),
  )
  lo = np.array([0.5, 0.5, 0.8])
  hi = np.array(size) - np.array([0.5, 0.5, 0.5])
  mic = rng.uniform(lo, hi)
  for _ in range(100):
    src = rng.uniform(lo, hi)
    if 0.5 <= np.linalg.norm(src - mic) <= 3.0:
      break
  rt60 = float(rng.uniform(*rt60_range))
  return Room(
    tuple(float(v) for v in size),
    tuple(float(v) for v in src),
    tuple(float(v) for v in mic),
    rt60,
  )


def _image_sources(room: Room, max_delay: float):
  """Distances (m) and reflection counts of the images within `max_delay` s."""
  size = np.array(room.size)
  src = np.array(room.source)
  mic = np.array(room.mic)
  reach = max_delay * SPEED_OF_SOUND
  order = np.ceil(reach / size).astype(int) + 1  # per axis
  axes = []
  for d in range(3):
    n = np.arange(-order[d], order[d] + 1)
    # Images at 2 n L +- x: parity q=0 is the source mirrored 2|n| times,
    # q=1 is mirrored once more (|2n - 1| reflections).
    pos = np.concatenate([2 * n * size[d] + src[d], 2 * n * size[d] - src[d]])
    refl = np.concatenate([2 * np.abs(n), np.abs(2 * n - 1)])
    axes.append((pos - mic[d], refl))
  dx, rx = axes[0]
  dy, ry = axes[1]
  dz, rz = axes[2]
  dist = np.sqrt(
    dx[:, None, None] ** 2 + dy[None, :, None] ** 2 + dz[None, None, :] ** 2
  )
  refl = rx[:, None, None] + ry[None, :, None] + rz[None, None, :]
  keep = dist <= reach
  return dist[keep], refl[keep]


def room_impulse_response(
  room: Room,
  sr: int,
  rng: np.random.Generator,
  *,
  early_ms: float = 80.0,
) -> tuple[np.ndarray, int]:
  """The hybrid impulse response of `room`.

  Args:
    room: geometry and RT60.
    sr: sample rate in Hz.
    rng: random generator (late tail).
    early_ms: image sources cover this long after the direct path.

  Returns:
    (rir, direct): real (L,) float32 with L about `LEAD + delay + 1.1 RT60`
    samples, the direct path at index `direct` (== LEAD) with unit
    amplitude.
  """
  alpha = sabine_absorption(room.size, room.rt60)
  beta = np.sqrt(1.0 - alpha)
  d0 = float(np.linalg.norm(np.array(room.source) - np.array(room.mic)))
  t0 = d0 / SPEED_OF_SOUND
  t_mix = t0 + early_ms / 1000.0
  dist, refl = _image_sources(room, t_mix)
  amp = beta**refl * d0 / np.maximum(dist, 1e-3)  # direct path -> 1
  # Times relative to the direct path, placed LEAD samples in.
  t = (dist - d0) / SPEED_OF_SOUND * sr + LEAD
  length = int(LEAD + (t_mix - t0) * sr + 1.1 * room.rt60 * sr) + 1
  rir = np.zeros(length + 2 * _SINC_HALF)
  base = np.floor(t).astype(int)
  frac = t - base
  taps = np.arange(-_SINC_HALF + 1, _SINC_HALF + 1)
  idx = base[:, None] + taps[None, :]
  arg = taps[None, :] - frac[:, None]
  win = 0.5 * (1 + np.cos(np.pi * arg / (_SINC_HALF + 1)))
  kern = np.sinc(arg) * win
  valid = (idx >= 0) & (idx < len(rir))
  np.add.at(rir, idx[valid], (amp[:, None] * kern)[valid])
  rir = rir[:length]
  # Late tail from the switch-over point on.
  start = int(LEAD + (t_mix - t0) * sr)
  n_tail = length - start
  if n_tail > 0:
    tt = np.arange(n_tail) / sr
    env = np.exp(-3.0 * np.log(10.0) * tt / room.rt60)
    noise = rng.standard_normal(n_tail)
    b, a = signal.butter(1, min(0.99, 4000.0 / (sr / 2)), 'low')
    noise = signal.lfilter(b, a, noise)
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    # Continue the image sources' energy density (per sample) at `start`.
    w = max(1, int(0.01 * sr))
    level = np.sqrt(np.mean(rir[max(LEAD + 1, start - w) : start] ** 2))
    if not np.isfinite(level) or level <= 0:
      level = 10 ** (-30 / 20)
    tail = level * env * noise
    fade = np.minimum(1.0, np.arange(n_tail) / max(1, w))
    rir[start:] = rir[start:] * (1 - fade) + tail * fade
  return rir.astype(np.float32), LEAD


def sample_rirs(
  seed: int, count: int, sr: int, rt60_range=(0.1, 0.8)
) -> tuple[np.ndarray, list[dict]]:
  """`count` responses from seeded random rooms, zero-padded to one length.

  Args:
    seed: random seed (the pool is a pure function of the arguments).
    count: number of responses.
    sr: sample rate in Hz.
    rt60_range: RT60 drawn uniformly from this range, seconds.

  Returns:
    (rirs, info): float32 (count, L) and per response a dict with 'rt60',
    'direct' (index of the direct path), 'length' (samples before padding),
    'size', 'source', 'mic'.
  """
  rng = np.random.default_rng(np.random.SeedSequence(int(seed) % 2**63))
  out, info = [], []
  for _ in range(int(count)):
    room = sample_room(rng, rt60_range)
    rir, direct = room_impulse_response(room, sr, rng)
    out.append(rir)
    info.append(
      {
        'rt60': room.rt60,
        'direct': direct,
        'length': len(rir),
        'size': list(room.size),
        'source': list(room.source),
        'mic': list(room.mic),
      }
    )
  width = max(len(r) for r in out) if out else 1
  arr = np.zeros((len(out), width), np.float32)
  for i, r in enumerate(out):
    arr[i, : len(r)] = r
  return arr, info


def measured_rt60(rir: np.ndarray, sr: int) -> float:
  """RT60 from Schroeder's backward integral (T20 fit, -5 to -25 dB) in s."""
  e = np.cumsum(np.asarray(rir, np.float64)[::-1] ** 2)[::-1]
  db = 10 * np.log10(e / e[0] + 1e-20)
  i5 = int(np.argmax(db <= -5.0))
  i25 = int(np.argmax(db <= -25.0))
  if i25 <= i5:
    return float('nan')
  t = np.arange(i5, i25) / sr
  slope = np.polyfit(t, db[i5:i25], 1)[0]
  return float(-60.0 / slope)
