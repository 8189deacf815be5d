"""FileBasedExampleGen executor that turns IDX files into tf.Examples.

The executor resolves the data layout and the window of spans itself, when
it runs, by listing `input_base` (`layouts.spans`): no ExampleGen driver is
needed, so a Kubeflow task, which runs none, reads spans as the local runner
does. The directory part of the compiled split patterns is ignored (on
Kubeflow the compiled patterns are the flat ones and the data root may hold
span folders); only their file part (``train-*-ubyte*``, ``t10k-*-ubyte*``)
is used, inside the folder of each span read.

* ``span-N/`` folders under `input_base`: the newest span is read for the
  splits ``train`` (train-* files) and ``eval`` (t10k-* files). With
  ``train_spans`` K > 1 the split ``history`` (`spans.HISTORY_SPLIT`) holds
  the train-* images of up to K - 1 earlier spans, walked newest first, each
  taken only if the data gate passed it (`spans.passed_digests` of
  ``serving_dir``); every span passed over is logged with the reason.
* no span folders: the folder itself is the newest span, number 0; the
  history split is empty.

A partly written newest span is refused, never half-read: a missing file, a
truncated or overlong one (`idx.validate_split`), or one whose size or
modification time differs after the Beam read from what it was before the
span was digested fails the component with `idx.IdxFormatError` naming the
span folder and the file, and any examples written are removed. An earlier
span that is incomplete or changed is left out of the window instead (one
that changes while it is read fails the run too: its examples are written).

After writing, the Examples artifact records the newest span as TFX's
``span`` (the artifact property, and the custom property that TFX 1.16's
driver sets and the data gate reads) and the window as
`spans.WINDOW_PROPERTY` (`spans.encode_window`: history spans oldest first,
then the newest span).

Each split's images and labels file are validated in full before the Beam
pipeline is built, so a broken file fails the component with a message that
names it and nothing downstream runs. The read is chunked: the pipeline
starts from a handful of (start, stop) ranges, reshuffled across workers,
and each worker decodes its range with one vectorised numpy read and streams
tf.Examples out.

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
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.example_gen import idx
from components.example_gen import window as window_lib
from components.example_gen import writer
from layouts import contracts
from layouts import spans as spans_layout

logger = logging.getLogger(__name__)

# The shard written into a split Beam left without a file (see
# `_ensure_split_file`).
EMPTY_SHARD = f'{write_split.DEFAULT_FILE_NAME}-00000-of-00001.gz'


# ---------------------------------------------------------------------------
# Reading


def _read_chunk(bounds: Tuple[int, int], images: idx.IdxHeader,
                labels: idx.IdxHeader) -> Iterator[tf.train.Example]:
  start, stop = bounds
  yield from writer.iter_examples(
      idx.read_items(images, start, stop), idx.read_items(labels, start, stop))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def IdxToExample(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline,
    sources: Sequence[Tuple[idx.IdxHeader, idx.IdxHeader]],
    max_examples: Optional[int] = None) -> beam.pvalue.PCollection:
  """Reads validated (images, labels) files into one split's tf.Examples.

  Args:
    pipeline: the Beam pipeline.
    sources: the (images, labels) headers of each span the split holds
      (`idx.validate_split`); none for an empty split.
    max_examples: keep the first N examples of each source (all if None).

  Returns:
    PCollection of tf.train.Example.
  """
  if not sources:
    return pipeline | 'Empty' >> beam.Create([]).with_output_types(
        tf.train.Example)
  reads = []
  for index, (images, labels) in enumerate(sources):
    count = images.count
    if max_examples is not None:
      count = min(count, max_examples)
    logger.info('Reading %d examples from %s and %s', count, images.path,
                labels.path)
    reads.append(pipeline | f'Read[{index}]' >> _ReadFiles(  # pylint: disable=no-value-for-parameter
        count, images, labels))
  if len(reads) == 1:
    return reads[0]
  return tuple(reads) | 'Flatten' >> beam.Flatten()


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ReadFiles(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline, count: int, images: idx.IdxHeader,
    labels: idx.IdxHeader) -> beam.pvalue.PCollection:
  """The first `count` examples of one images file and its labels file."""
  return writer.read_in_chunks(pipeline, count, _read_chunk, images, labels)


def _ensure_split_file(split_uri: str) -> None:
  """Gives a split at least one (empty) GZIP TFRecord file.

  Beam 2.59's WriteToTFRecord already writes one empty shard for an empty
  PCollection (io/iobase.py: min_shards is 1 when num_shards is 0, and
  `_finalize_write` creates the missing shards); this holds whatever the
  runner, so that the Trainer's `<split>/*` glob matches a readable file.
  """
  if tf.io.gfile.glob(os.path.join(split_uri, '*')):
    return
  tf.io.gfile.makedirs(split_uri)
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(os.path.join(split_uri, EMPTY_SHARD), options):
    pass
  logger.info('Wrote an empty shard into %s', split_uri)


class Executor(BaseExampleGenExecutor):
  """ExampleGen executor for MNIST-style IDX files (gzipped or raw) in a flat
  folder or in span-N/ folders (see the module docstring)."""

  _window: Optional[window_lib.Window] = None
  _config: Optional[writer.Config] = None

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    # GenerateExamplesByBeam below reads the window; the base class's per
    # pattern read is not used.
    raise NotImplementedError('IdxExampleGen reads the resolved window')

  def GenerateExamplesByBeam(
      self, pipeline: beam.Pipeline,
      exec_properties: Dict[str, Any]) -> Dict[str, beam.pvalue.PCollection]:
    """One PCollection per input split: the newest span's files for train
    and eval, the window's earlier spans for history."""
    if self._window is None or self._config is None:
      raise RuntimeError('Do() resolves the window before the Beam read')
    result = {}
    for split in _input_config(exec_properties).splits:
      if split.name == spans_layout.HISTORY_SPLIT:
        sources = [span.headers[split.name] for span in self._window.history]
      else:
        sources = [self._window.newest.headers[split.name]]
      result[split.name] = (
          pipeline | f'InputToRecord[{split.name}]' >> IdxToExample(  # pylint: disable=no-value-for-parameter
              sources, self._config.max_examples))
    return result

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    config = writer.config_from(exec_properties)
    input_config = _input_config(exec_properties)
    patterns = {split.name: os.path.basename(split.pattern)
                for split in input_config.splits}
    has_history = spans_layout.HISTORY_SPLIT in patterns
    if has_history != (config.train_spans > 1):
      raise ValueError(
          f'input_config {"has" if has_history else "lacks"} the '
          f'{spans_layout.HISTORY_SPLIT} split but train_spans is '
          f'{config.train_spans}: build both with the component')
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(
        exec_properties.get(standard_component_specs.OUTPUT_CONFIG_KEY) or '{}',
        output_config)
    if output_config.split_config.splits:
      raise ValueError('IdxExampleGen takes its splits from input_config; '
                       'output_config must not split them')
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    window = window_lib.resolve_window(input_base, patterns,
                                       config.train_spans, config.serving_dir)
    self._window, self._config = window, config
    examples_list = output_dict[standard_component_specs.EXAMPLES_KEY]
    try:
      super().Do(input_dict, output_dict, exec_properties)
      window_lib.before_recheck(window)
      window_lib.recheck(window)
    except idx.IdxFormatError:
      for split in patterns:
        split_uri = artifact_utils.get_split_uri(examples_list, split)
        if tf.io.gfile.exists(split_uri):
          tf.io.gfile.rmtree(split_uri)
      raise
    finally:
      self._window, self._config = None, None
    for split in patterns:
      _ensure_split_file(artifact_utils.get_split_uri(examples_list, split))
    for examples in examples_list:
      examples.span = window.newest.read.span
      examples.set_int_custom_property(contracts.SPAN_PROPERTY,
                                       window.newest.read.span)
      examples.set_string_custom_property(
          spans_layout.WINDOW_PROPERTY,
          spans_layout.encode_window(window.reads()))
      examples.set_string_custom_property(
          contracts.DATA_DIGEST_KEY,
          window_lib.data_digest(window, config.max_examples))


def _input_config(exec_properties: Dict[str, Any]) -> example_gen_pb2.Input:
  input_config = example_gen_pb2.Input()
  proto_utils.json_to_proto(
      exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
  return input_config
