"""Program: abstract inputs of a recipe's steps, and no float64 under x64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import s4m_tiny, spiking_s4_ndns
from s4jax.training import program, sharding, tasks
from tests.training import toy_config


@pytest.fixture(scope='module')
def mesh():
  return sharding.create_mesh()


def test_abstract_batches_have_the_pipeline_layout(mesh):
  enh = toy_config.get_config()
  train = program.abstract_batch(enh, mesh)
  assert {k: v.shape for k, v in train.items()} == {
    'noisy': (4, 512),
    'clean': (4, 512),
  }
  sep = toy_config.get_config('task=separation')
  batch = program.abstract_batch(sep, mesh, train=False, batch_size=2)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
    'mixture': ((2, 512), jnp.float32),
    'sources': ((2, 2, 512), jnp.float32),
    'mask': ((2,), jnp.bool_),
    'length': ((2,), jnp.int32),
  }
  assert all(
    v.sharding == sharding.batch_sharding(mesh) for v in batch.values()
  )


def test_whole_clip_training_has_no_compiled_length(mesh):
  config = toy_config.get_config()
  config.data.segment_seconds = 0.0
  with pytest.raises(ValueError, match='segment_seconds'):
    program.abstract_batch(config, mesh)


def test_initial_state_matches_its_abstract_shapes(mesh):
  prog = program.Program.build(toy_config.get_config(), mesh)
  abstract = prog.abstract_state()
  state = prog.init_state()
  got = jax.tree.map(lambda x: (x.shape, x.dtype, x.sharding), state)
  want = jax.tree.map(lambda x: (x.shape, x.dtype, x.sharding), abstract)
  assert got == want
  abstract_batch = program.abstract_batch(prog.config, mesh)
  batch = {k: np.zeros(v.shape, v.dtype) for k, v in abstract_batch.items()}
  step = prog.train_step(abstract, abstract_batch)
  new, metrics, skips = step(state, batch)
  assert int(new.step) == 1 and int(skips) == 0
  assert np.isfinite(float(metrics.compute()['loss']))


@pytest.fixture
def x64():
  previous = jax.config.values['jax_enable_x64']
  jax.config.update('jax_enable_x64', True)
  yield
  jax.config.update('jax_enable_x64', previous)


@pytest.mark.parametrize(
  'recipe,arg',
  [
    (spiking_s4_ndns, 'smoke=True'),
    (s4m_tiny, 'smoke=True,ssm=s4'),
  ],
)
def test_parameters_stay_float32_and_no_complex128_under_x64(recipe, arg, x64):
  # complex128 does not compile for TPUs (libtpu aborts the process), and
  # x64 makes float64 the default dtype of unannotated parameters.
  del x64
  config = recipe.get_config(arg)
  config.data.segment_seconds = 0.05
  task = tasks.create_task(config)
  params = jax.eval_shape(lambda: task.init(jax.random.key(0), 800))
  dtypes = {
    jax.tree_util.keystr(k): str(v.dtype)
    for k, v in jax.tree_util.tree_leaves_with_path(params)
    if v.dtype != jnp.float32
  }
  assert not dtypes, f'float32 parameters expected, got {dtypes}'
  x = jnp.zeros((1, 800), jnp.float32)
  text = (
    jax.jit(lambda p, x: task.apply(p, x, train=False))
    .lower(params, x)
    .as_text()
  )
  assert 'complex<f64>' not in text, 'complex128 in the forward pass'
