"""Train/eval iterators: shapes, determinism, resumption, per-host sharding.

Over the synthetic set, the real-corpus layouts and the offline corpus.
"""

import itertools

import numpy as np
import pytest

from configs import base
from data_pipelines import audio_io, input_pipeline, offline
from tests.data_pipelines.offline_tree import offline_config, single_host

SR = 8000


def _config(tmp_path, **data):
  c = base.get_base_config()
  c.seed = 7
  c.data.data_dir = str(tmp_path / 'cache')
  c.data.sample_rate = SR
  c.data.synthetic_train_seconds = 10.0
  c.data.synthetic_eval_seconds = 5.0
  c.data.synthetic_clip_seconds = 1.0
  c.data.segment_seconds = 0.5
  c.train.batch_size = 4
  c.eval.batch_size = 4
  for k, v in data.items():
    c.data[k] = v
  return c


def _take(it, n):
  return list(itertools.islice(it, n))


def _train(config, **kw):
  kw.setdefault('process_index', 0)
  kw.setdefault('process_count', 1)
  return input_pipeline.create_train_iterator(config, **kw)


def _eval(config, split='validation', **kw):
  kw.setdefault('process_index', 0)
  kw.setdefault('process_count', 1)
  return input_pipeline.create_eval_iterator(config, split, **kw)


def _row_ids(rows, table):
  """Index of each row in `table` (N, T); -1 when absent."""
  out = []
  for r in rows:
    hit = np.flatnonzero(np.all(table == r[None], axis=1))
    out.append(int(hit[0]) if hit.size else -1)
  return out


def test_enhancement_batch_shapes(tmp_path):
  batch = next(_train(_config(tmp_path)))
  assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == {
    k: ((4, SR // 2), 'float32') for k in ('noisy', 'clean', 'noise')
  }


def test_separation_batch_shapes(tmp_path):
  c = _config(tmp_path, num_sources=2)
  c.task = 'separation'
  batch = next(_train(c))
  assert batch['mixture'].shape == (4, SR // 2)
  assert batch['sources'].shape == (4, 2, SR // 2)
  np.testing.assert_allclose(
    batch['sources'].sum(1), batch['mixture'], atol=1e-6
  )


def test_same_seed_same_bytes_and_resume_matches(tmp_path):
  c = _config(tmp_path)
  full = _take(_train(c), 9)
  again = _take(_train(c), 9)
  resumed = _take(_train(c, start_step=6), 3)
  for i, (a, b) in enumerate(zip(full, again, strict=True)):
    for k in a:
      assert a[k].tobytes() == b[k].tobytes(), f'step {i} {k} differs'
  for i, r in enumerate(resumed):
    for k in r:
      np.testing.assert_array_equal(
        r[k], full[6 + i][k], err_msg=f'resumed step {6 + i} {k}'
      )
  other = _config(tmp_path)
  other.seed = 8
  assert not np.array_equal(next(_train(other))['clean'], full[0]['clean'])


def test_epoch_visits_every_example_once_then_reshuffles(tmp_path):
  c = _config(tmp_path, segment_seconds=0.0)
  c.train.batch_size = 2
  source = input_pipeline.make_source(c, 'train')
  table = source.split.arrays['clean']
  steps = _take(_train(c), 10)  # 2 epochs of 10 examples
  ids = [_row_ids(b['clean'], table) for b in steps]
  first = sum(ids[:5], [])
  second = sum(ids[5:], [])
  assert sorted(first) == list(range(10)), first
  assert sorted(second) == list(range(10)), second
  assert first != second, 'epochs were not reshuffled'


def test_hosts_split_the_global_batch(tmp_path):
  c = _config(tmp_path)
  one = _take(_train(c), 3)
  hosts = [
    _take(_train(c, process_index=p, process_count=2), 3) for p in range(2)
  ]
  for step in range(3):
    for k in one[step]:
      joined = np.concatenate([hosts[0][step][k], hosts[1][step][k]])
      np.testing.assert_array_equal(
        joined, one[step][k], err_msg=f'step {step} key {k}'
      )


def test_eval_covers_each_example_once_across_hosts(tmp_path):
  c = _config(tmp_path)
  c.eval.batch_size = 6
  table = input_pipeline.make_source(c, 'validation').split.arrays['clean']
  seen = []
  for p in range(3):
    batches = _eval(c, process_index=p, process_count=3)
    assert len(batches) == 1
    for b in batches:
      assert b['clean'].shape == (2, SR) and b['mask'].dtype == bool
      assert np.all(b['clean'][~b['mask']] == 0), 'padding rows not zero'
      assert np.all(b['length'][b['mask']] == SR)
      seen += _row_ids(b['clean'][b['mask']], table)
  assert sorted(seen) == list(range(5)), f'eval rows cover {sorted(seen)}'


def test_eval_is_finite_and_repeatable(tmp_path):
  c = _config(tmp_path)
  batches = _eval(c)
  first, second = list(batches), list(batches)
  assert len(first) == len(batches) == 2
  assert [b['mask'].tolist() for b in first] == [
    [True] * 4,
    [True, False, False, False],
  ]
  for a, b in zip(first, second, strict=True):
    np.testing.assert_array_equal(a['noisy'], b['noisy'])
  c.eval.num_examples = 3
  assert sum(int(b['mask'].sum()) for b in _eval(c)) == 3


def test_uneven_global_batch_is_rejected(tmp_path):
  c = _config(tmp_path)
  c.train.batch_size = 5
  with pytest.raises(ValueError, match='multiple of the process count 2'):
    _train(c, process_index=0, process_count=2)


@pytest.mark.parametrize('setting', ['threads', 'workers'])
def test_bad_thread_and_worker_counts_are_refused(tmp_path, setting):
  c = _config(tmp_path)
  c.data[setting] = -1
  with pytest.raises(ValueError, match=f'config.data.{setting}=-1 must be'):
    _train(c)


def _steps_of(step):
  if step == 5:
    raise RuntimeError('batch 5 is broken')
  return {'step': np.array([step])}


@pytest.mark.parametrize('deterministic', [True, False])
def test_prefetch_yields_each_step_once_and_raises_a_failed_batch(
  deterministic,
):
  steps = input_pipeline._thread_iterator(  # pylint: disable=protected-access
    _steps_of, 0, 5, deterministic, threads=3
  )
  got = [int(b['step'][0]) for b in steps]
  want = [0, 1, 2, 3, 4]
  assert (got if deterministic else sorted(got)) == want, got
  failing = input_pipeline._thread_iterator(  # pylint: disable=protected-access
    _steps_of, 3, None, True, threads=2
  )
  assert [int(next(failing)['step'][0]) for _ in range(2)] == [3, 4]
  with pytest.raises(RuntimeError, match='batch 5 is broken'):
    next(failing)


def test_voicebank_pipeline_resamples_to_model_rate(voicebank_dir, tmp_path):
  c = _config(
    tmp_path,
    name='voicebank_demand',
    manual_dir=voicebank_dir,
    data_dir=str(tmp_path / 'tfds'),
    segment_seconds=0.05,
  )
  batch = next(_train(c))
  assert batch['noisy'].shape == (4, 400) and set(batch) == {'noisy', 'clean'}
  source = input_pipeline.make_source(c, 'test')
  (b,) = list(_eval(c, 'test'))
  expected_len = -(-source.whole_length * SR // 16000)
  assert b['clean'].shape == (4, expected_len), b['clean'].shape
  ref = audio_io.resample(source[0]['clean'], 16000, SR)
  np.testing.assert_allclose(b['clean'][0, : len(ref)], ref, atol=1e-6)
  assert b['length'][0] == len(ref) and b['mask'].tolist() == [1, 1, 0, 0]


def test_librimix_separation_pipeline(librimix_dir, tmp_path):
  c = _config(
    tmp_path,
    name='librimix',
    manual_dir=librimix_dir,
    data_dir=str(tmp_path / 'tfds'),
    num_sources=2,
    segment_seconds=0.1,
  )
  c.task = 'separation'
  batch = next(_train(c))
  assert batch['sources'].shape == (4, 2, 800), batch['sources'].shape
  assert set(batch) == {'mixture', 'sources'}


def test_ndns_whole_clips_padded_to_30s(ndns_dir, tmp_path):
  c = _config(
    tmp_path,
    name='ndns',
    manual_dir=ndns_dir,
    sample_rate=16000,
    data_dir=str(tmp_path / 'tfds'),
  )
  c.eval.batch_size = 2
  (b,) = list(_eval(c))
  assert b['noisy'].shape == (2, 30 * 16000) and set(b) == {
    'noisy',
    'clean',
    'noise',
    'mask',
    'length',
  }
  assert b['length'].tolist() == [3200, 3200]


def test_wrong_task_for_corpus_is_explained(voicebank_dir, tmp_path):
  c = _config(
    tmp_path,
    name='voicebank_demand',
    manual_dir=voicebank_dir,
    data_dir=str(tmp_path / 'tfds'),
    num_sources=2,
  )
  c.task = 'separation'
  with pytest.raises(ValueError, match='no separated sources'):
    _train(c)
  c.data.name = 'timit'
  with pytest.raises(ValueError, match='Unknown config.data.name'):
    _train(c)


# ------------------------------------ the offline corpus (conftest `corpus`)


def test_offline_corpus_train_and_eval_batches(corpus):
  folder, _ = corpus
  c = offline_config(folder)
  it = input_pipeline.create_train_iterator(c, **single_host())
  batch = next(it)
  assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == {
    k: ((4, 8000), 'float32') for k in ('noisy', 'clean', 'noise')
  }
  np.testing.assert_allclose(
    batch['clean'] + batch['noise'], batch['noisy'], atol=1e-6
  )
  level = 10 * np.log10(np.mean(batch['noisy'].astype(np.float64) ** 2, 1))
  assert np.all((level > -36) & (level < -14)), level
  again = next(input_pipeline.create_train_iterator(c, **single_host()))
  assert batch['noisy'].tobytes() == again['noisy'].tobytes()
  batches = list(input_pipeline.create_eval_iterator(c, **single_host()))
  assert len(batches) == 2
  assert batches[0]['noisy'].shape == (4, 16000)
  assert batches[1]['mask'].tolist() == [True, False, False, False]
  c.data.sample_rate = 8000
  input_pipeline._cached_source.cache_clear()
  assert next(input_pipeline.create_train_iterator(c, **single_host()))[
    'noisy'
  ].shape == (4, 4000)


def test_worker_processes_make_the_same_batches(corpus):
  # Mixing on the fly, in 2 spawned processes, from a resumed step.
  folder, _ = corpus
  c = offline_config(folder)
  threads = _take(
    input_pipeline.create_train_iterator(c, start_step=3, **single_host()), 4
  )
  c.data.workers = 2
  workers = input_pipeline.create_train_iterator(
    c, start_step=3, **single_host()
  )
  got = _take(workers, 4)
  workers.close()
  for i, (a, b) in enumerate(zip(threads, got, strict=True)):
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    for k in a:
      assert a[k].tobytes() == b[k].tobytes(), f'step {3 + i} {k} differs'
  c.data.workers = -1
  with pytest.raises(ValueError, match='workers'):
    input_pipeline.create_train_iterator(c, **single_host())


def test_offline_eval_uses_the_validation_speakers_and_fixed_mixtures(
  corpus,
):
  folder, _ = corpus
  c = offline_config(folder)
  src = input_pipeline.make_source(c, 'validation')
  assert src.spec.seed == 0 and not src.spec.augment
  c.seed = 5
  other = input_pipeline.make_source(c, 'validation')
  assert src[2]['clean'].tobytes() == other[2]['clean'].tobytes()
  val = offline.load_split(folder, 'validation')
  train = offline.load_split(folder, 'train')
  assert not set(val.speech.group) & set(train.speech.group)


def test_missing_offline_corpus_names_the_build_command(tmp_path):
  c = offline_config(str(tmp_path / 'none'))
  with pytest.raises(FileNotFoundError, match='launch/build_corpus.py'):
    input_pipeline.make_source(c, 'train')
  c.data.offline_reverb_prob = 2.0
  with pytest.raises(ValueError, match='reverb_prob'):
    input_pipeline._offline_spec(c, 'train')
