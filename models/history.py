"""The Trainer's losses per epoch as a small JSON file beside its TensorBoard
logs (the ModelRun artifact), for the evaluator's report.

`training_history.json`:

    {"epoch": [0, 1, ...],
     "metrics": {"loss": [...], "reconstruction_loss": [...],
                 "kl_loss": [...], "val_loss": [...], ...}}

`metrics` holds Keras' history keys: `loss`, `reconstruction_loss`,
`kl_loss` (train) and their `val_` versions (validation), one value per
epoch, in nats per image. `stopping` says how training ended
(`early_stopping.Stopping.to_dict()`: epochs run, the reason, the best
epoch), absent in histories written before it existed.
"""

import csv
import json
import logging
import os
from typing import Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

from models import early_stopping

logger = logging.getLogger(__name__)

HISTORY_FILE = 'training_history.json'
# The losses the report draws: (train key, validation key, title).
CURVES = (
    ('loss', 'val_loss', '-ELBO (loss)'),
    ('reconstruction_loss', 'val_reconstruction_loss', 'reconstruction'),
    ('kl_loss', 'val_kl_loss', 'KL'),
)
# Keras' epoch log (CSVLogger; models.train copies it into the run directory
# when training could resume): it has every epoch, also those trained before
# a resume, which Keras' History of the last attempt does not.
EPOCH_LOG_FILE = 'history.csv'


def _epoch_log(path: str) -> Optional[Dict[str, List[float]]]:
  """Keras' CSVLogger file as {column: values}, or None if absent or empty."""
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    rows = list(csv.DictReader(f))
  if not rows:
    return None
  # Keras writes 'NA' for a metric an epoch lacks (e.g. validation losses
  # when training validates on nothing): a column of NAs is left out, a
  # lone NA is NaN.
  columns = {key: [row[key] for row in rows] for key in rows[0]}
  return {key: [float('nan') if v == 'NA' else float(v) for v in values]
          for key, values in columns.items()
          if any(v != 'NA' for v in values)}


def history_record(epochs: Sequence[int],
                   metrics: Mapping[str, Sequence[float]]) -> Dict:
  """The JSON record of `metrics` (key -> one value per epoch).

  Raises:
    ValueError: a key does not have one value per epoch.
  """
  for key, values in metrics.items():
    if len(values) != len(epochs):
      raise ValueError(f'{key}: {len(values)} values for {len(epochs)} epochs')
  return {'epoch': [int(e) for e in epochs],
          'metrics': {key: [float(v) for v in values]
                      for key, values in sorted(metrics.items())}}


def write_history(model_run_dir: str, keras_history,
                  stopping: Optional[early_stopping.Stopping] = None) -> str:
  """Writes `training_history.json` into `model_run_dir`.

  Takes the epoch log `history.csv` in `model_run_dir` when there is one (it
  covers the epochs of an interrupted first attempt too), otherwise the
  Keras History of this fit.

  Args:
    model_run_dir: the Trainer's run directory (fn_args.model_run_dir).
    keras_history: what `model.fit` returned (`.epoch`, `.history`).
    stopping: how training ended.

  Returns:
    The path written.
  """
  logged = _epoch_log(os.path.join(model_run_dir, EPOCH_LOG_FILE))
  if logged is not None and 'epoch' in logged:
    epochs = [int(e) for e in logged.pop('epoch')]
    record = history_record(epochs, logged)
  else:
    record = history_record(keras_history.epoch, keras_history.history)
  if stopping is not None:
    record['stopping'] = stopping.to_dict()
  path = os.path.join(model_run_dir, HISTORY_FILE)
  tf.io.gfile.makedirs(model_run_dir)
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(record, f, indent=1, sort_keys=True)
  logger.info('Training history (%d epochs) written to %s',
              len(record['epoch']), path)
  return path


def read_history(model_run_dir: str) -> Optional[Dict]:
  """The record `write_history` wrote in `model_run_dir`, or None if there
  is none (a model trained before the Trainer wrote it)."""
  path = os.path.join(model_run_dir, HISTORY_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def stopping_of(record: Optional[Dict]) -> Optional[early_stopping.Stopping]:
  """How the training of a history `record` ended, or None where the record
  (or its `stopping`) is missing."""
  if not record or 'stopping' not in record:
    return None
  return early_stopping.Stopping.from_dict(record['stopping'])
