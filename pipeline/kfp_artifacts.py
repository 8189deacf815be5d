"""What the KFP launcher emulation (pipeline/kfp_launcher.py) does to artifacts
outside the task's own command: local mirrors of object-store URIs, ML
Metadata values, downloads of s3:// inputs, and the memory of a task's
processes.

Following kubeflow/pipelines (commit 7b70c7b, 2026-08-21; the same code paths
since release 2.5.0):

* backend/src/v2/component/launcher_v2.go, `LocalPathForURI`: the local mirror
  of `gs://`, `minio://` and `s3://` URIs (`local_mirror`).
* backend/src/v2/metadata/converter.go, `StructValueToMLMDValue` and
  `toRuntimeArtifact`: artifact metadata as ML Metadata custom properties
  and back (`mlmd_value`, `json_value`).
* backend/src/v2/objectstore/object_store.go, `DownloadBlob`: one file per
  listed key; a "directory marker" key (ending in `/`) cannot be written
  (kubeflow/pipelines#13476), so `s3_downloader` fails on it.
"""

import os
import threading
from typing import Any, Callable, Dict, Optional

import psutil

# launcher_v2.go `LocalPathForURI`: where the launcher mirrors object stores.
LOCAL_MIRRORS = {'gs://': '/gcs/', 'minio://': '/minio/', 's3://': '/s3/'}


class MemorySampler:
  """Samples the resident memory of a process and its descendants (Beam's
  worker processes) every 0.2 s; `peak` is the largest sum seen, what a
  pod's memory limit would have to hold."""

  def __init__(self, pid: int):
    self.peak = 0
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(pid,),
                                    daemon=True)
    self._thread.start()

  def _run(self, pid: int) -> None:
    try:
      root = psutil.Process(pid)
    except psutil.NoSuchProcess:
      return
    while not self._stop.is_set():
      total = 0
      try:
        for process in [root] + root.children(recursive=True):
          try:
            total += process.memory_info().rss
          except psutil.NoSuchProcess:
            pass
      except psutil.NoSuchProcess:
        return
      self.peak = max(self.peak, total)
      self._stop.wait(0.2)

  def stop(self) -> None:
    self._stop.set()
    self._thread.join()


def local_mirror(uri: str) -> Optional[str]:
  """The launcher's local path for an object-store URI; None for others."""
  for scheme, mirror in LOCAL_MIRRORS.items():
    if uri.startswith(scheme):
      return mirror + uri[len(scheme):]
  return None


def mlmd_value(value: Any) -> Dict[str, Any]:
  """converter.go `StructValueToMLMDValue`: a JSON value as an MLMD value."""
  if isinstance(value, bool):
    return {'int_value': int(value)}
  if isinstance(value, str):
    return {'string_value': value}
  if isinstance(value, (int, float)):
    return {'double_value': float(value)}
  if isinstance(value, list):
    return {'struct_value': {'list': value}}
  if isinstance(value, dict):
    return {'struct_value': {'struct': value}}
  raise ValueError(f'unknown/unsupported value type {type(value)}')


def json_value(value: Dict[str, Any]) -> Any:
  """converter.go `toRuntimeArtifact`: an MLMD value as a JSON value."""
  [(kind, content)] = value.items()
  return float(content) if kind in ('int_value', 'double_value') else content


def s3_downloader(client: Any) -> Callable[[str, str], None]:
  """The launcher's download of an s3:// input artifact, with a boto3 client
  (objectstore.DownloadBlob: one file per listed key)."""

  def download(uri: str, local_dir: str) -> None:
    bucket, _, prefix = uri[len('s3://'):].partition('/')
    pages = client.get_paginator('list_objects_v2').paginate(
        Bucket=bucket, Prefix=prefix)
    for page in pages:
      for item in page.get('Contents', []):
        key = item['Key']
        if key != prefix and not key.startswith(prefix + '/'):
          continue
        path = local_dir + key[len(prefix):]
        if key.endswith('/'):
          raise ValueError(f'failed to download input artifact from {uri}: '
                           f'{key!r} is a directory marker, and {path} '
                           'cannot be a file')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        client.download_file(bucket, key, path)

  return download
