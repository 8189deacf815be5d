"""What goes into the Kubeflow package besides `create_pipeline()`.

`kubeflow_runner.py compile` builds the pipeline and has TFX's
KubeflowV2DagRunner write it; this module holds the rest:

  help_names      what the help texts of the compiled pipeline's flags
                  (pipeline/runner_config.py) name, for compile and deploy;
  check_args      their cross-checks, before anything runs;
  beam_args       the Beam arguments every Beam-based task gets;
  task_resources  what each heavy task's container requests;
  s3_environment  what every task needs for s3:// paths;
  finish          writes into the compiled YAML what TFX leaves out of it
                  (`finish_package`: pipeline root, runtime parameter
                  defaults, resources, environment, secrets).

Its constants (the image's schema file, the entrypoint command, the runtime
parameters' names, the default resources) are imported from here only.
"""

import argparse
import copy
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from layouts import contracts
from pipeline import kfp_entrypoint
from pipeline import kubeflow_deploy

# Beam arguments every Beam-based task gets before the user's --beam-arg
# values: the DirectRunner inside the task's pod, with one worker process
# per CPU core the pod may use (--data-cpu, see beam_args; Beam's 0 would
# count the node's cores, not the pod's limit, and workers beyond the limit
# only add memory). --beam-arg=--runner=DataflowRunner (or FlinkRunner,
# PortableRunner) moves the Beam work off the pod.
DEFAULT_BEAM_ARGS = ('--direct_running_mode=multi_processing',)
# Where the Dockerfile puts the curated schema (schema/schema.pbtxt) in the
# image, for the CuratedSchemaGen task.
IMAGE_SCHEMA_FILE = '/pipeline/schema/schema.pbtxt'
# The heavy tasks, whose containers request (and are limited to) the CPU and
# memory of components.config.KubeflowResources: the Trainer, and the Beam and
# evaluation tasks (with the ExampleGen of the data source).
TRAINER_TASKS = (contracts.TRAINER,)
DATA_TASKS = ('StatisticsGen', contracts.DATA_GATE, contracts.EVALUATOR)
# s3:// paths (docs/kubeflow.md, "Storage"): the keys of the Kubernetes
# secret every task gets its S3 credentials from (--s3-secret; by default the
# one a stock Kubeflow Pipelines install keeps its MinIO credentials in), and
# the variables they become.
S3_SECRET_KEYS = {'accesskey': 'AWS_ACCESS_KEY_ID',
                  'secretkey': 'AWS_SECRET_ACCESS_KEY'}
# The container command of every compiled task (pipeline/kfp_entrypoint.py);
# TFX's own would be kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD.
ENTRYPOINT_COMMAND = ('python', '-m', kfp_entrypoint.ENTRYPOINT_MODULE)
_URI_RE = re.compile(r'^[a-z][a-z0-9+.-]*://', re.IGNORECASE)


def help_names(required: bool) -> Dict[str, str]:
  """What the help texts of the package's flags (runner_config's
  KubeflowPackageConfig) name in braces."""
  return dict(
      serving='--serving-root',
      need=' (required)' if required else ' (required unless --package)',
      data_root_parameter=kubeflow_deploy.DATA_ROOT_PARAMETER,
      epochs_parameter=kubeflow_deploy.EPOCHS_PARAMETER,
      default_beam_args=' '.join(DEFAULT_BEAM_ARGS),
      secret_keys=' and '.join(S3_SECRET_KEYS),
      secret_variables=' and '.join(S3_SECRET_KEYS.values()))


def check_args(args: argparse.Namespace) -> None:
  """Raises UsageError for flag combinations that cannot work: the pipeline
  flags, `compile --output` and `deploy --package` (kubeflow_deploy checks
  the rest of `deploy`'s)."""
  if args.tfds and args.data_root:
    raise kubeflow_deploy.UsageError(
        '--data-root and --tfds are two data sources: give one')
  if args.tfds_data_dir and not args.tfds:
    raise kubeflow_deploy.UsageError('--tfds-data-dir needs --tfds')
  data_flag, data_value = (('--tfds-data-dir', args.tfds_data_dir)
                           if args.tfds else ('--data-root', args.data_root))
  compile_flags = {
      '--pipeline-root': args.pipeline_root,
      data_flag: data_value,
      '--serving-root': args.serving_root,
      '--image': args.image,
  }
  if args.command == 'compile' or not args.package:
    missing = [flag for flag, value in compile_flags.items() if not value]
    if missing:
      raise kubeflow_deploy.UsageError(
          f'{", ".join(missing)} required'
          + ('' if args.command == 'compile' else ' (or --package)'))
    for flag, value in compile_flags.items():
      if flag != '--image' and not _URI_RE.match(value):
        raise kubeflow_deploy.UsageError(
            f'{flag} {value}: must be a URI every task pod can reach, such as '
            'gs://BUCKET/path; a local path exists only on this machine')
    if args.s3_endpoint and not uses_s3(args):
      raise kubeflow_deploy.UsageError(
          '--s3-endpoint is given, but no path is s3://')
    if args.s3_endpoint and not _URI_RE.match(args.s3_endpoint):
      raise kubeflow_deploy.UsageError(
          f'--s3-endpoint {args.s3_endpoint}: needs its scheme, '
          'e.g. http://minio-service.kubeflow:9000')
  if args.command == 'compile':
    kubeflow_deploy.check_package_path(args.output)
    return
  if args.package:
    kubeflow_deploy.check_package_path(args.package)
    given = [flag for flag, value in compile_flags.items() if value]
    given += ['--tfds'] if args.tfds else []
    if given:
      raise kubeflow_deploy.UsageError(
          f'--package is already compiled: drop {", ".join(given)}, or drop '
          '--package to compile from the flags')


def beam_args(args: argparse.Namespace) -> List[str]:
  """The Beam arguments of every Beam-based task: the defaults, one worker
  per CPU core of the task's limit, then the user's --beam-arg values."""
  workers = max(1, int(args.data_cpu))
  return [*DEFAULT_BEAM_ARGS, f'--direct_num_workers={workers}',
          *args.beam_arg]


def task_resources(args: argparse.Namespace,
                   example_gen: str) -> Dict[str, Any]:
  """Heavy task -> the ResourceSpec (CPU cores, memory GB) its container
  requests and is limited to: the Trainer, and `example_gen` with the other
  data tasks."""
  from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  from components import config as config_lib  # pylint: disable=g-import-not-at-top
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  asked = flags.config_from_args(args, config_lib.KubeflowResources)
  resources = {}
  for tasks, cpu, memory in ((TRAINER_TASKS, asked.trainer_cpu,
                              asked.trainer_memory_gb),
                             ((example_gen,) + DATA_TASKS, asked.data_cpu,
                              asked.data_memory_gb)):
    for task in tasks:
      resources[task] = pipeline_lib.ResourceSpec(
          cpu_request=cpu, cpu_limit=cpu, memory_request=memory,
          memory_limit=memory)
  return resources


def uses_s3(args: argparse.Namespace) -> bool:
  return any((path or '').startswith('s3://') for path in (
      args.pipeline_root, args.data_root, args.tfds_data_dir,
      args.serving_root))


def s3_environment(args: argparse.Namespace
                   ) -> Tuple[Dict[str, str], Dict[str, Dict[str, str]]]:
  """What every task needs for s3:// paths: environment variables, and the
  secret keys that become environment variables. Empty without s3://."""
  if not uses_s3(args):
    return {}, {}
  env = {'AWS_REGION': args.s3_region}
  if args.s3_endpoint:
    # tensorflow-io's S3 file system reads S3_ENDPOINT, boto3 (Beam's s3://)
    # AWS_ENDPOINT_URL_S3.
    env.update(S3_ENDPOINT=args.s3_endpoint,
               AWS_ENDPOINT_URL_S3=args.s3_endpoint)
  secrets = {args.s3_secret: dict(S3_SECRET_KEYS)} if args.s3_secret else {}
  return env, secrets


def finish(package: str, args: argparse.Namespace,
           runtime_parameters: Sequence[Any],
           resources: Dict[str, Any]) -> None:
  """Completes the package KubeflowV2DagRunner wrote from the flags:
  `runtime_parameters` are the pipeline's RuntimeParameters, `resources`
  task -> the ResourceSpec it was built with."""
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  env, secret_env = s3_environment(args)
  finish_package(
      package, pipeline_root=args.pipeline_root, env=env,
      secret_env=secret_env,
      # TFX keeps the defaults out of the spec; KFP reads them there.
      parameter_defaults={p.name: p.default for p in runtime_parameters},
      resources={task: json_format.MessageToDict(spec)
                 for task, spec in resources.items()})


def finish_package(package: str, *, pipeline_root: str,
                   parameter_defaults: Optional[Dict[str, Any]] = None,
                   resources: Optional[Dict[str, Dict[str, float]]] = None,
                   env: Optional[Dict[str, str]] = None,
                   secret_env: Optional[Dict[str, Dict[str, str]]] = None
                   ) -> None:
  """Completes a package compiled by TFX's KubeflowV2DagRunner.

  The package holds only the PipelineSpec; what TFX puts elsewhere, or
  drops, is written into it:

  * `pipeline_root` as its defaultPipelineRoot. TFX puts it in the
    PipelineJob's runtime config, so KFP would otherwise write outputs to its
    default minio:// root, which TensorFlow cannot open. `kfp.dsl.pipeline`
    records it the same way.
  * `parameter_defaults` (runtime parameter -> default value) as the
    `defaultValue` of the pipeline's inputs, where the KFP SDK's compiler
    puts them; TFX leaves them out of the spec, and a run that does not set
    a parameter would fail.
  * `resources` (task -> ResourceSpec as JSON) in the container of each
    task that has none: TFX's step builder writes a component's platform
    config, except a FileBasedExampleGen's, which it drops.
  * `env` (variable -> value) in every task's container, and `secret_env`
    (Kubernetes secret -> {key: variable}) as the Kubernetes platform spec
    of every task (the second YAML document, as kfp-kubernetes'
    `use_secret_as_env` writes it; KFP >= 2.0 applies it). TFX has neither.

  Comment lines at the top of the file are kept.

  Raises:
    ValueError: a default for a parameter the pipeline does not have, or
      resources for a task it does not have.
  """
  import yaml  # pylint: disable=g-import-not-at-top
  with open(package, encoding='utf-8') as f:
    text = f.read()
  header = ''.join(line for line in text.splitlines(keepends=True)
                   if line.startswith('#'))
  spec = yaml.safe_load(text)
  spec['defaultPipelineRoot'] = pipeline_root
  inputs = spec['root'].get('inputDefinitions', {}).get('parameters', {})
  for name, value in (parameter_defaults or {}).items():
    if name not in inputs:
      raise ValueError(f'the pipeline has no runtime parameter {name!r}')
    inputs[name]['defaultValue'] = value
  executors = spec['deploymentSpec']['executors']
  for task, resource in (resources or {}).items():
    if task not in spec['root']['dag']['tasks']:
      raise ValueError(f'the pipeline has no task {task!r}')
    label = spec['components'][task]['executorLabel']
    executors[label]['container'].setdefault('resources', dict(resource))
  for executor in executors.values():
    if env:
      executor['container']['env'] = [
          {'name': name, 'value': value} for name, value in env.items()]
  documents = [spec]
  if secret_env:
    secret_as_env = [
        {'secretName': secret,
         'keyToEnv': [{'secretKey': key, 'envVar': variable}
                      for key, variable in keys.items()]}
        for secret, keys in secret_env.items()]
    documents.append({'platforms': {'kubernetes': {'deploymentSpec': {
        # Copies: shared objects would be written as YAML anchors.
        'executors': {label: {'secretAsEnv': copy.deepcopy(secret_as_env)}
                      for label in executors}}}}})
  with open(package, 'w', encoding='utf-8') as f:
    f.write(header)
    yaml.safe_dump_all(documents, f, sort_keys=True)
