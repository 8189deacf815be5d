"""The runners' own settings: paths, the orchestrator, and deployment.

The roots of the configuration tree. Each nests `components.config`'s
PipelineConfig (every setting of the components, with its default), and
adds what only a runner chooses: where data, outputs and the push
destination are, and for Kubeflow the image, storage, task resources and
schedule. Both runners' flags are generated from these fields by
`pipeline/flags.py`, the way the components' are, and the defaults of both
live here or in components/config.py, nowhere else:

  LocalRunnerConfig       local_runner.py
  CompileConfig           kubeflow_runner.py compile
  DeployConfig            kubeflow_runner.py deploy
    KubeflowPackageConfig   the compiled pipeline (both subcommands)

Flags that only some combinations require (e.g. --pipeline-root unless
--package) are checked by the runner, which knows the combination.
"""

import dataclasses
from typing import Optional, Tuple

from components import config as config_lib
from models import validation

setting = validation.setting
part = validation.part

# Help texts may name `{serving_subdir}` (local), `{need}` (whether a compile
# flag is required), `{data_root_parameter}`, `{epochs_parameter}`,
# `{default_beam_args}`, `{secret_keys}` and `{secret_variables}` (Kubeflow),
# which the runner fills in with `flags.add_flags(..., **names)`.


@dataclasses.dataclass(frozen=True)
class LocalSource(validation.Checked):
  """Where local_runner.py reads the data from."""
  data_dir: Optional[str] = setting(
      None, 'folder with the four MNIST IDX files (train-images-idx3-ubyte, '
      'train-labels-idx1-ubyte, t10k-images-idx3-ubyte, '
      't10k-labels-idx1-ubyte; raw or .gz), or with span-N/ folders of them, '
      'of which the newest is read. Defaults to the copy shipped in '
      'data/mnist', metavar='DIR')
  tfds: Optional[str] = setting(
      None, 'read the TensorFlow Datasets data set NAME instead (28x28x1 '
      'uint8 images, integer labels 0..9: e.g. mnist, fashion_mnist, kmnist); '
      'its train split becomes train, test becomes eval. Used as prepared in '
      '--tfds-data-dir, or prepared there offline from --tfds-manual-dir; '
      'nothing is downloaded', metavar='NAME')
  tfds_data_dir: Optional[str] = setting(
      None, "the TFDS data directory (default: TFDS's own, $TFDS_DATA_DIR or "
      '~/tensorflow_datasets)', metavar='DIR')
  tfds_manual_dir: Optional[str] = setting(
      None, "folder with the data set's original files, to prepare it "
      'offline when it is not prepared in --tfds-data-dir (default for '
      'mnist: the shipped data/mnist)', metavar='DIR')


@dataclasses.dataclass(frozen=True)
class LocalRunnerConfig(validation.Checked):
  """Every flag of local_runner.py."""
  source: LocalSource = part(
      LocalSource(), prefix='', group='data source: IDX files (--data-dir) '
      'or a TensorFlow Datasets data set (--tfds), not both')
  output_dir: str = setting(
      'outputs', 'where component outputs (pipeline/), the ML Metadata store '
      '(metadata.sqlite) and later runs go; reruns reuse it and its cache')
  serving_dir: Optional[str] = setting(
      None, "the push destination, TensorFlow Serving's model base path (a "
      'folder, or s3:// or gs://); several output dirs may share one, since '
      'every push and rollback holds its lock. Default: '
      '<output-dir>/{serving_subdir}', metavar='DIR')
  max_examples: Optional[int] = setting(
      None, 'use only the first N examples of each split (quick runs); '
      'default: all 60,000 train and 10,000 eval images', min=1, metavar='N')
  beam_arg: Tuple[str, ...] = setting(
      (), 'extra Beam pipeline argument, repeatable, appended after the '
      'defaults (which run the DirectRunner in multi-processing mode with '
      'one worker per core), e.g. --beam-arg=--direct_num_workers=1 or '
      '--beam-arg=--runner=DataflowRunner', metavar='ARG')
  pipeline: config_lib.PipelineConfig = part(config_lib.PipelineConfig(),
                                             prefix='')
  no_cache: bool = setting(
      False, 'rerun every component even if its inputs are unchanged (a run '
      'with nothing new, layouts/lineage.py, still ends before the '
      'pipeline)')
  verbose: bool = setting(
      False, 'show TensorFlow, TFX (absl) and Beam INFO logs')


@dataclasses.dataclass(frozen=True)
class KubeflowPaths(validation.Checked):
  """Where the compiled pipeline reads and writes, and its image."""
  pipeline_root: Optional[str] = setting(
      None, 'root of all component outputs, a bucket every task can write, '
      'e.g. gs://BUCKET/mnist-vae-tfx/root{need}', metavar='URI')
  data_root: Optional[str] = setting(
      None, 'the data folder, e.g. gs://BUCKET/mnist/: the four MNIST IDX '
      'files (raw or .gz), which the data-drop process overwrites, or one '
      'span-N/ folder per drop, each with the four files. Every run lists it '
      'when ExampleGen starts and reads the files, or the newest span (and, '
      'with --train-spans, earlier spans the data gate passed). Compiled as '
      "the default of the runtime parameter '{data_root_parameter}'{need} "
      '(or --tfds)', metavar='URI')
  tfds: Optional[str] = setting(
      None, 'read the TensorFlow Datasets data set NAME (28x28x1 uint8 '
      'images, labels 0..9, e.g. mnist, fashion_mnist) instead of '
      '--data-root, as prepared in --tfds-data-dir; nothing is downloaded or '
      'prepared in a task (see docs/kubeflow.md). No data_root runtime '
      'parameter then', metavar='NAME')
  tfds_data_dir: Optional[str] = setting(
      None, 'the TFDS data directory the data set was prepared into, once, '
      'e.g. gs://BUCKET/tensorflow_datasets (with --tfds; required then)',
      metavar='URI')
  serving_root: Optional[str] = setting(
      None, 'the push destination (TensorFlow Serving model base path): '
      'blessed decoders go to <serving-root>/<version>/, and the newest one '
      "is the evaluator's baseline{need}", metavar='URI')
  image: Optional[str] = setting(
      None, 'the image built from ./Dockerfile, pushed to a registry the '
      'cluster pulls from, e.g. us-docker.pkg.dev/P/R/mnist-vae-tfx:TAG; '
      'prefer a unique tag or a digest to :latest{need}', metavar='IMAGE')


@dataclasses.dataclass(frozen=True)
class S3Storage(validation.Checked):
  """What every task needs for s3:// paths (docs/kubeflow.md, "Storage")."""
  s3_endpoint: Optional[str] = setting(
      None, 'the S3 API endpoint, with its scheme, e.g. '
      'http://minio-service.kubeflow:9000 (the MinIO of a stock Kubeflow '
      'Pipelines install); default: AWS S3. Compiled into every task as '
      'S3_ENDPOINT (TensorFlow) and AWS_ENDPOINT_URL_S3 (Beam)',
      metavar='URL')
  s3_region: str = setting('us-east-1', 'the S3 region (AWS_REGION of every '
                           'task)', metavar='REGION')
  # The secret a stock Kubeflow Pipelines install keeps its MinIO
  # credentials in.
  s3_secret: str = setting(
      'mlpipeline-minio-artifact', "the Kubernetes secret in the run's "
      'namespace whose keys {secret_keys} become every task\'s '
      '{secret_variables}; "" for none (credentials from the pod\'s service '
      'account, e.g. IRSA on EKS)', metavar='NAME')


@dataclasses.dataclass(frozen=True)
class KubeflowPackageConfig(validation.Checked):
  """Every flag of the compiled pipeline, shared by compile and deploy."""
  paths: KubeflowPaths = part(KubeflowPaths(), prefix='',
                              group='pipeline paths and image')
  s3: S3Storage = part(S3Storage(), prefix='', group=(
      's3:// storage (when a path above is s3://; docs/kubeflow.md)'))
  max_examples: Optional[int] = setting(
      None, 'use only the first N examples of each split (quick cluster '
      'smoke runs); default: all', min=1, metavar='N')
  beam_arg: Tuple[str, ...] = setting(
      (), 'extra Beam pipeline argument for every Beam-based task, '
      'repeatable, appended after the defaults ({default_beam_args} '
      '--direct_num_workers=<--data-cpu, rounded down>), e.g. '
      '--beam-arg=--runner=DataflowRunner --beam-arg=--project=P '
      '--beam-arg=--region=R --beam-arg=--temp_location=gs://B/tmp '
      '--beam-arg=--sdk_container_image=IMAGE (see docs/kubeflow.md)',
      metavar='ARG')
  verbose: bool = setting(
      False, 'show TensorFlow, TFX (absl) and client library INFO logs')
  resources: config_lib.KubeflowResources = part(
      config_lib.KubeflowResources(), prefix='', group='resources: what the '
      'container of each heavy task requests (and is limited to); the other '
      'tasks get the namespace defaults')
  enable_cache: bool = setting(
      False, 'compile with KFP caching on. Off by default: open-source KFP '
      'would then serve ExampleGen, and so every task, from the first run, '
      'never reading new data in --data-root')
  pipeline: config_lib.PipelineConfig = part(config_lib.PipelineConfig(),
                                             prefix='')


@dataclasses.dataclass(frozen=True)
class CompileConfig(validation.Checked):
  """Every flag of `kubeflow_runner.py compile`."""
  output: Optional[str] = setting(
      None, 'the package to write (.yaml or .yml: kfp.Client rejects .json)',
      metavar='FILE.yaml', required=True)
  package: KubeflowPackageConfig = part(KubeflowPackageConfig(), prefix='')


@dataclasses.dataclass(frozen=True)
class KfpSchedule(validation.Checked):
  """Where a Kubeflow Pipelines recurring run goes."""
  host: Optional[str] = setting(
      None, 'the KFP API endpoint, e.g. http://localhost:8080 after '
      '`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`',
      metavar='URL')
  experiment: str = setting(
      'mnist-vae-tfx', 'experiment the recurring run belongs to (created if '
      'missing)')
  namespace: Optional[str] = setting(
      None, 'Kubernetes namespace (multi-user Kubeflow only)')
  version_name: Optional[str] = setting(
      None, 'name of the uploaded pipeline version; default: '
      '"<pipeline name>-<UTC time>"', metavar='NAME')
  catchup: bool = setting(
      False, 'backfill every missed interval after the schedule was paused '
      '(default: only the latest one)')
  keep_existing: bool = setting(
      False, 'keep recurring runs of the same name in the experiment; by '
      'default they are deleted once the new one exists, so a redeploy does '
      'not train twice per tick')


@dataclasses.dataclass(frozen=True)
class VertexSchedule(validation.Checked):
  """Where a Vertex AI Pipelines schedule goes."""
  vertex: bool = setting(False, 'create a Vertex AI schedule instead')
  project: Optional[str] = setting(None,
                                   'Google Cloud project (--vertex)')
  region: Optional[str] = setting(
      None, 'Vertex AI region, e.g. us-central1 (--vertex)')
  service_account: Optional[str] = setting(
      None, 'service account the scheduled runs use (--vertex; default: the '
      'Compute Engine default)')


@dataclasses.dataclass(frozen=True)
class DeployConfig(validation.Checked):
  """Every flag of `kubeflow_runner.py deploy`."""
  package_file: Optional[str] = setting(
      None, 'an already compiled package (from `compile`); without it the '
      'pipeline flags below are compiled to a temporary package first',
      metavar='FILE.yaml', flag='package')
  cron: Optional[str] = setting(
      None, 'when to run. Kubeflow Pipelines: 6 fields, seconds first, e.g. '
      '"0 0 3 * * *" (03:00 every day, UTC); Vertex AI: 5 fields, e.g. '
      '"0 3 * * *" or "TZ=Europe/Berlin 0 3 * * *"', required=True)
  max_concurrency: int = setting(
      1, 'runs of this schedule that may run at once; 1 keeps two runs from '
      'pushing to --serving-root concurrently', min=1, metavar='N')
  run_parameter: Tuple[str, ...] = setting(
      (), 'value of a runtime parameter for the scheduled runs, repeatable: '
      '{data_root_parameter}=URI (the folder with the span-N/ drops or the '
      'IDX files) or {epochs_parameter}=N; without it a run uses the value '
      'compiled from --data-root / --epochs', metavar='NAME=VALUE')
  schedule_name: Optional[str] = setting(
      None, 'display name of the recurring run / schedule; default: '
      '"<pipeline name> retraining"', metavar='NAME')
  kfp: KfpSchedule = part(KfpSchedule(), prefix='',
                          group='Kubeflow Pipelines')
  vertex: VertexSchedule = part(VertexSchedule(), prefix='',
                                group='Vertex AI Pipelines')
  package: KubeflowPackageConfig = part(KubeflowPackageConfig(), prefix='')
