"""Reading and validating MNIST-style IDX files (gzipped or raw).

The IDX format (http://yann.lecun.com/exdb/mnist/) is a big-endian header
followed by the raw array:

    bytes 0-1   zero
    byte  2     data type code (0x08 = unsigned byte, the only one MNIST uses)
    byte  3     number of dimensions
    then one big-endian uint32 per dimension, then the data in C order.

An MNIST data set is four such files with fixed names (``train-images-idx3-
ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally ``.gz``). Every function here
names the offending file in its error, so a user can tell which of the four is
broken and why.

Files are opened through ``tf.io.gfile`` so the same code reads local paths and
``gs://`` URIs, and are read in blocks: validating 60,000 images never holds
more than one block in memory.
"""

import contextlib
import dataclasses
import gzip
import logging
import math
import os
import struct
import zlib
from typing import IO, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from layouts import contracts

logger = logging.getLogger(__name__)


_UBYTE = 0x08
_IMAGES_NDIM = 3
_LABELS_NDIM = 1
_GZIP_MAGIC = b'\x1f\x8b'
_BLOCK_BYTES = 1 << 20
_TYPE_NAMES = {0x08: 'unsigned byte', 0x09: 'signed byte', 0x0B: 'int16',
               0x0C: 'int32', 0x0D: 'float32', 0x0E: 'float64'}

# The two files a split is made of, told apart by these name fragments.
IMAGES_MARKER = 'images-idx3-ubyte'
LABELS_MARKER = 'labels-idx1-ubyte'
# Split name -> file name prefix of the canonical MNIST files.
SPLIT_PREFIXES = {'train': 'train', 'eval': 't10k'}
CANONICAL_FILES = tuple(
    f'{prefix}-{marker}' for prefix in SPLIT_PREFIXES.values()
    for marker in (IMAGES_MARKER, LABELS_MARKER))


class IdxFormatError(ValueError):
  """An IDX file or data set is missing, malformed or inconsistent."""


@dataclasses.dataclass(frozen=True)
class IdxHeader:
  """The parsed header of one IDX file."""
  path: str
  dims: Tuple[int, ...]
  data_offset: int

  @property
  def count(self) -> int:
    """Number of items (the first dimension)."""
    return self.dims[0]

  @property
  def item_bytes(self) -> int:
    """Bytes per item (one image or one label)."""
    return math.prod(self.dims[1:])


@dataclasses.dataclass(frozen=True)
class IdxSplitFiles:
  """The images file and the labels file of one split."""
  images: str
  labels: str


@contextlib.contextmanager
def _open(path: str) -> Iterator[IO[bytes]]:
  """Opens `path` for binary reading, transparently gunzipping."""
  if not tf.io.gfile.exists(path):
    raise IdxFormatError(f'{path}: file not found')
  with tf.io.gfile.GFile(path, 'rb') as raw:
    is_gzip = raw.read(2) == _GZIP_MAGIC
    raw.seek(0)
    if not is_gzip:
      yield raw
      return
    with gzip.GzipFile(fileobj=raw, mode='rb') as unzipped:
      yield unzipped


def _read_exactly(stream: IO[bytes], path: str, size: int, what: str) -> bytes:
  """Reads `size` bytes or explains why the file ended or is corrupt."""
  try:
    data = stream.read(size)
  except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is OSError.
    raise IdxFormatError(f'{path}: corrupt gzip data ({e})') from e
  if len(data) != size:
    raise IdxFormatError(
        f'{path}: file is truncated: expected {size} bytes of {what}, '
        f'found {len(data)}')
  return data


def _parse_header(stream: IO[bytes], path: str, ndim: int,
                  kind: str) -> IdxHeader:
  """Parses and checks the header of an IDX ubyte file of `ndim` dims."""
  magic = _read_exactly(stream, path, 4, 'IDX header')
  expected_magic = 0x0800 | ndim
  value = struct.unpack('>I', magic)[0]
  if magic[:2] != b'\0\0':
    raise IdxFormatError(
        f'{path}: wrong magic number 0x{value:08X}: not an IDX file '
        f'(an IDX {kind} file starts with 0x{expected_magic:08X})')
  if magic[2] != _UBYTE:
    type_name = _TYPE_NAMES.get(magic[2], 'unknown')
    raise IdxFormatError(
        f'{path}: wrong magic number 0x{value:08X}: IDX data type '
        f'0x{magic[2]:02X} ({type_name}) is not supported; only unsigned '
        f'byte (0x08) {kind} files (magic 0x{expected_magic:08X}) are')
  if magic[3] != ndim:
    raise IdxFormatError(
        f'{path}: wrong magic number 0x{value:08X}: the file has {magic[3]} '
        f'dimension(s), an IDX {kind} file has {ndim} '
        f'(magic 0x{expected_magic:08X})')
  dims = struct.unpack(f'>{ndim}I',
                       _read_exactly(stream, path, 4 * ndim, 'IDX header'))
  return IdxHeader(path=path, dims=tuple(dims), data_offset=4 + 4 * ndim)


def _scan_data(stream: IO[bytes], header: IdxHeader,
               max_label: Optional[int]) -> None:
  """Reads the whole payload in blocks, checking its length (and labels)."""
  expected = header.count * header.item_bytes
  seen = 0
  while True:
    try:
      block = stream.read(_BLOCK_BYTES)
    except (OSError, EOFError, zlib.error) as e:
      raise IdxFormatError(
          f'{header.path}: corrupt gzip data after {seen} bytes of payload '
          f'({e})') from e
    if not block:
      break
    if max_label is not None and seen < expected:
      labels = np.frombuffer(block[:expected - seen], dtype=np.uint8)
      bad = np.flatnonzero(labels > max_label)
      if bad.size:
        index = seen + int(bad[0])
        raise IdxFormatError(
            f'{header.path}: label {int(labels[bad[0]])} at index {index} is '
            f'outside 0..{max_label}')
    seen += len(block)
  if seen < expected:
    raise IdxFormatError(
        f'{header.path}: file is truncated: the header promises '
        f'{header.count} items ({expected} bytes) but the file holds '
        f'{seen} bytes of data')
  if seen > expected:
    raise IdxFormatError(
        f'{header.path}: {seen - expected} unexpected bytes after the last of '
        f'the {header.count} items the header declares')


def read_images_header(path: str) -> IdxHeader:
  """Parses the header of an images file and checks the image size."""
  with _open(path) as stream:
    header = _parse_header(stream, path, _IMAGES_NDIM, 'images')
  rows, cols = header.dims[1:]
  if (rows, cols) != (contracts.IMAGE_ROWS, contracts.IMAGE_COLS):
    raise IdxFormatError(
        f'{path}: images are {rows}x{cols}; only '
        f'{contracts.IMAGE_ROWS}x{contracts.IMAGE_COLS} images are supported')
  return header


def read_labels_header(path: str) -> IdxHeader:
  """Parses the header of a labels file."""
  with _open(path) as stream:
    return _parse_header(stream, path, _LABELS_NDIM, 'labels')


def validate_split(files: IdxSplitFiles) -> Tuple[IdxHeader, IdxHeader]:
  """Fully validates one split's two files; returns their headers.

  Checks headers (magic number, data type, dimensions, 28x28 images), that the
  data is complete and the gzip stream intact, that every label is in 0..9,
  and that both files hold the same number of items.

  Raises:
    IdxFormatError: naming the file and the problem.
  """
  images = read_images_header(files.images)
  labels = read_labels_header(files.labels)
  if images.count != labels.count:
    raise IdxFormatError(
        f'{files.images} holds {images.count} images but {files.labels} '
        f'holds {labels.count} labels; the counts must match')
  for header, max_label in ((images, None),
                            (labels, contracts.NUM_CLASSES - 1)):
    with _open(header.path) as stream:
      _read_exactly(stream, header.path, header.data_offset, 'IDX header')
      _scan_data(stream, header, max_label)
  return images, labels


def read_items(header: IdxHeader, start: int, stop: int) -> np.ndarray:
  """Reads items [start, stop) of a validated file as a uint8 array.

  Returns shape (stop - start, *dims[1:]). Seeking in a gzip file decompresses
  up to `start`, which is cheap at MNIST's size and keeps readers independent.
  """
  size = (stop - start) * header.item_bytes
  with _open(header.path) as stream:
    stream.seek(header.data_offset + start * header.item_bytes)
    data = _read_exactly(stream, header.path, size, 'data')
  return np.frombuffer(data, dtype=np.uint8).reshape(
      (stop - start,) + header.dims[1:])


def find_split_files(pattern: str) -> IdxSplitFiles:
  """Finds the images and labels file among the files matching `pattern`."""
  matches = sorted(tf.io.gfile.glob(pattern))

  def pick(marker: str) -> str:
    found = [m for m in matches if marker in os.path.basename(m)]
    if not found:
      raise IdxFormatError(
          f'no *-{marker}[.gz] file matches {pattern} '
          f'(matched: {[os.path.basename(m) for m in matches] or "nothing"})')
    if len(found) > 1:
      raise IdxFormatError(
          f'{len(found)} files match {pattern} for one split, expected one '
          f'*-{marker}[.gz]: {found}')
    return found[0]

  return IdxSplitFiles(images=pick(IMAGES_MARKER), labels=pick(LABELS_MARKER))


def missing_canonical_files(directory: str) -> List[str]:
  """Names of the four canonical files absent (raw and .gz) in `directory`."""
  return [
      name for name in CANONICAL_FILES
      if not any(tf.io.gfile.exists(os.path.join(directory, name + suffix))
                 for suffix in ('', '.gz'))
  ]


def write_idx(path: str, array: np.ndarray, compress: Optional[bool] = None,
              dims: Optional[Sequence[int]] = None) -> None:
  """Writes a uint8 array as an IDX ubyte file (gzipped if path ends .gz).

  `dims` overrides the header's dimensions (for building bad fixtures).
  Used by the tests and by anyone preparing a new data drop.
  """
  array = np.ascontiguousarray(array, dtype=np.uint8)
  dims = tuple(array.shape) if dims is None else tuple(dims)
  payload = (bytes([0, 0, _UBYTE, len(dims)]) +
             struct.pack(f'>{len(dims)}I', *dims) + array.tobytes())
  if compress is None:
    compress = path.endswith('.gz')
  if compress:
    payload = gzip.compress(payload, mtime=0)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(payload)


def write_split(directory: str, prefix: str, images: np.ndarray,
                labels: np.ndarray, compress: bool = True) -> None:
  """Writes one split of a drop as IdxExampleGen reads it:
  `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]`
  in `directory` (made if missing); `prefix` is one of SPLIT_PREFIXES'."""
  tf.io.gfile.makedirs(directory)
  suffix = '.gz' if compress else ''
  for marker, array in ((IMAGES_MARKER, images), (LABELS_MARKER, labels)):
    write_idx(os.path.join(directory, f'{prefix}-{marker}{suffix}'), array)
