"""Tests of the training history file the Trainer writes for the report."""

import json
import types

import pytest

from models import history


def _keras_history(epochs, values):
  return types.SimpleNamespace(epoch=list(epochs), history=dict(values))


def test_written_from_keras_history_and_read_back(tmp_path):
  run_dir = tmp_path / 'model_run'
  path = history.write_history(
      str(run_dir), _keras_history([0, 1], {'loss': [3.0, 2.0],
                                            'val_loss': [3.5, 2.5]}))
  assert path == str(run_dir / history.HISTORY_FILE)
  assert json.loads((run_dir / history.HISTORY_FILE).read_text()) == {
      'epoch': [0, 1], 'metrics': {'loss': [3.0, 2.0], 'val_loss': [3.5, 2.5]}}
  assert history.read_history(str(run_dir)) == {
      'epoch': [0, 1], 'metrics': {'loss': [3.0, 2.0], 'val_loss': [3.5, 2.5]}}


def test_the_epoch_log_wins_over_a_resumed_keras_history(tmp_path):
  # A resumed run: Keras' History has epochs 2 and 3 only, the epoch log
  # (Keras' CSVLogger, appended across attempts) all four.
  (tmp_path / history.EPOCH_LOG_FILE).write_text(
      'epoch,kl_loss,loss\n0,5.0,200.0\n1,5.5,180.0\n2,6.0,170.0\n'
      '3,6.1,165.0\n')
  history.write_history(str(tmp_path), _keras_history(
      [2, 3], {'loss': [170.0, 165.0], 'kl_loss': [6.0, 6.1]}))
  record = history.read_history(str(tmp_path))
  assert record['epoch'] == [0, 1, 2, 3]
  assert record['metrics'] == {'kl_loss': [5.0, 5.5, 6.0, 6.1],
                               'loss': [200.0, 180.0, 170.0, 165.0]}


def test_no_history_reads_as_none(tmp_path):
  assert history.read_history(str(tmp_path)) is None


def test_values_must_match_the_epochs():
  with pytest.raises(ValueError, match='loss: 1 values for 2 epochs'):
    history.history_record([0, 1], {'loss': [1.0]})


def test_epoch_log_without_validation_leaves_the_validation_columns_out(
    tmp_path):
  # Keras' CSVLogger writes NA for metrics an epoch lacks: here, validation
  # losses when the training validates on nothing.
  (tmp_path / history.EPOCH_LOG_FILE).write_text(
      'epoch,loss,val_loss\n0,200.0,NA\n1,180.0,NA\n')
  history.write_history(str(tmp_path), _keras_history([0, 1],
                                                      {'loss': [1.0, 1.0]}))
  assert history.read_history(str(tmp_path)) == {
      'epoch': [0, 1], 'metrics': {'loss': [200.0, 180.0]}}
