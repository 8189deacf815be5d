"""Tests of the window of spans IdxExampleGen's executor resolves when it
runs: real files, a real Beam pipeline, and the examples it writes."""

import gzip
import hashlib
import logging
import os
import pathlib
from typing import List, Tuple

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.example_gen import utils as example_gen_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components.example_gen import component
from components.example_gen import idx
from components.example_gen import idx_executor
from components.example_gen import inputs
from components.example_gen import window as window_lib
from components.example_gen import writer
from conftest import executor_properties
import conftest
from conftest import idx_content
from layouts import spans

_SPECS = standard_component_specs
# Images of each span: span n holds train images [(n-1)*20, n*20) and t10k
# images [(n-1)*10, n*10) of the shipped MNIST, so every span differs.
_TRAIN, _T10K = 20, 10
_LOGGER = window_lib.__name__


def write_span(root: pathlib.Path, number: int) -> pathlib.Path:
  return conftest.write_span(root, number, _TRAIN, _T10K)


def span_read(folder: pathlib.Path, number: int,
              skip=frozenset()) -> spans.SpanRead:
  """The span as the test computes it: sha256 of each of its files."""
  files = {}
  for path in sorted(folder.iterdir()):
    if path.name in skip:
      continue
    data = path.read_bytes()
    files[path.name] = {'size': len(data),
                        'sha256': hashlib.sha256(data).hexdigest()}
  return spans.SpanRead(span=number, folder=str(folder),
                        digest=spans.span_digest(files), files=files)


def written(examples, split: str) -> List[Tuple[bytes, int]]:
  """(image pixels, label) of every tf.Example written for `split`, read
  through the glob the Trainer uses (`<split uri>/*`)."""
  return conftest.examples_in(
      os.path.join(artifact_utils.get_split_uri([examples], split), '*'))


def run_executor(input_base, output_dir, *, use_spans=True, train_spans=1,
                 serving_dir=None, max_examples=None):
  examples = standard_artifacts.Examples()
  examples.uri = str(output_dir)
  idx_executor.Executor().Do(
      {}, {_SPECS.EXAMPLES_KEY: [examples]},
      executor_properties(component.IdxExampleGen(
          input_base=str(input_base), use_spans=use_spans,
          train_spans=train_spans,
          serving_dir=None if serving_dir is None else str(serving_dir),
          max_examples=max_examples)))
  return examples


def window_of(examples) -> List[spans.SpanRead]:
  return spans.decode_window(
      examples.get_string_custom_property(spans.WINDOW_PROPERTY))


def test_window_of_three_takes_passed_spans_newest_first(tmp_path, caplog):
  root, serving = tmp_path / 'drops', tmp_path / 'serving'
  folders = {n: write_span(root, n) for n in range(1, 6)}
  reads = {n: span_read(folders[n], n) for n in folders}
  spans.record_verdict(str(serving), reads[1], passed=True)
  spans.record_verdict(str(serving), reads[2], passed=False)
  spans.record_verdict(str(serving), reads[2], passed=True)  # Accepted later.
  spans.record_verdict(str(serving), reads[4], passed=False)  # Stopped.
  # Span 3 was never gated; span 5 is the newest, gated by this run.

  with caplog.at_level(logging.INFO, logger=_LOGGER):
    examples = run_executor(root, tmp_path / 'out', train_spans=3,
                            serving_dir=serving)

  assert artifact_utils.decode_split_names(examples.split_names) == [
      'train', 'eval', spans.HISTORY_SPLIT]
  assert written(examples, 'train') == idx_content(folders[5])
  assert written(examples, 'eval') == idx_content(folders[5], 't10k')
  assert written(examples, spans.HISTORY_SPLIT) == sorted(
      idx_content(folders[2]) + idx_content(folders[1]))
  assert examples.span == 5
  assert examples.get_int_custom_property('span') == 5
  # Newest last; digests of the files' sha256s, names relative to the span.
  assert window_of(examples) == [reads[1], reads[2], reads[5]]
  assert set(window_of(examples)[-1].files) == {
      f'{name}.gz' for name in idx.CANONICAL_FILES}
  messages = [r.getMessage() for r in caplog.records]
  assert any(f'span 4 ({folders[4]}) is left out' in m and
             'stopped by the data gate' in m for m in messages), messages
  assert any(f'span 3 ({folders[3]}) is left out' in m and 'never gated' in m
             for m in messages), messages


def test_window_max_examples_applies_to_each_history_span(tmp_path):
  root, serving = tmp_path / 'drops', tmp_path / 'serving'
  folders = {n: write_span(root, n) for n in (1, 2, 3)}
  for n in (1, 2):
    spans.record_verdict(str(serving), span_read(folders[n], n), passed=True)
  examples = run_executor(root, tmp_path / 'out', train_spans=3,
                          serving_dir=serving, max_examples=5)
  history = written(examples, spans.HISTORY_SPLIT)
  assert len(history) == 10
  assert set(history) <= set(idx_content(folders[1]) + idx_content(
      folders[2]))
  assert len(written(examples, 'train')) == 5


def test_one_span_is_todays_output(tmp_path):
  root = tmp_path / 'drops'
  folders = {n: write_span(root, n) for n in (1, 2)}
  examples = run_executor(root, tmp_path / 'out', train_spans=1)
  assert artifact_utils.decode_split_names(examples.split_names) == [
      'train', 'eval']
  assert sorted(os.listdir(examples.uri)) == ['Split-eval', 'Split-train']
  assert written(examples, 'train') == idx_content(folders[2])
  assert written(examples, 'eval') == idx_content(folders[2], 't10k')
  assert examples.span == 2
  assert window_of(examples) == [span_read(folders[2], 2)]
  # The custom_config of K=1 is the one of before the window existed.
  assert writer.make_custom_config(7, 'fp') == writer.make_custom_config(
      7, 'fp', train_spans=1, serving_dir='/ignored')
  assert writer.config_from(executor_properties(component.IdxExampleGen(
      input_base=str(root), max_examples=7))) == writer.Config(
          max_examples=7)


def test_flat_layout_is_span_zero_with_an_empty_history(tmp_path):
  flat = tmp_path / 'flat'
  flat.mkdir()
  for path in write_span(tmp_path / 'src', 1).iterdir():
    path.rename(flat / path.name)
  (flat / 'README').write_text('not part of the span')
  examples = run_executor(flat, tmp_path / 'out', use_spans=False,
                          train_spans=3, serving_dir=tmp_path / 'serving')
  assert written(examples, 'train') == idx_content(flat)
  assert written(examples, spans.HISTORY_SPLIT) == []
  assert examples.span == 0
  assert examples.get_int_custom_property('span') == 0
  # Only the four files make up the span.
  assert window_of(examples) == [span_read(flat, 0, skip={'README'})]


def test_empty_history_split_is_readable_by_the_trainers_glob(tmp_path):
  root = tmp_path / 'drops'
  write_span(root, 1)
  examples = run_executor(root, tmp_path / 'out', train_spans=2,
                          serving_dir=tmp_path / 'serving')
  split_uri = artifact_utils.get_split_uri([examples], spans.HISTORY_SPLIT)
  files = tf.io.gfile.glob(os.path.join(split_uri, '*'))
  assert files  # Beam wrote one empty shard.
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP')
  assert sum(1 for _ in dataset) == 0
  assert [s.span for s in window_of(examples)] == [1]


def test_the_empty_shard_fallback_is_readable(tmp_path):
  split_uri = str(tmp_path / 'Split-history')
  idx_executor._ensure_split_file(split_uri)  # pylint: disable=protected-access
  files = tf.io.gfile.glob(os.path.join(split_uri, '*'))
  assert [os.path.basename(f) for f in files] == [idx_executor.EMPTY_SHARD]
  assert sum(1 for _ in tf.data.TFRecordDataset(
      files, compression_type='GZIP')) == 0


def _refused(tmp_path, root, **kwargs) -> str:
  out = tmp_path / 'out'
  with pytest.raises(idx.IdxFormatError) as error:
    run_executor(root, out, **kwargs)
  assert not list(out.glob('**/*.gz')), 'examples written from a bad span'
  return str(error.value)


def test_newest_span_with_a_missing_file_is_refused(tmp_path):
  root = tmp_path / 'drops'
  write_span(root, 1)
  newest = write_span(root, 2)
  (newest / 't10k-labels-idx1-ubyte.gz').unlink()
  message = _refused(tmp_path, root)
  assert f'span 2 ({newest}): incomplete' in message
  assert 'labels-idx1-ubyte' in message and f'{newest}/t10k-' in message


def test_newest_span_with_a_truncated_file_is_refused(tmp_path):
  root = tmp_path / 'drops'
  write_span(root, 1)
  newest = write_span(root, 2)
  path = newest / 'train-images-idx3-ubyte.gz'
  raw = gzip.decompress(path.read_bytes())
  path.write_bytes(gzip.compress(raw[:-100]))
  message = _refused(tmp_path, root)
  assert f'span 2 ({newest}): cannot be read' in message
  assert f'{path}: file is truncated' in message


def test_newest_span_with_an_overlong_file_is_refused(tmp_path):
  root = tmp_path / 'drops'
  newest = write_span(root, 1)
  path = newest / 'train-labels-idx1-ubyte.gz'
  path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + b'\0'))
  message = _refused(tmp_path, root)
  assert f'span 1 ({newest}): cannot be read' in message
  assert f'{path}: 1 unexpected bytes' in message


@pytest.mark.parametrize('span, name', [
    (2, 'train-images-idx3-ubyte.gz'),
    (1, 'train-labels-idx1-ubyte.gz'),  # A history span.
], ids=['newest', 'history'])
def test_a_file_that_grows_during_the_read_is_refused(tmp_path, monkeypatch,
                                                      span, name):
  root, serving = tmp_path / 'drops', tmp_path / 'serving'
  folders = {n: write_span(root, n) for n in (1, 2)}
  spans.record_verdict(str(serving), span_read(folders[1], 1), passed=True)
  path = folders[span] / name
  seen = []

  def grow(window):
    seen.append([s.read.span for s in window.spans])
    with open(path, 'ab') as f:
      f.write(b'more bytes of a drop still being copied')

  monkeypatch.setattr(window_lib, 'before_recheck', grow)
  message = _refused(tmp_path, root, train_spans=2, serving_dir=serving)
  assert seen == [[1, 2]]  # Called once, after the read.
  assert f'span {span} ({folders[span]}): {path} changed while it was read' in (
      message)


def test_earlier_incomplete_or_changed_spans_are_left_out(tmp_path, caplog):
  root, serving = tmp_path / 'drops', tmp_path / 'serving'
  folders = {n: write_span(root, n) for n in range(1, 5)}
  for n in (1, 2, 3):
    spans.record_verdict(str(serving), span_read(folders[n], n), passed=True)
  # Since they passed: span 3 lost a file, span 2 was changed.
  (folders[3] / 'train-labels-idx1-ubyte.gz').unlink()
  idx.write_idx(str(folders[2] / 't10k-labels-idx1-ubyte.gz'),
                np.zeros(_T10K, np.uint8))

  with caplog.at_level(logging.INFO, logger=_LOGGER):
    examples = run_executor(root, tmp_path / 'out', train_spans=3,
                            serving_dir=serving)

  assert written(examples, spans.HISTORY_SPLIT) == idx_content(folders[1])
  assert [s.span for s in window_of(examples)] == [1, 4]
  warnings = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING]
  assert any(f'span 3 ({folders[3]}) is left out' in m and 'incomplete' in m
             and 'labels-idx1-ubyte' in m for m in warnings), warnings
  assert any(f'span 2 ({folders[2]}) is left out' in m and
             'changed since it passed' in m for m in warnings), warnings


def test_window_needs_a_serving_dir_and_a_positive_size(tmp_path):
  with pytest.raises(ValueError, match='needs serving_dir'):
    component.IdxExampleGen(input_base=str(tmp_path), train_spans=2)
  with pytest.raises(ValueError, match='at least 1'):
    component.IdxExampleGen(input_base=str(tmp_path), train_spans=0,
                            serving_dir=str(tmp_path))
  config = writer.config_from(executor_properties(component.IdxExampleGen(
      input_base=str(tmp_path), train_spans=4, serving_dir='gs://b/serving',
      max_examples=9, code_fingerprint='abc')))
  assert config == writer.Config(max_examples=9, train_spans=4,
                                   serving_dir='gs://b/serving')


def test_the_local_driver_fingerprints_every_span_and_resolves_span_0(
    tmp_path):
  """TFX 1.16's FileBasedDriver on the patterns without {SPAN}."""
  root = tmp_path / 'drops'
  write_span(root, 1)
  config = inputs.make_input_config(use_spans=True, train_spans=2)

  def resolve():
    splits = [type(s)(name=s.name, pattern=s.pattern) for s in config.splits]
    fingerprint, span, version = (
        example_gen_utils.calculate_splits_fingerprint_span_and_version(
            str(root), splits))
    assert [s.pattern for s in splits] == [s.pattern for s in config.splits]
    return fingerprint, span, version

  first, span, version = resolve()
  assert (span, version) == (0, None)
  assert 'num_files:2' in first
  assert resolve()[0] == first  # Nothing changed: a cache hit.
  write_span(root, 2)
  second = resolve()[0]
  assert second != first and 'num_files:4' in second
  old = root / 'span-1' / 'train-images-idx3-ubyte.gz'
  stat = old.stat()
  os.utime(old, (stat.st_atime, stat.st_mtime + 5))  # An older span changed.
  assert resolve()[0] != second


def test_the_directory_part_of_the_patterns_is_ignored(tmp_path):
  """Kubeflow's package has the flat patterns; the data root has spans."""
  root = tmp_path / 'drops'
  folders = {n: write_span(root, n) for n in (1, 2)}
  examples = run_executor(root, tmp_path / 'out', use_spans=False)
  assert written(examples, 'train') == idx_content(folders[2])
  assert examples.span == 2
