"""The optimizer the VAE trains with: Adam on a per-step learning rate."""

import logging

import keras

from models import schedules

logger = logging.getLogger(__name__)


def compile_with_adam(model: keras.Model,
                      learning_rate: schedules.LearningRate, *,
                      ema_momentum: float, gradient_clip_norm: float,
                      steps_per_execution: int,
                      steps_per_epoch: int) -> None:
  """Compiles `model` with Adam for epochs of `steps_per_epoch` steps.

  Args:
    model: the model to compile.
    learning_rate: the learning rate of every step.
    ema_momentum: of Adam's moving average of the weights; 0 = none.
    gradient_clip_norm: the gradients' global norm is scaled down to this
      when larger; 0 = no clipping.
    steps_per_execution: train steps per call of the compiled function,
      rounded down to a divisor of `steps_per_epoch` so that epochs stay exact.
    steps_per_epoch: train steps per epoch.
  """
  exact = schedules.exact_steps_per_execution(steps_per_execution,
                                              steps_per_epoch)
  if exact != steps_per_execution:
    logger.info('steps_per_execution %d -> %d, a divisor of the %d steps per '
                'epoch', steps_per_execution, exact, steps_per_epoch)
  model.compile(
      optimizer=keras.optimizers.Adam(
          learning_rate=learning_rate, use_ema=ema_momentum > 0,
          ema_momentum=ema_momentum or 0.99,
          global_clipnorm=gradient_clip_norm or None),
      steps_per_execution=exact)
