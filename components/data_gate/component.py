"""DataGate: stops a bad or foreign data drop before the Trainer.

Why a component of its own rather than TFX's: ExampleValidator checks the
statistics against a schema but records its anomalies without stopping
anything, and has no drift reference; DistributionValidator compares two
statistics artifacts, but the baseline must arrive as an input channel,
that is through a Resolver node, which open-source Kubeflow Pipelines does
not run. DataGate runs TFDV's own schema validation and drift comparators
(`components.data_gate.gate`) and finds its reference at run time in the
push destination, as VaeEvaluator finds its baseline, so it works the same
under LocalDagRunner and on Kubeflow. A blocking anomaly fails the
component, so nothing after it runs.

The Trainer depends on the gate, not on its outputs, and the window's
earlier spans (split `history`) are not gated again: StatisticsGen excludes
that split.

Also here: `CuratedSchemaGen`, TFX's ImportSchemaGen (its executor, its
output) with the schema file's fingerprint as a second parameter, so that
editing the committed schema is noticed by the cache.
"""

import json
from typing import Dict, Optional, Union

from tfx import types
from tfx.components.schema_gen.import_schema_gen import executor as import_schema_executor
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

from components import config as config_lib
from components.data_gate import executor
from components.data_gate import gate
from layouts import contracts


class DataGateSpec(ComponentSpec):
  """Inputs, outputs and parameters of DataGate."""
  PARAMETERS = {
      executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
      executor.CONFIG_KEY: ExecutionParameter(type=str),
      executor.INPUT_BASE_KEY: ExecutionParameter(type=str, optional=True),
      executor.SPLIT_PATTERNS_KEY: ExecutionParameter(type=str, optional=True),
      contracts.CODE_FINGERPRINT_KEY: ExecutionParameter(type=str,
                                                        optional=True),
      contracts.SERVED_VERSION_KEY: ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      executor.STATISTICS_KEY:
          ChannelParameter(type=standard_artifacts.ExampleStatistics),
      executor.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
  }
  OUTPUTS = {
      executor.ANOMALIES_KEY:
          ChannelParameter(type=standard_artifacts.ExampleAnomalies),
      executor.OUTPUT_STATISTICS_KEY:
          ChannelParameter(type=standard_artifacts.ExampleStatistics),
  }


class DataGate(base_component.BaseComponent):
  """Schema and drift gate of a data drop (see module docstring)."""

  SPEC_CLASS = DataGateSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel,
               statistics: types.BaseChannel, schema: types.BaseChannel,
               serving_dir: str,
               config: config_lib.GateConfig = config_lib.GateConfig(),
               input_base: Optional[Union[str,
                                          data_types.RuntimeParameter]] = None,
               split_patterns: Optional[Dict[str, str]] = None,
               code_fingerprint: Optional[str] = None,
               served_version: Optional[str] = None):
    """Constructs the component.

    Args:
      examples: ExampleGen's examples of the new drop (for their span).
      statistics: StatisticsGen's statistics of them (every split).
      schema: the curated schema (CuratedSchemaGen's output).
      serving_dir: the push destination; its newest version's recorded
        training statistics and its drift anchor (`layouts.anchor`) are the
        drift references, and the gate's verdict on the newest span is
        recorded there (`layouts.spans`).
      config: thresholds of both references, split sanity limits, and
        whether drift is accepted (schema and sanity findings still stop the
        run; the run's data becomes both references once its model is
        pushed).
      input_base: the folder ExampleGen read (a string, or the Kubeflow
        runtime parameter ExampleGen gets), named in messages.
      split_patterns: split -> its file pattern under `input_base` (may
        contain `{SPAN}`), named in messages.
      code_fingerprint: fingerprint of the gate's code (for the cache).
      served_version: the version served when the pipeline was built (for
        the cache only: a cached verdict is reused only against the
        reference it measured).
    """
    spec = DataGateSpec(
        examples=examples, statistics=statistics, schema=schema,
        serving_dir=serving_dir,
        gate_config=config_lib.to_json(config),
        input_base=input_base,
        split_patterns=json.dumps(split_patterns or {}, sort_keys=True),
        code_fingerprint=code_fingerprint, served_version=served_version,
        anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
        gated_statistics=types.Channel(
            type=standard_artifacts.ExampleStatistics))
    super().__init__(spec=spec)


SCHEMA_FINGERPRINT_KEY = 'schema_fingerprint'


class CuratedSchemaGenSpec(standard_component_specs.ImportSchemaGenSpec):
  """ImportSchemaGen's spec plus the schema file's fingerprint."""
  PARAMETERS = {
      **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
      SCHEMA_FINGERPRINT_KEY: ExecutionParameter(type=str),
  }


class CuratedSchemaGen(base_component.BaseComponent):
  """TFX's ImportSchemaGen whose cache key includes the file's content."""

  SPEC_CLASS = CuratedSchemaGenSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(
      import_schema_executor.Executor)

  def __init__(self, schema_file: str, schema_fingerprint: str):
    """Constructs the component.

    Args:
      schema_file: the schema (text proto) to import, as the executor sees
        it (a path inside the container on Kubeflow).
      schema_fingerprint: `pipeline.code_fingerprint.file_fingerprint` of it.
    """
    spec = CuratedSchemaGenSpec(
        schema_file=schema_file, schema_fingerprint=schema_fingerprint,
        schema=types.Channel(type=standard_artifacts.Schema))
    super().__init__(spec=spec)
