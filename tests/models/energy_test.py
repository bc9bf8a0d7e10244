"""MAC counts against the published 1.50 G, energy and N-DNS proxy by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s4jax.models import energy
from s4jax.models import spiking_s4 as ss4
from tests import fast_compiles


@pytest.fixture(scope='module', autouse=True)
def _fast_compiles():
  """Small models need no XLA optimisation (compiles dominate here)."""
  with fast_compiles.unoptimised():
    yield


RATES = {
  'encoder': 0.3,
  'layer0_ssm': 0.1,
  'layer0_out': 0.02,
  'layer1_ssm': 0.2,
  'layer1_out': 0.0,
  'layer2_ssm': 0.05,
  'layer2_out': 0.01,
  'layer3_ssm': 0.15,
  'layer3_out': 0.03,
}
FRAMES = 3751  # 30 s at 16 kHz, hop 128, centred


def test_macs_per_30s_clip_match_the_paper():
  got = energy.count_macs(ss4.SpikingS4())
  assert got['frames'] == FRAMES
  rel = abs(got['per_clip'] - 1.496e9) / 1.496e9
  assert rel < 0.02, f'{got["per_clip"]:.4e} MACs, paper 1.50 G (1.496e9)'
  assert got['per_second'] == pytest.approx(got['per_clip'] / 30)
  # Independent reference: fvcore's per-layer breakdown (research notes).
  layers = got['per_layer']
  assert layers['encoder'] + layers['decoder'] == 2 * 257 * 256 * FRAMES
  assert (
    sum(v for k, v in layers.items() if 'norm' in k) == 5 * 256 * 4 * FRAMES
  )


def test_glu_and_kernel_einsum_counts():
  glu = energy.count_macs(ss4.SpikingS4Glu())['per_clip']
  assert abs(glu - 2.479e9) / 2.479e9 < 0.005, f'GLU: {glu:.4e}, fvcore 2.479e9'
  with_kernel = energy.count_macs(ss4.SpikingS4(), include_kernel=True)
  rel = abs(with_kernel['per_clip'] - 1.619e9) / 1.619e9
  assert rel < 0.005, f'{with_kernel["per_clip"]:.4e}, fvcore 1.619e9'


@pytest.mark.parametrize('emission', ['linear', 'glu'])
def test_traced_count_equals_analytic_count(emission):
  model = ss4.from_config({'block': {'emission': emission}})
  shapes = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16000)))
  )
  variables = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  traced = energy.trace_macs(model, variables, jnp.zeros((1, 480_000)))
  analytic = energy.count_macs(model)['per_clip']
  assert traced['total'] == analytic, f'traced {traced}, analytic {analytic}'


def test_energy_45nm_by_hand():
  model = ss4.SpikingS4()
  got = energy.energy_45nm(model, RATES)
  dense = (2 * 257 * 256 + 4 * 5 * 256) * FRAMES
  ac = sum(RATES[f'layer{i}_ssm'] for i in range(4)) * 256 * 256 * FRAMES
  want = 4.6e-12 * dense + 0.9e-12 * ac
  assert got['mac_ops'] == dense
  assert got['ac_ops'] == pytest.approx(ac)
  assert got['energy_j'] == pytest.approx(want, rel=1e-12)
  baseline = energy.energy_45nm(ss4.S4Baseline(), RATES)
  assert baseline['energy_j'] == pytest.approx(4.6e-12 * 1_496_078_848)
  assert baseline['ac_ops'] == 0
  assert got['energy_j'] < baseline['energy_j']


def test_ndns_power_proxy_by_hand():
  got = energy.ndns_power_proxy(ss4.SpikingS4(), RATES)
  synops = (
    2 * 257 * 256 + sum(RATES[f'layer{i}_ssm'] for i in range(4)) * 256 * 256
  )
  neurons = 256 * 9
  assert got['synops_per_step'] == pytest.approx(synops)
  assert got['neuronops_per_step'] == neurons
  assert got['ops_per_second'] == pytest.approx((synops + 10 * neurons) / 0.008)
  with_ssm = energy.ndns_power_proxy(ss4.SpikingS4(), RATES, include_ssm=True)
  extra = 256 * (65 * (RATES['encoder'] + 3) + 4 * 6 * 32)
  assert with_ssm['synops_per_step'] == pytest.approx(synops + extra)
  assert with_ssm['neuronops_per_step'] == neurons + 4 * 256 * 32


def test_report_uses_the_model_firing_rates():
  model = ss4.from_config(dict(d_model=16, n_layers=1, block=dict(d_state=8)))
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4000)), jnp.float32)
  variables = model.init(jax.random.PRNGKey(0), x)
  rates = model.apply(variables, x)['firing_rates']
  rep = energy.report(model, rates, seconds=4000 / 16000)
  assert rep['firing_rates'] == energy.as_float_rates(rates)
  with pytest.raises(KeyError, match='layer0_ssm'):
    energy.energy_45nm(model, {'encoder': 0.1})
