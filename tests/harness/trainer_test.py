"""End-to-end loop on the toy model: checkpoints, resume, guard, evaluation.

Checkpoint save/restore/errors themselves: checkpoint_test.py.
"""

import glob
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from harness import checkpoint, trainer
from s4jax.training import testing
from tests.launch import cli
from tests.training import toy_config


class _Pipeline:
  """The toy pipeline with optional SIGTERM and poisoned train batches."""

  def __init__(self, sigterm_at=None, poison=()):
    self.sigterm_at = sigterm_at  # 0-based index of the batch.
    self.poison = poison

  def create_train_iterator(self, config, *, start_step=0, **kw):
    it = testing.create_train_iterator(config, start_step=start_step, **kw)
    for i, batch in enumerate(it, start_step):
      if i == self.sigterm_at:
        os.kill(os.getpid(), signal.SIGTERM)
      if self.poison == 'all' or i in self.poison:
        batch = {**batch, 'noisy': batch['noisy'].copy()}
        batch['noisy'][0, 3] = np.nan
      yield batch

  def create_eval_iterator(self, config, split='validation', **kw):
    return testing.create_eval_iterator(config, split, **kw)


def _losses(result):
  return {h['step']: h['loss'] for h in result.history}


def test_smoke_train_checkpoint_resume_evaluate(tmp_path):
  config = toy_config.get_config('steps=8')
  workdir = str(tmp_path)
  first = trainer.train_and_evaluate(config, workdir, testing)
  assert sorted(_losses(first)) == list(range(1, 9))
  assert all(np.isfinite(v) for v in _losses(first).values())
  assert [e['step'] for e in first.evals] == [4, 8]
  ckpt = checkpoint.Checkpointer(
    checkpoint.checkpoint_dir(workdir), read_only=True
  )
  assert ckpt.all_steps() == [4, 8], ckpt.all_steps()
  ckpt.close()
  for step in (4, 8):
    with open(tmp_path / 'eval' / f'validation_step_{step}.json') as f:
      report = json.load(f)
    assert report['num_examples'] == 6, report['num_examples']
    assert (tmp_path / 'eval' / f'validation_step_{step}.md').exists()
  assert glob.glob(str(tmp_path / 'events.out.tfevents.*'))
  assert (tmp_path / 'config.json').exists()

  # Standalone evaluation of the last checkpoint equals the in-loop one.
  step, res, _ = trainer.evaluate_checkpoint(config, workdir, testing)
  assert step == 8
  for k, v in first.evals[-1].items():
    if k != 'step':
      assert res.metrics[k] == pytest.approx(v, rel=1e-5), k

  # Rerunning with more steps resumes at 8.
  more = trainer.train_and_evaluate(
    toy_config.get_config('steps=10'), workdir, testing
  )
  assert sorted(_losses(more)) == [9, 10], sorted(_losses(more))
  assert int(more.state.step) == 10


def test_preempted_and_resumed_equals_uninterrupted(tmp_path):
  config = toy_config.get_config('steps=8')
  config.optimizer.schedule = 'plateau'  # Evaluations change the rate.
  config.optimizer.plateau_patience = 1
  config.optimizer.plateau_factor = 0.25
  config.train.eval_every = 2
  config.eval.best_metric = 'si_snri'
  config.eval.best_mode = 'min'  # Every improving evaluation is a plateau.
  straight = trainer.train_and_evaluate(config, str(tmp_path / 'a'), testing)

  workdir = str(tmp_path / 'b')
  # SIGTERM while fetching batch index 3 -> stops after step 4, an eval
  # step, before its evaluation; the resumed run must do it first.
  part1 = trainer.train_and_evaluate(config, workdir, _Pipeline(sigterm_at=3))
  assert part1.preempted and int(part1.state.step) == 4
  assert [e['step'] for e in part1.evals] == [2], part1.evals
  part2 = trainer.train_and_evaluate(config, workdir, _Pipeline())
  resumed = {**_losses(part1), **_losses(part2)}
  want = _losses(straight)
  assert sorted(resumed) == sorted(want)
  for step in want:
    assert resumed[step] == pytest.approx(want[step], rel=1e-6, abs=1e-6), (
      f'step {step}: resumed {resumed[step]} vs straight {want[step]}'
    )
  assert [e['step'] for e in part1.evals + part2.evals] == [2, 4, 6, 8]
  for a, b in zip(straight.evals, part1.evals + part2.evals, strict=True):
    assert a == pytest.approx(b, rel=1e-6), (a, b)
  rates = {h['step']: h['learning_rate'] for h in straight.history}
  assert rates[7] < rates[5] < rates[4], f'plateau never triggered: {rates}'
  for a, b in zip(
    jax.tree.leaves(straight.state.params),
    jax.tree.leaves(part2.state.params),
    strict=True,
  ):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_poisoned_batch_is_skipped_and_training_continues(tmp_path):
  config = toy_config.get_config('steps=6')
  result = trainer.train_and_evaluate(
    config, str(tmp_path), _Pipeline(poison={2})
  )
  by_step = {h['step']: h for h in result.history}
  assert by_step[3]['skipped'] == 1.0, by_step[3]
  assert by_step[3]['consecutive_skips'] == 1
  assert by_step[4]['consecutive_skips'] == 0 and by_step[4]['skipped'] == 0
  assert int(result.state.total_skips) == 1
  assert all(np.isfinite(by_step[s]['loss']) for s in (1, 2, 4, 5, 6))
  leaves = jax.tree.leaves(result.state.params)
  assert all(np.isfinite(np.asarray(x)).all() for x in leaves)


def test_too_many_consecutive_skips_stop_with_a_clear_error(tmp_path):
  config = toy_config.get_config('steps=8')  # max_consecutive_skips = 3
  with pytest.raises(
    trainer.NonFiniteError,
    match=r'3 consecutive steps.*max_consecutive_skips=3',
  ):
    trainer.train_and_evaluate(config, str(tmp_path), _Pipeline(poison='all'))


def test_bfloat16_compute_keeps_float32_params(tmp_path):
  f32 = trainer.train_and_evaluate(
    toy_config.get_config('steps=2'), str(tmp_path / 'f32'), testing
  )
  config = toy_config.get_config('steps=2')
  config.train.compute_dtype = 'bfloat16'
  bf16 = trainer.train_and_evaluate(config, str(tmp_path / 'bf16'), testing)
  dtypes = {x.dtype for x in jax.tree.leaves(bf16.state.params)}
  assert dtypes == {np.dtype('float32')}, dtypes
  a, b = _losses(f32)[1], _losses(bf16)[1]
  assert a != b, 'bfloat16 compute gave bit-identical losses to float32'
  assert b == pytest.approx(a, abs=0.1), (a, b)


def test_separation_task_trains_and_evaluates(tmp_path):
  config = toy_config.get_config('task=separation,steps=4')
  result = trainer.train_and_evaluate(config, str(tmp_path), testing)
  assert [e['step'] for e in result.evals] == [4]
  assert np.isfinite(result.evals[0]['si_sdri']), result.evals


class _Exited(Exception):
  pass


def _fake_exit(code):
  raise _Exited(code)


def test_signal_with_nothing_unsaved_exits_at_once(monkeypatch):
  monkeypatch.setattr(trainer.os, '_exit', _fake_exit)
  flag = trainer._PreemptionFlag()
  with pytest.raises(_Exited) as exited:
    flag._handle(signal.SIGTERM, None)
  assert exited.value.args == (128 + signal.SIGTERM,), exited.value.args


def test_signal_with_unsaved_steps_saves_then_second_signal_exits(
  monkeypatch,
):
  monkeypatch.setattr(trainer.os, '_exit', _fake_exit)
  flag = trainer._PreemptionFlag()
  flag.unsaved_steps = 3
  flag._handle(signal.SIGINT, None)
  assert flag.requested and flag.should_stop(4), 'first signal: stop and save'
  with pytest.raises(_Exited) as exited:
    flag._handle(signal.SIGINT, None)
  assert exited.value.args == (128 + signal.SIGINT,), exited.value.args


_SIGTERM_PIPELINE = """
import os
import signal

from s4jax.training import testing

create_eval_iterator = testing.create_eval_iterator


def create_train_iterator(config, *, start_step=0, **kwargs):
  it = testing.create_train_iterator(config, start_step=start_step, **kwargs)
  for i, batch in enumerate(it):
    if i == 0:
      os.kill(os.getpid(), signal.SIGTERM)
    yield batch
"""


def test_sigterm_before_the_first_step_exits_promptly(tmp_path):
  (tmp_path / 'sigterm_pipeline.py').write_text(_SIGTERM_PIPELINE)
  env = dict(os.environ, PYTHONPATH=f'{tmp_path}{os.pathsep}{cli.ROOT}')
  env['JAX_PLATFORMS'] = 'cpu'
  workdir = tmp_path / 'run'
  result = subprocess.run(
    [
      sys.executable,
      'launch/train.py',
      '--config=tests/training/toy_config.py',
      '--input_pipeline=sigterm_pipeline',
      f'--workdir={workdir}',
    ],
    cwd=cli.ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 128 + signal.SIGTERM, (
    f'expected exit {128 + signal.SIGTERM}, got {result.returncode}:\n'
    f'{result.stderr[-2000:]}'
  )
  assert 'exiting now without saving' in result.stderr, result.stderr[-2000:]
  assert not list((workdir / 'checkpoints').glob('*')), 'nothing to save'


def test_fine_tuning_starts_from_the_given_parameters(tmp_path):
  config = toy_config.get_config('steps=2')
  first = trainer.train_and_evaluate(config, str(tmp_path / 'a'), testing)
  params = jax.device_get(first.state.params)
  config.optimizer.learning_rate = 0.0  # So the run keeps what it got.
  config.optimizer.weight_decay = 0.0
  second = trainer.train_and_evaluate(
    config, str(tmp_path / 'b'), testing, initial_params=params
  )
  for a, b in zip(
    jax.tree.leaves(params), jax.tree.leaves(second.state.params), strict=True
  ):
    np.testing.assert_array_equal(np.asarray(b), a)
  fresh = trainer.train_and_evaluate(config, str(tmp_path / 'c'), testing)
  assert any(
    not np.array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(
      jax.tree.leaves(params), jax.tree.leaves(fresh.state.params), strict=True
    )
  ), 'a fresh run should not start from the given parameters'


def test_initial_parameters_of_another_model_are_refused(tmp_path):
  config = toy_config.get_config('steps=2')
  first = trainer.train_and_evaluate(config, str(tmp_path / 'a'), testing)
  params = jax.device_get(first.state.params)
  leaf_path = jax.tree_util.tree_flatten_with_path(params)[0][0][0]
  params = jax.tree_util.tree_map_with_path(
    lambda p, v: np.zeros((3, 3), np.float32) if p == leaf_path else v, params
  )
  with pytest.raises(ValueError, match='do not fit') as e:
    trainer.train_and_evaluate(
      config, str(tmp_path / 'b'), testing, initial_params=params
    )
  assert '(3, 3)' in str(e.value), str(e.value)


def test_init_from_an_unknown_source_is_one_error_line(tmp_path):
  result = cli.run(
    'train.py',
    '--config=tests/training/toy_config.py',
    '--input_pipeline=s4jax.training.testing',
    f'--workdir={tmp_path}/run',
    '--init_from=no_such_model',
  )
  cli.assert_fails_with(result, 'neither a pretrained model', 'spiking_s4')
