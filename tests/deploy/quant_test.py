"""SEOFP weights stored as int8 codes in exported graphs, decoded exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deploy import artifacts, quant, runners
from s4jax.quant import packing, rules


def test_decode_inverts_encode_for_both_granularities():
  rng = np.random.default_rng(0)
  params = {
    'dense': {'kernel': rng.standard_normal((6, 5)).astype(np.float32)},
    'bias': rng.standard_normal(5).astype(np.float32),
  }
  for granularity in ('tensor', 'channel'):
    r = rules.from_config(
      {'enabled': True, 'exponent_bits': 3, 'granularity': granularity}
    )
    enc = quant.encode_params(params, r)
    q, lo, _ = enc['dense/kernel']
    assert q.dtype == np.int8 and q.shape == (6, 5)
    got = jax.jit(lambda enc=enc: quant.decode_params(enc))()
    want = r.quant.quantize(jnp.asarray(params['dense']['kernel']))
    np.testing.assert_array_equal(got['dense']['kernel'], want)
    np.testing.assert_array_equal(got['bias'], params['bias'])  # Not chosen.


def test_shipped_seofp_copy_is_what_the_graph_decodes():
  """Independent reference: the packed `params.seofp` of the pretrained model."""
  from harness import export_pretrained
  from s4jax.pretrained import hub

  enh = hub.from_pretrained('spiking_s4')
  enc = quant.encode_params(
    enh.params, export_pretrained.seofp_rules(enh.config, 5)
  )
  got = jax.jit(lambda: quant.decode_params(enc))()
  with open(hub.model_dir('spiking_s4') + '/params.seofp', 'rb') as f:
    want = packing.unpack(packing.from_bytes(f.read()))
  for (path, a), b in zip(
    jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
  ):
    np.testing.assert_array_equal(np.asarray(a), b, err_msg=str(path))
  stored, full = quant.stored_bytes(enc)
  assert stored < 0.5 * full, (stored, full)


@pytest.fixture(scope='module')
def seofp_export(tmp_path_factory):
  from s4jax.pretrained import hub

  enh = hub.from_pretrained('spiking_s4')
  form = artifacts.stream_form(enh, 'test', seofp_bits=5)
  out = str(tmp_path_factory.mktemp('q') / 'ss4q')
  meta = artifacts.write(
    form, out, ('onnx',), check=artifacts.stream_check(form, 2.0)
  )
  with open(f'{out}/{meta["files"]["onnx"]["file"]}', 'rb') as f:
    return form, meta, f.read()


def test_seofp_onnx_is_smaller_and_runs_the_quantised_model(seofp_export):
  from s4jax.models import portable
  from s4jax.pretrained import hub

  form, meta, data = seofp_export
  q = meta['quantisation']
  assert q['exponent_bits'] == 5 and form.name.endswith('_seofp5')
  saved = q['parameter_bytes_float32'] - q['parameter_bytes']
  float_form = artifacts.stream_form(hub.from_pretrained('spiking_s4'), 't')
  float_size = len(artifacts.build(float_form, 'onnx', True))
  assert len(data) <= float_size - 0.9 * saved, (len(data), float_size, saved)
  # Reference: the float stream run with the unpacked params.seofp.
  with open(hub.model_dir('spiking_s4') + '/params.seofp', 'rb') as f:
    params = packing.unpack(packing.from_bytes(f.read()))
  enh = hub.from_pretrained('spiking_s4')
  stream = portable.SpikingS4Stream({'params': params}, enh.config.model)
  ref_form = artifacts.Form(
    'ref',
    lambda hop, *s: (lambda o: (o[0], *(o[1][n] for n in stream.state_names)))(
      stream.step(hop, dict(zip(stream.state_names, s, strict=True)))
    ),
    None,
    form.inputs,
    form.outputs,
    form.metadata,
  )
  signal = artifacts.test_signal(3.0, 16000, seed=5)
  want = artifacts.stream_reference(ref_form, signal)
  r = runners.OnnxRunner(data)
  got = artifacts.run_stream(r.run, form, signal)
  err = np.abs(got - want).max()
  assert err <= 1e-4 * np.abs(want).max(), f'SEOFP ONNX off by {err}'
