r"""Enhances a WAV file with an exported streaming model, without JAX.

  python examples/stream_enhance.py export/ss4/spiking_s4_stream.onnx \
      noisy.wav enhanced.wav
  python examples/stream_enhance.py export/ss4/spiking_s4_stream.tflite \
      noisy.wav enhanced.wav

Needs only NumPy, soundfile and the runtime of the model's format:
onnxruntime for `.onnx`, ai-edge-litert for `.tflite`. The settings (sample
rate, hop, state tensors, delay) come from `metadata.json` beside the model,
written by `launch/export.py`. The file is fed hop by hop, as a device would
feed its microphone; the state tensors are carried from one call to the
next by this loop, nothing is hidden in the runtime. Copy this file, the
model and `metadata.json` to the device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import soundfile as sf


def load_metadata(model_path: str) -> dict:
  """`metadata.json` from the model's folder."""
  path = os.path.join(
    os.path.dirname(os.path.abspath(model_path)), 'metadata.json'
  )
  if not os.path.isfile(path):
    sys.exit(
      f'error: {path} not found; export with launch/export.py, which writes it.'
    )
  with open(path) as f:
    meta = json.load(f)
  if meta.get('form') != 'stream':
    sys.exit(
      f'error: {model_path} is not a streaming model (form {meta.get("form")!r}).'
    )
  return meta


class Stream:
  """One streaming session: `hop (1, hop_length)` in, enhanced hop out."""

  def __init__(self, model_path: str, meta: dict):
    self.meta = meta
    self.state = {
      s['input']: np.zeros([1, *s['shape']], s['dtype']) for s in meta['state']
    }
    self.next_of = {s['output']: s['input'] for s in meta['state']}
    if model_path.endswith('.onnx'):
      import onnxruntime as ort

      options = ort.SessionOptions()
      options.intra_op_num_threads = 1
      options.inter_op_num_threads = 1
      session = ort.InferenceSession(
        model_path, options, providers=['CPUExecutionProvider']
      )
      names = [o.name for o in session.get_outputs()]
      self._run = lambda feeds: dict(
        zip(names, session.run(None, feeds), strict=True)
      )
    elif model_path.endswith('.tflite'):
      from ai_edge_litert import interpreter

      runner = interpreter.Interpreter(
        model_path=model_path, num_threads=1
      ).get_signature_runner()
      self._run = lambda feeds: runner(**feeds)
    else:
      sys.exit(f'error: {model_path}: expected a .onnx or .tflite file.')

  def __call__(self, hop: np.ndarray) -> np.ndarray:
    outputs = self._run({'hop': hop, **self.state})
    for name, value in outputs.items():
      if name in self.next_of:
        self.state[self.next_of[name]] = value
    return outputs['out']


def read_mono(path: str, rate: int) -> np.ndarray:
  """The WAV file as float32 `(T,)`; refuses what the model cannot take."""
  x, sr = sf.read(path, dtype='float32', always_2d=True)
  if sr != rate:
    sys.exit(
      f'error: {path} is {sr} Hz; the model takes {rate} Hz. Resample it first (e.g. sox in.wav -r {rate} out.wav).'
    )
  if x.shape[1] != 1:
    sys.exit(
      f'error: {path} has {x.shape[1]} channels; the model takes mono. Mix it down first (sox in.wav -c 1 out.wav).'
    )
  if x.shape[0] == 0 or not np.all(np.isfinite(x)):
    sys.exit(f'error: {path} is empty or holds NaN/inf samples.')
  return x[:, 0]


def main() -> None:
  """Reads, streams hop by hop, writes; prints the per-hop time."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('model', help='spiking_s4_stream.onnx or .tflite')
  parser.add_argument('noisy', help='input WAV (mono, the model sample rate)')
  parser.add_argument('enhanced', help='output WAV (must not exist)')
  args = parser.parse_args()
  if os.path.exists(args.enhanced):
    sys.exit(f'error: {args.enhanced} exists; choose another output path.')
  meta = load_metadata(args.model)
  hop, delay = meta['hop_length'], meta['delay_hops']
  noisy = read_mono(args.noisy, meta['sample_rate'])
  n_hops = -(-noisy.size // hop) + delay  # Zero hops flush the last samples.
  padded = np.zeros(n_hops * hop, np.float32)
  padded[: noisy.size] = noisy
  stream = Stream(args.model, meta)
  outs, times = [], []
  for m in range(n_hops):
    start = time.perf_counter()
    outs.append(stream(padded[None, m * hop : (m + 1) * hop])[0])
    times.append(time.perf_counter() - start)
  enhanced = np.concatenate(outs[delay:])[: noisy.size]
  sf.write(args.enhanced, enhanced, meta['sample_rate'])
  hop_ms = 1000 * hop / meta['sample_rate']
  print(
    f'{args.enhanced}: {noisy.size / meta["sample_rate"]:.2f} s, {n_hops} hops; '
    f'{1000 * np.median(times):.3f} ms per {hop_ms:g} ms hop (median), '
    f'latency {meta["latency_ms"]:g} ms.'
  )


if __name__ == '__main__':
  main()
