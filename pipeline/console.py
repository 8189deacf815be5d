"""What a runner shows on the terminal: our progress, not framework noise.

TensorFlow's C++ runtime, absl (used by TFX), Beam's worker processes and the
Google Cloud client libraries all log or warn at import and run time, which
buries the few lines a user wants. By default `configure_logging` shows:

* INFO and above from this project's packages;
* one line when each pipeline component starts and finishes (taken from the
  LocalDagRunner's own log records);
* errors from everything else.

`verbose=True` shows every framework's INFO logs instead.
"""

import argparse
import logging
import os
import time
import warnings
from typing import Dict, Sequence

# Loggers of this project's code.
PROJECT_LOGGERS = ('components', 'pipeline', 'models', 'local_runner',
                   'kubeflow_runner', '__main__')
# LocalDagRunner's records around each component (tfx 1.16 local_dag_runner),
# and the launcher's record of a cache hit in between.
_COMPONENT_RUNNING = 'Component %s is running.'
_COMPONENT_FINISHED = 'Component %s is finished.'
_CACHE_HIT = 'A cached execution %d is used.'
# Start of FutureWarnings the Google Cloud clients print at import: Python
# 3.10 is past their support window and google-cloud-storage is older than
# they would like; the TFX 1.16 pin set allows neither to change.
_IMPORT_WARNINGS = ('You are using a non-supported Python version',
                    'Support for google-cloud-storage < 3.0.0')
_LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'


class ComponentProgress(logging.Filter):
  """Turns LocalDagRunner's component records into progress lines.

  Attached to the `absl` logger: keeps the start/finish records (rewritten to
  say which component, whether it ran or was served from cache, and how long
  it took) and records at `min_level` or above; drops the rest.
  """

  def __init__(self, min_level: int = logging.ERROR):
    super().__init__()
    self._min_level = min_level
    self._started: Dict[str, float] = {}
    self._cached = False

  @staticmethod
  def _rewrite(record: logging.LogRecord, msg: str, args: tuple) -> bool:
    record.name, record.msg, record.args = 'pipeline', msg, args
    record.levelno, record.levelname = logging.INFO, 'INFO'
    return True

  def filter(self, record: logging.LogRecord) -> bool:
    if record.msg == _COMPONENT_RUNNING and record.args:
      name = record.args[0]
      self._started[name] = time.monotonic()
      self._cached = False
      return self._rewrite(record, '%s started', (name,))
    if record.msg == _CACHE_HIT:
      self._cached = True
      return record.levelno >= self._min_level
    if record.msg == _COMPONENT_FINISHED and record.args:
      name = record.args[0]
      seconds = time.monotonic() - self._started.pop(name, time.monotonic())
      outcome = 'cached' if self._cached else 'finished'
      return self._rewrite(record, f'%s {outcome} in %.1f s', (name, seconds))
    return record.levelno >= self._min_level


def verbose_requested(argv: Sequence[str]) -> bool:
  """Whether argv asks for --verbose, read before TensorFlow is imported."""
  pre = argparse.ArgumentParser(add_help=False)
  pre.add_argument('--verbose', action='store_true')
  return pre.parse_known_args(argv)[0].verbose


def configure_logging(verbose: bool = False) -> None:
  """Configures logging and warnings; call before TensorFlow is imported."""
  # Child processes (Beam workers) inherit these through the environment.
  os.environ['PYTHONWARNINGS'] = ','.join(
      f'ignore:{message}:FutureWarning' for message in _IMPORT_WARNINGS)
  for message in _IMPORT_WARNINGS:
    warnings.filterwarnings('ignore', message=message, category=FutureWarning)
  if not verbose:
    # 3 also hides the harmless CUDA-plugin registration errors TF 2.16 prints
    # at import on machines without a GPU; Python exceptions still surface.
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                      format=_LOG_FORMAT, datefmt='%H:%M:%S', force=True)
  for name in PROJECT_LOGGERS:
    logging.getLogger(name).setLevel(logging.INFO)

  # absl (TFX) logs through the standard `absl` logger once its verbosity is
  # set; the filter keeps component progress even when quiet.
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.INFO)
  absl_logger = logging.getLogger('absl')
  absl_logger.setLevel(logging.INFO)
  if not any(isinstance(f, ComponentProgress) for f in absl_logger.filters):
    absl_logger.addFilter(
        ComponentProgress(logging.INFO if verbose else logging.ERROR))
