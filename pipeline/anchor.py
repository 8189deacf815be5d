"""Show or set the data gate's drift anchor (`layouts.anchor`).

The anchor is the fixed reference every drop is also measured against, so
that a drift in small steps, each within the thresholds of the moving
reference (the served model's data), is still stopped. It moves only by an
operator's action: a run with `--accept-drift` whose model is pushed, or
this command, which re-anchors to the training data recorded in a served
version (by default the served one), holding the serving root's lock.

    python -m pipeline.anchor --serving-dir outputs/serving_model
    python -m pipeline.anchor --serving-dir outputs/serving_model --set --reason "new scanner"
    python -m pipeline.anchor --serving-dir outputs/serving_model --set --version 1795476171

Exit codes: see `pipeline.exit_codes` (0, 1, 5, 6, 8, 64).
"""

import logging
import sys
from typing import Optional, Sequence

from layouts import anchor as anchor_layout
from layouts import serving as serving_layout
from layouts import serving_lock
from pipeline import commands
from pipeline import exit_codes

logger = logging.getLogger(__name__)


class AnchorRefusedError(ValueError):
  """No such version, or one without recorded training statistics."""


def describe(serving_dir: str) -> str:
  """The anchor's record and its history, for an operator."""
  record = anchor_layout.read_record(serving_dir)
  if record is None:
    return (f'{serving_dir}: no drift anchor yet; the first push sets it to '
            'the data of the version it publishes.')
  lines = [f'drift anchor of {serving_dir} (newest last):']
  for entry in record['history'] + [record]:
    lines.append(
        f'  {entry["set_at"]}  {entry["set_by"]:26s} version '
        f'{entry.get("version", "-")}  span {entry.get("span", "-")}  '
        f'{entry.get("reason", "")}'.rstrip())
  return '\n'.join(lines)


def set_to_version(serving_dir: str, version: Optional[int], reason: str,
                   wait_seconds: float) -> str:
  """Re-anchors to the training statistics recorded in `version` (default:
  the served one); returns what was done.

  Raises:
    AnchorRefusedError: no such version, or it has no statistics.
    serving_layout.VersionCorruptError: the version does not match its record.
    serving_lock.ServingLockedError: the lock was not free within the wait.
  """
  with serving_lock.serving_lock(serving_dir, 'anchor',
                                 wait_seconds=wait_seconds):
    complete = serving_layout.scan(serving_dir).complete
    if not complete:
      raise AnchorRefusedError(f'{serving_dir}: no complete version to anchor '
                               'to')
    number = max(complete) if version is None else version
    if number not in complete:
      raise AnchorRefusedError(
          f'{serving_dir}: no complete version {number} (there are '
          f'{", ".join(map(str, sorted(complete)))})')
    version_dir = complete[number]
    serving_layout.verify_version(version_dir)
    statistics = serving_layout.read_reference_statistics(version_dir)
    if statistics is None:
      raise AnchorRefusedError(
          f'{version_dir} has no training statistics '
          f'({serving_layout.REFERENCE_STATS_FILE}) to anchor to')
    anchor_layout.set_anchor(serving_dir, statistics, anchor_layout.OPERATOR,
                             version=str(number), reason=reason)
  return (f'{serving_dir}: the drift anchor is now the training data of '
          f'version {number}.\n' + describe(serving_dir))


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = exit_codes.ArgumentParser(
      description='Show the data gate\'s drift anchor, or re-anchor it to '
      'the training data of a served version.',
      epilog='Exit codes: ' + exit_codes.describe(
          exit_codes.OK, exit_codes.FAILURE,
          exit_codes.SERVED_VERSION_CORRUPT, exit_codes.SERVING_ROOT_LOCKED,
          exit_codes.ANCHOR_REFUSED, exit_codes.USAGE) + '.')
  parser.add_argument('--serving-dir', required=True,
                      help='the push destination, e.g. outputs/serving_model '
                      'or s3://bucket/models/mnist_vae')
  parser.add_argument('--set', action='store_true',
                      help='re-anchor (without it: show the anchor and its '
                      'history, change nothing).')
  parser.add_argument('--version', type=int, default=None,
                      help='with --set: the version whose training data '
                      'becomes the anchor; default: the served one.')
  parser.add_argument('--reason', default='',
                      help='with --set: why, recorded with the anchor.')
  parser.add_argument('--wait-seconds', type=float,
                      default=serving_lock.DEFAULT_WAIT_SECONDS,
                      help='how long to wait for a push or rollback to '
                      'finish.')
  args = parser.parse_args(argv)
  if not args.set and (args.version is not None or args.reason):
    parser.error('--version and --reason need --set')
  serving_dir = commands.serving_root(args.serving_dir)

  def show() -> str:
    anchor_layout.read_anchor(serving_dir)  # Checks it is intact.
    return describe(serving_dir)

  action = show
  if args.set:
    action = lambda: set_to_version(serving_dir, args.version, args.reason,
                                    args.wait_seconds)
  return commands.run(action, (
      (AnchorRefusedError, exit_codes.ANCHOR_REFUSED),
      (anchor_layout.AnchorCorruptError, exit_codes.ANCHOR_REFUSED),
      (serving_layout.VersionCorruptError, exit_codes.SERVED_VERSION_CORRUPT),
      (serving_lock.ServingLockedError, exit_codes.SERVING_ROOT_LOCKED)))


if __name__ == '__main__':
  # tensorflow-io is imported only for object stores (see exit_process).
  exit_codes.exit_process(main(), 'tensorflow_io' in sys.modules)
