"""Benchmark: the nightly retrain, from scratch against warm-started.

Two drops: A is the first half of MNIST's train split (30,000 images) with
the first half of t10k (5,000) as eval, B the second halves. A model is
trained on A from scratch (the default recipe, seed 0; kept in --work-dir).
Then, per seed and interleaved, B is trained (i) from scratch with the
default recipe and (ii) warm-started from A's model as the Trainer does it
with --warm-start (early stopping on the carve-out, `--patience`,
`--min-improvement`, at most --epochs). Each run is a child process of its
own, with a resume directory as the Trainer has; it is timed (the Trainer's
`train`, data and warm start included) and scored on B's eval by the
VaeEvaluator's scorer.

`--kinds curve` runs, per seed, a warm start that never stops, for
--curve-epochs epochs, scoring the weights after every epoch held out: what
any patience and minimum improvement would have chosen (`simulate`), to
calibrate the defaults (against the scratch runs of the same result, or of
the one that names it with --calibration-from). Figures: BENCHMARKS.md,
"Nightly retrain".

  .venv/bin/python -m benchmarks.nightly --seeds 1 --kinds curve --tag curve
  .venv/bin/python -m benchmarks.nightly --seeds 1 2 3 \
      --calibration-from benchmarks/results/nightly_<date>_curve.json
"""

import argparse
import datetime
import json
import logging
import os
import pathlib
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import recipes
from benchmarks import recording
from components.example_gen import idx
from components.vae_evaluator import metrics
from models import early_stopping
from models import export
from models import train as train_lib
from models import vae as vae_lib

logger = logging.getLogger(__name__)

# (train start, train stop, t10k start, t10k stop) of each drop.
DROPS = {'a': (0, 30000, 0, 5000), 'b': (30000, 60000, 5000, 10000)}
# The nightly target: warm-started no worse than from scratch + this, in at
# most this share of its training time.
TOLERANCE_NATS = 0.5
TIME_SHARE = 0.25
SCRATCH, WARM, CURVE, MODEL_A = 'scratch', 'warm', 'curve', 'model_a'


def ensure_drop(work_dir: pathlib.Path, name: str) -> pathlib.Path:
  """Drop `name`'s IDX files and ExampleGen's examples of them, once."""
  drop_dir = work_dir / f'drop-{name}'
  train_start, train_stop, eval_start, eval_stop = DROPS[name]
  if not drop_dir.is_dir():
    drop_dir.mkdir(parents=True)
    for prefix, start, stop in (('train', train_start, train_stop),
                                ('t10k', eval_start, eval_stop)):
      images, labels = recording.read_mnist(prefix, start, stop)
      idx.write_idx(str(drop_dir / f'{prefix}-images-idx3-ubyte.gz'), images)
      idx.write_idx(str(drop_dir / f'{prefix}-labels-idx1-ubyte.gz'), labels)
  return recipes.ensure_examples(work_dir / f'examples-{name}', drop_dir)


def run_one(kind: str, seed: int, work_dir: pathlib.Path,
            overrides: Dict[str, Any]) -> Dict[str, Any]:
  """One training: `kind` MODEL_A (on A), SCRATCH, WARM or CURVE (on B)."""
  examples = ensure_drop(work_dir, 'a' if kind == MODEL_A else 'b')
  hp = vae_lib.Hyperparameters(**{**overrides, 'seed': seed})
  warm_start_dir = None
  if kind in (WARM, CURVE):
    warm_start_dir = export.find_warm_start_dir(str(work_dir / MODEL_A))
  timer = recording.EpochTimer()
  keeper = recipes.WeightsPerEpoch()
  with tempfile.TemporaryDirectory(prefix='nightly-') as tmp:
    start = time.perf_counter()
    vae, history, stopping = train_lib.train(
        hp, str(examples / 'Split-train' / '*'), os.path.join(tmp, 'logs'),
        warm_start_dir=warm_start_dir,
        callbacks=[timer] + ([keeper] if kind == CURVE else []), verbose=0,
        resume_dir=os.path.join(tmp, 'resume'))
    train_seconds = time.perf_counter() - start
    model_dir = export.export_model(
        vae, hp, str(work_dir / MODEL_A / 'Format-Serving') if kind == MODEL_A
        else os.path.join(tmp, 'model', 'Format-Serving'))
    held_out = recipes.score(metrics.load_trainer_model(model_dir), examples,
                             seed)
  result = {
      'kind': kind, 'seed': seed, 'hyperparameters': hp.to_dict(),
      'held_out': held_out, 'train_seconds': round(train_seconds, 2),
      'epoch_seconds': [round(s, 2) for s in timer.seconds],
      'val_loss': [round(v, 3) for v in history.history['val_loss']],
      'stopping': stopping.to_dict(),
  }
  if kind == CURVE:
    result['held_out_neg_elbo_per_epoch'] = recipes.score_per_epoch(
        keeper, hp, examples)
  return result


def _child(kind: str, seed: int, args: argparse.Namespace,
           overrides: Dict[str, Any]) -> Dict[str, Any]:
  """Runs one training in a fresh Python process."""
  result = recording.run_child(
      'benchmarks.nightly', {'kind': kind, 'seed': seed,
                             'overrides': overrides},
      ['--work-dir', str(args.work_dir)], f'{kind} seed {seed}')
  logger.info('Done %s seed %d: held-out -ELBO %.2f, %d epochs, %.0f s',
              kind, seed, result['held_out']['neg_elbo'],
              result['stopping']['epochs_run'], result['train_seconds'])
  return result


def simulate(curve: Dict[str, Any], patience: int,
             min_improvement: float) -> Dict[str, Any]:
  """What early stopping with these settings would have done on a CURVE
  run: epochs run, held-out -ELBO of the weights kept, training seconds
  (the run's set-up, plus its epochs up to the stop)."""
  losses = curve['val_loss']
  for epochs in range(1, len(losses) + 1):
    rule = early_stopping.decide(losses[:epochs], patience, min_improvement)
    if rule['stop']:
      break
  setup = curve['train_seconds'] - sum(curve['epoch_seconds'])
  return {'epochs_run': epochs, 'stopped': rule['stop'],
          'held_out_neg_elbo':
              curve['held_out_neg_elbo_per_epoch'][rule['best_epoch']],
          'train_seconds': round(setup + sum(curve['epoch_seconds'][:epochs]),
                                 1)}


def calibration(curves: Sequence[Dict[str, Any]],
                scratch: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """`simulate` over a grid of settings, against the from-scratch runs."""
  scratch_elbo = statistics.mean(r['held_out']['neg_elbo'] for r in scratch)
  scratch_seconds = statistics.mean(r['train_seconds'] for r in scratch)
  grid = []
  for patience in (1, 2, 3, 4):
    for min_improvement in (0.0, 0.05, 0.1, 0.2, 0.5):
      runs = [simulate(c, patience, min_improvement) for c in curves]
      elbo = statistics.mean(r['held_out_neg_elbo'] for r in runs)
      seconds = statistics.mean(r['train_seconds'] for r in runs)
      grid.append({
          'patience': patience, 'min_improvement': min_improvement,
          'held_out_neg_elbo_mean': round(elbo, 3),
          'vs_scratch_nats': round(elbo - scratch_elbo, 3),
          'epochs_run': [r['epochs_run'] for r in runs],
          'time_share_of_scratch': round(seconds / scratch_seconds, 3),
          'meets_target': (elbo <= scratch_elbo + TOLERANCE_NATS and
                           seconds <= TIME_SHARE * scratch_seconds)})
  return grid


def summarize(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """Per kind of B run: held-out -ELBO, training time and epochs; and the
  nightly target."""
  summary: Dict[str, Any] = {}
  for kind in (SCRATCH, WARM):
    mine = [r for r in runs if r['kind'] == kind]
    if mine:
      summary[kind] = {
          'held_out_neg_elbo': recording.spread([r['held_out']['neg_elbo']
                                        for r in mine]),
          'train_seconds': recording.spread([r['train_seconds'] for r in mine]),
          'epochs_run': [r['stopping']['epochs_run'] for r in mine],
          'seeds': [r['seed'] for r in mine]}
  if SCRATCH in summary and WARM in summary:
    scratch, warm = summary[SCRATCH], summary[WARM]
    nats = warm['held_out_neg_elbo']['mean'] - scratch['held_out_neg_elbo'][
        'mean']
    share = warm['train_seconds']['mean'] / scratch['train_seconds']['mean']
    summary['target'] = {
        'warm_minus_scratch_nats': round(nats, 3),
        'time_share_of_scratch': round(share, 3),
        'tolerance_nats': TOLERANCE_NATS, 'time_share_allowed': TIME_SHARE,
        'met': nats <= TOLERANCE_NATS and share <= TIME_SHARE}
  return summary


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  lines = [f'### `{result["run_name"]}`: nightly retrain on drop B', '',
           *recording.header_lines(result), '']
  rows = []
  for kind in (SCRATCH, WARM):
    s = result['summary'].get(kind)
    if s:
      e, t = s['held_out_neg_elbo'], s['train_seconds']
      rows.append((kind, ', '.join(map(str, s['seeds'])),
                   f"{e['mean']:.2f} ({e['min']:.2f}-{e['max']:.2f})",
                   f"{t['mean']:.0f} s ({t['min']:.0f}-{t['max']:.0f})",
                   ', '.join(map(str, s['epochs_run']))))
  lines += recording.table(('Run on B', 'Seeds', 'Held-out -ELBO mean '
                            '(min-max)', 'Training time mean (min-max)',
                            'Epochs'), rows)
  target = result['summary'].get('target')
  if target:
    lines += ['', 'Warm minus scratch: '
              f"{target['warm_minus_scratch_nats']:+.2f} nats (allowed "
              f"+{TOLERANCE_NATS}); time share "
              f"{target['time_share_of_scratch']:.0%} (allowed "
              f"{TIME_SHARE:.0%}): {'met' if target['met'] else 'NOT met'}."]
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  defaults = vae_lib.Hyperparameters()
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3])
  parser.add_argument('--epochs', type=int, default=defaults.epochs,
                      help='epochs from scratch, and the most warm-started')
  parser.add_argument('--patience', type=int, default=defaults.patience)
  parser.add_argument('--min-improvement', type=float,
                      default=defaults.min_improvement)
  parser.add_argument('--kinds', default=f'{SCRATCH},{WARM}',
                      help=f'the runs on B per seed, in order: {SCRATCH}, '
                      f'{WARM}, {CURVE} (a warm start that never stops, '
                      'scored after every epoch, for calibration)')
  parser.add_argument('--curve-epochs', type=int, default=10)
  parser.add_argument('--calibration-from', type=pathlib.Path, action='append',
                      default=[], help='result files whose curve runs to '
                      'calibrate with too (against this run\'s scratch runs)')
  parser.add_argument('--tag', default='')
  parser.add_argument('--work-dir', type=pathlib.Path,
                      default=pathlib.Path(tempfile.gettempdir()) /
                      'mnist-vae-nightly')
  parser.add_argument('--results-dir', default=str(recording.RESULTS_DIR))
  parser.add_argument('--child', help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  if args.child:
    child = json.loads(args.child)
    result = run_one(child['kind'], child['seed'], args.work_dir,
                     child['overrides'])
    with open(child['out'], 'w') as f:
      json.dump(result, f)
    return result
  now = datetime.datetime.now(datetime.timezone.utc)
  for name in DROPS:
    ensure_drop(args.work_dir, name)
  scratch = {'epochs': args.epochs}
  warm = {'epochs': args.epochs, 'patience': args.patience,
          'min_improvement': args.min_improvement}
  model_a = None
  if not (args.work_dir / MODEL_A / 'Format-Serving').is_dir():
    model_a = _child(MODEL_A, 0, args, scratch)
  overrides = {SCRATCH: scratch, WARM: warm, CURVE: {
      'epochs': args.curve_epochs, 'patience': args.curve_epochs,
      'min_improvement': 0.0}}
  runs = []
  load_before = os.getloadavg()
  for seed in args.seeds:
    for kind in args.kinds.split(','):
      runs.append(_child(kind, seed, args, overrides[kind]))
  result = {
      **recording.result_header(
          'benchmarks.nightly', recording.run_name('nightly', now, args.tag),
          now, argv),
      'drops': DROPS, 'model_a': model_a,
      'load_average_1min': {'start': load_before[0],
                            'end': os.getloadavg()[0]},
      'scorer': 'components.vae_evaluator.metrics.evaluate on B\'s 5,000 '
                'eval images, seeded by the training seed',
      'summary': summarize(runs), 'runs': runs,
  }
  curves = [r for r in runs if r['kind'] == CURVE]
  for path in args.calibration_from:
    with open(path) as f:
      curves += [r for r in json.load(f)['runs'] if r['kind'] == CURVE]
  if curves and any(r['kind'] == SCRATCH for r in runs):
    result['calibration'] = calibration(
        curves, [r for r in runs if r['kind'] == SCRATCH])
  return recording.report(result, args.results_dir, markdown_lines(result))


if __name__ == '__main__':
  recording.configure_logging()
  main()
