"""Evaluation: padded batches, metric workers, reports, spectrograms."""

import json

import jax
import numpy as np
import pytest

from harness import evaluation
from s4jax.training import sharding, steps, tasks, testing
from tests.training import toy_config


def _si_snr64(est, ref):
  """Independent float64 SI-SNR (zero-mean, Le Roux et al. 2019)."""
  est = est - est.mean(-1, keepdims=True)
  ref = ref - ref.mean(-1, keepdims=True)
  target = (est * ref).sum(-1, keepdims=True) / (ref**2).sum(-1, keepdims=True)
  target = target * ref
  return 10 * np.log10((target**2).sum(-1) / ((est - target) ** 2).sum(-1))


@pytest.fixture(scope='module')
def setup():
  config = toy_config.get_config()
  config.eval.num_examples = 7  # Batches of 4: the last has 3 rows + pad.
  task = tasks.create_task(config)
  params = task.init(jax.random.key(0), 512)
  mesh = sharding.create_mesh()
  eval_step = jax.jit(steps.make_eval_step(task))
  return config, task, params, mesh, eval_step


def _evaluate(setup, **kw):
  config, task, params, mesh, eval_step = setup
  return evaluation.evaluate(
    task,
    params,
    testing.create_eval_iterator(config),
    eval_step=eval_step,
    mesh=mesh,
    metric_names=('si_snr', 'si_snri'),
    **kw,
  )


def test_means_skip_padding_and_match_a_float64_reference(setup):
  config, task, params, _, _ = setup
  result = _evaluate(setup, num_audio=2)
  data = testing.make_batch(config, 7, np.random.default_rng([1234, 10]))
  est = np.asarray(
    task.estimate(task.apply(params, data['noisy'], train=False)), np.float64
  )
  clean = data['clean'].astype(np.float64)
  want = _si_snr64(est, clean)
  base = _si_snr64(data['noisy'].astype(np.float64), clean)
  assert result.count == 7, result.count
  assert result.metrics['si_snr'] == pytest.approx(want.mean(), abs=1e-3)
  assert result.metrics['si_snri'] == pytest.approx(
    (want - base).mean(), abs=1e-3
  )
  np.testing.assert_allclose(result.per_example['si_snr'], want, atol=1e-3)
  assert len(result.examples) == 2
  np.testing.assert_allclose(
    result.examples[1]['reference'], clean[1], atol=1e-6
  )


def test_worker_processes_give_the_same_numbers(setup):
  inline = _evaluate(setup)
  pool = evaluation.make_pool(2)
  try:
    pooled = _evaluate(setup, pool=pool)
  finally:
    pool.shutdown()
  for k, v in inline.metrics.items():
    assert pooled.metrics[k] == pytest.approx(v, rel=1e-9), k


def test_report_files_and_best_step(tmp_path, setup):
  result = _evaluate(setup)
  paths = evaluation.write_report(str(tmp_path), 30, result, split='validation')
  with open(paths[0]) as f:
    report = json.load(f)
  assert report['step'] == 30 and report['num_examples'] == 7
  assert report['metrics']['si_snr'] == pytest.approx(result.metrics['si_snr'])
  assert len(report['per_example']['si_snri']) == 7
  with open(paths[1]) as f:
    table = f.read()
  assert f'| si_snr | {result.metrics["si_snr"]:.4f} |' in table, table
  worse = evaluation.EvalResult({'si_snr': -50.0}, {}, 1, [], {})
  evaluation.write_report(str(tmp_path), 40, worse, split='validation')
  assert (
    evaluation.best_step(str(tmp_path), 'validation', 'si_snr', 'max') == 30
  )
  assert (
    evaluation.best_step(str(tmp_path), 'validation', 'si_snr', 'min') == 40
  )


def test_spectrogram_frames_and_image_range():
  x = np.random.default_rng(0).standard_normal(16000)
  spec = evaluation.spectrogram(x, n_fft=512, hop=128)
  assert spec.shape == (257, 1 + (16000 - 512) // 128), spec.shape
  image = evaluation.spectrogram_image([x, 0.1 * x])
  assert image.shape == (2 * 257 + 2, spec.shape[1], 1), image.shape
  assert image.min() >= 0.0 and image.max() <= 1.0


def test_padded_clip_ends_are_not_scored(setup):
  # Whole clips of different lengths come zero-padded with 'length'; the
  # metrics must see only each clip's own samples.
  config, task, params, mesh, eval_step = setup
  batch = testing.make_batch(config, 4, np.random.default_rng(5))
  lengths = np.array([512, 320, 448, 160])
  tail = np.random.default_rng(6).standard_normal(512).astype(np.float32)
  for i, n in enumerate(lengths):
    batch['clean'][i, n:] = 0.0
    batch['noisy'][i, n:] = tail[n:]  # Not silence: scoring it would show.
  batch['mask'] = np.ones(4, bool)
  batch['length'] = lengths.astype(np.int32)
  result = evaluation.evaluate(
    task,
    params,
    [batch],
    eval_step=eval_step,
    mesh=mesh,
    metric_names=('si_snr',),
  )
  est = np.asarray(
    task.estimate(task.apply(params, batch['noisy'], train=False)), np.float64
  )
  want = [
    _si_snr64(est[i, :n], batch['clean'][i, :n].astype(np.float64))
    for i, n in enumerate(lengths)
  ]
  np.testing.assert_allclose(result.per_example['si_snr'], want, atol=1e-3)
