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
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from layouts import model as model_layout
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
      os.path.join(model_uri, model_layout.SERVING_MODEL_DIR),
      os.path.join(model_uri, model_layout.ENCODER_DIR))


def load_served_model(version_dir: str) -> ExportedVae:
  """Loads a pushed version: its decoder, and its encoder (the version's
  own copy, or for older versions the one it was pushed from).

  Raises:
    serving_layout.NotPushedByPipelineError: the encoder cannot be found.
  """
  return load_exported(
      version_dir,
      os.path.join(serving_layout.model_dir_of(version_dir),
                   model_layout.ENCODER_DIR))


# The per-image terms `evaluate` records; the split's metrics are their means.
PER_IMAGE_TERMS = ('reconstruction', 'kl', 'iwae_bound')
# The metrics reported per label: the per-image terms and their sum.
PER_LABEL_METRICS = ('neg_elbo', 'reconstruction', 'kl', 'iwae_bound')
# The report flags a digit whose -ELBO is more than this many nats above the
# served model's. Per digit, about 1,000 images, the noise between two
# equally good training seeds is larger than the overall spread (sd 1.9 nats
# over 3 seeds, BENCHMARKS.md "Quality"). It informs and does not gate: the
# blessing looks at the overall -ELBO.
PER_LABEL_MARGIN_NATS = 2.0


@dataclasses.dataclass
class Evaluation:
  """Mean metrics over a split, the per-image terms, and what the plots need."""
  metrics: Dict[str, float]
  z_mean: np.ndarray  # [N, latent_dim]
  labels: Optional[np.ndarray]  # [N], or None when the data has no labels
  # term -> [N] float64, per image, in dataset order (PER_IMAGE_TERMS).
  per_image: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Served:
  """The model served from `serving_dir`: nothing served (`version_dir`
  None), measured (`evaluation` and `model`), or not measurable (`error`:
  why; a verdict that blocks the push)."""
  serving_dir: str
  version_dir: Optional[str] = None
  evaluation: Optional[Evaluation] = None
  model: Optional[ExportedVae] = None
  error: Optional[str] = None

  @property
  def metrics(self) -> Optional[Dict[str, float]]:
    return self.evaluation.metrics if self.evaluation else None


@dataclasses.dataclass(frozen=True)
class Measured:
  """The candidate and the served model, measured on the same images with
  the same draws of z."""
  dataset: tf.data.Dataset  # the eval images, in the order measured
  model: ExportedVae  # the candidate
  candidate: Evaluation
  served: Served


def _log_normal(z, mean, log_var):
  """log N(z; mean, diag(exp(log_var))) summed over the last axis."""
  return -0.5 * tf.reduce_sum(
      _LOG_2PI + log_var + tf.square(z - mean) / tf.exp(log_var), axis=-1)


def mean_terms(per_image: Mapping[str, np.ndarray],
               mask: Optional[np.ndarray] = None) -> Dict[str, float]:
  """Means of the per-image terms (over the images in `mask`, or all), and
  `neg_elbo`, their reconstruction + KL.

  The one place the split's metrics and the per-label ones are computed.
  """
  means = {}
  for key in PER_IMAGE_TERMS:
    values = per_image[key] if mask is None else per_image[key][mask]
    means[key] = float(np.mean(values, dtype=np.float64))
  means['neg_elbo'] = means['reconstruction'] + means['kl']
  return means


def per_label(evaluation: Evaluation,
              labels: Sequence[int] = tuple(range(10))
              ) -> Optional[Dict[str, Dict[str, float]]]:
  """The metrics of the images of each label, or None without labels.

  Returns:
    str(label) -> {PER_LABEL_METRICS..., 'num_images'} for each of `labels`
    that occurs in the split (absent labels are left out).
  """
  if evaluation.labels is None:
    return None
  result = {}
  for label in labels:
    mask = evaluation.labels == label
    count = int(mask.sum())
    if count:
      result[str(label)] = dict(mean_terms(evaluation.per_image, mask),
                                num_images=count)
  return result


def worse_labels(candidate: Mapping[str, Mapping[str, float]],
                 served: Optional[Mapping[str, Mapping[str, float]]],
                 margin: float) -> List[str]:
  """The labels whose -ELBO in `candidate` exceeds the one in `served` by
  more than `margin` nats (none without `served`); per_label's format."""
  if not served:
    return []
  return [label for label in sorted(candidate, key=int)
          if label in served and
          candidate[label]['neg_elbo'] - served[label]['neg_elbo'] > margin]


def evaluate(model: ExportedVae, dataset: tf.data.Dataset, iwae_samples: int,
             seed: int = 0) -> Evaluation:
  """Computes -ELBO, reconstruction, KL and the IWAE bound over `dataset`.

  The terms are computed once per image (`Evaluation.per_image`); the
  split's metrics are their means (`mean_terms`), as are the per-label ones
  (`per_label`).

  Args:
    model: the exported VAE.
    dataset: batches of images [B, 28, 28, 1], or (images, labels) tuples.
    iwae_samples: k, the draws of z per image (>= 1).
    seed: seeds the draws; the same seed gives the same numbers.

  Returns:
    The metrics (`neg_elbo`, `reconstruction`, `kl`, `iwae_bound`,
    `num_images`, `iwae_samples`), z_mean of every image, the labels and the
    per-image terms.
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

  terms = {key: [] for key in PER_IMAGE_TERMS}
  z_means, labels = [], []
  for step, batch in enumerate(dataset):
    images, batch_labels = (batch if isinstance(batch, (tuple, list)) else
                            (batch, None))
    rec, kl, iwae, z_mean = batch_terms(images, tf.constant([seed, step]))
    for key, values in (('reconstruction', rec), ('kl', kl),
                        ('iwae_bound', iwae)):
      terms[key].append(values.numpy().astype(np.float64))
    z_means.append(z_mean.numpy())
    if batch_labels is not None:
      labels.append(np.asarray(batch_labels))
  if not z_means:
    raise ValueError('evaluate: the dataset is empty')
  per_image = {key: np.concatenate(values) for key, values in terms.items()}
  metrics = mean_terms(per_image)
  metrics.update(num_images=len(per_image['kl']), iwae_samples=k)
  return Evaluation(metrics, np.concatenate(z_means),
                    np.concatenate(labels) if labels else None, per_image)
