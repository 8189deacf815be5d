"""Rollback republishes an earlier version as the newest, atomically."""

import os

import numpy as np
import pytest
import tensorflow as tf

from components.atomic_pusher import executor as pusher
from layouts import serving as serving_layout
from models import export
from models import vae as vae_lib
from pipeline import rollback


def _decode(version_dir, z):
  signature = tf.saved_model.load(version_dir).signatures['serving_default']
  return signature(z=tf.constant(z))['image'].numpy()


@pytest.fixture
def two_versions(exported_model, tmp_path):
  """v1: the session's exported model; v2: another (seed 1) model."""
  hp = vae_lib.Hyperparameters(seed=1)
  other = tmp_path / 'other'
  export.export_model(vae_lib.build_vae(hp), hp,
                      str(other / export.SERVING_MODEL_DIR))
  serving = tmp_path / 'serving'
  first = pusher.push(os.path.join(exported_model, export.SERVING_MODEL_DIR),
                      str(serving), {'model_uri': exported_model})
  second = pusher.push(str(other / export.SERVING_MODEL_DIR), str(serving),
                       {'model_uri': str(other)})
  return serving, first, second


def test_rollback_serves_the_earlier_model_again(two_versions):
  serving, first, second = two_versions
  z = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
  assert not np.allclose(_decode(first, z), _decode(second, z))

  assert rollback.main(['--serving-dir', str(serving)]) == 0

  newest = serving_layout.latest_version_dir(str(serving))
  assert int(os.path.basename(newest)) > int(os.path.basename(second))
  np.testing.assert_array_equal(_decode(newest, z), _decode(first, z))
  info = serving_layout.read_push_info(newest)
  assert info['rolled_back_from'] == os.path.basename(first)
  assert info['model_uri'] == serving_layout.read_push_info(first)['model_uri']
  # Nothing is removed; no temporary directory is left.
  assert sorted(os.listdir(serving)) == sorted(
      os.path.basename(p) for p in (first, second, newest))


def test_rollback_to_a_named_version_and_errors(two_versions, capsys):
  serving, first, _ = two_versions
  version = int(os.path.basename(first))
  assert rollback.main(['--serving-dir', str(serving), '--version',
                        str(version)]) == 0
  new_dir = capsys.readouterr().out.strip()
  assert serving_layout.read_push_info(new_dir)['rolled_back_from'] == str(
      version)
  assert rollback.main(['--serving-dir', str(serving), '--version', '5']) == 2
  with pytest.raises(rollback.RollbackError, match='nothing to roll back to'):
    rollback.rollback(str(serving / 'empty'))
