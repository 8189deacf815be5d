"""Pusher executor: an all-or-nothing, uniquely versioned filesystem push.

TFX's filesystem Pusher copies straight into `<base>/<unix seconds>/`, writing
saved_model.pb last (tfx#4466), so a TensorFlow Serving instance polling the
directory can load a half-copied version, and two pushes in one second
collide (the second is silently skipped). This executor instead

1. copies the model into a temporary directory beside the versions, named
   `.tmp-push-...` (not all digits, so TensorFlow Serving ignores it), and
   records the push info and the training data's statistics, the data
   gate's next drift reference (see `layouts.serving`);
2. renames it to `<base>/<version>`: a rename within one filesystem is atomic
   on POSIX, so the version appears complete or not at all;
3. picks version = max(unix seconds, newest existing version + 1), so versions
   are unique and increasing even for several pushes in the same second.

Before publishing it checks that the newest version is still the one the
evaluator measured the candidate against (compare-and-swap): if another push
came in between, it publishes nothing and says why. After a push it keeps
the newest `keep_versions` versions (never removing the newest or the one
just pushed), and it removes `.tmp-push-*` directories left by pushes that
died (older than an hour).

On any failure the temporary directory is removed and the error re-raised.
On object stores (gs://) a directory rename is a copy in listing order, in
which saved_model.pb can land before variables/: there the version is
written in place instead, in a safe order (saved_model.pb last), and is not
atomic.
"""

import datetime
import logging
import os
import time
import uuid
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

from layouts import serving as serving_layout
from models import export

logger = logging.getLogger(__name__)

TMP_PREFIX = '.tmp-push-'
STATISTICS_KEY = 'statistics'
CODE_FINGERPRINT_KEY = 'code_fingerprint'
KEEP_VERSIONS_KEY = 'keep_versions'
# PushedModel custom property: why a blessed model was not pushed.
NOT_PUSHED_REASON_KEY = 'not_pushed_reason'
# A temporary push directory older than this was left by a push that died.
STALE_TMP_SECONDS = 3600
# The split whose statistics describe the data the model was trained on.
TRAIN_SPLIT = 'train'
# Renames retried when another push took the version first.
_MAX_VERSION_TRIES = 100


def next_version(serving_dir: str, now: float) -> int:
  """A version number above every existing one, normally the unix time."""
  existing = serving_layout.versions(serving_dir)
  return max(int(now), max(existing, default=0) + 1)


def copy_model(src: str, dst: str) -> None:
  """Copies a SavedModel directory (saved_model.pb last)."""
  io_utils.copy_dir(src, dst, deny_regex_patterns=[r'saved_model\.pb$'])
  io_utils.copy_file(os.path.join(src, 'saved_model.pb'),
                     os.path.join(dst, 'saved_model.pb'))


def is_object_store(path: str) -> bool:
  """Whether `path` is on an object store (gs://, s3://...), where a directory
  rename is a copy in listing order, not an atomic rename."""
  return '://' in path and not path.startswith('file://')


def write_version(version_dir: str, model_dir: str, push_info: Dict[str, Any],
                  reference_statistics: Optional[
                      statistics_pb2.DatasetFeatureStatisticsList] = None,
                  model_files: Optional[Dict[str, str]] = None) -> None:
  """Writes a complete version: variables and assets first, then the extras
  (model files, push info, reference statistics), saved_model.pb last, so a
  server that only loads directories with a saved_model.pb never loads a
  partial one."""
  io_utils.copy_dir(model_dir, version_dir,
                    deny_regex_patterns=[r'saved_model\.pb$'])
  for name, source in (model_files or {}).items():
    io_utils.copy_dir(source, os.path.join(
        serving_layout.model_files_dir(version_dir), name))
  serving_layout.write_push_info(version_dir, push_info)
  if reference_statistics is not None:
    serving_layout.write_reference_statistics(version_dir,
                                              reference_statistics)
  io_utils.copy_file(os.path.join(model_dir, 'saved_model.pb'),
                     os.path.join(version_dir, 'saved_model.pb'))


def push(model_dir: str, serving_dir: str, push_info: Dict[str, Any],
         reference_statistics: Optional[
             statistics_pb2.DatasetFeatureStatisticsList] = None,
         model_files: Optional[Dict[str, str]] = None) -> str:
  """Publishes the SavedModel `model_dir` as a new version; returns its dir.

  `reference_statistics` (the training data's) go into the version too, and
  `model_files` (name -> directory, e.g. the encoder) under
  `serving_layout.MODEL_FILES_DIR`. On a local file system the version is
  written into a temporary directory and renamed into place (atomic); on an
  object store it is written in place, saved_model.pb last.
  """
  if not tf.io.gfile.exists(os.path.join(model_dir, 'saved_model.pb')):
    raise FileNotFoundError(f'{model_dir} is not a SavedModel '
                            '(no saved_model.pb)')
  tf.io.gfile.makedirs(serving_dir)
  contents = (model_dir, push_info, reference_statistics, model_files)
  if is_object_store(serving_dir):
    return _push_in_place(serving_dir, contents)
  tmp_dir = os.path.join(serving_dir, TMP_PREFIX + uuid.uuid4().hex)
  try:
    write_version(tmp_dir, *contents)
    version = next_version(serving_dir, time.time())
    for _ in range(_MAX_VERSION_TRIES):
      version_dir = os.path.join(serving_dir, str(version))
      try:
        tf.io.gfile.rename(tmp_dir, version_dir, overwrite=False)
        return version_dir
      except tf.errors.AlreadyExistsError:
        version += 1
    raise RuntimeError(f'No free version under {serving_dir} after '
                       f'{_MAX_VERSION_TRIES} tries')
  finally:
    if tf.io.gfile.exists(tmp_dir):
      tf.io.gfile.rmtree(tmp_dir)


def _push_in_place(serving_dir: str, contents: tuple) -> str:
  """Writes a new version straight into its final directory (object stores).

  Not atomic: a listing during the copy shows a version without
  saved_model.pb, which TensorFlow Serving does not load until it is there.
  A failed copy is removed.
  """
  version = next_version(serving_dir, time.time())
  for _ in range(_MAX_VERSION_TRIES):
    version_dir = os.path.join(serving_dir, str(version))
    if not tf.io.gfile.exists(version_dir):
      break
    version += 1
  else:
    raise RuntimeError(f'No free version under {serving_dir} after '
                       f'{_MAX_VERSION_TRIES} tries')
  try:
    write_version(version_dir, *contents)
  except BaseException:
    if tf.io.gfile.exists(version_dir):
      tf.io.gfile.rmtree(version_dir)
    raise
  return version_dir


def already_served_reason(model_uri: str, serving_dir: str) -> Optional[str]:
  """Why not to push: the newest version is this very model (a rerun after
  its own push re-evaluates it against itself); None otherwise."""
  current = serving_layout.latest_version_dir(serving_dir)
  if current is None:
    return None
  try:
    served_uri = serving_layout.read_push_info(current).get('model_uri')
  except serving_layout.NotPushedByPipelineError:
    return None
  if served_uri != model_uri:
    return None
  return (f'the candidate is already served as version '
          f'{serving_layout.version_name(current)}')


def served_changed_reason(blessing: types.Artifact,
                          serving_dir: str) -> Optional[str]:
  """Why publishing now would go backwards, or None if it may go ahead.

  The blessing records the version the evaluator measured the candidate
  against; if the newest version is another one, the comparison is stale.
  """
  if not blessing.has_custom_property(
      serving_layout.BLESSING_SERVED_VERSION_KEY):
    return ('the blessing does not record which served model it was '
            'measured against (it predates compare-and-swap); run again')
  evaluated = blessing.get_string_custom_property(
      serving_layout.BLESSING_SERVED_VERSION_KEY) or None
  current = serving_layout.latest_version_dir(serving_dir)
  if (evaluated or '').rstrip('/') == (current or '').rstrip('/'):
    return None
  return (f'served model changed since evaluation '
          f'({serving_layout.version_name(evaluated)} -> '
          f'{serving_layout.version_name(current)}); run again')


def prune_versions(serving_dir: str, keep: int, pushed_dir: str) -> List[str]:
  """Removes the oldest versions beyond `keep`; returns what was removed.

  Never removes the newest version or `pushed_dir`.
  """
  found = serving_layout.versions(serving_dir)
  protected = {found[max(found)], pushed_dir.rstrip('/')} if found else set()
  removable = [found[v] for v in sorted(found) if found[v] not in protected]
  removed = removable[:max(0, len(found) - keep)]
  for version_dir in removed:
    tf.io.gfile.rmtree(version_dir)
    logger.info('Removed old version %s (keeping %d)', version_dir, keep)
  return removed


def remove_stale_tmp_dirs(serving_dir: str, now: float,
                          max_age: float = STALE_TMP_SECONDS) -> List[str]:
  """Removes `.tmp-push-*` directories older than `max_age` seconds."""
  if not tf.io.gfile.isdir(serving_dir):
    return []
  removed = []
  for name in tf.io.gfile.listdir(serving_dir):
    path = os.path.join(serving_dir, name.rstrip('/'))
    if not name.startswith(TMP_PREFIX):
      continue
    age = now - tf.io.gfile.stat(path).mtime_nsec / 1e9
    if age > max_age:
      tf.io.gfile.rmtree(path)
      removed.append(path)
      logger.info('Removed %s, left by a push that died %.0f s ago', path, age)
  return removed


class Executor(tfx_pusher_executor.Executor):
  """TFX Pusher executor with atomic, uniquely versioned filesystem pushes."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    pushed_model = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
        destination)
    if destination.WhichOneof('destination') != 'filesystem':
      raise NotImplementedError(
          'AtomicPusher pushes to a filesystem destination only, got '
          f'{destination.WhichOneof("destination")}')
    serving_dir = destination.filesystem.base_directory
    remove_stale_tmp_dirs(serving_dir, time.time())
    if not self.CheckBlessing(input_dict):
      logger.info('Model not blessed: nothing pushed')
      self._MarkNotPushed(pushed_model)
      return
    model = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_KEY])
    reason = already_served_reason(model.uri, serving_dir) or (
        served_changed_reason(
            artifact_utils.get_single_instance(
                input_dict[standard_component_specs.MODEL_BLESSING_KEY]),
            serving_dir))
    if reason:
      logger.warning('Nothing pushed: %s', reason)
      self._MarkNotPushed(pushed_model)
      pushed_model.set_string_custom_property(NOT_PUSHED_REASON_KEY, reason)
      return
    reference = None
    if input_dict.get(STATISTICS_KEY):
      statistics = artifact_utils.get_single_instance(
          input_dict[STATISTICS_KEY])
      reference = stats_artifact_utils.load_statistics(
          statistics, TRAIN_SPLIT).proto()
    version_dir = push(
        self.GetModelPath(input_dict), serving_dir,
        {'model_uri': model.uri, 'model_id': model.id,
         'pushed_at': datetime.datetime.now(datetime.timezone.utc).isoformat()},
        reference,
        # So that the version stands without the pipeline root.
        {name: os.path.join(model.uri, name)
         for name in (export.ENCODER_DIR, export.WARM_START_DIR)})
    logger.info('Pushed the decoder to %s', version_dir)
    # Archive a copy with the PushedModel artifact, as TFX's Pusher does.
    copy_model(version_dir, pushed_model.uri)
    self._MarkPushed(pushed_model, pushed_destination=version_dir,
                     pushed_version=os.path.basename(version_dir))
    keep = exec_properties.get(KEEP_VERSIONS_KEY)
    if keep:
      prune_versions(serving_dir, int(keep), version_dir)
