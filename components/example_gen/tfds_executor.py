"""FileBasedExampleGen executor that turns a prepared TFDS data set into the
pipeline's tf.Examples.

`input_base` is the prepared data set's folder
(``<tfds data dir>/<name>/<version>``); each split pattern is the file
pattern of one TFDS split there (``<name>-<split>.tfrecord*``, see
`tfds_source.split_pattern`), so TFX's driver fingerprints the record files.

The data set is read through ``tfds.builder_from_directory`` and checked
(`tfds_source.check_features`) before the Beam pipeline is built, so an
incompatible data set fails the component, naming the data set and the
feature, with nothing written. Like the IDX reader, the read is chunked:
(start, stop) ranges of the split in TFDS's own (deterministic) record order,
reshuffled across workers; each worker decodes its range with TFDS
(``split[start:stop]``: PNG to 28x28x1 uint8) and writes the canonical
layout with `writer.iter_examples`: ``image`` int64 x784 and ``label`` int64.
`max_examples` keeps the first N records of each split in that order.
"""

import logging
from typing import Any, Dict, Iterator, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs

from components.example_gen import tfds_source
from components.example_gen import writer
from layouts import contracts

logger = logging.getLogger(__name__)

# Images TFDS decodes per batch inside a chunk.
_DECODE_BATCH = 1000


def _read_chunk(bounds: Tuple[int, int], dataset_dir: str,
                tfds_split: str) -> Iterator[tf.train.Example]:
  start, stop = bounds
  builder = tfds.builder_from_directory(dataset_dir)
  dataset = builder.as_dataset(split=f'{tfds_split}[{start}:{stop}]',
                               shuffle_files=False)
  dataset = dataset.map(
      lambda x: (x[contracts.IMAGE_KEY], x[contracts.LABEL_KEY]),
      num_parallel_calls=tf.data.AUTOTUNE).batch(_DECODE_BATCH)
  for images, labels in tfds.as_numpy(dataset):
    bad = (labels < 0) | (labels >= contracts.NUM_CLASSES)
    if np.any(bad):
      raise tfds_source.TfdsSourceError(
          f'{builder.name}: feature {contracts.LABEL_KEY!r} has value '
          f'{labels[bad][0]} in split {tfds_split}; the pipeline needs '
          f'labels 0..{contracts.NUM_CLASSES - 1}')
    yield from writer.iter_examples(images, labels)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def TfdsToExample(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
    split_pattern: str) -> beam.pvalue.PCollection:
  """Reads one split of a prepared TFDS data set into tf.Examples.

  Args:
    pipeline: the Beam pipeline.
    exec_properties: the ExampleGen's execution properties (`input_base`:
      the prepared data set's folder; optional `custom_config` Struct with
      `max_examples`).
    split_pattern: `tfds_source.split_pattern(name, tfds_split)`.

  Returns:
    PCollection of tf.train.Example, the first `max_examples` of the split
    (all of it when unset).

  Raises:
    tfds_source.TfdsSourceError: the data set does not fit (names it and
      the feature) or lacks the split.
  """
  dataset_dir = exec_properties[standard_component_specs.INPUT_BASE_KEY]
  builder = tfds.builder_from_directory(dataset_dir)
  tfds_source.check_features(builder.name, builder.info)
  tfds_split = tfds_source.tfds_split_from_pattern(builder.name,
                                                   split_pattern)
  if tfds_split not in builder.info.splits:
    raise tfds_source.TfdsSourceError(
        f'{builder.name}: no split {tfds_split!r} in {dataset_dir}')
  count = builder.info.splits[tfds_split].num_examples
  max_examples = writer.config_from(exec_properties).max_examples
  if max_examples is not None:
    count = min(count, max_examples)
  logger.info('Reading %d examples of %s split %s from %s', count,
              builder.name, tfds_split, dataset_dir)
  return writer.read_in_chunks(pipeline, count, _read_chunk,
                                     dataset_dir, tfds_split)


class Executor(BaseExampleGenExecutor):
  """ExampleGen executor for prepared TFDS image-classification data sets."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return TfdsToExample
