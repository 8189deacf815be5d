"""ExampleGen's TFRecords -> batches of float32 images in [0, 1].

The files are GZIP-compressed TFRecords of tf.train.Example with `image`
(784 int64 pixels 0..255, row-major 28x28) and `label` (one int64 0..9), as
written by `components.idx_example_gen`.

The pipeline reads the files in parallel, parses whole blocks of records at
once (one vectorised `parse_example` per block instead of one op per record),
caches the parsed images as uint8 in memory (47 MB for 60,000 images; the
cache is filled, and the images counted, when the dataset is made), and only
then shuffles, batches, converts to float and prefetches. From the second
epoch on no file is read and nothing is parsed.
"""

import logging
from typing import List, Optional, Sequence, Union

import tensorflow as tf

logger = logging.getLogger(__name__)

IMAGE_KEY = 'image'
LABEL_KEY = 'label'
IMAGE_ROWS = 28
IMAGE_COLS = 28
IMAGE_PIXELS = IMAGE_ROWS * IMAGE_COLS

FEATURE_SPEC = {
    IMAGE_KEY: tf.io.FixedLenFeature([IMAGE_PIXELS], tf.int64),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}

# Shuffle buffer, in images: the whole MNIST training split (uint8, 47 MB),
# i.e. a uniform shuffle of each epoch.
DEFAULT_SHUFFLE_BUFFER = 60_000
# Records parsed per vectorised parse_example call.
_PARSE_BLOCK = 1024

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
  images = tf.cast(features[IMAGE_KEY], tf.uint8)
  images = tf.reshape(images, [-1, IMAGE_ROWS, IMAGE_COLS, 1])
  return images, features[LABEL_KEY]


def _to_float(images, labels):
  return tf.cast(images, tf.float32) / 255.0, labels


def make_dataset(file_pattern: FilePattern,
                 batch_size: int,
                 *,
                 shuffle: bool,
                 seed: Optional[int] = None,
                 with_labels: bool = False,
                 cache: bool = True,
                 shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
                 drop_remainder: bool = False) -> tf.data.Dataset:
  """A dataset of ExampleGen's images, for one pass (repeat it yourself).

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

  Returns:
    Batches of float32 images [B, 28, 28, 1] in [0, 1], or tuples of those
    and int64 labels [B] when `with_labels`.
  """
  files = expand_file_pattern(file_pattern)
  logger.info('Reading %d file(s), first %s', len(files), files[0])
  autotune = tf.data.AUTOTUNE
  dataset = tf.data.TFRecordDataset(
      files, compression_type='GZIP',
      num_parallel_reads=min(len(files), 8) if len(files) > 1 else None)
  dataset = dataset.batch(_PARSE_BLOCK).map(
      _parse_block, num_parallel_calls=autotune).unbatch()
  if cache:
    dataset = dataset.cache()
    # Counting fills the cache now (the first epoch would read the files
    # anyway) and gives the dataset a known length, so Keras knows the
    # epoch's steps instead of warning that the input "ran out of data".
    count = int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    if count == 0:
      raise ValueError(f'No example in {files}')
    logger.info('Cached %d images from %d file(s)', count, len(files))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
  dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  dataset = dataset.map(_to_float, num_parallel_calls=autotune)
  if not with_labels:
    dataset = dataset.map(lambda images, labels: images)
  return dataset.prefetch(autotune)
