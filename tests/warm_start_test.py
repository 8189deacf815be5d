"""--warm-start: the Trainer starts from the served model's weights."""

import logging
import os
import shutil

import pytest
from tfx import v1 as tfx

from layouts import contracts
from components.atomic_pusher import executor as pusher
from conftest import write_examples_dir
from layouts import model as model_layout
from models import export
from models import trainer
from models import vae as vae_lib


def _fn_args(tmp_path, custom_config):
  examples = tmp_path / 'examples'
  if not examples.exists():
    write_examples_dir(examples, 128, 64)
  return tfx.components.FnArgs(
      train_files=[str(examples / 'Split-train' / '*')],
      eval_files=[str(examples / 'Split-eval' / '*')],
      serving_model_dir=str(tmp_path / 'model' / model_layout.SERVING_MODEL_DIR),
      model_run_dir=str(tmp_path / 'model_run'),
      custom_config=custom_config)


@pytest.mark.slow
def test_warm_start_from_the_served_model(exported_model, tmp_path, caplog):
  serving = tmp_path / 'serving'
  pusher.push(os.path.join(exported_model, model_layout.SERVING_MODEL_DIR),
              str(serving), {'model_uri': exported_model})
  hp = vae_lib.Hyperparameters(epochs=1, batch_size=64)
  fn_args = _fn_args(tmp_path, {
      contracts.TRAINER_HYPERPARAMETERS_KEY: hp.to_dict(),
      contracts.WARM_START_SERVING_DIR_KEY: str(serving)})
  assert trainer.warm_start_dir_from_fn_args(fn_args) == exported_model
  with caplog.at_level(logging.INFO, logger='models.export'):
    trainer.run_fn(fn_args)
  assert f'Warm-started from {exported_model}' in caplog.text


def test_warm_start_with_nothing_served_trains_from_scratch(tmp_path):
  fn_args = _fn_args(tmp_path, {
      contracts.WARM_START_SERVING_DIR_KEY: str(tmp_path / 'serving')})
  assert trainer.warm_start_dir_from_fn_args(fn_args) is None


def test_warm_start_from_a_model_without_weights_fails_clearly(
    exported_model, tmp_path):
  serving = tmp_path / 'serving'
  pusher.push(os.path.join(exported_model, model_layout.SERVING_MODEL_DIR),
              str(serving), {'model_uri': str(tmp_path / 'gone')})
  fn_args = _fn_args(tmp_path, {
      contracts.WARM_START_SERVING_DIR_KEY: str(serving)})
  with pytest.raises(FileNotFoundError,
                     match='carries no model files .* is gone with its '
                     'pipeline root: roll back past that version'):
    trainer.warm_start_dir_from_fn_args(fn_args)


def test_warm_start_from_a_version_whose_pipeline_root_is_gone(
    exported_model, tmp_path):
  """The served version's own weights are loaded: compared weight by weight
  with the exported model's."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  origin = tmp_path / 'pipeline-root' / 'model'
  shutil.copytree(exported_model, origin)
  serving = tmp_path / 'serving'
  version_dir = pusher.push(
      str(origin / model_layout.SERVING_MODEL_DIR), str(serving),
      {'model_uri': str(origin)}, None,
      {name: str(origin / name)
       for name in (model_layout.ENCODER_DIR, model_layout.WARM_START_DIR)})
  expected = vae_lib.build_uncompiled_vae(2)
  expected.load_weights(str(origin / model_layout.WARM_START_WEIGHTS))
  shutil.rmtree(tmp_path / 'pipeline-root')

  fn_args = _fn_args(tmp_path, {
      contracts.WARM_START_SERVING_DIR_KEY: str(serving)})
  warm_dir = trainer.warm_start_dir_from_fn_args(fn_args)
  assert warm_dir == os.path.join(version_dir, 'assets.extra', 'model')
  fresh = vae_lib.build_vae(vae_lib.Hyperparameters(seed=3))
  before = fresh.get_weights()
  export.load_warm_start(fresh, warm_dir)
  loaded = fresh.get_weights()
  assert any(not np.array_equal(a, b) for a, b in zip(before, loaded))
  for got, want in zip(loaded, expected.get_weights()):
    np.testing.assert_array_equal(got, want)
