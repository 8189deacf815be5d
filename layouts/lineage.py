"""What a model was trained on, recorded in every pushed version, and the
"nothing new" rule that lets a scheduled run end early.

A model's *training identity* (`contracts.TRAINED_ON_KEY`) is

    {"data": <data digest>, "training": <training fingerprint>}

* the data digest (`data_digest`): SHA-256 of the window IdxExampleGen read
  (every span's digest, layouts/spans.py, so the same files give the same
  digest under a local data root and under s3://) and its --max-examples.
  IdxExampleGen records it on its Examples (`contracts.DATA_DIGEST_KEY`).
* the training fingerprint (`training_fingerprint`): SHA-256 of the
  Trainer's custom_config as it trains (hyperparameters with the epochs of
  the run, warm start, the push destination, the training code's
  fingerprint).

The Trainer puts the identity on its Model; the Pusher writes it into the
version record (layouts/serving.py, `push_info`). A run whose identity is
the served version's has nothing new to learn (`nothing_new`): the Trainer
trains nothing, and the evaluator and the Pusher pass that on
(`contracts.NOTHING_NEW_KEY`); the local runner checks the same rule before
it starts the pipeline. Versions pushed before identities were recorded, and
data sources without a digest (TFDS), never match.
"""

import hashlib
import json
from typing import Any, Dict, Mapping, Optional, Sequence

from layouts import contracts
from layouts import serving as serving_layout


def _sha256(value: Any) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def data_digest(span_digests: Sequence[str],
                max_examples: Optional[int]) -> str:
  """The digest of what ExampleGen read: the window's span digests (newest
  last) and the examples it kept of each split (None: all)."""
  return _sha256({'spans': list(span_digests), 'max_examples': max_examples})


def training_fingerprint(custom_config: Mapping[str, Any]) -> str:
  """The fingerprint of the Trainer's custom_config (canonical JSON)."""
  return _sha256(dict(custom_config))


def identity(data: str, training: str) -> Dict[str, str]:
  """A model's training identity, as versions record it."""
  return {'data': data, 'training': training}


def training_identity(data: str,
                      custom_config: Mapping[str, Any]) -> Dict[str, str]:
  """The identity of training on data digest `data` with the Trainer's
  `custom_config`: what the Trainer records and the local runner checks."""
  return identity(data, training_fingerprint(custom_config))


def nothing_new(serving_dir: str, trained_on: Mapping[str, str]
                ) -> Optional[str]:
  """Why a run whose training identity is `trained_on` has nothing new to
  train, or None if it has."""
  version_dir = serving_layout.latest_version_dir(serving_dir)
  if version_dir is None:
    return None
  info = serving_layout.read_push_info(version_dir)
  if info.get(contracts.TRAINED_ON_KEY) != dict(trained_on):
    return None
  return (f'nothing new: the served version '
          f'{serving_layout.version_name(version_dir)} was trained on exactly '
          'this data with this training configuration')
