"""TFX's Pusher with the atomic, uniquely versioned executor.

The spec is the stock Pusher's plus two things: the `statistics` of the data
the model was trained on, recorded in the pushed version as the data gate's
next drift reference, and the fingerprint of the executor's code (for the
cache). The component keeps the id `Pusher`.
"""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import config as config_lib
from components.atomic_pusher import executor
from layouts import contracts

COMPONENT_ID = 'Pusher'


class AtomicPusherSpec(standard_component_specs.PusherSpec):
  """The stock PusherSpec plus training statistics and a code fingerprint."""
  PARAMETERS = {
      **standard_component_specs.PusherSpec.PARAMETERS,
      contracts.CODE_FINGERPRINT_KEY: ExecutionParameter(type=str,
                                                        optional=True),
      executor.CONFIG_KEY: ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      **standard_component_specs.PusherSpec.INPUTS,
      executor.STATISTICS_KEY: ChannelParameter(
          type=standard_artifacts.ExampleStatistics, optional=True),
  }


class AtomicPusher(base_component.BaseComponent):
  """Publishes a blessed decoder atomically under a new version."""

  SPEC_CLASS = AtomicPusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model: types.BaseChannel,
               model_blessing: types.BaseChannel, serving_dir: str,
               statistics: Optional[types.BaseChannel] = None,
               code_fingerprint: Optional[str] = None,
               config: config_lib.ServingConfig = config_lib.ServingConfig()):
    """Constructs the component.

    Args:
      model: the Trainer's model; its Format-Serving dir (the decoder) is
        pushed.
      model_blessing: the evaluator's blessing; unblessed models are not
        pushed.
      serving_dir: TensorFlow Serving's model base path; versions go in
        `<serving_dir>/<version>/`.
      statistics: StatisticsGen's statistics of the training data; the
        `train` split is recorded in the version as the drift reference.
      code_fingerprint: fingerprint of the executor's code (for the cache).
      config: how many versions are kept after a push.
    """
    spec = AtomicPusherSpec(
        model=model, model_blessing=model_blessing, statistics=statistics,
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=serving_dir)),
        code_fingerprint=code_fingerprint, config=config_lib.to_json(config),
        pushed_model=types.Channel(type=standard_artifacts.PushedModel))
    super().__init__(spec=spec)


def create_pusher(model: types.BaseChannel, model_blessing: types.BaseChannel,
                  serving_dir: str,
                  statistics: Optional[types.BaseChannel] = None,
                  code_fingerprint: Optional[str] = None,
                  config: config_lib.ServingConfig = config_lib.ServingConfig()
                  ) -> AtomicPusher:
  """The pipeline's Pusher (id `Pusher`); see AtomicPusher for the args."""
  return AtomicPusher(
      model=model, model_blessing=model_blessing, serving_dir=serving_dir,
      statistics=statistics, code_fingerprint=code_fingerprint,
      config=config).with_id(COMPONENT_ID)
