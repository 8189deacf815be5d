"""ExampleGen's TFRecords -> batches of float32 images in [0, 1].

The files are GZIP-compressed TFRecords of tf.train.Example with `image`
(784 int64 pixels 0..255, row-major 28x28) and `label` (one int64 0..9), as
written by `components.example_gen` (both sources).

The pipeline reads the files in parallel, parses whole blocks of records at
once (one vectorised `parse_example` per block instead of one op per record),
caches the parsed images as uint8 in memory (47 MB for 60,000 images; the
cache is filled, and the images counted, when the dataset is made), and only
then shuffles, batches, converts to float and prefetches. From the second
epoch on no file is read and nothing is parsed.
"""

import logging
import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from layouts import contracts

logger = logging.getLogger(__name__)

FEATURE_SPEC = {key: tf.io.FixedLenFeature(shape, dtype)
                for key, (shape, dtype) in contracts.FEATURES.items()}

# Shuffle buffer, in images: the whole MNIST training split (uint8, 47 MB),
# i.e. a uniform shuffle of each epoch.
DEFAULT_SHUFFLE_BUFFER = 60_000
# Records parsed per vectorised parse_example call.
_PARSE_BLOCK = 1024
# Hash buckets of the validation carve-out (its fraction's resolution).
_VALIDATION_BUCKETS = 10_000
# Weights of the pixel hash: fixed numbers, so the carve-out never changes.
_PIXEL_HASH_WEIGHTS = np.random.RandomState(784).randint(
    1, 2**31, size=contracts.IMAGE_PIXELS, dtype=np.int64)

FilePattern = Union[str, Sequence[str]]


def expand_file_pattern(file_pattern: FilePattern) -> List[str]:
  """Sorted, de-duplicated files matching a glob or a list of files/globs.

  Raises:
    ValueError: nothing matches.
  """
  patterns = [file_pattern] if isinstance(file_pattern, str) else list(
      file_pattern)
  files = set()
  for pattern in patterns:
    files.update(tf.io.gfile.glob(pattern))
  if not files:
    raise ValueError(f'No file matches {patterns}')
  return sorted(files)


def _parse_block(serialized):
  """[N] serialized tf.Examples -> (uint8 images [N, 28, 28, 1], int64 [N])."""
  features = tf.io.parse_example(serialized, FEATURE_SPEC)
  images = tf.cast(features[contracts.IMAGE_KEY], tf.uint8)
  images = tf.reshape(images, (-1,) + contracts.IMAGE_SHAPE)
  return images, features[contracts.LABEL_KEY]


def _to_float(images, labels):
  return tf.cast(images, tf.float32) / 255.0, labels


def in_validation_carve_out(images: tf.Tensor,
                            validation_fraction: float) -> tf.Tensor:
  """Whether each image belongs to the validation set carved out of train.

  By a hash of the image's pixels, so the carve-out does not
  depend on file order or sharding, is the same in every run, and puts
  identical images on the same side.

  Args:
    images: uint8 images [N, 28, 28, 1].
    validation_fraction: the expected fraction carved out, in [0, 1).

  Returns:
    bool [N].
  """
  rows = tf.cast(tf.reshape(images, [-1, contracts.IMAGE_PIXELS]), tf.int64)
  # A fixed random linear hash of the pixels (< 784 * 255 * 2**31: no
  # overflow); random weights make it uniform modulo the bucket count.
  keys = tf.reduce_sum(rows * _PIXEL_HASH_WEIGHTS, axis=1)
  buckets = tf.math.floormod(keys, _VALIDATION_BUCKETS)
  return buckets < int(round(validation_fraction * _VALIDATION_BUCKETS))


def _read_and_cache(files: List[str],
                    validation_fraction: float = 0.0,
                    part: Optional[str] = None) -> Tuple[tf.data.Dataset, int]:
  """(uint8 image, label) examples of `files`, cached in memory; their count.

  Counting fills the cache now (the first epoch would read the files anyway)
  and gives the dataset a known length.

  With `part` 'train' or 'validation', keeps only the examples outside, or
  inside, the validation carve-out of `validation_fraction`.
  """
  keep = None
  if part is not None and validation_fraction > 0:
    if part not in ('train', 'validation'):
      raise ValueError(f"part must be 'train' or 'validation', got {part!r}")
    want = part == 'validation'

    def keep(images):
      return tf.equal(in_validation_carve_out(images, validation_fraction),
                      want)
  dataset = _read(files, keep).cache()
  count = int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
  if count == 0:
    raise ValueError(f'No example in {files}' + (
        f' ({part} part of a {validation_fraction} validation carve-out)'
        if part else ''))
  logger.info('Cached %d images from %d file(s)%s', count, len(files),
              f' ({part} part)' if part and validation_fraction else '')
  return dataset.apply(tf.data.experimental.assert_cardinality(count)), count


def _read(files: List[str], keep=None) -> tf.data.Dataset:
  """(uint8 image, label) examples of `files`, read and parsed in blocks.

  `keep`, if given, maps a block of uint8 images [N, 28, 28, 1] to a bool
  mask [N] of the examples to keep, applied to each parsed block.
  """
  logger.info('Reading %d file(s), first %s', len(files), files[0])
  dataset = tf.data.TFRecordDataset(
      files, compression_type='GZIP',
      num_parallel_reads=min(len(files), 8) if len(files) > 1 else None)

  def parse(serialized):
    images, labels = _parse_block(serialized)
    if keep is None:
      return images, labels
    mask = keep(images)
    return tf.boolean_mask(images, mask), tf.boolean_mask(labels, mask)

  return dataset.batch(_PARSE_BLOCK).map(
      parse, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def _batch_and_convert(dataset: tf.data.Dataset, batch_size: int,
                       with_labels: bool,
                       drop_remainder: bool) -> tf.data.Dataset:
  """Batches, converts to float in [0, 1], drops labels unless asked for."""
  dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
  if not with_labels:
    dataset = dataset.map(lambda images, labels: images)
  return dataset.prefetch(tf.data.AUTOTUNE)


def make_dataset(file_pattern: FilePattern,
                 batch_size: int,
                 *,
                 shuffle: bool,
                 seed: Optional[int] = None,
                 with_labels: bool = False,
                 cache: bool = True,
                 shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
                 drop_remainder: bool = False,
                 validation_fraction: float = 0.0,
                 part: Optional[str] = None) -> tf.data.Dataset:
  """A dataset of ExampleGen's images, for one pass (repeat it yourself).

  For training, prefer `make_training_dataset` (one endless stream).

  Args:
    file_pattern: a glob, or a list of files and/or globs, of GZIP TFRecords.
    batch_size: images per batch; the last batch may be smaller unless
      `drop_remainder`.
    shuffle: reshuffle the images at each iteration (epoch).
    seed: the shuffle's seed (deterministic order for a given seed).
    with_labels: yield (images, labels) instead of images.
    cache: read all the files now and keep the parsed images in memory
      (and the dataset's length known); if False, every pass reads them.
    shuffle_buffer: images in the shuffle buffer.
    drop_remainder: drop a last, smaller batch.
    validation_fraction: with `part`, the fraction of the images carved out
      as the validation set (`in_validation_carve_out`).
    part: None (all images), 'train' (those outside the carve-out) or
      'validation' (those inside it). Needs `cache`.

  Returns:
    Batches of float32 images [B, 28, 28, 1] in [0, 1], or tuples of those
    and int64 labels [B] when `with_labels`.
  """
  files = expand_file_pattern(file_pattern)
  if cache:
    dataset, _ = _read_and_cache(files, validation_fraction, part)
  elif part is not None:
    raise ValueError('make_dataset: a carve-out part needs cache=True')
  else:
    dataset = _read(files)
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
  return _batch_and_convert(dataset, batch_size, with_labels, drop_remainder)


def make_training_dataset(
    file_pattern: FilePattern,
    batch_size: int,
    *,
    seed: Optional[int] = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    validation_fraction: float = 0.0) -> Tuple[tf.data.Dataset, int]:
  """An endless stream of full, shuffled training batches; steps per epoch.

  The images are cached, reshuffled for every pass and repeated *before*
  batching, so every batch has `batch_size` images (a batch may span two
  passes) and one iterator serves the whole training. Fit it with
  `steps_per_epoch` = the second value, ceil(images / batch_size): an epoch
  is then one pass over the data, as with a finite dataset.

  Why: with a finite dataset Keras makes a new iterator every epoch, and the
  smaller last batch gives the train step a second input shape. On the
  project's machines that combination stalled the start of about every
  second epoch by 9-10 s (BENCHMARKS.md, "Speed work"); the endless stream
  of equal batches does not.

  With `validation_fraction` > 0 the images of the validation carve-out
  (`in_validation_carve_out`) are left out: read them with
  `make_dataset(..., validation_fraction=..., part='validation')`.

  Returns:
    (batches of float32 images [batch_size, 28, 28, 1] in [0, 1],
     steps per epoch).
  """
  dataset, count = _read_and_cache(expand_file_pattern(file_pattern),
                                   validation_fraction, 'train')
  dataset = dataset.shuffle(shuffle_buffer, seed=seed,
                            reshuffle_each_iteration=True).repeat()
  dataset = _batch_and_convert(dataset, batch_size, with_labels=False,
                               drop_remainder=True)
  return dataset, math.ceil(count / batch_size)
