"""One pass over a split's images: their count, mean image and content
hashes, what the data gate's mean-image distance and split sanity checks
need (`gate`). Plain numpy."""

import dataclasses
import hashlib
from typing import Iterable

import numpy as np

from layouts import contracts


@dataclasses.dataclass
class SplitImages:
  """What one pass over a split's images gives (`summarize_images`)."""
  count: int
  # Mean intensity (0..1) per pixel position; NaN for an empty split.
  mean_image: np.ndarray
  # One content hash per image (`image_hashes`).
  hashes: np.ndarray


def image_hashes(images: np.ndarray) -> np.ndarray:
  """One 16-byte BLAKE2b hash of each image's raw bytes, as a numpy array of
  bytes. Equal images of one dtype have equal hashes; compare hashes only of
  images of the same dtype and scale (the gate hashes the 0..1 float32
  images the Trainer reads)."""
  rows = np.ascontiguousarray(images).reshape(len(images), -1)
  return np.array([hashlib.blake2b(row.tobytes(), digest_size=16).digest()
                   for row in rows], dtype='S16')


def summarize_images(batches: Iterable[np.ndarray]) -> SplitImages:
  """Count, mean image and content hashes of a split, in one pass over its
  image batches (any shape [n, ...], values 0..1)."""
  total, count, hashes = None, 0, []
  for batch in batches:
    flat = np.asarray(batch).reshape(len(batch), -1)
    total = flat.sum(0, dtype=np.float64) + (0 if total is None else total)
    count += len(flat)
    hashes.append(image_hashes(flat))
  if total is None:
    total = np.zeros(contracts.IMAGE_PIXELS)
  with np.errstate(invalid='ignore', divide='ignore'):
    mean = total / count
  return SplitImages(count, mean,
                     np.concatenate(hashes) if hashes else
                     np.array([], dtype='S16'))


def duplicate_share(hashes: np.ndarray) -> float:
  """The share of images that repeat an earlier image of the same split."""
  if not len(hashes):
    return 0.0
  return 1 - len(np.unique(hashes)) / len(hashes)


def overlap_share(hashes: np.ndarray, others: np.ndarray) -> float:
  """The share of `hashes` that also occur in `others`."""
  if not len(hashes):
    return 0.0
  return float(np.isin(hashes, others).mean())
