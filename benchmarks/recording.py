"""Timing and recording benchmark results: epoch times, machine, versions,
JSON files.

Shared by every script in benchmarks/, so each run is recorded the same way.
A script writes its result as JSON to benchmarks/results/ and prints a short
summary; `python -m benchmarks.render <json>` renders a result as markdown
(with the script's `markdown_lines` when it has one). BENCHMARKS.md quotes
the figures that matter and names the files; it is not written by scripts.
"""

import datetime
import json
import logging
import os
import pathlib
import platform
import shlex
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


def cpu_model() -> str:
  """The CPU's model name, from /proc/cpuinfo."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown'


def _tfx_version() -> str:
  try:
    from tfx import version  # pylint: disable=g-import-not-at-top
  except ImportError:
    return 'not installed'
  return version.__version__


def machine_info() -> Dict[str, Any]:
  """Machine and versions, as recorded by every benchmark."""
  return {
      'machine': {'cpus': os.cpu_count(), 'cpu_model': cpu_model(),
                  'platform': platform.platform()},
      'versions': {'python': platform.python_version(),
                   'tensorflow': tf.__version__, 'keras': keras.__version__,
                   'tfx': _tfx_version()},
  }


def result_header(module: str, run_name: str, now: datetime.datetime,
                  argv: Optional[Sequence[str]]) -> Dict[str, Any]:
  """What every result records first: run, file, date, command, machine.

  `module` (e.g. 'benchmarks.throughput') is recorded too: benchmarks.render
  imports it to render the result with its `markdown_lines`.
  """
  return {
      'run_name': run_name,
      'module': module,
      'results_file': f'{run_name}.json',
      'date_utc': now.strftime('%Y-%m-%d %H:%M UTC'),
      'command': command_line(module, argv),
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


def command_line(module: str, argv: Optional[Sequence[str]]) -> str:
  """The command that ran, as typed from the repository root."""
  args = sys.argv[1:] if argv is None else list(argv)
  return shlex.join(['.venv/bin/python', '-m', module] + args)


def write_results(result: Dict[str, Any], results_dir: str) -> pathlib.Path:
  """Writes `result` as JSON to results_dir/result['results_file']."""
  directory = pathlib.Path(results_dir)
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / result['results_file']
  with open(path, 'w') as f:
    json.dump(result, f, indent=2)
  logger.info('Wrote %s', path)
  return path


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


def configure_logging() -> None:
  """INFO progress lines for a benchmark's `__main__`.

  `force`: importing TensorFlow and TFX has already configured the root
  logger, and a plain basicConfig would leave INFO progress unshown.
  """
  logging.basicConfig(level=logging.INFO, force=True,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
