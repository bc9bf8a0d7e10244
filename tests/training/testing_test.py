"""Tests of `s4jax.training.testing`: the toy model and in-memory pipeline."""

import itertools

import jax
import ml_collections
import numpy as np
import pytest

from s4jax.training import testing


def _config(task='enhancement', batch=4, eval_examples=6, eval_batch=4):
  config = ml_collections.ConfigDict()
  config.task = task
  config.seed = 3
  config.data = ml_collections.ConfigDict(
    dict(sample_rate=1600, segment_seconds=0.08, num_sources=2)
  )
  config.train = ml_collections.ConfigDict(dict(batch_size=batch))
  config.eval = ml_collections.ConfigDict(
    dict(num_examples=eval_examples, batch_size=eval_batch)
  )
  return config


def _si_snr_float64(est, ref):
  est = est - est.mean(-1, keepdims=True)
  ref = ref - ref.mean(-1, keepdims=True)
  target = (est * ref).sum(-1, keepdims=True) / (ref**2).sum(-1, keepdims=True)
  target = target * ref
  noise = est - target
  return 10 * np.log10((target**2).sum(-1) / (noise**2).sum(-1))


def test_si_snr_matches_float64_reference():
  rng = np.random.default_rng(0)
  ref = rng.standard_normal((3, 400))
  est = ref + 0.3 * rng.standard_normal((3, 400))
  got = np.asarray(testing.si_snr(est.astype(np.float32), ref))
  want = _si_snr_float64(est, ref)
  # float32 sums of 400 terms; EPS=1e-8 is negligible at these energies.
  np.testing.assert_allclose(got, want, atol=1e-3, err_msg='SI-SNR (dB)')


def test_train_batches_depend_only_on_seed_and_step():
  config = _config()
  first = list(itertools.islice(testing.create_train_iterator(config), 3))
  resumed = next(testing.create_train_iterator(config, start_step=2))
  for key in ('noisy', 'clean'):
    np.testing.assert_array_equal(resumed[key], first[2][key], err_msg=key)
  assert not np.array_equal(first[0]['noisy'], first[1]['noisy'])


def test_processes_split_the_same_global_batch():
  config = _config(batch=4)
  whole = next(testing.create_train_iterator(config, process_count=1))
  parts = [
    next(
      testing.create_train_iterator(config, process_index=i, process_count=2)
    )
    for i in range(2)
  ]
  joined = np.concatenate([p['noisy'] for p in parts])
  np.testing.assert_array_equal(joined, whole['noisy'])


def test_noisy_snr_lies_in_zero_to_ten_db():
  batch = next(testing.create_train_iterator(_config(batch=8)))
  noise = batch['noisy'] - batch['clean']
  snr = 10 * np.log10(
    (batch['clean'].astype(np.float64) ** 2).mean(-1)
    / (noise.astype(np.float64) ** 2).mean(-1)
  )
  assert np.all((snr > -0.01) & (snr < 10.01)), f'SNRs {snr} outside [0, 10]'


def test_eval_iterator_pads_the_last_batch_and_marks_it():
  batches = list(
    testing.create_eval_iterator(_config(eval_examples=6, eval_batch=4))
  )
  masks = [b['mask'].tolist() for b in batches]
  assert masks == [[True] * 4, [True, True, False, False]], masks
  assert not np.any(batches[1]['noisy'][2:]), 'padded rows must be zeros'


@pytest.mark.parametrize('sources', [0, 2])
def test_toy_model_shapes_and_loss(sources):
  task = 'separation' if sources else 'enhancement'
  config = _config(task=task, batch=2)
  batch = next(testing.create_train_iterator(config))
  model = testing.from_config(
    ml_collections.ConfigDict(dict(frame=32, hidden=8, num_sources=sources))
  )
  x = batch['mixture' if sources else 'noisy']
  variables = model.init(jax.random.key(0), x)
  out = model.apply(variables, x)
  key, shape = (
    ('estimates', (2, 2, x.shape[-1])) if sources else ('estimate', x.shape)
  )
  assert out[key].shape == shape, f'expected {shape}, got {out[key].shape}'
  loss, metrics = testing.loss_fn(out, batch, None)
  np.testing.assert_allclose(float(loss), -float(metrics['si_snr']), rtol=1e-6)
  if sources:
    # The loss takes the best speaker order: swapping the references
    # changes nothing.
    swapped = dict(batch, sources=batch['sources'][:, ::-1])
    loss_swapped, _ = testing.loss_fn(out, swapped, None)
    np.testing.assert_allclose(float(loss_swapped), float(loss), rtol=1e-6)
