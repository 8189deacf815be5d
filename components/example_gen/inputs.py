"""What a local run checks of its data source before anything runs, without
TFX: the data directory (`check_data_dir`), the input config of its splits
(`make_input_config`), and the errors of a data source that cannot be used.
IdxExampleGen (component.py) and the local runner (pipeline/local_run.py)
share them.
"""

import logging
import os

import tensorflow as tf
from tfx.proto import example_gen_pb2

from components import config as config_lib
from components.example_gen import idx
from layouts import spans as spans_layout

logger = logging.getLogger(__name__)


class TfdsSourceError(ValueError):
  """A TFDS data set is unknown, not prepared, or does not fit the pipeline."""


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
