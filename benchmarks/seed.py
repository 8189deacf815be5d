"""The seed's VAE, as the notebook had it (keras.io "Variational AutoEncoder").

The baseline the benchmarks measure against (throughput.py, recipes.py), so it
stays exactly the seed's code rather than models/vae.py's.
"""

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from keras import ops

from benchmarks import recording


class SeedSampling(layers.Layer):
  """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.seed_generator = keras.random.SeedGenerator(1337)

  def call(self, inputs):
    z_mean, z_log_var = inputs
    batch = ops.shape(z_mean)[0]
    dim = ops.shape(z_mean)[1]
    epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
    return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def seed_encoder(latent_dim: int = 2) -> keras.Model:
  """The seed's encoder."""
  encoder_inputs = keras.Input(shape=(28, 28, 1))
  x = layers.Conv2D(32, 3, activation='relu', strides=2,
                    padding='same')(encoder_inputs)
  x = layers.Conv2D(64, 3, activation='relu', strides=2, padding='same')(x)
  x = layers.Flatten()(x)
  x = layers.Dense(16, activation='relu')(x)
  z_mean = layers.Dense(latent_dim, name='z_mean')(x)
  z_log_var = layers.Dense(latent_dim, name='z_log_var')(x)
  z = SeedSampling()([z_mean, z_log_var])
  return keras.Model(encoder_inputs, [z_mean, z_log_var, z], name='encoder')


def seed_decoder(latent_dim: int = 2) -> keras.Model:
  """The seed's decoder."""
  latent_inputs = keras.Input(shape=(latent_dim,))
  x = layers.Dense(7 * 7 * 64, activation='relu')(latent_inputs)
  x = layers.Reshape((7, 7, 64))(x)
  x = layers.Conv2DTranspose(64, 3, activation='relu', strides=2,
                             padding='same')(x)
  x = layers.Conv2DTranspose(32, 3, activation='relu', strides=2,
                             padding='same')(x)
  decoder_outputs = layers.Conv2DTranspose(1, 3, activation='sigmoid',
                                           padding='same')(x)
  return keras.Model(latent_inputs, decoder_outputs, name='decoder')


class SeedVAE(keras.Model):
  """The seed's VAE: custom train_step, KL averaged over the latent dims."""

  def __init__(self, encoder, decoder, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.decoder = decoder
    self.total_loss_tracker = keras.metrics.Mean(name='total_loss')
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

  def train_step(self, data):
    with tf.GradientTape() as tape:
      z_mean, z_log_var, z = self.encoder(data)
      reconstruction = self.decoder(z)
      reconstruction_loss = ops.mean(
          ops.sum(
              keras.losses.binary_crossentropy(data, reconstruction),
              axis=(1, 2),
          )
      )
      kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
      kl_loss = ops.mean(kl_loss)  # the seed's: averaged over latent dims too
      total_loss = reconstruction_loss + kl_loss
    grads = tape.gradient(total_loss, self.trainable_weights)
    self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
    self.total_loss_tracker.update_state(total_loss)
    self.reconstruction_loss_tracker.update_state(reconstruction_loss)
    self.kl_loss_tracker.update_state(kl_loss)
    return {
        'loss': self.total_loss_tracker.result(),
        'reconstruction_loss': self.reconstruction_loss_tracker.result(),
        'kl_loss': self.kl_loss_tracker.result(),
    }


def seed_digits(prefixes: Sequence[str] = ('train', 't10k'),
                mnist_dir=recording.MNIST_DIR) -> np.ndarray:
  """The seed's `mnist_digits` (keras.datasets.mnist.load_data() gives the
  same arrays): by default train + test, [70000, 28, 28, 1] float32 / 255."""
  digits = np.concatenate([recording.read_mnist(p, mnist_dir=mnist_dir)[0]
                           for p in prefixes], axis=0)
  return np.expand_dims(digits, -1).astype('float32') / 255
