"""VaeEvaluator: held-out metrics, plots, report and blessing for the VAE.

TFX's stock Evaluator (TFMA) measures supervised models; this component
measures an unsupervised VAE instead. Its baseline is the model currently
served from the push destination (not a Resolver's output), so the gate works
on open-source Kubeflow Pipelines too.
"""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

from components import config as config_lib
from components.vae_evaluator import executor
from layouts import contracts

class VaeEvaluatorSpec(ComponentSpec):
  """Inputs, outputs and parameters of VaeEvaluator."""
  PARAMETERS = {
      executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
      executor.CONFIG_KEY: ExecutionParameter(type=str),
      executor.SEED_KEY: ExecutionParameter(type=int, optional=True),
      contracts.CODE_FINGERPRINT_KEY: ExecutionParameter(type=str,
                                                        optional=True),
      contracts.SERVED_VERSION_KEY: ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      # For the report only (training curves; the data gate's verdict).
      executor.MODEL_RUN_KEY: ChannelParameter(
          type=standard_artifacts.ModelRun, optional=True),
      executor.DATA_GATE_KEY: ChannelParameter(
          type=standard_artifacts.ExampleAnomalies, optional=True),
  }
  OUTPUTS = {
      executor.EVALUATION_KEY:
          ChannelParameter(type=standard_artifacts.ModelEvaluation),
      executor.BLESSING_KEY:
          ChannelParameter(type=standard_artifacts.ModelBlessing),
  }


class VaeEvaluator(base_component.BaseComponent):
  """Evaluates the Trainer's VAE on the eval split and blesses it or not."""

  SPEC_CLASS = VaeEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
               serving_dir: str,
               config: config_lib.EvaluationConfig = (
                   config_lib.EvaluationConfig()),
               seed: Optional[int] = 0,
               code_fingerprint: Optional[str] = None,
               served_version: Optional[str] = None,
               model_run: Optional[types.BaseChannel] = None,
               data_gate: Optional[types.BaseChannel] = None):
    """Constructs the component.

    Args:
      examples: ExampleGen's examples; the `eval` split is measured.
      model: the Trainer's model.
      serving_dir: the push destination; its newest version is the baseline.
      config: the blessing's threshold and tolerance, the IWAE samples,
        and whether a change of signature may be blessed.
      seed: seeds the draws of z, so reruns give the same numbers.
      code_fingerprint: fingerprint of the evaluator's code (for the cache).
      served_version: the version served when the pipeline was built, for
        the cache key only: a cached evaluation is reused only against the
        model it measured. None where it cannot be known (Kubeflow).
      model_run: the Trainer's `model_run` (its training history, drawn in
        the report), or None.
      data_gate: the DataGate's `anomalies` (its gate.json: verdict and
        measured drift, shown in the report), or None.
    """
    spec = VaeEvaluatorSpec(
        examples=examples, model=model, serving_dir=serving_dir,
        config=config_lib.to_json(config),
        seed=seed, code_fingerprint=code_fingerprint,
        served_version=served_version, model_run=model_run,
        data_gate=data_gate,
        evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
        blessing=types.Channel(type=standard_artifacts.ModelBlessing))
    super().__init__(spec=spec)
