"""Benchmark: training images/s of the seed's loop against the Trainer's path.

Two ways of training the keras.io convolutional VAE are timed side by side in
ONE process, in interleaved rounds (the machines are noisy: only ratios
measured together count):

- seed: the notebook's loop as it was written. Its `VAE` class (custom
  `train_step`, KL averaged over the latent dimensions), all 70,000 MNIST
  images (train + test) as one in-memory float32 numpy array, `Adam()` and
  `fit(mnist_digits, batch_size=128)`.
- ours: what the TFX Trainer runs (`models.train.train`): the TFRecord input
  pipeline `models.data.make_training_dataset` over ExampleGen's
  60,000-image `Split-train`, `models.vae.build_vae` (true -ELBO loss) and
  `fit(steps_per_epoch=...)`, in the
  Trainer's default precision (`--precision` to choose another).

Each round builds fresh models for both (so every fit traces and, for ours,
fills its cache again) and trains each for `--epochs` epochs; the first epoch
of every fit is a warm-up (tracing, first pass) and is left out. Throughput
is images/s per remaining epoch; the ratio is ours / seed of the medians, per
image, so the two data sizes (70,000 vs 60,000) do not bias it. Neither
validates or writes TensorBoard logs while being timed (the seed did neither;
the Trainer does both), and both fit with verbose=0.

Target: the Trainer path trains at least 1.5x as many images/s as the seed
(BENCHMARKS.md, "Speed and cost targets").

Run from the repository root:

  .venv/bin/python -m benchmarks.throughput

Results go to benchmarks/results/throughput_<date>.json;
`python -m benchmarks.render` renders one as markdown (`markdown_lines`).
The seed's model (`SeedVAE`, `seed_encoder`, `seed_decoder`,
`load_seed_digits`) is also imported by other benchmarks.
"""

import argparse
import datetime
import logging
import os
import pathlib
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks import recording
from keras import layers
from keras import ops

from components.idx_example_gen import idx
from models import data
from models import precision as precision_lib
from models import vae as vae_lib

logger = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLES_DIR = (REPO_ROOT / 'outputs' / 'pipeline' / 'IdxExampleGen' /
                        'examples' / '1')
DEFAULT_MNIST_DIR = REPO_ROOT / 'data' / 'mnist'
TARGET_RATIO = 1.5

# --------------------------------------------------------------------------
# The seed, as the notebook had it (keras.io "Variational AutoEncoder").
# This deliberately duplicates the model of models/vae.py: it is the baseline
# being measured, so it must stay exactly the seed's code, not ours.
# --------------------------------------------------------------------------


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

  def train_step(self, data):  # pylint: disable=redefined-outer-name
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


def load_seed_digits(mnist_dir: pathlib.Path) -> np.ndarray:
  """The seed's `mnist_digits`: train + test, [70000, 28, 28, 1] float32/255.

  Read from the IDX files (the seed called keras.datasets.mnist.load_data(),
  which returns the same arrays).
  """
  arrays = []
  for name in ('train-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte.gz'):
    header = idx.read_images_header(str(mnist_dir / name))
    arrays.append(idx.read_items(header, 0, header.count))
  mnist_digits = np.concatenate(arrays, axis=0)
  return np.expand_dims(mnist_digits, -1).astype('float32') / 255


# --------------------------------------------------------------------------
# Measuring.
# --------------------------------------------------------------------------


def run_seed(mnist_digits: np.ndarray, epochs: int) -> Dict[str, Any]:
  """One fit of a fresh seed VAE; returns its epoch times and final loss."""
  start = time.perf_counter()
  vae = SeedVAE(seed_encoder(), seed_decoder())
  vae.compile(optimizer=keras.optimizers.Adam())
  timer = recording.EpochTimer()
  history = vae.fit(mnist_digits, epochs=epochs, batch_size=128,
                    callbacks=[timer], verbose=0)
  return {
      'images': int(len(mnist_digits)),
      'epoch_seconds': timer.seconds,
      'total_seconds': time.perf_counter() - start,
      'final_loss': float(history.history['loss'][-1]),
  }


def run_ours(train_files: str, epochs: int, seed: int,
             precision: str) -> Dict[str, Any]:
  """One fit of a fresh VAE on the Trainer's input pipeline."""
  start = time.perf_counter()
  hp = vae_lib.Hyperparameters(epochs=epochs, seed=seed, precision=precision)
  keras.utils.set_random_seed(hp.seed)
  fill_start = time.perf_counter()
  train_ds, steps_per_epoch = data.make_training_dataset(
      train_files, hp.batch_size, seed=hp.seed)
  fill_seconds = time.perf_counter() - fill_start
  # Every batch is full: an epoch of ceil(60,000 / 128) steps is 60,032
  # images.
  images = steps_per_epoch * hp.batch_size
  vae = vae_lib.build_vae(hp)
  timer = recording.EpochTimer()
  history = vae.fit(train_ds, epochs=hp.epochs,
                    steps_per_epoch=steps_per_epoch, callbacks=[timer],
                    verbose=0)
  return {
      'images': images,
      'dataset_fill_seconds': fill_seconds,
      'epoch_seconds': timer.seconds,
      'total_seconds': time.perf_counter() - start,
      'final_loss': float(history.history['loss'][-1]),
  }


def summarize(images: int, fits: Sequence[Dict[str, Any]],
              warmup_epochs: int) -> Dict[str, Any]:
  """Images/s per measured epoch (warm-up epochs of every fit excluded)."""
  rates = [images / s for fit in fits for s in fit['epoch_seconds'][
      warmup_epochs:]]
  warmup = [images / fit['epoch_seconds'][0] for fit in fits]
  return {
      'images_per_epoch': images,
      'images_per_s': rates,
      'median_images_per_s': statistics.median(rates),
      'min_images_per_s': min(rates),
      'max_images_per_s': max(rates),
      'first_epoch_images_per_s': warmup,
  }


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run as markdown (`python -m benchmarks.render <json>`)."""
  seed, ours = result['seed'], result['ours']
  fill_seconds = statistics.median(
      fit['dataset_fill_seconds'] for fit in ours['fits'])
  met = 'met' if result['target_met'] else 'NOT met'
  return [
      f'### `{result["run_name"]}`: {result["rounds"]} interleaved rounds x '
      f'{result["epochs"]} epochs each',
      '',
      *recording.header_lines(result),
      f'- Fresh models every round (each fit starts from new weights and '
      f'traces again); the first {result["warmup_epochs"]} epoch(s) of each '
      f'fit are excluded; {len(seed["images_per_s"])} measured epochs each. '
      f'Round order alternated (seed first in rounds 1, 3, ...).',
      '- Both fit with verbose=0, without validation or TensorBoard logging '
      '(the seed had neither; the Trainer also validates on 10,000 images '
      'after each epoch and writes TensorBoard logs, not timed here). Ours '
      'includes its tf.data pipeline (cache filled before fit, median '
      f'{fill_seconds:.1f} s, not in the epoch times).',
      '',
      '| Figure | Seed loop (numpy, 70,000 images, float32) | Trainer path '
      f'(TFRecords, 60,000 images, '
      f'{result.get("ours_resolved_precision", "float32")}) |',
      '| --- | --- | --- |',
      f'| Median images/s | {seed["median_images_per_s"]:,.0f} | '
      f'{ours["median_images_per_s"]:,.0f} |',
      f'| Min / max images/s | {seed["min_images_per_s"]:,.0f} / '
      f'{seed["max_images_per_s"]:,.0f} | {ours["min_images_per_s"]:,.0f} / '
      f'{ours["max_images_per_s"]:,.0f} |',
      f'| Median seconds per epoch (of its own data size) | '
      f'{seed["images_per_epoch"] / seed["median_images_per_s"]:.1f} | '
      f'{ours["images_per_epoch"] / ours["median_images_per_s"]:.1f} |',
      f'| First (warm-up) epoch images/s, median | '
      f'{statistics.median(seed["first_epoch_images_per_s"]):,.0f} | '
      f'{statistics.median(ours["first_epoch_images_per_s"]):,.0f} |',
      '',
      f'**Ratio of medians (Trainer path / seed): '
      f'{result["ratio_of_medians"]:.2f}x** (per-round ratios: '
      + ', '.join(f'{r:.2f}' for r in result['per_round_ratios']) +
      f'; target >= {TARGET_RATIO}x: {met}).',
  ]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """The command-line flags."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--examples-dir', default=str(DEFAULT_EXAMPLES_DIR),
                      help='ExampleGen Examples artifact dir with Split-train/')
  parser.add_argument('--mnist-dir', default=str(DEFAULT_MNIST_DIR),
                      help='folder with the gzipped MNIST IDX image files')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--epochs', type=int, default=3,
                      help='epochs per fit, the first being warm-up')
  parser.add_argument('--warmup-epochs', type=int, default=1)
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument('--precision', choices=precision_lib.PRECISIONS,
                      default=vae_lib.Hyperparameters().precision,
                      help="the Trainer path's training precision (default: "
                      "the Trainer's); the seed's loop is float32 as written")
  parser.add_argument('--tag', default='')
  parser.add_argument('--results-dir',
                      default=str(REPO_ROOT / 'benchmarks' / 'results'))
  args = parser.parse_args(argv)
  if args.epochs <= args.warmup_epochs:
    parser.error('--epochs must exceed --warmup-epochs')
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Runs the interleaved rounds; records and returns the result."""
  args = parse_args(argv)
  script_start = time.perf_counter()
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = f'throughput_{now:%Y-%m-%d}' + (f'_{args.tag}' if args.tag else '')
  train_files = os.path.join(args.examples_dir, 'Split-train', '*')
  mnist_digits = load_seed_digits(pathlib.Path(args.mnist_dir))
  logger.info('Seed data: %s %s', mnist_digits.shape, mnist_digits.dtype)

  seed_fits: List[Dict[str, Any]] = []
  our_fits: List[Dict[str, Any]] = []
  per_round: List[float] = []
  for round_index in range(args.rounds):
    order = ('seed', 'ours') if round_index % 2 == 0 else ('ours', 'seed')
    for which in order:
      logger.info('Round %d: %s, %d epochs', round_index + 1, which,
                  args.epochs)
      if which == 'seed':
        fit = run_seed(mnist_digits, args.epochs)
        seed_fits.append(fit)
      else:
        fit = run_ours(train_files, args.epochs, args.seed, args.precision)
        our_fits.append(fit)
      logger.info('  epoch seconds: %s',
                  ', '.join(f'{s:.1f}' for s in fit['epoch_seconds']))
    seed_rate = statistics.median(
        seed_fits[-1]['images'] / s
        for s in seed_fits[-1]['epoch_seconds'][args.warmup_epochs:])
    our_rate = statistics.median(
        our_fits[-1]['images'] / s
        for s in our_fits[-1]['epoch_seconds'][args.warmup_epochs:])
    per_round.append(our_rate / seed_rate)
    logger.info('Round %d ratio (ours / seed): %.2f', round_index + 1,
                per_round[-1])

  seed = summarize(seed_fits[0]['images'], seed_fits, args.warmup_epochs)
  ours = summarize(our_fits[0]['images'], our_fits, args.warmup_epochs)
  ratio = ours['median_images_per_s'] / seed['median_images_per_s']
  result = {
      **recording.result_header('benchmarks.throughput', run_name, now, argv),
      'rounds': args.rounds,
      'epochs': args.epochs,
      'warmup_epochs': args.warmup_epochs,
      'fresh_models_each_round': True,
      'seed': {**seed, 'fits': seed_fits},
      'ours': {**ours, 'fits': our_fits},
      'ours_precision': args.precision,
      'ours_resolved_precision': precision_lib.resolve(args.precision),
      'ratio_of_medians': ratio,
      'per_round_ratios': per_round,
      'target_ratio': TARGET_RATIO,
      'target_met': ratio >= TARGET_RATIO,
      'total_seconds': time.perf_counter() - script_start,
  }
  recording.write_results(result, args.results_dir)
  print(f'seed {seed["median_images_per_s"]:.0f} images/s '
        f'[{seed["min_images_per_s"]:.0f}, {seed["max_images_per_s"]:.0f}], '
        f'ours {ours["median_images_per_s"]:.0f} images/s '
        f'[{ours["min_images_per_s"]:.0f}, {ours["max_images_per_s"]:.0f}], '
        f'ratio {ratio:.2f}x (target >= {TARGET_RATIO}x)')
  return result


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  main()
