"""`run_fn` for the TFX (generic) Trainer: adapts FnArgs to `models.train`.

Wire it with `Trainer(module_file=...)` or `Trainer(run_fn='models.trainer.run_fn')`
and `custom_config={'hyperparameters': Hyperparameters(...).to_dict()}`.

The Trainer's `train_args.num_steps` / `eval_args.num_steps`
(`fn_args.train_steps`, `fn_args.eval_steps`) are ignored: training runs
`hyperparameters.epochs` full passes over the train split and validates on the
whole eval split after each epoch. `fn_args.hyperparameters` (a Tuner's
output) is ignored too.
"""

import logging

from tfx import v1 as tfx

from models import export
from models import train as train_lib
from models import vae as vae_lib

logger = logging.getLogger(__name__)

HYPERPARAMETERS_KEY = 'hyperparameters'


def hyperparameters_from_fn_args(
    fn_args: tfx.components.FnArgs) -> vae_lib.Hyperparameters:
  """`custom_config['hyperparameters']`, defaults for anything missing."""
  custom_config = fn_args.custom_config or {}
  return vae_lib.Hyperparameters.from_dict(
      custom_config.get(HYPERPARAMETERS_KEY))


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Trains the VAE and writes the model artifact (see `models.export`).

  Uses fn_args.train_files / eval_files (ExampleGen's GZIP TFRecords),
  model_run_dir (TensorBoard logs), serving_model_dir (the decoder; the
  encoder and warm-start files go beside it, in its parent) and base_model
  (a previous model's serving dir, or None: warm-starts from the weights in
  its parent).
  """
  hp = hyperparameters_from_fn_args(fn_args)
  if fn_args.train_steps or fn_args.eval_steps:
    logger.info('Ignoring train_steps=%s and eval_steps=%s: training runs %d '
                'full epochs', fn_args.train_steps, fn_args.eval_steps,
                hp.epochs)
  warm_start_dir = None
  if fn_args.base_model:
    warm_start_dir = export.find_warm_start_dir(fn_args.base_model)
    if warm_start_dir is None:
      raise FileNotFoundError(
          f'base_model {fn_args.base_model} has no warm-start weights '
          f'({export.WARM_START_WEIGHTS} in it or its parent)')
  vae, history = train_lib.train(
      hp, fn_args.train_files, fn_args.eval_files, fn_args.model_run_dir,
      warm_start_dir=warm_start_dir)
  logger.info('Final epoch: %s',
              {k: v[-1] for k, v in history.history.items()})
  model_dir = export.export_model(vae, hp, fn_args.serving_model_dir)
  logger.info('Model written to %s', model_dir)
