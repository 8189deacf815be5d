"""The stock TFX Pusher with the atomic, uniquely versioned executor."""

from tfx import types
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.atomic_pusher import executor


def create_pusher(model: types.BaseChannel, model_blessing: types.BaseChannel,
                  serving_dir: str) -> tfx.components.Pusher:
  """A Pusher that publishes the blessed decoder under `serving_dir`.

  Args:
    model: the Trainer's model; its Format-Serving dir (the decoder) is pushed.
    model_blessing: the evaluator's blessing; unblessed models are not pushed.
    serving_dir: TensorFlow Serving's model base path; versions go in
      `<serving_dir>/<version>/`.
  """
  return tfx.components.Pusher(
      model=model,
      model_blessing=model_blessing,
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=serving_dir)),
      custom_executor_spec=executor_spec.ExecutorClassSpec(executor.Executor))
