"""Tests of the TFDS ExampleGen on real TFDS data prepared offline: the shipped
MNIST prepared through TFDS's own download manager, and a small fake data set
whose images do not fit."""

import os
import time

import apache_beam as beam
import numpy as np
import pytest
import tensorflow_datasets as tfds
from apache_beam.testing import util as beam_util
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components.example_gen import component
from components.example_gen import tfds_executor
from components.example_gen import tfds_source
from conftest import executor_properties
from conftest import load_mnist_head
from conftest import read_split_examples

# Runs executors, Beam or training on real data: the full suite's tier.
pytestmark = pytest.mark.slow

_SPECS = standard_component_specs


class ColourTiles(tfds.core.GeneratorBasedBuilder):
  """A fake data set of 32x32x3 images (like cifar10): must be refused."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(32, 32, 3)),
            'label': tfds.features.ClassLabel(num_classes=10),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples(4),
            'test': self._generate_examples(2)}

  def _generate_examples(self, count):
    for i in range(count):
      yield i, {'image': np.full((32, 32, 3), i, np.uint8), 'label': i}


def _exec_properties(source, max_examples=None):
  """The execution properties TfdsExampleGen hands its tfds_executor."""
  return executor_properties(
      component.TfdsExampleGen(source=source, max_examples=max_examples))


def _decode(example):
  features = example.features.feature
  image = np.array(features['image'].int64_list.value, dtype=np.int64)
  return image.tobytes(), features['label'].int64_list.value[0]


def test_eval_split_matches_the_idx_files_image_for_image(tfds_mnist):
  # All 10,000 test images: TFDS's records hold the IDX source's pixels and
  # labels (as multisets: TFDS shuffles their order).
  images, labels = load_mnist_head('t10k', 10000)
  expected = sorted((img.astype(np.int64).reshape(-1).tobytes(), int(label))
                    for img, label in zip(images, labels))

  def check(got):
    decoded = sorted(map(_decode, got))
    assert len(decoded) == len(expected)
    assert decoded == expected, 'TFDS examples differ from the IDX content'

  with beam.Pipeline() as pipeline:
    examples = pipeline | tfds_executor.TfdsToExample(  # pylint: disable=no-value-for-parameter
        exec_properties={_SPECS.INPUT_BASE_KEY: tfds_mnist.dataset_dir},
        split_pattern=tfds_source.split_pattern('mnist', 'test'))
    beam_util.assert_that(examples, check)


def test_executor_writes_the_first_n_of_train_and_test(tfds_mnist, tmp_path):
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'examples')
  tfds_executor.Executor().Do({}, {_SPECS.EXAMPLES_KEY: [examples]},
                         _exec_properties(tfds_mnist, max_examples=300))
  builder = tfds.builder_from_directory(tfds_mnist.dataset_dir)
  for split, tfds_split in (('train', 'train'), ('eval', 'test')):
    # The first 300 in TFDS's (deterministic) record order, in the
    # pipeline's layout: 784 int64 pixels and an int64 label.
    want = sorted(
        (x['image'].astype(np.int64).reshape(-1).tobytes(), int(x['label']))
        for x in tfds.as_numpy(builder.as_dataset(
            split=f'{tfds_split}[:300]', shuffle_files=False)))
    assert sorted(map(_decode, read_split_examples(examples, split))) == want


def test_unprepared_without_manual_dir_fails_fast(tmp_path):
  start = time.monotonic()
  with pytest.raises(tfds_source.TfdsSourceError) as raised:
    tfds_source.prepare('fashion_mnist', data_dir=str(tmp_path))
  assert time.monotonic() - start < 5
  message = str(raised.value)
  assert 'fashion_mnist: not prepared in' in message
  assert 'train-images-idx3-ubyte.gz' in message
  assert '--tfds-manual-dir' in message
  assert not list(tmp_path.iterdir())


def test_manual_dir_without_the_files_is_refused(tmp_path):
  with pytest.raises(tfds_source.TfdsSourceError,
                     match='lacks t10k-images-idx3-ubyte.gz'):
    tfds_source.prepare('kmnist', data_dir=str(tmp_path / 'tfds'),
                        manual_dir=str(tmp_path))
  assert not (tmp_path / 'tfds').exists()


def test_incompatible_data_set_is_refused_before_anything_is_written(
    tmp_path):
  data_dir = str(tmp_path / 'tfds')
  # Not prepared: refused before preparation.
  with pytest.raises(tfds_source.TfdsSourceError,
                     match=r"colour_tiles: feature 'image' is Image\("
                     r'shape=\(32, 32, 3\)'):
    tfds_source.prepare('colour_tiles', data_dir=data_dir,
                        manual_dir=str(tmp_path))
  assert not os.path.exists(data_dir)
  # Prepared elsewhere: refused by the runner's check and the tfds_executor.
  ColourTiles(data_dir=data_dir).download_and_prepare()
  with pytest.raises(tfds_source.TfdsSourceError, match='colour_tiles'):
    tfds_source.prepare('colour_tiles', data_dir=data_dir)
  source = tfds_source.TfdsSource('colour_tiles', '1.0.0', data_dir)
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'examples')
  with pytest.raises(tfds_source.TfdsSourceError,
                     match="colour_tiles: feature 'image'"):
    tfds_executor.Executor().Do({}, {_SPECS.EXAMPLES_KEY: [examples]},
                           _exec_properties(source))
  assert not os.path.exists(examples.uri)


def test_label_with_too_many_classes_is_refused():
  info = tfds.core.DatasetInfo(
      builder=tfds.core.DatasetIdentity(
          name='many', version='1.0.0', data_dir='/nowhere',
          module_name='test'),
      features=tfds.features.FeaturesDict({
          'image': tfds.features.Image(shape=(28, 28, 1)),
          'label': tfds.features.ClassLabel(num_classes=47),
      }))
  with pytest.raises(tfds_source.TfdsSourceError,
                     match="many: feature 'label' has 47 classes"):
    tfds_source.check_features('many', info)
