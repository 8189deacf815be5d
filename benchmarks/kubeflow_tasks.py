"""Benchmark: every Kubeflow task on the full data set, as KFP would run it.

Compiles the pipeline with `kubeflow_runner.py compile` defaults and runs it
task by task with the launcher emulation (pipeline/kfp_launcher.py: each task's
compiled command in its own process) on all 70,000 images into a local
pipeline root. Per task: wall time and peak resident memory of its processes
(Beam's workers included), which the compiled memory limits must hold; and
the held-out -ELBO of the evaluator's metrics.json. Targets and figures:
BENCHMARKS.md, "Speed and cost targets". Run it alone on the machine.

  .venv/bin/python -m benchmarks.kubeflow_tasks [--epochs N]
"""

import argparse
import json
import logging
import pathlib
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import kfp_package
from benchmarks import recording
from pipeline import kfp_launcher

logger = logging.getLogger(__name__)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  parser = recording.parser(__doc__)
  parser.add_argument('--epochs', type=int, default=None,
                      help='training epochs (default: the compile default)')
  return parser.parse_args(argv)


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run as markdown, as printed at its end."""
  lines = [
      f'### `{result["run_name"]}`: every Kubeflow task, '
      f'{result["epochs"]} epochs, all 70,000 images', '',
      *recording.header_lines(result),
      f'- Beam: `{" ".join(result["beam_args"])}`.', '',
      '| task | wall time (s) | peak memory (GB) | compiled request / limit |',
      '| --- | --- | --- | --- |',
  ]
  for task, stats in result['tasks'].items():
    compiled = result['compiled_resources'].get(task) or {}
    request = (f'{compiled["cpuRequest"]:g} CPU, '
               f'{compiled["memoryRequest"]:g} / '
               f'{compiled.get("memoryLimit", compiled["memoryRequest"]):g} GB'
               if compiled else '-')
    lines.append(f'| {task} | {stats["seconds"]} | '
                 f'{stats["peak_memory_gb"]} | {request} |')
  lines += [
      '',
      f'Total {result["total_seconds"]} s; held-out -ELBO '
      f'{result["neg_elbo"]:.2f} nats, IWAE bound {result["iwae_bound"]:.2f}; '
      f'blessed: {"yes" if result["blessed"] else "no"}; pushed: '
      f'{", ".join(result["pushed_versions"]) or "nothing"}.',
  ]
  return lines


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  header = recording.result_header('benchmarks.kubeflow_tasks', args.tag,
                                   argv)
  flags = ['--epochs', str(args.epochs)] if args.epochs else []
  with tempfile.TemporaryDirectory(prefix='kubeflow-tasks-') as tmp:
    tmp = pathlib.Path(tmp)
    package = kfp_package.compile_package(
        str(tmp / 'pipeline.yaml'), serving_root=str(tmp / 'serving'),
        pipeline_root=str(tmp / 'root'), flags=flags)
    run = kfp_launcher.Run(
        package, pipeline_root=str(tmp / 'root'),
        runtime_parameters={'data_root': f'{recording.MNIST_DIR}/'},
        workdir=tmp / 'pods', timeout=3 * 3600)
    for task in kfp_launcher.topological_order(
        run.spec['root']['dag']['tasks']):
      run.run_task(task)
      logger.info('%s: %s', task, run.stats[task])
    metrics = json.loads(pathlib.Path(
        run.output_uri('VaeEvaluator', 'evaluation'),
        'metrics.json').read_text())
    pushed = [p.name for p in (tmp / 'serving').iterdir() if p.name.isdigit()]
  resources = {task: run.spec['deploymentSpec']['executors'][
      f'{task}_executor']['container'].get('resources', {})
               for task in run.stats}
  result = {
      **header,
      'epochs': run.spec['root']['inputDefinitions']['parameters']['epochs'][
          'defaultValue'],
      'beam_args': [a for a in run.spec['deploymentSpec']['executors'][
          'StatisticsGen_executor']['container']['args']
                    if a.startswith('--direct')],
      'tasks': run.stats, 'compiled_resources': resources,
      'total_seconds': round(sum(s['seconds'] for s in run.stats.values()), 1),
      **{key: metrics[key] for key in ('neg_elbo', 'iwae_bound', 'blessed')},
      'pushed_versions': pushed,
  }
  return recording.report(result, args.results_dir, markdown_lines(result))


if __name__ == '__main__':
  recording.configure_logging()
  main()
