"""Executes a compiled KFP v2 pipeline spec the way open-source KFP does.

The launcher emulation that the Kubeflow tests and benchmarks/kubeflow_tasks.py
share: `Run.run()` executes every task of a compiled package in topological
order, as the open-source Kubeflow Pipelines v2 backend's driver and launcher
would, with the project's venv standing in for the image (or, with
`in_container`, in the image itself: `podman run`, see
tests/container_image.py) and a local folder (or an S3-compatible server)
for the object store. There is no cluster, Argo or ML Metadata server; what
each task receives and what is kept of its outputs follows these files of
kubeflow/pipelines (commit 7b70c7b, 2026-08-21; the same code paths since
release 2.5.0 unless noted):

* backend/src/v2/driver/driver.go, `provisionOutputs`: each output artifact
  gets `name` = its output key, `uri` = `<root>/<task>/<uuid>/<key>` under
  the run's root (`<pipeline root>/<pipeline name>/<run id>`, from
  metadata/client.go `GetPipeline`, `GenerateOutputURI`), `type` and
  `metadata` from the component's output definitions; with `publish_logs`
  (the default since 2.5.0) an extra output `executor-logs` of type
  `system.Artifact`. The output file is `output_metadata.json` in the local
  mirror of the task root (`/gcs/`, `/s3/`, `/minio/`), or
  `/tmp/kfp_outputs/output_metadata.json` for other schemes.
* backend/src/v2/driver/driver.go, `initPodSpecPatch`, and driver/k8s.go:
  the container's `env` from the spec, and the Kubernetes platform spec's
  `secretAsEnv` (the package's second YAML document), are the task's
  environment; nothing else of the machine's S3 or AWS settings is.
* backend/src/v2/driver/resolve.go, `resolveInputs`, `resolveInputParameter`
  and `resolveUpstreamArtifacts`: parameters are the task's constants or the
  pipeline's inputs (runtime parameters, else their defaults); an input
  artifact is the producer's recorded output, converted by
  metadata/client.go `OutputArtifact.ToRuntimeArtifact`: `name` = its ML
  Metadata id, `uri`, `metadata` = its custom properties (converter.go
  `toRuntimeArtifact`), and `type` = `{instanceSchema: ""}`, because
  `GetOutputArtifactsByExecutionId` leaves the schema empty ("TODO(Bobgy):
  figure out how to get schema").
* backend/src/v2/component/launcher_v2.go: `downloadArtifacts` copies every
  input artifact under an object-store URI to its local mirror before the
  command runs (`objectstore.DownloadBlob`, which writes one file per listed
  key); `compileCmdAndArgs` substitutes the executor input JSON for `{{$}}`
  in the command and arguments; `execute` runs the command and fails the task
  on a non-zero exit; `getExecutorOutputFile` reads the output file (none:
  empty output); `uploadOutputArtifacts` merges each output's `uri` and
  `metadata` from it (`mergeRuntimeArtifacts`) and records it,
  metadata/client.go `RecordArtifact` with converter.go `toMLMDArtifact`:
  metadata becomes custom properties (numbers as doubles, booleans as ints,
  lists and structs wrapped in `{"list": ...}` / `{"struct": ...}`), plus
  `display_name` and `store_session_info`.
* backend/src/v2/objectstore/object_store.go, `DownloadBlob`: every object
  listed under the artifact's key is written to a file of the local mirror;
  an object whose key ends in `/` (a zero-byte "directory marker") cannot
  be (kubeflow/pipelines#13476): `s3_downloader` fails the task on it.

The value conversions, the local mirrors, the S3 download and the memory
sampler are in pipeline/kfp_artifacts.py.

Not emulated: caching (the package compiles it off), retries, pod specs
(resources are only checked in the spec), lifecycle hooks (open-source KFP
does not run ExampleGen's `preCacheCheck`), and uploading outputs from the
local mirror (TFX executors write to the artifact URI directly; the launcher
skips outputs whose local mirror does not exist).
"""

import collections
import json
import logging
import os
import pathlib
import subprocess
import sys
import time
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import yaml

from pipeline import kfp_artifacts
# Re-exported, unused here: the tests download s3:// artifacts with it.

logger = logging.getLogger(__name__)

LAUNCHER_LOG_OUTPUT = 'executor-logs'
LEGACY_OUTPUT_FILE = '/tmp/kfp_outputs/output_metadata.json'


class TaskFailed(RuntimeError):
  """A task's command exited non-zero (or the launcher could not run it)."""

  def __init__(self, task: str, message: str, log: str = ''):
    super().__init__(f'task {task} failed: {message}')
    self.task = task
    self.log = log


def _container_path(container_root: pathlib.Path, path: str) -> str:
  """A path of the task's container file system, under `container_root`."""
  return str(container_root / path.lstrip('/'))


def topological_order(tasks: Mapping[str, Any]) -> List[str]:
  """Task names, each after its dependent tasks (ties in name order)."""
  remaining = {name: set(task.get('dependentTasks', []))
               for name, task in tasks.items()}
  order = []
  while remaining:
    ready = sorted(name for name, deps in remaining.items() if not deps)
    if not ready:
      raise ValueError(f'cycle among tasks {sorted(remaining)}')
    order.append(ready[0])
    del remaining[ready[0]]
    for deps in remaining.values():
      deps.discard(ready[0])
  return order


class Run:
  """One run of a compiled package: the recorded artifacts of its tasks."""

  def __init__(self, package: str, *, pipeline_root: str,
               runtime_parameters: Optional[Mapping[str, Any]] = None,
               workdir: pathlib.Path, publish_logs: bool = True,
               command_for: Optional[Callable[[List[str]], List[str]]] = None,
               download: Optional[Callable[[str, str], None]] = None,
               secrets: Optional[Mapping[str, Mapping[str, str]]] = None,
               in_container: Optional[Callable[
                   [str, List[str], Dict[str, str], pathlib.Path],
                   List[str]]] = None,
               timeout: float = 600):
    with open(package, encoding='utf-8') as f:
      documents = list(yaml.safe_load_all(f))
    self.spec = documents[0]
    self.platform = (documents[1]['platforms']['kubernetes']
                     if len(documents) > 1 else {})
    self.run_id = str(uuid.uuid4())
    self.run_root = (f'{pipeline_root.rstrip("/")}/'
                     f'{self.spec["pipelineInfo"]["name"]}/{self.run_id}')
    self.runtime_parameters = dict(runtime_parameters or {})
    self.workdir = workdir
    self.publish_logs = publish_logs
    self.command_for = command_for or (lambda command: command)
    self.download = download
    self.secrets = secrets or {}
    # (task, command line, the spec's environment, the task's folder) -> the
    # host command that runs the command line in the image (e.g.
    # tests/container_image.py's `podman run`); None: in the venv.
    self.in_container = in_container
    # A pod has only the S3 and AWS settings its spec gives it.
    self.base_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(('AWS_', 'S3_'))}
    # `python` in the compiled command is the venv's, as in the image.
    self.base_env['PATH'] = (os.path.dirname(sys.executable) + os.pathsep
                             + self.base_env.get('PATH', ''))
    self.timeout = timeout
    self.mlmd: Dict[int, Dict[str, Any]] = {}  # id -> recorded artifact
    self.outputs: Dict[str, Dict[str, int]] = collections.defaultdict(dict)
    self.executor_inputs: Dict[str, Dict[str, Any]] = {}
    self.logs: Dict[str, str] = {}
    # Task -> wall time and peak resident memory of its command's processes.
    self.stats: Dict[str, Dict[str, float]] = {}
    self.completed: List[str] = []

  # -- driver ---------------------------------------------------------------

  def _parameter(self, task: str, name: str, spec: Dict[str, Any]) -> Any:
    if 'runtimeValue' in spec:
      return spec['runtimeValue']['constant']
    if 'componentInputParameter' in spec:
      key = spec['componentInputParameter']
      if key in self.runtime_parameters:
        return self.runtime_parameters[key]
      definition = self.spec['root'].get('inputDefinitions', {}).get(
          'parameters', {}).get(key, {})
      if 'defaultValue' not in definition:
        raise TaskFailed(task, f'pipeline input {key!r} has no value')
      return definition['defaultValue']
    raise TaskFailed(task, f'parameter {name}: unsupported spec {spec}')

  def _upstream_artifact(self, task: str, spec: Dict[str, Any]
                         ) -> Dict[str, Any]:
    output = spec['taskOutputArtifact']
    producer, key = output['producerTask'], output['outputArtifactKey']
    if key not in self.outputs.get(producer, {}):
      raise TaskFailed(task, f'cannot find output artifact key {key!r} in '
                       f'producer task {producer!r}')
    artifact_id = self.outputs[producer][key]
    recorded = self.mlmd[artifact_id]
    return {
        'name': str(artifact_id),
        'uri': recorded['uri'],
        'metadata': {k: kfp_artifacts.json_value(v)
                     for k, v in recorded['custom_properties'].items()},
        # OutputArtifact.ToRuntimeArtifact with the empty Schema that
        # GetOutputArtifactsByExecutionId sets.
        'type': {'instanceSchema': ''},
    }

  def executor_input(self, task: str, container_root: pathlib.Path
                     ) -> Dict[str, Any]:
    task_spec = self.spec['root']['dag']['tasks'][task]
    component = self.spec['components'][task_spec['componentRef']['name']]
    inputs = task_spec.get('inputs', {})
    parameters = {name: self._parameter(task, name, spec)
                  for name, spec in inputs.get('parameters', {}).items()}
    artifacts = {name: {'artifacts': [self._upstream_artifact(task, spec)]}
                 for name, spec in inputs.get('artifacts', {}).items()}
    task_root = f'{self.run_root}/{task}/{uuid.uuid4()}'
    output_specs = dict(component.get('outputDefinitions', {}).get(
        'artifacts', {}))
    if self.publish_logs:
      output_specs[LAUNCHER_LOG_OUTPUT] = {
          'artifactType': {'schemaTitle': 'system.Artifact'}}
    outputs = {}
    for name, spec in output_specs.items():
      artifact = {'name': name, 'uri': f'{task_root}/{name}',
                  'type': spec['artifactType']}
      if 'metadata' in spec:
        artifact['metadata'] = spec['metadata']
      outputs[name] = {'artifacts': [artifact]}
    mirror = kfp_artifacts.local_mirror(task_root)
    output_file = (f'{mirror}/output_metadata.json' if mirror
                   else LEGACY_OUTPUT_FILE)
    return {
        'inputs': {'parameterValues': parameters, 'artifacts': artifacts},
        'outputs': {'artifacts': outputs,
                    'outputFile': _container_path(container_root,
                                                  output_file)},
    }

  def spec_env(self, task: str, label: str,
               container: Dict[str, Any]) -> Dict[str, str]:
    """What the spec puts in the container's environment: its env and
    secretAsEnv."""
    env = {e['name']: e['value'] for e in container.get('env', [])}
    config = self.platform.get('deploymentSpec', {}).get(
        'executors', {}).get(label, {})
    for secret in config.get('secretAsEnv', []):
      name = secret['secretName']
      if name not in self.secrets:
        raise TaskFailed(task, f'secret "{name}" not found')
      for mapping in secret['keyToEnv']:
        env[mapping['envVar']] = self.secrets[name][mapping['secretKey']]
    return env

  def task_env(self, task: str, label: str,
               container: Dict[str, Any]) -> Dict[str, str]:
    """The environment of a task run in the venv: this machine's, less its
    S3 and AWS settings, plus the spec's."""
    return {**self.base_env, **self.spec_env(task, label, container)}

  # -- launcher -------------------------------------------------------------

  def run_task(self, task: str) -> None:
    task_spec = self.spec['root']['dag']['tasks'][task]
    component = self.spec['components'][task_spec['componentRef']['name']]
    label = component['executorLabel']
    container = self.spec['deploymentSpec']['executors'][label]['container']
    container_root = self.workdir / task
    container_root.mkdir(parents=True)
    executor_input = self.executor_input(task, container_root)
    self.executor_inputs[task] = executor_input
    if self.download:
      for artifact_list in executor_input['inputs']['artifacts'].values():
        for artifact in artifact_list['artifacts']:
          mirror = kfp_artifacts.local_mirror(artifact['uri'])
          if mirror:
            try:
              self.download(artifact['uri'],
                            _container_path(container_root, mirror))
            except ValueError as e:
              raise TaskFailed(task, str(e)) from e
    output_file = pathlib.Path(executor_input['outputs']['outputFile'])
    output_file.parent.mkdir(parents=True, exist_ok=True)
    executor_input_json = json.dumps(executor_input)
    command = [arg.replace('{{$}}', executor_input_json)
               for arg in self.command_for(list(container['command']))]
    args = [arg.replace('{{$}}', executor_input_json)
            for arg in container.get('args', [])]
    logger.info('Running task %s: %s', task, ' '.join(command))
    argv = command + args
    if self.in_container:
      # The container gets the spec's variables (named on podman's command
      # line, their values passed through podman's own environment), and
      # nothing else of this machine's.
      spec_env = self.spec_env(task, label, container)
      argv = self.in_container(task, argv, spec_env, container_root)
      env = {**os.environ, **spec_env}
    else:
      env = self.task_env(task, label, container)
    log_path = container_root / 'log.txt'
    started = time.monotonic()
    with open(log_path, 'w', encoding='utf-8') as log:
      process = subprocess.Popen(argv, cwd=container_root, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
      sampler = kfp_artifacts.MemorySampler(process.pid)
      try:
        process.wait(timeout=self.timeout)
      except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
      finally:
        sampler.stop()
    # A container's processes are not podman's children: no memory figure.
    self.stats[task] = {'seconds': round(time.monotonic() - started, 1),
                        'peak_memory_gb': (None if self.in_container else
                                           round(sampler.peak / 1e9, 2))}
    self.logs[task] = log_path.read_text(encoding='utf-8', errors='replace')
    if process.returncode:
      raise TaskFailed(task, f'exit code {process.returncode}',
                       self.logs[task])
    executor_output = (json.loads(output_file.read_text())
                       if output_file.exists() else {})
    for name, artifact_list in executor_input['outputs']['artifacts'].items():
      if name == LAUNCHER_LOG_OUTPUT:
        continue
      artifact = dict(artifact_list['artifacts'][0])
      produced = executor_output.get('artifacts', {}).get(name, {}).get(
          'artifacts', [])
      if produced:
        if produced[0].get('uri'):
          artifact['uri'] = produced[0]['uri']
        artifact['metadata'] = {**artifact.get('metadata', {}),
                                **produced[0].get('metadata', {})}
      self._record(task, name, artifact)
    self.completed.append(task)

  def _record(self, task: str, name: str, artifact: Dict[str, Any]) -> None:
    custom_properties = {k: kfp_artifacts.mlmd_value(v)
                         for k, v in artifact.get('metadata', {}).items()}
    custom_properties.setdefault('display_name', {'string_value': name})
    custom_properties.setdefault(
        'store_session_info',
        {'string_value': json.dumps({'Provider': self.run_root.split(':')[0],
                                     'Params': {}})})
    artifact_id = len(self.mlmd) + 1
    self.mlmd[artifact_id] = {'uri': artifact['uri'],
                              'custom_properties': custom_properties}
    self.outputs[task][name] = artifact_id

  def run(self, tasks: Optional[Sequence[str]] = None) -> 'Run':
    """Runs `tasks` (default: all, in topological order); stops at a failure.
    """
    for task in tasks or topological_order(self.spec['root']['dag']['tasks']):
      self.run_task(task)
    return self

  def output_uri(self, task: str, key: str) -> str:
    return self.mlmd[self.outputs[task][key]]['uri']

  def output_property(self, task: str, key: str, name: str) -> Any:
    """A custom property of a task's output artifact as ML Metadata holds
    it (its value: string, int or double), or None."""
    value = self.mlmd[self.outputs[task][key]]['custom_properties'].get(name)
    return next(iter(value.values())) if value else None
