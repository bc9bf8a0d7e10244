"""launch/summary.py: parameter and MAC counts against closed forms."""

import json

import pytest

from tests.launch import cli


def test_json_counts_match_the_toy_model_closed_form():
  # Toy model: frames of 32 samples at 8 kHz, Dense 32->16 and 16->32 per
  # frame (+ a 16-vector log_dt): params 32*16+16 + 16*32+32 + 16 = 1088;
  # MACs per second 250 frames * (32*16 + 16*32) = 256,000.
  result = cli.run(
    'summary.py',
    '--config=tests/training/toy_config.py',
    '--seconds=1',
    '--json',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out['params'] == 1088, out['params']
  assert out['sample_rate'] == 8000
  assert out['macs_per_second'] == 256_000, out['macs_per_second']
  assert out['macs_per_module'] == {'encoder': 128_000, 'decoder': 128_000}
  assert 'energy' not in out, 'the toy model is not spiking'


def test_spiking_model_reports_energy_and_tables():
  result = cli.run(
    'summary.py',
    '--config=configs/demo.py:smoke=True',
    '--energy_seconds=0.5',
    '--seconds=2',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = ' '.join(result.stdout.split())  # Lines are wrapped at 79 columns.
  assert 'parameters' in out and 'total' in out, out
  assert 'MACs per 2 s clip' in out and 'per second of audio:' in out, out
  assert 'Energy (45 nm) and power per second of audio' in out, out
  assert 'MACs x 4.6 pJ (layers fed real values' in out, out
  assert 'ACs x 0.9 pJ (layers fed spikes' in out, out
  assert 'Firing rates: encoder' in out, out
  # No --workdir: the weight-dependent figures are flagged as untrained.
  assert 'UNTRAINED parameters (no --workdir)' in out, out
  assert 'describe an UNTRAINED model' in out, out


def test_spiking_json_energy_adds_up_to_the_mac_count():
  result = cli.run(
    'summary.py',
    '--config=configs/demo.py:smoke=True',
    '--energy_seconds=0.5',
    '--seconds=2',
    '--json',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out['weights'] == 'initial' and out['step'] is None, out
  e = out['energy']
  # Layers fed real values cost MACs; the rest is spike-driven (ACs = their
  # MACs x firing rate); both per second of audio, like macs_per_second.
  assert e['mac_ops'] + e['spike_driven_macs'] == pytest.approx(
    out['macs_per_second'], rel=1e-9
  ), (e, out['macs_per_second'])
  assert 0 <= e['ac_ops'] <= e['spike_driven_macs'], e
  for key in ('energy_per_second_j', 'ops_per_second', 'firing_rates'):
    assert key in e, key


def test_summary_errors():
  cli.assert_fails_with(
    cli.run(
      'summary.py', '--config=tests/training/toy_config.py', '--seconds=-1'
    ),
    '--seconds must be >= 0',
  )
  cli.assert_fails_with(cli.run('summary.py'), '--config')
