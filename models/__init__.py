"""The convolutional VAE of the keras.io example, its data and its export.

Modules:
  vae: hyperparameters, encoder, decoder, the `VAE` model and its loss.
  validation: the checks of the hyperparameters (from their field metadata).
  schedules, precision, optimizer: what `vae.build_vae` trains with.
  data: ExampleGen TFRecords -> batched float32 images in [0, 1].
  export: the layout of the model artifact and the SavedModel exports.
  train: the training loop, usable without TFX.
  trainer: `run_fn` for the TFX (generic) Trainer.
"""
