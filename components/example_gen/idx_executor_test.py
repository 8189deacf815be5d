"""Tests of the IDX ExampleGen: the PTransform, the executor and bad input."""

import gzip
import pathlib

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import util as beam_util
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components.example_gen import component
from components.example_gen import idx
from components.example_gen import idx_executor
from components.example_gen import inputs
from components.example_gen import writer
from conftest import executor_properties
from conftest import load_mnist_head
from conftest import read_split_examples
from conftest import write_mnist_subset

_SPECS = standard_component_specs


def _exec_properties(input_base, use_spans=False, max_examples=None):
  """The execution properties IdxExampleGen hands its idx_executor."""
  return executor_properties(component.IdxExampleGen(
      input_base=str(input_base), use_spans=use_spans,
      max_examples=max_examples))


def _run_executor(input_base, output_dir, max_examples=None):
  examples = standard_artifacts.Examples()
  examples.uri = str(output_dir)
  idx_executor.Executor().Do(
      {}, {_SPECS.EXAMPLES_KEY: [examples]},
      _exec_properties(input_base, max_examples=max_examples))
  return examples


def _decode(example):
  features = example.features.feature
  image = np.array(features['image'].int64_list.value, dtype=np.int64)
  return image.reshape(28, 28), features['label'].int64_list.value[0]


def _sources(directory, prefix='train'):
  """The validated (images, labels) headers of a folder's split."""
  return [idx.validate_split(idx.find_split_files(
      str(pathlib.Path(directory) / f'{prefix}-*-ubyte*')))]


@pytest.mark.parametrize('compress', [True, False], ids=['gzip', 'raw'])
def test_ptransform_reads_every_image_and_label(tmp_path, compress):
  data = write_mnist_subset(tmp_path / 'd', {'train': 30, 't10k': 10},
                            compress=compress)
  images, labels = load_mnist_head('train', 30)
  expected = sorted((img.astype(np.int64).tobytes(), int(label))
                    for img, label in zip(images, labels))

  def check(got):
    decoded = sorted((img.tobytes(), label) for img, label in map(_decode, got))
    assert decoded == expected, 'examples differ from the IDX content'

  with beam.Pipeline() as pipeline:
    examples = pipeline | idx_executor.IdxToExample(  # pylint: disable=no-value-for-parameter
        _sources(data))
    beam_util.assert_that(examples, check)


def test_ptransform_spreads_chunks_and_honours_max_examples(
    tiny_mnist, monkeypatch):
  monkeypatch.setattr(writer, 'CHUNK_SIZE', 7)
  _, labels = load_mnist_head('train', 50)

  with beam.Pipeline() as pipeline:
    examples = pipeline | idx_executor.IdxToExample(  # pylint: disable=no-value-for-parameter
        _sources(tiny_mnist), max_examples=50)
    got_labels = examples | beam.Map(lambda e: _decode(e)[1])
    beam_util.assert_that(got_labels,
                          beam_util.equal_to(labels.tolist()))


def test_executor_do_writes_train_and_eval_splits(tiny_mnist, tmp_path):
  examples = _run_executor(tiny_mnist, tmp_path / 'out')

  assert artifact_utils.decode_split_names(examples.split_names) == [
      'train', 'eval']
  train, evaluation = read_split_examples(examples, 'train'), read_split_examples(
      examples, 'eval')
  assert (len(train), len(evaluation)) == (120, 40)
  image, label = _decode(train[0])
  assert image.shape == (28, 28) and 0 <= image.min() <= image.max() <= 255
  assert image.max() > 0 and 0 <= label <= 9
  _, eval_labels = load_mnist_head('t10k', 40)
  assert sorted(_decode(e)[1] for e in evaluation) == sorted(eval_labels)


def test_executor_do_max_examples_limits_each_split(tiny_mnist, tmp_path):
  examples = _run_executor(tiny_mnist, tmp_path / 'out', max_examples=25)
  assert len(read_split_examples(examples, 'train')) == 25
  assert len(read_split_examples(examples, 'eval')) == 25


def test_max_examples_must_be_positive(tiny_mnist):
  with pytest.raises(ValueError, match='max_examples must be positive'):
    component.IdxExampleGen(input_base=str(tiny_mnist), max_examples=0)


def test_input_config_with_spans():
  # No {SPAN}: the local driver fingerprints every span's files.
  config = inputs.make_input_config(use_spans=True)
  assert [(s.name, s.pattern) for s in config.splits] == [
      ('train', 'span-*/train-*-ubyte*'),
      ('eval', 'span-*/t10k-*-ubyte*')]
  config = inputs.make_input_config(use_spans=True, train_spans=3)
  assert [(s.name, s.pattern) for s in config.splits] == [
      ('train', 'span-*/train-*-ubyte*'),
      ('eval', 'span-*/t10k-*-ubyte*'),
      ('history', 'span-*/train-*-ubyte*')]
  config = inputs.make_input_config(use_spans=False, train_spans=2)
  assert [(s.name, s.pattern) for s in config.splits] == [
      ('train', 'train-*-ubyte*'), ('eval', 't10k-*-ubyte*'),
      ('history', 'train-*-ubyte*')]


# --- Bad input: each case fails with the file's name and the problem. ---


def test_missing_directory(tmp_path):
  missing = tmp_path / 'no-such-dir'
  with pytest.raises(inputs.DataDirError,
                     match=f'{missing}: data directory not found'):
    inputs.check_data_dir(str(missing))
  with pytest.raises(idx.IdxFormatError,
                     match=f'{missing}: data directory not found'):
    _run_executor(missing, tmp_path / 'out')


def test_directory_without_the_four_files(tiny_mnist, tmp_path):
  (tiny_mnist / 't10k-labels-idx1-ubyte.gz').unlink()
  (tiny_mnist / 'train-images-idx3-ubyte.gz').unlink()
  with pytest.raises(inputs.DataDirError) as error:
    inputs.check_data_dir(str(tiny_mnist))
  assert str(tiny_mnist) in str(error.value)
  assert 'missing train-images-idx3-ubyte, t10k-labels-idx1-ubyte' in str(
      error.value)
  with pytest.raises(idx.IdxFormatError,
                     match=r'no \*-images-idx3-ubyte\[\.gz\] file matches '
                     f'{tiny_mnist}/train-'):
    _run_executor(tiny_mnist, tmp_path / 'out')


def _bad_input(tmp_path, tiny_mnist, file_name, payload):
  path = tiny_mnist / file_name
  path.write_bytes(payload)
  out = tmp_path / 'out'
  with pytest.raises(idx.IdxFormatError) as error:
    _run_executor(tiny_mnist, out)
  assert str(path) in str(error.value)
  assert not list(out.glob('**/*.gz')), 'examples written from bad input'
  return str(error.value)


def test_wrong_magic_number(tmp_path, tiny_mnist):
  labels = gzip.decompress(
      (tiny_mnist / 'train-labels-idx1-ubyte.gz').read_bytes())
  message = _bad_input(tmp_path, tiny_mnist, 'train-images-idx3-ubyte.gz',
                       gzip.compress(labels))
  assert 'wrong magic number 0x00000801' in message
  assert 'has 1 dimension(s), an IDX images file has 3' in message


def test_truncated_file(tmp_path, tiny_mnist):
  raw = gzip.decompress(
      (tiny_mnist / 'train-images-idx3-ubyte.gz').read_bytes())
  message = _bad_input(tmp_path, tiny_mnist, 'train-images-idx3-ubyte.gz',
                       gzip.compress(raw[:-100]))
  assert 'file is truncated' in message
  assert 'header promises 120 items (94080 bytes)' in message


def test_corrupt_gzip(tmp_path, tiny_mnist):
  path = tiny_mnist / 't10k-images-idx3-ubyte.gz'
  data = bytearray(path.read_bytes())
  data[len(data) // 2:len(data) // 2 + 64] = b'\xff' * 64
  message = _bad_input(tmp_path, tiny_mnist, path.name, bytes(data))
  assert 'corrupt gzip data' in message


def test_image_count_differs_from_label_count(tmp_path, tiny_mnist):
  _, labels = load_mnist_head('train', 119)
  path = tiny_mnist / 'train-labels-idx1-ubyte.gz'
  idx.write_idx(str(path), labels)
  with pytest.raises(idx.IdxFormatError) as error:
    _run_executor(tiny_mnist, tmp_path / 'out')
  assert str(error.value) == (
      f'{tiny_mnist}/train-images-idx3-ubyte.gz holds 120 images but {path} '
      'holds 119 labels; the counts must match')


def test_image_size_other_than_28x28(tmp_path, tiny_mnist):
  idx.write_idx(str(tiny_mnist / 'train-images-idx3-ubyte.gz'),
                np.zeros((120, 32, 32), np.uint8))
  message = _bad_input(tmp_path, tiny_mnist, 'train-images-idx3-ubyte.gz',
                       (tiny_mnist / 'train-images-idx3-ubyte.gz').read_bytes())
  assert 'images are 32x32; only 28x28 images are supported' in message


def test_label_outside_0_to_9(tmp_path, tiny_mnist):
  _, labels = load_mnist_head('t10k', 40)
  labels = labels.copy()
  labels[17] = 12
  path = tiny_mnist / 't10k-labels-idx1-ubyte.gz'
  idx.write_idx(str(path), labels)
  message = _bad_input(tmp_path, tiny_mnist, path.name, path.read_bytes())
  assert 'label 12 at index 17 is outside 0..9' in message


def test_trailing_bytes_are_rejected(tmp_path, tiny_mnist):
  path = tiny_mnist / 'train-labels-idx1-ubyte.gz'
  raw = gzip.decompress(path.read_bytes())
  message = _bad_input(tmp_path, tiny_mnist, path.name,
                       gzip.compress(raw + b'\0\0\0'))
  assert '3 unexpected bytes after the last of the 120 items' in message


def test_non_ubyte_data_type_is_rejected(tmp_path, tiny_mnist):
  path = tiny_mnist / 't10k-labels-idx1-ubyte.gz'
  raw = bytearray(gzip.decompress(path.read_bytes()))
  raw[2] = 0x0D
  message = _bad_input(tmp_path, tiny_mnist, path.name,
                       gzip.compress(bytes(raw)))
  assert 'IDX data type 0x0D (float32) is not supported' in message


def test_spans_use_newest_folder_and_require_its_files(tmp_path):
  root = pathlib.Path(tmp_path / 'drops')
  write_mnist_subset(root / 'span-1', {'train': 10, 't10k': 5})
  assert inputs.check_data_dir(str(root)) is True
  (root / 'span-2').mkdir()
  with pytest.raises(inputs.DataDirError, match=f'{root}/span-2: not an'):
    inputs.check_data_dir(str(root))


def test_write_split_writes_the_files_the_reader_looks_for(tmp_path):
  images, labels = load_mnist_head('t10k', 5)
  for prefix in idx.SPLIT_PREFIXES.values():
    idx.write_split(str(tmp_path / 'drop'), prefix, images, labels)
  assert idx.missing_canonical_files(str(tmp_path / 'drop')) == []
  [(read_images, read_labels)] = _sources(tmp_path / 'drop', 'train')
  assert read_images.count == 5 and read_labels.count == 5
