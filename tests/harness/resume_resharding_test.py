"""A run preempted on 4 devices resumes on 2 and on 8 (a new slice size).

Each part runs in its own interpreter with simulated CPU devices
(`tests/training/simulated_devices.py`): one process on 4 devices trains an
uninterrupted run and a run stopped by SIGTERM after step `STOP`; two
processes, on 2 and on 8 devices, resume copies of the stopped run to
`STEPS`. The resumed runs must restore onto their own mesh, feed the same
batches from step `STOP + 1` on, and repeat the losses, evaluations and final
parameters of the uninterrupted run.

Tolerance: the 4-device parts are bit-identical (same programs, same data).
After the resume, the gradient all-reduce (and the evaluation's reductions)
run over 2 or 8 partial sums instead of 4: another float32 summation order,
so losses, evaluations and parameters match to rounding only, a few ulps per
step that the optimiser carries on. Measured: losses within 1.6e-7
relative, evaluation means within 2.4e-7 absolute, parameters within 3e-8
absolute (1.5e-7 relative); the test allows rtol 1e-5 with atol 1e-6.
"""

import numpy as np
import pytest

from tests.training import simulated_devices

STEPS, STOP = 6, 3
# float32 rounding of another reduction order (see the module docstring).
RTOL, ATOL = 1e-5, 1e-6

SCRIPT = r"""
import hashlib, json, os, shutil, signal, sys
import jax
import numpy as np
jax.config.update('jax_disable_most_optimizations', True)
from harness import checkpoint, trainer
from s4jax.training import optim, program, sharding, tasks, testing
from tests.training import toy_config

mode, root = sys.argv[1], sys.argv[2]
steps, stop = int(sys.argv[3]), int(sys.argv[4])
devices = jax.device_count()
config = toy_config.get_config(f'steps={steps},batch=8')
config.optimizer.schedule = 'cosine'  # The rate depends on the step.
config.optimizer.warmup_steps = 2


class Pipeline:
  # The toy pipeline; records what each step was fed, SIGTERM at `stop`.

  def __init__(self, sigterm_at=None):
    self.sigterm_at = sigterm_at
    self.fed = {}

  def create_train_iterator(self, config, *, start_step=0, **kw):
    it = testing.create_train_iterator(config, start_step=start_step, **kw)
    for index, batch in enumerate(it, start_step):
      if index == self.sigterm_at:
        os.kill(os.getpid(), signal.SIGTERM)  # Stops after this step.
      digest = hashlib.sha256()
      for key in sorted(batch):
        digest.update(np.ascontiguousarray(batch[key]).tobytes())
      self.fed[index + 1] = digest.hexdigest()
      yield batch

  def create_eval_iterator(self, config, split='validation', **kw):
    return testing.create_eval_iterator(config, split, **kw)


def flat(params):
  leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def summary(result, pipeline):
  devices = {len(x.sharding.device_set) for x in jax.tree.leaves(result.state)}
  return {
    'devices': jax.device_count(),
    'state_devices': sorted(devices),
    'step': int(result.state.step),
    'preempted': result.preempted,
    'losses': {h['step']: h['loss'] for h in result.history},
    'evals': result.evals,
    'fed': pipeline.fed,
  }


out = {}
if mode == 'first':
  pipeline = Pipeline()
  straight = trainer.train_and_evaluate(
    config, os.path.join(root, 'straight'), pipeline
  )
  out['straight'] = summary(straight, pipeline)
  np.savez(os.path.join(root, 'straight.npz'), **flat(straight.state.params))
  pipeline = Pipeline(sigterm_at=stop - 1)
  part = trainer.train_and_evaluate(config, os.path.join(root, 'part'), pipeline)
  out['part'] = summary(part, pipeline)
  np.savez(os.path.join(root, 'part.npz'), **flat(part.state.params))
  for count in sys.argv[5:]:
    shutil.copytree(
      os.path.join(root, 'part'), os.path.join(root, f'resume_{count}')
    )
else:
  workdir = os.path.join(root, f'resume_{devices}')
  # The restore alone: onto this process's mesh, values as saved.
  mesh = sharding.create_mesh()
  ckpt = checkpoint.Checkpointer(
    checkpoint.checkpoint_dir(workdir), read_only=True
  )
  state = checkpoint.restore_or_init(program.Program.build(config, mesh), ckpt)
  ckpt.close()
  saved = dict(np.load(os.path.join(root, 'part.npz')))
  restored = flat(state.params)
  out['restored'] = {
    'step': int(state.step),
    'meshes': sorted({
      str(x.sharding.mesh.devices.shape) for x in jax.tree.leaves(state)
    }),
    'equal': sorted(restored) == sorted(saved) and all(
      np.array_equal(restored[k], saved[k]) for k in saved
    ),
  }
  del state
  pipeline = Pipeline()
  resumed = trainer.train_and_evaluate(config, workdir, pipeline)
  out['resumed'] = summary(resumed, pipeline)
  np.savez(
    os.path.join(root, f'resumed_{devices}.npz'), **flat(resumed.state.params)
  )
print('RESULT', json.dumps(out))
"""


def _launch(devices, *args):
  return simulated_devices.launch(SCRIPT, args, devices)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """The 4-device runs, then the 2- and 8-device resumes side by side."""
  root = tmp_path_factory.mktemp('resume')
  first = simulated_devices.result(_launch(4, 'first', root, STEPS, STOP, 2, 8))
  procs = {n: _launch(n, 'resume', root, STEPS, STOP) for n in (2, 8)}
  resumed = {n: simulated_devices.result(p) for n, p in procs.items()}
  params = {
    name: dict(np.load(root / f'{name}.npz'))
    for name in ('straight', 'part', 'resumed_2', 'resumed_8')
  }
  return first, resumed, params


def _steps(record):
  return {int(k): v for k, v in record.items()}


def test_stopped_run_is_the_uninterrupted_one_up_to_the_stop(runs):
  first, _, _ = runs
  straight, part = first['straight'], first['part']
  assert straight['devices'] == 4 and straight['state_devices'] == [4]
  assert part['preempted'] and part['step'] == STOP, (
    f'expected a preempted run stopped at step {STOP}, got '
    f'preempted={part["preempted"]} at step {part["step"]}'
  )
  want, got = _steps(straight['losses']), _steps(part['losses'])
  assert sorted(got) == list(range(1, STOP + 1)), sorted(got)
  for step, loss in got.items():
    assert loss == want[step], (
      f'step {step}: {loss} vs uninterrupted {want[step]}'
    )


@pytest.mark.parametrize('devices', [2, 8])
def test_restore_lands_on_the_new_mesh_with_the_saved_values(runs, devices):
  restored = runs[1][devices]['restored']
  assert restored['step'] == STOP, f'restored step {restored["step"]}'
  assert restored['meshes'] == [str((devices, 1))], (
    f'expected every leaf on the ({devices}, 1) mesh of this process, got '
    f'{restored["meshes"]}'
  )
  assert restored['equal'], 'restored parameters differ from the saved ones'


@pytest.mark.parametrize('devices', [2, 8])
def test_resumed_on_another_device_count_feeds_the_same_batches(runs, devices):
  first, resumed, _ = runs
  want = _steps(first['straight']['fed'])
  got = _steps(resumed[devices]['resumed']['fed'])
  assert sorted(got) == list(range(STOP + 1, STEPS + 1)), (
    f'expected the resumed run to be fed steps {STOP + 1}..{STEPS}, got '
    f'{sorted(got)}'
  )
  for step, digest in got.items():
    assert digest == want[step], (
      f'{devices} devices, step {step}: fed another batch than the '
      'uninterrupted run'
    )


@pytest.mark.parametrize('devices', [2, 8])
def test_resumed_on_another_device_count_repeats_the_losses(runs, devices):
  first, resumed, params = runs
  run = resumed[devices]['resumed']
  assert run['devices'] == devices and run['state_devices'] == [devices], (
    f'expected the state on all {devices} devices, got {run["state_devices"]}'
  )
  assert run['step'] == STEPS and not run['preempted'], run['step']
  want, got = _steps(first['straight']['losses']), _steps(run['losses'])
  assert sorted(got) == list(range(STOP + 1, STEPS + 1)), sorted(got)
  for step, loss in got.items():
    assert loss == pytest.approx(want[step], rel=RTOL, abs=ATOL), (
      f'{devices} devices, step {step}: loss {loss}, uninterrupted {want[step]}'
    )
  evals = {e['step']: e for e in first['straight']['evals']}
  assert [e['step'] for e in run['evals']] == [4, 6], run['evals']
  for e in run['evals']:
    for name, value in e.items():
      assert value == pytest.approx(
        evals[e['step']][name], rel=RTOL, abs=ATOL
      ), (
        f'{devices} devices, eval at step {e["step"]}: {name} {value}, '
        f'uninterrupted {evals[e["step"]][name]}'
      )
  straight, mine = params['straight'], params[f'resumed_{devices}']
  assert sorted(mine) == sorted(straight)
  for name, value in straight.items():
    np.testing.assert_allclose(
      mine[name],
      value,
      rtol=RTOL,
      atol=ATOL,
      err_msg=f'{devices} devices: final parameter {name} vs uninterrupted',
    )
