"""The layout of the push destination, shared by the evaluator and the pusher.

TensorFlow Serving watches a base directory and serves its highest numeric
sub-directory, each a SavedModel:

    <serving_dir>/<version>/saved_model.pb, variables/, assets.extra/...

Only the decoder is served. So that the next run's evaluator can measure the
served model on the same data (its -ELBO needs the encoder too), each pushed
version records where it came from in `assets.extra/` (a folder TensorFlow
Serving ignores, apart from warm-up requests):

    <version>/assets.extra/mnist_vae_push.json  {"model_uri": ..., ...}

and the statistics of the data it was trained on (the train split, as TFDV
computed them), the data gate's drift reference for the next data drop:

    <version>/assets.extra/mnist_vae_reference_stats.pb
      (a binary DatasetFeatureStatisticsList)

Directories whose names are not all digits (temporary copies) are ignored,
as TensorFlow Serving ignores them.
"""

import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

PUSH_INFO_FILE = os.path.join('assets.extra', 'mnist_vae_push.json')
REFERENCE_STATS_FILE = os.path.join('assets.extra',
                                    'mnist_vae_reference_stats.pb')


def versions(serving_dir: str) -> Dict[int, str]:
  """Version number -> directory of every complete version under serving_dir."""
  if not tf.io.gfile.isdir(serving_dir):
    return {}
  found = {}
  for name in tf.io.gfile.listdir(serving_dir):
    name = name.rstrip('/')
    path = os.path.join(serving_dir, name)
    if name.isdigit() and tf.io.gfile.isdir(path):
      found[int(name)] = path
  return found


def latest_version_dir(serving_dir: str) -> Optional[str]:
  """The directory TensorFlow Serving would serve, or None if there is none."""
  found = versions(serving_dir)
  return found[max(found)] if found else None


def write_push_info(version_dir: str, info: Dict[str, Any]) -> None:
  """Records where a pushed version came from (`model_uri` at least)."""
  if 'model_uri' not in info:
    raise ValueError('push info needs model_uri')
  path = os.path.join(version_dir, PUSH_INFO_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(info, f, indent=2, sort_keys=True)


def read_push_info(version_dir: str) -> Dict[str, Any]:
  """The push info of a served version.

  Raises:
    FileNotFoundError: the version has no push info (not pushed by this
      pipeline).
  """
  path = os.path.join(version_dir, PUSH_INFO_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f'{path} not found: {version_dir} was not pushed by this pipeline, so '
        'its encoder cannot be found')
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def write_reference_statistics(
    version_dir: str,
    statistics: statistics_pb2.DatasetFeatureStatisticsList) -> None:
  """Records the statistics of the data a version was trained on."""
  path = os.path.join(version_dir, REFERENCE_STATS_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(statistics.SerializeToString())


def read_reference_statistics(
    version_dir: str) -> Optional[statistics_pb2.DatasetFeatureStatisticsList]:
  """The statistics recorded with a version, or None if it has none (it was
  pushed before the data gate existed)."""
  path = os.path.join(version_dir, REFERENCE_STATS_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path, 'rb') as f:
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
