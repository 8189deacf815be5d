"""Locating, preparing offline and checking a TensorFlow Datasets data set.

A TFDS data set is *prepared* once into a TFDS data directory: its records
(``tf.train.Example`` with a PNG ``image`` and an int64 ``label``) and
``dataset_info.json`` under ``<data_dir>/<name>/<version>/``. This module

* finds a prepared data set there and reads it through
  ``tfds.builder_from_directory`` (no builder code, no network);
* prepares one that is not, strictly offline: TFDS's own download manager
  takes the data set's original files from a manual directory
  (``DownloadConfig(manual_dir=..., try_download_gcs=False)``), with one
  download directory per data set and version, because TFDS caches
  extractions by file base name and `mnist` and `fashion_mnist` share theirs;
* refuses, before anything is prepared or written, a data set whose features
  do not fit the pipeline: 28x28x1 uint8 images and integer labels 0..9.

An unprepared data set with no manual directory fails at once, before TFDS
gets a chance to probe its public bucket for metadata.
"""

import contextlib
import dataclasses
import logging
import os
import posixpath
from typing import Iterator, List, Optional

import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import file_utils
from tensorflow_datasets.core.utils import gcs_utils

from components.example_gen import inputs
from layouts import contracts

logger = logging.getLogger(__name__)

DATASET_INFO_FILE = 'dataset_info.json'
# ExampleGen split -> TFDS split.
SPLITS = {'train': 'train', 'eval': 'test'}
# Where preparation extracts the manual files: one folder per data set and
# version under the TFDS data directory (see the module docstring).
DOWNLOADS_DIR = 'downloads'
_RECORD_SUFFIX = '.tfrecord*'


# Defined beside the IDX data directory's checks, for the local runner.
TfdsSourceError = inputs.TfdsSourceError


@dataclasses.dataclass(frozen=True)
class TfdsSource:
  """A prepared TFDS data set: where it lives, by name and version."""
  name: str
  version: str
  data_dir: str

  @property
  def dataset_dir(self) -> str:
    """The folder holding its records and dataset_info.json."""
    return join(self.data_dir, self.name, self.version)


def join(base: str, *parts: str) -> str:
  """Joins a local path or a URI (gs://, s3://) with `/`-separated parts."""
  if '://' in base:
    return posixpath.join(base, *parts)
  return os.path.join(base, *parts)


def default_data_dir() -> str:
  """TFDS's own default: $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  return os.path.expanduser(file_utils.get_default_data_dir())


def split_pattern(name: str, tfds_split: str) -> str:
  """The file pattern, under the data set's folder, of a TFDS split."""
  return f'{name}-{tfds_split}{_RECORD_SUFFIX}'


def tfds_split_from_pattern(name: str, pattern: str) -> str:
  """The TFDS split a `split_pattern(name, split)` pattern stands for."""
  prefix = f'{name}-'
  if not (pattern.startswith(prefix) and pattern.endswith(_RECORD_SUFFIX)):
    raise ValueError(f'{pattern!r} is not a split pattern of TFDS data set '
                     f'{name!r} (expected {split_pattern(name, "SPLIT")!r})')
  return pattern[len(prefix):-len(_RECORD_SUFFIX)]


def builder_class(name: str):
  """The registered builder class of `name`; no network access."""
  try:
    return tfds.builder_cls(name)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise TfdsSourceError(
        f'{name}: not a data set of tensorflow-datasets '
        f'{tfds.__version__}') from e


def locate(name: str, data_dir: str) -> TfdsSource:
  """Where `name` (of this tensorflow-datasets version) is, or will be,
  prepared in `data_dir`; reads nothing there (a bucket may be out of
  reach when a pipeline is compiled)."""
  return TfdsSource(name=name, version=str(builder_class(name).VERSION),
                    data_dir=data_dir)


def is_prepared(source: TfdsSource) -> bool:
  return tf.io.gfile.exists(join(source.dataset_dir, DATASET_INFO_FILE))


def load_prepared(source: TfdsSource) -> tfds.core.DatasetBuilder:
  """A read-only builder of the prepared data set (its files only)."""
  if not is_prepared(source):
    raise TfdsSourceError(
        f'{source.name}: not prepared: {source.dataset_dir} has no '
        f'{DATASET_INFO_FILE}')
  return tfds.builder_from_directory(source.dataset_dir)


def check_features(name: str, info: tfds.core.DatasetInfo) -> None:
  """Refuses a data set whose features or splits do not fit the pipeline.

  Needs `image`: an Image of shape 28x28x1 and dtype uint8; `label`: an
  integer scalar, with at most 10 classes if it is a ClassLabel; and the
  splits `train` and `test` (for a prepared data set).
  """
  features = info.features
  image_key, label_key = contracts.IMAGE_KEY, contracts.LABEL_KEY
  image = features[image_key] if image_key in features else None
  if image is None:
    raise TfdsSourceError(f'{name}: no {image_key!r} feature (features: '
                          f'{", ".join(features.keys())})')
  if (not isinstance(image, tfds.features.Image) or
      tuple(image.shape) != contracts.IMAGE_SHAPE or image.tf_dtype != tf.uint8):
    raise TfdsSourceError(
        f'{name}: feature {image_key!r} is {image!r}; the pipeline needs '
        f'Image(shape={contracts.IMAGE_SHAPE}, dtype=uint8)')
  label = features[label_key] if label_key in features else None
  if label is None:
    raise TfdsSourceError(f'{name}: no {label_key!r} feature (features: '
                          f'{", ".join(features.keys())})')
  if (tuple(label.shape) != () or
      not label.tf_dtype.is_integer):
    raise TfdsSourceError(
        f'{name}: feature {label_key!r} is {label!r}; the pipeline needs '
        'one integer label 0..9 per image')
  if (isinstance(label, tfds.features.ClassLabel) and
      label.num_classes > contracts.NUM_CLASSES):
    raise TfdsSourceError(
        f'{name}: feature {label_key!r} has {label.num_classes} classes; '
        f'the pipeline needs labels 0..{contracts.NUM_CLASSES - 1}')
  if info.splits:
    missing = [s for s in SPLITS.values() if s not in info.splits]
    if missing:
      raise TfdsSourceError(
          f'{name}: no split {", ".join(missing)} (splits: '
          f'{", ".join(info.splits.keys())}); the pipeline reads '
          f'{" and ".join(SPLITS.values())}')


def manual_files(name: str) -> List[str]:
  """The file names TFDS looks for in the manual directory of `name`."""
  url_infos = builder_class(name).url_infos or {}
  return sorted(info.filename for info in url_infos.values()
                if info.filename)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
  """No probe of TFDS's public bucket while a builder is made and prepares.

  A builder of an unprepared data set looks up its metadata in
  gs://tfds-data on construction, which can hang on a network that drops
  packets. This is the switch TFDS's own tests use.
  """
  previous = gcs_utils._is_gcs_disabled  # pylint: disable=protected-access
  gcs_utils._is_gcs_disabled = True  # pylint: disable=protected-access
  try:
    yield
  finally:
    gcs_utils._is_gcs_disabled = previous  # pylint: disable=protected-access


def prepare(name: str, data_dir: Optional[str] = None,
            manual_dir: Optional[str] = None) -> TfdsSource:
  """Finds `name` prepared in `data_dir`, or prepares it offline.

  Args:
    name: a TFDS data set name, e.g. `mnist`.
    data_dir: the TFDS data directory; TFDS's default when None.
    manual_dir: a folder holding the data set's original files, used only
      when the data set is not prepared yet.

  Returns:
    The prepared data set.

  Raises:
    TfdsSourceError: unknown data set; its features do not fit (checked
      first); or not prepared and no (or an incomplete) manual directory.
  """
  data_dir = data_dir or default_data_dir()
  cls = builder_class(name)
  source = locate(name, data_dir)
  if is_prepared(source):
    check_features(name, load_prepared(source).info)
    logger.info('%s %s: prepared in %s', name, source.version,
                source.dataset_dir)
    return source
  with _offline():
    builder = cls(data_dir=data_dir)
    check_features(name, builder.info)
  expected = manual_files(name)
  if not manual_dir:
    files = ', '.join(expected) or 'as its TFDS catalog page lists them'
    raise TfdsSourceError(
        f'{name}: not prepared in {source.dataset_dir} and no manual '
        f'directory: put its original files ({files}) in a folder and pass '
        'it as --tfds-manual-dir, or '
        f'prepare {name} into --tfds-data-dir first. Nothing is downloaded.')
  missing = [f for f in expected
             if not tf.io.gfile.exists(os.path.join(manual_dir, f))]
  if missing or not tf.io.gfile.isdir(manual_dir):
    raise TfdsSourceError(
        f'{name}: not prepared in {source.dataset_dir}, and the manual '
        f'directory {manual_dir} lacks {", ".join(missing or [manual_dir])}')
  with _offline():
    logger.info('%s %s: preparing offline from %s into %s', name,
                source.version, manual_dir, source.dataset_dir)
    builder.download_and_prepare(
        download_dir=join(data_dir, DOWNLOADS_DIR,
                          f'{name}-{source.version}'),
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir, try_download_gcs=False))
  check_features(name, load_prepared(source).info)
  return source
