"""DataGate executor: schema and drift checks of every split; fails the
component (and so the run, before the Trainer) on a blocking anomaly.

Outputs: `anomalies` (TFDV's Anomalies per split, `SchemaDiff.pb` as
ExampleValidator writes them, and the gate's report `gate.json`) and
`gated_statistics` (StatisticsGen's, each split with its mean image added: what
the Pusher records as the next drift reference).
"""

import dataclasses
import json
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import writer_utils

from components.data_gate import gate
from layouts import serving as serving_layout
from models import data

logger = logging.getLogger(__name__)

EXAMPLES_KEY = 'examples'
STATISTICS_KEY = 'statistics'
SCHEMA_KEY = 'schema'
ANOMALIES_KEY = 'anomalies'
OUTPUT_STATISTICS_KEY = 'gated_statistics'
SERVING_DIR_KEY = 'serving_dir'
MAX_LABEL_LINF_KEY = 'max_label_linf'
MAX_PIXEL_JSD_KEY = 'max_pixel_jsd'
MAX_MEAN_IMAGE_LINF_KEY = 'max_mean_image_linf'
ACCEPT_DRIFT_KEY = 'accept_drift'
# The data root ExampleGen read (a string, or a Kubeflow runtime parameter)
# and each split's file pattern under it: named in messages.
INPUT_BASE_KEY = 'input_base'
SPLIT_PATTERNS_KEY = 'split_patterns'
CODE_FINGERPRINT_KEY = 'code_fingerprint'
# Only for the cache key (see pipeline.create_pipeline's served_version).
SERVED_VERSION_KEY = 'served_version'

REPORT_FILE = 'gate.json'
# As TFX's ExampleValidator names its per-split output.
ANOMALIES_FILE = 'SchemaDiff.pb'
SPAN_PLACEHOLDER = '{SPAN}'
PASSED_PROPERTY = 'gate_passed'
# Images per batch when summing the mean image.
_MEAN_BATCH = 4096


def find_reference(serving_dir: str) -> Tuple[
    Optional[statistics_pb2.DatasetFeatureStatisticsList], Dict[str, Any]]:
  """The served model's training statistics, and what was found.

  Returns (statistics or None, {'status', 'version_dir'}) where status is
  'checked' (statistics found), 'no model served' or 'missing' (a version
  pushed before the data gate recorded none).

  Raises:
    serving_layout.VersionCorruptError: the newest complete version does not
      match its record (its reference cannot be trusted).
  """
  version_dir = serving_layout.latest_version_dir(serving_dir)
  if version_dir is None:
    return None, {'status': 'no model served', 'version_dir': None}
  serving_layout.verify_version(version_dir)
  statistics = serving_layout.read_reference_statistics(version_dir)
  status = 'checked' if statistics is not None else 'missing'
  return statistics, {'status': status, 'version_dir': version_dir}


def mean_image(examples: types.Artifact, split: str) -> np.ndarray:
  """The mean of a split's images, per pixel position, on a 0..1 scale."""
  pattern = os.path.join(artifact_utils.get_split_uri([examples], split), '*')
  dataset = data.make_dataset(pattern, _MEAN_BATCH, shuffle=False,
                              cache=False)
  total, count = dataset.reduce(
      (tf.zeros([data.IMAGE_ROWS, data.IMAGE_COLS, 1]),
       tf.constant(0, tf.int64)),
      lambda state, images: (state[0] + tf.reduce_sum(images, axis=0),
                             state[1] + tf.shape(images, tf.int64)[0]))
  return (total / tf.cast(count, tf.float32)).numpy().ravel()


def span_of(examples: types.Artifact) -> int:
  """The span of ExampleGen's output (a custom property in TFX 1.16)."""
  if examples.has_custom_property('span'):
    return int(examples.get_int_custom_property('span'))
  return 0


def _where(split: str, span: int, sources: Dict[str, str]) -> str:
  source = sources.get(split)
  if source is None:
    return f'span {span}, split {split}'
  if SPAN_PLACEHOLDER in source:
    return f'span {span}, split {split} ({source.replace(SPAN_PLACEHOLDER, str(span))})'
  return f'split {split} ({source})'


class Executor(base_executor.BaseExecutor):
  """Checks each split against the curated schema and the served reference."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
    statistics = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
    schema_artifact = artifact_utils.get_single_instance(input_dict[SCHEMA_KEY])
    anomalies = artifact_utils.get_single_instance(output_dict[ANOMALIES_KEY])
    out_statistics = artifact_utils.get_single_instance(
        output_dict[OUTPUT_STATISTICS_KEY])
    schema = io_utils.SchemaReader().read(
        io_utils.get_only_uri_in_dir(schema_artifact.uri))
    thresholds = gate.Thresholds(
        max_label_linf=float(exec_properties[MAX_LABEL_LINF_KEY]),
        max_pixel_jsd=float(exec_properties[MAX_PIXEL_JSD_KEY]),
        max_mean_image_linf=float(exec_properties[MAX_MEAN_IMAGE_LINF_KEY]))
    accept_drift = bool(exec_properties.get(ACCEPT_DRIFT_KEY))
    input_base = exec_properties.get(INPUT_BASE_KEY) or ''
    sources = {split: os.path.join(input_base, pattern)
               for split, pattern in json.loads(
                   exec_properties.get(SPLIT_PATTERNS_KEY) or '{}').items()}
    span = span_of(examples)
    serving_dir = exec_properties[SERVING_DIR_KEY]

    reference, reference_info = find_reference(serving_dir)
    reference_name = (f'served version '
                      f'{os.path.basename(reference_info["version_dir"] or "")}')
    findings: List[gate.Finding] = []
    lines: Dict[str, List[str]] = {'blocking': [], 'accepted': []}
    if reference_info['status'] == 'no model served':
      logger.info('Data gate: no model is served from %s: schema check only, '
                  'no drift check', serving_dir)
    elif reference_info['status'] == 'missing':
      findings.append(gate.Finding(
          '(all)', '(reference)', gate.DRIFT,
          f'{reference_info["version_dir"]} has no reference statistics '
          f'({serving_layout.REFERENCE_STATS_FILE}; it was pushed before the '
          'data gate existed), so drift cannot be measured; rerun with '
          '--accept-drift to make this drop the reference'))

    splits: Dict[str, Any] = {}
    anomalies.split_names = statistics.split_names
    out_statistics.split_names = statistics.split_names
    out_statistics.span = span
    for split in artifact_utils.decode_split_names(statistics.split_names):
      split_stats = stats_artifact_utils.load_statistics(statistics,
                                                         split).proto()
      result = gate.check_split(split, split_stats, schema, reference,
                                thresholds)
      # The images parse into 28x28 only if the schema holds.
      if not any(f.kind == gate.SCHEMA for f in result.findings):
        split_stats = gate.with_mean_image(split_stats,
                                           mean_image(examples, split))
        gate.check_mean_image(result, split_stats, reference, thresholds)
      io_utils.write_bytes_file(
          os.path.join(artifact_utils.get_split_uri([out_statistics], split),
                       stats_artifact_utils.BINARY_PB_BASENAME),
          split_stats.SerializeToString())
      writer_utils.write_anomalies(
          os.path.join(anomalies.uri, f'Split-{split}', ANOMALIES_FILE),
          result.anomalies)
      where = _where(split, span, sources)
      splits[split] = {
          'where': where,
          'num_examples': split_stats.datasets[0].num_examples,
          'drift': result.drift,
          'findings': [dataclasses.asdict(f) for f in result.findings],
      }
      measured = ', '.join(
          f'{m["measure"]} {m["value"]:.3g} (allowed {m["threshold"]:.3g})'
          for m in result.drift.values()) or 'no drift check'
      logger.info('Data gate: %s: %d anomalies; %s', where,
                  len(result.findings), measured)
      findings.extend(result.findings)

    stop = gate.blocking(findings, accept_drift)
    for finding in findings:
      where = splits.get(finding.split, {}).get('where', f'span {span}')
      line = gate.describe(finding, where, reference_name)
      lines['blocking' if finding in stop else 'accepted'].append(line)
    report = {
        'passed': not stop,
        'span': span,
        'accept_drift': accept_drift,
        'thresholds': dataclasses.asdict(thresholds),
        'reference': reference_info,
        'splits': splits,
        **lines,
    }
    with tf.io.gfile.GFile(os.path.join(anomalies.uri, REPORT_FILE), 'w') as f:
      json.dump(report, f, indent=2, sort_keys=True)
    anomalies.set_int_custom_property(PASSED_PROPERTY, int(not stop))
    for line in lines['accepted']:
      logger.warning('Data gate: accepted (--accept-drift): %s', line)
    if stop:
      raise gate.DataGateError(
          'the data gate stopped the run before training:\n  ' +
          '\n  '.join(lines['blocking']), report)
    logger.info('Data gate: passed (span %d; drift reference: %s)', span,
                reference_name if reference is not None else
                reference_info['status'])
