"""launch/train.py and launch/evaluate.py: a run, and clear errors."""

import json
import os

import pytest

from tests.launch import cli

TOY = [
  '--config=tests/training/toy_config.py:steps=4',
  '--input_pipeline=s4jax.training.testing',
]


def test_train_then_evaluate(tmp_path):
  workdir = str(tmp_path / 'run')
  result = cli.run(
    'train.py',
    *TOY,
    f'--workdir={workdir}',
    '--config.optimizer.learning_rate=1e-3',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)
  assert saved['optimizer']['learning_rate'] == 1e-3, 'override not applied'
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '4'))

  result = cli.run(
    'evaluate.py',
    f'--workdir={workdir}',
    '--step=4',
    '--input_pipeline=s4jax.training.testing',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert '| si_snri |' in result.stdout, result.stdout
  with open(os.path.join(workdir, 'eval', 'validation_step_4.json')) as f:
    assert json.load(f)['num_examples'] == 6


@pytest.mark.parametrize(
  'override, message',
  [
    (
      '--config.train.nonexistent=1',
      "unknown config key 'nonexistent' in --config.train.nonexistent=1",
    ),
    ('--config.trian.batch_size=2', 'Did you mean "train"'),
    ('--config.train.batch_size=abc', 'invalid literal for int()'),
    ('--config.optimizer.learning_rate=fast', 'could not convert'),
  ],
)
def test_bad_overrides_fail_before_any_work(tmp_path, override, message):
  workdir = tmp_path / 'run'
  result = cli.run('train.py', *TOY, f'--workdir={workdir}', override)
  cli.assert_fails_with(result, message)
  assert not workdir.exists(), 'work started despite a bad override'


def test_missing_flags_and_bad_pipeline(tmp_path):
  cli.assert_fails_with(cli.run('train.py', *TOY), '--workdir')
  cli.assert_fails_with(
    cli.run(
      'train.py',
      '--config=tests/training/toy_config.py',
      f'--workdir={tmp_path}',
      '--input_pipeline=no.such.module',
    ),
    '--input_pipeline=no.such.module: cannot import it',
  )
  cli.assert_fails_with(
    cli.run(
      'train.py',
      '--config=tests/training/toy_config.py:oops=1',
      f'--workdir={tmp_path}',
    ),
    "Unknown config argument 'oops'",
  )
  cli.assert_fails_with(
    cli.run(
      'train.py', '--config=configs/no_such_recipe.py', f'--workdir={tmp_path}'
    ),
    '--config could not be loaded',
    'no_such_recipe.py',
  )


def test_evaluate_errors(tmp_path):
  cli.assert_fails_with(
    cli.run('evaluate.py', f'--workdir={tmp_path / "nothing"}'),
    'does not exist',
  )
  cli.assert_fails_with(
    cli.run('evaluate.py', f'--workdir={tmp_path}'),
    'config.json does not exist',
  )
