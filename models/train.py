"""Trains the VAE on ExampleGen's TFRecords; no TFX needed."""

import logging
from typing import List, Optional, Sequence, Tuple

import keras

from models import data
from models import export
from models import vae as vae_lib

logger = logging.getLogger(__name__)


class KlWarmUp(keras.callbacks.Callback):
  """Sets the VAE's KL weight at the start of each epoch (KL warm-up)."""

  def __init__(self, hp: vae_lib.Hyperparameters):
    super().__init__()
    self._hp = hp

  def on_epoch_begin(self, epoch, logs=None):
    self.model.kl_weight.assign(self._hp.kl_weight_at(epoch))


def make_callbacks(hp: vae_lib.Hyperparameters,
                   log_dir: str) -> List[keras.callbacks.Callback]:
  """TensorBoard, TerminateOnNaN and the optional schedules of `hp`."""
  callbacks = [
      keras.callbacks.TensorBoard(log_dir=log_dir, profile_batch=0),
      keras.callbacks.TerminateOnNaN(),
  ]
  if hp.lr_schedule != 'constant':
    callbacks.append(keras.callbacks.LearningRateScheduler(
        lambda epoch, _: hp.learning_rate_at(epoch)))
  if hp.kl_warmup_epochs:
    callbacks.append(KlWarmUp(hp))
  return callbacks


def train(hp: vae_lib.Hyperparameters,
          train_files: data.FilePattern,
          eval_files: data.FilePattern,
          log_dir: str,
          warm_start_dir: Optional[str] = None,
          *,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          verbose: int = 2) -> Tuple[vae_lib.VAE, keras.callbacks.History]:
  """Trains a VAE, validating on `eval_files` after every epoch.

  Args:
    hp: the hyperparameters.
    train_files: glob or list of files/globs of the training TFRecords.
    eval_files: same, for validation.
    log_dir: TensorBoard logs go here.
    warm_start_dir: a previous model directory (or its Format-Serving dir) to
      start from instead of fresh weights; see `export.load_warm_start`.
    callbacks: extra Keras callbacks.
    verbose: Keras fit verbosity (2: one line per epoch).

  Returns:
    (the trained VAE, the Keras History of losses per epoch).
  """
  keras.utils.set_random_seed(hp.seed)
  train_ds, steps_per_epoch = data.make_training_dataset(
      train_files, hp.batch_size, seed=hp.seed)
  eval_ds = data.make_dataset(eval_files, hp.batch_size, shuffle=False)
  vae = vae_lib.build_vae(hp)
  if warm_start_dir:
    export.load_warm_start(vae, warm_start_dir)
  vae.kl_weight.assign(hp.kl_weight_at(0))
  logger.info('Training %s', hp)
  history = vae.fit(
      train_ds,
      steps_per_epoch=steps_per_epoch,
      validation_data=eval_ds,
      epochs=hp.epochs,
      callbacks=make_callbacks(hp, log_dir) + list(callbacks),
      verbose=verbose)
  return vae, history
