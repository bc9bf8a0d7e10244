"""harness.compile_report: what a report says when a step does not fit."""

import pytest

from harness import accelerators, compile_report, errors

GIB = 2**30


def _report(name, *, arguments, temporaries, global_batch=32):
  """A v5e:2x2 report (16 GiB chips, 90 % budget) with one compiled step."""
  step = compile_report.StepReport(
    name,
    compiled=True,
    global_batch=global_batch,
    memory={
      'arguments': arguments,
      'temporaries': temporaries,
      'outputs': 0,
      'aliased': 0,
      'code': 0,
      'total': arguments + temporaries,
    },
  )
  return compile_report.Report(
    recipe='r',
    topology='v5e:2x2',
    chip=accelerators.CHIPS['v5e'],
    chips=4,
    hosts=1,
    slices=1,
    compute_dtype='float32',
    num_steps=10,
    steps={name: step},
  )


def test_advice_scales_the_batch_to_the_memory_budget():
  # Fixed 1 GiB, temporaries 20 GiB at 8 per chip:
  # (0.9 * 16 - 1) / 20 * 8 = 5.36 -> 5 per chip.
  report = _report('train', arguments=GIB, temporaries=20 * GIB)
  assert not report.fits()
  advice = report.advice()
  assert '--per_chip_batch=5 ' in advice and 'now 8' in advice, advice
  assert 'bfloat16' in advice, advice


def test_eval_advice_names_the_eval_batch():
  # Same arithmetic on the eval step: 5 per chip x 4 chips = 20.
  report = _report('eval', arguments=GIB, temporaries=20 * GIB)
  advice = report.advice()
  assert '--config.eval.batch_size=20 ' in advice, advice
  assert '--per_chip_batch' not in advice, advice


def test_state_too_large_for_the_chip_is_said_plainly():
  # 15 GiB of state is over 0.9 * 16 = 14.4 GiB: no batch or chip count helps.
  report = _report('train', arguments=15 * GIB, temporaries=2 * GIB)
  advice = report.advice()
  assert 'state alone' in advice and '15.0 GiB' in advice, advice
  assert '--per_chip_batch' not in advice and 'x the chips' not in advice


@pytest.mark.parametrize(
  ('text', 'want'),
  [
    ('RESOURCE_EXHAUSTED: memory required for HLO temporaries (35.45G) '
     'exceeds the available 15.75G', int(35.45 * GIB)),
    ('memory required for program arguments (812.5M) exceeds', 812 * 2**20
     + 2**19),
    ('INVALID_ARGUMENT: the shapes do not match', 0),
  ],
)  # fmt: skip
def test_libtpu_out_of_memory_texts_are_read(text, want):
  assert errors.required_bytes(text) == want, (
    text,
    errors.required_bytes(text),
  )
  assert errors.is_out_of_memory(text) == bool(want), text


def test_unknown_step_names_are_refused():
  with pytest.raises(ValueError, match=r"unknown: \['evl'\]"):
    compile_report.compile_recipe(None, [], steps=('train', 'evl'))
