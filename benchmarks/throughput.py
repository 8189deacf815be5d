"""Benchmark: training images/s of the seed's loop against the Trainer's path.

In one process, in interleaved rounds, each with fresh models: the seed's
loop (benchmarks/seed.py: its `VAE`, all 70,000 images as one float32 array,
`Adam()`, `fit(batch_size=128)`, no validation, no logs) and what the TFX
Trainer runs: `models.train.train` itself on ExampleGen's `Split-train`, in
the Trainer's default precision and hyperparameters, so with the validation
carve-out validated after every epoch, TensorBoard logs and the resume
checkpoint written after every epoch, all inside the epoch's time. The first
epoch of every fit is warm-up and left out; the ratio is ours / seed of the
median images/s, ours counting the images it trains on (the carve-out is
not). Target and figures: BENCHMARKS.md, "Speed and cost targets".

  .venv/bin/python -m benchmarks.throughput
"""

import argparse
import logging
import os
import pathlib
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np

from benchmarks import recording
from benchmarks import seed as seed_lib
from models import precision as precision_lib
from models import schedules
from models import train as train_lib
from models import vae as vae_lib

logger = logging.getLogger(__name__)

DEFAULT_EXAMPLES_DIR = (recording.REPO_ROOT / 'outputs' / 'pipeline' /
                        'IdxExampleGen' / 'examples' / '1')
TARGET_RATIO = 2.0


def run_seed(mnist_digits: np.ndarray, epochs: int) -> Dict[str, Any]:
  """One fit of a fresh seed VAE; returns its epoch times and final loss."""
  start = time.perf_counter()
  vae = seed_lib.SeedVAE(seed_lib.seed_encoder(), seed_lib.seed_decoder())
  vae.compile(optimizer=keras.optimizers.Adam())
  timer = recording.EpochTimer()
  history = vae.fit(mnist_digits, epochs=epochs, batch_size=128,
                    callbacks=[timer], verbose=0)
  return {'images': int(len(mnist_digits)), 'epoch_seconds': timer.seconds,
          'total_seconds': time.perf_counter() - start,
          'final_loss': float(history.history['loss'][-1])}


def run_ours(train_files: str, epochs: int, seed: int,
             precision: str) -> Dict[str, Any]:
  """One training of a fresh VAE as the Trainer runs it (`train.train`)."""
  hp = vae_lib.Hyperparameters(epochs=epochs, seed=seed, precision=precision)
  start = time.perf_counter()
  timer = recording.EpochTimer()
  with tempfile.TemporaryDirectory(prefix='throughput-') as tmp:
    _, history, _ = train_lib.train(
        hp, train_files, os.path.join(tmp, 'logs'), callbacks=[timer],
        verbose=0, resume_dir=os.path.join(tmp, 'resume'))
  # Every batch is full: an epoch is its steps times the batch size.
  steps_per_epoch = history.params['steps']
  return {'images': steps_per_epoch * hp.batch_size,
          'steps_per_epoch': steps_per_epoch,
          'steps_per_execution': schedules.exact_steps_per_execution(
              hp.steps_per_execution, steps_per_epoch),
          'epoch_seconds': timer.seconds,
          'total_seconds': time.perf_counter() - start,
          'final_loss': float(history.history['loss'][-1]),
          'final_val_loss': float(history.history['val_loss'][-1])}


def summarize(images: int, fits: Sequence[Dict[str, Any]],
              warmup_epochs: int) -> Dict[str, Any]:
  """Images/s per measured epoch (warm-up epochs of every fit excluded)."""
  rates = [images / s for fit in fits for s in fit['epoch_seconds'][
      warmup_epochs:]]
  warmup = [images / fit['epoch_seconds'][0] for fit in fits]
  return {'images_per_epoch': images, 'images_per_s': rates,
          'median_images_per_s': statistics.median(rates),
          'min_images_per_s': min(rates), 'max_images_per_s': max(rates),
          'first_epoch_images_per_s': warmup}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = recording.parser(__doc__)
  parser.add_argument('--examples-dir', default=str(DEFAULT_EXAMPLES_DIR),
                      help='ExampleGen Examples artifact dir with Split-train/')
  parser.add_argument('--mnist-dir', default=str(recording.MNIST_DIR),
                      help='folder with the gzipped MNIST IDX image files')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--epochs', type=int, default=3,
                      help='epochs per fit, the first being warm-up')
  parser.add_argument('--warmup-epochs', type=int, default=1)
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument('--precision', choices=precision_lib.PRECISIONS,
                      default=vae_lib.Hyperparameters().precision,
                      help="the Trainer path's training precision (default: "
                      "the Trainer's); the seed's loop is float32 as written")
  args = parser.parse_args(argv)
  if args.epochs <= args.warmup_epochs:
    parser.error('--epochs must exceed --warmup-epochs')
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Runs the interleaved rounds; records and returns the result."""
  args = parse_args(argv)
  script_start = time.perf_counter()
  header = recording.result_header('benchmarks.throughput', args.tag, argv)
  train_files = os.path.join(args.examples_dir, 'Split-train', '*')
  mnist_digits = seed_lib.seed_digits(mnist_dir=pathlib.Path(args.mnist_dir))
  logger.info('Seed data: %s %s', mnist_digits.shape, mnist_digits.dtype)

  fits: Dict[str, List[Dict[str, Any]]] = {'seed': [], 'ours': []}
  per_round: List[float] = []
  for round_index in range(args.rounds):
    order = ('seed', 'ours') if round_index % 2 == 0 else ('ours', 'seed')
    for which in order:
      logger.info('Round %d: %s, %d epochs', round_index + 1, which,
                  args.epochs)
      fits[which].append(
          run_seed(mnist_digits, args.epochs) if which == 'seed' else
          run_ours(train_files, args.epochs, args.seed, args.precision))
      logger.info('  epoch seconds: %s', ', '.join(
          f'{s:.1f}' for s in fits[which][-1]['epoch_seconds']))
    seed_rate, our_rate = (
        summarize(f[-1]['images'], f[-1:], args.warmup_epochs)[
            'median_images_per_s'] for f in fits.values())
    per_round.append(our_rate / seed_rate)
    logger.info('Round %d ratio (ours / seed): %.2f', round_index + 1,
                per_round[-1])

  seed, ours = (summarize(f[0]['images'], f, args.warmup_epochs)
                for f in fits.values())
  ratio = ours['median_images_per_s'] / seed['median_images_per_s']
  result = {
      **header,
      'rounds': args.rounds, 'epochs': args.epochs,
      'warmup_epochs': args.warmup_epochs, 'fresh_models_each_round': True,
      'seed': {**seed, 'fits': fits['seed']},
      'ours': {**ours, 'fits': fits['ours']},
      'ours_precision': args.precision,
      'ours_resolved_precision': precision_lib.resolve(args.precision),
      'ratio_of_medians': ratio, 'per_round_ratios': per_round,
      'target_ratio': TARGET_RATIO, 'target_met': ratio >= TARGET_RATIO,
      'total_seconds': time.perf_counter() - script_start,
  }
  recording.write_results(result, args.results_dir)
  print(f'seed {seed["median_images_per_s"]:.0f} images/s '
        f'[{seed["min_images_per_s"]:.0f}, {seed["max_images_per_s"]:.0f}], '
        f'ours {ours["median_images_per_s"]:.0f} images/s '
        f'[{ours["min_images_per_s"]:.0f}, {ours["max_images_per_s"]:.0f}], '
        f'ratio {ratio:.2f}x (target >= {TARGET_RATIO}x)')
  return result


if __name__ == '__main__':
  recording.configure_logging()
  main()
