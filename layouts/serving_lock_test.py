"""Tests of serving_lock: real processes contend for a local root and for an
s3:// root on moto's S3 server; gs:// runs against an in-memory fake of the
google-cloud-storage calls it makes."""

import itertools
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import uuid

from botocore import exceptions as botocore_exceptions
import pytest
from google.api_core import exceptions as gcs_exceptions
from google.cloud import storage

from benchmarks.s3_server import BUCKET
from benchmarks.s3_server import S3Server
from layouts import serving_lock as sl

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Holds the lock for each of `rounds` rounds once all `workers` are ready,
# appending (pid, enter time, exit time) to `log` while it holds it.
_WORKER = """
import json, os, sys, time
from layouts import serving_lock
root, log, ready, workers, rounds = sys.argv[1:]
open(os.path.join(ready, str(os.getpid())), 'w').close()
while len(os.listdir(ready)) < int(workers):
  time.sleep(0.01)
for _ in range(int(rounds)):
  with serving_lock.serving_lock(root, 'push', wait_seconds=30,
                                 lease_seconds=5):
    enter = time.time()
    time.sleep(0.05)
    with open(log, 'a') as f:
      f.write(json.dumps([os.getpid(), enter, time.time()]) + '\\n')
  time.sleep(0.02)
"""

# Takes the lock, says so on stdout, and holds it until killed.
_HOLDER = """
import sys, time
from layouts import serving_lock
with serving_lock.serving_lock(sys.argv[1], 'push',
                               lease_seconds=float(sys.argv[2])):
  print('locked', flush=True)
  time.sleep(600)
"""


def _python(code, *args, env=None, **kwargs):
  return subprocess.Popen([sys.executable, '-c', code, *map(str, args)],
                          cwd=REPO_ROOT, env={**os.environ, **(env or {})},
                          **kwargs)


def _contend(tmp_path, root, env=None, workers=2, rounds=4):
  """Runs the workers to completion; returns their (pid, enter, exit)."""
  log, ready = tmp_path / 'log', tmp_path / 'ready'
  ready.mkdir()
  processes = [_python(_WORKER, root, log, ready, workers, rounds, env=env)
               for _ in range(workers)]
  assert [p.wait(timeout=60) for p in processes] == [0] * workers
  return [json.loads(line) for line in log.read_text().splitlines()]


def _assert_one_at_a_time(intervals, workers=2, rounds=4):
  assert len(intervals) == workers * rounds
  assert len({pid for pid, _, _ in intervals}) == workers
  intervals = sorted(intervals, key=lambda i: i[1])
  for (_, _, previous_exit), (_, enter, _) in zip(intervals, intervals[1:]):
    assert enter >= previous_exit


def _hold_in_child(root, lease_seconds=sl.DEFAULT_LEASE_SECONDS, env=None):
  holder = _python(_HOLDER, root, lease_seconds, env=env,
                   stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline() == 'locked\n'
  return holder


def _kill(process):
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=10)
  process.stdout.close()


# Local paths.


def test_local_writers_take_turns(tmp_path):
  _assert_one_at_a_time(_contend(tmp_path, str(tmp_path / 'serving')))


def test_local_waiter_names_the_holder_and_gets_it_once_it_is_killed(tmp_path):
  root = str(tmp_path / 'serving')
  holder = _hold_in_child(root)
  try:
    with pytest.raises(sl.ServingLockedError) as locked:
      with sl.serving_lock(root, 'rollback', wait_seconds=0.5):
        pass
    assert f'pid {holder.pid} ' in str(locked.value)
    assert "'push'" in str(locked.value) and root in str(locked.value)
  finally:
    _kill(holder)
  start = time.monotonic()
  with sl.serving_lock(root, 'rollback', wait_seconds=5) as lease:
    assert time.monotonic() - start < 0.5
    assert lease.path == os.path.join(root, sl.LOCK_NAME)
    lease.check()


def test_file_urls_are_local_and_other_schemes_are_refused(tmp_path):
  with sl.serving_lock(f'file://{tmp_path}/serving', 'push') as lease:
    assert lease.path == f'{tmp_path}/serving/{sl.LOCK_NAME}'
  with pytest.raises(ValueError, match='hdfs://'):
    with sl.serving_lock('hdfs://namenode/serving', 'push'):
      pass


# s3:// on moto.


@pytest.fixture(scope='module')
def s3():
  with S3Server() as server:
    server.client.create_bucket(Bucket=BUCKET)
    yield server


@pytest.fixture
def s3_env(s3, monkeypatch):
  """This process reaches the server, as a task does."""
  for name, value in s3.env().items():
    monkeypatch.setenv(name, value)


@pytest.fixture
def s3_root(s3_env):
  """A fresh serving root on the server."""
  del s3_env
  return f's3://{BUCKET}/{uuid.uuid4().hex}/serving'


def _s3_key(root):
  return root[len(f's3://{BUCKET}/'):] + '/' + sl.LOCK_NAME


def _s3_lease(s3, root):
  return json.loads(s3.client.get_object(
      Bucket=BUCKET, Key=_s3_key(root))['Body'].read())


def test_s3_writers_take_turns(tmp_path, s3, s3_root):
  _assert_one_at_a_time(_contend(tmp_path, s3_root, env=s3.env()))


def test_s3_lease_of_a_killed_holder_is_taken_over_once_expired(s3, s3_root):
  holder = _hold_in_child(s3_root, lease_seconds=2, env=s3.env())
  _kill(holder)
  left = _s3_lease(s3, s3_root)
  assert left['pid'] == holder.pid
  with sl.serving_lock(s3_root, 'push', wait_seconds=10, lease_seconds=2):
    assert left['expires_at'] <= time.time() < left['expires_at'] + 2
    taken = _s3_lease(s3, s3_root)
  assert taken['pid'] == os.getpid() and taken['token'] != left['token']


def test_s3_live_holder_keeps_its_lease_past_lease_seconds(s3, s3_root):
  with sl.serving_lock(s3_root, 'push', lease_seconds=2) as lease:
    with pytest.raises(sl.ServingLockedError) as locked:
      with sl.serving_lock(s3_root, 'rollback', wait_seconds=3.5,
                           lease_seconds=2):
        pass
    lease.check()
    assert f'pid {os.getpid()} ' in str(locked.value)
    assert 'lease expires' in str(locked.value)
    assert _s3_lease(s3, s3_root)['operation'] == 'push'


def test_s3_release_deletes_the_lease(s3, s3_root):
  with sl.serving_lock(s3_root, 'push') as lease:
    assert lease.path == f'{s3_root}/{sl.LOCK_NAME}'
    assert _s3_key(s3_root) in s3.keys()
  assert _s3_key(s3_root) not in s3.keys()


def test_s3_lease_overwritten_behind_the_holders_back_is_lost(s3, s3_root):
  intruder = json.dumps({'token': 'intruder', 'pid': 1, 'host': 'elsewhere'})
  with sl.serving_lock(s3_root, 'push', lease_seconds=1.5) as lease:
    lease.check()
    s3.client.put_object(Bucket=BUCKET, Key=_s3_key(s3_root),
                         Body=intruder.encode())
    with pytest.raises(sl.LeaseLostError, match='taken over'):
      for _ in range(30):  # the next renewal, within 0.5 s, finds it out
        lease.check()
        time.sleep(0.1)
  # Releasing it left the intruder's lease alone, and did not raise.
  assert _s3_lease(s3, s3_root)['token'] == 'intruder'


def test_s3_errors_other_than_conditions_are_raised(s3_env):
  del s3_env
  with pytest.raises(botocore_exceptions.ClientError, match='NoSuchBucket'):
    with sl.serving_lock('s3://no-such-bucket/serving', 'push'):
      pass


# gs:// on a fake.


class FakeGcs:
  """google.cloud.storage.Client's calls serving_lock makes, in memory, with
  the real contract: every write makes a new generation, if_generation_match
  0 means "only if there is none", an unmet precondition raises
  PreconditionFailed and a missing object NotFound."""

  def __init__(self):
    self.objects = {}  # (bucket, name) -> (bytes, generation)
    self.lock = threading.Lock()
    self.generations = itertools.count(1700000000000000)

  def bucket(self, name):
    return FakeBucket(self, name)


class FakeBucket:
  """google.cloud.storage.Bucket: makes blobs."""

  def __init__(self, gcs, name):
    self.gcs, self.name = gcs, name

  def blob(self, name):
    return FakeBlob(self.gcs, (self.name, name))


class FakeBlob:
  """google.cloud.storage.Blob: conditional upload, download, delete."""

  def __init__(self, gcs, key):
    self.gcs, self.key, self.generation = gcs, key, None

  def _current(self, if_generation_match):
    current = self.gcs.objects.get(self.key)
    if if_generation_match not in (None, current[1] if current else 0):
      raise gcs_exceptions.PreconditionFailed(f'{self.key}: generation')
    return current

  def upload_from_string(self, data, content_type='text/plain',
                         if_generation_match=None):
    del content_type
    with self.gcs.lock:
      self._current(if_generation_match)
      self.generation = next(self.gcs.generations)
      self.gcs.objects[self.key] = (
          data.encode() if isinstance(data, str) else bytes(data),
          self.generation)

  def download_as_bytes(self, if_generation_match=None):
    with self.gcs.lock:
      if self.key not in self.gcs.objects:
        raise gcs_exceptions.NotFound(f'{self.key}')
      data, self.generation = self._current(if_generation_match)
      return data

  def delete(self, if_generation_match=None):
    with self.gcs.lock:
      if self.key not in self.gcs.objects:
        raise gcs_exceptions.NotFound(f'{self.key}')
      self._current(if_generation_match)
      del self.gcs.objects[self.key]


GS_ROOT = 'gs://models/serving'
GS_KEY = ('models', 'serving/' + sl.LOCK_NAME)


@pytest.fixture
def gcs(monkeypatch):
  fake = FakeGcs()
  monkeypatch.setattr(storage, 'Client', lambda: fake)
  return fake


def _gs_lease(gcs):
  return json.loads(gcs.objects[GS_KEY][0])


def test_gs_lease_is_held_contended_and_released(gcs):
  with sl.serving_lock(GS_ROOT, 'push', lease_seconds=0.6) as lease:
    assert lease.path == 'gs://models/serving/.serving.lock'
    assert _gs_lease(gcs)['pid'] == os.getpid()
    with pytest.raises(sl.ServingLockedError, match="'push'"):
      with sl.serving_lock(GS_ROOT, 'rollback', wait_seconds=1):
        pass
    lease.check()  # renewed, twice or more, while the other waited
  assert GS_KEY not in gcs.objects


def test_gs_lease_is_taken_over_only_once_expired(gcs):
  expires_at = time.time() + 1
  FakeBlob(gcs, GS_KEY).upload_from_string(json.dumps(
      {'token': 'old', 'pid': 1, 'expires_at': expires_at}))
  with sl.serving_lock(GS_ROOT, 'push', wait_seconds=5):
    assert time.time() >= expires_at
    assert _gs_lease(gcs)['pid'] == os.getpid()


def test_gs_lease_overwritten_is_lost(gcs):
  with sl.serving_lock(GS_ROOT, 'push', lease_seconds=0.6) as lease:
    FakeBlob(gcs, GS_KEY).upload_from_string('{"token": "intruder"}')
    time.sleep(0.5)
    with pytest.raises(sl.LeaseLostError):
      lease.check()
  assert _gs_lease(gcs)['token'] == 'intruder'
