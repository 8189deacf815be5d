"""Shared pytest fixtures: small data sets cut from the shipped MNIST, as IDX
files or as ExampleGen's TFRecords, and an exported model; and the `image`
marker's rule: those tests (tests/kubeflow_image_test.py, minutes of podman)
run only when asked for with `-m image`."""

import os
import pathlib
from typing import Dict, List, Tuple

import numpy as np
import pytest
import tensorflow as tf

from components.example_gen import idx
from components.example_gen import writer as example_writer
from layouts import model as model_layout

REPO_ROOT = pathlib.Path(__file__).resolve().parent
MNIST_DIR = REPO_ROOT / 'data' / 'mnist'
IMAGE_MARKER = 'image'
# End-to-end pipeline runs: `pytest -m "not slow"` leaves them out.
SLOW_MARKER = 'slow'
# Beam's DirectRunner in the runner's own process, for the tests' pipeline
# runs: what it computes is the same, and on a few hundred images starting a
# worker process per core (the runners' default, which the subset run in
# tests/local_runner_test.py and the code cache test keep) costs more than it
# saves.
IN_MEMORY_BEAM = ('--beam-arg=--direct_running_mode=in_memory',
                  '--beam-arg=--direct_num_workers=1')


def pytest_configure(config):
  config.addinivalue_line(
      'markers', f'{IMAGE_MARKER}: builds the Dockerfile with podman and runs '
      'every task in the image (minutes); run with -m image')
  config.addinivalue_line(
      'markers', f'{SLOW_MARKER}: runs the pipeline end to end (tens of '
      'seconds or more); pytest -m "not slow" leaves it out')


def pytest_collection_modifyitems(config, items):
  """Runs the `slow` tests first, so that pytest-xdist's workers (pyproject:
  `-n auto`, one test at a time to each) start the long pipeline runs early
  and the quick tests fill in at the end.

  Skips `image` tests unless the marker expression names them, so the
  default `python -m pytest` (CI's) never builds or runs the image."""
  items.sort(key=lambda item: item.get_closest_marker(SLOW_MARKER) is None)
  if IMAGE_MARKER in (config.getoption('markexpr') or '').split():
    return
  skip = pytest.mark.skip(
      reason='builds and runs the image: python -m pytest -m image')
  for item in items:
    if item.get_closest_marker(IMAGE_MARKER):
      item.add_marker(skip)


def load_mnist_head(split_prefix: str, count: int) -> Tuple[np.ndarray, np.ndarray]:
  """The first `count` images and labels of a shipped MNIST split."""
  images = idx.read_images_header(
      str(MNIST_DIR / f'{split_prefix}-images-idx3-ubyte.gz'))
  labels = idx.read_labels_header(
      str(MNIST_DIR / f'{split_prefix}-labels-idx1-ubyte.gz'))
  return idx.read_items(images, 0, count), idx.read_items(labels, 0, count)


def write_mnist_subset(directory: os.PathLike, counts: Dict[str, int],
                       compress: bool = True) -> pathlib.Path:
  """Writes the first counts[prefix] examples of each split as IDX files."""
  directory = pathlib.Path(directory)
  for prefix, count in counts.items():
    idx.write_split(str(directory), prefix, *load_mnist_head(prefix, count),
                    compress=compress)
  return directory


def write_span(root: pathlib.Path, number: int, train: int,
               t10k: int) -> pathlib.Path:
  """`root/span-<number>/`: the number-th slice of `train` training and
  `t10k` test images of the shipped MNIST, so every span differs."""
  folder = root / f'span-{number}'
  folder.mkdir(parents=True)
  for prefix, size in (('train', train), ('t10k', t10k)):
    images, labels = load_mnist_head(prefix, number * size)
    idx.write_split(str(folder), prefix, images[-size:], labels[-size:])
  return folder


def idx_content(folder: pathlib.Path, prefix: str = 'train'
                ) -> List[Tuple[bytes, int]]:
  """(image pixels as int64 bytes, label) of every item of a split's IDX
  files in `folder`, sorted, as read back from the files themselves."""
  files = idx.find_split_files(str(folder / f'{prefix}-*-ubyte*'))
  images, labels = idx.validate_split(files)
  pixels = idx.read_items(images, 0, images.count).reshape(images.count, -1)
  return sorted((row.astype(np.int64).tobytes(), int(label)) for row, label
                in zip(pixels, idx.read_items(labels, 0, labels.count)))


def examples_in(pattern: str) -> List[Tuple[bytes, int]]:
  """(image pixels as int64 bytes, label) of every tf.Example in the GZIP
  TFRecords `pattern` matches (at least one file), sorted."""
  files = tf.io.gfile.glob(pattern)
  assert files, f'no file matches {pattern}'
  result = []
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    features = tf.train.Example.FromString(record.numpy()).features.feature
    result.append((np.array(features['image'].int64_list.value,
                            dtype=np.int64).tobytes(),
                   features['label'].int64_list.value[0]))
  return sorted(result)


def write_tfrecords(path: pathlib.Path, images: np.ndarray,
                    labels: np.ndarray) -> None:
  """Writes GZIP TFRecords of tf.Examples exactly as IdxExampleGen does."""
  path.parent.mkdir(parents=True, exist_ok=True)
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(str(path), options) as writer:
    for example in example_writer.iter_examples(images, labels) if len(images) else ():
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


def executor_properties(component) -> Dict[str, object]:
  """The execution properties a component hands its executor (protos as
  JSON, unset ones left out)."""
  from tfx.utils import proto_utils  # pylint: disable=g-import-not-at-top
  return {key: (proto_utils.proto_to_json(value)
                if hasattr(value, 'DESCRIPTOR') else value)
          for key, value in component.exec_properties.items()
          if value is not None}


def read_split_examples(examples, split: str):
  """The tf.Examples an ExampleGen wrote for `split` of its Examples artifact."""
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  pattern = os.path.join(
      artifact_utils.get_split_uri([examples], split), '*.gz')
  records = tf.data.TFRecordDataset(
      tf.io.gfile.glob(pattern), compression_type='GZIP')
  return [tf.train.Example.FromString(r.numpy()) for r in records]


def export_untrained_model(model_uri: pathlib.Path, seed: int = 0) -> str:
  """Writes a Trainer-style model directory of an untrained VAE initialised
  with `seed` (real SavedModels); other seeds give other weights, so another
  model identity."""
  from models import export  # pylint: disable=g-import-not-at-top
  from models import vae  # pylint: disable=g-import-not-at-top
  hp = vae.Hyperparameters(seed=seed)
  export.export_model(vae.build_vae(hp), hp,
                      str(model_uri / model_layout.SERVING_MODEL_DIR))
  return str(model_uri)


@pytest.fixture(scope='session')
def exported_model(tmp_path_factory) -> str:
  """A Trainer-style model directory of an untrained VAE (real SavedModels)."""
  return export_untrained_model(tmp_path_factory.mktemp('model'))


@pytest.fixture(scope='session')
def other_exported_models(tmp_path_factory) -> List[str]:
  """Three more model directories like `exported_model`, each with other
  weights (seeds 1, 2, 3)."""
  return [export_untrained_model(tmp_path_factory.mktemp(f'model-{seed}'),
                                 seed) for seed in (1, 2, 3)]


@pytest.fixture
def tiny_mnist(tmp_path) -> pathlib.Path:
  """A gzipped IDX data set: 120 train and 40 eval real MNIST examples."""
  return write_mnist_subset(tmp_path / 'mnist', {'train': 120, 't10k': 40})


@pytest.fixture(scope='session')
def tfds_mnist(tmp_path_factory):
  """TFDS `mnist` prepared offline from the shipped data/mnist, once per
  session, into a temporary TFDS data directory (about 10 s)."""
  from components.example_gen import tfds_source  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp('tensorflow_datasets')
  return tfds_source.prepare('mnist', data_dir=str(data_dir),
                             manual_dir=str(MNIST_DIR))
