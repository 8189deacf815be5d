"""Rollback serves an earlier version again and rejects the one rolled from."""

import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from components.atomic_pusher import executor as pusher
from components.atomic_pusher import reasons
from layouts import model as model_layout
from layouts import rejections
from layouts import serving as serving_layout
from pipeline import exit_codes
from pipeline import rollback


def _decode(version_dir, z):
  signature = tf.saved_model.load(version_dir).signatures['serving_default']
  return signature(z=tf.constant(z))['image'].numpy()


def _push(model_uri, serving):
  """A version of a Trainer-style model, as the Pusher writes it."""
  return pusher.push(
      os.path.join(model_uri, model_layout.SERVING_MODEL_DIR), str(serving),
      {'model_uri': model_uri}, None,
      {name: os.path.join(model_uri, name)
       for name in (model_layout.ENCODER_DIR, model_layout.WARM_START_DIR)})


def _tree(directory):
  """Relative path -> bytes of every file below `directory`."""
  root = pathlib.Path(directory)
  return {str(p.relative_to(root)): p.read_bytes()
          for p in root.rglob('*') if p.is_file()}


@pytest.fixture
def three_versions(other_exported_models, tmp_path):
  """v1, v2, v3: three models (seeds 1, 2, 3), v3 served."""
  serving = tmp_path / 'serving'
  return serving, [_push(uri, serving) for uri in other_exported_models]


def _served(serving):
  return serving_layout.latest_version_dir(str(serving))


def test_rollback_serves_a_byte_identical_copy_and_rejects_the_served(
    three_versions):
  serving, (_, v2, v3) = three_versions
  z = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
  assert not np.allclose(_decode(v2, z), _decode(v3, z))

  assert rollback.main(['--serving-dir', str(serving)]) == exit_codes.OK

  restored = _served(serving)
  assert int(os.path.basename(restored)) > int(os.path.basename(v3))
  # Every file of v2, nested SavedModels included, byte for byte; only the
  # version record differs.
  record = serving_layout.VERSION_RECORD_FILE
  copy, original = _tree(restored), _tree(v2)
  assert copy.pop(record) != original.pop(record)
  assert copy == original
  assert os.path.join(serving_layout.MODEL_FILES_DIR, model_layout.ENCODER_DIR,
                      'saved_model.pb') in copy
  serving_layout.verify_version(restored)
  np.testing.assert_array_equal(_decode(restored, z), _decode(v2, z))
  info = serving_layout.read_push_info(restored)
  assert info['restored_version'] == os.path.basename(v2)
  assert info['rolled_back_from'] == os.path.basename(v3)
  assert info['model_uri'] == serving_layout.read_push_info(v2)['model_uri']
  assert serving_layout.identity_of(restored) == serving_layout.identity_of(v2)
  assert set(rejections.rejected_models(str(serving))) == {
      serving_layout.identity_of(v3)}
  # Nothing is removed; no temporary directory is left.
  assert sorted(n for n in os.listdir(serving) if n[0] != '.') == sorted(
      [os.path.basename(p) for p in (*three_versions[1], restored)] +
      [rejections.REJECTIONS_FILE])


def test_default_target_after_zero_one_and_two_rollbacks(three_versions):
  serving, (v1, v2, v3) = three_versions
  identity = serving_layout.identity_of
  rollback.rollback(str(serving))          # 0 before: v3 -> v2
  assert identity(_served(serving)) == identity(v2)
  rollback.rollback(str(serving))          # 1 before: v2 -> v1, never v3
  assert identity(_served(serving)) == identity(v1)
  assert set(rejections.rejected_models(str(serving))) == {
      identity(v3), identity(v2)}
  # 2 before: v1's model is served, v2's and v3's are rejected: refused.
  before = sorted(os.listdir(serving))
  with pytest.raises(rollback.RollbackError) as error:
    rollback.rollback(str(serving))
  message = str(error.value)
  assert f'{os.path.basename(v3)} (model {identity(v3)[:12]} is rejected)' in (
      message)
  assert f'{os.path.basename(v1)} (the served model' in message
  assert sorted(os.listdir(serving)) == before
  assert rollback.main(['--serving-dir', str(serving)]) == (
      exit_codes.ROLLBACK_REFUSED)


def test_named_version_unreject_and_refusals(three_versions, capsys):
  serving, (v1, v2, v3) = three_versions
  name = os.path.basename
  assert rollback.main(['--serving-dir', str(serving), '--version',
                        name(v1)]) == exit_codes.OK
  restored = capsys.readouterr().out.strip()
  assert serving_layout.read_push_info(restored)['restored_version'] == name(
      v1)
  # v3's model is rejected: asking for it by number is refused until the
  # rejection is taken back, which is journalled.
  assert rollback.main(['--serving-dir', str(serving), '--version',
                        name(v3)]) == exit_codes.ROLLBACK_REFUSED
  assert rollback.main(['--serving-dir', str(serving), '--unreject',
                        name(v3)]) == exit_codes.OK
  assert rejections.rejected_models(str(serving)) == {}
  assert [e['action'] for e in rejections.read_rejections(
      str(serving))] == ['reject', 'unreject']
  assert rollback.main(['--serving-dir', str(serving), '--version',
                        name(v3)]) == exit_codes.OK
  assert serving_layout.identity_of(_served(serving)) == (
      serving_layout.identity_of(v3))
  assert rollback.main(['--serving-dir', str(serving), '--version',
                        '5']) == exit_codes.ROLLBACK_REFUSED
  assert rollback.main(['--serving-dir', str(serving), '--unreject',
                        'abc']) == exit_codes.ROLLBACK_REFUSED
  assert rollback.main(['--serving-dir', str(serving), '--list']) == 0
  listed = capsys.readouterr().out
  assert f'{name(_served(serving))}  model ' in listed and 'SERVED' in listed
  with pytest.raises(rollback.RollbackError, match='no complete version'):
    rollback.rollback(str(serving / 'empty'))


def test_usage_errors_exit_64(capsys):
  with pytest.raises(SystemExit) as exit_info:
    rollback.main(['--serving-dir', 'x', '--version', 'seven'])
  assert exit_info.value.code == exit_codes.USAGE
  with pytest.raises(SystemExit) as exit_info:
    rollback.main([])
  assert exit_info.value.code == exit_codes.USAGE
  assert 'the following arguments are required: --serving-dir' in (
      capsys.readouterr().err)


def test_a_corrupt_version_is_passed_over_and_a_rejected_model_never_pushed(
    three_versions, other_exported_models, tmp_path):
  serving, (_, v2, v3) = three_versions
  weights = pathlib.Path(v2, 'variables', 'variables.data-00000-of-00001')
  weights.write_bytes(weights.read_bytes()[:-8] + b'\0' * 8)
  with pytest.raises(serving_layout.VersionCorruptError, match='was changed'):
    serving_layout.verify_version(v2)
  rollback.rollback(str(serving))  # v2 is corrupt: v1 is restored
  assert serving_layout.read_push_info(_served(serving))[
      'restored_version'] == os.path.basename(three_versions[1][0])

  # The Pusher refuses v3's model (rejected) by identity, from any path.
  moved = tmp_path / 'elsewhere'
  tf.io.gfile.makedirs(str(moved))
  pusher.copy_tree(other_exported_models[2], str(moved))
  reason = reasons.rejected_reason(
      serving_layout.model_identity(str(moved / model_layout.SERVING_MODEL_DIR)),
      str(serving))
  assert reason and 'rolled back from (version ' in reason
  assert serving_layout.identity_of(v3)[:12] in reason
  before = sorted(os.listdir(serving))
  with pytest.raises(pusher.RejectedModelError, match='rolled back from'):
    pusher.push(str(moved / model_layout.SERVING_MODEL_DIR), str(serving),
                {'model_uri': str(moved)})
  assert sorted(os.listdir(serving)) == before
