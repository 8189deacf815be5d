"""The Kubeflow image, built and run: every compiled task in a container.

`python -m pytest -m image` (the default test command leaves these out;
conftest.py): builds the repository's Dockerfile with podman on the local
stand-in for its default base (tests/container_image.py), checks the image,
then executes the compiled package with the launcher emulation
(pipeline/kfp_launcher.py), each task's compiled command run by
`podman run IMAGE` with the pipeline root, data and push destination mounted
and only the environment the spec gives it; on a local root, on `s3://`
(moto on 127.0.0.1), and with TFX's stock entrypoint, which fails at the
first task. Each run trains 1 epoch on 300 + 100 images; the pushed version
is decoded in a fresh process and in a fresh container of the image. The
recorded run, benchmarks/results/kubeflow_image_2026-12-01.json, was made by
benchmarks/kubeflow_image.py (commit 3a022c7), since retired.
"""

import json
import pathlib
import subprocess
from typing import Any, Dict, Sequence

import pytest

from benchmarks import kfp_package
from benchmarks.s3_server import BUCKET
from benchmarks.s3_server import CREDENTIALS
from benchmarks.s3_server import S3Server
from conftest import write_mnist_subset
from pipeline import kfp_artifacts
from pipeline import kfp_launcher
from pipeline import kubeflow_package
from tests import container_image
from tests.kubeflow_execution_test import _DECODE
from tests.kubeflow_execution_test import ALL_TASKS
from tests.kubeflow_execution_test import decode_in_fresh_process
from tests.kubeflow_execution_test import TFX_ENTRYPOINT

pytestmark = pytest.mark.image


# As tests/kubeflow_execution_test.py compiles: a lenient blessing threshold
# and one process per Beam task; the runs set 1 epoch.
COMPILE_FLAGS = ('--epochs', '3', '--bless-threshold', '1000',
                 '--beam-arg=--direct_running_mode=in_memory')
COUNTS = {'train': 300, 't10k': 100}


def compile_for_image(directory: pathlib.Path, serving_root: str,
                      pipeline_root: str, extra_flags: Sequence[str] = ()
                      ) -> str:
  """The package, with the schema path the image carries."""
  return kfp_package.compile_package(
      str(directory / 'pipeline.yaml'), serving_root=serving_root,
      pipeline_root=pipeline_root, flags=[*COMPILE_FLAGS, *extra_flags],
      schema_file=kubeflow_package.IMAGE_SCHEMA_FILE)


def execute(run: kfp_launcher.Run) -> Dict[str, Any]:
  """Runs every task; per task its result and wall time, the failure, and
  every task's log."""
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
  return {'tasks': tasks, 'failure': failure, 'logs': run.logs}


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
  """Local pipeline root, data and push destination, mounted into each
  task's container at their own paths; no network."""
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
  result = execute(run)
  versions = sorted(p for p in serving.iterdir() if p.name.isdigit())
  result['pushed_versions'] = [p.name for p in versions]
  if versions and not result['failure']:
    result['decoded_on_host'] = decode_in_fresh_process(str(versions[-1]))
    result['decoded_in_image'] = decode_in_image(image, versions[-1])
    metrics = json.loads(pathlib.Path(
        run.output_uri('VaeEvaluator', 'evaluation'),
        'metrics.json').read_text())
    result['neg_elbo'], result['blessed'] = (metrics['neg_elbo'],
                                             metrics['blessed'])
  return result


def run_s3(image: str, tmp: pathlib.Path) -> Dict[str, Any]:
  """`s3://` on moto's S3 server on 127.0.0.1, reached from the containers
  on the host's network, the endpoint and credentials only from the spec."""
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
        download=kfp_artifacts.s3_downloader(s3.client),
        in_container=container_image.InImage(image, network='host'))
    result = execute(run)
    versions = sorted({k.split('/')[1] for k in s3.keys('serving/')
                       if k.split('/')[1].isdigit()})
    result['pushed_versions'] = versions
    result['directory_markers'] = [k for k in s3.keys() if k.endswith('/')]
    if versions and not result['failure']:
      local = tmp / 'served'
      kfp_artifacts.s3_downloader(s3.client)(
          f's3://{BUCKET}/serving/{versions[-1]}', str(local))
      result['decoded_on_host'] = decode_in_fresh_process(str(local))
      result['decoded_in_image'] = decode_in_image(image, local)
      metrics = json.loads(s3.client.get_object(
          Bucket=BUCKET, Key=run.output_uri('VaeEvaluator', 'evaluation')[
              len(f's3://{BUCKET}/'):] + '/metrics.json')['Body'].read())
      result['neg_elbo'], result['blessed'] = (metrics['neg_elbo'],
                                               metrics['blessed'])
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
  return execute(run)


@pytest.fixture(scope='module')
def image(tmp_path_factory):
  reason = container_image.podman_available()
  if reason:
    pytest.skip(reason)
  return container_image.build_checked_image(
      tmp_path_factory.mktemp('build'))


def test_the_image_builds_and_holds_only_the_lock_and_the_project(image):
  assert image['checks']['pip_check']['exit_code'] == 0
  assert 'No broken requirements found' in image['checks']['pip_check'][
      'output']
  # The project imports from the venv's site-packages; no source tree.
  for module, path in image['checks']['modules'].items():
    assert path.startswith('/opt/mnist-vae-tfx/lib/python3.10/site-packages/'
                           f'{module}/'), (module, path)
  assert image['checks']['listing'] == {'/pipeline': ['schema'], '/tmp': []}
  # The lock's closure (a venv of 3.6 GB here) on a base of 0.2 GB, and
  # nothing else: no compiler, no pip cache, no second copy of a layer.
  assert 3e9 < image['image']['size'] < 4.5e9, image['image']['size']


def test_every_task_runs_in_the_image_to_a_pushed_model(image, tmp_path):
  result = run_local(image['image']['tag'], tmp_path)
  assert result['failure'] is None, result['failure']
  assert [t for t, s in result['tasks'].items()
          if s['result'] == 'succeeded'] == ALL_TASKS
  assert 'type taken from the component inputs spec' in result['logs'][
      'Trainer']
  assert len(result['pushed_versions']) == 1
  assert result['decoded_on_host'] == '(2, 28, 28, 1)'
  assert result['decoded_in_image'] == '(2, 28, 28, 1)'


def test_every_task_runs_in_the_image_on_s3(image, tmp_path):
  result = run_s3(image['image']['tag'], tmp_path)
  assert result['failure'] is None, result['failure']
  assert list(result['tasks']) == ALL_TASKS
  assert all(s['result'] == 'succeeded' for s in result['tasks'].values())
  for task in ALL_TASKS[2:]:
    assert 'bucket(s) mlpipeline readable' in result['logs'][task], task
  assert result['directory_markers'] == []
  assert len(result['pushed_versions']) == 1
  assert result['decoded_in_image'] == '(2, 28, 28, 1)'


def test_the_stock_entrypoint_fails_at_the_first_task(image, tmp_path):
  result = run_stock(image['image']['tag'], tmp_path)
  assert result['failure']['task'] == 'CuratedSchemaGen'
  assert 'Could not import system.Artifact' in result['logs'][
      'CuratedSchemaGen']
  assert [t for t, s in result['tasks'].items()
          if s['result'] == 'succeeded'] == []
