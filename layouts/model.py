"""The layout of a trained model: the TFX Model artifact's directory.

    <model_uri>/
      Format-Serving/          SERVING_MODEL_DIR: the decoder SavedModel, the
                               one TensorFlow Serving serves
      encoder/                 ENCODER_DIR: the encoder SavedModel
      warm_start/
        vae.weights.h5         WARM_START_WEIGHTS: the VAE's weights
        hyperparameters.json   HYPERPARAMETERS_FILE: the Hyperparameters used

`models.export` writes and reads it; a pushed version keeps the same layout
for its encoder and warm-start files (see `layouts.serving`).
"""

import os

SERVING_MODEL_DIR = 'Format-Serving'  # TFX's path_utils.serving_model_dir.
ENCODER_DIR = 'encoder'
WARM_START_DIR = 'warm_start'
WARM_START_WEIGHTS = os.path.join(WARM_START_DIR, 'vae.weights.h5')
HYPERPARAMETERS_FILE = os.path.join(WARM_START_DIR, 'hyperparameters.json')
