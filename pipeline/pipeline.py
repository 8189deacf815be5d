"""The one definition of the mnist-vae-tfx pipeline, used by every runner.

Runners choose paths, the metadata store and the orchestrator; every other
knob is an argument of `create_pipeline`.
"""

from typing import List, Optional, Sequence

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.atomic_pusher.component import create_pusher
from components.idx_example_gen.component import IdxExampleGen
from components.vae_evaluator import component as evaluator_lib
from models import trainer as trainer_lib
from models import vae

PIPELINE_NAME = 'mnist-vae-tfx'
# The Trainer imports its run_fn by module path, so the same code runs in a
# local process and in a Kubeflow container with the project installed.
TRAINER_RUN_FN = 'models.trainer.run_fn'


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    serving_dir: str,
    use_spans: bool = False,
    max_examples: Optional[int] = None,
    hyperparameters: vae.Hyperparameters = vae.Hyperparameters(),
    bless_threshold: float = evaluator_lib.DEFAULT_BLESS_THRESHOLD,
    bless_tolerance: float = evaluator_lib.DEFAULT_BLESS_TOLERANCE,
    iwae_samples: int = evaluator_lib.DEFAULT_IWAE_SAMPLES,
    warm_start: bool = False,
    beam_pipeline_args: Sequence[str] = (),
    metadata_connection_config: Optional[
        metadata_store_pb2.ConnectionConfig] = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
  """Builds the pipeline.

  Args:
    pipeline_name: name recorded in ML Metadata and used for output paths.
    pipeline_root: root folder (local or gs://) of all component outputs.
    data_root: folder holding the IDX data set (flat, or `span-N/` folders).
    serving_dir: the push destination (TensorFlow Serving's model base path);
      the model served from it is the evaluator's baseline.
    use_spans: ingest the newest `span-N/` folder of `data_root`.
    max_examples: keep only the first N examples of each split (quick runs).
    hyperparameters: the VAE's training configuration.
    bless_threshold: largest held-out -ELBO (nats) a blessed model may have.
    bless_tolerance: how many nats worse than the served model it may be.
    iwae_samples: importance samples per image for the IWAE bound.
    warm_start: start training from the weights of the model served from
      `serving_dir` (looked up when the Trainer runs), if any.
    beam_pipeline_args: arguments for every Beam-based component.
    metadata_connection_config: ML Metadata store; None lets the orchestrator
      provide one (Kubeflow).
    enable_cache: reuse outputs of components whose inputs did not change.

  Returns:
    The TFX pipeline.
  """
  example_gen = IdxExampleGen(
      input_base=data_root, use_spans=use_spans, max_examples=max_examples)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs['examples'])
  schema_gen = tfx.components.SchemaGen(
      statistics=statistics_gen.outputs['statistics'],
      infer_feature_shape=True)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'],
      schema=schema_gen.outputs['schema'])
  trainer_config = {trainer_lib.HYPERPARAMETERS_KEY: hyperparameters.to_dict()}
  if warm_start:
    trainer_config[trainer_lib.WARM_START_SERVING_DIR_KEY] = serving_dir
  trainer = tfx.components.Trainer(
      run_fn=TRAINER_RUN_FN,
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'],
      custom_config=trainer_config)
  evaluator = evaluator_lib.VaeEvaluator(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model'],
      serving_dir=serving_dir,
      bless_threshold=bless_threshold,
      bless_tolerance=bless_tolerance,
      iwae_samples=iwae_samples,
      seed=hyperparameters.seed)
  pusher = create_pusher(
      model=trainer.outputs['model'],
      model_blessing=evaluator.outputs['blessing'],
      serving_dir=serving_dir)

  components: List[tfx.types.BaseNode] = [
      example_gen, statistics_gen, schema_gen, example_validator, trainer,
      evaluator, pusher
  ]
  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name,
      pipeline_root=pipeline_root,
      components=components,
      enable_cache=enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args),
  )
