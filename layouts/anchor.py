"""The data gate's fixed reference, the *anchor*, in the serving root.

The gate measures every drop against two references: the data the served
model was trained on (it moves with every push, and catches a sudden change)
and the anchor (it catches a slow creep, which passes the moving reference
one small step at a time). The anchor is the training data of the first
version pushed to the serving root, and moves only by an operator's action:
a run with `--accept-drift` whose model is pushed, or
`python -m pipeline.anchor --set` (see there). A push alone, or a rollback,
never moves it.

    <serving_dir>/drift_anchor.json          RECORD_FILE: the record
    <serving_dir>/drift_anchor/<sha256>.pb   the statistics it names (a binary
                                             DatasetFeatureStatisticsList of
                                             one split, with its mean image)

The statistics file is content-addressed and written first; the record
(`statistics`, its `sha256`, where it came from, why and when it was set, and
the earlier records as `history`) replaces the old one in one write, so a
reader sees the old anchor or the new one, locally and on object stores. It
lives beside the versions (TensorFlow Serving ignores names that are not all
digits), so it survives a lost pipeline root and retention.
"""

import datetime
import hashlib
import logging
import os
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from layouts import serving as serving_layout

logger = logging.getLogger(__name__)

RECORD_FILE = 'drift_anchor.json'
STATISTICS_DIR = 'drift_anchor'
# Why the anchor was set (the record's `set_by`).
FIRST_PUSH = 'first push'
ACCEPTED_DRIFT = 'run with --accept-drift'
OPERATOR = 'python -m pipeline.anchor'
# Custom property of the data gate's `gated_statistics`: 1 when the run
# accepted drift, so that the Pusher moves the anchor to its data.
ACCEPT_DRIFT_PROPERTY = 'accept_drift'
# Statistics files of earlier anchors kept (the record's history names them).
KEEP_STATISTICS = 5


class AnchorCorruptError(RuntimeError):
  """The anchor's statistics are missing or not what its record says."""


def read_record(serving_dir: str) -> Optional[Dict[str, Any]]:
  """The anchor's record, or None if no anchor is set."""
  return serving_layout.read_json(os.path.join(serving_dir, RECORD_FILE))


def read_anchor(serving_dir: str) -> Tuple[
    Optional[statistics_pb2.DatasetFeatureStatisticsList],
    Optional[Dict[str, Any]]]:
  """(statistics, record) of the anchor, or (None, None) if none is set.

  Raises:
    AnchorCorruptError: the statistics the record names are missing or do
      not have its SHA-256.
  """
  record = read_record(serving_dir)
  if record is None:
    return None, None
  path = os.path.join(serving_dir, record['statistics'])
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      content = f.read()
  except tf.errors.NotFoundError as e:
    raise AnchorCorruptError(
        f'{path}: the drift anchor\'s statistics, named by '
        f'{os.path.join(serving_dir, RECORD_FILE)}, are missing') from e
  if hashlib.sha256(content).hexdigest() != record['sha256']:
    raise AnchorCorruptError(
        f'{path}: the drift anchor\'s statistics do not match the SHA-256 in '
        f'{os.path.join(serving_dir, RECORD_FILE)}')
  return (statistics_pb2.DatasetFeatureStatisticsList.FromString(content),
          record)


def set_anchor(serving_dir: str,
               statistics: statistics_pb2.DatasetFeatureStatisticsList,
               set_by: str, **source: Any) -> Dict[str, Any]:
  """Makes `statistics` the anchor; returns the new record.

  The caller holds the serving root's lock (`layouts.serving_lock`).

  Args:
    serving_dir: the serving root.
    statistics: one split's statistics, with its mean image.
    set_by: FIRST_PUSH, ACCEPTED_DRIFT or OPERATOR.
    **source: where the data came from (version, span, window, reason...),
      kept in the record.
  """
  content = statistics.SerializeToString(deterministic=True)
  sha256 = hashlib.sha256(content).hexdigest()
  relative = f'{STATISTICS_DIR}/{sha256}.pb'
  path = os.path.join(serving_dir, relative)
  tf.io.gfile.makedirs(os.path.dirname(path))
  if not tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path, 'wb') as f:
      f.write(content)
  previous = read_record(serving_dir)
  history = []
  if previous is not None:
    history = previous.pop('history', []) + [previous]
  record = {
      'statistics': relative, 'sha256': sha256, 'set_by': set_by,
      'set_at': datetime.datetime.now(datetime.timezone.utc).isoformat(),
      **source, 'history': history}
  serving_layout.replace_json(os.path.join(serving_dir, RECORD_FILE), record)
  _prune(serving_dir, record)
  logger.info('Drift anchor of %s set (%s): %s', serving_dir, set_by,
              {k: v for k, v in source.items() if k != 'statistics'})
  return record


def _prune(serving_dir: str, record: Dict[str, Any]) -> None:
  """Removes statistics files no record among the newest KEEP_STATISTICS
  names."""
  keep = {r['statistics'] for r in
          ([record] + record['history'][::-1])[:KEEP_STATISTICS]}
  directory = os.path.join(serving_dir, STATISTICS_DIR)
  for name in tf.io.gfile.listdir(directory):
    if f'{STATISTICS_DIR}/{name}' not in keep:
      tf.io.gfile.remove(os.path.join(directory, name))
