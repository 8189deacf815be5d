"""Which versions count: complete ones, by their record or, for versions
pushed before records, by saved_model.pb after the push info."""

import pathlib

import pytest

from components.atomic_pusher import executor as pusher
from layouts import model as model_layout
from layouts import serving as serving_layout


def _push(model_uri, serving):
  return pusher.push(str(pathlib.Path(model_uri, model_layout.SERVING_MODEL_DIR)),
                     str(serving), {'model_uri': model_uri})


def test_a_version_without_its_record_is_ignored(exported_model, tmp_path):
  serving = tmp_path / 'serving'
  complete = _push(exported_model, serving)
  # What a push killed half-way on an object store leaves: every file but
  # the record, under a higher number.
  partial = serving / '9999999999'
  pusher.copy_tree(complete, str(partial),
                   {serving_layout.VERSION_RECORD_FILE})
  assert (partial / 'saved_model.pb').exists()

  found = serving_layout.scan(str(serving))
  assert found.incomplete == {9999999999: str(partial)}
  assert serving_layout.latest_version_dir(str(serving)) == complete
  # A new version goes above it: its number is never reused.
  assert pusher.next_version(str(serving), 0) == 10000000000


def test_versions_pushed_before_records_count_once_whole(exported_model,
                                                         tmp_path):
  serving = tmp_path / 'serving'
  legacy = serving / '1700000000'
  pusher.copy_tree(str(pathlib.Path(exported_model, model_layout.SERVING_MODEL_DIR)),
                   str(legacy), {'saved_model.pb'})
  serving_layout.write_push_info(str(legacy), {'model_uri': exported_model})
  assert serving_layout.versions(str(serving)) == {}  # no saved_model.pb yet
  (legacy / 'saved_model.pb').write_bytes(
      pathlib.Path(exported_model, model_layout.SERVING_MODEL_DIR,
                   'saved_model.pb').read_bytes())
  assert serving_layout.versions(str(serving)) == {1700000000: str(legacy)}
  assert serving_layout.identity_of(str(legacy)) == (
      serving_layout.model_identity(str(pathlib.Path(
          exported_model, model_layout.SERVING_MODEL_DIR))))
  serving_layout.verify_version(str(legacy))
  (legacy / 'variables' / 'variables.index').unlink()
  with pytest.raises(serving_layout.VersionCorruptError,
                     match='lacks variables/variables.index'):
    serving_layout.verify_version(str(legacy))


def test_identity_is_the_weights_not_the_path(exported_model,
                                              other_exported_models, tmp_path):
  model_dir = pathlib.Path(exported_model, model_layout.SERVING_MODEL_DIR)
  moved = tmp_path / 'moved'
  pusher.copy_tree(str(model_dir), str(moved))
  assert serving_layout.model_identity(str(moved)) == (
      serving_layout.model_identity(str(model_dir)))
  other = pathlib.Path(other_exported_models[0], model_layout.SERVING_MODEL_DIR)
  assert serving_layout.model_identity(str(other)) != (
      serving_layout.model_identity(str(model_dir)))


def test_a_changed_or_added_file_makes_a_version_corrupt(exported_model,
                                                          tmp_path):
  version = pathlib.Path(_push(exported_model, tmp_path / 'serving'))
  serving_layout.verify_version(str(version))
  (version / 'assets.extra' / 'stray.txt').write_text('x')
  with pytest.raises(serving_layout.VersionCorruptError,
                     match='assets.extra/stray.txt was added'):
    serving_layout.verify_version(str(version))
