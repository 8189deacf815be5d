"""What both ExampleGens share: the examples they write, how they read a
split in chunks across Beam's workers, and their custom_config.

Every example is `layouts.contracts`' format: `image`, the 784 pixels
0..255 as int64, row-major 28x28, and `label`, one int64 0..9; IdxExampleGen
and TfdsExampleGen write them with `iter_examples`, and they come out the
same whichever source they were read from.
"""

import dataclasses
from typing import Any, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from google.protobuf import struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import config as config_lib
from layouts import contracts

# Keys of the custom_config Struct (`make_custom_config`, `config_from`).
MAX_EXAMPLES_KEY = 'max_examples'
TRAIN_SPANS_KEY = 'train_spans'
SERVING_DIR_KEY = 'serving_dir'
# Images per Beam element: small enough to spread 60,000 images over the
# workers, large enough that per-element overhead is negligible.
CHUNK_SIZE = 5000


def iter_examples(images: np.ndarray,
                  labels: np.ndarray) -> Iterator[tf.train.Example]:
  """Yields one tf.Example per image: `image` (784 int64) and `label`."""
  flat = images.reshape(len(images), -1).tolist()
  for pixels, label in zip(flat, labels.tolist()):
    yield tf.train.Example(features=tf.train.Features(feature={
        contracts.IMAGE_KEY: tf.train.Feature(
            int64_list=tf.train.Int64List(value=pixels)),
        contracts.LABEL_KEY: tf.train.Feature(
            int64_list=tf.train.Int64List(value=[label])),
    }))


def chunk_ranges(count: int, chunk_size: int) -> List[Tuple[int, int]]:
  """Splits [0, count) into half-open ranges of at most `chunk_size`."""
  return [(start, min(start + chunk_size, count))
          for start in range(0, count, chunk_size)]


def read_in_chunks(pipeline: beam.Pipeline, count: int, read_chunk,
                   *args) -> beam.pvalue.PCollection:
  """The first `count` items of a split, as CHUNK_SIZE (start, stop) ranges
  reshuffled across the workers, each decoded by `read_chunk(bounds, *args)`
  into tf.Examples."""
  return (pipeline
          | 'Chunks' >> beam.Create(chunk_ranges(count, CHUNK_SIZE))
          | 'Distribute' >> beam.Reshuffle()
          | 'Decode' >> beam.FlatMap(read_chunk, *args))




def make_custom_config(
    max_examples: Optional[int],
    code_fingerprint: Optional[str],
    train_spans: int = config_lib.DataConfig().train_spans,
    serving_dir: Optional[str] = None,
) -> Optional[example_gen_pb2.CustomConfig]:
  """The custom_config Struct of `max_examples`, the window (`train_spans`
  and `serving_dir`, only when train_spans > 1) and the code fingerprint,
  read back by `config_from`; None when nothing is set.

  Raises:
    ValueError: max_examples or train_spans is out of range, or
      train_spans > 1 without serving_dir.
  """
  values = {}
  if max_examples is not None:
    if max_examples <= 0:
      raise ValueError(f'max_examples must be positive, got {max_examples}')
    values[MAX_EXAMPLES_KEY] = max_examples
  if train_spans < 1:
    raise ValueError(f'train_spans must be at least 1, got {train_spans}')
  if train_spans > 1:
    if not serving_dir:
      raise ValueError(
          f'train_spans {train_spans} needs serving_dir, where the data gate '
          'records its verdicts on spans')
    values[TRAIN_SPANS_KEY] = train_spans
    values[SERVING_DIR_KEY] = serving_dir
  if code_fingerprint:
    values[contracts.CODE_FINGERPRINT_KEY] = code_fingerprint
  if not values:
    return None
  config = struct_pb2.Struct()
  config.update(values)
  custom_config = example_gen_pb2.CustomConfig()
  custom_config.custom_config.Pack(config)
  return custom_config


@dataclasses.dataclass(frozen=True)
class Config:
  """The component's custom_config, as the executor reads it."""
  max_examples: Optional[int] = None
  train_spans: int = config_lib.DataConfig().train_spans
  serving_dir: Optional[str] = None


def config_from(exec_properties: Dict[str, Any]) -> Config:
  """Reads the custom_config Struct (every key; unset ones get defaults).

  Raises:
    ValueError: custom_config is not a Struct, or a value is out of range.
  """
  serialized = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
  values: Dict[str, Any] = {}
  if serialized:
    custom_config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(serialized, custom_config)
    struct = struct_pb2.Struct()
    if not custom_config.custom_config.Unpack(struct):
      raise ValueError(
          f'ExampleGen custom_config must be a google.protobuf.Struct, got '
          f'{custom_config.custom_config.type_url}')
    values = {key: value for key, value in struct.items()
              if value is not None}
  config = Config(
      max_examples=(int(values[MAX_EXAMPLES_KEY])
                    if MAX_EXAMPLES_KEY in values else None),
      train_spans=int(values.get(TRAIN_SPANS_KEY,
                                 config_lib.DataConfig().train_spans)),
      serving_dir=values.get(SERVING_DIR_KEY) or None)
  if config.train_spans < 1:
    raise ValueError(f'train_spans must be at least 1, got '
                     f'{config.train_spans}')
  if config.train_spans > 1 and not config.serving_dir:
    raise ValueError(f'train_spans {config.train_spans} needs serving_dir, '
                     'where the data gate records its verdicts on spans')
  return config
