"""The Kubeflow image, built and run: every compiled task in a container.

Builds the repository's Dockerfile with podman on the local stand-in for its
default base (tests/container_image.py: Debian bookworm from debootstrap plus
this machine's Python 3.10, built once per machine), checks the image (its
size, `pip check`, where the project imports from), then executes the
compiled package with the launcher emulation of the tests
(tests/kfp_launcher.py), each task's compiled command run as
`podman run IMAGE ...` instead of in the venv:

* local: a local pipeline root, data folder and push destination, mounted
  into each task's container at their own paths, no network;
* s3: `s3://` on moto's S3 server on this machine's 127.0.0.1
  (tests/kubeflow_s3_test.py's S3Server), reached from the containers on the
  host's network, the endpoint and credentials only from the compiled spec;
* stock: TFX's own entrypoint in the same image, which fails at the first
  task (KFP >= 2.5's `executor-logs` output).

Each run trains 1 epoch on 300 + 100 images; the pushed version is decoded in
a fresh process, and in a fresh container of the image.

  .venv/bin/python -m benchmarks.kubeflow_image [--no-cache] \
      [--scenario local|s3|stock]

Needs root and `apt-get install podman runc debootstrap` (the Debian
packages), and takes about 10-15 minutes on 2 cores (a first build includes
pip's download of the lock). Results go to
benchmarks/results/kubeflow_image_<date>.json (build time, image size, per
task: result and wall time); docs/kubeflow.md quotes them. The same runs are
the test `python -m pytest -m image` (tests/kubeflow_image_test.py), which
the default test command leaves out. Run it alone on the machine.
"""

import argparse
import datetime
import json
import logging
import pathlib
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import recording
from benchmarks.s3_server import BUCKET
from benchmarks.s3_server import CREDENTIALS
from benchmarks.s3_server import S3Server
from conftest import write_mnist_subset
from tests import container_image
from tests import kfp_launcher
from tests.kubeflow_execution_test import _DECODE
from tests.kubeflow_execution_test import TFX_ENTRYPOINT
from tests.kubeflow_execution_test import decode_in_fresh_process

logger = logging.getLogger(__name__)

SCENARIOS = ('local', 's3', 'stock')
# As tests/kubeflow_execution_test.py compiles: a lenient blessing threshold
# and one process per Beam task; the runs set 1 epoch.
COMPILE_FLAGS = ('--epochs', '3', '--bless-threshold', '1000',
                 '--beam-arg=--direct_running_mode=in_memory')
COUNTS = {'train': 300, 't10k': 100}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--scenario', action='append', choices=SCENARIOS,
                      help='run only these (repeatable; default: all)')
  parser.add_argument('--no-cache', action='store_true',
                      help="build without podman's layer cache (a cold "
                      'build, as the recorded build time)')
  parser.add_argument('--results-dir', default='benchmarks/results')
  parser.add_argument('--tag', default='')
  return parser.parse_args(argv)


def compile_for_image(directory: pathlib.Path, serving_root: str,
                      pipeline_root: str, extra_flags: Sequence[str] = ()
                      ) -> str:
  """The package, with the schema path the image carries."""
  import kubeflow_runner  # pylint: disable=g-import-not-at-top
  return kfp_launcher.compile_package(
      str(directory / 'pipeline.yaml'), serving_root=serving_root,
      pipeline_root=pipeline_root, flags=[*COMPILE_FLAGS, *extra_flags],
      schema_file=kubeflow_runner.IMAGE_SCHEMA_FILE)


def _execute(run: kfp_launcher.Run) -> Dict[str, Any]:
  """Runs every task; per task its result and wall time, and the failure."""
  failure = None
  try:
    run.run()
  except kfp_launcher.TaskFailed as e:
    failure = {'task': e.task, 'message': str(e),
               'log_tail': e.log.strip().splitlines()[-12:]}
  tasks = {}
  for task in kfp_launcher.topological_order(run.spec['root']['dag']['tasks']):
    if task in run.completed:
      tasks[task] = {'result': 'succeeded',
                     'seconds': run.stats[task]['seconds']}
    elif failure and task == failure['task']:
      tasks[task] = {'result': 'failed', 'seconds': run.stats.get(
          task, {}).get('seconds')}
    else:
      tasks[task] = {'result': 'not run'}
  return {'tasks': tasks, 'failure': failure,
          'total_seconds': round(sum(t.get('seconds') or 0
                                     for t in tasks.values()), 1)}


def decode_in_image(image: str, version_dir: pathlib.Path) -> str:
  """Loads the pushed version in a fresh container of the image and decodes
  two points; the output shape."""
  completed = subprocess.run(
      [*container_image.podman_global_flags(), 'run', '--rm',
       '--network=none', *container_image.ulimit_flags(),
       '--volume', f'{version_dir}:/served:ro', image,
       'python', '-c', _DECODE, '/served'],
      capture_output=True, text=True, timeout=300, check=False)
  if completed.returncode:
    raise container_image.ImageError(
        f'decoding in the image failed:\n{completed.stderr[-3000:]}')
  return completed.stdout.strip().splitlines()[-1]


def run_local(image: str, tmp: pathlib.Path) -> Dict[str, Any]:
  root, serving = tmp / 'root', tmp / 'serving'
  root.mkdir()
  serving.mkdir()
  drop = write_mnist_subset(tmp / 'drop', COUNTS)
  package = compile_for_image(tmp, str(serving), str(root))
  run = kfp_launcher.Run(
      package, pipeline_root=str(root),
      runtime_parameters={'data_root': f'{drop}/', 'epochs': 1},
      workdir=tmp / 'pods',
      in_container=container_image.InImage(image, [root, drop, serving]))
  result = _execute(run)
  result['logs'] = run.logs
  versions = sorted(p for p in serving.iterdir() if p.name.isdigit())
  result['pushed_versions'] = [p.name for p in versions]
  if versions and not result['failure']:
    result['decoded_on_host'] = decode_in_fresh_process(str(versions[-1]))
    result['decoded_in_image'] = decode_in_image(image, versions[-1])
    metrics = json.loads(pathlib.Path(
        run.output_uri('VaeEvaluator', 'evaluation'),
        'metrics.json').read_text())
    result['neg_elbo'] = metrics['neg_elbo']
    result['blessed'] = metrics['blessed']
  return result


def run_s3(image: str, tmp: pathlib.Path) -> Dict[str, Any]:
  with S3Server() as s3:
    s3.client.create_bucket(Bucket=BUCKET)
    drop = write_mnist_subset(tmp / 'drop', COUNTS)
    for path in drop.iterdir():
      s3.client.upload_file(str(path), BUCKET, f'drops/1/{path.name}')
    package = compile_for_image(
        tmp, f's3://{BUCKET}/serving', f's3://{BUCKET}/root',
        extra_flags=['--s3-endpoint', s3.endpoint])
    run = kfp_launcher.Run(
        package, pipeline_root=f's3://{BUCKET}/root',
        runtime_parameters={'data_root': f's3://{BUCKET}/drops/1/',
                            'epochs': 1},
        workdir=tmp / 'pods',
        secrets={'mlpipeline-minio-artifact': CREDENTIALS},
        download=kfp_launcher.s3_downloader(s3.client),
        # The containers reach the S3 server on the host's 127.0.0.1.
        in_container=container_image.InImage(image, network='host'))
    result = _execute(run)
    result['logs'] = run.logs
    keys = s3.keys('serving/')
    versions = sorted({k.split('/')[1] for k in keys
                       if k.split('/')[1].isdigit()})
    result['pushed_versions'] = versions
    result['directory_markers'] = [k for k in s3.keys() if k.endswith('/')]
    if versions and not result['failure']:
      local = tmp / 'served'
      kfp_launcher.s3_downloader(s3.client)(
          f's3://{BUCKET}/serving/{versions[-1]}', str(local))
      result['decoded_on_host'] = decode_in_fresh_process(str(local))
      result['decoded_in_image'] = decode_in_image(image, local)
      metrics = json.loads(s3.client.get_object(
          Bucket=BUCKET, Key=run.output_uri('VaeEvaluator', 'evaluation')[
              len(f's3://{BUCKET}/'):] + '/metrics.json')['Body'].read())
      result['neg_elbo'] = metrics['neg_elbo']
      result['blessed'] = metrics['blessed']
  return result


def run_stock(image: str, tmp: pathlib.Path) -> Dict[str, Any]:
  """TFX's own entrypoint in the image, KFP >= 2.5 (executor-logs)."""
  root, serving = tmp / 'root', tmp / 'serving'
  root.mkdir()
  serving.mkdir()
  drop = write_mnist_subset(tmp / 'drop', {'train': 100, 't10k': 50})
  package = compile_for_image(tmp, str(serving), str(root))
  run = kfp_launcher.Run(
      package, pipeline_root=str(root),
      runtime_parameters={'data_root': f'{drop}/'}, workdir=tmp / 'pods',
      publish_logs=True, command_for=lambda command: list(TFX_ENTRYPOINT),
      in_container=container_image.InImage(image, [root, drop, serving]))
  result = _execute(run)
  result['logs'] = run.logs
  return result


RUNNERS = {'local': run_local, 's3': run_s3, 'stock': run_stock}


def build(work: pathlib.Path, no_cache: bool = False) -> Dict[str, Any]:
  """The stand-in base (once per machine) and the image; its checks."""
  base = container_image.ensure_base_image()
  built = container_image.build_image(base['tag'], log_path=work / 'build.log',
                                      no_cache=no_cache)
  return {'base': {**base, 'size': container_image.image_size(base['tag'])},
          'image': built, 'checks': container_image.image_checks(
              built['tag'])}


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run as markdown (`python -m benchmarks.render <json>`)."""
  built = result['build']
  base = built['base']
  base_built = (f'built in {base["seconds"]} s' if base['built']
                else 'built before this run')
  lines = [
      f'### `{result["run_name"]}`: the Kubeflow image, built and run', '',
      *recording.header_lines(result),
      f'- Base: `{base["tag"]}` (the stand-in for '
      f'`python:3.10-slim-bookworm`), {base["size"] / 1e6:.0f} MB, '
      f'{base_built}.',
      f'- Image: {built["image"]["size"] / 1e9:.2f} GB, built in '
      f'{built["image"]["seconds"]} s; `pip check`: '
      f'{built["checks"]["pip_check"]["output"]}', '',
      '| scenario | task | result | wall time (s) |',
      '| --- | --- | --- | --- |',
  ]
  for scenario, run in result['scenarios'].items():
    for task, stats in run['tasks'].items():
      seconds = stats.get('seconds')
      lines.append(f'| {scenario} | {task} | {stats["result"]} | '
                   f'{"-" if seconds is None else seconds} |')
  lines.append('')
  for scenario, run in result['scenarios'].items():
    if run['failure']:
      lines.append(f'- {scenario}: failed at {run["failure"]["task"]}: '
                   f'`{run["failure"]["log_tail"][-1]}`')
    else:
      lines.append(f'- {scenario}: pushed {", ".join(run["pushed_versions"])}'
                   f'; decoded {run.get("decoded_in_image")} in the image; '
                   f'total {run["total_seconds"]} s')
  return lines


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  reason = container_image.podman_available()
  if reason:
    raise SystemExit(f'kubeflow_image: {reason}')
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = f'kubeflow_image_{now:%Y-%m-%d}' + (
      f'_{args.tag}' if args.tag else '')
  started = time.monotonic()
  with tempfile.TemporaryDirectory(prefix='kubeflow-image-') as tmp:
    tmp = pathlib.Path(tmp)
    built = build(tmp, no_cache=args.no_cache)
    scenarios = {}
    for scenario in args.scenario or SCENARIOS:
      directory = tmp / scenario
      directory.mkdir()
      logger.info('Scenario %s', scenario)
      scenarios[scenario] = RUNNERS[scenario](built['image']['tag'],
                                              directory)
      # Logs stay out of the result but for the failing task's tail.
      scenarios[scenario].pop('logs')
      logger.info('%s: %s', scenario, json.dumps(scenarios[scenario]['tasks']))
  result = {
      **recording.result_header('benchmarks.kubeflow_image', run_name, now,
                                argv),
      'podman': subprocess.run(
          [container_image.PODMAN, '--version'], capture_output=True,
          text=True, check=False).stdout.strip(),
      'build': built,
      'scenarios': scenarios,
      'wall_seconds': round(time.monotonic() - started, 1),
  }
  recording.write_results(result, args.results_dir)
  print('\n'.join(markdown_lines(result)))
  return result


if __name__ == '__main__':
  recording.configure_logging()
  main()
