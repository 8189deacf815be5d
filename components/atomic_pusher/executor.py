"""Pusher executor: an all-or-nothing, uniquely versioned filesystem push.

TFX's filesystem Pusher copies straight into `<base>/<unix seconds>/`, writing
saved_model.pb last (tfx#4466), so a TensorFlow Serving instance polling the
directory can load a half-copied version, and two pushes in one second
collide (the second is silently skipped). This executor instead, holding the
serving root's lock (`serving_lock`: one writer at a time, across output
directories and machines):

1. removes what writers that died left behind: `.tmp-push-*` directories and
   incomplete versions older than the lock's lease;
2. re-checks, against the newest complete version, that the model may be
   pushed (`reasons.not_pushed_reason`): it is not a model an operator rolled back
   from, not the model already served, and the served version is still the
   one the evaluator measured the candidate against (compare-and-swap);
3. picks version = max(unix seconds, newest existing version + 1), so
   versions are unique and increasing;
4. writes the version: the decoder, the encoder and warm-start files, the
   training data's statistics (the data gate's next drift reference), then
   saved_model.pb, then the version record (`layouts.serving`) that makes it
   complete. Locally it is written into a `.tmp-push-*` directory beside the
   versions (not all digits, so TensorFlow Serving ignores it) and renamed
   into place: a rename within one filesystem is atomic on POSIX. On object
   stores (s3://, gs://) a directory rename is a copy in listing order, so
   there the version is written in place, record last;
5. keeps the newest `keep_versions` complete versions (never removing the
   newest or the one just pushed).

On any failure the partial version is removed and the error re-raised.
"""

import datetime
import json
import logging
import os
import socket
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

from components import config as config_lib
from components.atomic_pusher import reasons
from layouts import anchor as anchor_layout
from layouts import contracts
from layouts import model as model_layout
from layouts import serving as serving_layout
from layouts import serving_lock
from layouts import spans as spans_layout

logger = logging.getLogger(__name__)

TMP_PREFIX = '.tmp-push-'
STATISTICS_KEY = 'statistics'
# components.config.ServingConfig, as JSON; without it nothing is pruned.
CONFIG_KEY = 'config'
# Renames retried when the version was taken by a writer outside the lock.
_MAX_VERSION_TRIES = 100


def next_version(serving_dir: str, now: float) -> int:
  """A version number above every numeric directory, complete or not (a
  partial version's number is never reused), normally the unix time."""
  found = serving_layout.scan(serving_dir)
  existing = list(found.complete) + list(found.incomplete)
  return max(int(now), max(existing, default=0) + 1)


def copy_tree(src: str, dst: str, skip: Optional[set] = None) -> None:
  """Copies every file below `src` to the same relative path below `dst`
  (nested SavedModels whole), except the relative paths in `skip`; the top
  level saved_model.pb last, so a server that waits for it never loads a
  partial copy."""
  last = None
  for relative, path in serving_layout.files_below(src, skip):
    if relative == serving_layout.SAVED_MODEL_FILE:
      last = path
      continue
    target = os.path.join(dst, relative)
    tf.io.gfile.makedirs(os.path.dirname(target))
    io_utils.fileio.copy(path, target, overwrite=True)
  if last is not None:
    tf.io.gfile.makedirs(dst)
    io_utils.fileio.copy(last, os.path.join(dst, serving_layout.SAVED_MODEL_FILE),
                         overwrite=True)


def _age_seconds(path: str, now: float) -> float:
  """Seconds since anything below `path` last changed."""
  newest = (0.0 if serving_layout.is_object_store(path)
            else tf.io.gfile.stat(path).mtime_nsec / 1e9)
  for _, file_path in serving_layout.files_below(path):
    newest = max(newest, tf.io.gfile.stat(file_path).mtime_nsec / 1e9)
  return now - newest if newest else float('inf')


def _write_pending(version_dir: str) -> None:
  """Marks a version directory as a push of this pipeline under way."""
  path = os.path.join(version_dir, serving_layout.PENDING_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump({'host': socket.gethostname(), 'pid': os.getpid(),
               'started_at': datetime.datetime.now(
                   datetime.timezone.utc).isoformat()}, f)


def publish(lease: serving_lock.Lease, serving_dir: str,
            fill: Callable[[str], None], push_info: Dict[str, Any],
            model_sha256: str) -> str:
  """Publishes a new version: `fill(directory)` writes its files
  (saved_model.pb last), then the version record makes it complete.
  Returns the version's directory.

  `lease` is the serving root's lock, held by the caller. On a local file
  system the version is filled in a temporary directory and renamed into
  place (atomic); on an object store it is filled in place.
  """
  tf.io.gfile.makedirs(serving_dir)
  if serving_layout.is_object_store(serving_dir):
    version_dir = os.path.join(serving_dir,
                               str(next_version(serving_dir, time.time())))
    try:
      _write_pending(version_dir)
      fill(version_dir)
      lease.check()
      serving_layout.write_version_record(version_dir, push_info,
                                          model_sha256)
    except BaseException:
      if tf.io.gfile.exists(version_dir):
        tf.io.gfile.rmtree(version_dir)
      raise
    return version_dir
  tmp_dir = os.path.join(serving_dir, TMP_PREFIX + uuid.uuid4().hex)
  try:
    _write_pending(tmp_dir)
    fill(tmp_dir)
    serving_layout.write_version_record(tmp_dir, push_info, model_sha256)
    lease.check()
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


def publish_model(lease: serving_lock.Lease, serving_dir: str, model_dir: str,
                  push_info: Dict[str, Any],
                  reference_statistics: Optional[
                      statistics_pb2.DatasetFeatureStatisticsList] = None,
                  model_files: Optional[Dict[str, str]] = None) -> str:
  """Publishes the SavedModel `model_dir` as a new version; returns its dir.

  `reference_statistics` (the training data's) go into the version too, and
  `model_files` (name -> directory, e.g. the encoder) under
  `serving_layout.MODEL_FILES_DIR`.
  """
  if not tf.io.gfile.exists(os.path.join(model_dir,
                                         serving_layout.SAVED_MODEL_FILE)):
    raise FileNotFoundError(f'{model_dir} is not a SavedModel '
                            '(no saved_model.pb)')

  def fill(version_dir: str) -> None:
    copy_tree(model_dir, version_dir, {serving_layout.SAVED_MODEL_FILE})
    for name, source in (model_files or {}).items():
      copy_tree(source, os.path.join(
          serving_layout.model_files_dir(version_dir), name))
    if reference_statistics is not None:
      serving_layout.write_reference_statistics(version_dir,
                                                reference_statistics)
    io_utils.fileio.copy(
        os.path.join(model_dir, serving_layout.SAVED_MODEL_FILE),
        os.path.join(version_dir, serving_layout.SAVED_MODEL_FILE),
        overwrite=True)

  return publish(lease, serving_dir, fill, push_info,
                 serving_layout.model_identity(model_dir))


class RejectedModelError(ValueError):
  """The model is one an operator rolled back from."""


def push(model_dir: str, serving_dir: str, push_info: Dict[str, Any],
         reference_statistics: Optional[
             statistics_pb2.DatasetFeatureStatisticsList] = None,
         model_files: Optional[Dict[str, str]] = None) -> str:
  """`publish_model` under the serving root's lock: a new version of
  `model_dir`; returns its directory. No blessing is checked (the Executor
  does that), but a rejected model is refused here too.

  Raises:
    RejectedModelError: an operator rolled back from this model.
  """
  with serving_lock.serving_lock(serving_dir, 'push') as lease:
    reason = reasons.rejected_reason(
        serving_layout.model_identity(model_dir), serving_dir)
    if reason:
      raise RejectedModelError(f'{model_dir}: {reason}')
    return publish_model(lease, serving_dir, model_dir, push_info,
                         reference_statistics, model_files)


def prune_versions(serving_dir: str, keep: int, pushed_dir: str) -> List[str]:
  """Removes the oldest complete versions beyond `keep`; returns what was
  removed. Never removes the newest version or `pushed_dir`."""
  found = serving_layout.versions(serving_dir)
  protected = {found[max(found)], pushed_dir.rstrip('/')} if found else set()
  removable = [found[v] for v in sorted(found) if found[v] not in protected]
  removed = removable[:max(0, len(found) - keep)]
  for version_dir in removed:
    tf.io.gfile.rmtree(version_dir)
    logger.info('Removed old version %s (keeping %d)', version_dir, keep)
  return removed


def remove_leftovers(serving_dir: str, now: float,
                     max_age: float = serving_lock.DEFAULT_LEASE_SECONDS
                     ) -> List[str]:
  """Removes `.tmp-push-*` directories and incomplete versions unchanged for
  `max_age` seconds (left by writers that died); returns what was removed.
  Call it holding the serving root's lock."""
  if not tf.io.gfile.isdir(serving_dir):
    return []
  candidates = [os.path.join(serving_dir, name.rstrip('/'))
                for name in tf.io.gfile.listdir(serving_dir)
                if name.startswith(TMP_PREFIX)]
  # Only incomplete versions of this pipeline's: not a copy by hand under way.
  candidates += [path for path in
                 serving_layout.scan(serving_dir).incomplete.values()
                 if serving_layout.is_ours(path)]
  removed = []
  for path in candidates:
    age = _age_seconds(path, now)
    if age > max_age:
      tf.io.gfile.rmtree(path)
      removed.append(path)
      logger.warning('Removed %s, left by a push that died (unchanged for '
                     '%.0f s)', path, age)
  return removed


def update_anchor(serving_dir: str,
                  reference: statistics_pb2.DatasetFeatureStatisticsList,
                  statistics: types.Artifact, version_dir: str) -> None:
  """Sets the drift anchor to the pushed model's training data if none is
  set (the first push) or if the run accepted drift (`layouts.anchor`).
  The caller holds the lock."""
  accepted = (statistics.has_custom_property(anchor_layout.ACCEPT_DRIFT_PROPERTY)
              and statistics.get_int_custom_property(
                  anchor_layout.ACCEPT_DRIFT_PROPERTY))
  if anchor_layout.read_record(serving_dir) is not None and not accepted:
    return
  window = []
  if statistics.has_custom_property(spans_layout.WINDOW_PROPERTY):
    window = [s.span for s in spans_layout.decode_window(
        statistics.get_string_custom_property(spans_layout.WINDOW_PROPERTY))]
  anchor_layout.set_anchor(
      serving_dir, reference,
      anchor_layout.ACCEPTED_DRIFT if accepted else anchor_layout.FIRST_PUSH,
      version=os.path.basename(version_dir), span=statistics.span,
      window=window, statistics_uri=statistics.uri)


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
    nothing_new = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_BLESSING_KEY]
    ).get_string_custom_property(contracts.NOTHING_NEW_KEY)
    if nothing_new:
      logger.info('Nothing pushed: %s', nothing_new)
      self._MarkNotPushed(pushed_model)
      for key in (contracts.NOT_PUSHED_REASON_KEY, contracts.NOTHING_NEW_KEY):
        pushed_model.set_string_custom_property(key, nothing_new)
      return
    if not self.CheckBlessing(input_dict):
      logger.info('Model not blessed: nothing pushed')
      self._MarkNotPushed(pushed_model)
      return
    model = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_KEY])
    blessing = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_BLESSING_KEY])
    model_dir = self.GetModelPath(input_dict)
    model_sha256 = serving_layout.model_identity(model_dir)
    reference, statistics = None, None
    if input_dict.get(STATISTICS_KEY):
      statistics = artifact_utils.get_single_instance(
          input_dict[STATISTICS_KEY])
      reference = stats_artifact_utils.load_statistics(
          statistics, contracts.TRAIN_SPLIT).proto()
    keep = (config_lib.from_json(config_lib.ServingConfig,
                                 exec_properties[CONFIG_KEY]).keep_versions
            if exec_properties.get(CONFIG_KEY) else None)
    with serving_lock.serving_lock(serving_dir, 'push') as lease:
      remove_leftovers(serving_dir, time.time())
      reason = reasons.not_pushed_reason(model_sha256, blessing, serving_dir)
      if reason:
        logger.warning('Nothing pushed: %s', reason)
        self._MarkNotPushed(pushed_model)
        pushed_model.set_string_custom_property(
            contracts.NOT_PUSHED_REASON_KEY, reason)
        return
      version_dir = publish_model(
          lease, serving_dir, model_dir,
          {serving_layout.MODEL_URI_KEY: model.uri, 'model_id': model.id,
           'pushed_at': datetime.datetime.now(
               datetime.timezone.utc).isoformat(),
           # What it was trained on (layouts/lineage.py), or None.
           contracts.TRAINED_ON_KEY: json.loads(
               model.get_string_custom_property(contracts.TRAINED_ON_KEY)
               or 'null')},
          reference,
          # So that the version stands without the pipeline root.
          {name: os.path.join(model.uri, name)
           for name in (model_layout.ENCODER_DIR,
                        model_layout.WARM_START_DIR)})
      logger.info('Pushed the decoder to %s (model %s)', version_dir,
                  model_sha256[:12])
      if reference is not None:
        update_anchor(serving_dir, reference, statistics, version_dir)
      if keep:
        prune_versions(serving_dir, int(keep), version_dir)
    # Archive a copy with the PushedModel artifact, as TFX's Pusher does.
    copy_tree(version_dir, pushed_model.uri)
    self._MarkPushed(pushed_model, pushed_destination=version_dir,
                     pushed_version=os.path.basename(version_dir))
