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

from components.vae_evaluator import executor

# Absolute -ELBO bound: a model that has learned digits is far below it (the
# default 30-epoch run reaches about 151 nats); one that ignores its latent
# code (the mean image under a Bernoulli model) is about 206.
DEFAULT_BLESS_THRESHOLD = 160.0
# How much worse than the served model (nats) a candidate may be: 0, so a
# worse model is never served. Raise it (about 1 nat is the spread between
# training seeds) to accept retrained models that are equally good by noise.
DEFAULT_BLESS_TOLERANCE = 0.0
# Importance samples for the IWAE bound: keeps the component well under a
# minute for 10,000 images (candidate and served model) on 2 cores.
DEFAULT_IWAE_SAMPLES = 8


class VaeEvaluatorSpec(ComponentSpec):
  """Inputs, outputs and parameters of VaeEvaluator."""
  PARAMETERS = {
      executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
      executor.THRESHOLD_KEY: ExecutionParameter(type=float),
      executor.TOLERANCE_KEY: ExecutionParameter(type=float),
      executor.IWAE_SAMPLES_KEY: ExecutionParameter(type=int),
      executor.SEED_KEY: ExecutionParameter(type=int, optional=True),
      executor.CODE_FINGERPRINT_KEY: ExecutionParameter(type=str,
                                                        optional=True),
      executor.ALLOW_SIGNATURE_CHANGE_KEY: ExecutionParameter(type=int,
                                                              optional=True),
      executor.SERVED_VERSION_KEY: ExecutionParameter(type=str, optional=True),
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
               bless_threshold: float = DEFAULT_BLESS_THRESHOLD,
               bless_tolerance: float = DEFAULT_BLESS_TOLERANCE,
               iwae_samples: int = DEFAULT_IWAE_SAMPLES,
               seed: Optional[int] = 0,
               code_fingerprint: Optional[str] = None,
               allow_signature_change: bool = False,
               served_version: Optional[str] = None,
               model_run: Optional[types.BaseChannel] = None,
               data_gate: Optional[types.BaseChannel] = None):
    """Constructs the component.

    Args:
      examples: ExampleGen's examples; the `eval` split is measured.
      model: the Trainer's model.
      serving_dir: the push destination; its newest version is the baseline.
      bless_threshold: largest -ELBO (nats) a blessed model may have.
      bless_tolerance: how many nats worse than the served model it may be.
      iwae_samples: importance samples per image for the IWAE bound.
      seed: seeds the draws of z, so reruns give the same numbers.
      code_fingerprint: fingerprint of the evaluator's code (for the cache).
      allow_signature_change: bless a candidate whose serving signature
        differs from the served model's (e.g. another latent_dim).
      served_version: the version served when the pipeline was built, for
        the cache key only: a cached evaluation is reused only against the
        model it measured. None where it cannot be known (Kubeflow).
      model_run: the Trainer's `model_run` (its training history, drawn in
        the report), or None.
      data_gate: the DataGate's `anomalies` (its gate.json: verdict and
        measured drift, shown in the report), or None.
    """
    if iwae_samples < 1:
      raise ValueError(f'iwae_samples must be >= 1, got {iwae_samples}')
    spec = VaeEvaluatorSpec(
        examples=examples, model=model, serving_dir=serving_dir,
        bless_threshold=float(bless_threshold),
        bless_tolerance=float(bless_tolerance), iwae_samples=iwae_samples,
        seed=seed, code_fingerprint=code_fingerprint,
        allow_signature_change=int(allow_signature_change),
        served_version=served_version, model_run=model_run,
        data_gate=data_gate,
        evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
        blessing=types.Channel(type=standard_artifacts.ModelBlessing))
    super().__init__(spec=spec)
