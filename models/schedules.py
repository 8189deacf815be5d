"""Per-step schedules of training: the learning rate and the KL weight.

Both are functions of the optimizer's step counter, evaluated inside the
compiled train step, so they advance every step (also with
`steps_per_execution` > 1, where Keras' per-batch callbacks run only once per
execution) and a resumed run (same step counter) continues where it was.

Learning rate (`Hyperparameters.lr_schedule`), with an optional linear
warm-up from 0 over the first `lr_warmup_fraction` of the steps:

* `constant`: `learning_rate` (the seed's, without warm-up);
* `cosine`: half a cosine from `learning_rate` down to
  `learning_rate * lr_final_fraction` at the last step. With a warm-up this
  is the "one-cycle" shape (Smith, 2018): up to the peak, then annealed.

KL weight (the factor of the KL term in the *optimised* objective; the loss
that is logged and reported stays the true -ELBO): over `kl_cycles` equal
cycles of the training, the weight rises linearly from 0 to 1 over the first
`kl_warmup_epochs` of each cycle, then stays 1. One cycle is the usual linear
KL warm-up (Bowman et al., 2016); several are the cyclical schedule of Fu et
al. (2019). `kl_warmup_epochs = 0` is the seed's constant weight of 1.

Plain arithmetic on numbers (no import of the model), so `models.vae` can
build them from its `Hyperparameters`.
"""

import math
from typing import Any, Dict

import keras
import tensorflow as tf

LR_SCHEDULES = ('constant', 'cosine')


def _as_float(step) -> tf.Tensor:
  return tf.cast(tf.convert_to_tensor(step), tf.float32)


class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
  """Learning rate of 0-based step `step`: warm-up, then constant or cosine.

  Args:
    peak: the rate after warm-up (Hyperparameters.learning_rate).
    kind: one of LR_SCHEDULES.
    final: the cosine's rate at the last step.
    warmup_steps: steps of the linear warm-up from 0 (0: none).
    total_steps: steps of the whole training.
  """

  def __init__(self, peak: float, kind: str = 'constant', final: float = 0.0,
               warmup_steps: int = 0, total_steps: int = 1):
    if kind not in LR_SCHEDULES:
      raise ValueError(f'kind must be one of {LR_SCHEDULES}, got {kind!r}')
    if not 0 <= warmup_steps < max(total_steps, 1) and warmup_steps:
      raise ValueError(f'warmup_steps ({warmup_steps}) must be less than '
                       f'total_steps ({total_steps})')
    self.peak = float(peak)
    self.kind = kind
    self.final = float(final)
    self.warmup_steps = int(warmup_steps)
    self.total_steps = int(total_steps)

  def __call__(self, step):
    step = _as_float(step)
    rate = tf.constant(self.peak, tf.float32)
    if self.kind == 'cosine':
      decay_steps = float(max(self.total_steps - self.warmup_steps - 1, 1))
      progress = tf.clip_by_value((step - self.warmup_steps) / decay_steps,
                                  0.0, 1.0)
      rate = self.final + (self.peak - self.final) * 0.5 * (
          1.0 + tf.cos(math.pi * progress))
    if self.warmup_steps:
      rate = tf.where(step < self.warmup_steps,
                      self.peak * (step + 1.0) / self.warmup_steps, rate)
    return rate

  def get_config(self) -> Dict[str, Any]:
    return {'peak': self.peak, 'kind': self.kind, 'final': self.final,
            'warmup_steps': self.warmup_steps,
            'total_steps': self.total_steps}


class KlWeight:
  """KL weight of 0-based step `step`: cycles of a linear ramp, then 1.

  Args:
    ramp_steps: steps over which the weight rises from 0 to 1 at the start
      of each cycle (0: always 1).
    cycle_steps: steps per cycle (the whole training for a plain warm-up).
  """

  def __init__(self, ramp_steps: int = 0, cycle_steps: int = 1):
    if ramp_steps and not 0 < ramp_steps <= cycle_steps:
      raise ValueError(f'ramp_steps ({ramp_steps}) must be in '
                       f'(0, cycle_steps={cycle_steps}]')
    self.ramp_steps = int(ramp_steps)
    self.cycle_steps = int(cycle_steps)

  def __call__(self, step) -> tf.Tensor:
    if not self.ramp_steps:
      return tf.constant(1.0, tf.float32)
    within = tf.math.floormod(_as_float(step), float(self.cycle_steps))
    return tf.minimum(1.0, (within + 1.0) / self.ramp_steps)


def exact_steps_per_execution(requested: int, steps_per_epoch: int) -> int:
  """The largest divisor of `steps_per_epoch` that is <= `requested`.

  Keras runs `steps_per_execution` steps per call of the compiled function;
  a divisor of the epoch's steps keeps every epoch exactly one pass (e.g.
  469 = 7 x 67 steps of 128 images for 60,000 images: 8 would not divide).
  """
  if requested < 1 or steps_per_epoch < 1:
    raise ValueError(f'requested ({requested}) and steps_per_epoch '
                     f'({steps_per_epoch}) must be >= 1')
  return max(d for d in range(1, min(requested, steps_per_epoch) + 1)
             if steps_per_epoch % d == 0)
