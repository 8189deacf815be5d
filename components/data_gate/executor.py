"""DataGate executor: schema, drift (against the served model's data and the
anchor) and split sanity checks of every split; fails the component (and so
the run, before the Trainer) on a blocking anomaly, and records its verdict
on the newest span in the serving root (`layouts.spans`).

Outputs: `anomalies` (TFDV's Anomalies per split, `SchemaDiff.pb` as
ExampleValidator writes them, and the gate's report `gate.json`) and
`gated_statistics` (StatisticsGen's, each split with its mean image added: what
the Pusher records as the next drift reference).
"""

import dataclasses
import json
import logging
import os
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import writer_utils

from components import config as config_lib
from components.data_gate import gate
from components.data_gate import images as images_lib
from layouts import anchor as anchor_layout
from layouts import contracts
from layouts import serving as serving_layout
from layouts import serving_lock
from layouts import spans as spans_layout
from models import data

logger = logging.getLogger(__name__)

EXAMPLES_KEY = 'examples'
STATISTICS_KEY = 'statistics'
SCHEMA_KEY = 'schema'
ANOMALIES_KEY = 'anomalies'
OUTPUT_STATISTICS_KEY = 'gated_statistics'
SERVING_DIR_KEY = 'serving_dir'
# config_lib.GateConfig as JSON: thresholds, anchor thresholds, sanity limits,
# accept_drift.
CONFIG_KEY = 'gate_config'
# The data root ExampleGen read (a string, or a Kubeflow runtime parameter)
# and each split's file pattern under it: named in messages.
INPUT_BASE_KEY = 'input_base'
SPLIT_PATTERNS_KEY = 'split_patterns'

# As TFX's ExampleValidator names its per-split output.
ANOMALIES_FILE = 'SchemaDiff.pb'
SPAN_PLACEHOLDER = '{SPAN}'
PASSED_PROPERTY = 'gate_passed'
TRAIN_SPLIT = 'train'
EVAL_SPLIT = 'eval'
# Statuses of the references in gate.json.
NO_MODEL_SERVED = 'no model served'
MISSING = 'missing'
CHECKED = 'checked'
NOT_SET = 'not set'
# Images per batch when reading a split.
_BATCH = 4096


def find_references(serving_dir: str, config: config_lib.GateConfig
                    ) -> Tuple[List[gate.Reference], Dict[str, Any],
                               Dict[str, Any]]:
  """The references in `serving_dir`: the served model's training
  statistics, then the anchor.

  Returns (references, served info {'status', 'version_dir'}, anchor info
  {'status', 'record'}); a status is CHECKED, NO_MODEL_SERVED or MISSING (a
  version pushed before the data gate recorded statistics) for the served
  reference, CHECKED or NOT_SET for the anchor.

  Raises:
    serving_layout.VersionCorruptError: the newest complete version does not
      match its record (its reference cannot be trusted).
    anchor_layout.AnchorCorruptError: the anchor's statistics do not match
      its record.
  """
  references = []
  version_dir = serving_layout.latest_version_dir(serving_dir)
  served = {'status': NO_MODEL_SERVED, 'version_dir': version_dir}
  if version_dir is not None:
    serving_layout.verify_version(version_dir)
    statistics = serving_layout.read_reference_statistics(version_dir)
    served['status'] = CHECKED if statistics is not None else MISSING
    if statistics is not None:
      references.append(gate.Reference(
          gate.SERVED, f'served version {os.path.basename(version_dir)}',
          statistics, config.thresholds))
  statistics, record = anchor_layout.read_anchor(serving_dir)
  anchor = {'status': NOT_SET if record is None else CHECKED,
            'record': ({k: v for k, v in record.items() if k != 'history'}
                       if record else None)}
  if statistics is not None:
    references.append(gate.Reference(
        gate.ANCHOR, 'anchor set by {} at {}'.format(
            record['set_by'], record['set_at']), statistics,
        config.anchor_thresholds))
  return references, served, anchor


def read_images(examples: types.Artifact, split: str) -> images_lib.SplitImages:
  """Count, mean image and content hashes of a split, in one read."""
  pattern = os.path.join(artifact_utils.get_split_uri([examples], split), '*')
  if not tf.io.gfile.glob(pattern):
    return images_lib.summarize_images([])
  dataset = data.make_dataset(pattern, _BATCH, shuffle=False, cache=False)
  return images_lib.summarize_images(batch.numpy() for batch in dataset)


def span_of(examples: types.Artifact) -> int:
  """The span of ExampleGen's output (a custom property in TFX 1.16)."""
  if examples.has_custom_property('span'):
    return int(examples.get_int_custom_property('span'))
  return 0


def window_of(examples: types.Artifact) -> List[spans_layout.SpanRead]:
  """The spans ExampleGen read (`layouts.spans`), newest last; empty for a
  source without spans (TFDS)."""
  if not examples.has_custom_property(spans_layout.WINDOW_PROPERTY):
    return []
  return spans_layout.decode_window(
      examples.get_string_custom_property(spans_layout.WINDOW_PROPERTY))


def _where(split: str, span: int, sources: Dict[str, str],
           window: List[spans_layout.SpanRead]) -> str:
  """Where a split came from, for messages: the newest span's folder and the
  split's file pattern, when ExampleGen recorded its window."""
  source = sources.get(split)
  if source is None:
    return f'span {span}, split {split}'
  if window:
    source = os.path.join(window[-1].folder, os.path.basename(source))
  elif SPAN_PLACEHOLDER in source:
    source = source.replace(SPAN_PLACEHOLDER, str(span))
  return f'span {span}, split {split} ({source})' if span else (
      f'split {split} ({source})')


def _reference_findings(served: Dict[str, Any]) -> List[gate.Finding]:
  if served['status'] != MISSING:
    return []
  return [gate.Finding(
      '(all)', '(reference)', gate.DRIFT,
      f'{served["version_dir"]} has no reference statistics '
      f'({serving_layout.REFERENCE_STATS_FILE}; it was pushed before the '
      'data gate existed), so drift cannot be measured; rerun with '
      '--accept-drift to make this drop the reference',
      reference=gate.SERVED)]


def _format_drift(drift: Dict[str, Dict[str, Dict[str, Any]]]) -> str:
  return '; '.join(
      f'{name}: ' + ', '.join(
          f'{m["measure"]} {m["value"]:.3g} (allowed {m["threshold"]:.3g})'
          for m in measures.values())
      for name, measures in drift.items()) or 'no drift check'


class Executor(base_executor.BaseExecutor):
  """Checks each split against the schema, both references and the split
  sanity limits; records its verdict on the newest span."""

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
    config = config_lib.from_json(config_lib.GateConfig,
                                  exec_properties[CONFIG_KEY])
    input_base = exec_properties.get(INPUT_BASE_KEY) or ''
    sources = {split: os.path.join(input_base, pattern)
               for split, pattern in json.loads(
                   exec_properties.get(SPLIT_PATTERNS_KEY) or '{}').items()}
    span = span_of(examples)
    window = window_of(examples)
    serving_dir = exec_properties[SERVING_DIR_KEY]

    references, served, anchor = find_references(serving_dir, config)
    names = {r.name: r.description for r in references}
    if served['status'] == NO_MODEL_SERVED:
      logger.info('Data gate: no model is served from %s: no drift check '
                  'against a served model', serving_dir)
    if anchor['status'] == NOT_SET:
      logger.info('Data gate: no drift anchor in %s yet (the first push '
                  'sets it)', serving_dir)
    findings = _reference_findings(served)

    splits: Dict[str, Any] = {}
    images: Dict[str, images_lib.SplitImages] = {}
    anomalies.split_names = statistics.split_names
    out_statistics.split_names = statistics.split_names
    out_statistics.span = span
    for split in artifact_utils.decode_split_names(statistics.split_names):
      split_stats = stats_artifact_utils.load_statistics(statistics,
                                                         split).proto()
      result = gate.check_schema(split, split_stats, schema)
      # The images parse into 28x28 only if the schema holds.
      if not result.findings:
        images[split] = read_images(examples, split)
        if images[split].count:  # An empty split's statistics have no image.
          split_stats = gate.with_mean_image(split_stats,
                                             images[split].mean_image)
        if references:
          result = gate.measure_drift(split, split_stats, schema, references)
      io_utils.write_bytes_file(
          os.path.join(artifact_utils.get_split_uri([out_statistics], split),
                       stats_artifact_utils.BINARY_PB_BASENAME),
          split_stats.SerializeToString())
      writer_utils.write_anomalies(
          os.path.join(anomalies.uri, f'Split-{split}', ANOMALIES_FILE),
          result.anomalies)
      where = _where(split, span, sources, window)
      splits[split] = {
          'where': where,
          'num_examples': split_stats.datasets[0].num_examples,
          'drift': result.drift,
      }
      logger.info('Data gate: %s: %s', where, _format_drift(result.drift))
      findings.extend(result.findings)

    if TRAIN_SPLIT in images and EVAL_SPLIT in images:
      trained_on = [images[TRAIN_SPLIT].hashes]
      if spans_layout.HISTORY_SPLIT in artifact_utils.decode_split_names(
          examples.split_names):
        trained_on.append(
            read_images(examples, spans_layout.HISTORY_SPLIT).hashes)
      sanity, measured = gate.sanity_findings(
          {s: images[s] for s in (TRAIN_SPLIT, EVAL_SPLIT)}, EVAL_SPLIT,
          np.concatenate(trained_on), config.limits)
      findings.extend(sanity)
      for split, values in measured.items():
        splits[split]['sanity'] = values
    for split in splits:
      splits[split]['findings'] = [dataclasses.asdict(f) for f in findings
                                   if f.split == split]

    stop = gate.blocking(findings, config.accept_drift)
    lines: Dict[str, List[str]] = {'blocking': [], 'accepted': []}
    for finding in findings:
      where = splits.get(finding.split, {}).get('where', f'span {span}')
      line = gate.describe(finding, where, names)
      lines['blocking' if finding in stop else 'accepted'].append(line)
    report = {
        'passed': not stop,
        'span': span,
        'window': [{'span': s.span, 'folder': s.folder} for s in window],
        'accept_drift': config.accept_drift,
        'config': dataclasses.asdict(config),
        'reference': served,
        'anchor': anchor,
        'splits': splits,
        **lines,
    }
    report_path = os.path.join(anomalies.uri, contracts.GATE_REPORT_FILE)
    with tf.io.gfile.GFile(report_path, 'w') as f:
      json.dump(report, f, indent=2, sort_keys=True)
    anomalies.set_int_custom_property(PASSED_PROPERTY, int(not stop))
    # For the Pusher: whether to move the anchor, and what to record.
    out_statistics.set_int_custom_property(anchor_layout.ACCEPT_DRIFT_PROPERTY,
                                           int(config.accept_drift))
    out_statistics.set_string_custom_property(
        spans_layout.WINDOW_PROPERTY, spans_layout.encode_window(window))
    if window and window[-1].span > 0:
      with serving_lock.serving_lock(serving_dir, 'data gate verdict'):
        spans_layout.record_verdict(serving_dir, window[-1], not stop,
                                    findings=lines['blocking'])
    for line in lines['accepted']:
      logger.warning('Data gate: accepted (--accept-drift): %s', line)
    if stop:
      raise gate.DataGateError(
          'the data gate stopped the run before training:\n  ' +
          '\n  '.join(lines['blocking']), report)
    logger.info('Data gate: passed (span %d; references: %s)', span,
                '; '.join(names.values()) or 'none yet')
