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
3. Storage. When an artifact or parameter of the task names an `s3://` URI:
   tensorflow-io's file systems are registered before TFX starts, each
   bucket is checked (tensorflow-io reports bad credentials as "not found"
   inside a bucket, which the gate and the evaluator would read as "no model
   served"), and the process ends with `os._exit` once TFX is done, because
   tensorflow-io's S3 client aborts it at exit (tensorflow/io#2039).

Inputs that need none of this (as Vertex AI sends them) pass through
unchanged.
"""

import copy
import json
import logging
import os
import re
import runpy
import sys
from typing import Any, Dict, List, Optional, Sequence

from pipeline import exit_codes

logger = logging.getLogger(__name__)

# The module the compiled tasks would otherwise run, and this one.
TFX_ENTRYPOINT_MODULE = (
    'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor')
ENTRYPOINT_MODULE = 'pipeline.kfp_entrypoint'
INVOCATION_FLAG = '--json_serialized_invocation_args'
INPUTS_SPEC_FLAG = '--json_serialized_inputs_spec_args'
# The launcher-managed output the KFP >= 2.5 driver adds to every task.
LAUNCHER_LOG_OUTPUT = 'executor-logs'
_S3_BUCKET_RE = re.compile(r's3://([a-z0-9][a-z0-9.\-]*[a-z0-9])')


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


def s3_buckets(executor_input: Dict[str, Any]) -> List[str]:
  """The buckets of the s3:// URIs in the artifacts and string parameters
  (including JSON-valued ones, such as the Pusher's push destination)."""
  texts = [artifact.get('uri', '')
           for side in ('inputs', 'outputs')
           for artifact_list in executor_input.get(side, {}).get(
               'artifacts', {}).values()
           for artifact in artifact_list.get('artifacts', [])]
  texts += [value for value in executor_input.get('inputs', {}).get(
      'parameterValues', {}).values() if isinstance(value, str)]
  return sorted({bucket for text in texts
                 for bucket in _S3_BUCKET_RE.findall(text)})


def _flag_index(argv: Sequence[str], flag: str) -> Optional[int]:
  """Index of the argument holding `flag`'s value (`--flag value` or
  `--flag=value`), or None."""
  for i, arg in enumerate(argv):
    if arg == flag and i + 1 < len(argv):
      return i + 1
    if arg.startswith(flag + '='):
      return i
  return None


def _flag_json(argv: Sequence[str], flag: str) -> Optional[Dict[str, Any]]:
  i = _flag_index(argv, flag)
  if i is None:
    return None
  text = argv[i][len(flag) + 1:] if argv[i].startswith(flag + '=') else argv[i]
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise EntrypointError(f'{flag} is not JSON: {e}') from e


def repair_argv(argv: Sequence[str]) -> List[str]:
  """The command-line arguments with the executor input repaired.

  Raises:
    EntrypointError: the executor input is missing or cannot be repaired.
  """
  argv = list(argv)
  executor_input = _flag_json(argv, INVOCATION_FLAG)
  if executor_input is None:
    raise EntrypointError(f'{INVOCATION_FLAG} is missing')
  repaired = json.dumps(repair_executor_input(
      executor_input, _flag_json(argv, INPUTS_SPEC_FLAG)))
  i = _flag_index(argv, INVOCATION_FLAG)
  argv[i] = (f'{INVOCATION_FLAG}={repaired}'
             if argv[i].startswith(INVOCATION_FLAG + '=') else repaired)
  return argv


def prepare_s3(buckets: Sequence[str]) -> None:
  """Registers tensorflow-io's s3:// file system and checks each bucket.

  tensorflow-io reports a wrong secret or endpoint as "not found" for paths
  inside a bucket, which would read as "no model served yet"; the bucket
  itself answers with the real error.

  Raises:
    EntrypointError: a bucket does not exist or cannot be read; the message
      names it and the environment variables the credentials come from.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import
  for bucket in buckets:
    try:
      found = tf.io.gfile.exists(f's3://{bucket}/')
      problem = None if found else 'does not exist'
    except tf.errors.OpError as e:
      problem = f'cannot be read: {type(e).__name__}: {e.message}'
    if problem:
      raise EntrypointError(
          f'bucket s3://{bucket} {problem} (endpoint S3_ENDPOINT='
          f'{os.environ.get("S3_ENDPOINT", "(unset: AWS)")}, credentials from '
          'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)')
  logger.info('s3:// file system (tensorflow-io %s): bucket(s) %s readable',
              tensorflow_io.__version__, ', '.join(buckets))


def _run_tfx_entrypoint(argv: Sequence[str]) -> int:
  """Runs TFX's entrypoint as `__main__` with `argv`; its exit code."""
  sys.argv = [TFX_ENTRYPOINT_MODULE] + list(argv)
  try:
    runpy.run_module(TFX_ENTRYPOINT_MODULE, run_name='__main__',
                     alter_sys=True)
  except SystemExit as e:  # absl's app.run ends with sys.exit.
    if e.code is None or isinstance(e.code, int):
      return e.code or 0
    logger.error('%s', e.code)
    return 1
  return 0


def main(argv: Optional[Sequence[str]] = None) -> None:
  """Repairs the arguments, then runs TFX's entrypoint; exits with its code.

  Exit codes: TFX's (0 done, 1 failed), or 2 when the executor input cannot
  be repaired or an s3:// bucket cannot be read.
  """
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  argv = sys.argv[1:] if argv is None else list(argv)
  buckets: List[str] = []
  try:
    repaired = repair_argv(argv)
    buckets = s3_buckets(_flag_json(repaired, INVOCATION_FLAG))
    if buckets:
      prepare_s3(buckets)
  except EntrypointError as e:
    logger.error('%s', e)
    exit_codes.exit_process(2, bool(buckets))
  try:
    code = _run_tfx_entrypoint(repaired)
  except Exception:  # pylint: disable=broad-except
    if not buckets:
      raise
    logger.exception('The task failed')
    code = 1
  exit_codes.exit_process(code, bool(buckets))


if __name__ == '__main__':
  main()
