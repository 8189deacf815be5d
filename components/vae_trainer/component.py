"""TFX's Trainer (GenericExecutor, a run_fn) plus an `epochs` parameter.

The number of epochs is the one training knob an operator changes between
scheduled runs; as its own integer parameter it can be a Kubeflow runtime
parameter (`RuntimeParameter` works only for a whole parameter, not for a
value inside the Trainer's JSON `custom_config`). The executor writes it
into `custom_config['hyperparameters']['epochs']` before the run_fn reads
them. The component keeps the id `Trainer`.
"""

from typing import Any, Dict, Optional, Sequence, Union

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from components.vae_trainer import executor

COMPONENT_ID = 'Trainer'


class VaeTrainerSpec(standard_component_specs.TrainerSpec):
  """The stock TrainerSpec plus `epochs`."""
  PARAMETERS = {
      **standard_component_specs.TrainerSpec.PARAMETERS,
      executor.EPOCHS_KEY: ExecutionParameter(type=int, optional=True),
  }


class VaeTrainer(base_component.BaseComponent):
  """Trains with a run_fn; `epochs` overrides the hyperparameters' value."""

  SPEC_CLASS = VaeTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, schema: types.BaseChannel,
               run_fn: str, custom_config: Dict[str, Any],
               epochs: Optional[Union[int,
                                      data_types.RuntimeParameter]] = None,
               train_splits: Sequence[str] = ('train',)):
    """Constructs the component.

    Args:
      examples: the examples to train on (`train_splits`); the run_fn
        carves its validation images out of them, never out of `eval`.
      schema: their schema.
      run_fn: import path of the run_fn.
      custom_config: passed to the run_fn as `fn_args.custom_config`.
      epochs: passes over the train split (an int or a runtime parameter of
        type int); None keeps the hyperparameters' value.
      train_splits: the splits of `examples` to train on (`train`, and
        `history` for a window of spans, see `layouts.spans`).
    """
    spec = VaeTrainerSpec(
        examples=examples, schema=schema,
        train_args=trainer_pb2.TrainArgs(splits=list(train_splits)),
        eval_args=trainer_pb2.EvalArgs(),
        run_fn=run_fn, custom_config=json_utils.dumps(custom_config),
        epochs=epochs,
        model=types.Channel(type=standard_artifacts.Model),
        model_run=types.Channel(type=standard_artifacts.ModelRun))
    super().__init__(spec=spec)


def create_trainer(**kwargs) -> VaeTrainer:
  """The pipeline's Trainer (id `Trainer`); see VaeTrainer for the args."""
  return VaeTrainer(**kwargs).with_id(COMPONENT_ID)
