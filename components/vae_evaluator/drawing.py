"""Step 3 of the VaeEvaluator (see executor.py): the report's pictures.

From what step 1 measured (`metrics.Measured`) and the optional inputs, one
`report.Figures`: the latent manifolds (the candidate's, and the served
model's when it was measured), the label clusters, the figures per digit,
fixed reconstructions, samples from the prior, the training curves and the
Data section. Every decoder call is batched.
"""

import json
import logging
import os
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from tfx import types

from components.vae_evaluator import metrics as metrics_lib
from components.vae_evaluator import plots
from components.vae_evaluator import report
from layouts import contracts
from models import history as history_lib

# The executor's logger: this step logs as the rest of the run does.
logger = logging.getLogger('components.vae_evaluator.executor')

# Reconstructions: eval images per label; samples: a grid this many a side.
RECONSTRUCTIONS_PER_LABEL = 2
SAMPLES_GRID = 10


def _images_at(dataset: tf.data.Dataset, indices: np.ndarray) -> np.ndarray:
  """The images at `indices` (positions in the dataset's order), in that
  order: one pass, one gather per batch."""
  order = np.argsort(indices)
  wanted = indices[order]
  found, start = [], 0
  for batch in dataset:
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    size = int(tf.shape(images)[0])
    lo, hi = np.searchsorted(wanted, [start, start + size])
    if hi > lo:
      found.append(tf.gather(images, wanted[lo:hi] - start).numpy())
    start += size
    if hi == len(wanted):
      break
  gathered = np.concatenate(found)
  result = np.empty_like(gathered)
  result[order] = gathered
  return result


def _read_gate(data_gate: Optional[types.Artifact]
               ) -> Tuple[Optional[Dict[str, Any]], str]:
  """(gate.json of the DataGate's anomalies, a note saying where from)."""
  if data_gate is None:
    return None, 'The data gate\'s output was not given to the evaluator.'
  path = os.path.join(data_gate.uri, contracts.GATE_REPORT_FILE)
  if not tf.io.gfile.exists(path):
    return None, f'The data gate wrote no report ({path} is missing).'
  with tf.io.gfile.GFile(path) as f:
    return json.load(f), f'From {path}.'


def _read_history(model_run: Optional[types.Artifact]
                  ) -> Tuple[Optional[Dict[str, Any]], str]:
  """(the Trainer's training history, a note saying where from or why not)."""
  if model_run is None:
    return None, ('No training history is available: the Trainer\'s run '
                  'directory was not given to the evaluator.')
  record = history_lib.read_history(model_run.uri)
  if record is None:
    return None, (f'No training history is available: '
                  f'{history_lib.HISTORY_FILE} is not in {model_run.uri} '
                  '(a model trained before the Trainer wrote it).')
  stopping = history_lib.stopping_of(record)
  ran = (stopping.describe() if stopping else
         f'{len(record["epoch"])} epochs.')
  return record, (f'{ran} From '
                  f'{os.path.join(model_run.uri, history_lib.HISTORY_FILE)}'
                  '. Validation on the carve-out of the train split, as the '
                  'Trainer ran it.')


def _label_counts(labels: Optional[np.ndarray]) -> Optional[Dict[str, int]]:
  if labels is None:
    return None
  values, counts = np.unique(labels, return_counts=True)
  return {str(int(v)): int(c) for v, c in zip(values, counts)}


def _data_summary(data_gate: Optional[types.Artifact],
                  labels: Optional[np.ndarray],
                  eval_images: int) -> report.DataSummary:
  """The report's Data section."""
  gate, gate_note = _read_gate(data_gate)
  if gate is not None and gate.get('splits'):
    counts = {split: info.get('num_examples')
              for split, info in sorted(gate['splits'].items(),
                                        key=lambda item: item[0] != 'train')}
    source = ('Images per split: the statistics the data gate checked; the '
              f'evaluator measured {eval_images} eval images.')
  else:
    counts = {contracts.EVAL_SPLIT: eval_images}
    source = 'Only the eval split is known here (no data gate report).'
  label_counts = _label_counts(labels)
  histogram = None
  if label_counts:
    histogram = plots.render_label_histogram(
        label_counts, f'Labels of the {eval_images} eval images')
  return report.DataSummary(counts, source, histogram, gate, gate_note)


def _per_digit(candidate: metrics_lib.Evaluation,
               served: Optional[metrics_lib.Evaluation]
               ) -> Optional[report.PerDigit]:
  """The per-label figures and their chart, or None without labels."""
  candidate_per_label = metrics_lib.per_label(candidate)
  if candidate_per_label is None:
    return None
  served_per_label = metrics_lib.per_label(served) if served else None
  margin = metrics_lib.PER_LABEL_MARGIN_NATS
  worse = metrics_lib.worse_labels(candidate_per_label, served_per_label,
                                   margin)
  if worse:
    logger.info('Digits where the candidate is more than %.1f nats worse '
                'than the served model: %s', margin, ', '.join(worse))
  return report.PerDigit(
      candidate_per_label, served_per_label, margin, worse,
      plots.render_per_label(candidate_per_label, served_per_label, worse))


def _reconstructions_and_samples(candidate: metrics_lib.Evaluation,
                                 model: metrics_lib.ExportedVae,
                                 dataset: tf.data.Dataset,
                                 seed: int) -> Tuple[bytes, bytes]:
  """The reconstructions and the prior samples, one decoder call each."""
  # Fixed eval images (per label when there are labels); their z_mean was
  # computed by `evaluate` already.
  labels = candidate.labels
  per_label = RECONSTRUCTIONS_PER_LABEL
  if labels is None:
    labels = np.zeros(len(candidate.z_mean), np.int64)
    per_label *= 10
  chosen = plots.reconstruction_examples(labels, per_label, seed)
  reconstructions_png = plots.render_reconstructions(
      _images_at(dataset, chosen),
      model.decode(tf.constant(candidate.z_mean[chosen])).numpy(),
      labels[chosen].tolist() if candidate.labels is not None else
      ['?'] * len(chosen))
  # What a client of the decoder gets for random z.
  z = plots.prior_samples(model.latent_dim, SAMPLES_GRID ** 2, seed)
  samples_png = plots.render_samples(model.decode(tf.constant(z)).numpy(),
                                     SAMPLES_GRID, SAMPLES_GRID)
  return reconstructions_png, samples_png


def _manifold(model: metrics_lib.ExportedVae) -> bytes:
  return plots.render_manifold(
      lambda z: model.decode(tf.constant(z)).numpy(), model.latent_dim)


def draw(measured: metrics_lib.Measured, model_run: Optional[types.Artifact],
         data_gate: Optional[types.Artifact], seed: int) -> report.Figures:
  """The report's pictures, and the notes shown beside them.

  `model_run` (the Trainer's, for its training history) and `data_gate` (the
  DataGate's anomalies, for its gate.json) are optional inputs: without
  them, the report says so.
  """
  started = time.monotonic()
  candidate, served = measured.candidate, measured.served
  manifold_png = _manifold(measured.model)
  served_manifold_png = (None if served.model is None else
                         _manifold(served.model))
  clusters_png = plots.render_clusters(candidate.z_mean, candidate.labels)
  per_digit = _per_digit(candidate, served.evaluation)
  reconstructions_png, samples_png = _reconstructions_and_samples(
      candidate, measured.model, measured.dataset, seed)
  history, history_note = _read_history(model_run)
  history_png = None
  if history is not None:
    history_png = plots.render_training_curves(
        history['epoch'], history['metrics'], history_lib.CURVES)
  data_summary = _data_summary(data_gate, candidate.labels,
                               int(candidate.metrics['num_images']))
  logger.info('Report figures drawn in %.1f s', time.monotonic() - started)
  return report.Figures(
      manifold_png=manifold_png, clusters_png=clusters_png,
      served_manifold_png=served_manifold_png, per_digit=per_digit,
      reconstructions_png=reconstructions_png, samples_png=samples_png,
      samples_note=(f'{SAMPLES_GRID ** 2} draws of z ~ N(0, I) (seed '
                    f'{seed}), decoded by the candidate\'s serving decoder '
                    'in one call: what a client sending random z gets.'),
      history_png=history_png, history_note=history_note, data=data_summary)
