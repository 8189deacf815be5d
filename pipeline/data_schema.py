"""The curated data schema: the contract every data drop must meet.

The pipeline does not infer a schema from the data it is about to check
(SchemaGen would describe whatever arrived, so nothing could ever fail it).
Instead `schema/schema.pbtxt` is committed in the repository and brought in
by TFX's ImportSchemaGen. It says:

* `image`: int64, exactly 784 values (28x28, row-major), each in 0..255;
* `label`: int64, exactly one value in 0..9, categorical (so TFDV computes
  the label distribution that the drift check compares);
* both present in every example.

Regenerating the file is deliberate, never a side effect of a run:

    .venv/bin/python -m pipeline.data_schema          # check: exit 1 if stale
    .venv/bin/python -m pipeline.data_schema --write  # rewrite the file

Drift thresholds are not part of the committed schema: the data gate sets
them on its own copy from its flags (see components/data_gate).
"""

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from layouts import contracts
from models import data

logger = logging.getLogger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The committed schema (the Docker image carries a copy, see Dockerfile).
SCHEMA_FILE = os.path.join(REPO_ROOT, 'schema', 'schema.pbtxt')
MAX_PIXEL = 255
_HEADER = ('# The curated schema of every data drop (see pipeline/data_schema.py).\n'
           '# Generated: edit pipeline/data_schema.py, then run\n'
           '#   .venv/bin/python -m pipeline.data_schema --write\n')


def curated_schema() -> schema_pb2.Schema:
  """The schema described in the module docstring."""
  schema = schema_pb2.Schema()
  image = schema.feature.add(name=contracts.IMAGE_KEY, type=schema_pb2.INT)
  image.value_count.min = image.value_count.max = contracts.IMAGE_PIXELS
  image.int_domain.min, image.int_domain.max = 0, MAX_PIXEL
  label = schema.feature.add(name=contracts.LABEL_KEY, type=schema_pb2.INT)
  label.value_count.min = label.value_count.max = 1
  label.int_domain.min, label.int_domain.max = 0, contracts.NUM_CLASSES - 1
  label.int_domain.is_categorical = True
  for feature in (image, label):
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
  return schema


def schema_text() -> str:
  """The file's exact contents."""
  return _HEADER + text_format.MessageToString(curated_schema())


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      description='Check (default) or rewrite the committed curated schema '
      f'{os.path.relpath(SCHEMA_FILE, REPO_ROOT)}.')
  parser.add_argument('--write', action='store_true',
                      help='rewrite the file from pipeline/data_schema.py.')
  parser.add_argument('--path', default=SCHEMA_FILE, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format='%(message)s')
  wanted = schema_text()
  current = None
  if os.path.exists(args.path):
    with open(args.path) as f:
      current = f.read()
  if args.write:
    os.makedirs(os.path.dirname(args.path), exist_ok=True)
    with open(args.path, 'w') as f:
      f.write(wanted)
    logger.info('%s %s', 'unchanged:' if current == wanted else 'wrote',
                args.path)
    return 0
  if current != wanted:
    logger.error('%s is %s: run `python -m pipeline.data_schema --write`',
                 args.path, 'missing' if current is None else 'out of date')
    return 1
  logger.info('%s is up to date', args.path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
