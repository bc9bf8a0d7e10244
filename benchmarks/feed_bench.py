r"""How fast the input pipeline makes training examples, per host core.

  python benchmarks/feed_bench.py [--seconds=3,4,30] [--steps=40]
      [--data=synthetic|offline] [--workers=0,1,2]

For each crop length it measures, over `--steps` batches of 8:

* the CPU time per example of the batch function alone (one core, no
  prefetching): what one host core spends to make one example;
* examples per second from `create_train_iterator` with `config.data.workers`
  = each of `--workers` (0: `config.data.threads` threads in this process).

`launch/compile.py` reports the examples per second a recipe's chips would
consume; that rate times the CPU time per example is the number of host
cores that must make examples for them. `--data=offline` needs the offline
corpus (`python launch/build_corpus.py --install`).
"""

from __future__ import annotations

if not __package__:  # Run as a file: see benchmarks/_checkout.py.
  import _checkout  # noqa: F401

import argparse
import itertools
import time

from configs import demo
from data_pipelines import input_pipeline

BATCH = 8


def _config(data: str, seconds: float, workers: int):
  config = demo.get_config()
  config.data.name = data
  config.data.segment_seconds = seconds
  config.data.workers = workers
  config.train.batch_size = BATCH
  return config


def cpu_per_example(data: str, seconds: float, steps: int) -> float:
  """CPU seconds per example of the batch function, in this process."""
  config = _config(data, seconds, 0)
  source = input_pipeline.make_source(config, 'train')
  batch_fn, _ = input_pipeline._train_batch_fn(config, source, 0, 1)  # pylint: disable=protected-access
  batch_fn(0)
  start = time.process_time()
  for step in range(1, steps + 1):
    batch_fn(step)
  return (time.process_time() - start) / (steps * BATCH)


def examples_per_second(
  data: str, seconds: float, workers: int, steps: int
) -> float:
  """Examples per second the train iterator yields (after 4 warm-up)."""
  config = _config(data, seconds, workers)
  it = input_pipeline.create_train_iterator(
    config, process_index=0, process_count=1
  )
  _ = list(itertools.islice(it, 4))
  start = time.perf_counter()
  _ = list(itertools.islice(it, steps))
  rate = steps * BATCH / (time.perf_counter() - start)
  it.close()
  return rate


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default='synthetic')
  parser.add_argument('--seconds', default='3,4,30')
  parser.add_argument('--workers', default='0,1,2')
  parser.add_argument('--steps', type=int, default=40)
  args = parser.parse_args()
  print('| crop | CPU per example (1 core) | ' + ' | '.join(
    f'examples/s, workers={w}' for w in args.workers.split(',')
  ) + ' |')  # fmt: skip
  print('|---|---|' + '---|' * len(args.workers.split(',')))
  for seconds in (float(x) for x in args.seconds.split(',')):
    cpu = cpu_per_example(args.data, seconds, args.steps)
    rates = [
      examples_per_second(args.data, seconds, int(w), args.steps)
      for w in args.workers.split(',')
    ]
    cells = ' | '.join(f'{r:.0f}' for r in rates)
    print(f'| {seconds:g} s | {cpu * 1e3:.2f} ms | {cells} |', flush=True)


if __name__ == '__main__':
  main()
