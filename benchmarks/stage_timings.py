"""Benchmark: seconds of each pipeline stage, from ML Metadata.

Reads the executions of a pipeline run from its ML Metadata store (each
execution's create and last-update times, as `pipeline/run_summary.py` does)
and reports every component's seconds, the run's wall time from the first
execution's creation to the last one's end, and the overhead outside the
Trainer: that wall time minus the Trainer's seconds (the other components
plus the orchestrator's gaps between them).

Optionally (`--run-pipeline`) it first runs the local pipeline itself on all
70,000 images with `--epochs 1` into a fresh temporary output directory
(`--no-cache`), timing the whole command too, so the stages outside the
Trainer are measured on the machine as it is now; the process's start-up
(imports, building the pipeline) is not in ML Metadata and is reported
separately.

Run from the repository root:

  .venv/bin/python -m benchmarks.stage_timings \\
      --metadata outputs/metadata.sqlite
  .venv/bin/python -m benchmarks.stage_timings \\
      --metadata outputs/metadata.sqlite --run-pipeline

Target: the pipeline spends at most 60 s outside the Trainer on all 70,000
images (BENCHMARKS.md, "Speed and cost targets"). `stage_timings()` is also
how benchmarks/data_gate.py reads its runs' component times.

Results go to benchmarks/results/stage_timings_<date>.json;
`python -m benchmarks.render` renders one as markdown (`markdown_lines`).
"""

import argparse
import datetime
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from ml_metadata.proto import metadata_store_pb2

from benchmarks import recording
from benchmarks import throughput
from pipeline import run_summary

logger = logging.getLogger(__name__)

REPO_ROOT = throughput.REPO_ROOT
TRAINER = 'Trainer'
TARGET_OVERHEAD_SECONDS = 60.0
_STATES = {
    metadata_store_pb2.Execution.COMPLETE: 'ran',
    metadata_store_pb2.Execution.CACHED: 'cached',
    metadata_store_pb2.Execution.FAILED: 'failed',
    metadata_store_pb2.Execution.RUNNING: 'running',
    metadata_store_pb2.Execution.CANCELED: 'canceled',
}


def stage_timings(metadata_path: str,
                  run_id: Optional[str] = None) -> Dict[str, Any]:
  """Per-component seconds of one run (the newest unless `run_id`).

  Returns:
    {'run_id', 'components': [{name, status, start_offset_s, seconds}] in
    execution order, 'wall_seconds', 'sum_seconds', 'gap_seconds',
    'trainer_seconds', 'outside_trainer_seconds'}.
  """
  store = run_summary.open_store(metadata_path)
  runs = store.get_contexts_by_type('pipeline_run')
  if not runs:
    raise ValueError(f'{metadata_path}: no pipeline run recorded')
  if run_id is None:
    run = max(runs, key=lambda c: c.id)
  else:
    matching = [c for c in runs if c.name == run_id]
    if not matching:
      raise ValueError(f'{metadata_path}: no run {run_id!r}; runs: '
                       f'{[c.name for c in runs]}')
    run = matching[0]
  node_type = store.get_context_type('node')
  executions = sorted(store.get_executions_by_context(run.id),
                      key=lambda e: (e.create_time_since_epoch, e.id))
  if not executions:
    raise ValueError(f'{metadata_path}: run {run.name} has no execution')
  first = executions[0].create_time_since_epoch
  last = max(e.last_update_time_since_epoch for e in executions)
  components: List[Dict[str, Any]] = []
  for execution in executions:
    [node] = [c for c in store.get_contexts_by_execution(execution.id)
              if c.type_id == node_type.id]
    components.append({
        'name': node.name.split('.', 1)[1],
        'status': _STATES.get(execution.last_known_state, 'unknown'),
        'start_offset_s': (execution.create_time_since_epoch - first) / 1000.0,
        'seconds': (execution.last_update_time_since_epoch -
                    execution.create_time_since_epoch) / 1000.0,
    })
  wall = (last - first) / 1000.0
  total = sum(c['seconds'] for c in components)
  trainer = sum(c['seconds'] for c in components if c['name'] == TRAINER)
  return {
      'run_id': run.name,
      'components': components,
      'wall_seconds': wall,
      'sum_seconds': total,
      'gap_seconds': wall - total,
      'trainer_seconds': trainer,
      'outside_trainer_seconds': wall - trainer,
  }


def run_pipeline(output_dir: str, extra_args: Sequence[str]) -> Dict[str, Any]:
  """Runs local_runner.py (all data, 1 epoch, no cache); returns its timings."""
  command = [sys.executable, str(REPO_ROOT / 'local_runner.py'),
             '--output-dir', output_dir, '--epochs', '1', '--no-cache',
             *extra_args]
  logger.info('Running %s', ' '.join(command))
  start = time.perf_counter()
  completed = subprocess.run(command, cwd=REPO_ROOT, check=False,
                             capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if completed.returncode != 0:
    logger.error('%s', completed.stderr[-4000:])
    raise RuntimeError(f'local_runner.py failed with code '
                       f'{completed.returncode}')
  logger.info('%s', completed.stdout.strip())
  return {
      'command': ' '.join(['.venv/bin/python', 'local_runner.py',
                           '--output-dir', '<tmp>', '--epochs', '1',
                           '--no-cache', *extra_args]),
      'process_seconds': seconds,
  }


def summarize_measured(measured: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """Median, min and max of each figure over the pipeline runs made now."""
  if not measured:
    return {}
  series: Dict[str, List[float]] = {}
  for m in measured:
    timings = m['timings']
    for c in timings['components']:
      series.setdefault(c['name'], []).append(c['seconds'])
    for key in ('gap_seconds', 'wall_seconds', 'outside_trainer_seconds'):
      series.setdefault(key, []).append(timings[key])
    series.setdefault('startup_seconds', []).append(m['startup_seconds'])
    series.setdefault('outside_trainer_with_startup_seconds', []).append(
        timings['outside_trainer_seconds'] + m['startup_seconds'])
  return {name: {'median': statistics.median(values), 'min': min(values),
                 'max': max(values), 'values': values}
          for name, values in series.items()}


_SUMMARY_LABELS = {
    'gap_seconds': 'Gaps between executions (orchestrator)',
    'wall_seconds': '**Run wall time (first start to last end)**',
    'outside_trainer_seconds': '**Outside the Trainer** (wall - Trainer)',
    'startup_seconds': 'Process start-up and end, outside ML Metadata',
    'outside_trainer_with_startup_seconds':
        '**Outside the Trainer, start-up included**',
}


def _summary_lines(summary: Dict[str, Any]) -> List[str]:
  runs = len(next(iter(summary.values()))['values'])
  lines = [f'#### Measured now: median and spread over {runs} pipeline runs',
           '', '| Stage | Median (s) | Min / max (s) |', '| --- | --- | --- |']
  for name, stats in summary.items():
    label = _SUMMARY_LABELS.get(name, name)
    target = ''
    if name.startswith('outside_trainer'):
      met = 'met' if stats['median'] <= TARGET_OVERHEAD_SECONDS else 'NOT met'
      target = f' (target <= {TARGET_OVERHEAD_SECONDS:.0f} s: {met})'
    lines.append(f'| {label} | {stats["median"]:.2f}{target} | '
                 f'{stats["min"]:.2f} / {stats["max"]:.2f} |')
  return lines + ['']


def _measurement_lines(label: str, measured: Dict[str, Any]) -> List[str]:
  timings = measured['timings']
  met = ('met' if timings['outside_trainer_seconds'] <= TARGET_OVERHEAD_SECONDS
         else 'NOT met')
  lines = [
      f'#### {label}',
      '',
      f'- Source: `{measured["metadata"]}`, run `{timings["run_id"]}`.',
  ]
  if measured.get('note'):
    lines.append(f'- {measured["note"]}')
  if measured.get('pipeline'):
    lines.append(f'- Pipeline command: `{measured["pipeline"]["command"]}`; '
                 f'whole process {measured["pipeline"]["process_seconds"]:.1f} '
                 f's, of which {measured["startup_seconds"]:.1f} s are outside '
                 'ML Metadata (start-up: imports, building the pipeline; and '
                 'the summary at the end).')
  lines += ['', '| Component | Status | Starts at (s) | Seconds |',
            '| --- | --- | --- | --- |']
  for c in timings['components']:
    lines.append(f'| {c["name"]} | {c["status"]} | {c["start_offset_s"]:.1f} |'
                 f' {c["seconds"]:.2f} |')
  lines += [
      f'| Gaps between executions (orchestrator) | | | '
      f'{timings["gap_seconds"]:.1f} |',
      f'| **Run wall time (first start to last end)** | | | '
      f'**{timings["wall_seconds"]:.1f}** |',
      f'| **Outside the Trainer** (wall - Trainer) | | | '
      f'**{timings["outside_trainer_seconds"]:.1f}** (target <= '
      f'{TARGET_OVERHEAD_SECONDS:.0f} s: {met}) |',
      '',
  ]
  return lines


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run as markdown (`python -m benchmarks.render <json>`)."""
  lines = [f'### `{result["run_name"]}`', '', *recording.header_lines(result),
           '']
  if result.get('measured_now_summary'):
    lines += _summary_lines(result['measured_now_summary'])
  for measured in result['measurements']:
    lines += _measurement_lines(measured['label'], measured)
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """The command-line flags."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--metadata', action='append', default=[],
                      help='ML Metadata SQLite file of a finished run '
                      '(repeatable); its newest run is read')
  parser.add_argument('--note', action='append', default=[],
                      help='a remark printed with the matching --metadata '
                      '(e.g. how busy the machine was)')
  parser.add_argument('--run-pipeline', action='store_true',
                      help='also run local_runner.py --epochs 1 on all data '
                      'in a temporary directory and time it')
  parser.add_argument('--pipeline-output-dir', default='',
                      help='output dir for --run-pipeline (default: a new '
                      'temporary directory); run i goes to run-i/ in it')
  parser.add_argument('--pipeline-runs', type=int, default=3,
                      help='how many times --run-pipeline runs the pipeline '
                      '(one after the other), for medians and spread')
  parser.add_argument('--tag', default='')
  parser.add_argument('--results-dir',
                      default=str(REPO_ROOT / 'benchmarks' / 'results'))
  args = parser.parse_args(argv)
  if not args.metadata and not args.run_pipeline:
    parser.error('give --metadata and/or --run-pipeline')
  if len(args.note) > len(args.metadata):
    parser.error('more --note than --metadata')
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Reads (optionally runs) the pipeline; records and returns the result."""
  args = parse_args(argv)
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = f'stage_timings_{now:%Y-%m-%d}' + (f'_{args.tag}'
                                                if args.tag else '')
  measurements: List[Dict[str, Any]] = []
  notes = args.note + [''] * (len(args.metadata) - len(args.note))
  for path, note in zip(args.metadata, notes):
    measurements.append({
        'label': f'Recorded run: {path}',
        'metadata': path,
        'note': note,
        'timings': stage_timings(path),
    })
  if args.run_pipeline:
    root = args.pipeline_output_dir or tempfile.mkdtemp(
        prefix='stage_timings_')
    for index in range(1, args.pipeline_runs + 1):
      output_dir = os.path.join(root, f'run-{index}')
      pipeline = run_pipeline(output_dir, [])
      metadata_path = os.path.join(output_dir, 'metadata.sqlite')
      timings = stage_timings(metadata_path)
      measurements.append({
          'label': f'Measured now ({index}/{args.pipeline_runs}): all 70,000 '
                   'images, 1 training epoch, no cache',
          'metadata': metadata_path,
          'note': 'Run by this benchmark on the otherwise quiet machine.',
          'pipeline': pipeline,
          'startup_seconds': pipeline['process_seconds'] -
                             timings['wall_seconds'],
          'timings': timings,
      })
  result = {
      **recording.result_header('benchmarks.stage_timings', run_name, now, argv),
      'target_outside_trainer_seconds': TARGET_OVERHEAD_SECONDS,
      'measurements': measurements,
      'measured_now_summary': summarize_measured(
          [m for m in measurements if m.get('pipeline')]),
  }
  recording.write_results(result, args.results_dir)
  for measured in measurements:
    timings = measured['timings']
    print(measured['label'])
    for c in timings['components']:
      print(f'  {c["name"]:<17} {c["status"]:<7} {c["seconds"]:>8.1f} s')
    print(f'  wall {timings["wall_seconds"]:.1f} s, outside the Trainer '
          f'{timings["outside_trainer_seconds"]:.1f} s (target <= '
          f'{TARGET_OVERHEAD_SECONDS:.0f} s)')
  return result


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  main()
