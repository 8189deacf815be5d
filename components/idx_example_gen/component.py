"""IdxExampleGen: TFX's FileBasedExampleGen with the IDX executor plugged in.

Data layout under ``input_base`` (see README "Data"):

* flat: the four canonical files directly in the folder (the shipped
  ``data/mnist``);
* spans: one folder per data drop, ``span-1/``, ``span-2/``, ..., each holding
  the four files. The ExampleGen driver resolves ``{SPAN}`` to the newest span,
  so a new drop is ingested by the next run.
"""

import logging
import os
import re
from typing import Optional

import tensorflow as tf
from google.protobuf import struct_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.idx_example_gen import executor
from components.idx_example_gen import idx

logger = logging.getLogger(__name__)

SPAN_DIR_PREFIX = 'span-'
_SPAN_DIR_RE = re.compile(r'^span-(\d+)/?$')


class DataDirError(ValueError):
  """The data directory is missing or does not hold an IDX data set."""


def make_input_config(use_spans: bool) -> example_gen_pb2.Input:
  """Input splits `train` (train-*) and `eval` (t10k-*), optionally spanned."""
  prefix = SPAN_DIR_PREFIX + '{SPAN}/' if use_spans else ''
  return example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=split, pattern=f'{prefix}{stem}-*-ubyte*')
      for split, stem in idx.SPLIT_PREFIXES.items()
  ])


def make_custom_config(
    max_examples: Optional[int],
    code_fingerprint: Optional[str]) -> Optional[example_gen_pb2.CustomConfig]:
  """The custom_config Struct of `max_examples` and the code fingerprint
  (read back by `executor.max_examples_from`); None when both are unset."""
  values = {}
  if max_examples is not None:
    if max_examples <= 0:
      raise ValueError(f'max_examples must be positive, got {max_examples}')
    values[executor.MAX_EXAMPLES_KEY] = max_examples
  if code_fingerprint:
    values[executor.CODE_FINGERPRINT_KEY] = code_fingerprint
  if not values:
    return None
  config = struct_pb2.Struct()
  config.update(values)
  custom_config = example_gen_pb2.CustomConfig()
  custom_config.custom_config.Pack(config)
  return custom_config


def span_dirs(data_dir: str) -> dict:
  """Maps span number -> folder name for the `span-N/` folders in data_dir."""
  spans = {}
  for name in tf.io.gfile.listdir(data_dir):
    match = _SPAN_DIR_RE.match(name)
    if match and tf.io.gfile.isdir(os.path.join(data_dir, name)):
      spans[int(match.group(1))] = name.rstrip('/')
  return spans


def check_data_dir(data_dir: str) -> bool:
  """Checks that data_dir holds a data set; returns True if it uses spans.

  A cheap check made before the pipeline starts, so that a wrong path fails
  in a second with a clear message; the executor validates file contents.

  Raises:
    DataDirError: the folder is missing, or it (or its newest span) lacks
      some of the four files.
  """
  if not tf.io.gfile.isdir(data_dir):
    raise DataDirError(f'{data_dir}: data directory not found')
  spans = span_dirs(data_dir)
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

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, input_base: str, use_spans: bool = False,
               max_examples: Optional[int] = None,
               code_fingerprint: Optional[str] = None):
    """Constructs the component.

    Args:
      input_base: folder (local or gs://) holding the data set.
      use_spans: read the newest `span-N/` folder instead of the flat files.
      max_examples: keep only the first N examples of each split.
      code_fingerprint: fingerprint of the reader's code; part of the
        custom_config, so that a change of the code reruns the component.
    """
    super().__init__(
        input_base=input_base,
        input_config=make_input_config(use_spans),
        custom_config=make_custom_config(max_examples, code_fingerprint))
