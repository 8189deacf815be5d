"""Early stopping on the validation carve-out, with the best epoch's weights.

A warm-started training (and, with `early_stop_from_scratch`, any training)
runs until the validation -ELBO (`val_loss`, the carve-out of the train
split; never the eval split) has not improved by at least `min_improvement`
nats for `patience` epochs in a row, and at most `epochs` epochs. It then
keeps the weights of the epoch with the lowest validation -ELBO.

`decide` is the rule, on the list of losses so far; `EarlyStopping` is the
Keras callback that applies it after every epoch. Its state (the losses and
the best weights) is kept in the resume directory, so that a training
killed and resumed (models/train.py) stops where an uninterrupted one would.
"""

import dataclasses
import json
import logging
import math
import os
from typing import Any, Dict, List, Optional, Sequence

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

MONITOR = 'val_loss'
STATE_FILE = 'early_stopping.json'
BEST_WEIGHTS_FILE = 'best.weights.h5'
# Why a training ended (`Stopping.reason`).
PATIENCE_RAN_OUT = 'no improvement'
ALL_EPOCHS = 'all epochs'
NOT_MONITORED = 'early stopping off'


@dataclasses.dataclass(frozen=True)
class Stopping:
  """How a training ended: what the run summary and the report show."""
  epochs_run: int  # epochs trained, 1..max_epochs
  max_epochs: int
  reason: str  # PATIENCE_RAN_OUT, ALL_EPOCHS or NOT_MONITORED
  best_epoch: Optional[int] = None  # 0-based; its weights are the model's
  best_val_loss: Optional[float] = None
  patience: Optional[int] = None
  min_improvement: Optional[float] = None

  @property
  def stopped_early(self) -> bool:
    return self.reason == PATIENCE_RAN_OUT

  def to_dict(self) -> Dict[str, Any]:
    return {**dataclasses.asdict(self), 'stopped_early': self.stopped_early}

  @classmethod
  def from_dict(cls, record: Dict[str, Any]) -> 'Stopping':
    """From `to_dict()`'s output (e.g. the training history's)."""
    return cls(**{field.name: record[field.name]
                  for field in dataclasses.fields(cls)})

  def describe(self) -> str:
    """One sentence for the log and the report."""
    if self.reason == NOT_MONITORED:
      plural = 's' if self.epochs_run != 1 else ''
      return (f'{self.epochs_run} epoch{plural}, all of them (early stopping '
              'off).')
    best = (f'the weights of epoch {self.best_epoch + 1} (validation -ELBO '
            f'{self.best_val_loss:.2f}) are the model')
    if self.stopped_early:
      return (f'{self.epochs_run} of at most {self.max_epochs} epochs: '
              f'stopped, as the validation -ELBO had not improved by '
              f'{self.min_improvement:g} nats for {self.patience} epochs; '
              f'{best}.')
    return (f'{self.epochs_run} of {self.max_epochs} epochs: the validation '
            f'-ELBO was still improving; {best}.')


def decide(losses: Sequence[float], patience: int,
           min_improvement: float) -> Dict[str, Any]:
  """The rule, after the epochs whose validation losses are `losses`.

  An epoch improves if its loss is below the last improving epoch's by more
  than `min_improvement` (the first epoch always does); training stops once
  `patience` epochs in a row have not. The best epoch is the one with the
  lowest loss (the first of equals), improving or not.

  Returns:
    {'stop': bool, 'best_epoch': int (0-based), 'since_improvement': int}.

  Raises:
    ValueError: no losses, or a loss that is not finite.
  """
  if not losses:
    raise ValueError('early stopping needs the loss of at least one epoch')
  bad = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
  if bad:
    raise ValueError(f'validation loss of epoch {bad[0] + 1} is {losses[bad[0]]}')
  reference, since = losses[0], 0
  for loss in losses[1:]:
    if loss < reference - min_improvement:
      reference, since = loss, 0
    else:
      since += 1
  best = min(range(len(losses)), key=lambda i: (losses[i], i))
  return {'stop': since >= patience, 'best_epoch': best,
          'since_improvement': since}


class EarlyStopping(keras.callbacks.Callback):
  """Applies `decide` after every epoch; restores the best weights at the
  end of training.

  Args:
    patience, min_improvement: as in `decide`.
    max_epochs: the most epochs the training may run (for `stopping`).
    state_dir: where the losses and the best weights are kept, also between
      attempts of one training (models/train.py passes the resume
      directory).

  After training, `stopping` says how it ended.
  """

  def __init__(self, patience: int, min_improvement: float, max_epochs: int,
               state_dir: str):
    super().__init__()
    self.patience = patience
    self.min_improvement = min_improvement
    self.max_epochs = max_epochs
    self.state_dir = state_dir
    self.losses: List[float] = []
    self.stopping: Optional[Stopping] = None

  def _path(self, name: str) -> str:
    return os.path.join(self.state_dir, name)

  def on_train_begin(self, logs=None):
    tf.io.gfile.makedirs(self.state_dir)
    if tf.io.gfile.exists(self._path(STATE_FILE)):
      with tf.io.gfile.GFile(self._path(STATE_FILE)) as f:
        self.losses = json.load(f)['losses']
      logger.info('Early stopping resumes after %d epochs', len(self.losses))

  def on_epoch_end(self, epoch, logs=None):
    loss = (logs or {}).get(MONITOR)
    if loss is None:
      raise ValueError(f'early stopping needs {MONITOR!r}, the validation '
                       'carve-out\'s -ELBO: is validation_fraction 0?')
    # A resumed attempt may repeat the epoch it was killed in.
    self.losses = self.losses[:epoch] + [float(loss)]
    rule = decide(self.losses, self.patience, self.min_improvement)
    if rule['best_epoch'] == epoch:
      self.model.save_weights(self._path(BEST_WEIGHTS_FILE))
    with tf.io.gfile.GFile(self._path(STATE_FILE), 'w') as f:
      json.dump({'losses': self.losses}, f)
    if rule['stop']:
      logger.info('Epoch %d: validation -ELBO not improved by %g nats for %d '
                  'epochs; stopping', epoch + 1, self.min_improvement,
                  self.patience)
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    if not self.losses:
      return
    rule = decide(self.losses, self.patience, self.min_improvement)
    best = rule['best_epoch']
    if best != len(self.losses) - 1:
      self.model.load_weights(self._path(BEST_WEIGHTS_FILE))
    self.stopping = Stopping(
        epochs_run=len(self.losses), max_epochs=self.max_epochs,
        reason=PATIENCE_RAN_OUT if rule['stop'] else ALL_EPOCHS,
        best_epoch=best, best_val_loss=self.losses[best],
        patience=self.patience, min_improvement=self.min_improvement)
    logger.info('Training: %s', self.stopping.describe())
