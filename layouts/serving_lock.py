"""One writer at a time on a serving root (TensorFlow Serving's base path).

Two pushes or rollbacks at once could take the same version number or prune
what the other just published, so each holds this lock, kept in the serving
root itself so that it holds across output dirs and machines. Local paths: an
flock on `<root>/.serving.lock`, released by the kernel when the holder exits,
even on kill -9. s3://, gs://: a lease object there, written under
preconditions (S3 ETag, GCS generation) so that one contender alone creates it
or takes it over once expired, and renewed by its holder every lease / 3.
Expiry is judged on the contender's clock: clocks must agree well within the
lease (NTP does). TF Serving ignores the name: versions are all digits.
"""

import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterator, Optional

from botocore import exceptions as botocore_exceptions

logger = logging.getLogger(__name__)

LOCK_NAME = '.serving.lock'
DEFAULT_WAIT_SECONDS = 300.0
DEFAULT_LEASE_SECONDS = 120.0
_LOCAL_POLL_SECONDS = 0.1
_OBJECT_POLL_SECONDS = 0.5
_SAFETY_MARGIN = 0.25  # check() fails with less than this share of a lease


class ServingLockedError(RuntimeError):
  """Another writer held the serving root for the whole wait."""


class LeaseLostError(RuntimeError):
  """The holder's lease expired or was taken over: it must stop writing."""


class Lease:
  """A held lock. A local one cannot be lost, so check() does nothing."""

  def __init__(self, path: str, release: Callable[[], None]):
    self.path = path
    self._release = release

  def check(self) -> None:
    """Raises LeaseLostError if this holder may no longer hold the lock."""


def _describe(holder: Dict[str, Any]) -> str:
  """`pid 12 on host h (operation 'push', since ..., lease expires ...)`."""
  if not holder.get('pid'):
    return 'an unknown holder (its details not written yet, or unreadable)'
  details = [f"operation {holder.get('operation')!r}"] + [
      f'{label} ' + datetime.datetime.fromtimestamp(
          holder[key], datetime.timezone.utc).isoformat(timespec='seconds')
      for label, key in (('since', 'since'), ('since', 'acquired_at'),
                         ('lease expires', 'expires_at'))
      if isinstance(holder.get(key), (int, float))]
  return (f"pid {holder['pid']} on host {holder.get('host')} "
          f"({', '.join(details)})")


def _decode(body) -> Dict[str, Any]:
  try:
    holder = json.loads(body)
  except ValueError:
    return {}
  return holder if isinstance(holder, dict) else {}


def _wait(serving_dir, path, wait_seconds, poll, try_acquire, remedy) -> Lease:
  """Calls try_acquire() -> (lease or None, holder) until a lease or
  wait_seconds; logs once that it waits, and for whom."""
  deadline = time.monotonic() + wait_seconds
  waiting = False
  while True:
    lease, holder = try_acquire()
    if lease:
      return lease
    if not waiting:
      waiting = True
      logger.info('Waiting up to %.0f s for %s, held by %s', wait_seconds,
                  path, _describe(holder))
    if time.monotonic() >= deadline:
      raise ServingLockedError(
          f'Serving root {serving_dir} is locked by {_describe(holder)}; '
          f'waited {wait_seconds:.0f} s. Another push or rollback is writing '
          f'to it: let it finish and run again. {remedy} (lock: {path})')
    time.sleep(poll)


def _acquire_local(serving_dir: str, operation: str,
                   wait_seconds: float) -> Lease:
  """Polls a non-blocking flock on the lock file, then writes who holds it
  into the file for the waiters' messages."""
  directory = serving_dir.removeprefix('file://')
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, LOCK_NAME)
  file = open(path, 'a+', encoding='utf-8')  # pylint: disable=consider-using-with

  def try_acquire():
    try:
      fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      file.seek(0)
      return None, _decode(file.read())
    file.truncate(0)
    file.write(json.dumps({'host': socket.gethostname(), 'pid': os.getpid(),
                           'operation': operation, 'since': time.time()}))
    file.flush()
    return Lease(path, file.close), {}  # closing it releases the flock

  try:
    return _wait(serving_dir, path, wait_seconds, _LOCAL_POLL_SECONDS,
                 try_acquire, 'The lock is released when that process exits: '
                 'if it is stuck, stop it.')
  except BaseException:
    file.close()
    raise


# Object stores: an adapter per store over the lease object, whose versions
# are named by tags (S3 ETag, GCS generation). write(body, tag) writes if the
# object has that tag (None: if there is none), returning the new tag or None;
# read() -> (body, tag) or None; delete(tag) -> bool. Other errors raise.


def s3_client():
  """A boto3 S3 client set up from the environment the project's tasks get:
  endpoint AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or tensorflow-io's
  S3_ENDPOINT (and S3_USE_HTTPS), region AWS_REGION or AWS_DEFAULT_REGION
  (default us-east-1), credentials by boto3's default chain."""
  import boto3  # pylint: disable=g-import-not-at-top  # s3:// only
  env = os.environ
  endpoint = (env.get('AWS_ENDPOINT_URL_S3') or env.get('AWS_ENDPOINT_URL') or
              env.get('S3_ENDPOINT'))
  if endpoint and '://' not in endpoint:
    https = env.get('S3_USE_HTTPS', '1').lower() not in ('0', 'false')
    endpoint = ('https://' if https else 'http://') + endpoint
  region = env.get('AWS_REGION') or env.get('AWS_DEFAULT_REGION') or 'us-east-1'
  return boto3.client('s3', endpoint_url=endpoint or None, region_name=region)


class _S3Store:
  """The lease object on S3 (or MinIO), with conditions on its ETag."""

  def __init__(self, bucket: str, key: str):
    self.path = f's3://{bucket}/{key}'
    self._client = s3_client()
    self._object = {'Bucket': bucket, 'Key': key}

  def _call(self, method: str, **kwargs) -> Optional[Dict[str, Any]]:
    """The response; None on 412, 409 (someone else's write) or NoSuchKey."""
    try:
      return getattr(self._client, method)(**self._object, **kwargs)
    except botocore_exceptions.ClientError as e:
      if (e.response.get('Error', {}).get('Code') == 'NoSuchKey' or
          e.response.get('ResponseMetadata', {}).get('HTTPStatusCode') in (
              409, 412)):  # ConditionalRequestConflict, PreconditionFailed
        return None
      raise

  def write(self, body, tag):
    condition = {'IfNoneMatch': '*'} if tag is None else {'IfMatch': tag}
    return (self._call('put_object', Body=body, **condition) or {}).get('ETag')

  def read(self):
    response = self._call('get_object')
    return response and (response['Body'].read(), response['ETag'])

  def delete(self, tag):
    return self._call('delete_object', IfMatch=tag) is not None


class _GcsStore:
  """The lease object on GCS, with conditions on its generation."""

  def __init__(self, bucket: str, name: str):
    # Imported here: only gs:// needs them, and they warn on Python 3.10.
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    from google.cloud import storage  # pylint: disable=g-import-not-at-top
    self._errors = exceptions
    self.path = f'gs://{bucket}/{name}'
    gcs_bucket = storage.Client().bucket(bucket)  # default credentials
    self._blob = lambda: gcs_bucket.blob(name)

  def write(self, body, tag):
    blob = self._blob()
    try:  # generation 0: only if there is none
      blob.upload_from_string(body, content_type='application/json',
                              if_generation_match=tag or 0)
    except self._errors.PreconditionFailed:
      return None
    return blob.generation

  def read(self):
    blob = self._blob()
    try:
      return blob.download_as_bytes(), blob.generation  # the one downloaded
    except self._errors.NotFound:
      return None

  def delete(self, tag):
    try:
      self._blob().delete(if_generation_match=tag)
    except (self._errors.PreconditionFailed, self._errors.NotFound):
      return False
    return True


class _ObjectLease(Lease):
  """A held lease object, renewed by a daemon thread until released."""

  def __init__(self, store, holder: Dict[str, Any], tag: Any,
               valid_until: float, lease_seconds: float):
    super().__init__(store.path, self._stop_and_delete)
    self._store, self._holder, self._tag = store, holder, tag
    self._valid_until, self._lease_seconds = valid_until, lease_seconds
    self._lost = None  # why it is lost, once it is
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._renew, daemon=True,
                                    name='serving-lock-renewal')
    self._thread.start()

  def _renew(self) -> None:
    while not self._stop.wait(self._lease_seconds / 3) and not self._lost:
      sent = time.monotonic()
      holder = dict(self._holder, expires_at=time.time() + self._lease_seconds)
      try:
        tag = self._store.write(json.dumps(holder).encode(), self._tag)
      except Exception as e:  # pylint: disable=broad-except
        tag, self._lost = None, f'renewing it failed: {e!r}'
      if tag:
        self._holder, self._tag = holder, tag
        self._valid_until = sent + self._lease_seconds
      else:
        self._lost = self._lost or 'it was taken over or deleted'
        logger.warning('Lost the lease %s: %s', self.path, self._lost)

  def check(self) -> None:
    left = self._valid_until - time.monotonic()
    if self._lost or left < _SAFETY_MARGIN * self._lease_seconds:
      raise LeaseLostError(f'Lease {self.path} lost: ' + (
          self._lost or f'only {left:.1f} s of it left, not yet renewed'))

  def _stop_and_delete(self) -> None:
    self._stop.set()
    self._thread.join()
    if not self._store.delete(self._tag):
      logger.warning('Lease %s was taken over after it expired: not deleted',
                     self.path)


def _acquire_lease(serving_dir: str, store, operation: str,
                   wait_seconds: float, lease_seconds: float) -> Lease:
  """Creates the lease object, or takes it over once expired; then reads it
  back to be sure it is ours."""
  token = uuid.uuid4().hex

  def try_acquire():
    sent, now = time.monotonic(), time.time()
    holder = {'token': token, 'host': socket.gethostname(), 'pid': os.getpid(),
              'operation': operation, 'acquired_at': now,
              'expires_at': now + lease_seconds}
    body = json.dumps(holder).encode()
    tag = store.write(body, None)
    current = None if tag else store.read()  # None as well: just released
    other = _decode(current[0]) if current else {}
    if current and other.get('expires_at', 0) < time.time():
      logger.info('Taking over the expired lease %s of %s', store.path,
                  _describe(other))
      tag = store.write(body, current[1])
    if tag:
      current = store.read()
      other = _decode(current[0]) if current else {}
      if other.get('token') == token:
        return _ObjectLease(store, holder, current[1], sent + lease_seconds,
                            lease_seconds), {}
    return None, other

  return _wait(serving_dir, store.path, wait_seconds, _OBJECT_POLL_SECONDS,
               try_acquire, 'If that writer died, its lease expires at the '
               'time above and the next writer takes over; delete the lock '
               'only when sure that no writer is running.')


# TensorFlow's in-memory ram:// file system exists in one process only, so
# a lock of that process is the whole of its concurrency.
_IN_PROCESS_LOCKS: Dict[str, threading.Lock] = {}


def _acquire_in_process(serving_dir: str, wait_seconds: float) -> Lease:
  lock = _IN_PROCESS_LOCKS.setdefault(serving_dir, threading.Lock())
  if not lock.acquire(timeout=wait_seconds):
    raise ServingLockedError(f'{serving_dir} is held by another thread of '
                             f'this process after {wait_seconds:.0f} s')
  return Lease(serving_dir, lock.release)


@contextlib.contextmanager
def serving_lock(serving_dir: str, operation: str, *,
                 wait_seconds: float = DEFAULT_WAIT_SECONDS,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS
                 ) -> Iterator[Lease]:
  """Holds the lock on `serving_dir` (local, file://, s3://, gs:// or
  ram://, else ValueError) for the `with`, waiting up to wait_seconds for another holder,
  then raising ServingLockedError naming it. `operation` ('push') is shown to
  the others. On object stores call `Lease.check()` before each step that
  must not run without the lock."""
  scheme, separator, rest = serving_dir.partition('://')
  if not separator or scheme == 'file':
    lease = _acquire_local(serving_dir, operation, wait_seconds)
  elif scheme == 'ram':
    lease = _acquire_in_process(serving_dir, wait_seconds)
  else:
    bucket, _, prefix = rest.partition('/')
    stores = {'s3': _S3Store, 'gs': _GcsStore}
    if scheme not in stores or not bucket:
      raise ValueError(f'Cannot lock serving root {serving_dir!r}: scheme '
                       f'{scheme}:// is not supported (local paths, file://, '
                       's3://bucket/... and gs://bucket/... are)')
    key = '/'.join(part for part in (prefix.strip('/'), LOCK_NAME) if part)
    lease = _acquire_lease(serving_dir, stores[scheme](bucket, key), operation,
                           wait_seconds, lease_seconds)
  try:
    yield lease
  finally:
    lease._release()  # pylint: disable=protected-access
