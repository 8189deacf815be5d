"""The README's figures: its default run, its quick run and its test suite.

Runs, one at a time, from the repository root (a fresh clone, after
`./bootstrap.sh`, is what the README describes):

1. `local_runner.py` (all 70,000 images, 30 epochs) into a fresh output dir;
2. `local_runner.py --epochs 1 --max-examples 2000` into another;
3. `python -m pytest` (unless `--skip-tests`),

and records each command's wall time, the runs' `run_summary.json` and the
evaluator's `metrics.json`, and pytest's closing line, in
benchmarks/results/readme_runs_<date>.json. The README's table of what to
expect quotes this file. Not a test: about 25 minutes on 2 cores.

  .venv/bin/python -m benchmarks.readme_runs
"""

import argparse
import datetime
import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import recording

logger = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNS = (
    ('default', []),
    ('quick', ['--epochs', '1', '--max-examples', '2000']),
)


def _timed(command: List[str], log_path: pathlib.Path) -> Dict[str, Any]:
  """Runs `command` from the repository root; exit code and wall seconds."""
  logger.info('Running %s (log: %s)', ' '.join(command), log_path)
  start = time.perf_counter()
  with open(log_path, 'w') as log:
    code = subprocess.run(command, cwd=REPO_ROOT, stdout=log,
                          stderr=subprocess.STDOUT, check=False).returncode
  seconds = time.perf_counter() - start
  logger.info('Exit %d after %.1f s', code, seconds)
  return {'exit_code': code, 'wall_seconds': round(seconds, 1)}


def run_pipeline(name: str, flags: Sequence[str],
                 work_dir: pathlib.Path) -> Dict[str, Any]:
  """One local_runner.py run in a fresh output dir, and what it wrote."""
  output_dir = work_dir / name
  command = [sys.executable, 'local_runner.py', '--output-dir',
             str(output_dir), *flags]
  result = {'command': ' '.join(['.venv/bin/python', 'local_runner.py',
                                 *flags]),
            **_timed(command, work_dir / f'{name}.log')}
  summary_path = output_dir / 'run_summary.json'
  if summary_path.exists():
    summary = json.loads(summary_path.read_text())
    result['run_summary'] = summary
    report = (summary.get('plots') or {}).get('report')
    if report:
      metrics_path = pathlib.Path(report).parent / 'metrics.json'
      if metrics_path.exists():
        result['evaluator_metrics_json'] = json.loads(metrics_path.read_text())
  return result


def run_tests(work_dir: pathlib.Path) -> Dict[str, Any]:
  """The README's test command; its closing line and counts."""
  log_path = work_dir / 'pytest.log'
  result = {'command': '.venv/bin/python -m pytest',
            **_timed([sys.executable, '-m', 'pytest'], log_path)}
  log = log_path.read_text().splitlines()
  # pytest's --durations (pyproject's addopts): where the time goes.
  result['slowest'] = [line for line in log
                       if re.match(r'\d+\.\d+s (call|setup|teardown) ', line)]
  lines = [line for line in log if re.search(r'\d+ (passed|failed)', line)]
  if lines:
    result['summary_line'] = lines[-1].strip('= ')
    result['counts'] = {kind: int(n) for n, kind in re.findall(
        r'(\d+) (passed|failed|skipped|errors?)', lines[-1])}
  return result


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """The README's table of what to expect, from this result."""
  lines = [f'### `{result["run_name"]}`: the README\'s runs', ''
           ] + recording.header_lines(result) + [
      '', '| command | exit | wall time | result |', '| --- | --- | --- | --- |']
  for run in result['runs']:
    metrics = run.get('evaluator_metrics_json') or {}
    figure = (f"-ELBO {metrics['neg_elbo']:.2f} (reconstruction "
              f"{metrics['reconstruction']:.2f}, KL {metrics['kl']:.2f}), "
              f"IWAE {metrics['iwae_bound']:.2f}; blessed "
              f"{metrics.get('blessed')}" if metrics else '')
    lines.append(f"| `{run['command']}` | {run['exit_code']} | "
                 f"{run['wall_seconds'] / 60:.1f} min | {figure} |")
  tests = result.get('tests')
  if tests:
    lines.append(f"| `{tests['command']}` | {tests['exit_code']} | "
                 f"{tests['wall_seconds'] / 60:.1f} min | "
                 f"{tests.get('summary_line', '')} |")
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--tag', default='',
                      help='suffix of the result file')
  which = parser.add_mutually_exclusive_group()
  which.add_argument('--skip-tests', action='store_true',
                     help='only the two pipeline runs')
  which.add_argument('--only-tests', action='store_true',
                     help='only the test suite')
  parser.add_argument('--results-dir', default=str(REPO_ROOT / 'benchmarks' /
                                                   'results'))
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  now = datetime.datetime.now(datetime.timezone.utc)
  result = {
      **recording.result_header('benchmarks.readme_runs',
                                f'readme_runs_{now:%Y-%m-%d}' +
                                (f'_{args.tag}' if args.tag else ''), now,
                                argv),
      'note': ("The README's runs, one at a time, each into a fresh output "
               'directory; wall time around each command.'),
      'load_average_1min_at_start': os.getloadavg()[0],
  }
  with tempfile.TemporaryDirectory(prefix='readme-runs-') as tmp:
    work_dir = pathlib.Path(tmp)
    result['runs'] = [] if args.only_tests else [
        run_pipeline(name, flags, work_dir) for name, flags in RUNS]
    if not args.skip_tests:
      result['tests'] = run_tests(work_dir)
  result['load_average_1min_at_end'] = os.getloadavg()[0]
  recording.write_results(result, args.results_dir)
  print('\n'.join(markdown_lines(result)))
  return result


if __name__ == '__main__':
  recording.configure_logging()
  main()
