"""TfdsExampleGen: TFX's FileBasedExampleGen reading a prepared TFDS data set.

TFX ships no TFDS ExampleGen (tensorflow/tfx#2027). This one reads a data
set already prepared in a TFDS data directory (`tfds_source.prepare` does
that offline, before the pipeline runs; nothing is downloaded inside a
component) and writes the same tf.Examples as IdxExampleGen: TFDS `train`
becomes `train`, `test` becomes `eval`.
"""

from typing import Dict, Optional

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.idx_example_gen import component as idx_component
from components.tfds_example_gen import executor
from components.tfds_example_gen import tfds_source


def split_patterns(source: tfds_source.TfdsSource) -> Dict[str, str]:
  """ExampleGen split -> its record files' pattern under the data set's
  folder (`source.dataset_dir`, the component's input_base)."""
  return {split: tfds_source.split_pattern(source.name, tfds_split)
          for split, tfds_split in tfds_source.SPLITS.items()}


def make_input_config(source: tfds_source.TfdsSource) -> example_gen_pb2.Input:
  return example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=split, pattern=pattern)
      for split, pattern in split_patterns(source).items()
  ])


class TfdsExampleGen(FileBasedExampleGen):
  """Reads a prepared TFDS data set into `train` and `eval` tf.Examples."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

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
        input_config=make_input_config(source),
        custom_config=idx_component.make_custom_config(max_examples,
                                                       code_fingerprint))
