"""Data drops as spans: the `span-N/` folders of a data root, the window of
spans a run trains on, and the gate's verdict on each span.

    <data_root>/span-1/   train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
    <data_root>/span-2/   t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz
    ...

A span's *digest* is the SHA-256 of its files' names, sizes and SHA-256s, so
the same drop has the same digest under a local data root and under s3://.

`--train-spans K` trains on a *window*: the newest span, which the data gate
checks, and up to K - 1 earlier spans that the gate passed when they arrived.
The project's ExampleGen resolves the window when it runs (no ExampleGen
driver or Resolver, so Kubeflow does the same) and writes:

    split `train`     the newest span's training images (gated)
    split `eval`      the newest span's t10k images (gated; what the evaluator
                      scores and the blessing compares on)
    split `history`   the earlier spans' training images (HISTORY_SPLIT; only
                      with K > 1; empty when no earlier span qualifies)

and records the window on its Examples artifact as WINDOW_PROPERTY (JSON, a
list of `SpanRead` dicts, newest last) beside TFX's `span` property (the
newest span).

The gate's verdicts live in the serving root, beside the versions, so that
they survive a lost pipeline root (TensorFlow Serving ignores names that are
not all digits):

    <serving_dir>/span_verdicts.json   every verdict, oldest first

A span enters a later window only if the latest verdict on its digest is a
pass: a span the gate stopped, one it never saw, or one whose files changed
since it was passed stays out.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import re
from typing import Any, Dict, List, Optional

import tensorflow as tf

from layouts import serving as serving_layout

SPAN_DIR_PREFIX = 'span-'
_SPAN_DIR_RE = re.compile(r'^span-(\d+)/?$')
HISTORY_SPLIT = 'history'
WINDOW_PROPERTY = 'mnist_vae_window'
VERDICTS_FILE = 'span_verdicts.json'


@dataclasses.dataclass(frozen=True)
class SpanRead:
  """One span of a window, as ExampleGen read it."""
  span: int
  folder: str  # the span's folder, as read (local path or URI)
  digest: str
  # file name -> {'size', 'sha256'}
  files: Dict[str, Dict[str, Any]]

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, value: Dict[str, Any]) -> 'SpanRead':
    return cls(**value)


def span_dirs(data_root: str) -> Dict[int, str]:
  """Span number -> folder name of the `span-N/` folders in `data_root`."""
  spans = {}
  for name in tf.io.gfile.listdir(data_root):
    match = _SPAN_DIR_RE.match(name)
    if match and tf.io.gfile.isdir(os.path.join(data_root, name)):
      spans[int(match.group(1))] = name.rstrip('/')
  return spans


def span_digest(files: Dict[str, Dict[str, Any]]) -> str:
  """The digest of a span from its files' {'size', 'sha256'} by name."""
  canonical = json.dumps(
      {name: [info['size'], info['sha256']] for name, info in files.items()},
      sort_keys=True)
  return hashlib.sha256(canonical.encode()).hexdigest()


def encode_window(window: List[SpanRead]) -> str:
  return json.dumps([s.to_dict() for s in window], sort_keys=True)


def decode_window(text: Optional[str]) -> List[SpanRead]:
  return [SpanRead.from_dict(s) for s in json.loads(text or '[]')]


def read_verdicts(serving_dir: str) -> List[Dict[str, Any]]:
  """The verdict journal: every verdict on a span, oldest first."""
  journal = serving_layout.read_json(os.path.join(serving_dir, VERDICTS_FILE))
  return journal['entries'] if journal else []


def latest_verdicts(serving_dir: str) -> Dict[str, Dict[str, Any]]:
  """Span digest -> the latest verdict on it."""
  return {entry['digest']: entry for entry in read_verdicts(serving_dir)}


def passed_digests(serving_dir: str) -> set:
  """The digests of the spans whose latest verdict is a pass."""
  return {digest for digest, entry in latest_verdicts(serving_dir).items()
          if entry['passed']}


def record_verdict(serving_dir: str, span: SpanRead, passed: bool,
                   **details: Any) -> Dict[str, Any]:
  """Appends the gate's verdict on `span`; returns the entry.

  The caller holds the serving root's lock (`layouts.serving_lock`).
  """
  entry = {'span': span.span, 'folder': span.folder, 'digest': span.digest,
           'passed': bool(passed),
           'at': datetime.datetime.now(datetime.timezone.utc).isoformat(),
           **details}
  serving_layout.replace_json(
      os.path.join(serving_dir, VERDICTS_FILE),
      {'entries': read_verdicts(serving_dir) + [entry]})
  return entry
