"""Benchmark: ingesting prepared TFDS mnist against the IDX files, 70,000 images.

In one run, on the otherwise quiet machine:

1. prepares TFDS `mnist` offline from the shipped data/mnist into a fresh
   temporary TFDS data directory (`tfds_source.prepare`, the local runner's
   path) and records how long that first preparation takes;
2. runs each ExampleGen executor (TfdsExampleGen on the prepared records,
   IdxExampleGen on data/mnist) on every image, `--rounds` times,
   interleaved, with the local runner's Beam arguments (DirectRunner,
   multi-processing, one worker per core), and checks that each wrote
   60,000 train and 10,000 eval examples.

Target (issue 14): the TFDS ingestion takes at most 1.5x the IDX one.

  .venv/bin/python -m benchmarks.tfds_ingest [--rounds 2]

Results go to benchmarks/results/tfds_ingest_<date>.json; BENCHMARKS.md and
the README quote them; `python -m benchmarks.render` renders one as markdown
(`markdown_lines`).
"""

import argparse
import datetime
import logging
import os
import pathlib
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

import local_runner
from benchmarks import recording
from components.idx_example_gen import component as idx_component
from components.idx_example_gen import executor as idx_executor
from components.tfds_example_gen import component as tfds_component
from components.tfds_example_gen import executor as tfds_executor
from components.tfds_example_gen import tfds_source
from conftest import MNIST_DIR
from conftest import executor_properties

logger = logging.getLogger(__name__)

TARGET_RATIO = 1.5
EXPECTED_COUNTS = {'train': 60000, 'eval': 10000}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=2,
                      help='ingestions of each source, interleaved')
  parser.add_argument('--results-dir', default='benchmarks/results')
  return parser.parse_args(argv)


def _count(examples: standard_artifacts.Examples, split: str) -> int:
  files = tf.io.gfile.glob(os.path.join(
      artifact_utils.get_split_uri([examples], split), '*.gz'))
  return sum(1 for _ in tf.data.TFRecordDataset(files,
                                                compression_type='GZIP'))


def _ingest(executor_class, properties: Dict[str, Any],
            output_dir: pathlib.Path) -> float:
  """Runs one ExampleGen executor as the local runner would; its seconds."""
  examples = standard_artifacts.Examples()
  examples.uri = str(output_dir)
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=local_runner.default_beam_args(),
      tmp_dir=str(output_dir) + '-tmp')
  start = time.perf_counter()
  executor_class(context).Do(
      {}, {standard_component_specs.EXAMPLES_KEY: [examples]}, properties)
  seconds = time.perf_counter() - start
  counts = {split: _count(examples, split) for split in EXPECTED_COUNTS}
  if counts != EXPECTED_COUNTS:
    raise RuntimeError(f'{output_dir}: wrote {counts}, expected '
                       f'{EXPECTED_COUNTS}')
  return seconds


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run as markdown (`python -m benchmarks.render <json>`)."""
  met = 'met' if result['target_met'] else 'NOT met'
  lines = [
      f'### `{result["run_name"]}`: ingesting {result["images"]:,} images, '
      'TFDS against IDX', '',
      *recording.header_lines(result),
      f'- Beam: `{" ".join(result["beam_args"])}`; rounds interleaved; every '
      'run checked to write 60,000 train and 10,000 eval examples.',
      f'- First offline preparation of TFDS `mnist` from data/mnist: '
      f'{result["first_preparation_seconds"]} s.', '',
      '| ExampleGen | seconds per round | median (s) |',
      '| --- | --- | --- |',
  ]
  for name, seconds in result['ingestion_seconds'].items():
    lines.append(f'| {name} | {", ".join(f"{s:.2f}" for s in seconds)} | '
                 f'{result["median_seconds"][name]:.2f} |')
  lines += ['', f'**TFDS / IDX (ratio of medians): '
            f'{result["tfds_over_idx"]:.2f}x** (target <= '
            f'{result["target_ratio"]}x: {met}).']
  return lines


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = f'tfds_ingest_{now:%Y-%m-%d}'
  with tempfile.TemporaryDirectory(prefix='tfds-ingest-') as tmp:
    tmp = pathlib.Path(tmp)
    start = time.perf_counter()
    source = tfds_source.prepare('mnist', data_dir=str(tmp / 'tfds'),
                                 manual_dir=str(MNIST_DIR))
    prepare_seconds = time.perf_counter() - start
    logger.info('Prepared %s in %.1f s', source.dataset_dir, prepare_seconds)
    sources = {
        'IdxExampleGen': (idx_executor.Executor, executor_properties(
            idx_component.IdxExampleGen(input_base=str(MNIST_DIR)))),
        'TfdsExampleGen': (tfds_executor.Executor, executor_properties(
            tfds_component.TfdsExampleGen(source=source))),
    }
    seconds = {name: [] for name in sources}
    for round_index in range(args.rounds):
      for name, (executor_class, properties) in sources.items():
        seconds[name].append(round(_ingest(
            executor_class, properties,
            tmp / f'{name}-{round_index}'), 2))
        logger.info('%s round %d: %.1f s', name, round_index + 1,
                    seconds[name][-1])
  medians = {name: statistics.median(s) for name, s in seconds.items()}
  ratio = medians['TfdsExampleGen'] / medians['IdxExampleGen']
  result = {
      **recording.result_header('benchmarks.tfds_ingest', run_name, now,
                                argv),
      'beam_args': local_runner.default_beam_args(),
      'images': sum(EXPECTED_COUNTS.values()),
      'first_preparation_seconds': round(prepare_seconds, 1),
      'ingestion_seconds': seconds,
      'median_seconds': medians,
      'tfds_over_idx': round(ratio, 2),
      'target_ratio': TARGET_RATIO,
      'target_met': ratio <= TARGET_RATIO,
  }
  recording.write_results(result, args.results_dir)
  print(f'first preparation {prepare_seconds:.1f} s; ingestion medians '
        f'{medians}; TFDS/IDX {ratio:.2f} (target <= {TARGET_RATIO})')
  return result


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  main()
