"""The wheel in a fresh virtual environment, as a library user installs it.

The venv is new (no `--system-site-packages`: it sees none of the packages
of the development environment) and gets the wheel with its library
dependencies only, no extras, at the versions of `constraints.txt`. The
program below runs in a working folder with packages of its own named
`configs`, `launch`, `pretrained`, ... that shadow any of ours (importing
one fails). There a Flax model with `S4Layer`s trains a few steps under
`jit` with optax, and the shipped Spiking-S4 enhances a generated signal.

Slow-ish: the venv and the install of jax, flax and optax take most of the
time (seconds from pip's cache, a minute or more over a slow network).
Offline, see `dist_tools` (`S4JAX_WHEELHOUSE`).
"""

import json
import os
import subprocess
import sys

import numpy as np

from tests.packaging import dist_tools

DECOYS = (
  'configs',
  'data_pipelines',
  'deploy',
  'harness',
  'launch',
  'pretrained',
)

_PROGRAM = """
import importlib.util, json, sys
import numpy as np
import s4jax

info = {'file': s4jax.__file__, 'jax_on_import': 'jax' in sys.modules,
        'tensorflow': importlib.util.find_spec('tensorflow') is not None}

import flax.linen as nn
import jax
import optax
from s4jax.layers import S4Layer


class Classifier(nn.Module):
  @nn.compact
  def __call__(self, x):  # (B, L) -> (B, 2)
    h = nn.Dense(16)(x[..., None])
    h = S4Layer(d_state=8, mode='s4d')(h)
    h = S4Layer(d_state=8, mode='s4', postact='linear')(h)
    return nn.Dense(2)(h.mean(axis=1))


rng = np.random.default_rng(0)
labels = rng.integers(0, 2, 32)
t = np.arange(128) / 128
phase = rng.uniform(0, 2 * np.pi, (32, 1))
x = np.sin(2 * np.pi * np.where(labels, 9, 2)[:, None] * t + phase)
x = x.astype(np.float32)
model = Classifier()
params = model.init(jax.random.key(0), x)['params']
tx = optax.adam(3e-2)


@jax.jit
def step(params, opt_state):
  def loss_fn(p):
    logits = model.apply({'params': p}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


opt_state, losses = tx.init(params), []
for _ in range(20):
  params, opt_state, loss = step(params, opt_state)
  losses.append(float(loss))
info['losses'] = losses

enhancer = s4jax.from_pretrained('spiking_s4')
np.save('enhanced.npy', enhancer(np.load('noisy.npy')))
info['available'] = s4jax.pretrained.available()
info['research'] = sorted(
  m for m in sys.modules if m.split('.')[0] in %(decoys)r)
print(json.dumps(info))
"""


def _si_snr(estimate, reference):
  estimate, reference = estimate - estimate.mean(), reference - reference.mean()
  target = np.dot(estimate, reference) / np.dot(reference, reference)
  target = target * reference
  return 10 * np.log10(np.sum(target**2) / np.sum((estimate - target) ** 2))


def _signal():
  """`(clean, noisy)`: 1 s of an amplitude-modulated tone in white noise."""
  t = np.arange(16000) / 16000
  clean = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(6 * np.pi * t))
  noise = 0.1 * np.random.default_rng(0).standard_normal(t.size)
  return clean.astype(np.float32), (clean + noise).astype(np.float32)


def test_wheel_alone_trains_an_s4_model_and_runs_the_pretrained_one(
  dists, tmp_path
):
  venv = tmp_path / 'venv'
  dist_tools.run([sys.executable, '-m', 'venv', str(venv)], timeout=300)
  python = str(venv / 'bin' / 'python')
  dist_tools.run(
    [
      python,
      '-m',
      'pip',
      'install',
      '--quiet',
      '--only-binary=:all:',
      '-c',
      str(dist_tools.ROOT / 'constraints.txt'),
      str(dists.wheel),
    ],
    timeout=1200,
    env=dist_tools.pip_env(),
  )
  work = tmp_path / 'work'
  for name in DECOYS:
    (work / name).mkdir(parents=True)
    (work / name / '__init__.py').write_text(
      f'raise ImportError("the user\'s own {name} package was imported")\n'
    )
  clean, noisy = _signal()
  np.save(work / 'noisy.npy', noisy)
  (work / 'check.py').write_text(_PROGRAM % {'decoys': DECOYS})
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('PYTHONPATH', None)
  result = subprocess.run(
    [python, 'check.py'],
    cwd=work,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert result.returncode == 0, result.stderr[-5000:]
  info = json.loads(result.stdout.strip().splitlines()[-1])

  assert info['file'].startswith(str(venv)), info['file']
  assert not info['jax_on_import'], '`import s4jax` imported jax'
  assert not info['tensorflow'], 'the library install brought TensorFlow'
  assert info['research'] == [], info['research']
  losses = info['losses']
  # It learns to tell the two frequencies apart (measured: 0.72 -> 0.00).
  assert all(np.isfinite(losses)) and losses[-1] < 0.25 * losses[0], losses
  assert 'spiking_s4' in info['available'], info['available']

  enhanced = np.load(work / 'enhanced.npy')
  assert enhanced.shape == noisy.shape and np.all(np.isfinite(enhanced))
  # The same model from the checkout, in this process.
  import s4jax  # pylint: disable=g-import-not-at-top

  want = s4jax.from_pretrained('spiking_s4')(noisy)
  np.testing.assert_allclose(
    enhanced, want, rtol=0, atol=1e-5 * np.abs(want).max()
  )
  gain = _si_snr(enhanced, clean) - _si_snr(noisy, clean)
  assert gain >= 6.0, f'SI-SNR gain {gain:.1f} dB (measured: +13 dB)'
