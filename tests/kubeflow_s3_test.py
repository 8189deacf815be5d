"""The compiled Kubeflow package, executed as KFP does, on s3:// storage.

The S3 server is moto's, started on 127.0.0.1 as a separate process: the
TFX executors (through tensorflow-io), Beam (through boto3) and the
emulated KFP launcher make real HTTP S3 API calls to it, as they would to
the MinIO of a stock Kubeflow Pipelines install. Each task gets its endpoint
and credentials only from what the package compiles in: the container's
`env` and the Kubernetes secret `mlpipeline-minio-artifact` (platform spec),
whose stand-in the emulation is given.
"""

import json
import pathlib
import subprocess
import sys

import pytest

from benchmarks.s3_server import BUCKET
from benchmarks.s3_server import CREDENTIALS
from benchmarks.s3_server import S3Server
from conftest import write_mnist_subset
from pipeline import kfp_artifacts
from pipeline import kfp_launcher
from tests.kubeflow_execution_test import ALL_TASKS
from tests.kubeflow_execution_test import compile_package
from tests.kubeflow_execution_test import decode_in_fresh_process
from tests.kubeflow_execution_test import history_epochs

@pytest.fixture(scope='module')
def s3():
  with S3Server() as server:
    server.client.create_bucket(Bucket=BUCKET)
    yield server


def _key(uri: str) -> str:
  return uri[len(f's3://{BUCKET}/'):]


@pytest.mark.slow
def test_the_pipeline_runs_on_s3_as_kfp_runs_it(tmp_path, s3):
  drop = write_mnist_subset(tmp_path / 'drop', {'train': 300, 't10k': 100})
  for path in drop.iterdir():
    s3.client.upload_file(str(path), BUCKET, f'drops/1/{path.name}')
  package = compile_package(
      tmp_path, f's3://{BUCKET}/serving',
      pipeline_root=f's3://{BUCKET}/root',
      extra_flags=['--s3-endpoint', s3.endpoint])

  run = kfp_launcher.Run(
      package, pipeline_root=f's3://{BUCKET}/root',
      runtime_parameters={'data_root': f's3://{BUCKET}/drops/1/',
                          'epochs': 1},
      workdir=tmp_path / 'pods',
      secrets={'mlpipeline-minio-artifact': CREDENTIALS},
      download=kfp_artifacts.s3_downloader(s3.client)).run()

  # Every task exited 0: tensorflow-io's abort at exit (tensorflow/io#2039)
  # did not turn a finished task into a failed one.
  assert run.completed == ALL_TASKS
  for task in ALL_TASKS[2:]:
    assert 'bucket(s) mlpipeline readable' in run.logs[task], task
  # The executors wrote their artifacts to s3://, through TFX's fileio and
  # Beam: ExampleGen's TFRecords, the Trainer's SavedModel and history.
  examples = _key(run.output_uri('IdxExampleGen', 'examples'))
  assert [k for k in s3.keys(examples + '/Split-train/') if k.endswith('.gz')]
  model = _key(run.output_uri('Trainer', 'model'))
  assert f'{model}/Format-Serving/saved_model.pb' in s3.keys(model)
  # The launcher downloaded every input artifact (no directory markers).
  downloaded = tmp_path / 'pods' / 'Trainer' / 's3' / BUCKET / examples
  assert list(downloaded.glob('Split-train/*.gz'))
  assert not [k for k in s3.keys() if k.endswith('/')]
  # The pushed version, downloaded as TF Serving would read it, loads.
  versions = {k.split('/')[1] for k in s3.keys('serving/')}
  [version] = [v for v in versions if v.isdigit()]
  assert f'serving/{version}/saved_model.pb' in s3.keys('serving/')
  local = tmp_path / 'served'
  kfp_artifacts.s3_downloader(s3.client)(f's3://{BUCKET}/serving/{version}',
                                         str(local))
  assert decode_in_fresh_process(str(local)) == '(2, 28, 28, 1)'
  # History on s3:// (the Trainer's CSV logger) and the epochs parameter.
  history = tmp_path / 'history'
  kfp_artifacts.s3_downloader(s3.client)(
      run.output_uri('Trainer', 'model_run'), str(history))
  assert history_epochs(str(history)) == 1
  metrics = json.loads(s3.client.get_object(
      Bucket=BUCKET,
      Key=_key(run.output_uri('VaeEvaluator', 'evaluation')) +
      '/metrics.json')['Body'].read())
  assert metrics['blessed'] is True and metrics['num_images'] == 100


def test_a_bucket_that_is_not_there_stops_the_task(s3):
  """tensorflow-io would report it as an empty folder: "no model served"."""
  executor_input = {'outputs': {'artifacts': {'model': {'artifacts': [
      {'name': 'model', 'uri': 's3://no-such-bucket/root/Trainer/model',
       'type': {'schemaTitle': 'tfx.Model'}}]}}}}
  env = {'PATH': pathlib.Path(sys.executable).parent.as_posix(),
         'S3_ENDPOINT': s3.endpoint, 'AWS_REGION': 'us-east-1',
         'AWS_ACCESS_KEY_ID': CREDENTIALS['accesskey'],
         'AWS_SECRET_ACCESS_KEY': CREDENTIALS['secretkey']}
  completed = subprocess.run(
      [sys.executable, '-m', 'pipeline.kfp_entrypoint',
       '--executor_class_path', 'components.vae_trainer.executor.Executor',
       '--json_serialized_invocation_args', json.dumps(executor_input)],
      env=env, capture_output=True, text=True, timeout=120, check=False)
  assert completed.returncode == 2, completed.stderr[-3000:]
  assert 'bucket s3://no-such-bucket does not exist' in completed.stderr
  assert f'S3_ENDPOINT={s3.endpoint}' in completed.stderr
