"""train(): a run that dies continues after its last finished epoch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import train as train_lib
from models import vae as vae_lib

# Runs executors, Beam or training on real data: the full suite's tier.
pytestmark = pytest.mark.slow


class _Record(keras.callbacks.Callback):
  """Records the weights after each epoch and at the start of training, and
  the epochs started; raises (as a kill would stop it) when `die_at` begins."""

  def __init__(self, die_at=None):
    super().__init__()
    self.die_at = die_at
    self.after_epoch = {}
    self.at_start = None
    self.started = []

  def on_train_begin(self, logs=None):
    self.at_start = [w.copy() for w in self.model.get_weights()]

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.die_at:
      raise KeyboardInterrupt(f'killed at epoch {epoch}')
    self.started.append(epoch)

  def on_epoch_end(self, epoch, logs=None):
    self.after_epoch[epoch] = [w.copy() for w in self.model.get_weights()]


def test_training_resumes_after_the_last_finished_epoch(examples_dir,
                                                        tmp_path):
  hp = vae_lib.Hyperparameters(epochs=4, batch_size=64)
  train_files = str(examples_dir / 'Split-train' / '*')
  resume_dir = tmp_path / 'resume'
  first = _Record(die_at=2)
  with pytest.raises(KeyboardInterrupt):
    train_lib.train(hp, train_files, str(tmp_path / 'run1'),
                    callbacks=[first], verbose=0, resume_dir=str(resume_dir))
  assert first.started == [0, 1]

  second = _Record()
  _, history, _ = train_lib.train(
      hp, train_files, str(tmp_path / 'run2'), callbacks=[second],
      verbose=0, resume_dir=str(resume_dir))
  # Epochs 3 and 4 only, from the weights the first run had after epoch 2.
  assert second.started == [2, 3]
  assert history.epoch == [2, 3]
  for restored, checkpointed in zip(second.at_start, first.after_epoch[1]):
    np.testing.assert_array_equal(restored, checkpointed)
  # The losses of all four epochs, beside the TensorBoard logs.
  rows = (tmp_path / 'run2' / train_lib.HISTORY_FILE).read_text().split()
  assert rows[0].startswith('epoch,')
  assert [row.split(',')[0] for row in rows[1:]] == ['0', '1', '2', '3']
  assert not resume_dir.exists()


@pytest.mark.parametrize('logger_class', [keras.callbacks.CSVLogger,
                                          train_lib.HistoryLogger])
def test_history_logger_writes_to_remote_paths(logger_class):
  """ram:// stands for gs:// and s3://: Keras writes through a GFile."""
  path = f'ram://history-{logger_class.__name__}/history.csv'
  logger = logger_class(path, append=True)
  logger.set_model(keras.Sequential())
  logger.on_train_begin()
  logger.on_epoch_end(0, {'loss': 2.5})
  logger.on_epoch_end(1, {'loss': 1.5})
  if logger_class is keras.callbacks.CSVLogger:
    # The Keras 3 fault HistoryLogger exists for.
    with pytest.raises(AttributeError, match='closed'):
      logger.on_train_end()
    return
  logger.on_train_end()
  with tf.io.gfile.GFile(path) as f:
    rows = [row.split(',')[:2] for row in f.read().split()]
  assert rows == [['epoch', 'loss'], ['0', '2.5'], ['1', '1.5']]
