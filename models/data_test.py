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
