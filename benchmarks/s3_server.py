"""moto's S3 server on a free port of 127.0.0.1, for tests and benchmarks.

It runs as a separate process, so that the code under test (tensorflow-io,
Beam's boto3, the KFP launcher, subprocesses) makes real HTTP S3 API calls
to it, as it would to the MinIO of a stock Kubeflow Pipelines install.
"""

import pathlib
import socket
import subprocess
import sys
import time
from typing import Dict, List

import boto3

BUCKET = 'mlpipeline'
CREDENTIALS = {'accesskey': 'minio-user', 'secretkey': 'minio-secret'}
REGION = 'us-east-1'


class S3Server:
  """moto's S3 server on a free port of 127.0.0.1."""

  def __enter__(self) -> 'S3Server':
    with socket.socket() as s:
      s.bind(('127.0.0.1', 0))
      port = s.getsockname()[1]
    self.endpoint = f'http://127.0.0.1:{port}'
    self.process = subprocess.Popen(
        [sys.executable, '-m', 'moto.server', '-H', '127.0.0.1', '-p',
         str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
      try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        break
      except OSError:
        if time.time() > deadline or self.process.poll() is not None:
          self.process.kill()
          raise RuntimeError('moto S3 server did not start')
        time.sleep(0.2)
    self.client = boto3.client(
        's3', endpoint_url=self.endpoint, region_name=REGION,
        aws_access_key_id=CREDENTIALS['accesskey'],
        aws_secret_access_key=CREDENTIALS['secretkey'])
    return self

  def __exit__(self, *exc_info):
    self.process.terminate()
    self.process.wait(timeout=30)

  def keys(self, prefix: str = '') -> List[str]:
    pages = self.client.get_paginator('list_objects_v2').paginate(
        Bucket=BUCKET, Prefix=prefix)
    return [item['Key'] for page in pages for item in page.get('Contents', [])]

  def download(self, prefix: str, directory: pathlib.Path) -> pathlib.Path:
    """Copies every object under `prefix` (ending in '/') to the same
    relative path below `directory`; returns `directory`."""
    for key in self.keys(prefix):
      target = directory / key[len(prefix):]
      target.parent.mkdir(parents=True, exist_ok=True)
      self.client.download_file(BUCKET, key, str(target))
    return directory

  def env(self) -> Dict[str, str]:
    """What a subprocess needs in its environment to reach this server:
    tensorflow-io reads S3_ENDPOINT, boto3 AWS_ENDPOINT_URL_S3."""
    return {'S3_ENDPOINT': self.endpoint, 'AWS_ENDPOINT_URL_S3': self.endpoint,
            'AWS_REGION': REGION,
            'AWS_ACCESS_KEY_ID': CREDENTIALS['accesskey'],
            'AWS_SECRET_ACCESS_KEY': CREDENTIALS['secretkey']}
