"""The layout of the push destination, shared by the data gate, the trainer
(warm start), the evaluator, the pusher and the rollback command.

TensorFlow Serving watches a base directory and serves its highest numeric
sub-directory, each a SavedModel:

    <serving_dir>/<version>/saved_model.pb, variables/, assets.extra/...

Only the decoder is served. So that the next run's evaluator can measure the
served model on the same data (its -ELBO needs the encoder too), each pushed
version records where it came from in `assets.extra/` (a folder TensorFlow
Serving ignores, apart from warm-up requests):

    <version>/assets.extra/mnist_vae_push.json  {"model_uri": ..., ...}

the rest of the model it was pushed from, so that a version stands without
the pipeline root (the evaluator measures it with its own encoder,
`--warm-start` starts from its own weights), in the Model artifact's layout
(see `layouts.model`):

    <version>/assets.extra/model/encoder/       the encoder SavedModel
    <version>/assets.extra/model/warm_start/    weights and hyperparameters

and the statistics of the data it was trained on (the train split, as TFDV
computed them), the data gate's drift reference for the next data drop:

    <version>/assets.extra/mnist_vae_reference_stats.pb
      (a binary DatasetFeatureStatisticsList)

Directories whose names are not all digits (temporary copies) are ignored,
as TensorFlow Serving ignores them.

The evaluator records in its blessing which version it measured
(`BLESSING_SERVED_VERSION_KEY`, the version directory or '' when nothing was
served), and the Pusher publishes only if that is still the newest version.
"""

import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from layouts import model as model_layout

PUSH_INFO_FILE = os.path.join('assets.extra', 'mnist_vae_push.json')
# The encoder and warm-start files, laid out as in the Model artifact.
MODEL_FILES_DIR = os.path.join('assets.extra', 'model')
# Custom property of the blessing: the version directory the evaluator
# measured the candidate against ('' when nothing was served).
BLESSING_SERVED_VERSION_KEY = 'served_version_dir'
REFERENCE_STATS_FILE = os.path.join('assets.extra',
                                    'mnist_vae_reference_stats.pb')


class NotPushedByPipelineError(FileNotFoundError):
  """A served version without this pipeline's push info, or without the
  model files that measuring it or warm-starting from it needs."""


def versions(serving_dir: str) -> Dict[int, str]:
  """Version number -> directory of every complete version under serving_dir.

  Raises:
    tf.errors.OpError: the directory cannot be listed.
  """
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


def version_name(version_dir: Optional[str]) -> str:
  """'1795476171' for a version directory, 'none' for no version."""
  return os.path.basename(version_dir.rstrip('/')) if version_dir else 'none'


def model_files_dir(version_dir: str) -> str:
  """Where a version keeps its encoder and warm-start files."""
  return os.path.join(version_dir, MODEL_FILES_DIR)


def model_dir_of(version_dir: str) -> str:
  """The directory holding a version's encoder and warm-start files.

  The version's own copy (`model_files_dir`); for a version pushed before
  versions carried one, the Model artifact it was pushed from, while the
  pipeline root still holds it.

  Raises:
    NotPushedByPipelineError: neither exists; the message says what to do.
  """
  own = model_files_dir(version_dir)
  if tf.io.gfile.exists(os.path.join(own, model_layout.ENCODER_DIR)):
    return own
  model_uri = read_push_info(version_dir)['model_uri']
  if tf.io.gfile.exists(os.path.join(model_uri, model_layout.ENCODER_DIR)):
    return model_uri
  raise NotPushedByPipelineError(
      f'{version_dir} carries no model files ({MODEL_FILES_DIR}/; it was '
      f'pushed before versions did) and the model it was pushed from, '
      f'{model_uri}, is gone with its pipeline root: remove that version '
      '(or roll back to a newer one) so that the next push replaces it')


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
    NotPushedByPipelineError: the version has no push info (not pushed by
      this pipeline).
  """
  path = os.path.join(version_dir, PUSH_INFO_FILE)
  if not tf.io.gfile.exists(path):
    raise NotPushedByPipelineError(
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
