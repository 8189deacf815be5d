"""IdxExampleGen and TfdsExampleGen: TFX's FileBasedExampleGen with the
IDX or the TFDS executor plugged in; both write `writer.iter_examples`.

IdxExampleGen reads IDX files.

Data layout under ``input_base`` (see docs/data.md and `layouts.spans`):

* flat: the four canonical files directly in the folder (the shipped
  ``data/mnist``);
* spans: one folder per data drop, ``span-1/``, ``span-2/``, ..., each holding
  the four files.

The executor resolves the layout, the newest span and the window of
``train_spans`` spans when it runs (`window.resolve_window`), so the same
package reads spans on Kubeflow, where no ExampleGen driver runs. The input
config's patterns only choose what the *local* ExampleGen driver
fingerprints for the cache (see `make_input_config`).
"""

import logging
import os
from typing import Dict, Optional

import tensorflow as tf
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components import config as config_lib
from components.example_gen import idx
from components.example_gen import idx_executor
from components.example_gen import tfds_executor
from components.example_gen import tfds_source
from components.example_gen import writer
from layouts import spans as spans_layout

logger = logging.getLogger(__name__)


class DataDirError(ValueError):
  """The data directory is missing or does not hold an IDX data set."""


def make_input_config(
    use_spans: bool,
    train_spans: int = config_lib.DataConfig().train_spans
) -> example_gen_pb2.Input:
  """Input splits `train` (train-*) and `eval` (t10k-*), and with
  train_spans > 1 `history` (`spans.HISTORY_SPLIT`, train-* as well).

  The executor uses only the file part of each pattern, inside the folder of
  each span it reads. The directory part is for the local ExampleGen driver
  (TFX 1.16, example_gen/driver.py `resolve_exec_properties` and
  utils.py `calculate_splits_fingerprint_span_and_version`), whose
  `input_fingerprint` is part of the cache key: with spans the patterns are
  ``span-*/train-*-ubyte*`` and ``span-*/t10k-*-ubyte*``, without ``{SPAN}``.
  `_get_target_span_version` then returns (None, None) (no span or date
  spec), the driver's span is 0, the patterns are left as they are
  (`get_pattern_for_span_version` replaces nothing), and the fingerprint,
  `io_utils.generate_fingerprint` of each pattern (the number of files, their
  total size and the XOR and sum of their modification times in whole
  seconds), covers every span's files: a new span, or a changed file of any
  span, changes it and reruns the component. The driver writes its span 0
  into the output artifact's `span` custom property before the executor
  runs (`update_output_artifact`); the executor then sets the real one.
  """
  if train_spans < 1:
    raise ValueError(f'train_spans must be at least 1, got {train_spans}')
  prefix = spans_layout.SPAN_DIR_PREFIX + '*/' if use_spans else ''
  patterns = {split: f'{prefix}{stem}-*-ubyte*'
              for split, stem in idx.SPLIT_PREFIXES.items()}
  if train_spans > 1:
    patterns[spans_layout.HISTORY_SPLIT] = patterns['train']
  return example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=split, pattern=pattern)
      for split, pattern in patterns.items()
  ])


def check_data_dir(data_dir: str) -> bool:
  """Checks that data_dir holds a data set; returns True if it uses spans.

  A cheap check made before the pipeline starts, so that a wrong path fails
  in a second with a clear message; the executor validates file contents
  (and earlier spans, when it builds the window).

  Raises:
    DataDirError: the folder is missing, or it (or its newest span) lacks
      some of the four files.
  """
  if not tf.io.gfile.isdir(data_dir):
    raise DataDirError(f'{data_dir}: data directory not found')
  spans = spans_layout.span_dirs(data_dir)
  folder = os.path.join(data_dir, spans[max(spans)]) if spans else data_dir
  missing = idx.missing_canonical_files(folder)
  if missing:
    raise DataDirError(
        f'{folder}: not an IDX data set: missing {", ".join(missing)} '
        '(raw or .gz). Expected the four MNIST files '
        f'{", ".join(idx.CANONICAL_FILES)}, either directly in the data '
        'directory or in span-N/ folders.')
  if spans:
    logger.info('%s: %d span folder(s); the newest, %s, will be ingested',
                data_dir, len(spans), spans[max(spans)])
  return bool(spans)


class IdxExampleGen(FileBasedExampleGen):
  """Reads an MNIST-style IDX data set into `train` and `eval` tf.Examples."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(idx_executor.Executor)

  def __init__(self, input_base: str, use_spans: bool = False,
               train_spans: int = config_lib.DataConfig().train_spans,
               serving_dir: Optional[str] = None,
               max_examples: Optional[int] = None,
               code_fingerprint: Optional[str] = None):
    """Constructs the component.

    Args:
      input_base: folder (local, gs:// or s3://) holding the data set, flat
        or in span-N/ folders; the executor finds out which when it runs.
      use_spans: the folder holds span-N/ folders when the pipeline is
        built: only chooses the patterns the local ExampleGen driver
        fingerprints for the cache (`make_input_config`).
      train_spans: the window: the newest span and up to train_spans - 1
        earlier spans the data gate passed (the `history` split).
      serving_dir: where the gate records its verdicts on spans (needed
        when train_spans > 1).
      max_examples: keep only the first N examples of each split (of each
        span, in the history split).
      code_fingerprint: fingerprint of the reader's code; part of the
        custom_config, so that a change of the code reruns the component.
    """
    super().__init__(
        input_base=input_base,
        input_config=make_input_config(use_spans, train_spans),
        custom_config=writer.make_custom_config(max_examples, code_fingerprint,
                                         train_spans, serving_dir))


def split_patterns(source: tfds_source.TfdsSource) -> Dict[str, str]:
  """ExampleGen split -> its record files' pattern under the data set's
  folder (`source.dataset_dir`, the component's input_base)."""
  return {split: tfds_source.split_pattern(source.name, tfds_split)
          for split, tfds_split in tfds_source.SPLITS.items()}


def make_tfds_input_config(source: tfds_source.TfdsSource
                            ) -> example_gen_pb2.Input:
  return example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=split, pattern=pattern)
      for split, pattern in split_patterns(source).items()
  ])


class TfdsExampleGen(FileBasedExampleGen):
  """Reads a prepared TFDS data set into `train` and `eval` tf.Examples."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(tfds_executor.Executor)

  def __init__(self, source: tfds_source.TfdsSource,
               max_examples: Optional[int] = None,
               code_fingerprint: Optional[str] = None):
    """Constructs the component.

    Args:
      source: the prepared data set (its folder may be local, gs:// or
        s3://).
      max_examples: keep only the first N examples of each split.
      code_fingerprint: fingerprint of the reader's code; part of the
        custom_config, so that a change of the code reruns the component.
    """
    super().__init__(
        input_base=source.dataset_dir,
        input_config=make_tfds_input_config(source),
        custom_config=writer.make_custom_config(max_examples,
                                                code_fingerprint))
