"""The report's pictures, each a function of arrays, as PNG bytes.

The seed's two (the latent manifold and the label clusters), and the
report's others: metrics per digit, reconstructions, samples from the prior,
training curves and the label histogram.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no
display needed). Sizes are fixed so reports look the same run to run:
manifold 1000x1000 px, clusters 1200x1000 px, the others as their FIGSIZE
constants say (at DPI 100).

For latent_dim > 2, the manifold varies z[0] and z[1] with the other
dimensions at 0 (the prior's mean), and the clusters show the first two
principal components of z_mean. For latent_dim = 1, the manifold is one row
over z[0] and the clusters plot z[0] against the label.
"""

import io
from typing import Callable, Collection, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

MANIFOLD_GRID = 30  # digits per side, as in the seed
MANIFOLD_RANGE = 2.0  # z in [-2, 2]^2, as in the seed
DIGIT_SIZE = 28
MANIFOLD_FIGSIZE = (10, 10)
CLUSTERS_FIGSIZE = (12, 10)  # the seed's
PER_LABEL_FIGSIZE = (12, 4)
RECONSTRUCTIONS_FIGSIZE = (10, 4.5)
SAMPLES_FIGSIZE = (6, 6)
CURVES_FIGSIZE = (12, 3.6)
HISTOGRAM_FIGSIZE = (6, 3)
DPI = 100
CANDIDATE_COLOUR = '#1f77b4'
SERVED_COLOUR = '#999999'
WORSE_COLOUR = '#b00020'


def manifold_grid(decode: Callable[[np.ndarray], np.ndarray], latent_dim: int,
                  n: int = MANIFOLD_GRID,
                  scale: float = MANIFOLD_RANGE) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Decodes an n x n grid of z with ONE batched decoder call.

  Returns:
    (image [rows*28, n*28] in [0, 1], grid_x, grid_y): row i, column j shows
    z[0] = grid_x[j], z[1] = grid_y[i] (top row is the largest z[1]).
  """
  grid_x = np.linspace(-scale, scale, n)
  grid_y = np.linspace(-scale, scale, n)[::-1] if latent_dim > 1 else np.zeros(1)
  xs, ys = np.meshgrid(grid_x, grid_y)  # [rows, n]
  z = np.zeros((xs.size, latent_dim), np.float32)
  z[:, 0] = xs.ravel()
  if latent_dim > 1:
    z[:, 1] = ys.ravel()
  image = tile(decode(z), len(grid_y), n)
  return image, grid_x, grid_y


def _png(figure: Figure) -> bytes:
  buffer = io.BytesIO()
  FigureCanvasAgg(figure).print_png(buffer)
  return buffer.getvalue()


def render_manifold(decode: Callable[[np.ndarray], np.ndarray],
                    latent_dim: int) -> bytes:
  """The seed's `plot_latent_space` picture, as PNG bytes."""
  image, grid_x, grid_y = manifold_grid(decode, latent_dim)
  figure = Figure(figsize=MANIFOLD_FIGSIZE, dpi=DPI)
  axes = figure.add_subplot()
  axes.imshow(image, cmap='Greys_r', vmin=0.0, vmax=1.0)
  centres = np.arange(DIGIT_SIZE // 2, len(grid_x) * DIGIT_SIZE, DIGIT_SIZE)
  axes.set_xticks(centres, np.round(grid_x, 1), rotation=90)
  axes.set_xlabel('z[0]')
  if latent_dim > 1:
    axes.set_yticks(centres[:len(grid_y)], np.round(grid_y, 1))
    axes.set_ylabel('z[1]')
  else:
    axes.set_yticks([])
  title = 'Decoded digits over the latent space'
  if latent_dim > 2:
    title += f' (z[2:{latent_dim}] = 0)'
  axes.set_title(title)
  return _png(figure)


def _project(z_mean: np.ndarray) -> Tuple[np.ndarray, str, str]:
  """2-D coordinates of z_mean for the scatter plot, with axis labels."""
  latent_dim = z_mean.shape[1]
  if latent_dim == 2:
    return z_mean, 'z[0]', 'z[1]'
  if latent_dim == 1:
    return z_mean, 'z[0]', 'label'
  centred = z_mean - z_mean.mean(axis=0)
  _, _, components = np.linalg.svd(centred, full_matrices=False)
  return centred @ components[:2].T, 'PC 1 of z_mean', 'PC 2 of z_mean'


def render_clusters(z_mean: np.ndarray, labels: np.ndarray,
                    seed: int = 0) -> bytes:
  """The seed's `plot_label_clusters` picture, as PNG bytes."""
  coords, x_label, y_label = _project(z_mean)
  if z_mean.shape[1] == 1:  # z[0] against the label, jittered to show density
    jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, len(z_mean))
    coords = np.stack([coords[:, 0], labels + jitter], axis=1)
  figure = Figure(figsize=CLUSTERS_FIGSIZE, dpi=DPI)
  axes = figure.add_subplot()
  points = axes.scatter(coords[:, 0], coords[:, 1], c=labels, cmap='tab10',
                        s=4, vmin=-0.5, vmax=9.5)
  colorbar = figure.colorbar(points, ax=axes, ticks=range(10))
  colorbar.set_label('digit label')
  axes.set_xlabel(x_label)
  axes.set_ylabel(y_label)
  axes.set_title(f'z_mean of {len(z_mean)} eval images, coloured by label')
  return _png(figure)


def tile(images: np.ndarray, rows: int, columns: int) -> np.ndarray:
  """images [rows*columns, 28, 28(, 1)], row-major -> one [rows*28,
  columns*28] picture."""
  digits = np.asarray(images).reshape(rows, columns, DIGIT_SIZE, DIGIT_SIZE)
  return digits.transpose(0, 2, 1, 3).reshape(rows * DIGIT_SIZE,
                                               columns * DIGIT_SIZE)


def render_per_label(candidate: Mapping[str, Mapping[str, float]],
                     served: Optional[Mapping[str, Mapping[str, float]]] = None,
                     highlighted: Collection[str] = ()) -> bytes:
  """-ELBO and KL per digit label, the candidate's bars beside the served
  model's; the labels in `highlighted` are drawn in red.

  Args:
    candidate: label -> {'neg_elbo', 'kl', ...} (metrics.per_label).
    served: the same for the served model, or None.
    highlighted: labels to mark (where the candidate is worse).
  """
  labels = sorted(candidate, key=int)
  x = np.arange(len(labels))
  width = 0.4 if served else 0.7
  figure = Figure(figsize=PER_LABEL_FIGSIZE, dpi=DPI)
  for index, (key, title) in enumerate(
      (('neg_elbo', '-ELBO per digit (nats/image)'),
       ('kl', 'KL per digit (nats/image)'))):
    axes = figure.add_subplot(1, 2, index + 1)
    offset = -width / 2 if served else 0.0
    axes.bar(x + offset, [candidate[l][key] for l in labels], width,
             label='candidate', color=CANDIDATE_COLOUR)
    if served:
      axes.bar(x + width / 2, [served[l][key] if l in served else np.nan
                               for l in labels], width,
               label='served', color=SERVED_COLOUR)
    # Room above the bars for the legend.
    tallest = max([candidate[l][key] for l in labels] +
                  [served[l][key] for l in labels if served and l in served])
    if np.isfinite(tallest) and tallest > 0:
      axes.set_ylim(0, 1.25 * tallest)
    axes.set_xticks(x, labels)
    for tick, label in zip(axes.get_xticklabels(), labels):
      if label in highlighted:
        tick.set_color(WORSE_COLOUR)
        tick.set_fontweight('bold')
    axes.set_xlabel('digit label')
    axes.set_title(title)
    if served:
      axes.legend(loc='upper right', fontsize='small')
  figure.tight_layout()
  return _png(figure)


def reconstruction_examples(labels: np.ndarray, per_label: int = 2,
                            seed: int = 0) -> np.ndarray:
  """Indices of `per_label` images of each label (ascending label), drawn
  with `seed`, so every report shows the same images of the same split."""
  rng = np.random.default_rng(seed)
  chosen = []
  for label in np.unique(labels):
    where = np.flatnonzero(labels == label)
    chosen.extend(np.sort(rng.choice(where, min(per_label, len(where)),
                                     replace=False)))
  return np.asarray(chosen, dtype=np.int64)


def reconstruction_grid(originals: np.ndarray,
                        reconstructions: np.ndarray) -> Tuple[np.ndarray, int]:
  """Each image above its reconstruction, as one picture.

  Image i goes to column i // p, pair i % p (rows 2 * (i % p): the original,
  2 * (i % p) + 1: its reconstruction), with p = 2 pairs per column when
  there are more than 10 images, else 1.

  Returns:
    (picture [2 * p * 28, columns * 28], p).
  """
  count = len(originals)
  pairs_per_column = 2 if count > 10 else 1
  columns = -(-count // pairs_per_column)
  cells = np.zeros((2 * pairs_per_column, columns, DIGIT_SIZE, DIGIT_SIZE),
                   np.float32)
  index = np.arange(count)
  column, pair = np.divmod(index, pairs_per_column)
  cells[2 * pair, column] = np.asarray(originals).reshape(
      count, DIGIT_SIZE, DIGIT_SIZE)
  cells[2 * pair + 1, column] = np.asarray(reconstructions).reshape(
      count, DIGIT_SIZE, DIGIT_SIZE)
  return tile(cells.reshape(-1, DIGIT_SIZE, DIGIT_SIZE),
              2 * pairs_per_column, columns), pairs_per_column


def render_reconstructions(originals: np.ndarray,
                           reconstructions: np.ndarray,
                           labels: Sequence) -> bytes:
  """`reconstruction_grid` as a picture, the labels under its columns.

  Args:
    originals: [N, 28, 28(, 1)] in [0, 1].
    reconstructions: the decoded z_mean of each, the same shape.
    labels: [N] their labels.
  """
  count = len(originals)
  image, pairs_per_column = reconstruction_grid(originals, reconstructions)
  columns = image.shape[1] // DIGIT_SIZE
  figure = Figure(figsize=RECONSTRUCTIONS_FIGSIZE, dpi=DPI)
  axes = figure.add_subplot()
  axes.imshow(image, cmap='Greys_r', vmin=0.0, vmax=1.0)
  centres = np.arange(DIGIT_SIZE // 2, columns * DIGIT_SIZE, DIGIT_SIZE)
  column_labels = [' / '.join(dict.fromkeys(str(labels[i]) for i in range(
      c * pairs_per_column, min(count, (c + 1) * pairs_per_column))))
                   for c in range(columns)]
  axes.set_xticks(centres, column_labels)
  axes.set_yticks(
      np.arange(DIGIT_SIZE // 2, 2 * pairs_per_column * DIGIT_SIZE,
                DIGIT_SIZE),
      ['original', 'reconstruction'] * pairs_per_column)
  axes.set_xlabel('label')
  axes.set_title(f'{count} eval images and their reconstructions '
                 '(decoded z_mean)')
  figure.tight_layout()
  return _png(figure)


def prior_samples(latent_dim: int, count: int, seed: int) -> np.ndarray:
  """`count` draws of z ~ N(0, I), float32 [count, latent_dim], seeded."""
  return np.random.default_rng(seed).standard_normal(
      (count, latent_dim)).astype(np.float32)


def render_samples(images: np.ndarray, rows: int, columns: int) -> bytes:
  """Decoded samples from the prior as a rows x columns grid."""
  figure = Figure(figsize=SAMPLES_FIGSIZE, dpi=DPI)
  axes = figure.add_subplot()
  axes.imshow(tile(images, rows, columns), cmap='Greys_r', vmin=0.0,
              vmax=1.0)
  axes.set_axis_off()
  axes.set_title(f'{rows * columns} images decoded from z ~ N(0, I)')
  figure.tight_layout()
  return _png(figure)


def render_training_curves(
    epochs: Sequence[int], metrics: Mapping[str, Sequence[float]],
    curves: Sequence[Tuple[str, str, str]]) -> bytes:
  """One panel per (train key, validation key, title) of `curves`: the
  value per epoch (numbered from 1), train and validation; a key missing
  from `metrics` is left out."""
  figure = Figure(figsize=CURVES_FIGSIZE, dpi=DPI)
  x = np.asarray(epochs) + 1
  for index, (train_key, val_key, title) in enumerate(curves):
    axes = figure.add_subplot(1, len(curves), index + 1)
    for key, name, style in ((train_key, 'train', '-'),
                             (val_key, 'validation', '--')):
      if key in metrics:
        axes.plot(x, metrics[key], style, marker='.', label=name)
    axes.set_title(title)
    axes.set_xlabel('epoch')
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize='small')
  figure.tight_layout()
  return _png(figure)


def render_label_histogram(counts: Mapping[str, int], title: str) -> bytes:
  """Images per label (label -> count) as bars."""
  labels = sorted(counts, key=int)
  figure = Figure(figsize=HISTOGRAM_FIGSIZE, dpi=DPI)
  axes = figure.add_subplot()
  axes.bar(labels, [counts[l] for l in labels], color=CANDIDATE_COLOUR)
  axes.set_xlabel('digit label')
  axes.set_ylabel('images')
  axes.set_title(title)
  figure.tight_layout()
  return _png(figure)
