"""Rollback: republish an earlier served version as the newest one.

TensorFlow Serving serves the highest version number, so rolling back means
publishing a copy of the earlier version under a new, higher number, with the
same atomic push the Pusher uses (copy into `.tmp-push-*`, then rename). The
copy carries everything the version had (its push info, reference statistics
...); its push info also records `rolled_back_from`. Nothing is deleted: the
bad version stays, below the new one, until retention prunes it.

    .venv/bin/python -m pipeline.rollback --serving-dir outputs/serving_model
    .venv/bin/python -m pipeline.rollback --serving-dir outputs/serving_model \\
        --version 1795476171

Without --version, the version before the newest is republished. Exit codes:
0 done, 2 no such version (or nothing to roll back to). Take the local run's
lock into account: do not roll back while a run may push (the rollback would
be overtaken by that run's push, or refused by its compare-and-swap).
"""

import argparse
import datetime
import logging
import os
import sys
from typing import Optional, Sequence

from components.atomic_pusher import executor as pusher
from layouts import serving as serving_layout

logger = logging.getLogger(__name__)


class RollbackError(ValueError):
  """No such version, or nothing to roll back to."""


def rollback(serving_dir: str, version: Optional[int] = None) -> str:
  """Publishes a copy of `version` (default: the one before the newest) as
  the newest version; returns the new version's directory.

  Raises:
    RollbackError: the version does not exist, or there is only one.
  """
  found = serving_layout.versions(serving_dir)
  if version is None:
    if len(found) < 2:
      raise RollbackError(
          f'{serving_dir} holds {len(found)} version(s): nothing to roll '
          'back to')
    version = sorted(found)[-2]
  if version not in found:
    raise RollbackError(
        f'{serving_dir} has no version {version} (it has: '
        f'{", ".join(str(v) for v in sorted(found)) or "none"})')
  source = found[version]
  try:
    info = serving_layout.read_push_info(source)
  except serving_layout.NotPushedByPipelineError:
    info = {'model_uri': source}
  info.update(
      rolled_back_from=str(version),
      pushed_at=datetime.datetime.now(datetime.timezone.utc).isoformat())
  new_dir = pusher.push(source, serving_dir, info)
  logger.info('Rolled back: %s is now served as %s', source, new_dir)
  return new_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      description='Republish an earlier version of the served model as the '
      'newest one (atomically).')
  parser.add_argument('--serving-dir', required=True,
                      help='the push destination, e.g. outputs/serving_model')
  parser.add_argument('--version', type=int, default=None,
                      help='the version to republish; default: the one '
                      'before the newest.')
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s',
                      datefmt='%H:%M:%S')
  try:
    new_dir = rollback(os.path.abspath(args.serving_dir), args.version)
  except RollbackError as e:
    logger.error('%s', e)
    return 2
  print(new_dir)
  return 0


if __name__ == '__main__':
  sys.exit(main())
