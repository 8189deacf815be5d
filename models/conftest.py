"""Fixtures of the model tests: tiny ExampleGen outputs of real MNIST digits."""

import pathlib
from typing import Tuple

import numpy as np
import pytest
import tensorflow as tf

from components.idx_example_gen import idx
from conftest import load_mnist_head


def write_tfrecords(path: pathlib.Path, images: np.ndarray,
                    labels: np.ndarray) -> None:
  """Writes GZIP TFRecords of tf.Examples exactly as IdxExampleGen does."""
  path.parent.mkdir(parents=True, exist_ok=True)
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(str(path), options) as writer:
    for example in idx.iter_examples(images, labels):
      writer.write(example.SerializeToString())


def write_examples_dir(directory: pathlib.Path, train_count: int,
                       eval_count: int) -> Tuple[np.ndarray, np.ndarray]:
  """An Examples artifact dir: Split-train (2 shards) and Split-eval.

  Returns the train images and labels, in file order.
  """
  images, labels = load_mnist_head('train', train_count)
  half = train_count // 2
  write_tfrecords(directory / 'Split-train' / 'data_tfrecord-00000-of-00002.gz',
                  images[:half], labels[:half])
  write_tfrecords(directory / 'Split-train' / 'data_tfrecord-00001-of-00002.gz',
                  images[half:], labels[half:])
  eval_images, eval_labels = load_mnist_head('t10k', eval_count)
  write_tfrecords(directory / 'Split-eval' / 'data_tfrecord-00000-of-00001.gz',
                  eval_images, eval_labels)
  return images, labels


@pytest.fixture
def examples_dir(tmp_path) -> pathlib.Path:
  """256 train and 64 eval real MNIST digits as ExampleGen writes them."""
  directory = tmp_path / 'examples'
  write_examples_dir(directory, 256, 64)
  return directory
