"""What the operator's commands (`pipeline.rollback`, `pipeline.anchor`)
share: how they take the serving root, log, and turn the errors they
document into their exit codes (`pipeline.exit_codes`)."""

import logging
import os
from typing import Callable, Sequence, Tuple, Type

from layouts import serving as serving_layout
from pipeline import exit_codes

logger = logging.getLogger(__name__)


def serving_root(path: str) -> str:
  """The serving root as the command uses it: a local path made absolute,
  or an object store URI (tensorflow-io is imported for it, see
  `exit_codes.exit_process`)."""
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s',
                      datefmt='%H:%M:%S')
  if not serving_layout.is_object_store(path):
    return os.path.abspath(path)
  import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import
  return path


def run(action: Callable[[], str],
        errors: Sequence[Tuple[Type[BaseException], int]]) -> int:
  """Prints what `action` returns and exits OK, or logs a documented error
  and returns its code (the first of `errors` it is an instance of)."""
  try:
    print(action())
  except tuple(error for error, _ in errors) as e:  # pylint: disable=catching-non-exception
    logger.error('%s', e)
    return next(code for error, code in errors if isinstance(e, error))
  return exit_codes.OK
