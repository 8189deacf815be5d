"""The rejections journal: `<serving root>/rejections.json`.

Every `python -m pipeline.rollback --reject` and `--unreject` appends an
entry (action, the model's identity, when, and the details given); a model
is rejected while its latest entry is a reject. The Pusher refuses to push a
rejected model, so a rolled-back model is not pushed again the next night.
"""

import datetime
import os
from typing import Any, Dict, List

from layouts import serving as serving_layout

REJECTIONS_FILE = 'rejections.json'
REJECT = 'reject'
UNREJECT = 'unreject'


def read_rejections(serving_dir: str) -> List[Dict[str, Any]]:
  """The rejections journal: every reject and unreject, oldest first."""
  journal = serving_layout.read_json(
      os.path.join(serving_dir, REJECTIONS_FILE))
  return journal['entries'] if journal else []


def rejected_models(serving_dir: str) -> Dict[str, Dict[str, Any]]:
  """Identity -> the journal entry that rejected it, for every model that is
  rejected now (rejected, and not taken back since)."""
  rejected: Dict[str, Dict[str, Any]] = {}
  for entry in read_rejections(serving_dir):
    if entry['action'] == REJECT:
      rejected[entry[serving_layout.RECORD_MODEL_KEY]] = entry
    else:
      rejected.pop(entry[serving_layout.RECORD_MODEL_KEY], None)
  return rejected


def record_rejection(serving_dir: str, action: str, model_sha256: str,
                     **details: Any) -> Dict[str, Any]:
  """Appends a reject or unreject entry to the journal; returns it.

  The caller holds the serving root's lock. The journal is replaced whole (a
  single object write on object stores; a rename locally).
  """
  if action not in (REJECT, UNREJECT):
    raise ValueError(f'action must be {REJECT!r} or {UNREJECT!r}: {action!r}')
  entry = {'action': action, serving_layout.RECORD_MODEL_KEY: model_sha256,
           'at': datetime.datetime.now(datetime.timezone.utc).isoformat(),
           **details}
  serving_layout.replace_json(os.path.join(serving_dir, REJECTIONS_FILE),
               {'entries': read_rejections(serving_dir) + [entry]})
  return entry
