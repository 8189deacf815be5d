"""Tests of the atomic pusher, and of what it pushes, with TF Serving's tools."""

import json
import os
import pathlib
import subprocess
import sys
import time
import uuid

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.utils import proto_utils

from components import config as config_lib
from components.atomic_pusher import executor
from layouts import anchor as anchor_layout
from layouts import contracts
from layouts import model as model_layout
from layouts import serving as serving_layout


def _names(serving) -> list:
  """What TensorFlow Serving sees as versions: the all-digit names."""
  return sorted(p.name for p in pathlib.Path(serving).iterdir()
                if p.name.isdigit())


def _fake_version(directory: pathlib.Path) -> None:
  """A complete version of no real model (for retention's bookkeeping)."""
  (directory / 'variables').mkdir(parents=True)
  (directory / 'saved_model.pb').write_bytes(b'pb')
  serving_layout.write_version_record(str(directory), {'model_uri': 'm'},
                                      'f' * 64)


def _do(model_uri, serving_dir, tmp_path, blessed, evaluated_against=None,
        keep_versions=None, statistics=None, model_properties=(),
        blessing_properties=()):
  """Runs the Pusher's executor.

  The blessing says the evaluator measured against `evaluated_against`
  (default: the newest version now, as if nothing happened in between).
  """
  model = standard_artifacts.Model()
  model.uri = model_uri
  model.id = 3
  for name, value in dict(model_properties).items():
    model.set_string_custom_property(name, value)
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / 'blessing')
  blessing.set_int_custom_property('blessed', int(blessed))
  for name, value in dict(blessing_properties).items():
    blessing.set_string_custom_property(name, value)
  if evaluated_against is None:
    evaluated_against = serving_layout.latest_version_dir(str(serving_dir))
  blessing.set_string_custom_property(
      serving_layout.BLESSING_SERVED_VERSION_KEY, evaluated_against or '')
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / 'pushed' / uuid.uuid4().hex)
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(
          base_directory=str(serving_dir)))
  properties = {'push_destination': proto_utils.proto_to_json(destination)}
  if keep_versions:
    properties['config'] = config_lib.to_json(
        config_lib.ServingConfig(keep_versions=keep_versions))
  inputs = {'model': [model], 'model_blessing': [blessing]}
  if statistics is not None:
    inputs[executor.STATISTICS_KEY] = [statistics]
  executor.Executor().Do(inputs, {'pushed_model': [pushed]}, properties)
  return pushed


def _gated_statistics(tmp_path, name, value, accept_drift):
  """The data gate's output: train statistics (a recognisable dataset name)
  and whether the run accepted drift."""
  statistics = standard_artifacts.ExampleStatistics()
  statistics.uri = str(tmp_path / name)
  statistics.split_names = artifact_utils.encode_split_names(['train'])
  statistics.span = value
  proto = statistics_pb2.DatasetFeatureStatisticsList()
  proto.datasets.add(name=name, num_examples=value)
  io_utils.write_bytes_file(
      os.path.join(statistics.uri, 'Split-train',
                   stats_artifact_utils.BINARY_PB_BASENAME),
      proto.SerializeToString())
  statistics.set_int_custom_property(anchor_layout.ACCEPT_DRIFT_PROPERTY,
                                     int(accept_drift))
  return statistics


def test_the_anchor_moves_on_the_first_push_and_on_accepted_drift_only(
    other_exported_models, tmp_path):
  serving = tmp_path / 'serving'
  first, second, third = other_exported_models[:3]

  def anchor_name():
    statistics, _ = anchor_layout.read_anchor(str(serving))
    return statistics.datasets[0].name

  _do(first, serving, tmp_path, True,
      statistics=_gated_statistics(tmp_path, 'drop-1', 1, False))
  assert anchor_name() == 'drop-1'
  assert anchor_layout.read_record(str(serving))['set_by'] == (
      anchor_layout.FIRST_PUSH)
  _do(second, serving, tmp_path, True,
      statistics=_gated_statistics(tmp_path, 'drop-2', 2, False))
  assert anchor_name() == 'drop-1'  # A push alone does not move it.
  _do(third, serving, tmp_path, True,
      statistics=_gated_statistics(tmp_path, 'drop-3', 3, True))
  assert anchor_name() == 'drop-3'
  record = anchor_layout.read_record(str(serving))
  assert (record['set_by'], record['span']) == (anchor_layout.ACCEPTED_DRIFT,
                                                3)
  assert [r['span'] for r in record['history']] == [1]
  # The version records the statistics it was trained on, as before.
  version = serving_layout.latest_version_dir(str(serving))
  assert serving_layout.read_reference_statistics(
      version).datasets[0].name == 'drop-3'


def test_an_accepted_run_that_is_not_pushed_leaves_the_anchor(
    exported_model, tmp_path):
  serving = tmp_path / 'serving'
  _do(exported_model, serving, tmp_path, True,
      statistics=_gated_statistics(tmp_path, 'drop-1', 1, False))
  _do(exported_model, serving, tmp_path, False,
      statistics=_gated_statistics(tmp_path, 'drop-2', 2, True))
  statistics, _ = anchor_layout.read_anchor(str(serving))
  assert statistics.datasets[0].name == 'drop-1'


def test_unblessed_model_is_not_pushed(exported_model, tmp_path):
  serving = tmp_path / 'serving'
  pushed = _do(exported_model, serving, tmp_path, blessed=False)
  assert pushed.get_int_custom_property('pushed') == 0
  assert not serving.exists() or not list(serving.iterdir())


def test_blessed_model_is_pushed_with_its_origin(exported_model, tmp_path):
  serving = tmp_path / 'serving'
  pushed = _do(exported_model, serving, tmp_path, blessed=True)
  [version_dir] = [serving / n for n in _names(serving)]
  assert version_dir.name.isdigit()
  assert pushed.get_int_custom_property('pushed') == 1
  assert pushed.get_string_custom_property('pushed_destination') == str(
      version_dir)
  assert pushed.get_string_custom_property('pushed_version') == version_dir.name
  assert (version_dir / 'saved_model.pb').is_file()
  assert serving_layout.read_push_info(str(version_dir))['model_uri'] == (
      exported_model)
  assert (pathlib.Path(pushed.uri) / 'saved_model.pb').is_file()
  # The version carries the rest of the model: it stands without the
  # pipeline root.
  own = pathlib.Path(serving_layout.model_files_dir(str(version_dir)))
  assert (own / model_layout.ENCODER_DIR / 'saved_model.pb').is_file()
  assert (own / model_layout.WARM_START_WEIGHTS).is_file()
  assert (own / model_layout.HYPERPARAMETERS_FILE).is_file()
  assert serving_layout.model_dir_of(str(version_dir)) == str(own)


def test_the_version_records_what_its_model_was_trained_on(exported_model,
                                                          tmp_path):
  serving = tmp_path / 'serving'
  trained_on = {'data': 'd' * 64, 'training': 't' * 64}
  pushed = _do(exported_model, serving, tmp_path, blessed=True,
               model_properties={
                   contracts.TRAINED_ON_KEY: json.dumps(trained_on)})
  version_dir = pushed.get_string_custom_property('pushed_destination')
  assert serving_layout.read_push_info(version_dir)[
      contracts.TRAINED_ON_KEY] == trained_on


def test_nothing_new_is_not_pushed_and_says_why(exported_model, tmp_path):
  serving = tmp_path / 'serving'
  reason = 'nothing new: the served version 1 was trained on exactly ...'
  pushed = _do(exported_model, serving, tmp_path, blessed=False,
               blessing_properties={contracts.NOTHING_NEW_KEY: reason})
  assert pushed.get_int_custom_property('pushed') == 0
  assert pushed.get_string_custom_property(
      contracts.NOT_PUSHED_REASON_KEY) == reason
  assert not serving.exists() or not _names(serving)


def test_model_already_served_is_not_pushed_again(exported_model, tmp_path):
  serving = tmp_path / 'serving'
  first = _do(exported_model, serving, tmp_path, blessed=True)
  again = _do(exported_model, serving, tmp_path, blessed=True)
  assert first.get_int_custom_property('pushed') == 1
  assert again.get_int_custom_property('pushed') == 0
  assert again.get_string_custom_property(contracts.NOT_PUSHED_REASON_KEY) == (
      'the candidate is already served as version '
      f'{first.get_string_custom_property("pushed_version")}')
  assert len(_names(serving)) == 1


def test_version_published_after_the_evaluation_blocks_the_push(
    exported_model, other_exported_models, tmp_path):
  """Compare-and-swap: the blessing measured against v1, v2 came since."""
  serving = tmp_path / 'serving'
  # Versions of other models (another run's).
  first, second = (
      executor.push(os.path.join(uri, model_layout.SERVING_MODEL_DIR), str(serving),
                    {'model_uri': uri}) for uri in other_exported_models[:2])
  pushed = _do(exported_model, serving, tmp_path, blessed=True,
               evaluated_against=first)
  assert pushed.get_int_custom_property('pushed') == 0
  assert pushed.get_string_custom_property(
      contracts.NOT_PUSHED_REASON_KEY) == (
          f'served model changed since evaluation '
          f'({os.path.basename(first)} -> {os.path.basename(second)}); '
          'run again')
  assert serving_layout.latest_version_dir(str(serving)) == second
  assert len(_names(serving)) == 2


def test_nothing_served_at_evaluation_but_a_version_now_blocks_the_push(
    exported_model, other_exported_models, tmp_path):
  serving = tmp_path / 'serving'
  other = other_exported_models[0]
  executor.push(os.path.join(other, model_layout.SERVING_MODEL_DIR),
                str(serving), {'model_uri': other})
  pushed = _do(exported_model, serving, tmp_path, blessed=True,
               evaluated_against='')
  assert pushed.get_int_custom_property('pushed') == 0
  assert 'changed since evaluation (none -> ' in (
      pushed.get_string_custom_property(contracts.NOT_PUSHED_REASON_KEY))


def test_keep_versions_prunes_the_oldest(other_exported_models, tmp_path,
                                         monkeypatch):
  now = [0.0]
  monkeypatch.setattr(executor.time, 'time', lambda: now[0])
  serving = tmp_path / 'serving'
  # Three retrained models.
  for model_uri, now[0] in zip(
      other_exported_models,
      (1_800_000_000.0, 1_800_000_010.0, 1_800_000_020.0)):
    pushed = _do(model_uri, serving, tmp_path, blessed=True, keep_versions=2)
    assert pushed.get_int_custom_property('pushed') == 1
  assert _names(serving) == ['1800000010', '1800000020']


def test_pruning_never_removes_the_newest_or_the_pushed(tmp_path):
  serving = tmp_path / 'serving'
  for version in (1, 2, 3, 9):
    _fake_version(serving / str(version))
  (serving / '10').mkdir()  # incomplete: not counted, not pruned
  removed = executor.prune_versions(str(serving), 1, str(serving / '3'))
  assert sorted(os.path.basename(p) for p in removed) == ['1', '2']
  assert _names(serving) == ['10', '3', '9']


def test_leftovers_of_dead_pushes_are_removed_by_the_next_push(exported_model,
                                                      tmp_path):
  serving = tmp_path / 'serving'
  stale = serving / (executor.TMP_PREFIX + 'died')
  fresh = serving / (executor.TMP_PREFIX + 'running')
  for directory in (stale, fresh):
    (directory / 'variables').mkdir(parents=True)
  incomplete = serving / '1700000000'  # a push that died half-way
  pending = incomplete / serving_layout.PENDING_FILE
  pending.parent.mkdir(parents=True)
  pending.write_text('{}')
  by_hand = serving / '1700000001'  # a copy by hand, not this pipeline's
  (by_hand / 'variables').mkdir(parents=True)
  two_hours_ago = time.time() - 7200
  for path in (stale, stale / 'variables', incomplete, pending.parent,
               pending, by_hand, by_hand / 'variables'):
    os.utime(path, (two_hours_ago, two_hours_ago))
  _do(exported_model, serving, tmp_path, blessed=True)
  assert not stale.exists() and not incomplete.exists()
  assert fresh.exists()  # may belong to a push under way
  assert by_hand.exists()  # ignored, never removed


def test_failure_in_the_middle_of_a_copy_leaves_no_version(
    exported_model, tmp_path, monkeypatch):
  serving = tmp_path / 'serving'
  copied = []
  real_copy = executor.io_utils.fileio.copy

  def copy_then_fail(src, dst, *args, **kwargs):
    if len(copied) == 2:
      raise OSError('disk full (simulated)')
    copied.append(dst)
    return real_copy(src, dst, *args, **kwargs)

  # Every file copy of io_utils (copy_dir and copy_file) goes through this.
  monkeypatch.setattr(executor.io_utils.fileio, 'copy', copy_then_fail)
  with pytest.raises(OSError, match='disk full'):
    executor.push(os.path.join(exported_model, model_layout.SERVING_MODEL_DIR),
                  str(serving), {'model_uri': exported_model})
  assert len(copied) == 2  # the copy really was interrupted half-way
  # No version, no temporary directory: only the writers' lock.
  assert [p.name for p in serving.iterdir()] == ['.serving.lock']
  assert serving_layout.latest_version_dir(str(serving)) is None


def test_two_pushes_in_the_same_second_get_increasing_versions(
    exported_model, tmp_path, monkeypatch):
  monkeypatch.setattr(executor.time, 'time', lambda: 1_800_000_000.25)
  serving = str(tmp_path / 'serving')
  source = os.path.join(exported_model, model_layout.SERVING_MODEL_DIR)
  first = executor.push(source, serving, {'model_uri': exported_model})
  second = executor.push(source, serving, {'model_uri': exported_model})
  assert os.path.basename(first) == '1800000000'
  assert os.path.basename(second) == '1800000001'
  assert serving_layout.latest_version_dir(serving) == second


def test_version_taken_by_a_concurrent_push_is_skipped(
    exported_model, tmp_path, monkeypatch):
  serving = tmp_path / 'serving'
  monkeypatch.setattr(executor, 'next_version', lambda *_: 7)
  (serving / '7').mkdir(parents=True)  # appears after the version was chosen
  version_dir = executor.push(
      os.path.join(exported_model, model_layout.SERVING_MODEL_DIR), str(serving),
      {'model_uri': exported_model})
  assert os.path.basename(version_dir) == '8'


_PREDICT_CHECK = r'''
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

model = tf.saved_model.load(sys.argv[1])
signature = model.signatures['serving_default']
[(name, spec)] = signature.structured_input_signature[1].items()
z = np.random.default_rng(0).normal(size=(5, spec.shape[1])).astype(
    spec.dtype.as_numpy_dtype)
request = predict_pb2.PredictRequest()
request.model_spec.name = 'mnist_vae'
request.model_spec.signature_name = 'serving_default'
request.inputs[name].CopyFrom(tf.make_tensor_proto(z, dtype=spec.dtype))
received = predict_pb2.PredictRequest.FromString(request.SerializeToString())
z_back = tf.make_ndarray(received.inputs[name])
images = signature(**{name: tf.constant(z_back)})['image'].numpy()
print(json.dumps({'input': name, 'dtype': spec.dtype.name,
                  'shape': list(images.shape), 'min': float(images.min()),
                  'max': float(images.max()), 'same': bool((z == z_back).all())}))
'''


@pytest.mark.slow
def test_pushed_version_passes_tensorflow_serving_checks(exported_model,
                                                         tmp_path):
  serving = tmp_path / 'serving'
  _do(exported_model, serving, tmp_path, blessed=True)
  [version_dir] = [serving / n for n in _names(serving)]

  cli = pathlib.Path(sys.executable).with_name('saved_model_cli')
  shown = subprocess.run([str(cli), 'show', '--dir', str(version_dir), '--all'],
                         capture_output=True, text=True, check=True).stdout
  serving_default = shown.split("signature_def['serving_default']")[1]
  assert "inputs['z'] tensor_info:" in serving_default
  assert 'dtype: DT_FLOAT' in serving_default and 'shape: (-1, 2)' in shown
  assert "outputs['image'] tensor_info:" in serving_default
  assert 'shape: (-1, 28, 28, 1)' in serving_default

  result = subprocess.run([sys.executable, '-c', _PREDICT_CHECK,
                           str(version_dir)],
                          capture_output=True, text=True, check=True)
  checked = json.loads(result.stdout.strip().splitlines()[-1])
  assert checked['input'] == 'z' and checked['dtype'] == 'float32'
  assert checked['same'] is True
  assert checked['shape'] == [5, 28, 28, 1]
  assert 0.0 <= checked['min'] <= checked['max'] <= 1.0


def test_object_store_push_writes_in_place_with_saved_model_last(
    exported_model, monkeypatch):
  """TensorFlow's in-memory ram:// file system stands in for gs://."""
  serving = 'ram://serving-' + uuid.uuid4().hex
  written = []
  real_copy = executor.io_utils.fileio.copy

  def record_copy(src, dst, *args, **kwargs):
    if dst.endswith('saved_model.pb'):
      # Everything else is complete before the file a server looks for.
      version_dir = os.path.dirname(dst)
      assert tf.io.gfile.exists(os.path.join(version_dir, 'variables'))
      # The record, which makes the version count, comes after it.
      assert not tf.io.gfile.exists(
          os.path.join(version_dir, serving_layout.VERSION_RECORD_FILE))
    written.append(dst)
    return real_copy(src, dst, *args, **kwargs)

  def no_rename(*args, **kwargs):
    raise AssertionError('an object store push must not rename')

  monkeypatch.setattr(executor.io_utils.fileio, 'copy', record_copy)
  monkeypatch.setattr(executor.tf.io.gfile, 'rename', no_rename)
  assert serving_layout.is_object_store(serving)
  assert not serving_layout.is_object_store('/srv/models')
  version_dir = executor.push(
      os.path.join(exported_model, model_layout.SERVING_MODEL_DIR), serving,
      {'model_uri': exported_model})
  assert written[-1] == os.path.join(version_dir, 'saved_model.pb')
  assert serving_layout.latest_version_dir(serving) == version_dir
  serving_layout.verify_version(version_dir)
  assert not [n for n in tf.io.gfile.listdir(serving)
              if n.startswith(executor.TMP_PREFIX)]
  signature = tf.saved_model.load(version_dir).signatures['serving_default']
  assert signature(z=tf.zeros([1, 2]))['image'].shape == (1, 28, 28, 1)
