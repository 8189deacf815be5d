"""The one definition of the mnist-vae-tfx pipeline, used by every runner.

Runners choose paths, the metadata store and the orchestrator; every other
knob is an argument of `create_pipeline`.
"""

import os
from typing import Any, List, Mapping, Optional, Sequence, Union

from apache_beam.options import pipeline_options as beam_options
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2
# TFX's modules themselves, not its public `tfx.v1` facade, whose extensions
# import Google Cloud's clients: seconds of every run's start-up.
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.dsl.components.base import base_node
from tfx.orchestration import data_types
from tfx.orchestration import pipeline as tfx_pipeline

from components import config as config_lib
from components.atomic_pusher import component as pusher_lib
from components.data_gate.component import CuratedSchemaGen
from components.data_gate.component import DataGate
from components.example_gen import component as example_gen_lib
from components.example_gen import inputs
from components.example_gen import tfds_source as tfds_source_lib
from components.vae_evaluator import component as evaluator_lib
from components.vae_trainer import component as trainer_component
from layouts import spans as spans_layout
from pipeline import code_fingerprint
from pipeline import data_schema
from pipeline import trainer_config as trainer_config_lib

PIPELINE_NAME = 'mnist-vae-tfx'
# Kubeflow: what each container may use (KFP v2 / Vertex AI ResourceSpec).
ResourceSpec = (
    pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec
    .ResourceSpec)


# TFX's Beam-based executors (IdxExampleGen, StatisticsGen) package the
# installed TFX for the Beam workers unless a Beam dependency option is set
# (tfx/utils/dependency_utils.py, make_beam_dependency_flags): each copies TFX
# into a new temporary folder (about 50 MB, never deleted) and runs its
# setup.py, 2-3 s a component. The DirectRunner's workers are processes of
# this Python environment and install nothing, which an empty requirements
# file says. (A remote runner needs an image with the project, whose
# executors that package would not hold: docs/kubeflow.md.)
DIRECT_RUNNER_REQUIREMENTS = f'--requirements_file={os.devnull}'
# Beam's names of its local runners, as --runner may give them.
_DIRECT_RUNNERS = ('direct', 'switchingdirect', 'bundlebaseddirect')


def with_beam_dependencies(beam_pipeline_args: Sequence[str]) -> List[str]:
  """`beam_pipeline_args`, and DIRECT_RUNNER_REQUIREMENTS when they run the
  DirectRunner and set no dependency option of their own."""
  args = list(beam_pipeline_args)
  options = beam_options.PipelineOptions(flags=args)
  runner = options.view_as(beam_options.StandardOptions).runner
  setup = options.view_as(beam_options.SetupOptions)
  direct = runner is None or (
      runner.lower().removesuffix('runner') in _DIRECT_RUNNERS)
  if direct and not (setup.requirements_file or setup.setup_file or
                     setup.extra_packages):
    args.append(DIRECT_RUNNER_REQUIREMENTS)
  return args


def code(component_class: Any, *modules: str) -> str:
  """The fingerprint of the code a component runs (its executor's module,
  and `modules`, with all they import: pipeline/code_fingerprint.py), for
  its cache key, so that an edit reruns it and what follows."""
  return code_fingerprint.fingerprint(
      (component_class.EXECUTOR_SPEC.executor_class.__module__, *modules))


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: Optional[Union[str, data_types.RuntimeParameter]] = None,
    tfds_source: Optional[tfds_source_lib.TfdsSource] = None,
    serving_dir: str,
    schema_file: str = data_schema.SCHEMA_FILE,
    use_spans: bool = False,
    max_examples: Optional[int] = None,
    config: config_lib.PipelineConfig = config_lib.PipelineConfig(),
    epochs: Optional[Union[int, data_types.RuntimeParameter]] = None,
    served_version: Optional[str] = None,
    beam_pipeline_args: Sequence[str] = (),
    metadata_connection_config: Optional[
        metadata_store_pb2.ConnectionConfig] = None,
    enable_cache: bool = True,
    resources: Optional[Mapping[str, ResourceSpec]] = None,
) -> tfx_pipeline.Pipeline:
  """Builds the pipeline.

  Args:
    pipeline_name: name recorded in ML Metadata and used for output paths.
    pipeline_root: root folder (local or gs://) of all component outputs.
    data_root: folder holding the IDX data set (flat, or `span-N/` folders);
      on Kubeflow a runtime parameter (type str) may stand for it. Exactly
      one of `data_root` and `tfds_source` is given.
    tfds_source: a prepared TensorFlow Datasets data set
      (`tfds_source.prepare`), read by TfdsExampleGen instead of the IDX
      files; the same tf.Examples come out.
    serving_dir: the push destination (TensorFlow Serving's model base path);
      the model served from it is the evaluator's baseline, and the data it
      was trained on the data gate's drift reference.
    schema_file: the curated schema as the tasks see it (the repository's
      copy locally, the image's on Kubeflow); the cache key gets the
      fingerprint of the repository's copy.
    use_spans: `data_root` holds `span-N/` folders (the patterns the local
      ExampleGen driver fingerprints; ExampleGen resolves the spans itself
      when it runs, so on Kubeflow False serves either layout).
    max_examples: keep only the first N examples of each split (quick runs).
    config: every setting of every component (components/config.py): the
      window of spans, the data gate, training, blessing and retention.
    epochs: passes over the train split, overriding the hyperparameters';
      on Kubeflow a runtime parameter (type int) may stand for it.
    served_version: the version served when the pipeline is built; part of
      the gate's and the evaluator's cache keys, so that their cached verdicts
      are reused only against the model they measured. None (Kubeflow, where
      it is unknown at compile time) leaves it out.
    beam_pipeline_args: arguments for every Beam-based component (on the
      DirectRunner, with DIRECT_RUNNER_REQUIREMENTS).
    metadata_connection_config: ML Metadata store; None lets the orchestrator
      provide one (Kubeflow).
    enable_cache: reuse outputs of components whose inputs did not change.
    resources: component id -> the CPU and memory its container requests
      (Kubeflow and Vertex AI; the local runner ignores them).

  Returns:
    The TFX pipeline.
  """
  hyperparameters = config.training.hyperparameters
  train_spans = config.data.train_spans
  if (data_root is None) == (tfds_source is None):
    raise ValueError('give exactly one of data_root and tfds_source')
  if tfds_source is not None:
    if use_spans or train_spans != config_lib.DataConfig().train_spans:
      raise ValueError('use_spans and train_spans apply to data_root, not to '
                       'tfds_source')
    example_gen = example_gen_lib.TfdsExampleGen(
        source=tfds_source, max_examples=max_examples,
        code_fingerprint=code(example_gen_lib.TfdsExampleGen))
    input_base = tfds_source.dataset_dir
    split_patterns = example_gen_lib.split_patterns(tfds_source)
  else:
    example_gen = example_gen_lib.IdxExampleGen(
        input_base=data_root, use_spans=use_spans, train_spans=train_spans,
        serving_dir=serving_dir, max_examples=max_examples,
        code_fingerprint=code(example_gen_lib.IdxExampleGen))
    input_base = data_root
    split_patterns = {
        split.name: split.pattern
        for split in inputs.make_input_config(
            use_spans, train_spans).splits}
  schema_gen = CuratedSchemaGen(
      schema_file=schema_file,
      schema_fingerprint=code_fingerprint.file_fingerprint(
          data_schema.SCHEMA_FILE))
  # With the schema, TFDV treats the label as categorical: its distribution
  # is what the gate's L-infinity comparator measures.
  # The window's earlier spans were gated when they arrived.
  statistics_gen = StatisticsGen(
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'],
      exclude_splits=[spans_layout.HISTORY_SPLIT])
  data_gate = DataGate(
      examples=example_gen.outputs['examples'],
      statistics=statistics_gen.outputs['statistics'],
      schema=schema_gen.outputs['schema'],
      serving_dir=serving_dir,
      config=config.gate,
      input_base=input_base,
      split_patterns=split_patterns,
      code_fingerprint=code(DataGate),
      served_version=served_version)
  trainer_config = trainer_config_lib.trainer_custom_config(
      config.training, serving_dir)
  trainer = trainer_component.create_trainer(
      run_fn=trainer_config_lib.TRAINER_RUN_FN,
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'],
      custom_config=trainer_config, epochs=epochs,
      train_splits=(['train', spans_layout.HISTORY_SPLIT] if train_spans > 1
                    else ['train']))
  # Nothing is trained from a drop the gate stopped.
  trainer.add_upstream_node(data_gate)
  evaluator = evaluator_lib.VaeEvaluator(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model'],
      serving_dir=serving_dir,
      config=config.evaluation,
      seed=hyperparameters.seed,
      code_fingerprint=code(evaluator_lib.VaeEvaluator),
      served_version=served_version,
      # For the report: the training curves and the data gate's verdict.
      model_run=trainer.outputs['model_run'],
      data_gate=data_gate.outputs['anomalies'])
  pusher = pusher_lib.create_pusher(
      model=trainer.outputs['model'],
      model_blessing=evaluator.outputs['blessing'],
      serving_dir=serving_dir,
      # What the gate checked, with mean images: the next drift reference.
      statistics=data_gate.outputs['gated_statistics'],
      code_fingerprint=code(pusher_lib.AtomicPusher),
      config=config.serving)

  nodes: List[base_node.BaseNode] = [
      example_gen, schema_gen, statistics_gen, data_gate, trainer, evaluator,
      pusher
  ]
  for node in nodes:
    if resources and node.id in resources:
      node.with_platform_config(resources[node.id])
  return tfx_pipeline.Pipeline(
      pipeline_name=pipeline_name,
      pipeline_root=pipeline_root,
      components=nodes,
      enable_cache=enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=with_beam_dependencies(beam_pipeline_args),
  )
