"""The re-anchor command: shows the anchor, sets it to a version's training
data under the lock, refuses what it cannot do, with its exit codes."""

import os
import pathlib

import pytest

from tensorflow_metadata.proto.v0 import statistics_pb2

from components.atomic_pusher import executor as pusher
from layouts import anchor as anchor_layout
from layouts import model as model_layout
from layouts import serving as serving_layout
from pipeline import anchor
from pipeline import exit_codes


def _statistics(name):
  proto = statistics_pb2.DatasetFeatureStatisticsList()
  proto.datasets.add(name=name, num_examples=1)
  return proto


def _push(model_uri, serving, name):
  return pusher.push(
      os.path.join(model_uri, model_layout.SERVING_MODEL_DIR), str(serving),
      {'model_uri': model_uri}, _statistics(name) if name else None)


def test_set_re_anchors_to_a_version_and_keeps_the_history(
    other_exported_models, tmp_path, capsys):
  serving = tmp_path / 'serving'
  v1 = _push(other_exported_models[0], serving, 'drop-1')
  v2 = _push(other_exported_models[1], serving, 'drop-2')
  anchor_layout.set_anchor(str(serving), _statistics('drop-1'),
                           anchor_layout.FIRST_PUSH, version='1')

  assert anchor.main(['--serving-dir', str(serving)]) == exit_codes.OK
  assert 'first push' in capsys.readouterr().out
  assert anchor.main(['--serving-dir', str(serving), '--set', '--reason',
                      'new scanner']) == exit_codes.OK
  statistics, record = anchor_layout.read_anchor(str(serving))
  assert statistics.datasets[0].name == 'drop-2'
  assert (record['set_by'], record['version'], record['reason']) == (
      anchor_layout.OPERATOR, os.path.basename(v2), 'new scanner')
  assert anchor.main(['--serving-dir', str(serving), '--set', '--version',
                      os.path.basename(v1)]) == exit_codes.OK
  statistics, record = anchor_layout.read_anchor(str(serving))
  assert statistics.datasets[0].name == 'drop-1'
  assert len(record['history']) == 2
  # The anchor lives beside the versions, where TensorFlow Serving looks only
  # at all-digit names.
  assert not any(name.isdigit() for name in (anchor_layout.RECORD_FILE,
                                             anchor_layout.STATISTICS_DIR))


def test_refusals_and_a_corrupt_anchor_exit_8(other_exported_models,
                                              tmp_path):
  serving = tmp_path / 'serving'
  assert anchor.main(['--serving-dir', str(serving), '--set']) == (
      exit_codes.ANCHOR_REFUSED)  # Nothing served.
  _push(other_exported_models[0], serving, None)  # No statistics recorded.
  assert anchor.main(['--serving-dir', str(serving), '--set']) == (
      exit_codes.ANCHOR_REFUSED)
  assert anchor.main(['--serving-dir', str(serving), '--set', '--version',
                      '12']) == exit_codes.ANCHOR_REFUSED
  with pytest.raises(SystemExit) as usage:
    anchor.main(['--serving-dir', str(serving), '--version', '12'])
  assert usage.value.code == exit_codes.USAGE
  anchor_layout.set_anchor(str(serving), _statistics('drop-1'),
                           anchor_layout.FIRST_PUSH)
  record = anchor_layout.read_record(str(serving))
  pathlib.Path(serving, record['statistics']).write_bytes(b'changed')
  assert anchor.main(['--serving-dir', str(serving)]) == (
      exit_codes.ANCHOR_REFUSED)
  assert serving_layout.latest_version_dir(str(serving))
