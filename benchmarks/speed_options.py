"""Benchmark: what each speed option does to the Trainer's training speed.

Every option is timed on the Trainer's own path
(`models.data.make_training_dataset` over ExampleGen's `Split-train`,
`models.vae.build_vae`, `fit` with `steps_per_epoch`), each in a
fresh Python process (oneDNN and the thread pools are configured when
TensorFlow starts, so they cannot be changed within one process). The
options run in interleaved rounds, their order rotated every round, and each
is compared with the float32 baseline of the same round: the machines are
noisy, so only ratios measured side by side count.

Options (`--options`, default all):

  float32             the baseline: float32, TensorFlow's defaults (oneDNN on)
  mixed_bfloat16      Hyperparameters(precision='mixed_bfloat16')
  onednn_off          float32 with TF_ENABLE_ONEDNN_OPTS=0 (plain Eigen kernels)
  threads_2x1         float32, intra-op threads 2, inter-op threads 1
  steps_per_exec_8    float32, compile(steps_per_execution=8): 8 steps per call
  bf16_steps_per_exec_8  both of the above
  xla                 float32, compile(jit_compile=True)
  per_epoch_iterator  float32, a finite dataset (`make_dataset`, last batch
                      smaller): a new iterator every epoch, as the Trainer
                      had before `make_training_dataset`
  bf16_per_epoch_iterator  both of the above

Figures per option: the median step time (every step of the measured epochs
but the first of each; with steps_per_execution, one call / 8) and the
epoch images/s, both as ratios to the round's baseline. Held-out quality is
not measured here: a precision is only worth having if a 30-epoch run
(`benchmarks.train_vae --precision ...`) stays within 1 nat of float32.

Run from the repository root (about 25 minutes on 2 cores with the default
2 rounds of 4 epochs):

  .venv/bin/python -m benchmarks.speed_options
"""

import argparse
import datetime
import json
import logging
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import keras
import tensorflow as tf

from benchmarks import recording
from models import data
from models import precision
from models import vae as vae_lib

logger = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLES_DIR = (REPO_ROOT / 'outputs' / 'pipeline' / 'IdxExampleGen' /
                        'examples' / '1')
SECTION = '## Speed: training options (precision, oneDNN, threads, XLA)'
BASELINE = 'float32'

# Option -> how the child process sets it up. `env` is set before TensorFlow
# starts; the rest is applied by `run_child`.
OPTIONS: Dict[str, Dict[str, Any]] = {
    'float32': {'precision': 'float32'},
    'mixed_bfloat16': {'precision': 'mixed_bfloat16'},
    'onednn_off': {'precision': 'float32',
                   'env': {'TF_ENABLE_ONEDNN_OPTS': '0'}},
    'threads_2x1': {'precision': 'float32', 'intra_op_threads': 2,
                    'inter_op_threads': 1},
    'steps_per_exec_8': {'precision': 'float32', 'steps_per_execution': 8},
    'bf16_steps_per_exec_8': {'precision': 'mixed_bfloat16',
                              'steps_per_execution': 8},
    'xla': {'precision': 'float32', 'jit_compile': True},
    'per_epoch_iterator': {'precision': 'float32', 'per_epoch_iterator': True},
    'bf16_per_epoch_iterator': {'precision': 'mixed_bfloat16',
                                'per_epoch_iterator': True},
}
DESCRIPTIONS = {
    'float32': 'float32, TensorFlow defaults (oneDNN on): the baseline',
    'mixed_bfloat16': "`--precision mixed_bfloat16` (bfloat16 convolutions "
                      "on the CPU's AMX units)",
    'onednn_off': 'float32, `TF_ENABLE_ONEDNN_OPTS=0`',
    'threads_2x1': 'float32, intra-op threads 2, inter-op threads 1',
    'steps_per_exec_8': 'float32, `steps_per_execution=8`',
    'bf16_steps_per_exec_8': 'mixed_bfloat16 and `steps_per_execution=8`',
    'xla': 'float32, `jit_compile=True` (XLA)',
    'per_epoch_iterator': 'float32, finite dataset: new iterator every '
                          'epoch, last batch smaller (the Trainer before)',
    'bf16_per_epoch_iterator': 'mixed_bfloat16 and the finite dataset',
}


def run_child(option: str, examples_dir: str, epochs: int,
              seed: int) -> Dict[str, Any]:
  """Trains with `option` in this (child) process; returns its timings.

  The child's environment (e.g. TF_ENABLE_ONEDNN_OPTS) was set before it
  started; the thread pools are set here, before TensorFlow runs any op.
  """
  settings = OPTIONS[option]
  if 'intra_op_threads' in settings:
    tf.config.threading.set_intra_op_parallelism_threads(
        settings['intra_op_threads'])
    tf.config.threading.set_inter_op_parallelism_threads(
        settings['inter_op_threads'])
  hp = vae_lib.Hyperparameters(epochs=epochs, seed=seed,
                               precision=settings['precision'])
  keras.utils.set_random_seed(hp.seed)
  train_files = os.path.join(examples_dir, 'Split-train', '*')
  if settings.get('per_epoch_iterator'):
    dataset = data.make_dataset(train_files, hp.batch_size, shuffle=True,
                                seed=hp.seed)
    steps_per_epoch = None
    images = sum(int(batch.shape[0]) for batch in dataset)
  else:  # The Trainer's.
    dataset, steps_per_epoch = data.make_training_dataset(
        train_files, hp.batch_size, seed=hp.seed)
    images = steps_per_epoch * hp.batch_size
  vae = vae_lib.build_vae(hp)
  steps_per_execution = settings.get('steps_per_execution', 1)
  if steps_per_execution != 1 or settings.get('jit_compile'):
    vae.compile(optimizer=keras.optimizers.Adam(hp.learning_rate),
                steps_per_execution=steps_per_execution,
                jit_compile=settings.get('jit_compile', False))
  epoch_timer = recording.EpochTimer()
  step_timer = recording.StepTimer()
  history = vae.fit(dataset, epochs=hp.epochs, steps_per_epoch=steps_per_epoch,
                    verbose=0, callbacks=[epoch_timer, step_timer])
  # Calls of the first (warm-up) epoch: tracing.
  calls_per_epoch = math.ceil(
      math.ceil(images / hp.batch_size) / steps_per_execution)
  measured_steps = step_timer.seconds[calls_per_epoch - 1:]
  return {
      'option': option,
      'settings': settings,
      'resolved_precision': precision.resolve(hp.precision),
      'images_per_epoch': images,
      'epoch_seconds': epoch_timer.seconds,
      'median_step_seconds': (statistics.median(measured_steps) /
                              steps_per_execution),
      'mean_step_seconds': (statistics.fmean(measured_steps) /
                            steps_per_execution),
      'p90_step_seconds': (sorted(measured_steps)[
          int(0.9 * len(measured_steps))] / steps_per_execution),
      'final_loss': float(history.history['loss'][-1]),
  }


def run_option(option: str, args: argparse.Namespace) -> Dict[str, Any]:
  """Runs one option in a fresh child process; returns its result."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.update(OPTIONS[option].get('env', {}))
  command = [sys.executable, '-m', 'benchmarks.speed_options', '--child',
             option, '--examples-dir', args.examples_dir, '--epochs',
             str(args.epochs), '--seed', str(args.seed)]
  start = time.perf_counter()
  completed = subprocess.run(command, cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, check=False)
  if completed.returncode != 0:
    raise RuntimeError(f'Option {option} failed (exit '
                       f'{completed.returncode}):\n{completed.stderr[-3000:]}')
  result = json.loads(completed.stdout.strip().splitlines()[-1])
  result['process_seconds'] = time.perf_counter() - start
  return result


def epoch_images_per_s(result: Dict[str, Any], warmup_epochs: int) -> float:
  """Median images/s over the epochs after the warm-up."""
  return statistics.median(result['images_per_epoch'] / s
                           for s in result['epoch_seconds'][warmup_epochs:])


def summarize(options: Sequence[str], rounds: List[Dict[str, Dict[str, Any]]],
              warmup_epochs: int) -> Dict[str, Dict[str, Any]]:
  """Per option: medians over rounds of its figures and of its ratios."""
  summary = {}
  for option in options:
    step_ratios, rate_ratios, rates, steps = [], [], [], []
    for results in rounds:
      base, mine = results[BASELINE], results[option]
      steps.append(mine['median_step_seconds'])
      rates.append(epoch_images_per_s(mine, warmup_epochs))
      step_ratios.append(base['median_step_seconds'] /
                         mine['median_step_seconds'])
      rate_ratios.append(rates[-1] / epoch_images_per_s(base, warmup_epochs))
    summary[option] = {
        'median_step_ms': 1000 * statistics.median(steps),
        'median_epoch_images_per_s': statistics.median(rates),
        'step_speedup': statistics.median(step_ratios),
        'step_speedups': step_ratios,
        'epoch_speedup': statistics.median(rate_ratios),
        'epoch_speedups': rate_ratios,
        'resolved_precision': rounds[0][option]['resolved_precision'],
    }
  return summary


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run's block of BENCHMARKS.md."""
  lines = [
      f'### `{result["run_name"]}`: {result["rounds"]} interleaved rounds, '
      f'{result["epochs"]} epochs per option and round',
      '',
      *recording.header_lines(result),
      f'- Each option trains a fresh model in its own process on the '
      f'Trainer path ({result["images_per_epoch"]:,} images, batch 128); '
      f'the first {result["warmup_epochs"]} epoch(s) are warm-up and not '
      'measured. Speed-ups are the median over rounds of (baseline of the '
      'round) / (option), per step and per epoch.',
      '',
      '| Option | Median step (ms) | Step speed-up | Epoch images/s | '
      'Epoch speed-up (per round) |',
      '| --- | --- | --- | --- | --- |',
  ]
  for option, figures in result['summary'].items():
    per_round = ', '.join(f'{r:.2f}' for r in figures['epoch_speedups'])
    lines.append(
        f'| {DESCRIPTIONS[option]} | {figures["median_step_ms"]:.1f} | '
        f'{figures["step_speedup"]:.2f}x | '
        f'{figures["median_epoch_images_per_s"]:,.0f} | '
        f'{figures["epoch_speedup"]:.2f}x ({per_round}) |')
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """The command-line flags."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--examples-dir', default=str(DEFAULT_EXAMPLES_DIR),
                      help='ExampleGen Examples artifact dir with Split-train/')
  parser.add_argument('--options', nargs='+', choices=sorted(OPTIONS),
                      default=list(OPTIONS),
                      help='options to time (the float32 baseline always is)')
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--epochs', type=int, default=4,
                      help='epochs per option and round, the first warm-up')
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument('--tag', default='')
  parser.add_argument('--results-dir',
                      default=str(REPO_ROOT / 'benchmarks' / 'results'))
  parser.add_argument('--markdown', default=str(REPO_ROOT / 'BENCHMARKS.md'),
                      help='file to record the run in ("" to skip)')
  parser.add_argument('--markdown-from', default='',
                      help='only re-record this results JSON in --markdown')
  parser.add_argument('--child', choices=sorted(OPTIONS),
                      help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.epochs < 2:
    parser.error('--epochs must be at least 2 (the first is warm-up)')
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Runs the rounds (or, with --child, one option); records the result."""
  args = parse_args(argv)
  if args.child:
    result = run_child(args.child, args.examples_dir, args.epochs, args.seed)
    print(json.dumps(result))
    return result
  if args.markdown_from:
    with open(args.markdown_from) as f:
      result = json.load(f)
    recording.write_run_block(pathlib.Path(args.markdown), SECTION,
                              result['run_name'], markdown_lines(result))
    return result
  if not os.path.isdir(os.path.join(args.examples_dir, 'Split-train')):
    raise SystemExit(f'No Split-train in {args.examples_dir}: run the '
                     'pipeline first (python local_runner.py) or pass '
                     '--examples-dir')
  options = [BASELINE] + [o for o in args.options if o != BASELINE]
  script_start = time.perf_counter()
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = (f'speed_options_{now:%Y-%m-%d}' +
              (f'_{args.tag}' if args.tag else ''))
  rounds: List[Dict[str, Dict[str, Any]]] = []
  for round_index in range(args.rounds):
    shift = round_index % len(options)
    order = options[shift:] + options[:shift]
    results = {}
    for option in order:
      logger.info('Round %d/%d: %s', round_index + 1, args.rounds, option)
      results[option] = run_option(option, args)
      logger.info('  median step %.1f ms, epochs %s s',
                  1000 * results[option]['median_step_seconds'],
                  ', '.join(f'{s:.1f}'
                            for s in results[option]['epoch_seconds']))
    rounds.append(results)
  warmup_epochs = 1
  result = {
      **recording.result_header('benchmarks.speed_options', run_name, now, argv),
      'rounds': args.rounds,
      'epochs': args.epochs,
      'warmup_epochs': warmup_epochs,
      'images_per_epoch': rounds[0][BASELINE]['images_per_epoch'],
      'summary': summarize(options, rounds, warmup_epochs),
      'round_results': rounds,
      'total_seconds': time.perf_counter() - script_start,
  }
  recording.publish(result, args.results_dir, args.markdown, SECTION,
                    markdown_lines(result))
  for option, figures in result['summary'].items():
    print(f'{option:24s} step {figures["median_step_ms"]:6.1f} ms '
          f'({figures["step_speedup"]:.2f}x), epoch '
          f'{figures["median_epoch_images_per_s"]:,.0f} images/s '
          f'({figures["epoch_speedup"]:.2f}x)')
  return result


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  main()
