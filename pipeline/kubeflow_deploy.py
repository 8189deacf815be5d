"""Deploying a compiled pipeline package: Kubeflow Pipelines or Vertex AI.

Used by `kubeflow_runner.py deploy`; testable without a cluster (the tests
run `deploy_kfp` against a local fake of the KFP v2beta1 REST API).

  deploy_kfp     upload to Kubeflow Pipelines (a new version if the pipeline
                 exists), get or create the experiment, create a recurring
                 run (replacing the experiment's one of the same name).
  deploy_vertex  a Vertex AI Pipelines schedule of the package.

Also the cross-checks of `deploy`'s own flags (check_args; the flags are
pipeline/runner_config.py's DeployConfig) and the checks both
targets share (package file type, cron syntax, run parameters). What
`compile` writes into the package after TFX is in kubeflow_package.py.
"""

import argparse
import datetime
import logging
import re
from typing import Any, Dict, List, Optional, Sequence

logger = logging.getLogger(__name__)

# Pipeline inputs (KFP runtime parameters) an operator may set per run or per
# recurring run (--run-parameter) without compiling again; their defaults are
# the compile flags --data-root and --epochs.
DATA_ROOT_PARAMETER = 'data_root'
EPOCHS_PARAMETER = 'epochs'
# KFP's cron (robfig/cron) has six fields, seconds first; Vertex AI's has the
# usual five, optionally after a "TZ=..." or "CRON_TZ=..." prefix.
KFP_CRON_FIELDS = 6
VERTEX_CRON_FIELDS = 5
_TZ_PREFIX_RE = re.compile(r'^(CRON_TZ|TZ)=\S+\s+')


class UsageError(ValueError):
  """A flag value that cannot work on a cluster; the message says why."""


def check_args(args: argparse.Namespace) -> None:
  """Raises UsageError for `deploy` flags that cannot work together."""
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


def _documents(package: str) -> List[Dict[str, Any]]:
  """The package's YAML documents: the pipeline spec, then the platform spec
  if it has one."""
  import yaml  # pylint: disable=g-import-not-at-top
  with open(package, encoding='utf-8') as f:
    return list(yaml.safe_load_all(f))


def _pipeline_spec(package: str) -> Dict[str, Any]:
  return _documents(package)[0]


def has_platform_spec(package: str) -> bool:
  return len(_documents(package)) > 1


def runtime_parameters(package: str) -> Dict[str, Dict[str, Any]]:
  """The package's runtime parameters: name -> type and default value."""
  spec = _pipeline_spec(package)
  return dict(spec['root'].get('inputDefinitions', {}).get('parameters', {}))


def parse_run_parameters(package: str,
                         assignments: Sequence[str]) -> Dict[str, Any]:
  """`NAME=VALUE` strings as values of the package's runtime parameters.

  Raises:
    UsageError: not NAME=VALUE, an unknown name, or a value of the wrong type.
  """
  declared = runtime_parameters(package)
  values = {}
  for assignment in assignments:
    name, sep, text = assignment.partition('=')
    if not sep:
      raise UsageError(f'--run-parameter {assignment!r}: expected NAME=VALUE')
    if name not in declared:
      raise UsageError(
          f'--run-parameter {name}: the package has no such runtime '
          f'parameter (it has: {", ".join(sorted(declared)) or "none"})')
    kind = declared[name].get('parameterType')
    try:
      if kind == 'NUMBER_INTEGER':
        values[name] = int(text)
      elif kind == 'NUMBER_DOUBLE':
        values[name] = float(text)
      else:
        values[name] = text
    except ValueError as e:
      raise UsageError(f'--run-parameter {name}={text}: not a {kind} '
                       'value') from e
  return values


def read_package(path: str) -> Dict[str, Any]:
  """The pipeline name and default pipeline root of a compiled package."""
  spec = _pipeline_spec(path)
  return {'name': spec['pipelineInfo']['name'],
          'pipeline_root': spec.get('defaultPipelineRoot')}


def _timestamp() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime(
      '%Y%m%d-%H%M%S')


def deploy_kfp(package: str, *, host: str, cron: str, experiment: str,
               max_concurrency: int,
               schedule_name: Optional[str] = None,
               version_name: Optional[str] = None,
               namespace: Optional[str] = None, catchup: bool = False,
               keep_existing: bool = False,
               parameters: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
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
    parameters: runtime parameter values of the recurring run's runs (the
      package's defaults for the others).

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
      params=parameters or None,
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
                  max_concurrency: int,
                  schedule_name: Optional[str] = None,
                  service_account: Optional[str] = None,
                  parameters: Optional[Dict[str, Any]] = None
                  ) -> Dict[str, str]:
  """Creates a Vertex AI Pipelines schedule of `package`.

  Args:
    package: compiled YAML package.
    project: Google Cloud project.
    region: Vertex AI region.
    cron: 5-field cron expression, optionally after "TZ=...".
    max_concurrency: how many runs of the schedule may run at once.
    schedule_name: schedule display name.
    service_account: service account the runs use.
    parameters: runtime parameter values of the scheduled runs (the
      package's defaults for the others).

  Returns:
    The schedule's resource name.
  """
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top

  check_package_path(package)
  check_cron(cron, VERTEX_CRON_FIELDS)
  if has_platform_spec(package):
    raise UsageError(
        f'{package} carries a Kubernetes platform spec (compiled for s3:// '
        'storage), which Vertex AI does not run: compile with gs:// paths')
  info = read_package(package)
  job = aiplatform.PipelineJob(
      display_name=info['name'],
      template_path=package,
      pipeline_root=info['pipeline_root'],
      enable_caching=None,  # As compiled (off unless --enable-cache).
      parameter_values=parameters or None,
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
