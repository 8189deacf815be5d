"""The exit codes of the project's commands, one meaning each.

`local_runner.py`, `kubeflow_runner.py`, `python -m pipeline.rollback` and
`python -m pipeline.anchor` exit with these; docs/operations.md's table
("Exit codes") is this list.
Which error ends a local run with which code, and what the operator is then
told: pipeline/local_run.py, OUTCOMES.
"""

import argparse
import logging
import os
import sys
from typing import NoReturn

OK = 0
FAILURE = 1
BAD_INPUT = 2
OUTPUT_DIR_LOCKED = 3
DATA_GATE = 4
SERVED_VERSION_CORRUPT = 5
SERVING_ROOT_LOCKED = 6
ROLLBACK_REFUSED = 7
ANCHOR_REFUSED = 8
USAGE = 64  # EX_USAGE, sysexits.h

MEANINGS = {
    OK: 'done (blessed or not, pushed or not: run_summary.json says which '
        'and why)',
    FAILURE: 'any other failure, with a traceback or a message naming what '
             'failed (e.g. the served model could not be read after retries '
             'of I/O errors)',
    BAD_INPUT: 'bad input data (the IDX reader, or a TFDS data set that is '
               'unknown, not prepared, or does not fit): nothing trained',
    OUTPUT_DIR_LOCKED: 'another run holds the output directory',
    DATA_GATE: 'the data gate stopped the run: nothing trained or pushed',
    SERVED_VERSION_CORRUPT: 'the newest complete served version does not '
                            'match its record (changed or missing files): '
                            'nothing trained or pushed; roll back past it',
    SERVING_ROOT_LOCKED: 'another push or rollback held the serving root '
                         'for longer than the wait',
    ROLLBACK_REFUSED: 'rollback refused: no such version, nothing eligible '
                      'to roll back to, or nothing to take back',
    ANCHOR_REFUSED: 'the drift anchor cannot be used or set: its '
                    'statistics do not match its record, or the version to '
                    'anchor to has none; nothing trained or changed',
    USAGE: 'usage error: an unknown flag or a bad flag value',
}


def describe(*codes: int) -> str:
  """'0 done ..., 2 bad input ...' for a command's --help."""
  return '; '.join(f'{code} {MEANINGS[code]}' for code in codes)


class ArgumentParser(argparse.ArgumentParser):
  """argparse, but a usage error exits with USAGE (64), not 2, which means
  bad input data here."""

  def error(self, message: str) -> NoReturn:
    self.print_usage(sys.stderr)
    self.exit(USAGE, f'{self.prog}: error: {message}\n')


def exit_process(code: int, used_s3: bool) -> NoReturn:
  """Ends the process with `code`.

  Once tensorflow-io's S3 client was used, it aborts the process at exit
  ("pure virtual method called", exit 134: tensorflow/io#2039, fixed after
  the last release), which would turn every exit code into 134, so the
  process ends here, with everything written and flushed, without Python's
  exit.
  """
  if not used_s3:
    sys.exit(code)
  logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access
