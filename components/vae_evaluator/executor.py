"""VaeEvaluator executor: metrics, plots, report and the blessing."""

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.vae_evaluator import blessing
from components.vae_evaluator import metrics as metrics_lib
from components.vae_evaluator import plots
from components.vae_evaluator import report
from layouts import serving as serving_layout
from models import data
from models import history as history_lib

logger = logging.getLogger(__name__)

EXAMPLES_KEY = 'examples'
MODEL_KEY = 'model'
# Optional inputs, for the report: the Trainer's ModelRun (its training
# history) and the DataGate's anomalies (its gate.json).
MODEL_RUN_KEY = 'model_run'
DATA_GATE_KEY = 'data_gate'
EVALUATION_KEY = 'evaluation'
BLESSING_KEY = 'blessing'
SERVING_DIR_KEY = 'serving_dir'
THRESHOLD_KEY = 'bless_threshold'
TOLERANCE_KEY = 'bless_tolerance'
IWAE_SAMPLES_KEY = 'iwae_samples'
SEED_KEY = 'seed'
ALLOW_SIGNATURE_CHANGE_KEY = 'allow_signature_change'
# Only for the cache key: the served version when the pipeline was built
# (local runs), so a rerun after another push measures again.
SERVED_VERSION_KEY = 'served_version'
# Only for the cache key (see pipeline/code_fingerprint.py).
CODE_FINGERPRINT_KEY = 'code_fingerprint'
EVAL_SPLIT = 'eval'

METRICS_FILE = 'metrics.json'
MANIFOLD_FILE = 'manifold.png'
CLUSTERS_FILE = 'clusters.png'
REPORT_FILE = 'report.html'
# The data gate's report in its anomalies artifact (components.data_gate).
GATE_REPORT_FILE = 'gate.json'
# Reconstructions: eval images per label; samples: a grid this many a side.
RECONSTRUCTIONS_PER_LABEL = 2
SAMPLES_GRID = 10
# Latent samples per decoder call (images per batch = this // k): larger
# batches made the 2-core CPU slower, not faster.
SAMPLES_PER_CALL = 4096
# Reading the served model: attempts, and the first wait (doubled each time).
SERVED_READ_ATTEMPTS = 4
SERVED_READ_BACKOFF_SECONDS = 2.0


class ServedModelError(RuntimeError):
  """The served model could not be read, even after retries."""


def _eval_dataset(examples: types.Artifact, iwae_samples: int) -> tf.data.Dataset:
  split_dir = artifact_utils.get_split_uri([examples], EVAL_SPLIT)
  return data.make_dataset(
      os.path.join(split_dir, '*'), max(1, SAMPLES_PER_CALL // iwae_samples),
      shuffle=False, with_labels=True)


def _evaluate_served(serving_dir: str, dataset: tf.data.Dataset,
                     iwae_samples: int, seed: int
                     ) -> Tuple[Optional[metrics_lib.Evaluation],
                                Optional[metrics_lib.ExportedVae],
                                Optional[str], Optional[str]]:
  """(evaluation, model, error, version dir) of the model served.

  A version this pipeline did not push is a verdict (`error`, the push is
  blocked). An I/O error while reading or measuring it is retried with
  backoff, then raised: a transient error must fail the run, not quietly
  skip a night's retraining. Anything else (a version whose files differ
  from its record, a programming error) is raised at once.

  Raises:
    ServedModelError: I/O errors persisted through every attempt.
    serving_layout.VersionCorruptError: the version does not match its
      record.
  """
  version_dir = serving_layout.latest_version_dir(serving_dir)
  if version_dir is None:
    return None, None, None, None
  logger.info('Measuring the served model %s on the same images', version_dir)
  for attempt in range(1, SERVED_READ_ATTEMPTS + 1):
    try:
      serving_layout.verify_version(version_dir)
      served = metrics_lib.load_served_model(version_dir)
      return (metrics_lib.evaluate(served, dataset, iwae_samples, seed),
              served, None, version_dir)
    except serving_layout.NotPushedByPipelineError as e:
      logger.error('Cannot measure the served model %s: %s', version_dir, e)
      return None, None, f'{version_dir}: {e}', version_dir
    except serving_layout.IO_ERRORS as e:
      if attempt == SERVED_READ_ATTEMPTS:
        raise ServedModelError(
            f'cannot read the served model {version_dir} after '
            f'{SERVED_READ_ATTEMPTS} attempts: {type(e).__name__}: {e}') from e
      delay = SERVED_READ_BACKOFF_SECONDS * 2 ** (attempt - 1)
      logger.warning('Reading the served model %s failed (attempt %d of %d: '
                     '%s); retrying in %.0f s', version_dir, attempt,
                     SERVED_READ_ATTEMPTS, e, delay)
      time.sleep(delay)
  raise AssertionError('unreachable')


def _write_blessing(artifact: types.Artifact, model: types.Artifact,
                    decision: blessing.Decision,
                    baseline_dir: Optional[str]) -> None:
  name = (constants.BLESSED_FILE_NAME if decision.blessed else
          constants.NOT_BLESSED_FILE_NAME)
  # Kubeflow creates no output folders (a local or mounted pipeline root
  # needs this one; on object stores it is a no-op).
  tf.io.gfile.makedirs(artifact.uri)
  with tf.io.gfile.GFile(os.path.join(artifact.uri, name), 'w') as f:
    f.write('\n'.join(decision.reasons) + '\n')
  artifact.set_int_custom_property(
      constants.ARTIFACT_PROPERTY_BLESSED_KEY,
      constants.BLESSED_VALUE if decision.blessed else
      constants.NOT_BLESSED_VALUE)
  artifact.set_string_custom_property(
      constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
  artifact.set_int_custom_property(
      constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
  if baseline_dir:
    artifact.set_string_custom_property(
        constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline_dir)
  # What the Pusher compares with the newest version before publishing.
  artifact.set_string_custom_property(
      serving_layout.BLESSING_SERVED_VERSION_KEY, baseline_dir or '')
  failed = [r for r in decision.reasons if r.startswith('FAIL')]
  artifact.set_string_custom_property(
      constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY,
      '; '.join(failed) or 'blessed')


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


def _read_gate(inputs: Dict[str, List[types.Artifact]]
               ) -> Tuple[Optional[Dict[str, Any]], str]:
  """(gate.json of the DataGate's anomalies, a note saying where from)."""
  artifacts = inputs.get(DATA_GATE_KEY) or []
  if not artifacts:
    return None, 'The data gate\'s output was not given to the evaluator.'
  path = os.path.join(artifacts[0].uri, GATE_REPORT_FILE)
  if not tf.io.gfile.exists(path):
    return None, f'The data gate wrote no report ({path} is missing).'
  with tf.io.gfile.GFile(path) as f:
    return json.load(f), f'From {path}.'


def _read_history(inputs: Dict[str, List[types.Artifact]]
                  ) -> Tuple[Optional[Dict[str, Any]], str]:
  """(the Trainer's training history, a note saying where from or why not)."""
  artifacts = inputs.get(MODEL_RUN_KEY) or []
  if not artifacts:
    return None, ('No training history is available: the Trainer\'s run '
                  'directory was not given to the evaluator.')
  record = history_lib.read_history(artifacts[0].uri)
  if record is None:
    return None, (f'No training history is available: '
                  f'{history_lib.HISTORY_FILE} is not in {artifacts[0].uri} '
                  '(a model trained before the Trainer wrote it).')
  return record, (f'{len(record["epoch"])} epochs, from '
                  f'{os.path.join(artifacts[0].uri, history_lib.HISTORY_FILE)}'
                  '. Validation as the Trainer ran it.')


def _label_counts(labels: Optional[np.ndarray]) -> Optional[Dict[str, int]]:
  if labels is None:
    return None
  values, counts = np.unique(labels, return_counts=True)
  return {str(int(v)): int(c) for v, c in zip(values, counts)}


def _data_summary(inputs: Dict[str, List[types.Artifact]],
                  labels: Optional[np.ndarray],
                  eval_images: int) -> report.DataSummary:
  """The report's Data section."""
  gate, gate_note = _read_gate(inputs)
  if gate is not None and gate.get('splits'):
    counts = {split: info.get('num_examples')
              for split, info in sorted(gate['splits'].items(),
                                        key=lambda item: item[0] != 'train')}
    source = ('Images per split: the statistics the data gate checked; the '
              f'evaluator measured {eval_images} eval images.')
  else:
    counts = {EVAL_SPLIT: eval_images}
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


class Executor(base_executor.BaseExecutor):
  """Measures the candidate and the served model, draws, reports, blesses."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
    model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
    evaluation = artifact_utils.get_single_instance(output_dict[EVALUATION_KEY])
    blessing_artifact = artifact_utils.get_single_instance(
        output_dict[BLESSING_KEY])
    threshold = float(exec_properties[THRESHOLD_KEY])
    tolerance = float(exec_properties[TOLERANCE_KEY])
    iwae_samples = int(exec_properties[IWAE_SAMPLES_KEY])
    seed = int(exec_properties.get(SEED_KEY) or 0)
    serving_dir = exec_properties[SERVING_DIR_KEY]
    allow_signature_change = bool(exec_properties.get(
        ALLOW_SIGNATURE_CHANGE_KEY))

    dataset = _eval_dataset(examples, iwae_samples)
    candidate_model = metrics_lib.load_trainer_model(model.uri)
    candidate = metrics_lib.evaluate(candidate_model, dataset, iwae_samples,
                                     seed)
    logger.info('Candidate: %s', candidate.metrics)
    served, served_model, baseline_error, baseline_dir = _evaluate_served(
        serving_dir, dataset, iwae_samples, seed)
    baseline = served.metrics if served else None
    signatures = None
    if served_model is not None:
      logger.info('Served model %s: %s', baseline_dir, baseline)
      signatures = (served_model.signature(), candidate_model.signature())
    decision = blessing.decide(candidate.metrics, threshold, tolerance,
                               baseline, baseline_error, signatures,
                               allow_signature_change)
    logger.info('%s: %s', 'BLESSED' if decision.blessed else 'NOT BLESSED',
                '; '.join(decision.reasons))

    out = evaluation.uri
    tf.io.gfile.makedirs(out)
    started = time.monotonic()
    manifold_png = plots.render_manifold(
        lambda z: candidate_model.decode(tf.constant(z)).numpy(),
        candidate_model.latent_dim)
    served_manifold_png = None
    if served_model is not None:
      served_manifold_png = plots.render_manifold(
          lambda z: served_model.decode(tf.constant(z)).numpy(),
          served_model.latent_dim)
    clusters_png = plots.render_clusters(candidate.z_mean, candidate.labels)
    # Through gfile, so the pictures land in gs:// pipeline roots too.
    for name, png in ((MANIFOLD_FILE, manifold_png),
                      (CLUSTERS_FILE, clusters_png)):
      with tf.io.gfile.GFile(os.path.join(out, name), 'wb') as f:
        f.write(png)

    per_digit = _per_digit(candidate, served)
    reconstructions_png, samples_png = _reconstructions_and_samples(
        candidate, candidate_model, dataset, seed)

    history, history_note = _read_history(input_dict)
    history_png = None
    if history is not None:
      history_png = plots.render_training_curves(
          history['epoch'], history['metrics'], history_lib.CURVES)
    data_summary = _data_summary(input_dict, candidate.labels,
                                    int(candidate.metrics['num_images']))
    logger.info('Report figures drawn in %.1f s', time.monotonic() - started)

    summary = dict(candidate.metrics)
    summary.update(
        blessed=decision.blessed, reasons=decision.reasons,
        bless_threshold=threshold, bless_tolerance=tolerance,
        model_uri=model.uri, served_model_dir=baseline_dir,
        served_model=baseline, served_model_error=baseline_error,
        per_label=report.metrics_json_per_label(per_digit))
    with tf.io.gfile.GFile(os.path.join(out, METRICS_FILE), 'w') as f:
      json.dump(summary, f, indent=2, sort_keys=True)
    for key in blessing.CHECKED_METRICS:
      evaluation.set_float_custom_property(key, candidate.metrics[key])

    served_name = 'served model'
    if baseline_dir is None:
      note = f'No model is served from {serving_dir} yet.'
    else:
      served_name = f'version {os.path.basename(baseline_dir.rstrip("/"))}'
      note = f'Served model: {baseline_dir}, measured on the same images.'
    page = report.render(
        candidate=candidate.metrics, baseline=baseline, baseline_note=note,
        blessed=decision.blessed, reasons=decision.reasons,
        model_uri=model.uri, manifold_png=manifold_png,
        clusters_png=clusters_png,
        details={'eval images': candidate.metrics['num_images'],
                 'IWAE samples k': iwae_samples,
                 'latent dimensions': candidate_model.latent_dim,
                 'threshold (nats)': threshold,
                 'tolerance (nats)': tolerance},
        served_name=served_name, served_manifold_png=served_manifold_png,
        per_digit=per_digit, reconstructions_png=reconstructions_png,
        samples_png=samples_png,
        samples_note=(f'{SAMPLES_GRID ** 2} draws of z ~ N(0, I) (seed '
                      f'{seed}), decoded by the candidate\'s serving decoder '
                      'in one call: what a client sending random z gets.'),
        history_png=history_png, history_note=history_note,
        data=data_summary)
    with tf.io.gfile.GFile(os.path.join(out, REPORT_FILE), 'w') as f:
      f.write(page)
    _write_blessing(blessing_artifact, model, decision, baseline_dir)
