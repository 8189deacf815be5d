"""The layout of the push destination, shared by the data gate, the trainer
(warm start), the evaluator, the pusher and the rollback command.

TensorFlow Serving watches a base directory and serves its highest numeric
sub-directory, each a SavedModel:

    <serving_dir>/<version>/saved_model.pb, variables/, assets.extra/...

Only the decoder is served. Everything else a later run needs is kept in
`assets.extra/` (a folder TensorFlow Serving ignores, apart from warm-up
requests), in the Model artifact's layout (see `layouts.model`), so that a
version stands without the pipeline root:

    <version>/assets.extra/model/encoder/       the encoder SavedModel (the
                                                evaluator measures the served
                                                model with it)
    <version>/assets.extra/model/warm_start/    weights and hyperparameters
    <version>/assets.extra/mnist_vae_reference_stats.pb
        the statistics of the data it was trained on (a binary
        DatasetFeatureStatisticsList), the data gate's drift reference
    <version>/assets.extra/mnist_vae_version.json
        the version record, written last: where the version came from (its
        push info), its model's identity and the size and SHA-256 of every
        other file of the version

Every push writes `assets.extra/mnist_vae_pending.json` first. A version is
*complete* once its record is there; only complete versions count, for the
gate, the evaluator, warm start, rollback and retention. An incomplete one (a
push killed half-way on an object store) is ignored and named in the log.
Versions pushed before records existed (their push info is
`assets.extra/mnist_vae_push.json`, written before `saved_model.pb`, which
was copied last) and versions this pipeline did not push have no pending
file: they count once `saved_model.pb` is there, as TensorFlow Serving would
load them (a foreign version blocks pushes, since it cannot be measured).

A model's *identity* is the SHA-256 of its decoder's variables (names, dtypes,
shapes and values), so the same weights have the same identity wherever they
are stored; paths repeat once a metadata store is recreated.

Beside the versions, in the serving root itself (names that are not all
digits, which TensorFlow Serving ignores):

    <serving_dir>/rejections.json    the models an operator rolled back from
                                     (and took back), see `layouts.rejections`
    <serving_dir>/.serving.lock      the writers' lock (`layouts.serving_lock`)
    <serving_dir>/drift_anchor.json  the data gate's fixed reference
                                     (`layouts.anchor`)
    <serving_dir>/span_verdicts.json the gate's verdict on each span
                                     (`layouts.spans`)

The evaluator records in its blessing which version it measured
(`BLESSING_SERVED_VERSION_KEY`, the version directory or '' when nothing was
served), and the Pusher publishes only if that is still the newest complete
version.
"""

import hashlib
import json
import logging
import os
from typing import Any, Dict, Iterator, NamedTuple, Optional, Tuple

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from layouts import model as model_layout

logger = logging.getLogger(__name__)

VERSION_RECORD_FILE = os.path.join('assets.extra', 'mnist_vae_version.json')
# Written first by every push: a version with it but without its record is
# a push of this pipeline that is under way or died.
PENDING_FILE = os.path.join('assets.extra', 'mnist_vae_pending.json')
# Push info of versions pushed before version records existed.
PUSH_INFO_FILE = os.path.join('assets.extra', 'mnist_vae_push.json')
# The encoder and warm-start files, laid out as in the Model artifact.
MODEL_FILES_DIR = os.path.join('assets.extra', 'model')
REFERENCE_STATS_FILE = os.path.join('assets.extra',
                                    'mnist_vae_reference_stats.pb')
SAVED_MODEL_FILE = 'saved_model.pb'
# Custom property of the blessing: the version directory the evaluator
# measured the candidate against ('' when nothing was served).
BLESSING_SERVED_VERSION_KEY = 'served_version_dir'

# Keys of the version record.
RECORD_PUSH_KEY = 'push'
RECORD_MODEL_KEY = 'model_sha256'
RECORD_FILES_KEY = 'files'
# Push info keys written by the Pusher and the rollback command.
MODEL_URI_KEY = 'model_uri'
RESTORED_VERSION_KEY = 'restored_version'
ROLLED_BACK_FROM_KEY = 'rolled_back_from'
# The checkpoint entry that describes the object graph, not a weight.
_OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH'
_HASH_CHUNK = 1 << 20
# What a reader retries: I/O failures that may pass (a storage hiccup, a
# connection reset). NotPushedByPipelineError is a FileNotFoundError but a
# verdict, so readers catch it first.
IO_ERRORS = (OSError, tf.errors.UnavailableError,
             tf.errors.DeadlineExceededError, tf.errors.AbortedError,
             tf.errors.UnknownError, tf.errors.ResourceExhaustedError)


class NotPushedByPipelineError(FileNotFoundError):
  """A served version without this pipeline's push info, or without the
  model files that measuring it or warm-starting from it needs."""


class VersionCorruptError(RuntimeError):
  """A complete version whose files are not what its record says (changed,
  truncated or missing), or a version without a file every version has.
  Not an I/O error: reading it again gives the same answer."""


class Scan(NamedTuple):
  """The numeric directories of a serving root, by completeness."""
  complete: Dict[int, str]
  incomplete: Dict[int, str]


def is_object_store(path: str) -> bool:
  """Whether `path` is on an object store (gs://, s3://...), where a directory
  rename is a copy in listing order, not an atomic rename."""
  return '://' in path and not path.startswith('file://')


def is_complete(version_dir: str) -> bool:
  """Whether a version directory holds a whole version (see module doc)."""
  if tf.io.gfile.exists(os.path.join(version_dir, VERSION_RECORD_FILE)):
    return True
  return (tf.io.gfile.exists(os.path.join(version_dir, SAVED_MODEL_FILE)) and
          not tf.io.gfile.exists(os.path.join(version_dir, PENDING_FILE)))


def is_ours(version_dir: str) -> bool:
  """Whether this pipeline wrote (or was writing) a version directory."""
  return any(tf.io.gfile.exists(os.path.join(version_dir, name))
             for name in (PENDING_FILE, PUSH_INFO_FILE, VERSION_RECORD_FILE))


def scan(serving_dir: str) -> Scan:
  """Every all-digit directory under serving_dir, complete or not.

  Raises:
    tf.errors.OpError: the directory cannot be listed.
  """
  complete, incomplete = {}, {}
  if not tf.io.gfile.isdir(serving_dir):
    return Scan(complete, incomplete)
  for name in tf.io.gfile.listdir(serving_dir):
    name = name.rstrip('/')
    path = os.path.join(serving_dir, name)
    if name.isdigit() and tf.io.gfile.isdir(path):
      (complete if is_complete(path) else incomplete)[int(name)] = path
  return Scan(complete, incomplete)


def versions(serving_dir: str) -> Dict[int, str]:
  """Version number -> directory of every complete version; an incomplete
  one is named in the log and left out."""
  found = scan(serving_dir)
  for path in found.incomplete.values():
    logger.warning('Ignoring %s: an incomplete version (no %s; a push that '
                   'died or is under way)', path, VERSION_RECORD_FILE)
  return found.complete


def latest_version_dir(serving_dir: str) -> Optional[str]:
  """The newest complete version, or None if there is none."""
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
  model_uri = read_push_info(version_dir)[MODEL_URI_KEY]
  if tf.io.gfile.exists(os.path.join(model_uri, model_layout.ENCODER_DIR)):
    return model_uri
  raise NotPushedByPipelineError(
      f'{version_dir} carries no model files ({MODEL_FILES_DIR}/; it was '
      f'pushed before versions did) and the model it was pushed from, '
      f'{model_uri}, is gone with its pipeline root: roll back past that '
      'version (python -m pipeline.rollback) so that the next push replaces '
      'it')


def files_below(directory: str, skip: Optional[set] = None
                ) -> Iterator[Tuple[str, str]]:
  """(relative path with '/', path) of every file below `directory`, except
  the relative paths in `skip`."""
  for root, _, files in tf.io.gfile.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, directory).replace(os.sep, '/')
      if relative not in (skip or ()):
        yield relative, path


def file_digests(directory: str, skip: Optional[set] = None
                 ) -> Dict[str, Dict[str, Any]]:
  """Relative path -> {'size', 'sha256'} of every file below `directory`,
  except those in `skip`."""
  found = {}
  for relative, path in files_below(directory, skip):
    digest, size = hashlib.sha256(), 0
    with tf.io.gfile.GFile(path, 'rb') as f:
      while chunk := f.read(_HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    found[relative] = {'size': size, 'sha256': digest.hexdigest()}
  return found


def model_identity(saved_model_dir: str) -> str:
  """The SHA-256 of a SavedModel's variables: every checkpoint entry's name,
  dtype, shape and bytes, in name order. Equal weights, equal identity."""
  reader = tf.train.load_checkpoint(
      os.path.join(saved_model_dir, 'variables', 'variables'))
  digest = hashlib.sha256()
  for name, dtype in sorted(reader.get_variable_to_dtype_map().items()):
    if name == _OBJECT_GRAPH_KEY:
      continue
    value = reader.get_tensor(name)
    digest.update(json.dumps([name, dtype.name, list(value.shape)]).encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


def write_version_record(version_dir: str, push_info: Dict[str, Any],
                         model_sha256: str) -> None:
  """Writes the record that makes a version complete: call it last."""
  if MODEL_URI_KEY not in push_info:
    raise ValueError(f'push info needs {MODEL_URI_KEY}')
  record = {
      RECORD_PUSH_KEY: push_info,
      RECORD_MODEL_KEY: model_sha256,
      RECORD_FILES_KEY: file_digests(version_dir, {VERSION_RECORD_FILE}),
  }
  path = os.path.join(version_dir, VERSION_RECORD_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(record, f, indent=2, sort_keys=True)


def read_json(path: str) -> Optional[Any]:
  """The JSON in `path`, or None if there is no such file."""
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def read_version_record(version_dir: str) -> Optional[Dict[str, Any]]:
  """A version's record, or None for a version pushed before records."""
  return read_json(os.path.join(version_dir, VERSION_RECORD_FILE))


def write_push_info(version_dir: str, info: Dict[str, Any]) -> None:
  """Writes push info the way versions did before records (`model_uri` at
  least): what such a version looks like, for tests and migrations."""
  if MODEL_URI_KEY not in info:
    raise ValueError(f'push info needs {MODEL_URI_KEY}')
  path = os.path.join(version_dir, PUSH_INFO_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(info, f, indent=2, sort_keys=True)


def read_push_info(version_dir: str) -> Dict[str, Any]:
  """Where a version came from: its record's push info, or for a version
  pushed before records, its push info file.

  Raises:
    NotPushedByPipelineError: neither exists (not pushed by this pipeline).
  """
  record = read_version_record(version_dir)
  if record is not None:
    return record[RECORD_PUSH_KEY]
  path = os.path.join(version_dir, PUSH_INFO_FILE)
  if not tf.io.gfile.exists(path):
    raise NotPushedByPipelineError(
        f'{path} not found: {version_dir} was not pushed by this pipeline, so '
        'its encoder cannot be found')
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def identity_of(version_dir: str) -> str:
  """The identity of a version's model: recorded, or computed from its
  variables for a version pushed before records."""
  record = read_version_record(version_dir)
  if record is not None:
    return record[RECORD_MODEL_KEY]
  return model_identity(version_dir)


def verify_version(version_dir: str) -> None:
  """Checks that a complete version's files are what its record says.

  A version pushed before records is checked for the files every version
  has: saved_model.pb and variables.index of the decoder and of every
  SavedModel under its model files.

  Raises:
    VersionCorruptError: a file differs, is missing, or is unaccounted for.
  """
  record = read_version_record(version_dir)
  if record is None:
    required = [SAVED_MODEL_FILE, 'variables/variables.index']
    encoder = f'{MODEL_FILES_DIR}/{model_layout.ENCODER_DIR}'
    if tf.io.gfile.isdir(os.path.join(version_dir, encoder)):
      required += [f'{encoder}/{SAVED_MODEL_FILE}',
                   f'{encoder}/variables/variables.index']
    missing = [name for name in required
               if not tf.io.gfile.exists(os.path.join(version_dir, name))]
    if missing:
      raise VersionCorruptError(
          f'{version_dir} lacks {", ".join(missing)}: it cannot be served or '
          'measured')
    return
  expected = record[RECORD_FILES_KEY]
  found = file_digests(version_dir, {VERSION_RECORD_FILE})
  problems = [f'{name} is missing' for name in sorted(set(expected) - set(found))]
  problems += [f'{name} was changed' for name in sorted(expected)
               if name in found and found[name] != expected[name]]
  problems += [f'{name} was added' for name in sorted(set(found) - set(expected))]
  if problems:
    raise VersionCorruptError(
        f'{version_dir} does not match its record ({VERSION_RECORD_FILE}): '
        f'{"; ".join(problems[:5])}'
        f'{f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""}')


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


def replace_json(path: str, value: Any) -> None:
  """Writes `value` as the whole of `path`: a single object write on object
  stores, a rename locally, so a reader sees the old file or the new one."""
  tf.io.gfile.makedirs(os.path.dirname(path))
  target = path if is_object_store(path) else path + '.tmp'
  with tf.io.gfile.GFile(target, 'w') as f:
    json.dump(value, f, indent=2, sort_keys=True)
  if target != path:
    tf.io.gfile.rename(target, path, overwrite=True)
