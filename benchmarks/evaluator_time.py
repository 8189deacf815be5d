"""Benchmark: the VaeEvaluator component's wall time on the 10,000 eval images.

Runs the executor (`components.vae_evaluator.executor.Executor.Do`) exactly
as the pipeline does, on the shipped MNIST t10k split written as ExampleGen
writes it: metrics, plots, report.html (every section) and the blessing,
first with no model served, then with a model served (the candidate and the
served model are both measured, and the report draws both manifolds). The
report also gets a 30-epoch training history and a data gate report, so
every section is drawn.

The model is `--model-dir` (a Trainer Model artifact, e.g.
outputs/pipeline/Trainer/model/5) or, by default, a freshly initialised VAE
exported the same way: the evaluator's work does not depend on the weights.

Run from the repository root:

  .venv/bin/python -m benchmarks.evaluator_time

Results go to benchmarks/results/evaluator_time_<date>.json.
"""

import argparse
import datetime
import json
import logging
import os
import pathlib
import shutil
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from benchmarks import recording
from benchmarks import throughput
from components.idx_example_gen import idx
from components.vae_evaluator import component
from components.vae_evaluator import executor
from layouts import serving as serving_layout
from models import export
from models import history as history_lib
from models import vae as vae_lib

logger = logging.getLogger(__name__)

REPO_ROOT = throughput.REPO_ROOT
MNIST_DIR = REPO_ROOT / 'data' / 'mnist'
EVAL_IMAGES = 10_000
TARGET_SECONDS = 60.0


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """The command line."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model-dir', default='',
                      help='a Trainer Model artifact; default: a fresh VAE')
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--iwae-samples', type=int,
                      default=component.DEFAULT_IWAE_SAMPLES)
  parser.add_argument('--note', default='',
                      help='recorded as is, e.g. what else used the CPU')
  parser.add_argument('--tag', default='')
  parser.add_argument('--results-dir',
                      default=str(REPO_ROOT / 'benchmarks' / 'results'))
  return parser.parse_args(argv)


def _examples(root: pathlib.Path) -> standard_artifacts.Examples:
  """The t10k split as ExampleGen's `eval` split."""
  images = idx.read_images_header(
      str(MNIST_DIR / 't10k-images-idx3-ubyte.gz'))
  labels = idx.read_labels_header(
      str(MNIST_DIR / 't10k-labels-idx1-ubyte.gz'))
  examples = standard_artifacts.Examples()
  examples.uri = str(root / 'examples')
  examples.split_names = artifact_utils.encode_split_names(['eval'])
  split_dir = pathlib.Path(artifact_utils.get_split_uri([examples], 'eval'))
  split_dir.mkdir(parents=True)
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(str(split_dir / 'data.gz'), options) as writer:
    for example in idx.iter_examples(idx.read_items(images, 0, EVAL_IMAGES),
                                     idx.read_items(labels, 0, EVAL_IMAGES)):
      writer.write(example.SerializeToString())
  return examples


def _model_run(root: pathlib.Path) -> standard_artifacts.ModelRun:
  """A ModelRun with a 30-epoch history, as the Trainer writes it."""
  model_run = standard_artifacts.ModelRun()
  model_run.uri = str(root / 'model_run')
  epochs = list(range(30))
  values = {key: list(np.linspace(200, 150, 30))
            for key in ('loss', 'reconstruction_loss', 'kl_loss',
                        'val_loss', 'val_reconstruction_loss', 'val_kl_loss')}
  os.makedirs(model_run.uri)
  pathlib.Path(model_run.uri, history_lib.HISTORY_FILE).write_text(
      json.dumps(history_lib.history_record(epochs, values)))
  return model_run


def _data_gate(root: pathlib.Path) -> standard_artifacts.ExampleAnomalies:
  anomalies = standard_artifacts.ExampleAnomalies()
  anomalies.uri = str(root / 'anomalies')
  os.makedirs(anomalies.uri)
  pathlib.Path(anomalies.uri, executor.GATE_REPORT_FILE).write_text(json.dumps(
      {'passed': True, 'span': 0, 'accept_drift': False,
       'reference': {'status': 'no model served', 'version_dir': None},
       'splits': {'eval': {'num_examples': EVAL_IMAGES, 'drift': {}},
                  'train': {'num_examples': 60_000, 'drift': {}}},
       'blocking': [], 'accepted': []}))
  return anomalies


def _run_once(inputs: Dict[str, Any], root: pathlib.Path, serving_dir: str,
              iwae_samples: int) -> Dict[str, float]:
  """One executor run: its seconds, and the 1-minute load average after."""
  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = str(root / 'evaluation')
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(root / 'blessing')
  started = time.perf_counter()
  executor.Executor().Do(
      inputs, {'evaluation': [evaluation], 'blessing': [blessing]},
      {'serving_dir': serving_dir, 'bless_threshold': 1000.0,
       'bless_tolerance': 1000.0, 'iwae_samples': iwae_samples, 'seed': 42})
  seconds = time.perf_counter() - started
  page = pathlib.Path(evaluation.uri, executor.REPORT_FILE)
  logger.info('Evaluator run: %.1f s (report %d bytes)', seconds,
              page.stat().st_size)
  return {'seconds': seconds, 'load_average_1min': os.getloadavg()[0]}


def _stats(runs: List[Dict[str, float]]) -> Dict[str, Any]:
  seconds = [run['seconds'] for run in runs]
  return {'seconds': seconds, 'median_s': statistics.median(seconds),
          'min_s': min(seconds), 'max_s': max(seconds),
          # Other processes on the machine: 2 means both cores were busy.
          'load_average_1min_after': [run['load_average_1min']
                                      for run in runs]}


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """The evaluator's run time, with and without a served model."""
  lines = [f'### `{result["run_name"]}`: VaeEvaluator on '
           f'{result["eval_images"]:,} images, k = {result["iwae_samples"]}',
           ''] + recording.header_lines(result) + [
               '', f'Note: {result.get("note") or "-"}', '',
               '| case | seconds per run | median |', '| --- | --- | --- |']
  for case in ('no_model_served', 'model_served'):
    runs = result[case]
    lines.append(f"| {case.replace('_', ' ')} | "
                 f"{', '.join(f'{s:.1f}' for s in runs['seconds'])} | "
                 f"{runs['median_s']:.1f} s |")
  lines.append(f"\nTarget: under {result['target_seconds']:.0f} s: "
               f"{'met' if result['target_met'] else 'missed'}.")
  return lines


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Times the evaluator with and without a served model; records it."""
  args = parse_args(argv)
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = f'evaluator_time_{now:%Y-%m-%d}' + (f'_{args.tag}'
                                                 if args.tag else '')
  root = pathlib.Path(tempfile.mkdtemp(prefix='evaluator_time_'))
  try:
    model_uri = args.model_dir
    if not model_uri:
      hp = vae_lib.Hyperparameters()
      model_uri = str(root / 'model')
      export.export_model(vae_lib.build_vae(hp), hp,
                          os.path.join(model_uri, export.SERVING_MODEL_DIR))
    model = standard_artifacts.Model()
    model.uri = model_uri
    model.id = 1
    inputs = {'examples': [_examples(root)], 'model': [model],
              'model_run': [_model_run(root)], 'data_gate': [_data_gate(root)]}
    serving_dir = root / 'serving'
    cases = {}
    for case in ('no_model_served', 'model_served'):
      if case == 'model_served':
        version_dir = serving_dir / '1'
        shutil.copytree(os.path.join(model_uri, export.SERVING_MODEL_DIR),
                        version_dir)
        serving_layout.write_push_info(str(version_dir),
                                       {'model_uri': model_uri})
      runs = [_run_once(inputs, root / f'{case}-{i}', str(serving_dir),
                       args.iwae_samples) for i in range(args.repeats)]
      cases[case] = _stats(runs)
      logger.info('%s: %s', case, cases[case])
  finally:
    shutil.rmtree(root, ignore_errors=True)
  result = {
      **recording.result_header('benchmarks.evaluator_time', run_name, now,
                                argv),
      'eval_images': EVAL_IMAGES,
      'iwae_samples': args.iwae_samples,
      'model': args.model_dir or 'fresh VAE (default Hyperparameters)',
      'note': args.note,
      **cases,
      'target_seconds': TARGET_SECONDS,
      'target_met': all(c['max_s'] < TARGET_SECONDS for c in cases.values()),
  }
  recording.write_results(result, args.results_dir)
  return result


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  main()
