"""launch/summary.py: parameter and MAC counts against closed forms."""

import json

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
  assert 'parameters' in result.stdout and 'total' in result.stdout
  assert 'Energy (45 nm, per second of audio)' in result.stdout
  assert 'Firing rates: encoder' in result.stdout


def test_summary_errors():
  cli.assert_fails_with(
    cli.run(
      'summary.py', '--config=tests/training/toy_config.py', '--seconds=-1'
    ),
    '--seconds must be >= 0',
  )
  cli.assert_fails_with(cli.run('summary.py'), '--config')
