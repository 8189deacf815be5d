"""FileBasedExampleGen executor that turns IDX files into tf.Examples.

Each split pattern (``train-*-ubyte*``, ``t10k-*-ubyte*``, optionally under a
``span-{SPAN}/`` folder resolved by the ExampleGen driver) must match exactly
one images file and one labels file. Both are validated in full before the
Beam pipeline is built, so a broken file fails the component with a message
that names it and nothing downstream runs.

The read is chunked: the pipeline starts from a handful of (start, stop)
ranges, reshuffled across workers, and each worker decodes its range with one
vectorised numpy read and streams tf.Examples out.

Each tf.Example holds
  * ``image``: int64_list of 784 pixel values 0..255, row-major 28x28;
  * ``label``: int64_list of one digit 0..9.
Why int64 pixels rather than a PNG or raw-bytes string: the serialized size is
about the same as raw bytes (varints take 1-2 bytes per pixel, and the TFRecords
are gzipped), the Trainer decodes a whole batch with one
``tf.io.parse_example`` into a fixed [784] tensor, and TFDV sees real numbers:
per-example value counts (a wrong image size is an anomaly), the pixel range
and mean, and the label distribution.
"""

import logging
import os
from typing import Any, Dict, Iterator, Optional, Tuple

import apache_beam as beam
import tensorflow as tf
from google.protobuf import struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.idx_example_gen import idx

logger = logging.getLogger(__name__)

MAX_EXAMPLES_KEY = 'max_examples'
# Only for the cache key (see pipeline/code_fingerprint.py).
CODE_FINGERPRINT_KEY = 'code_fingerprint'
# Images per Beam element: small enough to spread 60,000 images over the
# workers, large enough that per-element overhead is negligible.
CHUNK_SIZE = 5000


def max_examples_from(exec_properties: Dict[str, Any]) -> Optional[int]:
  """Reads `max_examples` from the component's custom_config, if set."""
  serialized = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
  if not serialized:
    return None
  custom_config = example_gen_pb2.CustomConfig()
  proto_utils.json_to_proto(serialized, custom_config)
  config = struct_pb2.Struct()
  if not custom_config.custom_config.Unpack(config):
    raise ValueError(
        f'ExampleGen custom_config must be a google.protobuf.Struct, got '
        f'{custom_config.custom_config.type_url}')
  value = config.fields.get(MAX_EXAMPLES_KEY)
  if value is None or value.WhichOneof('kind') == 'null_value':
    return None
  return int(value.number_value)


def _read_chunk(bounds: Tuple[int, int], images: idx.IdxHeader,
                labels: idx.IdxHeader) -> Iterator[tf.train.Example]:
  start, stop = bounds
  yield from idx.iter_examples(
      idx.read_items(images, start, stop), idx.read_items(labels, start, stop))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def IdxToExample(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
    split_pattern: str) -> beam.pvalue.PCollection:
  """Reads one split's IDX images and labels files into tf.Examples.

  Args:
    pipeline: the Beam pipeline.
    exec_properties: the ExampleGen's execution properties (`input_base`,
      optional `custom_config` Struct with `max_examples`).
    split_pattern: glob relative to `input_base`, matching the split's images
      file and labels file.

  Returns:
    PCollection of tf.train.Example, the first `max_examples` of the split
    (all of it when unset).

  Raises:
    idx.IdxFormatError: a file is missing or malformed (names the file).
  """
  pattern = os.path.join(
      exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
  files = idx.find_split_files(pattern)
  images, labels = idx.validate_split(files)
  count = images.count
  max_examples = max_examples_from(exec_properties)
  if max_examples is not None:
    count = min(count, max_examples)
  logger.info('Reading %d examples from %s and %s', count, files.images,
              files.labels)
  return read_in_chunks(pipeline, count, _read_chunk, images, labels)


def read_in_chunks(pipeline: beam.Pipeline, count: int, read_chunk,
                   *args) -> beam.pvalue.PCollection:
  """The first `count` items of a split, as CHUNK_SIZE (start, stop) ranges
  reshuffled across the workers, each decoded by `read_chunk(bounds, *args)`
  into tf.Examples (also the TFDS ExampleGen's read)."""
  return (pipeline
          | 'Chunks' >> beam.Create(idx.chunk_ranges(count, CHUNK_SIZE))
          | 'Distribute' >> beam.Reshuffle()
          | 'Decode' >> beam.FlatMap(read_chunk, *args))


class Executor(BaseExampleGenExecutor):
  """ExampleGen executor for MNIST-style IDX files (gzipped or raw)."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return IdxToExample
