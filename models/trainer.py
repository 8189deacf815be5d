"""`run_fn` for the TFX (generic) Trainer: adapts FnArgs to `models.train`.

Wire it with `Trainer(module_file=...)` or `Trainer(run_fn='models.trainer.run_fn')`
and `custom_config={'hyperparameters': Hyperparameters(...).to_dict()}`.

The Trainer's `train_args.num_steps` / `eval_args.num_steps`
(`fn_args.train_steps`, `fn_args.eval_steps`) are ignored: training runs
`hyperparameters.epochs` full passes over the train split, less the validation
carve-out of `hyperparameters.validation_fraction` that it validates on after
each epoch; a warm-started one stops early on that carve-out
(models/early_stopping.py), and how training ended is written into the
training history. The eval split (`fn_args.eval_files`) is never read here: it is
the evaluator's held-out test set. `fn_args.hyperparameters` (a Tuner's
output) is ignored too.
"""

import hashlib
import json
import logging
import os
from typing import Optional

from tfx.components.trainer.fn_args_utils import FnArgs

from layouts import contracts
from layouts import model as model_layout
from layouts import serving as serving_layout
from models import export
from models import history as history_lib
from models import train as train_lib
from models import vae as vae_lib

logger = logging.getLogger(__name__)


def hyperparameters_from_fn_args(
    fn_args: FnArgs) -> vae_lib.Hyperparameters:
  """`custom_config['hyperparameters']`, defaults for anything missing."""
  custom_config = fn_args.custom_config or {}
  return vae_lib.Hyperparameters.from_dict(
      custom_config.get(contracts.TRAINER_HYPERPARAMETERS_KEY))


def warm_start_dir_from_fn_args(fn_args: FnArgs) -> Optional[str]:
  """The model directory to warm-start from, or None to start fresh.

  `fn_args.base_model` (a previous model's serving dir) wins; otherwise, with
  `custom_config['warm_start_serving_dir']`, the model currently served from
  that push destination (found at run time, so it also works where no Resolver
  can run, e.g. open-source Kubeflow Pipelines).

  Raises:
    FileNotFoundError: the given model has no warm-start weights.
  """
  candidates = []
  if fn_args.base_model:
    candidates.append(fn_args.base_model)
  else:
    serving_dir = (fn_args.custom_config or {}).get(
        contracts.WARM_START_SERVING_DIR_KEY)
    if serving_dir:
      version_dir = serving_layout.latest_version_dir(serving_dir)
      if version_dir is None:
        logger.info('Warm start: no model is served from %s yet; training '
                    'from scratch', serving_dir)
      else:
        # The version's own weights (or, for older versions, the model it
        # was pushed from while the pipeline root still has it).
        serving_layout.verify_version(version_dir)
        candidates.append(serving_layout.model_dir_of(version_dir))
  for path in candidates:
    warm_start_dir = export.find_warm_start_dir(path)
    if warm_start_dir is None:
      raise FileNotFoundError(
          f'{path} has no warm-start weights ({model_layout.WARM_START_WEIGHTS} in '
          'it or its parent)')
    return warm_start_dir
  return None


def resume_dir_from_fn_args(fn_args: FnArgs,
                            warm_start_dir: Optional[str]) -> str:
  """A directory shared by every attempt at the same training.

  TFX gives each execution its own model_run_dir, so a rerun after a crash
  would not find the first attempt's checkpoint there. This directory sits
  beside those (`<Trainer root>/resume/<key>`), keyed by everything that
  defines the training: its train files, hyperparameters, code fingerprint
  and warm-start model.
  """
  key = hashlib.sha256(json.dumps({
      'train_files': sorted(fn_args.train_files),
      'custom_config': fn_args.custom_config or {},
      'warm_start_dir': warm_start_dir,
  }, sort_keys=True).encode()).hexdigest()[:16]
  trainer_root = os.path.dirname(os.path.dirname(
      fn_args.model_run_dir.rstrip('/')))
  return os.path.join(trainer_root, 'resume', key)


def run_fn(fn_args: FnArgs) -> None:
  """Trains the VAE and writes the model artifact (see `models.export`).

  Uses fn_args.train_files (ExampleGen's GZIP TFRecords; eval_files are
  the evaluator's and are not read),
  model_run_dir (TensorBoard logs, and `training_history.json`: the losses
  per epoch, see `models.history`), serving_model_dir (the decoder; the
  encoder and warm-start files go beside it, in its parent) and base_model
  (a previous model's serving dir, or None: warm-starts from the weights in
  its parent).
  """
  hp = hyperparameters_from_fn_args(fn_args)
  if fn_args.train_steps or fn_args.eval_steps:
    logger.info('Ignoring train_steps=%s and eval_steps=%s: training runs %d '
                'full epochs', fn_args.train_steps, fn_args.eval_steps,
                hp.epochs)
  warm_start_dir = warm_start_dir_from_fn_args(fn_args)
  vae, history, stopping = train_lib.train(
      hp, fn_args.train_files, fn_args.model_run_dir,
      warm_start_dir=warm_start_dir,
      resume_dir=resume_dir_from_fn_args(fn_args, warm_start_dir))
  logger.info('Final epoch: %s',
              {k: v[-1] for k, v in history.history.items()})
  # Beside the TensorBoard logs, for the evaluator's report and the run
  # summary.
  history_lib.write_history(fn_args.model_run_dir, history, stopping)
  model_dir = export.export_model(vae, hp, fn_args.serving_model_dir)
  logger.info('Model written to %s', model_dir)
