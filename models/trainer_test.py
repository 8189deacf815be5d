"""Tests of run_fn with a hand-built FnArgs, as the TFX Trainer calls it."""

import os

import pytest

from tfx import v1 as tfx

from layouts import model as model_layout
from models import early_stopping
from models import history
from models import trainer
from models import vae as vae_lib

# Runs executors, Beam or training on real data: the full suite's tier.
pytestmark = pytest.mark.slow


def _fn_args(examples_dir, output_dir, base_model=None, epochs=1):
  hp = vae_lib.Hyperparameters(epochs=epochs, batch_size=64,
                               validation_fraction=0.1)
  return tfx.components.FnArgs(
      working_dir=str(output_dir / 'working'),
      train_files=[str(examples_dir / 'Split-train' / '*')],
      eval_files=[str(examples_dir / 'Split-eval' / '*')],
      train_steps=10,
      eval_steps=5,
      serving_model_dir=str(output_dir / 'model' / 'Format-Serving'),
      model_run_dir=str(output_dir / 'model_run'),
      base_model=base_model,
      custom_config={'hyperparameters': hp.to_dict()})


def test_run_fn_trains_exports_and_warm_starts(examples_dir, tmp_path):
  first = _fn_args(examples_dir, tmp_path / 'first')
  trainer.run_fn(first)
  model_dir = tmp_path / 'first' / 'model'
  assert (model_dir / 'Format-Serving' / 'saved_model.pb').is_file()
  assert (model_dir / model_layout.ENCODER_DIR / 'saved_model.pb').is_file()
  assert (model_dir / model_layout.WARM_START_WEIGHTS).is_file()
  assert any('tfevents' in name
             for _, _, files in os.walk(first.model_run_dir) for name in files)
  # The losses per epoch, beside the TensorBoard logs, for the report.
  record = history.read_history(first.model_run_dir)
  assert record['epoch'] == [0]
  for key in ('loss', 'reconstruction_loss', 'kl_loss', 'val_loss',
              'val_reconstruction_loss', 'val_kl_loss'):
    assert len(record['metrics'][key]) == 1
    assert 0 < record['metrics'][key][0] < 1000

  assert record['stopping']['reason'] == early_stopping.NOT_MONITORED
  assert record['stopping']['epochs_run'] == 1

  # Warm-started, it stops early on the carve-out, never on eval: an eval
  # split of garbage bytes would fail any read of it.
  garbage = tmp_path / 'eval-garbage' / 'data_tfrecord-00000-of-00001.gz'
  garbage.parent.mkdir()
  garbage.write_bytes(b'not a TFRecord file' * 100)
  second = _fn_args(examples_dir, tmp_path / 'second',
                    base_model=first.serving_model_dir, epochs=6)
  second.eval_files = [str(garbage)]
  trainer.run_fn(second)
  assert (tmp_path / 'second' / 'model' / model_layout.WARM_START_WEIGHTS).is_file()
  record = history.read_history(second.model_run_dir)
  stopping = record['stopping']
  assert stopping['max_epochs'] == 6
  assert stopping['epochs_run'] == len(record['epoch']) <= 6
  assert stopping['reason'] in (early_stopping.PATIENCE_RAN_OUT,
                                early_stopping.ALL_EPOCHS)
  # Chosen on the carve-out's losses, which the history holds.
  assert stopping['best_val_loss'] == min(record['metrics']['val_loss'])


def test_hyperparameters_default_without_custom_config():
  fn_args = tfx.components.FnArgs(custom_config=None)
  assert (trainer.hyperparameters_from_fn_args(fn_args) ==
          vae_lib.Hyperparameters())
