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
fingerprints for the cache (see `inputs.make_input_config`).
"""

import logging
from typing import Dict, Optional

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components import config as config_lib
from components.example_gen import idx_executor
from components.example_gen import inputs
from components.example_gen import tfds_executor
from components.example_gen import tfds_source
from components.example_gen import writer

logger = logging.getLogger(__name__)


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
        fingerprints for the cache (`inputs.make_input_config`).
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
        input_config=inputs.make_input_config(use_spans, train_spans),
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
