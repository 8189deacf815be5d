"""The seed's two pictures: the latent manifold and the label clusters.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no
display needed). Sizes are fixed so reports look the same run to run:
manifold 1000x1000 px, clusters 1200x1000 px.

For latent_dim > 2, the manifold varies z[0] and z[1] with the other
dimensions at 0 (the prior's mean), and the clusters show the first two
principal components of z_mean. For latent_dim = 1, the manifold is one row
over z[0] and the clusters plot z[0] against the label.
"""

import io
from typing import Callable, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MANIFOLD_GRID = 30  # digits per side, as in the seed
MANIFOLD_RANGE = 2.0  # z in [-2, 2]^2, as in the seed
DIGIT_SIZE = 28
MANIFOLD_FIGSIZE = (10, 10)
CLUSTERS_FIGSIZE = (12, 10)  # the seed's
DPI = 100


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
  digits = np.asarray(decode(z)).reshape(len(grid_y), n, DIGIT_SIZE, DIGIT_SIZE)
  image = digits.transpose(0, 2, 1, 3).reshape(len(grid_y) * DIGIT_SIZE,
                                               n * DIGIT_SIZE)
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
