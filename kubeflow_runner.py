"""Compiles the mnist-vae-tfx pipeline for Kubeflow Pipelines v2; schedules it.

The pipeline is the one `create_pipeline()` builds for the local runner; this
runner only chooses paths, the container image and the orchestrator:

  compile  KubeflowV2DagRunner -> a KFP v2 YAML package (pipeline spec 2.1)
  deploy   upload that package to Kubeflow Pipelines (a new version if the
           pipeline exists), get or create the experiment and create a
           recurring run; or, with --vertex, a Vertex AI Pipelines schedule.

What differs from the local runner (see docs/kubeflow.md):

* The data root is one fixed folder (e.g. gs://BUCKET/mnist/latest/) that the
  data-drop process overwrites; `span-N/` folders are not used, because
  open-source KFP never runs the ExampleGen driver that resolves {SPAN}.
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
import datetime
import logging
import os
import re
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from pipeline import console

logger = logging.getLogger(__name__)

# Beam arguments every Beam-based task gets before the user's --beam-arg
# values: the DirectRunner inside the task's pod, one worker process per core
# the pod sees (0 = all). --beam-arg=--runner=DataflowRunner (or
# FlinkRunner, PortableRunner) moves the Beam work off the pod.
DEFAULT_BEAM_ARGS = (
    '--direct_running_mode=multi_processing',
    '--direct_num_workers=0',
)
DEFAULT_EXPERIMENT = 'mnist-vae-tfx'
DEFAULT_MAX_CONCURRENCY = 1
# KFP's cron (robfig/cron) has six fields, seconds first; Vertex AI's has the
# usual five, optionally after a "TZ=..." or "CRON_TZ=..." prefix.
KFP_CRON_FIELDS = 6
VERTEX_CRON_FIELDS = 5
_URI_RE = re.compile(r'^[a-z][a-z0-9+.-]*://', re.IGNORECASE)
_TZ_PREFIX_RE = re.compile(r'^(CRON_TZ|TZ)=\S+\s+')


class UsageError(ValueError):
  """A flag value that cannot work on a cluster; the message says why."""


# ----------------------------------------------------------------------------
# Flags.


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
      help='the folder with the four MNIST IDX files (raw or .gz) that the '
      'data-drop process overwrites, e.g. gs://BUCKET/mnist/latest/. Every '
      'run reads it as it is when ExampleGen starts; span-N/ folders are not '
      'used on Kubeflow' + need)
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
  parser.add_argument(
      '--max-examples', type=flags.positive_int, default=None,
      metavar='N',
      help='use only the first N examples of each split (quick cluster '
      'smoke runs); default: all.')
  parser.add_argument(
      '--beam-arg', action='append', default=[], metavar='ARG',
      help='extra Beam pipeline argument for every Beam-based task, '
      'repeatable, appended after the defaults '
      f'({" ".join(DEFAULT_BEAM_ARGS)}), e.g. '
      '--beam-arg=--runner=DataflowRunner --beam-arg=--project=P '
      '--beam-arg=--region=R --beam-arg=--temp_location=gs://B/tmp '
      '--beam-arg=--sdk_container_image=IMAGE (see docs/kubeflow.md).')
  parser.add_argument(
      '--verbose', action='store_true',
      help='show TensorFlow, TFX (absl) and client library INFO logs.')
  parser.add_argument(
      '--enable-cache', action='store_true',
      help='compile with KFP caching on. Off by default: open-source KFP '
      'would then serve ExampleGen, and so every task, from the first run, '
      'never reading new data in --data-root.')
  flags.add_training_flags(parser, '--serving-root')


def build_parser() -> argparse.ArgumentParser:
  """The command line: `compile` and `deploy` subcommands."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
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
      default=DEFAULT_MAX_CONCURRENCY, metavar='N',
      help='runs of this schedule that may run at once; 1 keeps two runs '
      'from pushing to --serving-root concurrently.')
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
  compile_flags = {
      '--pipeline-root': args.pipeline_root,
      '--data-root': args.data_root,
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
  if args.command == 'compile':
    check_package_path(args.output)
    return
  if args.package:
    check_package_path(args.package)
    given = [flag for flag, value in compile_flags.items() if value]
    if given:
      raise UsageError(
          f'--package is already compiled: drop {", ".join(given)}, or drop '
          '--package to compile from the flags')
  if args.vertex:
    if not (args.project and args.region):
      raise UsageError('--vertex needs --project and --region')
    check_cron(args.cron, VERTEX_CRON_FIELDS)
  else:
    if not args.host:
      raise UsageError('--host is required (or --vertex)')
    check_cron(args.cron, KFP_CRON_FIELDS)


def check_package_path(path: str) -> None:
  """Only YAML packages: kfp.Client 2.0.1 rejects .json pipeline packages."""
  if not path.endswith(('.yaml', '.yml')):
    raise UsageError(
        f'{path}: the package must be a .yaml or .yml file (kfp.Client '
        'accepts .yaml, .yml, .zip, .tar.gz and rejects .json)')


def check_cron(cron: str, fields: int) -> None:
  """Checks the number of cron fields for KFP (6) or Vertex AI (5)."""
  if cron.startswith('@'):  # @daily, @every 6h, ...: robfig/cron only.
    if fields == KFP_CRON_FIELDS:
      return
    raise UsageError(f'--cron {cron!r}: Vertex AI needs a 5-field cron')
  body = _TZ_PREFIX_RE.sub('', cron) if fields == VERTEX_CRON_FIELDS else cron
  count = len(body.split())
  if count == fields:
    return
  if fields == KFP_CRON_FIELDS and count == VERTEX_CRON_FIELDS:
    raise UsageError(
        f'--cron {cron!r}: Kubeflow Pipelines cron has 6 fields, seconds '
        f'first; did you mean "0 {cron}"?')
  if fields == VERTEX_CRON_FIELDS and count == KFP_CRON_FIELDS:
    raise UsageError(
        f'--cron {cron!r}: Vertex AI cron has 5 fields (no seconds); did you '
        f'mean "{" ".join(body.split()[1:])}"?')
  raise UsageError(f'--cron {cron!r}: expected {fields} fields, got {count}')


# ----------------------------------------------------------------------------
# compile


def compile_pipeline(args: argparse.Namespace, output: str) -> str:
  """Compiles the pipeline to the YAML package `output`; returns its path."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  import yaml  # pylint: disable=g-import-not-at-top

  check_package_path(output)
  output = os.path.abspath(output)
  pipeline = pipeline_lib.create_pipeline(
      pipeline_name=pipeline_lib.PIPELINE_NAME,
      pipeline_root=args.pipeline_root,
      data_root=args.data_root,
      serving_dir=args.serving_root,
      # Open-source KFP does not run the ExampleGen driver that resolves
      # {SPAN}: read the fixed data root as it is.
      use_spans=False,
      max_examples=args.max_examples,
      **flags.training_kwargs(args),
      beam_pipeline_args=list(DEFAULT_BEAM_ARGS) + list(args.beam_arg),
      metadata_connection_config=None,  # The cluster's ML Metadata.
      enable_cache=args.enable_cache,
  )
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=args.image, use_pipeline_spec_2_1=True),
      output_dir=os.path.dirname(output),
      output_filename=os.path.basename(output))
  runner.run(pipeline)
  # The YAML holds only the PipelineSpec, so the pipeline root (which TFX
  # puts in the PipelineJob's runtime config) would be lost and KFP would
  # write outputs to its default minio:// root, which TensorFlow cannot open.
  # Record it as the spec's defaultPipelineRoot, as `kfp.dsl.pipeline` does.
  with open(output, encoding='utf-8') as f:
    text = f.read()
  header = ''.join(line for line in text.splitlines(keepends=True)
                   if line.startswith('#'))
  spec = yaml.safe_load(text)
  spec['defaultPipelineRoot'] = args.pipeline_root
  with open(output, 'w', encoding='utf-8') as f:
    f.write(header)
    yaml.safe_dump(spec, f, sort_keys=True)
  logger.info('Compiled %s for image %s (pipeline root %s, data root %s, '
              'caching %s) to %s', pipeline_lib.PIPELINE_NAME, args.image,
              args.pipeline_root, args.data_root,
              'on' if args.enable_cache else 'off', output)
  return output


# ----------------------------------------------------------------------------
# deploy


def read_package(path: str) -> Dict[str, Any]:
  """The pipeline name and default pipeline root of a compiled package."""
  import yaml  # pylint: disable=g-import-not-at-top
  with open(path, encoding='utf-8') as f:
    spec = yaml.safe_load(f)
  return {'name': spec['pipelineInfo']['name'],
          'pipeline_root': spec.get('defaultPipelineRoot')}


def _timestamp() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime(
      '%Y%m%d-%H%M%S')


def deploy_kfp(package: str, *, host: str, cron: str, experiment: str,
               max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
               schedule_name: Optional[str] = None,
               version_name: Optional[str] = None,
               namespace: Optional[str] = None, catchup: bool = False,
               keep_existing: bool = False) -> Dict[str, str]:
  """Uploads `package` to KFP and creates a recurring run of it.

  Args:
    package: compiled YAML package.
    host: KFP API endpoint.
    cron: 6-field cron expression (seconds first).
    experiment: experiment name; created if it does not exist.
    max_concurrency: how many runs of the schedule may run at once.
    schedule_name: recurring run display name.
    version_name: pipeline version name.
    namespace: Kubernetes namespace (multi-user deployments).
    catchup: backfill missed intervals.
    keep_existing: keep recurring runs of the same name in the experiment.

  Returns:
    The ids: pipeline_id, pipeline_version_id, experiment_id,
    recurring_run_id, and the deleted recurring runs' ids, comma-separated.
  """
  import kfp  # pylint: disable=g-import-not-at-top

  check_package_path(package)
  check_cron(cron, KFP_CRON_FIELDS)
  info = read_package(package)
  name = info['name']
  version_name = version_name or f'{name}-{_timestamp()}'
  schedule_name = schedule_name or f'{name} retraining'
  client = kfp.Client(host=host, namespace=namespace or 'kubeflow')

  pipeline_id = client.get_pipeline_id(name)
  if pipeline_id is None:
    pipeline = client.upload_pipeline(
        package, pipeline_name=name, namespace=namespace,
        description='mnist-vae-tfx: TFX pipeline training the MNIST VAE')
    pipeline_id = pipeline.pipeline_id
    # Uploading a pipeline also creates its first version: find its id.
    versions = client.list_pipeline_versions(
        pipeline_id, page_size=1, sort_by='created_at desc')
    if not versions.pipeline_versions:
      raise RuntimeError(f'pipeline {pipeline_id} was uploaded without a '
                         'version')
    version_id = versions.pipeline_versions[0].pipeline_version_id
    logger.info('Uploaded new pipeline %s (%s), version %s', name,
                pipeline_id, version_id)
  else:
    version = client.upload_pipeline_version(
        package, pipeline_version_name=version_name, pipeline_id=pipeline_id)
    version_id = version.pipeline_version_id
    logger.info('Uploaded version %s (%s) of pipeline %s (%s)', version_name,
                version_id, name, pipeline_id)

  experiment_id = client.create_experiment(
      name=experiment, namespace=namespace).experiment_id
  old_ids = [] if keep_existing else _recurring_run_ids(
      client, experiment_id, schedule_name, namespace)
  recurring_run = client.create_recurring_run(
      experiment_id=experiment_id,
      job_name=schedule_name,
      description=f'Retrains {name} on the data in its data root.',
      cron_expression=cron,
      max_concurrency=max_concurrency,
      no_catchup=not catchup,
      pipeline_id=pipeline_id,
      version_id=version_id,
      enabled=True,
      pipeline_root=info['pipeline_root'],
  )
  for old_id in old_ids:
    client.delete_recurring_run(old_id)
    logger.info('Deleted recurring run %s, replaced by %s', old_id,
                recurring_run.recurring_run_id)
  logger.info('Recurring run %r (%s) in experiment %r (%s): cron %r, at most '
              '%d at once', schedule_name, recurring_run.recurring_run_id,
              experiment, experiment_id, cron, max_concurrency)
  return {
      'pipeline_id': pipeline_id,
      'pipeline_version_id': version_id,
      'experiment_id': experiment_id,
      'recurring_run_id': recurring_run.recurring_run_id,
      'replaced_recurring_run_ids': ','.join(old_ids),
  }


def _recurring_run_ids(client: Any, experiment_id: str, display_name: str,
                       namespace: Optional[str]) -> List[str]:
  """Ids of the experiment's recurring runs named `display_name`."""
  ids, page_token = [], ''
  while True:
    response = client.list_recurring_runs(
        page_token=page_token, page_size=100, experiment_id=experiment_id,
        namespace=namespace)
    ids += [run.recurring_run_id for run in response.recurring_runs or []
            if run.display_name == display_name]
    page_token = response.next_page_token
    if not page_token:
      return ids


def deploy_vertex(package: str, *, project: str, region: str, cron: str,
                  max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                  schedule_name: Optional[str] = None,
                  service_account: Optional[str] = None) -> Dict[str, str]:
  """Creates a Vertex AI Pipelines schedule of `package`.

  Args:
    package: compiled YAML package.
    project: Google Cloud project.
    region: Vertex AI region.
    cron: 5-field cron expression, optionally after "TZ=...".
    max_concurrency: how many runs of the schedule may run at once.
    schedule_name: schedule display name.
    service_account: service account the runs use.

  Returns:
    The schedule's resource name.
  """
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top

  check_package_path(package)
  check_cron(cron, VERTEX_CRON_FIELDS)
  info = read_package(package)
  job = aiplatform.PipelineJob(
      display_name=info['name'],
      template_path=package,
      pipeline_root=info['pipeline_root'],
      enable_caching=None,  # As compiled (off unless --enable-cache).
      project=project,
      location=region)
  schedule = job.create_schedule(
      cron=cron,
      display_name=schedule_name or f'{info["name"]} retraining',
      max_concurrent_run_count=max_concurrency,
      service_account=service_account)
  logger.info('Vertex AI schedule %s: cron %r, at most %d at once',
              schedule.resource_name, cron, max_concurrency)
  return {'schedule': schedule.resource_name}


# ----------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> Dict[str, str]:
  """Runs the parsed command; returns what it created."""
  if args.command == 'compile':
    return {'package': compile_pipeline(args, args.output)}
  with tempfile.TemporaryDirectory(prefix='mnist-vae-tfx-') as tmp:
    package = args.package or compile_pipeline(
        args, os.path.join(tmp, 'pipeline.yaml'))
    if args.vertex:
      return deploy_vertex(
          package, project=args.project, region=args.region, cron=args.cron,
          max_concurrency=args.max_concurrency,
          schedule_name=args.schedule_name,
          service_account=args.service_account)
    return deploy_kfp(
        package, host=args.host, cron=args.cron, experiment=args.experiment,
        max_concurrency=args.max_concurrency,
        schedule_name=args.schedule_name, version_name=args.version_name,
        namespace=args.namespace, catchup=args.catchup,
        keep_existing=args.keep_existing)


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
    return 2
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
