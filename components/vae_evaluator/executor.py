"""VaeEvaluator executor: measure, decide, draw, write.

1. measure: the candidate and the newest version served from `serving_dir`,
   on the same eval images with the same draws of z (`measure` ->
   `metrics.Measured`; the served model: `measure_served` ->
   `metrics.Served`). A version this pipeline did not push is a verdict
   (not blessed); one that cannot be read (I/O errors through every retry)
   fails the run, before anything is written;
2. decide: blessed or not, by the rules of `blessing` (`decide` ->
   `blessing.Decision`);
3. draw: the report's pictures, from the measurements and the optional
   inputs: the Trainer's training history, the data gate's report
   (`drawing.draw` -> `report.Figures`);
4. write: the manifold, the clusters, metrics.json and report.html, then
   the blessing (`write`).

A model the Trainer did not train, because there was nothing new
(layouts/lineage.py), is not measured: metrics.json and the blessing say so
(`write_nothing_new`).
"""

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Union

import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import config as config_lib
from components.vae_evaluator import blessing
from components.vae_evaluator import errors
from components.vae_evaluator import drawing
from components.vae_evaluator import metrics as metrics_lib
from components.vae_evaluator import report
from layouts import contracts
from layouts import serving as serving_layout
from models import data

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
# components.config.EvaluationConfig, as JSON.
CONFIG_KEY = 'config'
SEED_KEY = 'seed'

# Latent samples per decoder call (images per batch = this // k): larger
# batches made the 2-core CPU slower, not faster.
SAMPLES_PER_CALL = 4096
# Reading the served model: attempts, and the first wait (doubled each time).
SERVED_READ_ATTEMPTS = 4
SERVED_READ_BACKOFF_SECONDS = 2.0


ServedModelError = errors.ServedModelError


def _eval_dataset(examples: types.Artifact,
                  iwae_samples: int) -> tf.data.Dataset:
  split_dir = artifact_utils.get_split_uri([examples], contracts.EVAL_SPLIT)
  return data.make_dataset(
      os.path.join(split_dir, '*'), max(1, SAMPLES_PER_CALL // iwae_samples),
      shuffle=False, with_labels=True)


def measure_served(serving_dir: str, dataset: tf.data.Dataset,
                   iwae_samples: int, seed: int) -> metrics_lib.Served:
  """The newest version served from `serving_dir`, measured on `dataset`.

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
    return metrics_lib.Served(serving_dir)
  logger.info('Measuring the served model %s on the same images', version_dir)
  for attempt in range(1, SERVED_READ_ATTEMPTS + 1):
    try:
      serving_layout.verify_version(version_dir)
      model = metrics_lib.load_served_model(version_dir)
      return metrics_lib.Served(
          serving_dir, version_dir, model=model,
          evaluation=metrics_lib.evaluate(model, dataset, iwae_samples, seed))
    except serving_layout.NotPushedByPipelineError as e:
      logger.error('Cannot measure the served model %s: %s', version_dir, e)
      return metrics_lib.Served(serving_dir, version_dir,
                                error=f'{version_dir}: {e}')
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


def measure(examples: types.Artifact, model_uri: str, serving_dir: str,
            iwae_samples: int, seed: int) -> metrics_lib.Measured:
  """Step 1: the candidate, then the served model, on the eval split."""
  dataset = _eval_dataset(examples, iwae_samples)
  model = metrics_lib.load_trainer_model(model_uri)
  candidate = metrics_lib.evaluate(model, dataset, iwae_samples, seed)
  logger.info('Candidate: %s', candidate.metrics)
  served = measure_served(serving_dir, dataset, iwae_samples, seed)
  if served.model is not None:
    logger.info('Served model %s: %s', served.version_dir, served.metrics)
  return metrics_lib.Measured(dataset, model, candidate, served)


def decide(measured: metrics_lib.Measured,
           settings: config_lib.EvaluationConfig) -> blessing.Decision:
  """Step 2: the blessing's rules on what was measured."""
  served = measured.served
  signatures = None
  if served.model is not None:
    signatures = (served.model.signature(), measured.model.signature())
  decision = blessing.decide(
      measured.candidate.metrics, settings.bless_threshold,
      settings.bless_tolerance, served.metrics, served.error, signatures,
      settings.allow_signature_change)
  logger.info('%s: %s', 'BLESSED' if decision.blessed else 'NOT BLESSED',
              '; '.join(decision.reasons))
  return decision


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


def _metrics_json(model_uri: str, settings: config_lib.EvaluationConfig,
                  measured: metrics_lib.Measured,
                  decision: blessing.Decision,
                  per_digit: Optional[report.PerDigit]) -> Dict[str, Any]:
  """metrics.json: the candidate's metrics, the decision, the served model's
  metrics (or why there are none) and the per-label figures."""
  summary = dict(measured.candidate.metrics)
  summary.update(
      blessed=decision.blessed, reasons=decision.reasons,
      bless_threshold=settings.bless_threshold,
      bless_tolerance=settings.bless_tolerance,
      model_uri=model_uri, served_model_dir=measured.served.version_dir,
      served_model=measured.served.metrics,
      served_model_error=measured.served.error,
      per_label=report.metrics_json_per_label(per_digit))
  return summary


def _report_summary(model_uri: str, settings: config_lib.EvaluationConfig,
                    measured: metrics_lib.Measured,
                    decision: blessing.Decision) -> report.Summary:
  """The report's words and numbers."""
  served = measured.served
  if served.version_dir is None:
    served_name = 'served model'
    note = f'No model is served from {served.serving_dir} yet.'
  else:
    served_name = f'version {os.path.basename(served.version_dir.rstrip("/"))}'
    note = f'Served model: {served.version_dir}, measured on the same images.'
  candidate = measured.candidate.metrics
  return report.Summary(
      blessed=decision.blessed, reasons=decision.reasons, model_uri=model_uri,
      candidate=candidate, baseline=served.metrics, baseline_note=note,
      details={'eval images': candidate['num_images'],
               'IWAE samples k': settings.iwae_samples,
               'latent dimensions': measured.model.latent_dim,
               'threshold (nats)': settings.bless_threshold,
               'tolerance (nats)': settings.bless_tolerance},
      served_name=served_name)


def _write_file(directory: str, name: str, content: Union[str, bytes]) -> None:
  """Through gfile, so the files land in gs:// pipeline roots too."""
  mode = 'wb' if isinstance(content, bytes) else 'w'
  with tf.io.gfile.GFile(os.path.join(directory, name), mode) as f:
    f.write(content)


def write(evaluation: types.Artifact, blessing_artifact: types.Artifact,
          model: types.Artifact, settings: config_lib.EvaluationConfig,
          measured: metrics_lib.Measured, decision: blessing.Decision,
          figures: report.Figures) -> None:
  """Step 4: the evaluation's files and properties, then the blessing."""
  out = evaluation.uri
  tf.io.gfile.makedirs(out)
  _write_file(out, contracts.MANIFOLD_FILE, figures.manifold_png)
  _write_file(out, contracts.CLUSTERS_FILE, figures.clusters_png)
  _write_file(out, contracts.METRICS_FILE, json.dumps(
      _metrics_json(model.uri, settings, measured, decision,
                    figures.per_digit), indent=2, sort_keys=True))
  for key in contracts.METRIC_KEYS:
    evaluation.set_float_custom_property(key, measured.candidate.metrics[key])
  _write_file(out, contracts.REPORT_FILE, report.render(
      _report_summary(model.uri, settings, measured, decision), figures))
  _write_blessing(blessing_artifact, model, decision,
                  measured.served.version_dir)


def write_nothing_new(evaluation: types.Artifact,
                      blessing_artifact: types.Artifact, model: types.Artifact,
                      reason: str) -> None:
  """What a run with nothing new writes instead of step 4: metrics.json with
  the reason and no metrics, and a blessing that is not one, both carrying
  `contracts.NOTHING_NEW_KEY`."""
  logger.info('Nothing measured: %s', reason)
  tf.io.gfile.makedirs(evaluation.uri)
  _write_file(evaluation.uri, contracts.METRICS_FILE, json.dumps(
      {'blessed': False, 'reasons': [reason],
       contracts.NOTHING_NEW_KEY: reason}, indent=2, sort_keys=True))
  _write_blessing(blessing_artifact, model,
                  blessing.Decision(blessed=False, reasons=[reason]), None)
  for artifact in (evaluation, blessing_artifact):
    artifact.set_string_custom_property(contracts.NOTHING_NEW_KEY, reason)


def _optional_input(inputs: Dict[str, List[types.Artifact]],
                    key: str) -> Optional[types.Artifact]:
  artifacts = inputs.get(key) or []
  return artifacts[0] if artifacts else None


def evaluation_config(
    exec_properties: Dict[str, Any]) -> config_lib.EvaluationConfig:
  """The blessing's settings the component was given."""
  return config_lib.from_json(config_lib.EvaluationConfig,
                              exec_properties[CONFIG_KEY])


class Executor(base_executor.BaseExecutor):
  """Measures the candidate and the served model, blesses, draws, writes."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Steps 1 to 4 of the module's docstring, in order.

    Raises:
      ServedModelError: the served model could not be read (nothing is
        written).
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
    model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
    evaluation = artifact_utils.get_single_instance(output_dict[EVALUATION_KEY])
    blessing_artifact = artifact_utils.get_single_instance(
        output_dict[BLESSING_KEY])
    settings = evaluation_config(exec_properties)
    seed = int(exec_properties.get(SEED_KEY) or 0)
    nothing_new = model.get_string_custom_property(contracts.NOTHING_NEW_KEY)
    if nothing_new:  # The Trainer trained nothing: nothing to measure.
      write_nothing_new(evaluation, blessing_artifact, model, nothing_new)
      return

    measured = measure(examples, model.uri, exec_properties[SERVING_DIR_KEY],
                       settings.iwae_samples, seed)
    decision = decide(measured, settings)
    figures = drawing.draw(measured, _optional_input(input_dict, MODEL_RUN_KEY),
                           _optional_input(input_dict, DATA_GATE_KEY), seed)
    write(evaluation, blessing_artifact, model, settings, measured, decision,
          figures)
