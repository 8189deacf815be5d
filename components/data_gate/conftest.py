"""Fixtures of the data gate tests: real TFDV statistics of small drops."""

import pathlib
from typing import Callable, List, Sequence

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from components.data_gate import gate
from conftest import load_mnist_head
from pipeline import data_schema

StatsFn = Callable[..., statistics_pb2.DatasetFeatureStatisticsList]


def write_examples(path: pathlib.Path, pixels: Sequence[Sequence[int]],
                   labels: Sequence[int]) -> None:
  """GZIP TFRecords of tf.Examples with any pixel lists (valid or not)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(str(path), options) as writer:
    for row, label in zip(pixels, labels):
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          'image': tf.train.Feature(int64_list=tf.train.Int64List(
              value=[int(v) for v in row])),
          'label': tf.train.Feature(int64_list=tf.train.Int64List(
              value=[int(label)])),
      })).SerializeToString())


@pytest.fixture(scope='session')
def make_stats(tmp_path_factory) -> StatsFn:
  """Statistics as StatisticsGen computes them (TFDV, the curated schema).

  For an image array the mean image is added, as DataGate adds it (here
  computed with numpy).
  """
  directory = tmp_path_factory.mktemp('stats')
  count = [0]

  def make(images, labels) -> statistics_pb2.DatasetFeatureStatisticsList:
    count[0] += 1
    path = directory / f'drop-{count[0]}.gz'
    pixels: List[Sequence[int]] = (
        [list(row) for row in images] if isinstance(images, list) else
        np.asarray(images).reshape(len(images), 784).tolist())
    write_examples(path, pixels, list(labels))
    stats = tfdv.generate_statistics_from_tfrecord(
        str(path), stats_options=tfdv.StatsOptions(
            schema=data_schema.curated_schema()))
    if isinstance(images, list) or not len(images):
      return stats
    return gate.with_mean_image(
        stats, np.asarray(images, np.float64).reshape(len(images), 784).mean(
            axis=0) / 255)

  return make


@pytest.fixture(scope='session')
def mnist_drops():
  """Two disjoint MNIST drops: (reference images, labels), (new ones)."""
  images, labels = load_mnist_head('train', 3000)
  return (images[:2000], labels[:2000]), (images[2000:], labels[2000:])


@pytest.fixture(scope='session')
def reference_stats(make_stats, mnist_drops):
  return make_stats(*mnist_drops[0])
