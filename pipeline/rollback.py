"""Rollback: serve an earlier version again, and never the one rolled from.

TensorFlow Serving serves the highest version number, so rolling back means
publishing a copy of an earlier version under a new, higher number. Holding
the serving root's lock (as every push does), the command

1. rejects the served model, by its identity (`layouts.serving`: the SHA-256
   of its decoder's variables), in `<serving_dir>/rejections.json`: no run
   pushes that model again, whatever path it comes from;
2. picks the target: `--version V`, or by default the newest complete version
   older than the served one whose model is neither rejected nor the served
   model itself, and whose files match its record;
3. publishes a byte-identical copy of the target (every file but its version
   record, which records `restored_version` and `rolled_back_from`).

Nothing is deleted: the version rolled back from stays, below the new one,
until retention prunes it.

    python -m pipeline.rollback --serving-dir outputs/serving_model
    python -m pipeline.rollback --serving-dir outputs/serving_model --version 1795476171
    python -m pipeline.rollback --serving-dir outputs/serving_model --list
    python -m pipeline.rollback --serving-dir outputs/serving_model --unreject 3f9a0c2e1b7d

Exit codes: see `pipeline.exit_codes` (0, 1, 5, 6, 7, 64).
"""

import datetime
import logging
import sys
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from components.atomic_pusher import executor as pusher
from layouts import rejections
from layouts import serving as serving_layout
from layouts import serving_lock
from pipeline import commands
from pipeline import exit_codes

logger = logging.getLogger(__name__)

# An identity given on the command line is a prefix of at least this many
# hex digits.
MIN_IDENTITY_PREFIX = 8


class RollbackError(ValueError):
  """No such version, nothing eligible to roll back to, or nothing to take
  back: the message says what was found."""


def _identity(version_dir: str) -> Optional[str]:
  """A version's model identity, or None when its files cannot give one."""
  try:
    return serving_layout.identity_of(version_dir)
  except (tf.errors.OpError, ValueError, OSError) as e:
    logger.warning('Cannot identify the model of %s: %s', version_dir, e)
    return None


def choose_target(serving_dir: str, found: Dict[int, str], served: int,
                  served_id: Optional[str], rejected: Dict[str, dict]) -> int:
  """The default target: the newest version older than `served` whose model
  is neither rejected nor the served one, and whose files are intact.

  Raises:
    RollbackError: there is none; the message lists what was passed over.
  """
  passed_over: List[str] = []
  for version in sorted((v for v in found if v < served), reverse=True):
    identity = _identity(found[version])
    if identity is None:
      passed_over.append(f'{version} (its model cannot be identified)')
    elif identity == served_id:
      passed_over.append(f'{version} (the served model, {identity[:12]})')
    elif identity in rejected:
      passed_over.append(f'{version} (model {identity[:12]} is rejected)')
    else:
      try:
        serving_layout.verify_version(found[version])
      except serving_layout.VersionCorruptError as e:
        passed_over.append(f'{version} (corrupt: {e})')
        continue
      return version
  raise RollbackError(
      f'nothing to roll back to in {serving_dir}: served '
      f'is {served}; older versions: {"; ".join(passed_over) or "none"}')


def rollback(serving_dir: str, version: Optional[int] = None,
             reason: str = '',
             wait_seconds: float = serving_lock.DEFAULT_WAIT_SECONDS) -> str:
  """Rejects the served model and publishes a copy of `version` (default:
  see `choose_target`) as the newest version; returns its directory.

  Raises:
    RollbackError: no such version, or none eligible.
    serving_layout.VersionCorruptError: `version` does not match its record.
    serving_lock.ServingLockedError: another writer held the serving root.
  """
  with serving_lock.serving_lock(serving_dir, 'rollback',
                                 wait_seconds=wait_seconds) as lease:
    found = serving_layout.versions(serving_dir)
    if not found:
      raise RollbackError(f'{serving_dir} holds no complete version: nothing '
                          'to roll back')
    served = max(found)
    served_id = _identity(found[served])
    rejected = rejections.rejected_models(serving_dir)
    if version is None:
      version = choose_target(serving_dir, found, served, served_id,
                              rejected)
    elif version not in found:
      raise RollbackError(
          f'{serving_dir} has no complete version {version} (it has: '
          f'{", ".join(str(v) for v in sorted(found))})')
    elif version == served or (
        (asked_id := _identity(found[version])) == served_id):
      raise RollbackError(f'version {version} holds the served model '
                          f'(version {served}): nothing would change')
    elif asked_id in rejected:
      raise RollbackError(
          f'version {version} holds a rejected model: take the rejection '
          f'back first (--unreject {version})')
    source = found[version]
    serving_layout.verify_version(source)
    target_id = serving_layout.identity_of(source)
    if served_id is not None and served_id not in rejected:
      rejections.record_rejection(
          serving_dir, rejections.REJECT, served_id, version=str(served),
          by='rollback', reason=reason or f'rolled back to {version}')
      logger.info('Rejected model %s (version %d): no run will push it again',
                  served_id[:12], served)
    try:
      info = dict(serving_layout.read_push_info(source))
    except serving_layout.NotPushedByPipelineError:
      info = {serving_layout.MODEL_URI_KEY: source}
    info.update({
        serving_layout.RESTORED_VERSION_KEY: str(version),
        serving_layout.ROLLED_BACK_FROM_KEY: str(served),
        'pushed_at': datetime.datetime.now(datetime.timezone.utc).isoformat(),
    })
    new_dir = pusher.publish(
        lease, serving_dir,
        lambda dst: pusher.copy_tree(source, dst,
                                     {serving_layout.VERSION_RECORD_FILE}),
        info, target_id)
  logger.info('Rolled back from version %d: version %d (model %s) is now '
              'served as %s', served, version, target_id[:12], new_dir)
  return new_dir


def unreject(serving_dir: str, which: str, reason: str = '',
             wait_seconds: float = serving_lock.DEFAULT_WAIT_SECONDS) -> str:
  """Takes a rejection back; `which` is a version number or an identity
  prefix. Returns the identity.

  Raises:
    RollbackError: nothing rejected matches `which`.
  """
  with serving_lock.serving_lock(serving_dir, 'unreject',
                                 wait_seconds=wait_seconds):
    rejected = rejections.rejected_models(serving_dir)
    found = serving_layout.versions(serving_dir)
    if which.isdigit() and int(which) in found:
      matches = [i for i in [_identity(found[int(which)])] if i in rejected]
    elif len(which) >= MIN_IDENTITY_PREFIX:
      matches = [i for i in rejected if i.startswith(which.lower())]
    else:
      matches = []
    if len(matches) != 1:
      raise RollbackError(
          f'{which!r} matches {len(matches)} rejected models in {serving_dir} '
          f'(give a version number or at least {MIN_IDENTITY_PREFIX} hex '
          f'digits of one of: {", ".join(i[:12] for i in rejected) or "none"})')
    rejections.record_rejection(serving_dir, rejections.UNREJECT,
                                    matches[0], by='operator', reason=reason)
  logger.info('Model %s may be pushed again', matches[0][:12])
  return matches[0]


def listing(serving_dir: str) -> str:
  """The versions (complete or not) and the rejections journal, as text."""
  found = serving_layout.scan(serving_dir)
  rejected = rejections.rejected_models(serving_dir)
  newest = max(found.complete, default=None)
  lines = [f'{serving_dir}:']
  for version in sorted({**found.complete, **found.incomplete}, reverse=True):
    if version in found.incomplete:
      lines.append(f'  {version}  incomplete (ignored)')
      continue
    identity = _identity(found.complete[version]) or '?'
    try:
      info = serving_layout.read_push_info(found.complete[version])
    except serving_layout.NotPushedByPipelineError:
      info = {}
    notes = ['SERVED'] if version == newest else []
    if identity in rejected:
      notes.append('rejected')
    if serving_layout.RESTORED_VERSION_KEY in info:
      notes.append(f'copy of {info[serving_layout.RESTORED_VERSION_KEY]}')
    lines.append(f'  {version}  model {identity[:12]}  {" ".join(notes)}')
  lines.append('rejections (oldest first):')
  for entry in rejections.read_rejections(serving_dir):
    lines.append(f'  {entry["at"]}  {entry["action"]:8s} '
                 f'{entry[serving_layout.RECORD_MODEL_KEY][:12]}  version '
                 f'{entry.get("version", "-")}  {entry.get("reason", "")}')
  return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = exit_codes.ArgumentParser(
      description='Serve an earlier version of the model again (atomically, '
      'holding the serving root\'s lock), and reject the model rolled back '
      'from so that no run pushes it again.',
      epilog='Exit codes: ' + exit_codes.describe(
          exit_codes.OK, exit_codes.FAILURE,
          exit_codes.SERVED_VERSION_CORRUPT, exit_codes.SERVING_ROOT_LOCKED,
          exit_codes.ROLLBACK_REFUSED, exit_codes.USAGE) + '.')
  parser.add_argument('--serving-dir', required=True,
                      help='the push destination, e.g. outputs/serving_model '
                      'or s3://bucket/models/mnist_vae')
  action = parser.add_mutually_exclusive_group()
  action.add_argument('--version', type=int, default=None,
                      help='the version to serve again; default: the newest '
                      'older version whose model is neither rejected nor the '
                      'served one.')
  action.add_argument('--unreject', metavar='VERSION_OR_MODEL',
                      help='take a rejection back (a version number, or at '
                      f'least {MIN_IDENTITY_PREFIX} hex digits of the model '
                      'identity --list shows); publishes nothing.')
  action.add_argument('--list', action='store_true',
                      help='list the versions and the rejections, change '
                      'nothing.')
  parser.add_argument('--reason', default='',
                      help='why, recorded with the rejection (or unreject).')
  parser.add_argument('--wait-seconds', type=float,
                      default=serving_lock.DEFAULT_WAIT_SECONDS,
                      help='how long to wait for another push or rollback to '
                      'finish.')
  args = parser.parse_args(argv)
  serving_dir = commands.serving_root(args.serving_dir)
  if args.list:
    action = lambda: listing(serving_dir)
  elif args.unreject:
    action = lambda: unreject(serving_dir, args.unreject, args.reason,
                              args.wait_seconds)
  else:
    action = lambda: rollback(serving_dir, args.version, args.reason,
                              args.wait_seconds)
  return commands.run(action, (
      (RollbackError, exit_codes.ROLLBACK_REFUSED),
      (serving_layout.VersionCorruptError, exit_codes.SERVED_VERSION_CORRUPT),
      (serving_lock.ServingLockedError, exit_codes.SERVING_ROOT_LOCKED)))


if __name__ == '__main__':
  # tensorflow-io is imported only for object stores (see exit_process).
  exit_codes.exit_process(main(), 'tensorflow_io' in sys.modules)

