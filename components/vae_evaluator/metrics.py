"""Held-out metrics of an exported VAE: -ELBO, its terms, and the IWAE bound.

Works on the exported SavedModels (the decoder TensorFlow Serving serves and
the encoder beside it), so the candidate and the served baseline are measured
by the same code on the same images.

For each image x the encoder gives q(z|x) = N(mu, diag(sigma^2)). With k
draws z_1..z_k from q (the same draws for both numbers):

* -ELBO = mean_i BCE(x, decoder(z_i)) + KL(q(z|x) || N(0, I)): the
  reconstruction term summed over pixels (Monte Carlo over the k draws) and
  the KL in closed form, exactly the Trainer's loss (`models.vae`);
* IWAE bound = -log( (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) ), an upper bound
  on -log p(x) that tightens as k grows and equals the -ELBO in expectation at
  k = 1 (Burda et al., 2016).

Both are in nats per image, averaged over the split.
"""

import dataclasses
import math
import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from layouts import serving as serving_layout
from models import export
from models import vae as vae_lib

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass
class ExportedVae:
  """An exported model: the served decoder and its encoder."""
  decoder_dir: str
  encoder_dir: str
  latent_dim: int
  _decoder: tf.types.experimental.ConcreteFunction
  _encoder: tf.types.experimental.ConcreteFunction
  # Keep the loaded objects alive: signatures hold weak references.
  _loaded: tuple

  def encode(self, images: tf.Tensor):
    """images [B, 28, 28, 1] in [0, 1] -> (z_mean, z_log_var), each [B, D]."""
    out = self._encoder(**{export.ENCODER_INPUT: images})
    return tuple(out[name] for name in export.ENCODER_OUTPUTS)

  def decode(self, z: tf.Tensor) -> tf.Tensor:
    """z [B, D] -> Bernoulli means [B, 28, 28, 1]."""
    return self._decoder(**{export.DECODER_INPUT: z})[export.DECODER_OUTPUT]

  def signature(self) -> str:
    """The served decoder's serving signature, as clients see it, e.g.
    `z float32 [None, 2] -> image float32 [None, 28, 28, 1]`."""
    def describe(specs) -> str:
      return ', '.join(
          f'{name} {spec.dtype.name} {spec.shape.as_list()}'.replace(
              "'", '') for name, spec in sorted(specs.items()))
    return (f'{describe(self._decoder.structured_input_signature[1])} -> '
            f'{describe(self._decoder.structured_outputs)}')


def load_exported(decoder_dir: str, encoder_dir: str) -> ExportedVae:
  """Loads a decoder and an encoder SavedModel (serving_default signatures)."""
  decoder = tf.saved_model.load(decoder_dir)
  encoder = tf.saved_model.load(encoder_dir)
  decode = decoder.signatures[export.SIGNATURE_KEY]
  encode = encoder.signatures[export.SIGNATURE_KEY]
  z_spec = decode.structured_input_signature[1][export.DECODER_INPUT]
  return ExportedVae(decoder_dir, encoder_dir, int(z_spec.shape[-1]), decode,
                     encode, (decoder, encoder))


def load_trainer_model(model_uri: str) -> ExportedVae:
  """Loads the Trainer's Model artifact (see models.export for the layout)."""
  return load_exported(
      os.path.join(model_uri, export.SERVING_MODEL_DIR),
      os.path.join(model_uri, export.ENCODER_DIR))


def load_served_model(version_dir: str) -> ExportedVae:
  """Loads a pushed version: its decoder, and its encoder (the version's
  own copy, or for older versions the one it was pushed from).

  Raises:
    serving_layout.NotPushedByPipelineError: the encoder cannot be found.
  """
  return load_exported(
      version_dir,
      os.path.join(serving_layout.model_dir_of(version_dir),
                   export.ENCODER_DIR))


@dataclasses.dataclass
class Evaluation:
  """Mean metrics over a split, and what the plots need."""
  metrics: Dict[str, float]
  z_mean: np.ndarray  # [N, latent_dim]
  labels: Optional[np.ndarray]  # [N], or None when the data has no labels


def _log_normal(z, mean, log_var):
  """log N(z; mean, diag(exp(log_var))) summed over the last axis."""
  return -0.5 * tf.reduce_sum(
      _LOG_2PI + log_var + tf.square(z - mean) / tf.exp(log_var), axis=-1)


def evaluate(model: ExportedVae, dataset: tf.data.Dataset, iwae_samples: int,
             seed: int = 0) -> Evaluation:
  """Computes -ELBO, reconstruction, KL and the IWAE bound over `dataset`.

  Args:
    model: the exported VAE.
    dataset: batches of images [B, 28, 28, 1], or (images, labels) tuples.
    iwae_samples: k, the draws of z per image (>= 1).
    seed: seeds the draws; the same seed gives the same numbers.

  Returns:
    The metrics (`neg_elbo`, `reconstruction`, `kl`, `iwae_bound`,
    `num_images`, `iwae_samples`), z_mean of every image and the labels.
  """
  if iwae_samples < 1:
    raise ValueError(f'iwae_samples must be >= 1, got {iwae_samples}')
  k = iwae_samples

  @tf.function
  def batch_terms(images, batch_seed):
    z_mean, z_log_var = model.encode(images)
    batch, dim = tf.shape(z_mean)[0], tf.shape(z_mean)[1]
    eps = tf.random.stateless_normal([k, batch, dim], seed=batch_seed)
    z = z_mean + tf.exp(0.5 * z_log_var) * eps  # [k, B, D]
    reconstruction = model.decode(tf.reshape(z, [k * batch, dim]))
    tiled = tf.tile(images, [k, 1, 1, 1])
    rec, kl = vae_lib.negative_elbo_terms(
        tiled, reconstruction, tf.tile(z_mean, [k, 1]),
        tf.tile(z_log_var, [k, 1]))
    rec = tf.reshape(rec, [k, batch])
    log_w = (-rec + _log_normal(z, 0.0, 0.0) -
             _log_normal(z, z_mean, z_log_var))
    iwae = -(tf.reduce_logsumexp(log_w, axis=0) - math.log(k))
    return (tf.reduce_mean(rec, axis=0), tf.reshape(kl, [k, batch])[0], iwae,
            z_mean)

  sums = {'reconstruction': 0.0, 'kl': 0.0, 'iwae_bound': 0.0}
  count = 0
  z_means, labels = [], []
  for step, batch in enumerate(dataset):
    images, batch_labels = (batch if isinstance(batch, (tuple, list)) else
                            (batch, None))
    rec, kl, iwae, z_mean = batch_terms(images, tf.constant([seed, step]))
    for key, values in (('reconstruction', rec), ('kl', kl),
                        ('iwae_bound', iwae)):
      sums[key] += float(tf.reduce_sum(tf.cast(values, tf.float64)))
    count += int(tf.shape(images)[0])
    z_means.append(z_mean.numpy())
    if batch_labels is not None:
      labels.append(np.asarray(batch_labels))
  if count == 0:
    raise ValueError('evaluate: the dataset is empty')
  metrics = {key: value / count for key, value in sums.items()}
  metrics['neg_elbo'] = metrics['reconstruction'] + metrics['kl']
  metrics.update(num_images=count, iwae_samples=k)
  return Evaluation(metrics, np.concatenate(z_means),
                    np.concatenate(labels) if labels else None)
