"""Trains the VAE on ExampleGen's TFRecords; no TFX needed."""

import logging
import os
import tempfile
from typing import List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from models import data
from models import early_stopping
from models import export
from models import vae as vae_lib

logger = logging.getLogger(__name__)

# In a resume directory: Keras' BackupAndRestore checkpoint, and the losses
# of every epoch so far (appended, so a resumed run keeps the earlier ones).
CHECKPOINT_DIR = 'checkpoint'
HISTORY_FILE = 'history.csv'
EARLY_STOPPING_DIR = 'early_stopping'


class HistoryLogger(keras.callbacks.CSVLogger):
  """Keras' CSVLogger that also works on remote paths (gs://, s3://).

  For a path with `://` Keras writes through a TensorFlow GFile, and its
  `on_train_end` then asks that file for `.closed`, which GFile does not have
  (AttributeError after the last epoch). This one closes the file it opened.
  """

  def on_train_end(self, logs=None):
    if self.csv_file is not None:
      self.csv_file.close()
      self.csv_file = None
    self.writer = None


def make_callbacks(log_dir: str) -> List[keras.callbacks.Callback]:
  """TensorBoard and TerminateOnNaN (the schedules run inside the step)."""
  return [
      keras.callbacks.TensorBoard(log_dir=log_dir, profile_batch=0),
      keras.callbacks.TerminateOnNaN(),
  ]


def train(hp: vae_lib.Hyperparameters,
          train_files: data.FilePattern,
          log_dir: str,
          warm_start_dir: Optional[str] = None,
          *,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          verbose: int = 2,
          resume_dir: Optional[str] = None
          ) -> Tuple[vae_lib.VAE, keras.callbacks.History,
                     early_stopping.Stopping]:
  """Trains a VAE on the train split, validating on its carve-out.

  The validation set of every epoch is the `hp.validation_fraction` of
  `train_files` carved out by `data.in_validation_carve_out` (none when 0);
  the model trains on the rest. The eval split is not an argument: it
  belongs to the evaluator, and nothing here may choose by it.

  A warm-started training, and with `hp.early_stop_from_scratch` any, stops
  early on the validation -ELBO and keeps its best epoch's weights
  (models/early_stopping.py: `hp.patience`, `hp.min_improvement`, at most
  `hp.epochs` epochs).

  Args:
    hp: the hyperparameters.
    train_files: glob or list of files/globs of the training TFRecords.
    log_dir: TensorBoard logs go here.
    warm_start_dir: a previous model directory (or its Format-Serving dir) to
      start from instead of fresh weights; see `export.load_warm_start`.
    callbacks: extra Keras callbacks.
    verbose: Keras fit verbosity (2: one line per epoch).
    resume_dir: where to keep a checkpoint after every epoch (weights,
      optimizer state, epoch) and the losses of every epoch. If training
      dies, calling `train` again with the same directory continues after
      the last finished epoch and still trains `hp.epochs` epochs in all.
      After training, the losses go to `log_dir/history.csv` and the
      directory is removed.

  Returns:
    (the trained VAE, the Keras History of losses per epoch, how training
    ended).

  Raises:
    ValueError: a warm start without a validation carve-out to stop on.
  """
  stop_early = bool(warm_start_dir) or hp.early_stop_from_scratch
  if stop_early and not hp.validation_fraction:
    raise ValueError('a warm-started training stops early on the validation '
                     'carve-out, but validation_fraction is 0')
  keras.utils.set_random_seed(hp.seed)
  train_ds, steps_per_epoch = data.make_training_dataset(
      train_files, hp.batch_size, seed=hp.seed,
      validation_fraction=hp.validation_fraction)
  validation_ds = None
  if hp.validation_fraction:
    validation_ds = data.make_dataset(
        train_files, hp.batch_size, shuffle=False,
        validation_fraction=hp.validation_fraction, part='validation')
  vae = vae_lib.build_vae(hp, steps_per_epoch)
  if warm_start_dir:
    export.load_warm_start(vae, warm_start_dir)
  logger.info('Training %s', hp)
  resume = []
  if resume_dir:
    checkpoint = os.path.join(resume_dir, CHECKPOINT_DIR)
    if tf.io.gfile.exists(os.path.join(checkpoint, 'training_metadata.json')):
      logger.info('Resuming from the checkpoint in %s', checkpoint)
    tf.io.gfile.makedirs(resume_dir)
    # First, so that the restored epoch and weights are in place before the
    # other callbacks start.
    resume = [keras.callbacks.BackupAndRestore(checkpoint),
              HistoryLogger(os.path.join(resume_dir, HISTORY_FILE),
                            append=True)]
  stopper = []
  with tempfile.TemporaryDirectory(prefix='early-stopping-') as scratch:
    if stop_early:
      stopper = [early_stopping.EarlyStopping(
          hp.patience, hp.min_improvement, hp.epochs,
          os.path.join(resume_dir, EARLY_STOPPING_DIR) if resume_dir
          else scratch)]
    history = vae.fit(
        train_ds,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation_ds,
        epochs=hp.epochs,
        # The stopper last: it restores the best weights after the others.
        callbacks=(resume + make_callbacks(log_dir) + list(callbacks) +
                   stopper),
        verbose=verbose)
  stopping = (stopper[0].stopping if stopper else early_stopping.Stopping(
      epochs_run=hp.epochs, max_epochs=hp.epochs,
      reason=early_stopping.NOT_MONITORED))
  if resume_dir:
    tf.io.gfile.makedirs(log_dir)
    tf.io.gfile.copy(os.path.join(resume_dir, HISTORY_FILE),
                     os.path.join(log_dir, HISTORY_FILE), overwrite=True)
    tf.io.gfile.rmtree(resume_dir)
  return vae, history, stopping
