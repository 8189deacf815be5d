"""The summary of a finished run, read back from ML Metadata.

Everything comes from the store the orchestrator wrote (executions of the
newest pipeline run, their states and times, their output artifacts) and the
files those artifacts point to, so the summary says what actually happened.
"""

import json
import logging
import os
from typing import Any, Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from layouts import contracts
from layouts import spans as spans_layout
from models import history as history_lib

logger = logging.getLogger(__name__)

SUMMARY_FILE = 'run_summary.json'
_STATUS = {
    metadata_store_pb2.Execution.COMPLETE: 'ran',
    metadata_store_pb2.Execution.CACHED: 'cached',
    metadata_store_pb2.Execution.FAILED: 'failed',
    metadata_store_pb2.Execution.RUNNING: 'running',
    metadata_store_pb2.Execution.CANCELED: 'canceled',
}
_Artifacts = Dict[str, List[metadata_store_pb2.Artifact]]


def open_store(metadata_path: str,
               readonly: bool = True) -> metadata_store.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY if readonly else
      metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
  return metadata_store.MetadataStore(config)


def _outputs(store: metadata_store.MetadataStore,
             execution_id: int) -> _Artifacts:
  """Output key -> artifacts of an execution."""
  events = [e for e in store.get_events_by_execution_ids([execution_id])
            if e.type == metadata_store_pb2.Event.OUTPUT]
  artifacts = {a.id: a for a in store.get_artifacts_by_id(
      [e.artifact_id for e in events])}
  outputs: _Artifacts = {}
  for event in events:
    key = event.path.steps[0].key if event.path.steps else ''
    outputs.setdefault(key, []).append(artifacts[event.artifact_id])
  return outputs


def _single(outputs: _Artifacts, key: str) -> Optional[metadata_store_pb2.Artifact]:
  found = outputs.get(key) or []
  return found[0] if found else None


def summarize(metadata_path: str) -> Dict[str, Any]:
  """The summary of the newest run recorded in the store."""
  store = open_store(metadata_path)
  runs = store.get_contexts_by_type('pipeline_run')
  if not runs:
    raise ValueError(f'{metadata_path}: no pipeline run recorded')
  run = max(runs, key=lambda c: c.id)
  node_type = store.get_context_type('node')
  components: Dict[str, Dict[str, Any]] = {}
  outputs: Dict[str, _Artifacts] = {}
  for execution in sorted(store.get_executions_by_context(run.id),
                          key=lambda e: e.id):
    [node] = [c for c in store.get_contexts_by_execution(execution.id)
              if c.type_id == node_type.id]
    name = node.name.split('.', 1)[1]
    seconds = (execution.last_update_time_since_epoch -
               execution.create_time_since_epoch) / 1000.0
    components[name] = {
        'status': _STATUS.get(execution.last_known_state, 'unknown'),
        'seconds': round(seconds, 1),
    }
    outputs[name] = _outputs(store, execution.id)

  summary: Dict[str, Any] = {
      'run_id': run.name,
      'metrics': None,
      'blessed': None,
      'pushed_model': None,
      'plots': None,
      'model_uri': None,
      'data_gate': None,
      'spans': None,
      'training': None,
      contracts.NOTHING_NEW_KEY: None,
      'components': components,
  }
  for name, produced in outputs.items():
    examples = (_single(produced, 'examples') if name in (
        contracts.IDX_EXAMPLE_GEN, contracts.TFDS_EXAMPLE_GEN) else None)
    if examples and spans_layout.WINDOW_PROPERTY in examples.custom_properties:
      # Which spans the run read, newest last (layouts.spans).
      summary['spans'] = [
          {'span': s.span, 'folder': s.folder, 'digest': s.digest}
          for s in spans_layout.decode_window(examples.custom_properties[
              spans_layout.WINDOW_PROPERTY].string_value)]
  anomalies = _single(outputs.get(contracts.DATA_GATE, {}), 'anomalies')
  if anomalies:
    with open(os.path.join(anomalies.uri, contracts.GATE_REPORT_FILE)) as f:
      summary['data_gate'] = json.load(f)
  model = _single(outputs.get(contracts.TRAINER, {}), 'model')
  if model and contracts.NOTHING_NEW_KEY in model.custom_properties:
    # The Trainer trained nothing (layouts/lineage.py).
    summary[contracts.NOTHING_NEW_KEY] = model.custom_properties[
        contracts.NOTHING_NEW_KEY].string_value
  elif model:
    summary['model_uri'] = model.uri
  model_run = _single(outputs.get(contracts.TRAINER, {}), 'model_run')
  stopping = model_run and history_lib.stopping_of(
      history_lib.read_history(model_run.uri))
  if stopping:
    summary['training'] = {**stopping.to_dict(),
                           'description': stopping.describe()}
  evaluation = _single(outputs.get(contracts.EVALUATOR, {}), 'evaluation')
  if evaluation and not summary.get(contracts.NOTHING_NEW_KEY):
    with open(os.path.join(evaluation.uri, contracts.METRICS_FILE)) as f:
      evaluated = json.load(f)
    summary['metrics'] = {k: evaluated[k] for k in contracts.METRIC_KEYS}
    summary['blessed'] = bool(evaluated['blessed'])
    summary['blessing_reasons'] = evaluated['reasons']
    summary['plots'] = {name: os.path.join(evaluation.uri, file)
                        for name, file in contracts.PLOT_FILES.items()}
  pushed = _single(outputs.get(contracts.PUSHER, {}), 'pushed_model')
  if pushed and pushed.custom_properties['pushed'].int_value == 1:
    summary['pushed_model'] = pushed.custom_properties[
        'pushed_destination'].string_value
  elif pushed and contracts.NOT_PUSHED_REASON_KEY in pushed.custom_properties:
    summary[contracts.NOT_PUSHED_REASON_KEY] = pushed.custom_properties[
        contracts.NOT_PUSHED_REASON_KEY].string_value
  return summary


def nothing_new_summary(reason: str, served_dir: str,
                        output_dir: str) -> Dict[str, Any]:
  """The summary of a run that ended before the pipeline, with nothing new
  to train (layouts/lineage.py): the keys of `summarize`'s, nothing run."""
  return {
      'run_id': None, 'metrics': None, 'blessed': None, 'pushed_model': None,
      'plots': None, 'model_uri': None, 'data_gate': None, 'spans': None,
      'training': None, contracts.NOTHING_NEW_KEY: reason,
      'served_version': served_dir, 'components': {},
      'output_dir': output_dir,
  }


def write_summary(summary: Dict[str, Any], output_dir: str) -> str:
  path = os.path.join(output_dir, SUMMARY_FILE)
  with open(path, 'w') as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  return path


def format_summary(summary: Dict[str, Any]) -> str:
  """A few lines for the terminal."""
  lines = ['Run summary:']
  for name, info in summary['components'].items():
    lines.append(f'  {name:<17} {info["status"]:<7} {info["seconds"]:>7.1f} s')
  if summary.get('spans'):
    lines.append('  spans read: ' + ', '.join(
        f'{s["span"]} ({s["folder"]})' for s in summary['spans']))
  gate = summary.get('data_gate')
  if gate:
    lines.append(f'  data gate: {_gate_line(gate)}')
    lines.extend(f'    {line}' for line in gate['blocking'] + gate['accepted'])
  if summary.get(contracts.NOTHING_NEW_KEY):
    lines.append(f'  {summary[contracts.NOTHING_NEW_KEY]}: nothing trained, '
                 'measured or pushed')
  if summary.get('training'):
    lines.append(f'  training: {summary["training"]["description"]}')
  if summary['metrics']:
    m = summary['metrics']
    lines.append(
        f'  held-out -ELBO {m["neg_elbo"]:.2f} nats (reconstruction '
        f'{m["reconstruction"]:.2f}, KL {m["kl"]:.2f}), IWAE bound '
        f'{m["iwae_bound"]:.2f}')
    pushed = summary['pushed_model'] or 'nothing'
    if summary.get(contracts.NOT_PUSHED_REASON_KEY):
      pushed += f' ({summary[contracts.NOT_PUSHED_REASON_KEY]})'
    lines.append(f'  blessed: {"yes" if summary["blessed"] else "no"}; pushed: '
                 f'{pushed}')
    lines.append(f'  report: {summary["plots"]["report"]}')
  return '\n'.join(lines)


def _gate_line(gate: Dict[str, Any]) -> str:
  """The gate's verdict and its largest measured drift, in one line."""
  verdict = 'passed' if gate['passed'] else 'STOPPED the run'
  if gate['accepted']:
    verdict += ' (drift accepted with --accept-drift)'
  worst: Dict[str, Dict[str, Dict[str, Any]]] = {}
  for split in gate['splits'].values():
    for reference, measures in split['drift'].items():
      largest = worst.setdefault(reference, {})
      for m in measures.values():
        if (m['measure'] not in largest or
            m['value'] > largest[m['measure']]['value']):
          largest[m['measure']] = m
  if not worst:
    return f'{verdict}; drift not measured: {gate["reference"]["status"]}'
  names = {'served': 'served version ' + os.path.basename(
      gate['reference']['version_dir'] or ''), 'anchor': 'the anchor'}
  return '; '.join([verdict] + [
      f'against {names.get(reference, reference)}: ' + ', '.join(
          f'{name} {m["value"]:.3g} (allowed {m["threshold"]:.3g})'
          for name, m in sorted(measures.items()))
      for reference, measures in sorted(worst.items(), reverse=True)])
