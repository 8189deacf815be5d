"""Tests of kubeflow_runner.py: compile, deploy to KFP, schedule on Vertex AI.

No Kubeflow cluster, Vertex AI project or Docker engine is used here:

* compile: the real KubeflowV2DagRunner writes the package, which is read
  back with kfp's own loaders (`kfp.components.load_component_from_file`,
  and the loader `kfp.Client` uses before uploading) and parsed strictly into
  the pipeline-spec protos;
* deploy: the real `kfp.Client` 2.0.1 talks to tests/fake_kfp_server.py, an
  in-memory implementation of the KFP v2beta1 endpoints it calls, on
  127.0.0.1; the test asserts the requests the client sent;
* Vertex AI: `aiplatform.PipelineJob` is replaced by a fake that records its
  arguments; nothing reaches Google Cloud;
* Dockerfile: checked statically here; it is built and every task run in
  it by kubeflow_image_test.py (`-m image`, podman).
"""

import importlib
import importlib.util
import json
import pathlib
import re
from typing import Any, Dict

import kfp
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.utils import import_utils

from components import config as config_lib
from components.data_gate import gate
from conftest import REPO_ROOT
from models import vae
from pipeline import code_fingerprint
from pipeline import exit_codes
from pipeline import kubeflow_deploy
from pipeline import kubeflow_package
from tests.fake_kfp_server import FakeKfpServer
import kubeflow_runner

IMAGE = 'registry.example.com/mnist/mnist-vae-tfx:test'
PIPELINE_ROOT = 'gs://test-bucket/mnist-vae-tfx/root'
DATA_ROOT = 'gs://test-bucket/mnist/latest/'
SERVING_ROOT = 'gs://test-bucket/mnist-vae-tfx/serving_model'
PATH_FLAGS = ('--pipeline-root', PIPELINE_ROOT, '--data-root', DATA_ROOT,
              '--serving-root', SERVING_ROOT, '--image', IMAGE)
HYPERPARAMETER_FLAGS = ('--epochs', '3', '--latent-dim', '4',
                        '--batch-size', '64', '--lr-schedule', 'cosine')
EXPECTED_HYPERPARAMETERS = vae.Hyperparameters(
    epochs=3, latent_dim=4, batch_size=64, lr_schedule='cosine')
# Component id -> executor class the compiled task must run.
EXECUTORS = {
    'IdxExampleGen': 'components.example_gen.idx_executor.Executor',
    'CuratedSchemaGen':
        'tfx.components.schema_gen.import_schema_gen.executor.Executor',
    'StatisticsGen': 'tfx.components.statistics_gen.executor.Executor',
    'DataGate': 'components.data_gate.executor.Executor',
    'Trainer': 'components.vae_trainer.executor.Executor',
    'VaeEvaluator': 'components.vae_evaluator.executor.Executor',
    'Pusher': 'components.atomic_pusher.executor.Executor',
}
BEAM_ARGS = ['--direct_running_mode=multi_processing',
             '--direct_num_workers=2',  # --data-cpu 2: one per core.
             '--runner=DataflowRunner', '--region=europe-west4']


@pytest.fixture(scope='module')
def package(tmp_path_factory) -> pathlib.Path:
  """The pipeline compiled by `kubeflow_runner.py compile` (in-process)."""
  output = tmp_path_factory.mktemp('kfp') / 'pipeline.yaml'
  args = kubeflow_runner.parse_args([
      'compile', '--output', str(output), *PATH_FLAGS, *HYPERPARAMETER_FLAGS,
      '--beam-arg=--runner=DataflowRunner', '--beam-arg=--region=europe-west4'])
  assert kubeflow_runner.run_command(args) == {'package': str(output)}
  return output


@pytest.fixture(scope='module')
def spec(package) -> pipeline_spec_pb2.PipelineSpec:
  """The package parsed strictly (unknown fields fail) into the proto."""
  return json_format.ParseDict(yaml.safe_load(package.read_text()),
                               pipeline_spec_pb2.PipelineSpec())


def _executors(spec: pipeline_spec_pb2.PipelineSpec) -> Dict[str, Any]:
  """Component id -> its PipelineDeploymentConfig.ExecutorSpec."""
  deployment = json_format.ParseDict(
      json_format.MessageToDict(spec.deployment_spec),
      pipeline_spec_pb2.PipelineDeploymentConfig())
  return {name: deployment.executors[component.executor_label]
          for name, component in spec.components.items()}


@pytest.fixture(scope='module')
def executors(spec) -> Dict[str, Any]:
  return _executors(spec)


def _constant(spec: pipeline_spec_pb2.PipelineSpec, task: str,
              parameter: str) -> Any:
  value = spec.root.dag.tasks[task].inputs.parameters[parameter]
  return json_format.MessageToDict(value.runtime_value.constant)


def test_kfp_loads_the_package_with_every_component_as_a_task(package, spec):
  # kfp's public loader, and the one kfp.Client uses before uploading.
  component = kfp.components.load_component_from_file(str(package))
  assert component.name == 'mnist-vae-tfx'
  assert set(component.pipeline_spec.root.dag.tasks) == set(EXECUTORS)
  from kfp.client import client as kfp_client  # pylint: disable=g-import-not-at-top
  doc = kfp_client._extract_pipeline_yaml(str(package))  # pylint: disable=protected-access
  assert doc.pipeline_spec == spec

  assert spec.schema_version == '2.1.0'  # use_pipeline_spec_2_1=True
  assert spec.sdk_version == 'tfx-1.16.0'
  assert spec.pipeline_info.name == 'mnist-vae-tfx'
  assert spec.default_pipeline_root == PIPELINE_ROOT
  assert set(spec.root.dag.tasks) == set(EXECUTORS)
  assert set(spec.components) == set(EXECUTORS)
  for name, task in spec.root.dag.tasks.items():
    assert task.task_info.name == name
    assert task.component_ref.name == name
  # The DAG: everything downstream of ExampleGen, Pusher last.
  assert not spec.root.dag.tasks['IdxExampleGen'].dependent_tasks
  assert not spec.root.dag.tasks['CuratedSchemaGen'].dependent_tasks
  # Nothing is trained before the data gate passed.
  assert 'DataGate' in spec.root.dag.tasks['Trainer'].dependent_tasks
  assert set(spec.root.dag.tasks['Pusher'].dependent_tasks) == {
      'Trainer', 'VaeEvaluator', 'DataGate'}


def test_the_schema_task_reads_the_schema_the_image_carries(spec):
  schema_file = _constant(spec, 'CuratedSchemaGen', 'schema_file')
  assert schema_file == kubeflow_package.IMAGE_SCHEMA_FILE
  dockerfile = (REPO_ROOT / 'Dockerfile').read_text()
  assert f'COPY schema/schema.pbtxt {schema_file}' in dockerfile


def test_every_executor_runs_the_project_image_and_entrypoint(executors):
  assert set(executors) == set(EXECUTORS)
  for name, executor in executors.items():
    assert executor.WhichOneof('spec') == 'container', name
    container = executor.container
    assert container.image == IMAGE, name
    # pipeline/kfp_entrypoint.py, which then runs TFX's entrypoint.
    assert list(container.command) == [
        'python', '-m', 'pipeline.kfp_entrypoint'], name
    assert list(container.command) != list(
        kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD)
    args = list(container.args)
    assert args[args.index('--executor_class_path') + 1] == EXECUTORS[name]
    assert args[args.index('--json_serialized_invocation_args') + 1] == '{{$}}'
    assert '--json_serialized_inputs_spec_args' in args  # spec 2.1 form.
    assert args[-len(BEAM_ARGS):] == BEAM_ARGS, name
  # The command runs a module of the project, installed in the image, which
  # hands over to TFX's.
  assert importlib.util.find_spec('pipeline.kfp_entrypoint')
  assert importlib.util.find_spec(kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD[2])
  # ExampleGen's driver hook: run by Vertex AI only (open-source KFP ignores
  # lifecycle hooks), also a TFX module.
  hook = executors['IdxExampleGen'].container.lifecycle.pre_cache_check
  assert list(hook.command[:2]) == ['python', '-m']
  assert importlib.util.find_spec(hook.command[2])


@pytest.mark.parametrize('component', sorted(EXECUTORS))
def test_executor_class_paths_import_by_module_path(executors, component):
  args = list(executors[component].container.args)
  path = args[args.index('--executor_class_path') + 1]
  assert not path.startswith('__main__')
  executor_class = import_utils.import_class_by_path(path)
  assert f'{executor_class.__module__}.{executor_class.__name__}' == path


def test_trainer_run_fn_and_hyperparameters(spec):
  run_fn = _constant(spec, 'Trainer', 'run_fn')
  assert run_fn == 'models.trainer.run_fn'
  module, _, function = run_fn.rpartition('.')
  assert callable(getattr(importlib.import_module(module), function))
  custom_config = json.loads(_constant(spec, 'Trainer', 'custom_config'))
  assert custom_config == {
      'hyperparameters': EXPECTED_HYPERPARAMETERS.to_dict(),
      # Whose served version's training identity says if there is anything
      # new (layouts/lineage.py).
      'serving_dir': SERVING_ROOT,
      'code_fingerprint': code_fingerprint.fingerprint(
          ['components.vae_trainer.executor', 'models.trainer'])}


def test_every_project_task_carries_the_fingerprint_of_its_code(spec):
  """The cache key of each task changes with the code it runs."""
  for task in ('DataGate', 'VaeEvaluator', 'Pusher'):
    assert re.fullmatch(r'[0-9a-f]{16}',
                        _constant(spec, task, 'code_fingerprint')), task
  assert _constant(spec, 'CuratedSchemaGen', 'schema_fingerprint') == (
      code_fingerprint.file_fingerprint(str(REPO_ROOT / 'schema' /
                                            'schema.pbtxt')))
  example_gen_config = _constant(spec, 'IdxExampleGen', 'custom_config')
  assert code_fingerprint.fingerprint(
      ['components.example_gen.idx_executor']) in example_gen_config


def test_warm_start_looks_up_the_served_model_at_run_time(tmp_path):
  """No Resolver: the Trainer is told where the served model lives."""
  output = tmp_path / 'pipeline.yaml'
  kubeflow_runner.run_command(kubeflow_runner.parse_args(
      ['compile', '--output', str(output), *PATH_FLAGS, '--warm-start']))
  warm_spec = json_format.ParseDict(yaml.safe_load(output.read_text()),
                                    pipeline_spec_pb2.PipelineSpec())
  custom_config = json.loads(_constant(warm_spec, 'Trainer', 'custom_config'))
  assert custom_config['warm_start_serving_dir'] == SERVING_ROOT


def _input(spec: pipeline_spec_pb2.PipelineSpec, task: str,
           parameter: str) -> str:
  """The pipeline input (runtime parameter) a task parameter is bound to."""
  return spec.root.dag.tasks[task].inputs.parameters[
      parameter].component_input_parameter


def test_runtime_parameters_are_pipeline_inputs_with_defaults(spec):
  parameters = spec.root.input_definitions.parameters
  assert set(parameters) == {'data_root', 'epochs'}
  assert parameters['data_root'].parameter_type == (
      pipeline_spec_pb2.ParameterType.STRING)
  assert parameters['data_root'].default_value.string_value == DATA_ROOT
  assert parameters['epochs'].parameter_type == (
      pipeline_spec_pb2.ParameterType.NUMBER_INTEGER)
  assert parameters['epochs'].default_value.number_value == 3  # --epochs 3
  # ExampleGen reads the data root, the gate names it in its messages.
  assert _input(spec, 'IdxExampleGen', 'input_base') == 'data_root'
  assert _input(spec, 'DataGate', 'input_base') == 'data_root'
  assert _input(spec, 'Trainer', 'epochs') == 'epochs'
  # Nothing else has the compiled data root in it.
  assert DATA_ROOT not in json.dumps(
      json_format.MessageToDict(spec.root.dag))


def test_heavy_tasks_request_cpu_and_memory(tmp_path, spec):
  resources = {
      name: json_format.MessageToDict(executor.container.resources)
      for name, executor in _executors(spec).items()}
  trainer = {'cpuRequest': 2.0, 'cpuLimit': 2.0, 'memoryRequest': 3.0,
             'memoryLimit': 3.0}
  data = {'cpuRequest': 2.0, 'cpuLimit': 2.0, 'memoryRequest': 6.0,
          'memoryLimit': 6.0}
  assert resources == {
      'Trainer': trainer, 'IdxExampleGen': data, 'StatisticsGen': data,
      'DataGate': data, 'VaeEvaluator': data, 'CuratedSchemaGen': {},
      'Pusher': {}}
  output = tmp_path / 'big.yaml'
  kubeflow_runner.run_command(kubeflow_runner.parse_args(
      ['compile', '--output', str(output), *PATH_FLAGS, '--trainer-cpu', '8',
       '--trainer-memory-gb', '16', '--data-cpu', '4',
       '--data-memory-gb', '6.5']))
  big = json_format.ParseDict(yaml.safe_load(output.read_text()),
                              pipeline_spec_pb2.PipelineSpec())
  big_resources = {name: executor.container.resources
                   for name, executor in _executors(big).items()}
  assert big_resources['Trainer'].cpu_request == 8
  assert big_resources['Trainer'].memory_limit == 16
  assert big_resources['IdxExampleGen'].cpu_limit == 4
  assert big_resources['StatisticsGen'].memory_request == 6.5
  # Beam's DirectRunner gets one worker per core of the data tasks' limit.
  args = list(_executors(big)['StatisticsGen'].container.args)
  assert '--direct_num_workers=4' in args
  assert '--direct_num_workers=2' not in args


def test_paths_and_gate_reach_the_tasks(spec):
  input_config = json.loads(_constant(spec, 'IdxExampleGen', 'input_config'))
  patterns = [split['pattern'] for split in input_config['splits']]
  assert patterns == ['train-*-ubyte*', 't10k-*-ubyte*']  # No {SPAN}.
  assert _constant(spec, 'VaeEvaluator', 'serving_dir') == SERVING_ROOT
  push_destination = json.loads(
      _constant(spec, 'Pusher', 'push_destination'))
  assert push_destination == {'filesystem': {'base_directory': SERVING_ROOT}}
  # The data gate finds its reference in the push destination at run time.
  assert _constant(spec, 'DataGate', 'serving_dir') == SERVING_ROOT
  assert config_lib.from_json(
      config_lib.GateConfig,
      _constant(spec, 'DataGate', 'gate_config')) == config_lib.GateConfig()
  assert json.loads(_constant(spec, 'DataGate', 'split_patterns')) == {
      'train': 'train-*-ubyte*', 'eval': 't10k-*-ubyte*'}


def test_gate_flags_reach_the_gate_task(tmp_path):
  output = tmp_path / 'gate.yaml'
  kubeflow_runner.run_command(kubeflow_runner.parse_args(
      ['compile', '--output', str(output), *PATH_FLAGS, '--accept-drift',
       '--max-label-linf', '0.2', '--max-pixel-jsd', '0.05']))
  gate_spec = json_format.ParseDict(yaml.safe_load(output.read_text()),
                                    pipeline_spec_pb2.PipelineSpec())
  config = config_lib.from_json(
      config_lib.GateConfig, _constant(gate_spec, 'DataGate', 'gate_config'))
  assert config.accept_drift
  assert (config.thresholds.max_label_linf,
          config.thresholds.max_pixel_jsd) == (0.2, 0.05)
  assert config.anchor_thresholds == config_lib.Thresholds()


def test_no_resolver_importer_or_cache(spec, executors):
  # Open-source KFP cannot run TFX Resolver nodes: there must be none.
  for name, executor in executors.items():
    assert executor.WhichOneof('spec') == 'container', name
    assert not executor.HasField('resolver'), name
    assert not executor.HasField('importer'), name
  assert not [t for t in spec.root.dag.tasks if 'resolver' in t.lower()]
  # Caching is off, so a scheduled run re-reads the data root.
  for name, task in spec.root.dag.tasks.items():
    assert not task.caching_options.enable_cache, name


def test_enable_cache_flag(tmp_path):
  output = tmp_path / 'cached.yaml'
  kubeflow_runner.run_command(kubeflow_runner.parse_args(
      ['compile', '--output', str(output), *PATH_FLAGS, '--enable-cache']))
  tasks = yaml.safe_load(output.read_text())['root']['dag']['tasks']
  assert all(task['cachingOptions']['enableCache'] for task in tasks.values())


@pytest.mark.parametrize('argv, message', [
    (['compile', '--output', 'p.json', *PATH_FLAGS], '.yaml or .yml'),
    (['compile', '--output', 'p.yaml', '--pipeline-root', PIPELINE_ROOT,
      '--data-root', '/data/mnist', '--serving-root', SERVING_ROOT,
      '--image', IMAGE], 'a local path exists only on this machine'),
    (['compile', '--output', 'p.yaml', '--data-root', DATA_ROOT],
     '--pipeline-root, --serving-root, --image required'),
    (['deploy', '--host', 'http://kfp', '--cron', '0 3 * * *',
      '--package', 'p.yaml'], 'did you mean "0 0 3 * * *"'),
    (['deploy', '--vertex', '--project', 'p', '--region', 'r', '--cron',
      '0 0 3 * * *', '--package', 'p.yaml'], 'did you mean "0 3 * * *"'),
    (['deploy', '--vertex', '--cron', '0 3 * * *', '--package', 'p.yaml'],
     '--vertex needs --project and --region'),
    (['deploy', '--cron', '0 0 3 * * *', '--package', 'p.yaml'],
     '--host is required'),
    (['deploy', '--host', 'http://kfp', '--cron', '0 0 3 * * *',
      '--package', 'p.yaml', '--image', IMAGE],
     '--package is already compiled: drop --image'),
])
def test_bad_flags_are_usage_errors(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    kubeflow_runner.parse_args(argv)
  assert exit_info.value.code == exit_codes.USAGE
  assert message in capsys.readouterr().err


def test_deploy_to_kfp_api(package, tmp_path, monkeypatch, capsys):
  """Against a fake KFP API server on 127.0.0.1: no real cluster is used."""
  # No ~/.config/kfp/context.json: the client behaves as on a fresh machine.
  monkeypatch.setattr(kfp.Client, '_LOCAL_KFP_CONTEXT',
                      str(tmp_path / 'kfp' / 'context.json'))
  deploy = ['deploy', '--package', str(package), '--cron', '0 30 2 * * *',
            '--experiment', 'nightly']
  with FakeKfpServer() as server:
    first = kubeflow_runner.run_command(kubeflow_runner.parse_args(
        [*deploy, '--host', server.url]))
    first_requests = len(server.requests)
    second = kubeflow_runner.run_command(kubeflow_runner.parse_args(
        [*deploy, '--host', server.url, '--version-name', 'v2',
         '--run-parameter', 'epochs=5',
         '--run-parameter', 'data_root=gs://other/drop/']))

  assert all(r.status == 200 for r in server.requests), [
      (r.method, r.path, r.status) for r in server.requests]
  package_bytes = package.read_bytes()

  # First deploy: new pipeline (its first version), new experiment.
  [lookup, _] = server.calls('GET', '/pipelines')
  predicate = json.loads(lookup.query['filter'])['predicates'][0]
  assert (predicate['key'], predicate['stringValue']) == (
      'display_name', 'mnist-vae-tfx')
  [upload] = server.calls('POST', '/pipelines/upload')
  assert upload.query['name'] == 'mnist-vae-tfx'
  assert upload.files == {'uploadfile': package_bytes}  # The compiled spec.
  uploaded_spec = server.versions[first['pipeline_version_id']]['pipeline_spec']
  assert uploaded_spec['deploymentSpec']['executors'][
      'Trainer_executor']['container']['image'] == IMAGE
  [create_experiment] = server.calls('POST', '/experiments')
  assert create_experiment.json['display_name'] == 'nightly'
  experiment_id = first['experiment_id']
  assert server.experiments[experiment_id]['display_name'] == 'nightly'

  [run_1, run_2] = [r.json for r in server.calls('POST', '/recurringruns')]
  for run, result in ((run_1, first), (run_2, second)):
    assert run['trigger'] == {'cron_schedule': {'cron': '0 30 2 * * *'}}
    assert int(run['max_concurrency']) == 1
    assert run['experiment_id'] == experiment_id
    assert run['mode'] == 'ENABLE'
    assert run['no_catchup'] is True
    assert run['display_name'] == 'mnist-vae-tfx retraining'
    assert run['pipeline_version_reference'] == {
        'pipeline_id': result['pipeline_id'],
        'pipeline_version_id': result['pipeline_version_id']}
    assert run['runtime_config']['pipeline_root'] == PIPELINE_ROOT
    assert 'pipeline_spec' not in run  # The uploaded version is referenced.
  # Runtime parameters: the package's defaults, unless set for the schedule.
  assert not run_1['runtime_config'].get('parameters')
  assert run_2['runtime_config']['parameters'] == {
      'epochs': 5, 'data_root': 'gs://other/drop/'}

  # Second deploy: a new version of the same pipeline, the same experiment,
  # and the first recurring run replaced by the new one.
  [upload_version] = server.calls('POST', '/pipelines/upload_version')
  assert upload_version.query == {'name': 'v2',
                                  'pipelineid': first['pipeline_id']}
  assert upload_version.files == {'uploadfile': package_bytes}
  assert second['pipeline_id'] == first['pipeline_id']
  assert second['pipeline_version_id'] != first['pipeline_version_id']
  assert second['experiment_id'] == experiment_id
  assert len(server.calls('POST', '/experiments')) == 1
  assert second['replaced_recurring_run_ids'] == first['recurring_run_id']
  [delete] = [r for r in server.requests if r.method == 'DELETE']
  assert delete.path.endswith('/recurringruns/' + first['recurring_run_id'])
  assert list(server.recurring_runs) == [second['recurring_run_id']]
  assert len(server.requests) - first_requests == 7
  assert 'Experiment details' in capsys.readouterr().out


class FakePipelineJob:
  """Records `aiplatform.PipelineJob(...)` and `.create_schedule(...)`."""
  instances = []

  def __init__(self, **kwargs):
    self.kwargs = kwargs
    # Read now: the runner's temporary package is gone after the call.
    with open(kwargs['template_path'], encoding='utf-8') as f:
      self.template = yaml.safe_load(f)
    self.schedule_kwargs = None
    FakePipelineJob.instances.append(self)

  def create_schedule(self, **kwargs):
    self.schedule_kwargs = kwargs

    class Schedule:
      resource_name = ('projects/p/locations/europe-west4/schedules/123')
    return Schedule()


@pytest.mark.parametrize('assignment, message', [
    ('epochs', 'expected NAME=VALUE'),
    ('learning_rate=0.1', 'no such runtime parameter (it has: data_root, '
     'epochs)'),
    ('epochs=five', 'not a NUMBER_INTEGER value'),
])
def test_bad_run_parameters_are_usage_errors(package, assignment, message):
  args = kubeflow_runner.parse_args(
      ['deploy', '--host', 'http://127.0.0.1:1', '--cron', '0 0 3 * * *',
       '--package', str(package), '--run-parameter', assignment])
  with pytest.raises(kubeflow_deploy.UsageError, match=re.escape(message)):
    kubeflow_runner.run_command(args)


def test_deploy_to_vertex_calls_aiplatform(monkeypatch):
  """The aiplatform calls only: nothing reaches Vertex AI."""
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(aiplatform, 'PipelineJob', FakePipelineJob)
  FakePipelineJob.instances = []
  # No --package: compiles to a temporary package, then schedules it.
  result = kubeflow_runner.run_command(kubeflow_runner.parse_args([
      'deploy', '--vertex', '--project', 'p', '--region', 'europe-west4',
      '--cron', 'TZ=Europe/Amsterdam 0 3 * * *', '--service-account',
      'runner@p.iam.gserviceaccount.com', *PATH_FLAGS, '--epochs', '5',
      '--run-parameter', 'epochs=7']))
  assert result == {
      'schedule': 'projects/p/locations/europe-west4/schedules/123'}
  [job] = FakePipelineJob.instances
  assert job.kwargs['display_name'] == 'mnist-vae-tfx'
  assert job.kwargs['project'] == 'p'
  assert job.kwargs['location'] == 'europe-west4'
  assert job.kwargs['pipeline_root'] == PIPELINE_ROOT
  assert job.kwargs['template_path'].endswith('.yaml')
  assert job.kwargs['enable_caching'] is None  # As compiled: off.
  assert job.kwargs['parameter_values'] == {'epochs': 7}
  assert job.template['pipelineInfo']['name'] == 'mnist-vae-tfx'
  assert job.template['root']['inputDefinitions']['parameters']['epochs'][
      'defaultValue'] == 5
  assert job.schedule_kwargs == {
      'cron': 'TZ=Europe/Amsterdam 0 3 * * *',
      'display_name': 'mnist-vae-tfx retraining',
      'max_concurrent_run_count': 1,
      'service_account': 'runner@p.iam.gserviceaccount.com'}


def _dockerignore_regex(pattern: str) -> re.Pattern:
  """A .dockerignore pattern as a regex: `*` stays within one path element,
  `**/` spans any number of folders (Docker's Go filepath.Match rules)."""
  regex = ''
  for token in re.split(r'(\*\*/|\*|\?)', pattern):
    regex += {'**/': '(?:.*/)?', '*': '[^/]*', '?': '[^/]'}.get(
        token, re.escape(token))
  return re.compile(regex)


def _docker_ignored(path: str, patterns) -> bool:
  """Whether .dockerignore excludes `path`: the last pattern matching the
  path or one of its parent folders decides; `!` re-includes."""
  parts = path.split('/')
  candidates = ['/'.join(parts[:i]) for i in range(1, len(parts) + 1)]
  ignored = False
  for pattern in patterns:
    regex = _dockerignore_regex(pattern.lstrip('!'))
    if any(regex.fullmatch(c) for c in candidates):
      ignored = not pattern.startswith('!')
  return ignored


def test_dockerfile_installs_the_lock_and_the_project(executors):
  """Static checks (kubeflow_image_test.py builds it, with -m image)."""
  dockerfile = (REPO_ROOT / 'Dockerfile').read_text()
  instructions = [line for line in re.sub(r'\\\n', ' ', dockerfile).splitlines()
                  if line and not line.startswith('#')]
  lock = (REPO_ROOT / 'requirements.lock').read_text().splitlines()
  import tfx.version  # pylint: disable=g-import-not-at-top
  assert f'tfx=={tfx.version.__version__}' in lock
  # A plain Python 3.10 on bookworm by default; the Beam SDK image of the
  # locked Beam only for the optional worker stage; the default target last.
  assert 'ARG BASE_IMAGE=python:3.10-slim-bookworm' in instructions
  [beam] = [line.split('==')[1] for line in lock
            if line.startswith('apache-beam')]
  assert f'ARG BEAM_SDK_IMAGE=apache/beam_python3.10_sdk:{beam}' in (
      instructions)
  stages = [line for line in instructions if line.startswith('FROM ')]
  assert stages == ['FROM ${BEAM_SDK_IMAGE} AS beam-sdk',
                    'FROM ${BASE_IMAGE} AS build',
                    'FROM ${BASE_IMAGE} AS image',
                    'FROM image AS beam-worker', 'FROM image']
  worker = instructions[instructions.index('FROM image AS beam-worker'):]
  assert 'COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam' in worker
  assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in worker
  assert [line for line in instructions
          if line.startswith(('ENTRYPOINT', 'CMD'))] == [
              'ENTRYPOINT ["/opt/apache/beam/boot"]']
  run = ' '.join(line for line in instructions if line.startswith('RUN '))
  assert re.search(r'pip install [^&]*--no-deps[^&]*-r \S*requirements\.lock'
                   r'\s+&& python -m pip check', run)
  assert re.search(r'pip install [^&]*--no-deps[^&]*/tmp/mnist-vae-tfx\s', run)
  # The packages that hold the compiled executors and run_fn are copied in,
  # installed (pyproject), and not excluded from the build context.
  project_modules = {path.split('.')[0] for path in EXECUTORS.values()} | {
      'models', 'layouts'}
  project_modules -= {'tfx'}
  pyproject = (REPO_ROOT / 'pyproject.toml').read_text()
  for module in project_modules:
    assert f'COPY {module} /tmp/mnist-vae-tfx/{module}' in instructions
    assert f'"{module}*"' in pyproject
  # The build's last step imports every executor and the entrypoint the
  # compiled tasks run, so a broken image fails to build.
  for path in EXECUTORS.values():
    module, _, name = path.rpartition('.')
    if not module.startswith('tfx.'):
      assert f'from {module} import {name};' in run, path
  assert f'import {kubeflow_package.ENTRYPOINT_COMMAND[2]};' in run
  patterns = [line.strip() for line in
              (REPO_ROOT / '.dockerignore').read_text().splitlines()
              if line.strip() and not line.startswith('#')]
  for path in ('requirements.lock', 'pyproject.toml', 'README.md',
               'schema/schema.pbtxt',
               'components/example_gen/idx_executor.py',
               'components/data_gate/executor.py', 'layouts/serving.py',
               'components/vae_evaluator/executor.py',
               'components/atomic_pusher/executor.py', 'models/trainer.py',
               'pipeline/pipeline.py'):
    assert (REPO_ROOT / path).exists(), path
    assert not _docker_ignored(path, patterns), path
  for path in ('.venv/bin/python', 'outputs/metadata.sqlite',
               'data/mnist/train-images-idx3-ubyte.gz',
               'models/__pycache__/vae.cpython-310.pyc', 'models/vae_test.py'):
    assert _docker_ignored(path, patterns), path


def test_s3_paths_compile_the_endpoint_and_the_secret(tmp_path):
  output = tmp_path / 's3.yaml'
  kubeflow_runner.run_command(kubeflow_runner.parse_args([
      'compile', '--output', str(output), '--image', IMAGE,
      '--pipeline-root', 's3://mlpipeline/root',
      '--data-root', 's3://mlpipeline/mnist/latest/',
      '--serving-root', 's3://mlpipeline/serving',
      '--s3-endpoint', 'http://minio-service.kubeflow:9000']))
  from kfp.client import client as kfp_client  # pylint: disable=g-import-not-at-top
  # kfp.Client's own loader: the pipeline spec and the platform spec.
  doc = kfp_client._extract_pipeline_yaml(str(output))  # pylint: disable=protected-access
  executors = _executors(doc.pipeline_spec)
  platform = json_format.MessageToDict(doc.platform_spec)['platforms'][
      'kubernetes']['deploymentSpec']['executors']
  for name, executor in executors.items():
    env = {e.name: e.value for e in executor.container.env}
    assert env == {'AWS_REGION': 'us-east-1',
                   'S3_ENDPOINT': 'http://minio-service.kubeflow:9000',
                   'AWS_ENDPOINT_URL_S3': 'http://minio-service.kubeflow:9000'
                  }, name
    label = doc.pipeline_spec.components[name].executor_label
    assert platform[label]['secretAsEnv'] == [{
        'secretName': 'mlpipeline-minio-artifact',
        'keyToEnv': [
            {'secretKey': 'accesskey', 'envVar': 'AWS_ACCESS_KEY_ID'},
            {'secretKey': 'secretkey', 'envVar': 'AWS_SECRET_ACCESS_KEY'}]}]
  assert 'AWS_SECRET_ACCESS_KEY:' not in output.read_text()  # Only a name.
  # Vertex AI does not run Kubernetes platform specs.
  with pytest.raises(kubeflow_deploy.UsageError, match='platform spec'):
    kubeflow_deploy.deploy_vertex(str(output), project='p', region='r',
                                  cron='0 3 * * *', max_concurrency=1)


def test_gs_packages_have_no_s3_settings(package):
  assert len(list(yaml.safe_load_all(package.read_text()))) == 1
  assert 'S3_ENDPOINT' not in package.read_text()


def test_s3_endpoint_needs_s3_paths(capsys):
  with pytest.raises(SystemExit):
    kubeflow_runner.parse_args(['compile', '--output', 'p.yaml', *PATH_FLAGS,
                                '--s3-endpoint', 'http://minio:9000'])
  assert '--s3-endpoint is given, but no path is s3://' in (
      capsys.readouterr().err)
