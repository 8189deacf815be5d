"""Benchmark: the data gate's thresholds, calibrated, and what it costs.

Calibration (`--calibrate`): the gate's three drift measures
(`components.data_gate.gate.check_split` on TFDV statistics computed as
StatisticsGen computes them, with the mean image added) for drops that must
pass (MNIST against MNIST: two halves of train, t10k against train, and small
head-of-file subsets like the tests' spans) and drops that must fail
(inverted images, labels almost all one class, other image distributions),
each with the verdict under the default thresholds.

Cost (`--timing`): the whole local pipeline on all 70,000 images with
`--epochs 1`, this checkout against the code before the gate (`--baseline-rev`,
extracted with `git archive`), each run twice into a fresh output directory:
first with nothing served, then again with `--no-cache` (so the gate measures
drift against the model the first run pushed). The gate's cost is the
difference of the data side (every component but Trainer, VaeEvaluator and
Pusher) between the two versions, from ML Metadata; rounds are interleaved.

  .venv/bin/python -m benchmarks.data_gate --calibrate --timing

Targets: the MNIST drops pass and the bad drops are stopped under the default
thresholds; the gate adds at most 10 s to a run on 70,000 images.

Results go to benchmarks/results/data_gate_<date>.json; BENCHMARKS.md and the
README ("Data gate") quote them; `python -m benchmarks.render` renders one as
markdown (`markdown_lines`).
"""

import argparse
import datetime
import logging
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
from sklearn import datasets

from benchmarks import recording
from benchmarks import stage_timings
from components.data_gate import gate
from components.idx_example_gen import idx
from pipeline import data_schema

logger = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
MNIST_DIR = REPO_ROOT / 'data' / 'mnist'
TARGET_SECONDS = 10.0
# The code just before the data gate landed.
DEFAULT_BASELINE_REV = '1af02e3'
MODEL_SIDE = ('Trainer', 'VaeEvaluator', 'Pusher')
Drop = Tuple[np.ndarray, np.ndarray]


def load(prefix: str) -> Drop:
  images = idx.read_images_header(str(MNIST_DIR / f'{prefix}-images-idx3-ubyte.gz'))
  labels = idx.read_labels_header(str(MNIST_DIR / f'{prefix}-labels-idx1-ubyte.gz'))
  return (idx.read_items(images, 0, images.count),
          idx.read_items(labels, 0, labels.count))


def statistics(drop: Drop, directory: str, name: str):
  """TFDV statistics with the curated schema, plus the mean image."""
  images, labels = drop
  path = os.path.join(directory, f'{name}.tfrecord.gz')
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(path, options) as writer:
    for example in idx.iter_examples(images, labels):
      writer.write(example.SerializeToString())
  stats = tfdv.generate_statistics_from_tfrecord(
      path, stats_options=tfdv.StatsOptions(
          schema=data_schema.curated_schema()))
  mean = images.reshape(len(images), -1).astype(np.float64).mean(0) / 255
  return gate.with_mean_image(stats, mean)


def other_digits(padded_to: int, nearest: bool) -> Drop:
  """scikit-learn's 1,797 8x8 digits (0..16) in 28x28 images like MNIST's."""
  digits = datasets.load_digits()
  method = 'nearest' if nearest else 'bilinear'
  scaled = tf.image.resize(digits.images[..., None].astype(np.float32),
                           (padded_to, padded_to), method=method).numpy()[..., 0]
  images = np.zeros((len(scaled), 28, 28), np.float32)
  start = (28 - padded_to) // 2
  images[:, start:start + padded_to, start:start + padded_to] = scaled * 255 / 16
  return np.clip(images, 0, 255).astype(np.uint8), digits.target.astype(np.uint8)


def natural_patches(count: int, seed: int = 0) -> Drop:
  """28x28 grey patches of scikit-learn's two sample photographs."""
  rng = np.random.default_rng(seed)
  patches = []
  for photo in datasets.load_sample_images().images:
    grey = photo.mean(axis=-1)
    for _ in range(count // 2):
      y = rng.integers(0, grey.shape[0] - 56)
      x = rng.integers(0, grey.shape[1] - 56)
      patches.append(grey[y:y + 56:2, x:x + 56:2])
  return (np.array(patches).astype(np.uint8),
          (np.arange(len(patches)) % 10).astype(np.uint8))


def calibration_cases(train: Drop, test: Drop):
  """(name, reference, drop, must pass) for every case."""
  (ti, tl), (ei, el) = train, test
  one_class = np.where(np.arange(len(el)) % 20 == 0, el, 1).astype(np.uint8)
  rng = np.random.default_rng(0)
  noise = (rng.integers(0, 256, (2000, 28, 28)).astype(np.uint8),
           (np.arange(2000) % 10).astype(np.uint8))
  return [
      ('MNIST train 2nd half vs 1st half (30,000 each)',
       (ti[:30000], tl[:30000]), (ti[30000:], tl[30000:]), True),
      ('MNIST t10k (10,000) vs train (60,000)', train, test, True),
      ('first 300 t10k vs first 1,500 train', (ti[:1500], tl[:1500]),
       (ei[:300], el[:300]), True),
      ('t10k 500-999 vs first 2,000 train (the e2e test\'s spans)',
       (ti[:2000], tl[:2000]), (ei[500:1000], el[500:1000]), True),
      ('inverted t10k (255 - x) vs train', train, (255 - ei, el), False),
      ('t10k with 95% of labels 1 vs train', train, (ei, one_class), False),
      ('scikit-learn digits, bilinear 20x20 padded vs train', train,
       other_digits(20, nearest=False), False),
      ('scikit-learn digits, blocky 16x16 padded vs train', train,
       other_digits(16, nearest=True), False),
      ('natural photo patches vs train', train, natural_patches(2000), False),
      ('uniform noise vs train', train, noise, False),
      ('t10k rotated 90 degrees vs train', train,
       (np.rot90(ei, axes=(1, 2)).copy(), el), False),
      ('t10k mirrored left-right vs train', train,
       (ei[:, :, ::-1].copy(), el), None),
      ('t10k shifted 2 pixels right vs train', train,
       (np.roll(ei, 2, axis=2), el), None),
  ]


def calibrate() -> List[Dict[str, Any]]:
  train, test = load('train'), load('t10k')
  thresholds = gate.Thresholds()
  schema = data_schema.curated_schema()
  rows = []
  with tempfile.TemporaryDirectory(prefix='data_gate_') as directory:
    cache: Dict[int, Any] = {}
    for number, (name, reference, drop, must_pass) in enumerate(
        calibration_cases(train, test)):
      key = id(reference[0])
      if key not in cache:
        cache[key] = statistics(reference, directory, f'reference-{number}')
      result = gate.check_split('drop', statistics(drop, directory,
                                                   f'drop-{number}'),
                                schema, cache[key], thresholds)
      measured = {m['measure']: m['value'] for m in result.drift.values()}
      passed = not result.findings
      row = {
          'case': name, 'reference_images': len(reference[0]),
          'drop_images': len(drop[0]), 'must_pass': must_pass,
          'label_linf': measured['label L-infinity distance'],
          'pixel_jsd': measured['pixel-value Jensen-Shannon divergence'],
          'mean_image_linf': measured[gate.MEAN_IMAGE_MEASURE],
          'passes_defaults': passed,
          'as_required': None if must_pass is None else passed == must_pass,
      }
      logger.info('%s', row)
      rows.append(row)
  return rows


def _extract(rev: str, directory: str) -> str:
  os.makedirs(directory)
  archive = subprocess.run(['git', 'archive', rev], cwd=REPO_ROOT, check=True,
                           capture_output=True).stdout
  subprocess.run(['tar', '-x', '-C', directory], input=archive, check=True)
  return directory


def _run(repo: str, output_dir: str, no_cache: bool) -> Dict[str, Any]:
  command = [sys.executable, os.path.join(repo, 'local_runner.py'),
             '--output-dir', output_dir, '--epochs', '1', '--bless-threshold',
             '1000', '--bless-tolerance', '1000']
  if no_cache:
    command.append('--no-cache')
  start = time.perf_counter()
  completed = subprocess.run(command, cwd=repo, check=False, text=True,
                             capture_output=True,
                             env=dict(os.environ, PYTHONPATH=repo))
  if completed.returncode != 0:
    raise RuntimeError(f'{command} failed: {completed.stderr[-3000:]}')
  timings = stage_timings.stage_timings(
      os.path.join(output_dir, 'metadata.sqlite'))
  seconds = {c['name']: c['seconds'] for c in timings['components']}
  return {
      'process_seconds': time.perf_counter() - start,
      'components': seconds,
      'data_side_seconds': sum(v for k, v in seconds.items()
                               if k not in MODEL_SIDE),
  }


def timing(baseline_rev: str, rounds: int) -> Dict[str, Any]:
  runs: Dict[str, List[Dict[str, Any]]] = {'baseline': [], 'gate': []}
  with tempfile.TemporaryDirectory(prefix='data_gate_timing_') as root:
    repos = {'baseline': _extract(baseline_rev, os.path.join(root, 'base')),
             'gate': str(REPO_ROOT)}
    for round_ in range(rounds):
      for version, repo in repos.items():
        output_dir = os.path.join(root, f'{version}-{round_}')
        first = _run(repo, output_dir, no_cache=False)
        second = _run(repo, output_dir, no_cache=True)
        runs[version].append({'nothing_served': first, 'served': second})
        logger.info('%s round %d: %s', version, round_, runs[version][-1])

  def median(version, key):
    return float(np.median([r[key]['data_side_seconds'] for r in runs[version]]))

  added = {key: median('gate', key) - median('baseline', key)
           for key in ('nothing_served', 'served')}
  return {'baseline_rev': baseline_rev, 'rounds': rounds, 'runs': runs,
          'median_data_side_seconds': {
              v: {k: median(v, k) for k in ('nothing_served', 'served')}
              for v in runs},
          'added_seconds': added, 'target_seconds': TARGET_SECONDS,
          'met': max(added.values()) <= TARGET_SECONDS}


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run as markdown (`python -m benchmarks.render <json>`)."""
  thresholds = result['thresholds']
  lines = [f'### `{result["run_name"]}`: the data gate\'s thresholds and cost',
           '', *recording.header_lines(result),
           f'- Default thresholds: label L-inf {thresholds["max_label_linf"]}, '
           f'pixel JSD {thresholds["max_pixel_jsd"]}, mean-image L-inf '
           f'{thresholds["max_mean_image_linf"]}.']
  if result.get('calibration'):
    required = {True: 'pass', False: 'stop', None: 'no requirement'}
    lines += ['', '| case | reference / drop images | label L-inf | '
              'pixel JSD | mean-image L-inf | required | under the defaults |',
              '| --- | --- | --- | --- | --- | --- | --- |']
    for row in result['calibration']:
      verdict = 'passes' if row['passes_defaults'] else 'stopped'
      lines.append(
          f'| {row["case"]} | {row["reference_images"]:,} / '
          f'{row["drop_images"]:,} | {row["label_linf"]:.3g} | '
          f'{row["pixel_jsd"]:.3g} | {row["mean_image_linf"]:.3g} | '
          f'{required[row["must_pass"]]} | {verdict} |')
  if result.get('timing'):
    timing_ = result['timing']
    medians = timing_['median_data_side_seconds']
    lines += ['', f'Cost: the pipeline with `--epochs 1` on 70,000 images, '
              f'this code against `{timing_["baseline_rev"]}` (before the '
              f'gate), {timing_["rounds"]} interleaved rounds. Data side: '
              'every component but ' + ', '.join(MODEL_SIDE) + '.', '',
              '| | data side, nothing served (s, median) | data side, model '
              'served (s, median) | DataGate (s, per round) |',
              '| --- | --- | --- | --- |']
    for version, runs in timing_['runs'].items():
      gate_seconds = ', '.join(
          f'{run[key]["components"]["DataGate"]:.1f}'
          for run in runs for key in ('nothing_served', 'served')
          if 'DataGate' in run[key]['components']) or '-'
      lines.append(f'| {version} | {medians[version]["nothing_served"]:.1f} | '
                   f'{medians[version]["served"]:.1f} | {gate_seconds} |')
    added = timing_['added_seconds']
    lines += ['', f'**Added by the gate: {added["nothing_served"]:+.1f} s '
              f'(nothing served), {added["served"]:+.1f} s (model served)** '
              f'(target <= {timing_["target_seconds"]:.0f} s: '
              f'{"met" if timing_["met"] else "NOT met"}).']
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--calibrate', action='store_true')
  parser.add_argument('--timing', action='store_true')
  parser.add_argument('--baseline-rev', default=DEFAULT_BASELINE_REV)
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--tag', default='')
  parser.add_argument('--results-dir', default=str(REPO_ROOT / 'benchmarks' /
                                                   'results'))
  args = parser.parse_args(argv)
  if not (args.calibrate or args.timing):
    parser.error('give --calibrate and/or --timing')
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = f'data_gate_{now:%Y-%m-%d}' + (f'_{args.tag}' if args.tag else '')
  result = {
      **recording.result_header('benchmarks.data_gate', run_name, now, argv),
      'thresholds': {'max_label_linf': gate.DEFAULT_MAX_LABEL_LINF,
                     'max_pixel_jsd': gate.DEFAULT_MAX_PIXEL_JSD,
                     'max_mean_image_linf': gate.DEFAULT_MAX_MEAN_IMAGE_LINF},
  }
  if args.calibrate:
    result['calibration'] = calibrate()
  if args.timing:
    result['timing'] = timing(args.baseline_rev, args.rounds)
  recording.write_results(result, args.results_dir)
  print('\n'.join(markdown_lines(result)))
  return result


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  main()
