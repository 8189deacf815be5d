"""The container entrypoint of every task of the compiled Kubeflow pipeline.

`kubeflow_runner.py compile` points each task's command at this module
instead of TFX's `kubeflow_v2_run_executor`. It repairs the executor input
that the open-source Kubeflow Pipelines v2 backend passes, then hands over to
TFX's own `kubeflow_v2_run_executor`, unchanged, in this process:

  python -m pipeline.kfp_entrypoint --executor_class_path ...
      --json_serialized_invocation_args '{{$}}'
      --json_serialized_inputs_spec_args '{...}' [beam args]

What it repairs (docs/kubeflow.md, "The entrypoint"):

1. Input artifact types. The open-source KFP driver builds an upstream
   artifact's RuntimeArtifact with `type: {instanceSchema: ""}`: the schema is
   not looked up (kubeflow/pipelines, backend/src/v2/metadata/client.go,
   `GetOutputArtifactsByExecutionId`, "TODO(Bobgy): figure out how to get
   schema"). TFX's `_retrieve_class_path` then cannot find the artifact class
   (tensorflow/tfx#7768): every task that consumes an upstream artifact
   fails. The compiled command already carries the component's inputs spec
   (`--json_serialized_inputs_spec_args`) with each input's artifact type;
   this entrypoint copies that type into every input artifact whose type is
   empty. An artifact that has a type (Vertex AI sends `schemaTitle`) is left
   as it is.
2. The launcher's log artifact. Since KFP 2.5 the driver adds an output
   artifact `executor-logs` of type `system.Artifact` to every task
   (backend/src/v2/driver/driver.go, `provisionOutputs`, unless the API
   server runs with PUBLISH_LOGS=false). The launcher writes and uploads it
   itself; TFX would try to import a class `system.Artifact` for it and fail
   before the executor starts. It is removed from what TFX sees.
3. Storage. For `s3://` URIs TensorFlow needs tensorflow-io's file systems;
   they are registered (by importing tensorflow_io) before TFX starts when an
   artifact or parameter of the task names an `s3://` URI.

Inputs that need none of this (as Vertex AI sends them) pass through
unchanged.
"""

import copy
import json
import logging
import runpy
import sys
from typing import Any, Dict, List, Optional, Sequence

logger = logging.getLogger(__name__)

# The module the compiled tasks would otherwise run, and this one.
TFX_ENTRYPOINT_MODULE = (
    'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor')
ENTRYPOINT_MODULE = 'pipeline.kfp_entrypoint'
INVOCATION_FLAG = '--json_serialized_invocation_args'
INPUTS_SPEC_FLAG = '--json_serialized_inputs_spec_args'
# The launcher-managed output the KFP >= 2.5 driver adds to every task.
LAUNCHER_LOG_OUTPUT = 'executor-logs'
S3_SCHEME = 's3://'


class EntrypointError(ValueError):
  """The executor input cannot be repaired (names the artifact and why)."""


def _has_type(artifact: Dict[str, Any]) -> bool:
  kind = artifact.get('type') or {}
  return bool(kind.get('schemaTitle') or kind.get('instanceSchema')
              or kind.get('schemaUri'))


def repair_executor_input(executor_input: Dict[str, Any],
                          inputs_spec: Optional[Dict[str, Any]]
                          ) -> Dict[str, Any]:
  """The executor input with input types filled in and the log output removed.

  Args:
    executor_input: KFP's ExecutorInput, as JSON (protojson field names).
    inputs_spec: the component's ComponentInputsSpec, as JSON; its
      `artifacts.<key>.artifactType` is each input's type.

  Returns:
    A repaired copy; `executor_input` itself is not changed.

  Raises:
    EntrypointError: an input artifact has no type and the inputs spec has
      none for its key either.
  """
  repaired = copy.deepcopy(executor_input)
  spec_artifacts = (inputs_spec or {}).get('artifacts', {})
  inputs = repaired.get('inputs', {}).get('artifacts', {})
  for key, artifact_list in inputs.items():
    for artifact in artifact_list.get('artifacts', []):
      if _has_type(artifact):
        continue
      declared = spec_artifacts.get(key, {}).get('artifactType')
      if not declared:
        raise EntrypointError(
            f'input artifact {key!r} ({artifact.get("uri", "no URI")}) has no '
            'type, and the component inputs spec declares none for it')
      artifact['type'] = copy.deepcopy(declared)
      logger.info('Input %r: type taken from the component inputs spec '
                  '(the driver sent none)', key)
  outputs = repaired.get('outputs', {}).get('artifacts', {})
  if outputs.pop(LAUNCHER_LOG_OUTPUT, None) is not None:
    logger.info('Output %r is written by the KFP launcher, not by TFX',
                LAUNCHER_LOG_OUTPUT)
  return repaired


def _names_s3(executor_input: Dict[str, Any]) -> bool:
  """Whether any artifact URI or string parameter is an s3:// URI."""
  return S3_SCHEME in json.dumps(executor_input)


def _flag_value(argv: Sequence[str], flag: str) -> Optional[int]:
  """Index of `flag`'s value in argv (`--flag value` or `--flag=value`)."""
  for i, arg in enumerate(argv):
    if arg == flag and i + 1 < len(argv):
      return i + 1
    if arg.startswith(flag + '='):
      return i
  return None


def repair_argv(argv: Sequence[str]) -> List[str]:
  """The command-line arguments with the executor input repaired."""
  argv = list(argv)
  invocation_at = _flag_value(argv, INVOCATION_FLAG)
  if invocation_at is None:
    raise EntrypointError(f'{INVOCATION_FLAG} is missing')
  spec_at = _flag_value(argv, INPUTS_SPEC_FLAG)

  def value(i: int, flag: str) -> str:
    return argv[i][len(flag) + 1:] if argv[i].startswith(flag + '=') \
        else argv[i]

  def parse(text: str, flag: str) -> Dict[str, Any]:
    try:
      return json.loads(text)
    except json.JSONDecodeError as e:
      raise EntrypointError(f'{flag} is not JSON: {e}') from e

  executor_input = parse(value(invocation_at, INVOCATION_FLAG),
                         INVOCATION_FLAG)
  inputs_spec = (parse(value(spec_at, INPUTS_SPEC_FLAG), INPUTS_SPEC_FLAG)
                 if spec_at is not None else None)
  repaired = repair_executor_input(executor_input, inputs_spec)
  if _names_s3(repaired):
    register_s3_file_system()
  text = json.dumps(repaired)
  argv[invocation_at] = (f'{INVOCATION_FLAG}={text}'
                         if argv[invocation_at].startswith(INVOCATION_FLAG)
                         else text)
  return argv


def register_s3_file_system() -> None:
  """Registers tensorflow-io's s3:// file system with TensorFlow."""
  import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import
  logger.info('s3:// file system registered (tensorflow-io %s)',
              tensorflow_io.__version__)


def main(argv: Optional[Sequence[str]] = None) -> None:
  """Repairs the arguments, then runs TFX's entrypoint as `__main__`."""
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  argv = sys.argv[1:] if argv is None else list(argv)
  try:
    repaired = repair_argv(argv)
  except EntrypointError as e:
    logger.error('%s', e)
    sys.exit(2)
  sys.argv = [TFX_ENTRYPOINT_MODULE] + repaired
  runpy.run_module(TFX_ENTRYPOINT_MODULE, run_name='__main__', alter_sys=True)


if __name__ == '__main__':
  main()
