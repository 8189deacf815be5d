"""Pusher executor: an all-or-nothing, uniquely versioned filesystem push.

TFX's filesystem Pusher copies straight into `<base>/<unix seconds>/`, writing
saved_model.pb last (tfx#4466), so a TensorFlow Serving instance polling the
directory can load a half-copied version, and two pushes in one second
collide (the second is silently skipped). This executor instead

1. copies the model into a temporary directory beside the versions, named
   `.tmp-push-...` (not all digits, so TensorFlow Serving ignores it), and
   records the push info and the training data's statistics, the data
   gate's next drift reference (see `components.serving_layout`);
2. renames it to `<base>/<version>`: a rename within one filesystem is atomic
   on POSIX, so the version appears complete or not at all;
3. picks version = max(unix seconds, newest existing version + 1), so versions
   are unique and increasing even for several pushes in the same second.

On any failure the temporary directory is removed and the error re-raised.
On object stores (gs://) a directory rename is a copy, not atomic: there,
TensorFlow Serving may still see a partial version while it is renamed.
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

from components import serving_layout

logger = logging.getLogger(__name__)

TMP_PREFIX = '.tmp-push-'
STATISTICS_KEY = 'statistics'
CODE_FINGERPRINT_KEY = 'code_fingerprint'
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


def push(model_dir: str, serving_dir: str, push_info: Dict[str, Any],
         reference_statistics: Optional[
             statistics_pb2.DatasetFeatureStatisticsList] = None) -> str:
  """Publishes the SavedModel `model_dir` as a new version; returns its dir.

  `reference_statistics` (the training data's) go into the version too.
  """
  if not tf.io.gfile.exists(os.path.join(model_dir, 'saved_model.pb')):
    raise FileNotFoundError(f'{model_dir} is not a SavedModel '
                            '(no saved_model.pb)')
  tf.io.gfile.makedirs(serving_dir)
  tmp_dir = os.path.join(serving_dir, TMP_PREFIX + uuid.uuid4().hex)
  try:
    copy_model(model_dir, tmp_dir)
    serving_layout.write_push_info(tmp_dir, push_info)
    if reference_statistics is not None:
      serving_layout.write_reference_statistics(tmp_dir, reference_statistics)
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


class Executor(tfx_pusher_executor.Executor):
  """TFX Pusher executor with atomic, uniquely versioned filesystem pushes."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    pushed_model = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      logger.info('Model not blessed: nothing pushed')
      self._MarkNotPushed(pushed_model)
      return
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
        destination)
    if destination.WhichOneof('destination') != 'filesystem':
      raise NotImplementedError(
          'AtomicPusher pushes to a filesystem destination only, got '
          f'{destination.WhichOneof("destination")}')
    model = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_KEY])
    reference = None
    if input_dict.get(STATISTICS_KEY):
      statistics = artifact_utils.get_single_instance(
          input_dict[STATISTICS_KEY])
      reference = stats_artifact_utils.load_statistics(
          statistics, TRAIN_SPLIT).proto()
    version_dir = push(
        self.GetModelPath(input_dict), destination.filesystem.base_directory,
        {'model_uri': model.uri, 'model_id': model.id,
         'pushed_at': datetime.datetime.now(datetime.timezone.utc).isoformat()},
        reference)
    logger.info('Pushed the decoder to %s', version_dir)
    # Archive a copy with the PushedModel artifact, as TFX's Pusher does.
    copy_model(version_dir, pushed_model.uri)
    self._MarkPushed(pushed_model, pushed_destination=version_dir,
                     pushed_version=os.path.basename(version_dir))
