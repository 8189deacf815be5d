"""Tests of the input pipeline."""

import numpy as np
import pytest

from models import data
from conftest import write_examples_dir


def _collect(dataset):
  images, labels = [], []
  for batch_images, batch_labels in dataset:
    images.append(batch_images.numpy())
    labels.append(batch_labels.numpy())
  return np.concatenate(images), np.concatenate(labels)


def test_images_are_float_in_unit_interval_and_match_the_source(tmp_path):
  images, labels = write_examples_dir(tmp_path, 100, 10)
  # One shard, so the order is the file's (shards are read interleaved).
  dataset = data.make_dataset(str(tmp_path / 'Split-train' / '*-00000-*'), 32,
                              shuffle=False, with_labels=True)
  got_images, got_labels = _collect(dataset)
  assert got_images.dtype == np.float32
  assert got_images.shape == (50, 28, 28, 1)
  assert got_labels.dtype == np.int64
  assert got_labels.shape == (50,)
  assert 0.0 <= got_images.min() and got_images.max() <= 1.0
  np.testing.assert_allclose(got_images[..., 0], images[:50] / 255.0,
                             atol=1e-6)
  np.testing.assert_array_equal(got_labels, labels[:50])


def test_batches_without_labels_and_list_of_patterns(tmp_path):
  write_examples_dir(tmp_path, 100, 10)
  files = sorted(str(p) for p in (tmp_path / 'Split-train').iterdir())
  dataset = data.make_dataset([files[0], str(tmp_path / 'Split-train' / '*1*')],
                              32, shuffle=False)
  shapes = [tuple(batch.shape) for batch in dataset]
  assert shapes == [(32, 28, 28, 1)] * 3 + [(4, 28, 28, 1)]


def test_shuffle_is_seeded_reshuffles_and_keeps_every_image(tmp_path):
  _, labels = write_examples_dir(tmp_path, 100, 10)
  pattern = str(tmp_path / 'Split-train' / '*')

  def epochs(seed):
    dataset = data.make_dataset(pattern, 100, shuffle=True, seed=seed,
                                with_labels=True)
    return [_collect(dataset)[1] for _ in range(2)]

  first, second = epochs(7)
  assert sorted(first.tolist()) == sorted(labels.tolist())
  assert not np.array_equal(first, second)
  again_first, _ = epochs(7)
  np.testing.assert_array_equal(first, again_first)


def test_training_stream_is_full_batches_covering_every_image(tmp_path):
  write_examples_dir(tmp_path, 100, 10)
  pattern = str(tmp_path / 'Split-train' / '*')
  dataset, steps = data.make_training_dataset(pattern, 32, seed=3)
  assert steps == 4  # ceil(100 / 32)
  assert dataset.cardinality() == -1  # Endless: one iterator for all epochs.
  assert dataset.element_spec.shape.as_list() == [32, 28, 28, 1]
  # Images are compared through their pixel sums (distinct for these 100).
  sums = {float(np.sum(image)): label for image, label in zip(
      *_collect(data.make_dataset(pattern, 100, shuffle=False,
                                  with_labels=True)))}
  assert len(sums) == 100
  stream = [float(np.sum(image)) for batch in dataset.take(25)
            for image in batch.numpy()]
  # 800 images = 8 passes: each pass of 100 holds every image exactly once.
  for start in range(0, 800, 100):
    assert sorted(stream[start:start + 100]) == sorted(sums)
  assert stream[:100] != stream[100:200]  # Reshuffled every pass.
  again, _ = data.make_training_dataset(pattern, 32, seed=3)
  assert [float(np.sum(image)) for batch in again.take(25)
          for image in batch.numpy()] == stream


def test_no_matching_file_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match='No file matches'):
    data.make_dataset(str(tmp_path / 'nothing-*'), 8, shuffle=False)


def _image_keys(images):
  return {image.astype(np.uint8).tobytes() for image in images}


def test_validation_carve_out_is_a_deterministic_partition_of_train(tmp_path):
  images, _ = write_examples_dir(tmp_path / 'a', 2000, 2000)
  # The same images in reverse order and one shard: the carve-out is by
  # content, so it must not change.
  from conftest import write_tfrecords, load_mnist_head
  reversed_dir = tmp_path / 'b' / 'Split-train'
  _, labels = load_mnist_head('train', 2000)
  write_tfrecords(reversed_dir / 'data_tfrecord-00000-of-00001.gz',
                  images[::-1], labels[::-1])

  def part(directory, name):
    dataset = data.make_dataset(str(directory / '*'), 256, shuffle=False,
                                validation_fraction=0.1, part=name)
    return np.round(np.concatenate(list(dataset))[..., 0] * 255)

  train_dir = tmp_path / 'a' / 'Split-train'
  validation, rest = part(train_dir, 'validation'), part(train_dir, 'train')
  # A partition of the train images: disjoint, and together all of them.
  assert not _image_keys(validation) & _image_keys(rest)
  assert len(validation) + len(rest) == 2000
  assert _image_keys(validation) | _image_keys(rest) == _image_keys(images)
  # About the fraction asked for (binomial sd ~13 images).
  assert 150 <= len(validation) <= 250
  # The same images every time, whatever the file order.
  assert _image_keys(part(train_dir, 'validation')) == _image_keys(validation)
  assert _image_keys(part(reversed_dir, 'validation')) == _image_keys(
      validation)
  # Disjoint from the held-out eval split (t10k), which it never reads.
  eval_images, _ = load_mnist_head('t10k', 2000)
  assert not _image_keys(validation) & _image_keys(eval_images)


def test_training_stream_leaves_the_carve_out_out(tmp_path):
  write_examples_dir(tmp_path, 2000, 10)
  files = str(tmp_path / 'Split-train' / '*')
  validation = np.concatenate(list(data.make_dataset(
      files, 500, shuffle=False, validation_fraction=0.1,
      part='validation')))
  stream, steps = data.make_training_dataset(files, 100, seed=0,
                                             validation_fraction=0.1)
  seen = np.concatenate([batch for batch in stream.take(steps)])
  assert steps == -(-(2000 - len(validation)) // 100)
  assert not _image_keys(np.round(seen * 255)) & _image_keys(
      np.round(validation * 255))
  with pytest.raises(ValueError, match='cache'):
    data.make_dataset(files, 10, shuffle=False, cache=False,
                      validation_fraction=0.1, part='validation')
