"""The convolutional variational autoencoder of the keras.io example.

Reads top to bottom like https://keras.io/examples/generative/vae/:
hyperparameters, the `Sampling` layer, the encoder, the decoder, the loss and
the `VAE` model with its custom `train_step`.

The loss is the true negative evidence lower bound (-ELBO) in nats per image:
the binary cross-entropy summed over the 784 pixels plus the KL divergence
between q(z|x) and N(0, I) summed over the latent dimensions, averaged over the
batch. (The seed averaged its KL over the latent dimensions, which is not an
ELBO; the keras.io example later fixed the same mistake.)
"""

import dataclasses
import logging
import math
from typing import Any, Dict, Mapping, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from keras import ops

from models import precision as precision_lib
from models import schedules

logger = logging.getLogger(__name__)

IMAGE_SHAPE = (28, 28, 1)

LR_SCHEDULES = schedules.LR_SCHEDULES


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
  """Everything that configures training; defaults are the seed's recipe.

  (`precision` aside: it changes the arithmetic, not the recipe.)

  Passed to the TFX Trainer as `custom_config['hyperparameters']` (the dict
  of `to_dict()`), so every field must stay JSON-serialisable.
  """
  # Size of the latent space z. 2 as in keras.io, so z can be plotted.
  latent_dim: int = 2
  # Passes over the training split.
  epochs: int = 30
  # Images per gradient step.
  batch_size: int = 128
  # Adam's (peak) learning rate.
  learning_rate: float = 1e-3
  # Seeds Python, NumPy, TensorFlow, shuffling and the sampling noise.
  seed: int = 42
  # Learning rate over the training (models/schedules.py): 'constant' (the
  # seed's) or 'cosine' (decays from learning_rate to learning_rate *
  # lr_final_fraction at the last step).
  lr_schedule: str = 'constant'
  # Final learning rate of the 'cosine' schedule, as a fraction of the peak.
  lr_final_fraction: float = 0.01
  # Share of the training steps over which the learning rate warms up
  # linearly from 0 to learning_rate before the schedule (with 'cosine': the
  # one-cycle shape); 0 = none (the seed's). 0.07 = 2 of 30 epochs.
  lr_warmup_fraction: float = 0.0
  # KL warm-up: the KL term's weight in the optimised objective rises
  # linearly from 0 to 1 over this many epochs at the start of each of
  # `kl_cycles` equal cycles; 0 = a constant weight of 1 (the seed's). The
  # logged and reported `loss` is always the true -ELBO, whatever the weight.
  kl_warmup_epochs: int = 0
  # Cycles of the KL warm-up over the training: 1 = a single linear warm-up,
  # more = the cyclical schedule (Fu et al., 2019).
  kl_cycles: int = 1
  # Adam's exponential moving average of the weights: 0 = off (the seed's);
  # e.g. 0.99 averages over about the last 100 steps, and the averaged
  # weights are the trained model.
  ema_momentum: float = 0.0
  # Train steps per call of the compiled step function (Keras
  # steps_per_execution); rounded down to a divisor of the steps per epoch
  # so that epochs stay exact. 1 = the seed's.
  steps_per_execution: int = 7
  # Fraction of the train split carved out (by a hash of each image, so the
  # same images every run) as the validation set of every epoch. 0 = none:
  # the Trainer then trains on the whole split and validates on nothing.
  # The eval split is never seen by the Trainer: it is the evaluator's.
  validation_fraction: float = 0.02
  # Numeric precision of training: 'auto' (mixed_bfloat16 where the CPU has
  # native bfloat16, AMX or AVX512-BF16, else float32; models/precision.py),
  # 'float32' or 'mixed_bfloat16'. bfloat16 convolutions made a step about
  # 1.5x faster here, and over 4 seeds the held-out -ELBO stayed within the
  # seed-to-seed spread of float32 (BENCHMARKS.md, "Speed work").
  precision: str = precision_lib.AUTO

  def __post_init__(self):
    for name in ('latent_dim', 'epochs', 'batch_size'):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'Hyperparameters.{name} must be a positive int, '
                         f'got {value!r}')
    if isinstance(self.seed, bool) or not isinstance(self.seed, int):
      raise ValueError(f'Hyperparameters.seed must be an int, got '
                       f'{self.seed!r}')
    if (isinstance(self.kl_warmup_epochs, bool) or
        not isinstance(self.kl_warmup_epochs, int) or
        self.kl_warmup_epochs < 0):
      raise ValueError('Hyperparameters.kl_warmup_epochs must be an int >= 0, '
                       f'got {self.kl_warmup_epochs!r}')
    for name in ('kl_cycles', 'steps_per_execution'):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'Hyperparameters.{name} must be a positive int, '
                         f'got {value!r}')
    if self.kl_warmup_epochs * self.kl_cycles > self.epochs:
      raise ValueError(f'Hyperparameters.kl_warmup_epochs x kl_cycles '
                       f'({self.kl_warmup_epochs} x {self.kl_cycles}) must '
                       f'not exceed epochs ({self.epochs})')
    for name, low, high in (('ema_momentum', 0, 1),
                            ('lr_warmup_fraction', 0, 1),
                            ('validation_fraction', 0, 0.5)):
      value = getattr(self, name)
      if (isinstance(value, bool) or not isinstance(value, (int, float)) or
          not low <= value < high):
        raise ValueError(f'Hyperparameters.{name} must be in [{low}, {high}), '
                         f'got {value!r}')
    if not (isinstance(self.learning_rate, (int, float)) and
            not isinstance(self.learning_rate, bool) and
            math.isfinite(self.learning_rate) and self.learning_rate > 0):
      raise ValueError('Hyperparameters.learning_rate must be a positive '
                       f'number, got {self.learning_rate!r}')
    if not (isinstance(self.lr_final_fraction, (int, float)) and
            0 <= self.lr_final_fraction <= 1):
      raise ValueError('Hyperparameters.lr_final_fraction must be in [0, 1], '
                       f'got {self.lr_final_fraction!r}')
    if self.lr_schedule not in LR_SCHEDULES:
      raise ValueError(f'Hyperparameters.lr_schedule must be one of '
                       f'{LR_SCHEDULES}, got {self.lr_schedule!r}')
    if self.precision not in precision_lib.PRECISIONS:
      raise ValueError(f'Hyperparameters.precision must be one of '
                       f'{precision_lib.PRECISIONS}, got {self.precision!r}')

  def to_dict(self) -> Dict[str, Any]:
    """A JSON-serialisable dict that `from_dict` turns back into `self`."""
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Optional[Mapping[str, Any]]) -> 'Hyperparameters':
    """Builds hyperparameters from a (partial) dict; missing keys default.

    Raises:
      ValueError: `d` has keys that are not fields, or a value is invalid.
    """
    if d is None:
      return cls()
    if not isinstance(d, Mapping):
      raise ValueError(f'hyperparameters must be a dict, got {type(d)}')
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
      raise ValueError(f'Unknown hyperparameter(s) {unknown}; known ones are '
                       f'{sorted(fields)}')
    return cls(**d)

  def learning_rate_schedule(self,
                             steps_per_epoch: int) -> schedules.LearningRate:
    """The per-step learning-rate schedule of these hyperparameters."""
    return schedules.LearningRate(
        self.learning_rate, self.lr_schedule,
        final=self.learning_rate * self.lr_final_fraction,
        warmup_steps=min(int(round(self.lr_warmup_fraction * self.epochs *
                                   steps_per_epoch)),
                         self.epochs * steps_per_epoch - 1),
        total_steps=self.epochs * steps_per_epoch)

  def kl_weight_schedule(self, steps_per_epoch: int) -> schedules.KlWeight:
    """The per-step KL-weight schedule of these hyperparameters."""
    return schedules.KlWeight(
        ramp_steps=self.kl_warmup_epochs * steps_per_epoch,
        cycle_steps=self.epochs * steps_per_epoch // self.kl_cycles)


class Sampling(layers.Layer):
  """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

  def __init__(self, seed: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)

  def call(self, inputs):
    z_mean, z_log_var = inputs
    batch = ops.shape(z_mean)[0]
    dim = ops.shape(z_mean)[1]
    epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
    return z_mean + ops.exp(0.5 * z_log_var) * epsilon

  def get_config(self) -> Dict[str, Any]:
    return {**super().get_config(), 'seed': self.seed}


def build_encoder(latent_dim: int, seed: Optional[int] = None,
                  dtype_policy: str = precision_lib.FLOAT32) -> keras.Model:
  """x [B, 28, 28, 1] -> (z_mean, z_log_var, z), each [B, latent_dim].

  `dtype_policy` ('float32' or 'mixed_bfloat16') applies to the two
  convolutions, where nearly all the compute is; the Dense layers, the latent
  heads and the sampling are float32 so that z keeps float32 precision.
  """
  p = dtype_policy
  encoder_inputs = keras.Input(shape=IMAGE_SHAPE, name='image')
  x = layers.Conv2D(32, 3, activation='relu', strides=2, padding='same',
                    dtype=p)(encoder_inputs)
  x = layers.Conv2D(64, 3, activation='relu', strides=2, padding='same',
                    dtype=p)(x)
  x = layers.Flatten()(x)
  x = layers.Dense(16, activation='relu', dtype='float32')(x)
  z_mean = layers.Dense(latent_dim, name='z_mean', dtype='float32')(x)
  z_log_var = layers.Dense(latent_dim, name='z_log_var', dtype='float32')(x)
  z = Sampling(seed=seed, name='z', dtype='float32')([z_mean, z_log_var])
  return keras.Model(encoder_inputs, [z_mean, z_log_var, z], name='encoder')


def build_decoder(latent_dim: int,
                  dtype_policy: str = precision_lib.FLOAT32) -> keras.Model:
  """z [B, latent_dim] -> Bernoulli means of the pixels [B, 28, 28, 1].

  `dtype_policy` applies to the three transposed convolutions, where nearly
  all the compute is. The Dense layer reads z in float32, and the output
  sigmoid is a float32 layer of its own, so that the pixel probabilities (and
  the loss on them) keep float32 precision near 0 and 1.
  """
  p = dtype_policy
  latent_inputs = keras.Input(shape=(latent_dim,), name='z')
  x = layers.Dense(7 * 7 * 64, activation='relu', dtype='float32')(
      latent_inputs)
  x = layers.Reshape((7, 7, 64), dtype=p)(x)
  x = layers.Conv2DTranspose(64, 3, activation='relu', strides=2,
                             padding='same', dtype=p)(x)
  x = layers.Conv2DTranspose(32, 3, activation='relu', strides=2,
                             padding='same', dtype=p)(x)
  logits = layers.Conv2DTranspose(1, 3, padding='same', name='image_logits',
                                  dtype=p)(x)
  decoder_outputs = layers.Activation('sigmoid', name='image',
                                      dtype='float32')(logits)
  return keras.Model(latent_inputs, decoder_outputs, name='decoder')


def negative_elbo_terms(images, reconstruction, z_mean,
                        z_log_var) -> Tuple[tf.Tensor, tf.Tensor]:
  """Per-example terms of the -ELBO, in nats.

  Args:
    images: [B, 28, 28, 1] targets in [0, 1].
    reconstruction: [B, 28, 28, 1] decoder outputs (Bernoulli means).
    z_mean: [B, latent_dim] mean of q(z|x).
    z_log_var: [B, latent_dim] log-variance of q(z|x).

  Returns:
    (reconstruction_loss, kl_loss), each [B]: the binary cross-entropy summed
    over the pixels and KL(q(z|x) || N(0, I)) summed over the latent
    dimensions. Their sum is the single-sample -ELBO estimate of each image.
  """
  reconstruction_loss = ops.sum(
      ops.binary_crossentropy(images, reconstruction), axis=(1, 2, 3))
  kl_loss = -0.5 * ops.sum(
      1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
  return reconstruction_loss, kl_loss


class VAE(keras.Model):
  """Encoder + decoder trained on the -ELBO with a custom `train_step`."""

  def __init__(self, encoder: keras.Model, decoder: keras.Model,
               kl_weight_schedule: Optional[schedules.KlWeight] = None,
               **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.decoder = decoder
    # Weight of the KL term in the optimised objective (KL warm-up), set
    # from `kl_weight_schedule` and the optimizer's step at every train step;
    # the reported losses ignore it.
    self.kl_weight_schedule = kl_weight_schedule
    self.kl_weight = keras.Variable(1.0, trainable=False, name='kl_weight',
                                    dtype='float32')
    self.total_loss_tracker = keras.metrics.Mean(name='loss')
    self.reconstruction_loss_tracker = keras.metrics.Mean(
        name='reconstruction_loss')
    self.kl_loss_tracker = keras.metrics.Mean(name='kl_loss')

  @property
  def metrics(self):
    return [
        self.total_loss_tracker,
        self.reconstruction_loss_tracker,
        self.kl_loss_tracker,
    ]

  def call(self, inputs, training=None):
    """Reconstructs `inputs` through a sampled z (stochastic)."""
    _, _, z = self.encoder(inputs, training=training)
    return self.decoder(z, training=training)

  def elbo_terms(self, images, training: bool = False):
    """Per-example (reconstruction_loss, kl_loss) [B] for one draw of z."""
    z_mean, z_log_var, z = self.encoder(images, training=training)
    reconstruction = self.decoder(z, training=training)
    return negative_elbo_terms(images, reconstruction, z_mean, z_log_var)

  def _update_trackers(self, reconstruction_loss, kl_loss):
    # Per-example values, so the means are exact over uneven last batches.
    self.total_loss_tracker.update_state(reconstruction_loss + kl_loss)
    self.reconstruction_loss_tracker.update_state(reconstruction_loss)
    self.kl_loss_tracker.update_state(kl_loss)
    return {m.name: m.result() for m in self.metrics}

  def train_step(self, data):
    if isinstance(data, (tuple, list)):
      data = data[0]
    if self.kl_weight_schedule is not None:
      self.kl_weight.assign(self.kl_weight_schedule(self.optimizer.iterations))
    with tf.GradientTape() as tape:
      reconstruction_loss, kl_loss = self.elbo_terms(data, training=True)
      objective = ops.mean(reconstruction_loss + self.kl_weight * kl_loss)
    grads = tape.gradient(objective, self.trainable_weights)
    self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
    return self._update_trackers(reconstruction_loss, kl_loss)

  def test_step(self, data):
    if isinstance(data, (tuple, list)):
      data = data[0]
    reconstruction_loss, kl_loss = self.elbo_terms(data, training=False)
    return self._update_trackers(reconstruction_loss, kl_loss)


def build_uncompiled_vae(latent_dim: int, seed: Optional[int] = None,
                         dtype_policy: str = precision_lib.FLOAT32,
                         kl_weight_schedule: Optional[
                             schedules.KlWeight] = None) -> VAE:
  """A built VAE with fresh weights and no optimizer."""
  vae = VAE(build_encoder(latent_dim, seed=seed, dtype_policy=dtype_policy),
            build_decoder(latent_dim, dtype_policy=dtype_policy),
            kl_weight_schedule=kl_weight_schedule, name='vae')
  vae(np.zeros((1,) + IMAGE_SHAPE, dtype=np.float32))  # Builds the model.
  return vae


def latent_dim_of(vae: VAE) -> int:
  """The size of `vae`'s latent space."""
  return int(vae.decoder.inputs[0].shape[-1])


def float32_copy(vae: VAE) -> VAE:
  """An uncompiled float32 VAE with `vae`'s weights (whatever its precision).

  What is exported and saved for warm starts: the variables are float32 in
  every precision, so the weights carry over unchanged.
  """
  copy = build_uncompiled_vae(latent_dim_of(vae))
  copy.set_weights(vae.get_weights())
  return copy


def build_vae(hp: Hyperparameters, steps_per_epoch: int = 1) -> VAE:
  """A compiled (Adam), built VAE with fresh weights.

  Trains in `precision_lib.resolve(hp.precision)`, with the learning-rate
  and KL-weight schedules of `hp` over epochs of `steps_per_epoch` steps, and
  `hp.steps_per_execution` rounded down to a divisor of `steps_per_epoch`.
  """
  dtype_policy = precision_lib.resolve(hp.precision)
  logger.info('Training precision: %s (Hyperparameters.precision=%r)',
              dtype_policy, hp.precision)
  vae = build_uncompiled_vae(
      hp.latent_dim, seed=hp.seed, dtype_policy=dtype_policy,
      kl_weight_schedule=hp.kl_weight_schedule(steps_per_epoch))
  steps_per_execution = schedules.exact_steps_per_execution(
      hp.steps_per_execution, steps_per_epoch)
  if steps_per_execution != hp.steps_per_execution:
    logger.info('steps_per_execution %d -> %d, a divisor of the %d steps per '
                'epoch', hp.steps_per_execution, steps_per_execution,
                steps_per_epoch)
  vae.compile(
      optimizer=keras.optimizers.Adam(
          learning_rate=hp.learning_rate_schedule(steps_per_epoch),
          use_ema=hp.ema_momentum > 0,
          ema_momentum=hp.ema_momentum or 0.99),
      steps_per_execution=steps_per_execution)
  return vae


def evaluate_negative_elbo(vae: VAE, dataset: tf.data.Dataset,
                           num_samples: int = 1) -> Dict[str, float]:
  """Mean per-image -ELBO, reconstruction and KL over `dataset`.

  Each image's -ELBO is estimated with `num_samples` draws of z (an unbiased
  estimate; more draws only lower its variance). `dataset` yields image
  batches, or (image, label) tuples whose labels are ignored.
  """

  @tf.function
  def batch_sums(images):
    rec_sum = tf.constant(0.0, tf.float64)
    kl_sum = tf.constant(0.0, tf.float64)
    for _ in range(num_samples):
      reconstruction_loss, kl_loss = vae.elbo_terms(images, training=False)
      rec_sum += tf.reduce_sum(tf.cast(reconstruction_loss, tf.float64))
      kl_sum += tf.reduce_sum(tf.cast(kl_loss, tf.float64))
    return rec_sum, kl_sum, tf.shape(images)[0]

  rec_total = kl_total = 0.0
  count = 0
  for batch in dataset:
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    rec, kl, n = batch_sums(images)
    rec_total += float(rec)
    kl_total += float(kl)
    count += int(n)
  if count == 0:
    raise ValueError('evaluate_negative_elbo: the dataset is empty')
  denominator = count * num_samples
  reconstruction = rec_total / denominator
  kl = kl_total / denominator
  return {
      'negative_elbo': reconstruction + kl,
      'reconstruction_loss': reconstruction,
      'kl_loss': kl,
      'num_images': count,
      'num_samples': num_samples,
  }
