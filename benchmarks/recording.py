"""What every benchmark shares: the repository's paths, MNIST, epoch times,
and how a result is recorded (JSON in benchmarks/results/, with the machine,
versions and command of the run). BENCHMARKS.md quotes the figures."""

import argparse
import datetime
import json
import logging
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
import tfx
from scipy import ndimage

from components.example_gen import idx

logger = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = REPO_ROOT / 'data' / 'mnist'
RESULTS_DIR = REPO_ROOT / 'benchmarks' / 'results'


def read_mnist(prefix: str, start: int = 0, stop: Optional[int] = None,
               mnist_dir: pathlib.Path = MNIST_DIR
               ) -> Tuple[np.ndarray, np.ndarray]:
  """Items [start, stop) of MNIST's `prefix` ('train' or 't10k') files:
  uint8 images [n, 28, 28] and labels [n] (read-only arrays)."""
  images = idx.read_images_header(
      str(mnist_dir / f'{prefix}-images-idx3-ubyte.gz'))
  labels = idx.read_labels_header(
      str(mnist_dir / f'{prefix}-labels-idx1-ubyte.gz'))
  stop = images.count if stop is None else stop
  return (idx.read_items(images, start, stop),
          idx.read_items(labels, start, stop))


def rotate(images: np.ndarray, angle: float) -> np.ndarray:
  """`images` [n, 28, 28] rotated by `angle` degrees about their centre,
  nearest neighbour within the 28x28 frame: no new pixel values, so the
  pixel-value histogram is kept but for the few pixels that leave or enter
  the frame's corners (the drops of a creep)."""
  if angle % 360 == 0:
    return images
  return ndimage.rotate(images, angle, axes=(1, 2), reshape=False, order=0)


def _cpu_model() -> str:
  """The CPU's model name, from /proc/cpuinfo."""
  try:
    with open('/proc/cpuinfo') as f:
      return next(line.split(':', 1)[1].strip() for line in f
                  if line.startswith('model name'))
  except (OSError, StopIteration):
    return platform.processor() or 'unknown'


def machine_info() -> Dict[str, Any]:
  """Machine and versions, as recorded by every benchmark."""
  return {
      'machine': {'cpus': os.cpu_count(), 'cpu_model': _cpu_model(),
                  'platform': platform.platform()},
      'versions': {'python': platform.python_version(),
                   'tensorflow': tf.__version__, 'keras': keras.__version__,
                   'tfx': tfx.__version__},
  }


def parser(doc: str) -> argparse.ArgumentParser:
  """A benchmark's parser: the first paragraph of `doc` (its docstring) as
  written, and the flags every benchmark has, --tag and --results-dir."""
  parser_ = argparse.ArgumentParser(
      description=doc.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser_.add_argument('--tag', default='', help='suffix of the result file')
  parser_.add_argument('--results-dir', default=str(RESULTS_DIR),
                       help='where the result file is written')
  return parser_


def result_header(module: str, tag: str, argv: Optional[Sequence[str]],
                  prefix: Optional[str] = None) -> Dict[str, Any]:
  """What every result records first, for a run of `module` starting now:
  its name `<prefix>_<date>[_<tag>]` (prefix: the module's own name), which
  names the result file too; module, date, the command as typed from the
  repository root, machine."""
  now = datetime.datetime.now(datetime.timezone.utc)
  name = (f'{prefix or module.rpartition(".")[2]}_{now:%Y-%m-%d}' +
          (f'_{tag}' if tag else ''))
  args = sys.argv[1:] if argv is None else list(argv)
  return {
      'run_name': name,
      'module': module,
      'results_file': f'{name}.json',
      'date_utc': now.strftime('%Y-%m-%d %H:%M UTC'),
      'command': shlex.join(['.venv/bin/python', '-m', module] + args),
      **machine_info(),
  }


def header_lines(result: Dict[str, Any]) -> List[str]:
  """Date, machine, versions, command and results file of a run."""
  return [
      f'- Date: {result["date_utc"]}; machine: {result["machine"]["cpus"]} '
      f'CPU cores ({result["machine"]["cpu_model"]}), no GPU.',
      f'- Versions: Python {result["versions"]["python"]}, TensorFlow '
      f'{result["versions"]["tensorflow"]}, Keras '
      f'{result["versions"]["keras"]}, TFX {result["versions"]["tfx"]}.',
      f'- Command: `{result["command"]}`',
      f'- Results: `benchmarks/results/{result["results_file"]}`',
  ]


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> List[str]:
  """A markdown table of `rows` (cells as str) under `header`."""
  return ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header),
          *('| ' + ' | '.join(map(str, row)) + ' |' for row in rows)]


def write_results(result: Dict[str, Any], results_dir: str) -> pathlib.Path:
  """Writes `result` as JSON to results_dir/result['results_file']."""
  directory = pathlib.Path(results_dir)
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / result['results_file']
  with open(path, 'w') as f:
    json.dump(result, f, indent=2)
  logger.info('Wrote %s', path)
  return path


def report(result: Dict[str, Any], results_dir: str,
           lines: Sequence[str]) -> Dict[str, Any]:
  """Writes `result` (`write_results`), prints `lines`, returns `result`."""
  write_results(result, results_dir)
  print('\n'.join(lines))
  return result


class EpochTimer(keras.callbacks.Callback):
  """Wall time of each epoch (validation included when fit validates)."""

  def __init__(self):
    super().__init__()
    self.seconds: List[float] = []
    self._start = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.seconds.append(time.perf_counter() - self._start)


def spread(values: Sequence[float]) -> Dict[str, float]:
  """Mean, sd, min and max of `values` (rounded), and how many."""
  return {'mean': round(statistics.mean(values), 3),
          'sd': round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
          'min': round(min(values), 3), 'max': round(max(values), 3),
          'n': len(values)}


def run_child(module: str, child: Dict[str, Any], extra: Sequence[str],
              what: str) -> Dict[str, Any]:
  """Runs `python -m module --child JSON *extra` in a fresh process (so that
  runs are timed alike); the child writes its result as JSON to
  `child['out']`, which is returned. `what` names the run in messages."""
  with tempfile.NamedTemporaryFile(suffix='.json', delete=False) as f:
    out = f.name
  command = [sys.executable, '-m', module, '--child',
             json.dumps({**child, 'out': out}), *extra]
  logger.info('Start %s', what)
  done = subprocess.run(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'),
                        cwd=REPO_ROOT, capture_output=True, text=True,
                        check=False)
  if done.returncode != 0:
    raise RuntimeError(f'{what} failed ({done.returncode}):\n'
                       f'{done.stderr[-3000:]}')
  with open(out) as f:
    result = json.load(f)
  os.unlink(out)
  return result


def configure_logging() -> None:
  """INFO progress lines for a benchmark's `__main__` (`force`: importing
  TensorFlow and TFX has already configured the root logger)."""
  logging.basicConfig(level=logging.INFO, force=True,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
