"""Two processes publish into one serving root at once: no version is shared
between them, none is lost, each is whole. Locally and on moto's S3 server
(real HTTP), where nothing but the serving root's lock keeps them apart."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import s3_server
from layouts import serving as serving_layout

# Runs executors, Beam or training on real data: the full suite's tier.
pytestmark = pytest.mark.slow

PUSHES_PER_PROCESS = 3

_PUSHER = r'''
import json, os, sys
from components.atomic_pusher import executor
from pipeline import exit_codes
if sys.argv[1].startswith('s3://'):
  import tensorflow_io  # s3:// for TensorFlow
serving, who, models = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for i, model_uri in enumerate(models):
  executor.push(os.path.join(model_uri, 'Format-Serving'), serving,
                {'model_uri': f'{who}-{i}'}, None,
                {'encoder': os.path.join(model_uri, 'encoder')})
exit_codes.exit_process(0, 'tensorflow_io' in sys.modules)
'''


def _push_concurrently(serving: str, models, env=None):
  processes = [
      subprocess.Popen(
          [sys.executable, '-c', _PUSHER, serving, who,
           json.dumps([models[(i + offset) % len(models)]
                       for i in range(PUSHES_PER_PROCESS)])],
          env=dict(os.environ, **(env or {})), stderr=subprocess.PIPE,
          text=True)
      for offset, who in enumerate(('a', 'b'))]
  for process in processes:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]


def _check(serving_dir: str) -> None:
  found = serving_layout.scan(serving_dir)
  assert not found.incomplete
  origins = sorted(serving_layout.read_push_info(d)['model_uri']
                   for d in found.complete.values())
  assert origins == sorted(f'{who}-{i}' for who in 'ab'
                           for i in range(PUSHES_PER_PROCESS))
  for version_dir in found.complete.values():
    serving_layout.verify_version(version_dir)  # no file of another push


@pytest.fixture(scope='module')
def models(other_exported_models, exported_model):
  return [exported_model, *other_exported_models]


def test_two_processes_publish_into_one_local_root(models, tmp_path):
  serving = str(tmp_path / 'serving')
  _push_concurrently(serving, models)
  _check(serving)


def test_two_processes_publish_into_one_s3_root(models, tmp_path):
  with s3_server.S3Server() as s3:
    s3.client.create_bucket(Bucket=s3_server.BUCKET)
    _push_concurrently(f's3://{s3_server.BUCKET}/serving', models, s3.env())
    local = s3.download('serving/', tmp_path / 'downloaded')
  assert (local / '.serving.lock').exists() is False  # released
  _check(str(local))
