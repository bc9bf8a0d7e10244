"""Tiny corpus folders in each real layout, written with soundfile.

Also the fake offline source tree and the corpus built from it.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf

from data_pipelines import offline_build
from tests.data_pipelines import offline_tree


def tone(seed: int, seconds: float, sr: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * sr)) / sr
  f = rng.uniform(150, 600)
  return 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(len(t))


def write(path: str, x: np.ndarray, sr: int) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sf.write(path, x, sr, subtype='PCM_16')


def voicebank(root: str, *, sr: int = 48000) -> dict[str, list[str]]:
  """Train: p226 (validation), p230 and p287 (validation); test: p232."""
  names = {
    'trainset_28spk_wav': ['p226_001', 'p230_001', 'p230_002', 'p287_004'],
    'testset_wav': ['p232_001', 'p232_002'],
  }
  seed = 0
  for sub, stems in names.items():
    for stem in stems:
      seed += 1
      clean = tone(seed, 0.1 + 0.05 * (seed % 3), sr)
      noisy = clean + 0.1 * np.random.default_rng(seed).standard_normal(
        len(clean)
      )
      write(os.path.join(root, f'clean_{sub}', stem + '.wav'), clean, sr)
      write(os.path.join(root, f'noisy_{sub}', stem + '.wav'), noisy, sr)
  return names


def ndns(
  root: str,
  *,
  sr: int = 16000,
  counts=(('training_set', 3), ('validation_set', 2)),
):
  fid = 0
  for sub, count in counts:
    for _ in range(count):
      clean = tone(fid, 0.2, sr)
      noise = 0.1 * np.random.default_rng(100 + fid).standard_normal(len(clean))
      base = os.path.join(root, sub)
      write(f'{base}/clean/clean_fileid_{fid}.wav', clean, sr)
      write(f'{base}/noise/noise_fileid_{fid}.wav', noise, sr)
      write(
        f'{base}/noisy/book_x_snr{fid % 5}_tl-{25 + fid}_fileid_{fid}.wav',
        clean + noise,
        sr,
      )
      fid += 1


def librimix(
  root: str,
  *,
  sr: int = 8000,
  mode: str = 'min',
  subsets=(('train-100', 3), ('dev', 2), ('test', 2)),
  num_sources: int = 2,
  metadata: bool = True,
):
  base = os.path.join(root, f'Libri{num_sources}Mix', f'wav{sr // 1000}k', mode)
  seed = 0
  for subset, count in subsets:
    rows = []
    for i in range(count):
      mid = f'{100 + i}-{subset}_{200 + i}-x'
      srcs = [tone(seed + k, 0.25, sr) for k in range(num_sources)]
      seed += num_sources
      noise = 0.05 * np.random.default_rng(seed).standard_normal(len(srcs[0]))
      for k, s in enumerate(srcs):
        write(f'{base}/{subset}/s{k + 1}/{mid}.wav', s, sr)
      write(f'{base}/{subset}/noise/{mid}.wav', noise, sr)
      write(f'{base}/{subset}/mix_clean/{mid}.wav', sum(srcs) / 2, sr)
      write(f'{base}/{subset}/mix_both/{mid}.wav', (sum(srcs) + noise) / 2, sr)
      write(f'{base}/{subset}/mix_single/{mid}.wav', srcs[0] + noise, sr)
      rows.append(mid)
    if metadata:
      os.makedirs(f'{base}/metadata', exist_ok=True)
      for kind in ('mix_clean', 'mix_both'):
        with open(
          f'{base}/metadata/mixture_{subset}_{kind}.csv', 'w', newline=''
        ) as f:
          w = csv.writer(f)
          w.writerow(
            [
              'mixture_ID',
              'mixture_path',
              'source_1_path',
              'source_2_path',
              'length',
            ]
          )
          for mid in rows:
            w.writerow([mid, f'/x/{mid}.wav', 'a', 'b', 2000])
  return base


def wham(root: str, *, sr: int = 8000, mode: str = 'min'):
  base = os.path.join(root, f'wav{sr // 1000}k', mode)
  seed = 0
  for subset, count in (('tr', 3), ('cv', 2), ('tt', 2)):
    for i in range(count):
      name = f'40{i}a010{i}_1.2_20{i}o0{i}_-1.2.wav'
      s1, s2 = tone(seed, 0.2, sr), tone(seed + 1, 0.2, sr)
      seed += 2
      noise = 0.05 * np.random.default_rng(seed).standard_normal(len(s1))
      for folder, x in (
        ('s1', s1),
        ('s2', s2),
        ('noise', noise),
        ('mix_clean', (s1 + s2) / 2),
        ('mix_both', (s1 + s2 + noise) / 2),
        ('mix_single', s1 + noise),
      ):
        write(f'{base}/{subset}/{folder}/{name}', x, sr)
  return base


@pytest.fixture
def voicebank_dir(tmp_path):
  root = str(tmp_path / 'voicebank')
  voicebank(root)
  return root


@pytest.fixture
def ndns_dir(tmp_path):
  root = str(tmp_path / 'ndns')
  ndns(root)
  return root


@pytest.fixture
def librimix_dir(tmp_path):
  root = str(tmp_path / 'librimix')
  librimix(root)
  return root


@pytest.fixture
def wham_dir(tmp_path):
  root = str(tmp_path / 'wham')
  wham(root)
  return root


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
  """The fake offline source tree (offline_tree.make_tree), per module."""
  return offline_tree.make_tree(str(tmp_path_factory.mktemp('tree')))


@pytest.fixture(scope='module')
def corpus(tree, tmp_path_factory):
  """`(folder, build info)` of an offline corpus built from `tree`."""
  out = str(tmp_path_factory.mktemp('corpus'))
  info = offline_build.build(out, offline_tree.options(tree))
  return out, info
