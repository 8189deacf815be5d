"""One pipeline run at a time per output directory.

ML Metadata's SQLite store fails concurrent writers after about 2 s of
retries, and two runs would also race on the serving directory. A second run
on the same output directory is therefore refused at once.
"""

import contextlib
import errno
import fcntl
import os
from typing import Iterator

LOCK_FILE = '.run.lock'


class RunLockedError(RuntimeError):
  """Another run holds the output directory."""


@contextlib.contextmanager
def run_lock(output_dir: str) -> Iterator[str]:
  """Holds an exclusive lock on output_dir for the duration of the block.

  The lock is an advisory `flock` on `<output_dir>/.run.lock`, released by the
  kernel when the process ends, even by `kill -9`, so a crashed run never
  leaves a stale lock behind.

  Raises:
    RunLockedError: another process holds the lock (names its pid).
  """
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
        raise
      holder = os.pread(fd, 64, 0).decode(errors='replace').strip() or '?'
      raise RunLockedError(
          f'{output_dir} is in use by another run (pid {holder}); wait for '
          'it to finish or use another --output-dir') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    yield path
  finally:
    os.close(fd)  # releases the lock
