"""Early stopping: the rule, the callback on a tiny Keras model, and a
warm-started training through models.train that stops and keeps its best
epoch's weights."""

import json

import keras
import numpy as np
import pytest

from models import early_stopping
from models import export
from models import train as train_lib
from models import vae as vae_lib


@pytest.mark.parametrize('losses, patience, delta, stop, best, since', [
    ([5.0], 2, 0.1, False, 0, 0),
    ([5.0, 4.0, 3.0], 2, 0.1, False, 2, 0),
    # 4.95 falls by less than 0.1: no improvement, but the best loss.
    ([5.0, 4.95, 4.97], 2, 0.1, True, 1, 2),
    ([5.0, 4.95, 4.8, 4.85], 2, 0.1, False, 2, 1),
    ([5.0, 6.0, 7.0, 4.0], 3, 0.0, False, 3, 0),
    ([5.0, 6.0, 7.0, 8.0], 3, 0.0, True, 0, 3),
    # Equal losses: the first is the best, and none improves.
    ([3.0, 3.0], 1, 0.0, True, 0, 1),
])
def test_decide(losses, patience, delta, stop, best, since):
  assert early_stopping.decide(losses, patience, delta) == {
      'stop': stop, 'best_epoch': best, 'since_improvement': since}


def test_decide_refuses_what_it_cannot_judge():
  with pytest.raises(ValueError, match='at least one epoch'):
    early_stopping.decide([], 2, 0.1)
  with pytest.raises(ValueError, match='epoch 2 is nan'):
    early_stopping.decide([1.0, float('nan')], 2, 0.1)


def _tiny_model():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(optimizer='sgd', loss='mse')
  return model


def _epochs(callback, model, losses):
  """Runs the callback over epochs whose weights are all `epoch + 1` and
  whose validation losses are `losses`; returns the epochs run."""
  callback.set_model(model)
  callback.on_train_begin()
  run = 0
  for epoch, loss in enumerate(losses):
    model.set_weights([np.full_like(w, epoch + 1.0)
                       for w in model.get_weights()])
    callback.on_epoch_end(epoch, {'loss': 9.0, 'val_loss': loss})
    run += 1
    if model.stop_training:
      break
  callback.on_train_end()
  return run


def test_callback_stops_at_the_right_epoch_with_the_best_weights(tmp_path):
  model = _tiny_model()
  model.stop_training = False
  stopper = early_stopping.EarlyStopping(2, 0.5, 10, str(tmp_path / 'state'))
  # Improves at epochs 1-2 (0-based 0, 1); 9.8 is the best loss but not by
  # 0.5, 9.9 neither: the patience of 2 runs out after epoch 4.
  run = _epochs(stopper, model, [12.0, 10.0, 9.8, 9.9, 3.0, 1.0])
  assert run == 4
  assert all(np.all(w == 3.0) for w in model.get_weights())  # Epoch 3's.
  assert stopper.stopping == early_stopping.Stopping(
      epochs_run=4, max_epochs=10, reason=early_stopping.PATIENCE_RAN_OUT,
      best_epoch=2, best_val_loss=9.8, patience=2, min_improvement=0.5)
  assert 'stopped' in stopper.stopping.describe()


def test_callback_that_never_stops_keeps_the_last_weights(tmp_path):
  model = _tiny_model()
  model.stop_training = False
  stopper = early_stopping.EarlyStopping(2, 0.1, 3, str(tmp_path / 'state'))
  assert _epochs(stopper, model, [3.0, 2.0, 1.0]) == 3
  assert all(np.all(w == 3.0) for w in model.get_weights())
  assert stopper.stopping.reason == early_stopping.ALL_EPOCHS


def test_a_resumed_callback_stops_where_an_uninterrupted_one_would(tmp_path):
  state = str(tmp_path / 'state')
  first = early_stopping.EarlyStopping(2, 0.5, 10, state)
  model = _tiny_model()
  model.stop_training = False
  # Killed after epoch 3 (0-based 2): nothing ends the training.
  first.set_model(model)
  first.on_train_begin()
  for epoch, loss in enumerate([12.0, 10.0, 9.8]):
    model.set_weights([np.full_like(w, epoch + 1.0)
                       for w in model.get_weights()])
    first.on_epoch_end(epoch, {'val_loss': loss})
  second = early_stopping.EarlyStopping(2, 0.5, 10, state)
  second.set_model(model)
  second.on_train_begin()
  assert second.losses == [12.0, 10.0, 9.8]
  model.set_weights([np.full_like(w, 4.0) for w in model.get_weights()])
  second.on_epoch_end(3, {'val_loss': 9.9})
  assert model.stop_training
  second.on_train_end()
  assert all(np.all(w == 3.0) for w in model.get_weights())
  assert second.stopping.epochs_run == 4


def test_the_callback_needs_the_validation_loss(tmp_path):
  stopper = early_stopping.EarlyStopping(2, 0.1, 3, str(tmp_path / 'state'))
  stopper.set_model(_tiny_model())
  stopper.on_train_begin()
  with pytest.raises(ValueError, match='val_loss'):
    stopper.on_epoch_end(0, {'loss': 1.0})


class _WeightsAfterEpoch(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.after = []

  def on_epoch_end(self, epoch, logs=None):
    self.after.append([w.copy() for w in self.model.get_weights()])


@pytest.mark.slow
def test_warm_started_training_stops_and_keeps_the_best_epoch(examples_dir,
                                                             tmp_path):
  """Through models.train on real digits: a warm start from a trained
  model, with a patience of 2 and an improvement no epoch can reach, stops
  after 3 of 8 epochs and ends with the weights of its lowest validation
  -ELBO; the eval split is not among its inputs at all."""
  train_files = str(examples_dir / 'Split-train' / '*')
  base = vae_lib.Hyperparameters(epochs=1, batch_size=64,
                                 validation_fraction=0.1)
  first, _, scratch = train_lib.train(base, train_files, str(tmp_path / 'a'),
                                      verbose=0)
  assert scratch.reason == early_stopping.NOT_MONITORED
  model_dir = export.export_model(first, base,
                                  str(tmp_path / 'model' / 'Format-Serving'))
  hp = vae_lib.Hyperparameters(epochs=8, batch_size=64, validation_fraction=0.1,
                               patience=2, min_improvement=1e6)
  weights = _WeightsAfterEpoch()
  vae, history, stopping = train_lib.train(
      hp, train_files, str(tmp_path / 'b'),
      warm_start_dir=export.find_warm_start_dir(model_dir),
      callbacks=[weights], verbose=0, resume_dir=str(tmp_path / 'resume'))
  assert stopping.epochs_run == 3 and len(history.epoch) == 3
  assert stopping.reason == early_stopping.PATIENCE_RAN_OUT
  losses = history.history['val_loss']
  assert stopping.best_epoch == int(np.argmin(losses))
  assert stopping.best_val_loss == pytest.approx(min(losses))
  for kept, best in zip(vae.get_weights(), weights.after[stopping.best_epoch]):
    np.testing.assert_array_equal(kept, best)
  json.dumps(stopping.to_dict())  # The history file's record.
  assert not (tmp_path / 'resume').exists()


def test_a_warm_start_without_a_carve_out_is_refused(examples_dir, tmp_path):
  hp = vae_lib.Hyperparameters(epochs=1, validation_fraction=0.0)
  with pytest.raises(ValueError, match='validation_fraction is 0'):
    train_lib.train(hp, str(examples_dir / 'Split-train' / '*'),
                    str(tmp_path / 'logs'), warm_start_dir=str(tmp_path))
  with pytest.raises(ValueError, match='needs a validation carve-out'):
    vae_lib.Hyperparameters(validation_fraction=0.0,
                            early_stop_from_scratch=True)
