"""The model artifact's layout and the SavedModel exports.

A trained model lives in one directory, `<model_uri>` (the TFX Model
artifact's URI, the parent of `fn_args.serving_model_dir`):

    <model_uri>/
      Format-Serving/         SERVING_MODEL_DIR: the decoder SavedModel, the
                              only thing Pusher pushes. serving_default:
                              z float32 [None, latent_dim]
                                -> image float32 [None, 28, 28, 1] in [0, 1]
      encoder/                ENCODER_DIR: the encoder SavedModel.
                              serving_default: image float32 [None, 28, 28, 1]
                                -> z_mean, z_log_var float32 [None, latent_dim]
      warm_start/
        vae.weights.h5        WARM_START_WEIGHTS: the VAE's weights (Keras 3
                              .weights.h5), without optimizer state.
        hyperparameters.json  HYPERPARAMETERS_FILE: the Hyperparameters used.

Keras 3 cannot `save(save_format='tf')`, so the SavedModels are written with
`keras.export.ExportArchive` and explicit signatures; they load with plain
`tf.saved_model.load` and need neither Keras nor this package.
"""

import json
import logging
import os
from typing import Optional

import keras
import tensorflow as tf

from layouts import contracts
from layouts import model as model_layout
from models import vae as vae_lib

logger = logging.getLogger(__name__)


SIGNATURE_KEY = 'serving_default'
DECODER_INPUT = 'z'
DECODER_OUTPUT = 'image'
ENCODER_INPUT = 'image'
ENCODER_OUTPUTS = ('z_mean', 'z_log_var')


def model_dir_from_serving_dir(serving_model_dir: str) -> str:
  """<model_uri> from <model_uri>/Format-Serving (TFX's serving_model_dir)."""
  return os.path.dirname(serving_model_dir.rstrip('/'))


def latent_dim_of(vae: vae_lib.VAE) -> int:
  """The size of `vae`'s latent space."""
  return int(vae.decoder.inputs[0].shape[-1])


def float32_copy(vae: vae_lib.VAE) -> vae_lib.VAE:
  """An uncompiled float32 VAE with `vae`'s weights (whatever its precision).

  What is exported and saved for warm starts: the variables are float32 in
  every precision, so the weights carry over unchanged.
  """
  copy = vae_lib.build_uncompiled_vae(latent_dim_of(vae))
  copy.set_weights(vae.get_weights())
  return copy


def export_decoder(decoder: keras.Model, export_dir: str) -> None:
  """Writes the decoder as a SavedModel: `z` -> `image` (serving_default)."""
  latent_dim = int(decoder.inputs[0].shape[-1])
  archive = keras.export.ExportArchive()
  archive.track(decoder)

  def serve(z):
    return {DECODER_OUTPUT: decoder(z, training=False)}

  archive.add_endpoint(
      SIGNATURE_KEY, serve,
      input_signature=[tf.TensorSpec([None, latent_dim], tf.float32,
                                     name=DECODER_INPUT)])
  archive.write_out(export_dir, verbose=False)
  logger.info('Exported the decoder to %s', export_dir)


def export_encoder(encoder: keras.Model, export_dir: str) -> None:
  """Writes the encoder as a SavedModel: `image` -> `z_mean`, `z_log_var`.

  The sampling of z is left out: callers draw z from (z_mean, z_log_var).
  """
  z_mean, z_log_var = encoder.outputs[:2]
  deterministic = keras.Model(encoder.inputs, [z_mean, z_log_var],
                              name='encoder_mean_log_var')
  archive = keras.export.ExportArchive()
  archive.track(deterministic)

  def serve(image):
    mean, log_var = deterministic(image, training=False)
    return dict(zip(ENCODER_OUTPUTS, (mean, log_var)))

  archive.add_endpoint(
      SIGNATURE_KEY, serve,
      input_signature=[tf.TensorSpec([None] + list(contracts.IMAGE_SHAPE),
                                     tf.float32, name=ENCODER_INPUT)])
  archive.write_out(export_dir, verbose=False)
  logger.info('Exported the encoder to %s', export_dir)


def save_for_warm_start(float32_vae: vae_lib.VAE, hp: vae_lib.Hyperparameters,
                        model_dir: str) -> None:
  """Saves the VAE weights and hyperparameters under `model_dir`.

  Args:
    float32_vae: an uncompiled float32 VAE (`float32_copy`): the
      weights file then holds the model only, and a warm-started run begins
      with a fresh optimizer (and its own schedule) in whatever precision it
      trains.
    hp: the hyperparameters it trained with.
    model_dir: <model_uri>.
  """
  tf.io.gfile.makedirs(os.path.join(model_dir, model_layout.WARM_START_DIR))
  float32_vae.save_weights(
      os.path.join(model_dir, model_layout.WARM_START_WEIGHTS))
  with tf.io.gfile.GFile(
      os.path.join(model_dir, model_layout.HYPERPARAMETERS_FILE), 'w') as f:
    json.dump(hp.to_dict(), f, indent=2, sort_keys=True)


def find_warm_start_dir(path: str) -> Optional[str]:
  """The model directory holding warm-start weights for `path`, or None.

  `path` may be the model directory itself or its Format-Serving directory
  (what TFX passes as `fn_args.base_model`).
  """
  for candidate in (path, model_dir_from_serving_dir(path)):
    if tf.io.gfile.exists(
        os.path.join(candidate, model_layout.WARM_START_WEIGHTS)):
      return candidate
  return None


def load_warm_start(vae: vae_lib.VAE, path: str) -> str:
  """Loads the weights saved by `save_for_warm_start` into `vae`.

  Args:
    vae: a built VAE (e.g. from `build_vae`).
    path: the previous model directory or its Format-Serving directory.

  Returns:
    The model directory the weights came from.

  Raises:
    FileNotFoundError: no warm-start weights at `path`.
    ValueError: the previous model has another latent_dim.
  """
  model_dir = find_warm_start_dir(path)
  if model_dir is None:
    raise FileNotFoundError(
        f'No warm-start weights ({model_layout.WARM_START_WEIGHTS}) in '
        f'{path} or its parent')
  latent_dim = latent_dim_of(vae)
  hp_path = os.path.join(model_dir, model_layout.HYPERPARAMETERS_FILE)
  if tf.io.gfile.exists(hp_path):
    with tf.io.gfile.GFile(hp_path) as f:
      previous = json.load(f)
    if previous.get('latent_dim') != latent_dim:
      raise ValueError(
          f'Cannot warm-start a latent_dim={latent_dim} VAE from {model_dir}, '
          f'which has latent_dim={previous.get("latent_dim")}')
  copy = vae_lib.build_uncompiled_vae(latent_dim)
  copy.load_weights(os.path.join(model_dir, model_layout.WARM_START_WEIGHTS))
  vae.set_weights(copy.get_weights())
  logger.info('Warm-started from %s', model_dir)
  return model_dir


def export_model(vae: vae_lib.VAE, hp: vae_lib.Hyperparameters,
                 serving_model_dir: str) -> str:
  """Exports decoder, encoder and warm-start files; returns <model_uri>.

  All are float32, whatever precision `vae` trained in: a served model needs
  no bfloat16 support from the machine serving it.
  """
  model_dir = model_dir_from_serving_dir(serving_model_dir)
  float32_vae = float32_copy(vae)
  export_decoder(float32_vae.decoder, serving_model_dir)
  export_encoder(float32_vae.encoder,
                 os.path.join(model_dir, model_layout.ENCODER_DIR))
  save_for_warm_start(float32_vae, hp, model_dir)
  return model_dir
