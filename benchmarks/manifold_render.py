"""Benchmark: the seed's 900 `predict` calls against our batched manifold.

The seed's `plot_latent_space(vae, n=30)` decoded its 30x30 grid of z with
one `vae.decoder.predict(z_sample)` per grid point (900 calls);
`components.vae_evaluator.plots.manifold_grid` decodes the whole grid in ONE
batched call. Both fill the same [840, 840] image from the same trained
decoder (the full run's warm-start weights) over the same grid; the
matplotlib drawing that follows is the same in both and is not timed (the
full `render_manifold`, PNG included, is timed for information).

Ours is timed with the two decoders the project uses: the Keras decoder
called directly, and the exported serving SavedModel's signature (what the
VaeEvaluator component calls).

Run from the repository root:

  .venv/bin/python -m benchmarks.manifold_render

Target: the batched manifold is at least 100x faster than the seed's loop
(BENCHMARKS.md, "Speed and cost targets").

Results go to benchmarks/results/manifold_render_<date>.json;
`python -m benchmarks.render` renders one as markdown (`markdown_lines`).
"""

import argparse
import datetime
import logging
import os
import pathlib
import statistics
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks import recording
from benchmarks import throughput
from components.vae_evaluator import metrics
from components.vae_evaluator import plots
from models import export
from models import vae as vae_lib

logger = logging.getLogger(__name__)

REPO_ROOT = throughput.REPO_ROOT
DEFAULT_MODEL_DIR = (REPO_ROOT / 'outputs' / 'pipeline' / 'Trainer' / 'model' /
                     '5')
TARGET_SPEEDUP = 100.0


def seed_manifold(decoder: keras.Model, n: int = plots.MANIFOLD_GRID,
                  scale: float = plots.MANIFOLD_RANGE) -> np.ndarray:
  """The seed's `plot_latent_space` loop, up to (not including) plotting."""
  digit_size = 28
  figure = np.zeros((digit_size * n, digit_size * n))
  grid_x = np.linspace(-scale, scale, n)
  grid_y = np.linspace(-scale, scale, n)[::-1]
  for i, yi in enumerate(grid_y):
    for j, xi in enumerate(grid_x):
      z_sample = np.array([[xi, yi]])
      x_decoded = decoder.predict(z_sample, verbose=0)
      digit = x_decoded[0].reshape(digit_size, digit_size)
      figure[
          i * digit_size: (i + 1) * digit_size,
          j * digit_size: (j + 1) * digit_size,
      ] = digit
  return figure


def time_repeats(fn: Callable[[], Any], repeats: int) -> List[float]:
  """Wall seconds of `repeats` calls of `fn` (after one untimed warm-up)."""
  fn()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    seconds.append(time.perf_counter() - start)
  return seconds


def _stats(seconds: Sequence[float]) -> Dict[str, Any]:
  return {'seconds': list(seconds), 'median_s': statistics.median(seconds),
          'min_s': min(seconds), 'max_s': max(seconds)}


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run as markdown (`python -m benchmarks.render <json>`)."""
  seed = result['seed_loop']
  rows = [
      ('Seed loop: 900 x `decoder.predict` (Keras decoder)', seed, None),
      ('Ours: `plots.manifold_grid`, Keras decoder', result['ours_keras'],
       result['speedup_keras']),
      ('Ours: `plots.manifold_grid`, serving SavedModel (the VaeEvaluator\'s)',
       result['ours_saved_model'], result['speedup_saved_model']),
      ('Ours: `plots.render_manifold` incl. matplotlib + PNG (SavedModel)',
       result['ours_render_png'], None),
  ]
  met = 'met' if result['target_met'] else 'NOT met'
  lines = [
      f'### `{result["run_name"]}`', '', *recording.header_lines(result),
      f'- Decoder: `{result["model_dir"]}` (warm-start weights and '
      f'Format-Serving SavedModel of the same training); grid 30 x 30 over '
      f'[-{plots.MANIFOLD_RANGE}, {plots.MANIFOLD_RANGE}]^2; one untimed '
      'warm-up call each; both produce the same image (max abs difference '
      f'{result["max_abs_difference"]:.1e}).',
      '',
      '| Variant | Repeats | Median (s) | Min / max (s) | Speed-up vs seed '
      '(ratio of medians) |',
      '| --- | --- | --- | --- | --- |',
  ]
  for name, stats, speedup in rows:
    lines.append(
        f'| {name} | {len(stats["seconds"])} | {stats["median_s"]:.4f} | '
        f'{stats["min_s"]:.4f} / {stats["max_s"]:.4f} | '
        + (f'**{speedup:,.0f}x**' if speedup else '-') + ' |')
  lines += ['', f'Target >= {TARGET_SPEEDUP:.0f}x (the VaeEvaluator\'s '
            f'SavedModel path, {result["speedup_saved_model"]:,.0f}x): {met}.']
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """The command-line flags."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model-dir', default=str(DEFAULT_MODEL_DIR),
                      help='a Trainer model dir (warm_start/, '
                      'Format-Serving/, encoder/)')
  parser.add_argument('--seed-repeats', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=30)
  parser.add_argument('--tag', default='')
  parser.add_argument('--results-dir',
                      default=str(REPO_ROOT / 'benchmarks' / 'results'))
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Times both renders; records and returns the result."""
  args = parse_args(argv)
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = f'manifold_render_{now:%Y-%m-%d}' + (f'_{args.tag}'
                                                  if args.tag else '')
  vae = vae_lib.build_uncompiled_vae(2)
  export.load_warm_start(vae, args.model_dir)
  decoder = vae.decoder
  exported = metrics.load_trainer_model(args.model_dir)

  def keras_decode(z: np.ndarray) -> np.ndarray:
    """The Keras decoder, called directly."""
    return decoder(z, training=False).numpy()

  def saved_model_decode(z: np.ndarray) -> np.ndarray:
    """The serving signature, as the VaeEvaluator executor calls it."""
    return exported.decode(tf.constant(z)).numpy()

  seed_image = seed_manifold(decoder)
  ours_image, _, _ = plots.manifold_grid(saved_model_decode, 2)
  difference = float(np.max(np.abs(seed_image - ours_image)))
  logger.info('Max abs difference seed vs ours: %.2e', difference)

  logger.info('Timing the seed loop (%d repeats)', args.seed_repeats)
  seed = _stats(time_repeats(lambda: seed_manifold(decoder), args.seed_repeats))
  logger.info('Seed loop: %s', seed)
  ours_keras = _stats(time_repeats(
      lambda: plots.manifold_grid(keras_decode, 2), args.repeats))
  ours_saved = _stats(time_repeats(
      lambda: plots.manifold_grid(saved_model_decode, 2), args.repeats))
  png = os.path.join(tempfile.mkdtemp(prefix='manifold_render_'),
                     'manifold.png')
  ours_png = _stats(time_repeats(
      lambda: pathlib.Path(png).write_bytes(
          plots.render_manifold(saved_model_decode, 2)),
      max(3, args.repeats // 5)))
  speedup_keras = seed['median_s'] / ours_keras['median_s']
  speedup_saved = seed['median_s'] / ours_saved['median_s']
  result = {
      **recording.result_header('benchmarks.manifold_render', run_name, now, argv),
      'model_dir': os.path.relpath(args.model_dir, REPO_ROOT),
      'max_abs_difference': difference,
      'seed_loop': seed,
      'ours_keras': ours_keras,
      'ours_saved_model': ours_saved,
      'ours_render_png': ours_png,
      'speedup_keras': speedup_keras,
      'speedup_saved_model': speedup_saved,
      'target_speedup': TARGET_SPEEDUP,
      'target_met': speedup_saved >= TARGET_SPEEDUP,
  }
  recording.write_results(result, args.results_dir)
  print(f'seed loop {seed["median_s"]:.2f} s, ours '
        f'{ours_keras["median_s"]:.4f} '
        f's (Keras) / {ours_saved["median_s"]:.4f} s (SavedModel): '
        f'{speedup_keras:,.0f}x / {speedup_saved:,.0f}x (target >= '
        f'{TARGET_SPEEDUP:.0f}x)')
  return result


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  main()
