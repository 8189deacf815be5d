"""Benchmark: training recipes over seeds, scored held out by the evaluator.

Each run trains one recipe with one seed on ExampleGen's 60,000-image
`Split-train`, in a child process of its own, timed; the model, exported as
the Trainer exports it, is scored on the 10,000 `Split-eval` images by the
VaeEvaluator's scorer (`metrics.evaluate`): the -ELBO `metrics.json` would
show. `seed_script` is the seed's script as it was (benchmarks/seed.py);
every other recipe is `models.train.train` with Hyperparameters overrides
(RECIPES, or `--recipe NAME:key=value,...`). Runs interleave by seed; keep
`--jobs 1` when times matter. `--curve` also scores the weights after every
epoch, and `--reference A --candidate B` reports when B first reaches A's
final -ELBO. Figures: BENCHMARKS.md, "Quality".

  .venv/bin/python -m benchmarks.recipes --recipes today,one_cycle_b \\
      --seeds 1 2 3 --curve --reference today --candidate one_cycle_b
"""

import argparse
import concurrent.futures
import dataclasses
import json
import logging
import os
import pathlib
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks import recording
from benchmarks import seed as seed_lib
from components import config as config_lib
from components.vae_evaluator import executor as evaluator_executor
from components.vae_evaluator import metrics
from models import data
from models import export
from models import train as train_lib
from models import vae as vae_lib

logger = logging.getLogger(__name__)

SEED_SCRIPT = 'seed_script'
TARGET_NEGATIVE_ELBO = 148.0
GOAL_NEGATIVE_ELBO = 145.0

# Named recipes: overrides of models.vae.Hyperparameters (seed aside).
# `today` is the recipe before this study (the seed's, in the Trainer);
# the others are `today` with changes, except `default`, whatever
# Hyperparameters() is now.
TODAY = {'lr_schedule': 'constant', 'learning_rate': 1e-3, 'batch_size': 128,
         'epochs': 30, 'lr_warmup_fraction': 0.0, 'kl_warmup_epochs': 0,
         'kl_cycles': 1, 'ema_momentum': 0.0, 'steps_per_execution': 1,
         'validation_fraction': 0.0, 'precision': 'auto'}
RECIPES: Dict[str, Optional[Dict[str, Any]]] = {
    SEED_SCRIPT: None,
    'today': TODAY,
    'default': {},
    'ema': {**TODAY, 'ema_momentum': 0.999},
    'one_cycle_3e-3': {**TODAY, 'lr_schedule': 'cosine', 'learning_rate': 3e-3,
                       'lr_warmup_fraction': 2 / 30},
    'one_cycle_3e-3_ema': {**TODAY, 'lr_schedule': 'cosine',
                           'learning_rate': 3e-3, 'lr_warmup_fraction': 2 / 30,
                           'ema_momentum': 0.999},
    'kl_cyclical_4x4': {**TODAY, 'kl_warmup_epochs': 4, 'kl_cycles': 4},
    'batch_256_2e-3': {**TODAY, 'batch_size': 256, 'learning_rate': 2e-3},
    # B of the side-by-side run of 2026-11-25 (then the default).
    'one_cycle_b': {**TODAY, 'lr_schedule': 'cosine', 'learning_rate': 3e-3,
                    'lr_warmup_fraction': 0.07, 'steps_per_execution': 7,
                    'validation_fraction': 0.02},
    # Issue #25's candidate against early instability, on today's default:
    # one-cycle with a lower peak and a longer warm-up (3 of 30 epochs), the
    # gradients' global norm clipped at 250 (the 90th percentile of a first
    # epoch's norms is about 370, of the third's about 200), and the KL
    # weight ramped up over the first epoch.
    'stable_one_cycle': {'lr_schedule': 'cosine', 'learning_rate': 2e-3,
                         'lr_warmup_fraction': 0.1,
                         'gradient_clip_norm': 250.0, 'kl_warmup_epochs': 1},
}


class WeightsPerEpoch(keras.callbacks.Callback):
  """Keeps the weights a model would be exported with after every epoch:
  the trainable weights' moving averages where the optimizer keeps them."""

  def __init__(self):
    super().__init__()
    self.weights: List[List[np.ndarray]] = []

  def on_epoch_end(self, epoch, logs=None):
    optimizer = self.model.optimizer
    if getattr(optimizer, 'use_ema', False):
      averages = {id(v): a for v, a in zip(
          optimizer._trainable_variables,  # pylint: disable=protected-access
          optimizer._model_variables_moving_average)}  # pylint: disable=protected-access
      trainable = [averages[id(v)].numpy() for v in
                   self.model.trainable_weights]
    else:
      trainable = [v.numpy() for v in self.model.trainable_weights]
    self.weights.append(trainable)


@dataclasses.dataclass
class KerasScorable:
  """A Keras VAE with the `encode`/`decode` of an exported one, so that the
  evaluator's scorer measures it the same way."""
  vae: vae_lib.VAE

  def encode(self, images):
    z_mean, z_log_var, _ = self.vae.encoder(images, training=False)
    return z_mean, z_log_var

  def decode(self, z):
    return self.vae.decoder(z, training=False)


def eval_dataset(examples_dir: pathlib.Path) -> tf.data.Dataset:
  """The held-out split, batched as the VaeEvaluator batches it."""
  k = config_lib.EvaluationConfig().iwae_samples
  return data.make_dataset(
      str(examples_dir / 'Split-eval' / '*'),
      max(1, evaluator_executor.SAMPLES_PER_CALL // k), shuffle=False,
      with_labels=True)


def score(model, examples_dir: pathlib.Path, seed: int) -> Dict[str, float]:
  """The evaluator's metrics of `model` on the held-out split."""
  evaluation = metrics.evaluate(model, eval_dataset(examples_dir),
                                config_lib.EvaluationConfig().iwae_samples,
                                seed)
  return {key: float(value) for key, value in evaluation.metrics.items()}


def train_seed_script(seed: int, epochs: int, callbacks) -> vae_lib.VAE:
  """The seed's script, on the train images; its weights in our VAE."""
  keras.utils.set_random_seed(seed)
  seed_vae = seed_lib.SeedVAE(seed_lib.seed_encoder(), seed_lib.seed_decoder())
  seed_vae.compile(optimizer=keras.optimizers.Adam())
  seed_vae.fit(seed_lib.seed_digits(('train',)), epochs=epochs, batch_size=128,
               callbacks=callbacks, verbose=0)
  ours = vae_lib.build_uncompiled_vae(2)
  ours.encoder.set_weights(seed_vae.encoder.get_weights())
  ours.decoder.set_weights(seed_vae.decoder.get_weights())
  return ours


def run_one(recipe: str, overrides: Optional[Dict[str, Any]], seed: int,
            examples_dir: pathlib.Path, curve: bool,
            epochs: Optional[int] = None) -> Dict[str, Any]:
  """Trains one recipe with one seed; times it and scores it held out."""
  timer = recording.EpochTimer()
  keeper = WeightsPerEpoch()
  callbacks = [timer] + ([keeper] if curve else [])
  with tempfile.TemporaryDirectory(prefix='recipe-') as tmp:
    if overrides is None:
      hp = vae_lib.Hyperparameters(seed=seed, precision='float32',
                                   epochs=epochs or 30)
      start = time.perf_counter()
      vae = train_seed_script(seed, hp.epochs, callbacks)
      train_seconds = time.perf_counter() - start
      final_train = None
    else:
      hp = vae_lib.Hyperparameters(**{
          **overrides, 'seed': seed, **({'epochs': epochs} if epochs else {})})
      start = time.perf_counter()
      vae, history, _ = train_lib.train(
          hp, str(examples_dir / 'Split-train' / '*'),
          os.path.join(tmp, 'logs'), callbacks=callbacks, verbose=0)
      train_seconds = time.perf_counter() - start
      final_train = {k: float(v[-1]) for k, v in history.history.items()}
    model_dir = export.export_model(vae, hp,
                                    os.path.join(tmp, 'model', 'Format-Serving'))
    held_out = score(metrics.load_trainer_model(model_dir), examples_dir,
                     hp.seed)
  result = {
      'recipe': recipe, 'seed': seed, 'hyperparameters': hp.to_dict(),
      'held_out': held_out, 'train_seconds': round(train_seconds, 2),
      'epoch_seconds': [round(s, 2) for s in timer.seconds],
      'final_training_metrics': final_train,
  }
  if curve:
    result['held_out_neg_elbo_per_epoch'] = score_per_epoch(
        keeper, hp, examples_dir)
  return result


def score_per_epoch(keeper: WeightsPerEpoch, hp: vae_lib.Hyperparameters,
                    examples_dir: pathlib.Path) -> List[float]:
  """The held-out -ELBO of the weights `keeper` kept after every epoch."""
  per_epoch = []
  for weights in keeper.weights:
    copy = vae_lib.build_uncompiled_vae(hp.latent_dim)
    for variable, value in zip(copy.trainable_weights, weights):
      variable.assign(value)
    per_epoch.append(round(score(KerasScorable(copy), examples_dir,
                                 hp.seed)['neg_elbo'], 3))
  return per_epoch


def ensure_examples(work_dir: pathlib.Path,
                    mnist_dir: pathlib.Path = recording.MNIST_DIR
                    ) -> pathlib.Path:
  """ExampleGen's output for the MNIST IDX files in `mnist_dir` (default:
  the shipped ones), written once into work_dir."""
  examples = work_dir / 'examples'
  if (examples / 'Split-eval').is_dir() and (examples / 'Split-train').is_dir():
    return examples
  # Imported here: TFX and Beam are only needed to write the examples.
  from tfx.dsl.components.base import base_beam_executor  # pylint: disable=g-import-not-at-top
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
  from tfx.types import standard_component_specs  # pylint: disable=g-import-not-at-top
  from tfx.utils import proto_utils  # pylint: disable=g-import-not-at-top
  import local_runner  # pylint: disable=g-import-not-at-top
  from components.example_gen import component as example_gen_lib  # pylint: disable=g-import-not-at-top
  from components.example_gen import idx_executor  # pylint: disable=g-import-not-at-top
  logger.info('Writing the MNIST examples to %s', examples)
  artifact = standard_artifacts.Examples()
  artifact.uri = str(examples)
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=local_runner.default_beam_args(),
      tmp_dir=str(work_dir / 'examples-tmp'))
  # What the component hands its executor: protos as JSON, unset ones left out.
  properties = example_gen_lib.IdxExampleGen(
      input_base=str(mnist_dir)).exec_properties
  idx_executor.Executor(context).Do(
      {}, {standard_component_specs.EXAMPLES_KEY: [artifact]},
      {key: proto_utils.proto_to_json(value) if hasattr(value, 'DESCRIPTOR')
       else value for key, value in properties.items() if value is not None})
  return examples


def parse_recipe(text: str) -> Dict[str, Any]:
  """`NAME:key=value,key=value` -> {NAME: overrides} (values as JSON)."""
  name, _, pairs = text.partition(':')
  overrides = {}
  for pair in filter(None, pairs.split(',')):
    key, _, value = pair.partition('=')
    try:
      overrides[key] = json.loads(value)
    except json.JSONDecodeError:
      overrides[key] = value
  vae_lib.Hyperparameters.from_dict(overrides)  # Fails now if bad.
  return {name: overrides}


def _child(recipe: str, overrides, seed: int, args) -> Dict[str, Any]:
  """Runs one (recipe, seed) in a fresh Python process."""
  extra = ['--work-dir', str(args.work_dir)]
  if args.curve and args.candidate in (None, recipe):
    extra.append('--curve')
  if args.epochs:
    extra += ['--epochs', str(args.epochs)]
  result = recording.run_child(
      'benchmarks.recipes',
      {'recipe': recipe, 'overrides': overrides, 'seed': seed}, extra,
      f'{recipe} seed {seed}')
  logger.info('Done %s seed %d: held-out -ELBO %.2f, training %.0f s',
              recipe, seed, result['held_out']['neg_elbo'],
              result['train_seconds'])
  return result


def summarize(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """Per recipe: the held-out -ELBO and the training time over seeds."""
  summary = {}
  for recipe in dict.fromkeys(run['recipe'] for run in runs):
    mine = [run for run in runs if run['recipe'] == recipe]
    summary[recipe] = {
        'held_out_neg_elbo': recording.spread(
            [r['held_out']['neg_elbo'] for r in mine]),
        'train_seconds': recording.spread([r['train_seconds'] for r in mine]),
        'seeds': [r['seed'] for r in mine],
        'overrides': RECIPES.get(recipe, mine[0].get('overrides')),
    }
  return summary


def catch_up(runs: Sequence[Dict[str, Any]], reference: str,
             candidate: str) -> List[Dict[str, Any]]:
  """Per seed: when the candidate's held-out -ELBO first reaches the
  reference's final one (epoch, 1-based, and training seconds so far)."""
  finals = {r['seed']: r['held_out']['neg_elbo'] for r in runs
            if r['recipe'] == reference}
  out = []
  for run in runs:
    if run['recipe'] != candidate or run['seed'] not in finals:
      continue
    curve = run.get('held_out_neg_elbo_per_epoch') or []
    target = finals[run['seed']]
    epoch = next((i + 1 for i, v in enumerate(curve) if v <= target), None)
    out.append({
        'seed': run['seed'], 'reference_final': round(target, 3),
        'epoch': epoch,
        'seconds': (round(sum(run['epoch_seconds'][:epoch]), 1)
                    if epoch else None),
        'candidate_final': round(run['held_out']['neg_elbo'], 3),
    })
  return out


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """A table of the recipes: held-out -ELBO and training time over seeds."""
  lines = [f'### `{result["run_name"]}`: training recipes over seeds, '
           'held out', '', *recording.header_lines(result), '',
           '| Recipe | Seeds | Held-out -ELBO mean (sd; min-max) | Training '
           'time mean (min-max) |', '| --- | --- | --- | --- |']
  for recipe, s in result['summary'].items():
    e, t = s['held_out_neg_elbo'], s['train_seconds']
    lines.append(
        f"| `{recipe}` | {', '.join(map(str, s['seeds']))} | "
        f"{e['mean']:.2f} ({e['sd']:.2f}; {e['min']:.2f}-{e['max']:.2f}) | "
        f"{t['mean']:.0f} s ({t['min']:.0f}-{t['max']:.0f}) |")
  if result.get('catch_up'):
    lines += ['', f"When `{result['candidate']}` first reaches "
              f"`{result['reference']}`'s final held-out -ELBO (same seed):", '',
              '| Seed | Reference final | Epoch | Training time by then | '
              'Candidate final |', '| --- | --- | --- | --- | --- |']
    for c in result['catch_up']:
      lines.append(f"| {c['seed']} | {c['reference_final']:.2f} | "
                   f"{c['epoch'] or 'never'} | "
                   f"{'%.0f s' % c['seconds'] if c['seconds'] else '-'} | "
                   f"{c['candidate_final']:.2f} |")
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = recording.parser(__doc__)
  parser.add_argument('--recipes', default='today,default',
                      help='comma-separated names of RECIPES (or --recipe)')
  parser.add_argument('--recipe', action='append', default=[],
                      help='NAME:key=value,... an ad-hoc recipe (repeatable)')
  parser.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3])
  parser.add_argument('--epochs', type=int,
                      help='override every recipe\'s epochs (smoke runs)')
  parser.add_argument('--jobs', type=int, default=1,
                      help='runs at once (1 for comparable times)')
  parser.add_argument('--curve', action='store_true',
                      help='score the weights after every epoch too (only '
                      "the candidate's, with --candidate)")
  parser.add_argument('--reference', help='recipe A of the catch-up epoch')
  parser.add_argument('--candidate', help='recipe B of the catch-up epoch')
  parser.add_argument('--work-dir', type=pathlib.Path,
                      default=pathlib.Path(tempfile.gettempdir()) /
                      'mnist-vae-recipes',
                      help='where the examples are written once')
  # One run in a child process: {recipe, overrides, seed, out} as JSON.
  parser.add_argument('--child', help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  if args.child:
    child = json.loads(args.child)
    result = run_one(child['recipe'], child['overrides'], child['seed'],
                     args.work_dir / 'examples', args.curve, args.epochs)
    with open(child['out'], 'w') as f:
      json.dump(result, f)
    return result
  recipes = {name: RECIPES[name] for name in filter(None,
                                                    args.recipes.split(','))}
  for text in args.recipe:
    recipes.update(parse_recipe(text))
  header = recording.result_header('benchmarks.recipes', args.tag, argv)
  ensure_examples(args.work_dir)
  order = [(recipe, seed) for seed in args.seeds for recipe in recipes]
  load_before = os.getloadavg()
  with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
    runs = list(pool.map(
        lambda rs: _child(rs[0], recipes[rs[0]], rs[1], args), order))
  for run in runs:
    run['overrides'] = recipes[run['recipe']]
  result = {
      **header,
      'jobs': args.jobs,
      'load_average_1min': {'start': load_before[0],
                            'end': os.getloadavg()[0]},
      'scorer': ('components.vae_evaluator.metrics.evaluate, k = '
                 f'{config_lib.EvaluationConfig().iwae_samples}, seeded by the '
                 'training seed, on the 10,000 Split-eval images'),
      'target_neg_elbo': TARGET_NEGATIVE_ELBO,
      'goal_neg_elbo': GOAL_NEGATIVE_ELBO,
      'summary': summarize(runs), 'runs': runs,
  }
  if args.reference and args.candidate:
    result.update(reference=args.reference, candidate=args.candidate,
                  catch_up=catch_up(runs, args.reference, args.candidate))
  return recording.report(result, args.results_dir, markdown_lines(result))


if __name__ == '__main__':
  recording.configure_logging()
  main()
