"""Benchmark: what a scheduled run costs when there is nothing new.

Locally: a first `local_runner.py` run into a fresh output directory trains
and pushes a version. Then the same command again, --nights times: the
first of them is the night right after a push, the others unchanged
nights. Each is timed as a whole process and must end with "nothing new"
(exit 0, layouts/lineage.py). Where the time goes: the same night, --nights
times more, in an interpreter that first times its own import of TensorFlow,
then of the rest of what a night imports (`pipeline.local_run`, TFX with it),
and then runs `local_runner.py` as the night does; the rest of its time, less
a bare interpreter's start, is the served version's check, the window's
digests and the summary.

On Kubeflow (the launcher emulation, pipeline/kfp_launcher.py): the package
compiled by `kubeflow_runner.py compile` runs twice on the same drop; the
first run pushes, the second, with every task run (KFP has no cache), ends
with "nothing new". Its wall time and each task's are recorded.

  .venv/bin/python -m benchmarks.quiet_nights
"""

import argparse
import logging
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import kfp_package
from benchmarks import recording
from components.example_gen import idx
from layouts import contracts
from pipeline import kfp_launcher

logger = logging.getLogger(__name__)

TARGET_AFTER_PUSH_SECONDS = 20.0
TARGET_UNCHANGED_SECONDS = 10.0
PROBE = ('import runpy, sys, time; start = time.monotonic(); '
         'import tensorflow; loaded = time.monotonic(); '
         'from pipeline import local_run; '
         'print("probe", loaded - start, time.monotonic() - loaded, '
         'flush=True); sys.argv = sys.argv[1:]; '
         'runpy.run_path(sys.argv[0], run_name="__main__")')


def _timed(command: Sequence[str]) -> Dict[str, Any]:
  start = time.monotonic()
  done = subprocess.run(list(command), cwd=recording.REPO_ROOT,
                        capture_output=True, text=True, check=False)
  return {'seconds': round(time.monotonic() - start, 2),
          'returncode': done.returncode, 'stdout': done.stdout,
          'stderr': done.stderr}


def write_drop(directory: pathlib.Path, train: int, test: int) -> str:
  """The first `train` and `test` MNIST images as a drop of IDX files."""
  for prefix, count in (('train', train), ('t10k', test)):
    idx.write_split(str(directory), prefix,
                    *recording.read_mnist(prefix, 0, count))
  return str(directory)


def local_nights(work: pathlib.Path, first_flags: Sequence[str],
                 nights: int) -> Dict[str, Any]:
  """The first run, then `nights` runs of the same command, timed."""
  command = [sys.executable, 'local_runner.py', '--output-dir',
             str(work / 'out'), *first_flags]
  logger.info('First run: %s', ' '.join(command[1:]))
  first = _timed(command)
  if first['returncode'] != 0:
    raise RuntimeError(f'the first run failed:\n{first["stderr"][-3000:]}')
  runs = []
  for night in range(nights):
    run = _timed(command)
    ended = 'nothing new' in run['stdout']
    if run['returncode'] != 0 or not ended:
      raise RuntimeError(f'night {night + 1} did not end with nothing new:\n'
                         f'{run["stderr"][-3000:]}')
    logger.info('Night %d: %.1f s', night + 1, run['seconds'])
    runs.append(run['seconds'])
  probes = [_timed([sys.executable, '-c', PROBE, *command[1:]])
            for _ in range(nights)]
  bare = statistics.median(_timed([sys.executable, '-c', 'pass'])['seconds']
                           for _ in range(3))
  split = [next(line.split()[1:] for line in p['stdout'].splitlines()
                if line.startswith('probe ')) for p in probes]
  tensorflow, others = (statistics.median(float(s[i]) for s in split)
                        for i in (0, 1))
  probe = statistics.median(p['seconds'] for p in probes)
  unchanged = runs[1:] or runs
  return {
      'command': ' '.join(['python'] + command[1:]),
      'first_run_seconds': first['seconds'],
      'night_after_push_seconds': runs[0],
      'unchanged_night_seconds': unchanged,
      'unchanged_night_median_seconds': statistics.median(unchanged),
      'probe_night_seconds': [p['seconds'] for p in probes],
      'breakdown_median_seconds': {
          'interpreter_start': round(bare, 2),
          'import_tensorflow': round(tensorflow, 2),
          'import_the_rest': round(others, 2),
          'check_and_summary': round(probe - bare - tensorflow - others, 2)},
      'targets': {'after_push_seconds': TARGET_AFTER_PUSH_SECONDS,
                  'unchanged_seconds': TARGET_UNCHANGED_SECONDS},
      'met': (runs[0] <= TARGET_AFTER_PUSH_SECONDS and
              statistics.median(unchanged) <= TARGET_UNCHANGED_SECONDS),
  }


def kubeflow_nights(work: pathlib.Path, drop: str) -> Dict[str, Any]:
  """The emulated run that pushes, then the one with nothing new."""
  serving = str(work / 'kfp-serving')
  package = kfp_package.compile_package(
      str(work / 'pipeline.yaml'), serving_root=serving,
      pipeline_root=str(work / 'kfp-root'),
      # One epoch on a small drop: bless it, so that the first run pushes.
      flags=['--bless-threshold', '1000'])
  result = {}
  for name in ('first', 'nothing_new'):
    start = time.monotonic()
    run = kfp_launcher.Run(
        package, pipeline_root=str(work / 'kfp-root'),
        runtime_parameters={'data_root': f'{drop}/', 'epochs': 1},
        workdir=work / f'pods-{name}').run()
    result[name] = {
        'wall_seconds': round(time.monotonic() - start, 1),
        'task_seconds': {task: stats['seconds']
                         for task, stats in run.stats.items()},
        'trainer_nothing_new': run.output_property(
            'Trainer', 'model', contracts.NOTHING_NEW_KEY),
        'pushed': run.output_property('Pusher', 'pushed_model', 'pushed'),
    }
    logger.info('Kubeflow run %s: %.0f s', name,
                result[name]['wall_seconds'])
  if not result['nothing_new']['trainer_nothing_new']:
    raise RuntimeError('the second emulated run trained')
  return result


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  local, kfp = result['local'], result['kubeflow']
  b = local['breakdown_median_seconds']
  return [
      f'### `{result["run_name"]}`: nights with nothing new', '',
      *recording.header_lines(result), '',
      f'- Local, night right after the push: '
      f'{local["night_after_push_seconds"]:.1f} s (target '
      f'{TARGET_AFTER_PUSH_SECONDS:.0f} s); unchanged night: median '
      f'{local["unchanged_night_median_seconds"]:.1f} s (target '
      f'{TARGET_UNCHANGED_SECONDS:.0f} s); the same night timed from '
      f'within: interpreter start {b["interpreter_start"]:.2f} s, importing '
      'TensorFlow '
      f'{b["import_tensorflow"]:.1f} s and the rest '
      f'{b["import_the_rest"]:.1f} s, check and summary '
      f'{b["check_and_summary"]:.1f} s.',
      f'- Kubeflow (launcher emulation), the run with nothing new: '
      f'{kfp["nothing_new"]["wall_seconds"]:.0f} s against '
      f'{kfp["first"]["wall_seconds"]:.0f} s for the run that trained and '
      'pushed; per task: ' + ', '.join(
          f'{task} {s:.0f} s'
          for task, s in kfp['nothing_new']['task_seconds'].items()) + '.',
  ]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = recording.parser(__doc__)
  parser.add_argument('--train', type=int, default=2000,
                      help='train images of the drop (the first run trains '
                      'one epoch on them)')
  parser.add_argument('--test', type=int, default=500)
  parser.add_argument('--nights', type=int, default=4)
  parser.add_argument('--work-dir', type=pathlib.Path)
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  header = recording.result_header('benchmarks.quiet_nights', args.tag, argv)
  with tempfile.TemporaryDirectory(prefix='quiet-nights-') as tmp:
    work = args.work_dir or pathlib.Path(tmp)
    drop = write_drop(work / 'drop', args.train, args.test)
    local = local_nights(work, ['--data-dir', drop, '--epochs', '1',
                                '--bless-threshold', '1000'], args.nights)
    kubeflow = kubeflow_nights(work, drop)
  result = {
      **header,
      'drop': {'train': args.train, 'test': args.test},
      'local': local, 'kubeflow': kubeflow,
  }
  return recording.report(result, args.results_dir, markdown_lines(result))


if __name__ == '__main__':
  recording.configure_logging()
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  main()
