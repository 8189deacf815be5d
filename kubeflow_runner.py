"""Compiles the mnist-vae-tfx pipeline for Kubeflow Pipelines v2; schedules it.

The pipeline is the one `create_pipeline()` builds for the local runner; this
runner only chooses paths, the container image and the orchestrator:

  compile  KubeflowV2DagRunner -> a KFP v2 YAML package (pipeline spec 2.1)
  deploy   upload that package to Kubeflow Pipelines (a new version if the
           pipeline exists), get or create the experiment and create a
           recurring run; or, with --vertex, a Vertex AI Pipelines schedule.

What differs from the local runner (see docs/kubeflow.md):

* Open-source KFP never runs the ExampleGen driver (which would resolve
  {SPAN}); IdxExampleGen resolves the data root itself when its task runs.
  The data root (e.g. gs://BUCKET/mnist/) holds either the four IDX files,
  overwritten by the data-drop process, or one `span-N/` folder per drop:
  each run reads the newest span (a drop still being written is refused),
  with --train-spans K also up to K - 1 earlier spans the data gate passed.
* Caching is off by default: KFP's cache key of the ExampleGen task is its
  constant parameters, not the input files' fingerprint, so a cached scheduled
  run would reuse the first run's examples forever. Off, every scheduled run
  reads the data root again and retrains.
* There is no ML Metadata connection to configure (the cluster provides it)
  and there are no Resolver nodes: the evaluator's baseline is the newest
  model in the push destination (--serving-root).

Run `python kubeflow_runner.py compile --help` or `deploy --help` for flags.
"""

import argparse
import logging
import os
import re
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from pipeline import console
from pipeline import exit_codes
from pipeline import kfp_entrypoint
from pipeline import kubeflow_deploy
from pipeline.kubeflow_deploy import UsageError

logger = logging.getLogger(__name__)

# Beam arguments every Beam-based task gets before the user's --beam-arg
# values: the DirectRunner inside the task's pod, with one worker process
# per CPU core the pod may use (--data-cpu, see beam_args; Beam's 0 would
# count the node's cores, not the pod's limit, and workers beyond the limit
# only add memory). --beam-arg=--runner=DataflowRunner (or FlinkRunner,
# PortableRunner) moves the Beam work off the pod.
DEFAULT_BEAM_ARGS = ('--direct_running_mode=multi_processing',)
DEFAULT_EXPERIMENT = 'mnist-vae-tfx'
# Where the Dockerfile puts the curated schema (schema/schema.pbtxt) in the
# image, for the CuratedSchemaGen task.
IMAGE_SCHEMA_FILE = '/pipeline/schema/schema.pbtxt'
# Pipeline inputs (KFP runtime parameters) an operator may set per run or per
# recurring run without compiling again; their defaults are the compile flags
# --data-root and --epochs.
DATA_ROOT_PARAMETER = 'data_root'
EPOCHS_PARAMETER = 'epochs'
# CPU (cores) and memory (GB, 10^9 bytes: KFP's unit) each heavy task's
# container requests, and is limited to: the Trainer, and the Beam and
# evaluation tasks. Measured on all 70,000 images with 2 Beam workers
# (benchmarks/results/kubeflow_tasks_2026-11-25.json): peak memory 1.25 GB
# for the Trainer, at most 2.98 GB (IdxExampleGen) for the others; the
# defaults leave about 2x of that.
TRAINER_TASKS = ('Trainer',)
DATA_TASKS = ('StatisticsGen', 'DataGate', 'VaeEvaluator')
# The ExampleGen task of each data source is a data task too.
IDX_EXAMPLE_GEN = 'IdxExampleGen'
TFDS_EXAMPLE_GEN = 'TfdsExampleGen'
DEFAULT_TRAINER_CPU = 2.0
DEFAULT_TRAINER_MEMORY_GB = 3.0
DEFAULT_DATA_CPU = 2.0
DEFAULT_DATA_MEMORY_GB = 6.0
# s3:// paths (docs/kubeflow.md, "Storage"): the Kubernetes secret every task
# gets its S3 credentials from, by default the one a stock Kubeflow Pipelines
# install keeps its MinIO credentials in, and the keys it has.
DEFAULT_S3_SECRET = 'mlpipeline-minio-artifact'
S3_SECRET_KEYS = {'accesskey': 'AWS_ACCESS_KEY_ID',
                  'secretkey': 'AWS_SECRET_ACCESS_KEY'}
DEFAULT_S3_REGION = 'us-east-1'
# The container command of every compiled task (pipeline/kfp_entrypoint.py);
# TFX's own would be kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD.
ENTRYPOINT_COMMAND = ('python', '-m', kfp_entrypoint.ENTRYPOINT_MODULE)
_URI_RE = re.compile(r'^[a-z][a-z0-9+.-]*://', re.IGNORECASE)


def _add_pipeline_flags(parser: argparse.ArgumentParser,
                        required: bool) -> None:
  """Flags of the compiled pipeline (shared by compile and deploy)."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  need = ' (required)' if required else ' (required unless --package)'
  paths = parser.add_argument_group('pipeline paths and image')
  paths.add_argument(
      '--pipeline-root', metavar='URI',
      help='root of all component outputs, a bucket every task can write, '
      'e.g. gs://BUCKET/mnist-vae-tfx/root' + need)
  paths.add_argument(
      '--data-root', metavar='URI',
      help='the data folder, e.g. gs://BUCKET/mnist/: the four MNIST IDX '
      'files (raw or .gz), which the data-drop process overwrites, or one '
      'span-N/ folder per drop, each with the four files. Every run lists it '
      'when ExampleGen starts and reads the files, or the newest span (and, '
      'with --train-spans, earlier spans the data gate passed). Compiled as '
      f'the default of the runtime parameter {DATA_ROOT_PARAMETER!r}' + need
      + ' (or --tfds)')
  paths.add_argument(
      '--tfds', metavar='NAME',
      help='read the TensorFlow Datasets data set NAME (28x28x1 uint8 images, '
      'labels 0..9, e.g. mnist, fashion_mnist) instead of --data-root, as '
      'prepared in --tfds-data-dir; nothing is downloaded or prepared in a '
      'task (see docs/kubeflow.md). No data_root runtime parameter then.')
  paths.add_argument(
      '--tfds-data-dir', metavar='URI',
      help='the TFDS data directory the data set was prepared into, once, '
      'e.g. gs://BUCKET/tensorflow_datasets (with --tfds; required then)')
  paths.add_argument(
      '--serving-root', metavar='URI',
      help='the push destination (TensorFlow Serving model base path): '
      'blessed decoders go to <serving-root>/<version>/, and the newest one '
      "is the evaluator's baseline" + need)
  paths.add_argument(
      '--image', metavar='IMAGE',
      help='the image built from ./Dockerfile, pushed to a registry the '
      'cluster pulls from, e.g. us-docker.pkg.dev/P/R/mnist-vae-tfx:TAG; '
      'prefer a unique tag or a digest to :latest' + need)
  s3 = parser.add_argument_group(
      's3:// storage (when a path above is s3://; docs/kubeflow.md)')
  s3.add_argument(
      '--s3-endpoint', metavar='URL',
      help='the S3 API endpoint, with its scheme, e.g. '
      'http://minio-service.kubeflow:9000 (the MinIO of a stock Kubeflow '
      'Pipelines install); default: AWS S3. Compiled into every task as '
      'S3_ENDPOINT (TensorFlow) and AWS_ENDPOINT_URL_S3 (Beam).')
  s3.add_argument(
      '--s3-region', default=DEFAULT_S3_REGION, metavar='REGION',
      help='the S3 region (AWS_REGION of every task).')
  s3.add_argument(
      '--s3-secret', default=DEFAULT_S3_SECRET, metavar='NAME',
      help='the Kubernetes secret in the run\'s namespace whose keys '
      f'{" and ".join(S3_SECRET_KEYS)} become every task\'s '
      f'{" and ".join(S3_SECRET_KEYS.values())}; "" for none (credentials '
      'from the pod\'s service account, e.g. IRSA on EKS).')
  parser.add_argument(
      '--max-examples', type=flags.positive_int, default=None,
      metavar='N',
      help='use only the first N examples of each split (quick cluster '
      'smoke runs); default: all.')
  parser.add_argument(
      '--beam-arg', action='append', default=[], metavar='ARG',
      help='extra Beam pipeline argument for every Beam-based task, '
      'repeatable, appended after the defaults '
      f'({" ".join(DEFAULT_BEAM_ARGS)} --direct_num_workers=<--data-cpu, '
      'rounded down>), e.g. '
      '--beam-arg=--runner=DataflowRunner --beam-arg=--project=P '
      '--beam-arg=--region=R --beam-arg=--temp_location=gs://B/tmp '
      '--beam-arg=--sdk_container_image=IMAGE (see docs/kubeflow.md).')
  parser.add_argument(
      '--verbose', action='store_true',
      help='show TensorFlow, TFX (absl) and client library INFO logs.')
  resources = parser.add_argument_group(
      'resources: what the container of each heavy task requests (and is '
      'limited to); the other tasks get the namespace defaults')
  resources.add_argument(
      '--trainer-cpu', type=flags.positive_float, default=DEFAULT_TRAINER_CPU, metavar='N',
      help='CPU cores of the Trainer task.')
  resources.add_argument(
      '--trainer-memory-gb', type=flags.positive_float, default=DEFAULT_TRAINER_MEMORY_GB,
      metavar='GB', help='memory of the Trainer task, in GB (10^9 bytes).')
  resources.add_argument(
      '--data-cpu', type=flags.positive_float, default=DEFAULT_DATA_CPU, metavar='N',
      help=f'CPU cores of each of the ExampleGen, {", ".join(DATA_TASKS)}.')
  resources.add_argument(
      '--data-memory-gb', type=flags.positive_float, default=DEFAULT_DATA_MEMORY_GB,
      metavar='GB', help='memory of each of those tasks, in GB.')
  parser.add_argument(
      '--enable-cache', action='store_true',
      help='compile with KFP caching on. Off by default: open-source KFP '
      'would then serve ExampleGen, and so every task, from the first run, '
      'never reading new data in --data-root.')
  flags.add_training_flags(parser, '--serving-root')


def build_parser() -> argparse.ArgumentParser:
  """The command line: `compile` and `deploy` subcommands."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  parser = exit_codes.ArgumentParser(
      description='Compile the mnist-vae-tfx pipeline for Kubeflow Pipelines '
      'v2 (KubeflowV2DagRunner, pipeline spec 2.1), and deploy it as a '
      'recurring run on Kubeflow Pipelines or a Vertex AI schedule.')
  commands = parser.add_subparsers(dest='command', required=True)

  compile_parser = commands.add_parser(
      'compile', help='write the KFP v2 YAML package',
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  compile_parser.add_argument(
      '--output', required=True, metavar='FILE.yaml',
      help='the package to write (.yaml or .yml: kfp.Client rejects .json).')
  _add_pipeline_flags(compile_parser, required=True)

  deploy_parser = commands.add_parser(
      'deploy', help='upload and schedule on Kubeflow Pipelines or Vertex AI',
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  deploy_parser.add_argument(
      '--package', metavar='FILE.yaml',
      help='an already compiled package (from `compile`); without it the '
      'pipeline flags below are compiled to a temporary package first.')
  deploy_parser.add_argument(
      '--cron', required=True,
      help='when to run. Kubeflow Pipelines: 6 fields, seconds first, e.g. '
      '"0 0 3 * * *" (03:00 every day, UTC); Vertex AI: 5 fields, e.g. '
      '"0 3 * * *" or "TZ=Europe/Berlin 0 3 * * *".')
  deploy_parser.add_argument(
      '--max-concurrency', type=flags.positive_int,
      default=kubeflow_deploy.DEFAULT_MAX_CONCURRENCY, metavar='N',
      help='runs of this schedule that may run at once; 1 keeps two runs '
      'from pushing to --serving-root concurrently.')
  deploy_parser.add_argument(
      '--run-parameter', action='append', default=[], metavar='NAME=VALUE',
      help='value of a runtime parameter for the scheduled runs, repeatable: '
      f'{DATA_ROOT_PARAMETER}=URI (the folder with the span-N/ drops or the '
      'IDX files) or '
      f'{EPOCHS_PARAMETER}=N; without it a run uses the value compiled from '
      '--data-root / --epochs.')
  deploy_parser.add_argument(
      '--schedule-name', default=None, metavar='NAME',
      help='display name of the recurring run / schedule; default: '
      '"<pipeline name> retraining".')
  kfp_group = deploy_parser.add_argument_group('Kubeflow Pipelines')
  kfp_group.add_argument(
      '--host', metavar='URL',
      help='the KFP API endpoint, e.g. http://localhost:8080 after '
      '`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`.')
  kfp_group.add_argument(
      '--experiment', default=DEFAULT_EXPERIMENT,
      help='experiment the recurring run belongs to (created if missing).')
  kfp_group.add_argument(
      '--namespace', default=None,
      help='Kubernetes namespace (multi-user Kubeflow only).')
  kfp_group.add_argument(
      '--version-name', default=None, metavar='NAME',
      help='name of the uploaded pipeline version; default: '
      '"<pipeline name>-<UTC time>".')
  kfp_group.add_argument(
      '--catchup', action='store_true',
      help='backfill every missed interval after the schedule was paused '
      '(default: only the latest one).')
  kfp_group.add_argument(
      '--keep-existing', action='store_true',
      help='keep recurring runs of the same name in the experiment; by '
      'default they are deleted once the new one exists, so a redeploy '
      'does not train twice per tick.')
  vertex = deploy_parser.add_argument_group('Vertex AI Pipelines')
  vertex.add_argument('--vertex', action='store_true',
                      help='create a Vertex AI schedule instead.')
  vertex.add_argument('--project', help='Google Cloud project (--vertex).')
  vertex.add_argument('--region', help='Vertex AI region, e.g. us-central1 '
                      '(--vertex).')
  vertex.add_argument('--service-account', default=None,
                      help='service account the scheduled runs use '
                      '(--vertex; default: the Compute Engine default).')
  _add_pipeline_flags(deploy_parser, required=False)
  return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """Parses and checks the command line; exits with usage on a bad value."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    args.hyperparameters = flags.hyperparameters_from_args(args)
    _check_args(args)
  except ValueError as e:  # Hyperparameters' own checks, and UsageError.
    parser.error(str(e))
  return args


def _check_args(args: argparse.Namespace) -> None:
  """Raises UsageError for flag combinations that cannot work."""
  if args.tfds and args.data_root:
    raise UsageError('--data-root and --tfds are two data sources: give one')
  if args.tfds_data_dir and not args.tfds:
    raise UsageError('--tfds-data-dir needs --tfds')
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
      raise UsageError(
          f'{", ".join(missing)} required'
          + ('' if args.command == 'compile' else ' (or --package)'))
    for flag, value in compile_flags.items():
      if flag != '--image' and not _URI_RE.match(value):
        raise UsageError(
            f'{flag} {value}: must be a URI every task pod can reach, such as '
            'gs://BUCKET/path; a local path exists only on this machine')
    if args.s3_endpoint and not uses_s3(args):
      raise UsageError('--s3-endpoint is given, but no path is s3://')
    if args.s3_endpoint and not _URI_RE.match(args.s3_endpoint):
      raise UsageError(f'--s3-endpoint {args.s3_endpoint}: needs its scheme, '
                       'e.g. http://minio-service.kubeflow:9000')
  if args.command == 'compile':
    kubeflow_deploy.check_package_path(args.output)
    return
  if args.package:
    kubeflow_deploy.check_package_path(args.package)
    given = [flag for flag, value in compile_flags.items() if value]
    given += ['--tfds'] if args.tfds else []
    if given:
      raise UsageError(
          f'--package is already compiled: drop {", ".join(given)}, or drop '
          '--package to compile from the flags')
  if args.vertex:
    if not (args.project and args.region):
      raise UsageError('--vertex needs --project and --region')
    kubeflow_deploy.check_cron(args.cron, kubeflow_deploy.VERTEX_CRON_FIELDS)
  else:
    if not args.host:
      raise UsageError('--host is required (or --vertex)')
    kubeflow_deploy.check_cron(args.cron, kubeflow_deploy.KFP_CRON_FIELDS)


# ----------------------------------------------------------------------------
# compile


def beam_args(args: argparse.Namespace) -> List[str]:
  """The Beam arguments of every Beam-based task: the defaults, one worker
  per CPU core of the task's limit, then the user's --beam-arg values."""
  workers = max(1, int(args.data_cpu))
  return [*DEFAULT_BEAM_ARGS, f'--direct_num_workers={workers}',
          *args.beam_arg]


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


def compile_pipeline(args: argparse.Namespace, output: str) -> str:
  """Compiles the pipeline to the YAML package `output`; returns its path."""
  from components.tfds_example_gen import tfds_source  # pylint: disable=g-import-not-at-top
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  from tfx.orchestration import data_types  # pylint: disable=g-import-not-at-top

  kubeflow_deploy.check_package_path(output)
  output = os.path.abspath(output)
  if args.tfds:
    # Prepared beforehand into the bucket; the task only reads it.
    try:
      source = tfds_source.locate(args.tfds, args.tfds_data_dir)
    except tfds_source.TfdsSourceError as e:
      raise UsageError(f'--tfds {e}') from e
    data_root, example_gen = None, TFDS_EXAMPLE_GEN
    data_name = f'TFDS {source.name} {source.version} in {source.dataset_dir}'
  else:
    source, example_gen = None, IDX_EXAMPLE_GEN
    data_root = data_types.RuntimeParameter(
        name=DATA_ROOT_PARAMETER, ptype=str, default=args.data_root)
    data_name = f'data root {args.data_root}'
  epochs = data_types.RuntimeParameter(
      name=EPOCHS_PARAMETER, ptype=int, default=args.hyperparameters.epochs)
  runtime_parameters = [p for p in (data_root, epochs) if p is not None]
  resources = {}
  for tasks, cpu, memory in ((TRAINER_TASKS, args.trainer_cpu,
                              args.trainer_memory_gb),
                             ((example_gen,) + DATA_TASKS, args.data_cpu,
                              args.data_memory_gb)):
    for task in tasks:
      resources[task] = pipeline_lib.ResourceSpec(
          cpu_request=cpu, cpu_limit=cpu, memory_request=memory,
          memory_limit=memory)
  pipeline = pipeline_lib.create_pipeline(
      pipeline_name=pipeline_lib.PIPELINE_NAME,
      pipeline_root=args.pipeline_root,
      data_root=data_root,
      tfds_source=source,
      epochs=epochs,
      resources=resources,
      serving_dir=args.serving_root,
      schema_file=IMAGE_SCHEMA_FILE,
      max_examples=args.max_examples,
      **flags.training_kwargs(args),
      beam_pipeline_args=beam_args(args),
      metadata_connection_config=None,  # The cluster's ML Metadata.
      enable_cache=args.enable_cache,
  )
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=args.image,
          # Every task runs the project's entrypoint, which repairs what the
          # open-source KFP driver leaves out, then runs TFX's.
          default_commands=list(ENTRYPOINT_COMMAND),
          use_pipeline_spec_2_1=True),
      output_dir=os.path.dirname(output),
      output_filename=os.path.basename(output))
  runner.run(pipeline)
  env, secret_env = s3_environment(args)
  kubeflow_deploy.finish_package(
      output, pipeline_root=args.pipeline_root, env=env,
      secret_env=secret_env,
      # TFX keeps the defaults out of the spec; KFP reads them there.
      parameter_defaults={p.name: p.default for p in runtime_parameters},
      resources={task: json_format.MessageToDict(spec)
                 for task, spec in resources.items()})
  logger.info('Compiled %s for image %s (pipeline root %s, %s, '
              'caching %s) to %s', pipeline_lib.PIPELINE_NAME, args.image,
              args.pipeline_root, data_name,
              'on' if args.enable_cache else 'off', output)
  return output


# ----------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> Dict[str, str]:
  """Runs the parsed command; returns what it created."""
  if args.command == 'compile':
    return {'package': compile_pipeline(args, args.output)}
  with tempfile.TemporaryDirectory(prefix='mnist-vae-tfx-') as tmp:
    package = args.package or compile_pipeline(
        args, os.path.join(tmp, 'pipeline.yaml'))
    parameters = kubeflow_deploy.parse_run_parameters(package,
                                                      args.run_parameter)
    if args.vertex:
      return kubeflow_deploy.deploy_vertex(
          package, project=args.project, region=args.region, cron=args.cron,
          max_concurrency=args.max_concurrency,
          schedule_name=args.schedule_name,
          service_account=args.service_account, parameters=parameters)
    return kubeflow_deploy.deploy_kfp(
        package, host=args.host, cron=args.cron, experiment=args.experiment,
        max_concurrency=args.max_concurrency,
        schedule_name=args.schedule_name, version_name=args.version_name,
        namespace=args.namespace, catchup=args.catchup,
        keep_existing=args.keep_existing, parameters=parameters)


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  # TensorFlow reads its log level when imported: configure logging first.
  console.configure_logging(console.verbose_requested(argv))
  args = parse_args(argv)
  from google.api_core import exceptions as google_exceptions  # pylint: disable=g-import-not-at-top
  from google.auth import exceptions as auth_exceptions  # pylint: disable=g-import-not-at-top
  import kfp_server_api  # pylint: disable=g-import-not-at-top
  import urllib3  # pylint: disable=g-import-not-at-top
  try:
    result = run_command(args)
  except UsageError as e:
    logger.error('%s', e)
    return exit_codes.USAGE
  except kfp_server_api.ApiException as e:
    logger.error('Kubeflow Pipelines API: HTTP %s %s: %s', e.status, e.reason,
                 e.body)
    return 1
  except urllib3.exceptions.HTTPError as e:
    logger.error('cannot reach Kubeflow Pipelines at %s: %s', args.host, e)
    return 1
  except (google_exceptions.GoogleAPIError,
          auth_exceptions.GoogleAuthError) as e:
    logger.error('Vertex AI: %s', e)
    return 1
  for key, value in result.items():
    if value:
      print(f'{key}: {value}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
