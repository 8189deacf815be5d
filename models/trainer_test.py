"""Tests of run_fn with a hand-built FnArgs, as the TFX Trainer calls it."""

import os

import pytest

from tfx import v1 as tfx

from layouts import model as model_layout
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

  second = _fn_args(examples_dir, tmp_path / 'second',
                    base_model=first.serving_model_dir)
  trainer.run_fn(second)
  assert (tmp_path / 'second' / 'model' / model_layout.WARM_START_WEIGHTS).is_file()


def test_hyperparameters_default_without_custom_config():
  fn_args = tfx.components.FnArgs(custom_config=None)
  assert (trainer.hyperparameters_from_fn_args(fn_args) ==
          vae_lib.Hyperparameters())
