"""harness.compile_report: what a report says when a step does not fit."""

from harness import accelerators, compile_report


def test_advice_scales_the_batch_to_the_memory_budget():
  # 16 GiB chip, 90 % budget: fixed 1 GiB, temporaries 20 GiB at 8 per chip
  # -> (0.9 * 16 - 1) / 20 * 8 = 5.36 -> 5 per chip.
  gib = 2**30
  step = compile_report.StepReport(
    'train',
    compiled=True,
    global_batch=32,
    memory={
      'arguments': gib,
      'temporaries': 20 * gib,
      'outputs': 0,
      'aliased': 0,
      'code': 0,
      'total': 21 * gib,
    },
  )
  report = compile_report.Report(
    recipe='r',
    topology='v5e:2x2',
    chip=accelerators.CHIPS['v5e'],
    chips=4,
    hosts=1,
    slices=1,
    compute_dtype='float32',
    num_steps=10,
    steps={'train': step},
  )
  assert not report.fits()
  advice = report.advice()
  assert '--per_chip_batch=5 ' in advice and 'now 8' in advice, advice
  assert 'bfloat16' in advice, advice
