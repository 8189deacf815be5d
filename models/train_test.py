"""train(): a run that dies continues after its last finished epoch."""

import keras
import numpy as np
import pytest

from models import train as train_lib
from models import vae as vae_lib


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
  eval_files = str(examples_dir / 'Split-eval' / '*')
  resume_dir = tmp_path / 'resume'
  first = _Record(die_at=2)
  with pytest.raises(KeyboardInterrupt):
    train_lib.train(hp, train_files, eval_files, str(tmp_path / 'run1'),
                    callbacks=[first], verbose=0, resume_dir=str(resume_dir))
  assert first.started == [0, 1]

  second = _Record()
  _, history = train_lib.train(
      hp, train_files, eval_files, str(tmp_path / 'run2'), callbacks=[second],
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
