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

The package's flags, their checks and what is written into the YAML after
TFX are in pipeline/kubeflow_package.py; uploading and scheduling in
pipeline/kubeflow_deploy.py. Run `python kubeflow_runner.py compile --help`
or `deploy --help` for flags.
"""

import argparse
import logging
import os
import sys
import tempfile
from typing import Dict, Optional, Sequence

from layouts import contracts
from pipeline import console
from pipeline import exit_codes
from pipeline import kubeflow_deploy
from pipeline import kubeflow_package

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
  """The command line: `compile` and `deploy` subcommands, their flags
  generated from pipeline/runner_config.py's CompileConfig and
  DeployConfig."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  from pipeline import runner_config  # pylint: disable=g-import-not-at-top
  parser = exit_codes.ArgumentParser(
      description='Compile the mnist-vae-tfx pipeline for Kubeflow Pipelines '
      'v2 (KubeflowV2DagRunner, pipeline spec 2.1), and deploy it as a '
      'recurring run on Kubeflow Pipelines or a Vertex AI schedule.')
  commands = parser.add_subparsers(dest='command', required=True)
  for name, help_text, cls, required in (
      ('compile', 'write the KFP v2 YAML package',
       runner_config.CompileConfig, True),
      ('deploy', 'upload and schedule on Kubeflow Pipelines or Vertex AI',
       runner_config.DeployConfig, False)):
    flags.add_flags(
        commands.add_parser(
            name, help=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter),
        cls, **kubeflow_package.help_names(required))
  return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """Parses and checks the command line; exits with usage on a bad value."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    args.config = flags.config_from_args(args)  # The PipelineConfig part.
    kubeflow_package.check_args(args)
    if args.command == 'deploy':
      kubeflow_deploy.check_args(args)
  except ValueError as e:  # Hyperparameters' own checks, and UsageError.
    parser.error(str(e))
  return args


# ----------------------------------------------------------------------------
# compile


def compile_pipeline(args: argparse.Namespace, output: str) -> str:
  """Compiles the pipeline to the YAML package `output`; returns its path."""
  from components.example_gen import tfds_source  # pylint: disable=g-import-not-at-top
  from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner  # pylint: disable=g-import-not-at-top
  from tfx.orchestration import data_types  # pylint: disable=g-import-not-at-top

  kubeflow_deploy.check_package_path(output)
  output = os.path.abspath(output)
  if args.tfds:
    # Prepared beforehand into the bucket; the task only reads it.
    try:
      source = tfds_source.locate(args.tfds, args.tfds_data_dir)
    except tfds_source.TfdsSourceError as e:
      raise kubeflow_deploy.UsageError(f'--tfds {e}') from e
    data_root, example_gen = None, contracts.TFDS_EXAMPLE_GEN
    data_name = f'TFDS {source.name} {source.version} in {source.dataset_dir}'
  else:
    source, example_gen = None, contracts.IDX_EXAMPLE_GEN
    data_root = data_types.RuntimeParameter(
        name=kubeflow_deploy.DATA_ROOT_PARAMETER, ptype=str,
        default=args.data_root)
    data_name = f'data root {args.data_root}'
  epochs = data_types.RuntimeParameter(
      name=kubeflow_deploy.EPOCHS_PARAMETER, ptype=int,
      default=args.config.training.hyperparameters.epochs)
  runtime_parameters = [p for p in (data_root, epochs) if p is not None]
  resources = kubeflow_package.task_resources(args, example_gen)
  pipeline = pipeline_lib.create_pipeline(
      pipeline_name=pipeline_lib.PIPELINE_NAME,
      pipeline_root=args.pipeline_root,
      data_root=data_root,
      tfds_source=source,
      epochs=epochs,
      resources=resources,
      serving_dir=args.serving_root,
      schema_file=kubeflow_package.IMAGE_SCHEMA_FILE,
      max_examples=args.max_examples,
      config=args.config,
      beam_pipeline_args=kubeflow_package.beam_args(args),
      metadata_connection_config=None,  # The cluster's ML Metadata.
      enable_cache=args.enable_cache,
  )
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
      config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
          default_image=args.image,
          # Every task runs the project's entrypoint, which repairs what the
          # open-source KFP driver leaves out, then runs TFX's.
          default_commands=list(kubeflow_package.ENTRYPOINT_COMMAND),
          use_pipeline_spec_2_1=True),
      output_dir=os.path.dirname(output),
      output_filename=os.path.basename(output))
  runner.run(pipeline)
  # What TFX leaves out: pipeline root, defaults, resources, s3:// settings.
  kubeflow_package.finish(output, args, runtime_parameters, resources)
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
  except kubeflow_deploy.UsageError as e:
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
