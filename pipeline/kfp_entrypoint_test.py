"""Tests of the container entrypoint's repair of KFP's executor input.

The whole entrypoint, run by a task's compiled command, is exercised in
tests/kubeflow_execution_test.py; these test the repair itself, with TFX's
own parser of the executor input as the judge.
"""

import copy
import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
from tfx.types import standard_artifacts

from pipeline import kfp_entrypoint

EXAMPLES_SCHEMA = 'title: tfx.Examples\ntype: object\n'
INPUTS_SPEC = {
    'artifacts': {
        'examples': {'artifactType': {'instanceSchema': EXAMPLES_SCHEMA}},
        'schema': {'artifactType': {'schemaTitle': 'tfx.Schema'}},
    },
    'parameters': {'epochs': {'parameterType': 'NUMBER_INTEGER'}},
}


def executor_input(examples_type, schema_type, with_logs=True):
  outputs = {'model': {'artifacts': [{
      'name': 'model', 'uri': 'gs://b/root/Trainer/1/model',
      'type': {'instanceSchema': 'title: tfx.Model\ntype: object\n'}}]}}
  if with_logs:
    outputs['executor-logs'] = {'artifacts': [{
        'name': 'executor-logs', 'uri': 'gs://b/root/Trainer/1/executor-logs',
        'type': {'schemaTitle': 'system.Artifact'}}]}
  return {
      'inputs': {
          'parameterValues': {'epochs': 3},
          'artifacts': {
              'examples': {'artifacts': [{
                  'name': '17', 'uri': 'gs://b/root/IdxExampleGen/2/examples',
                  'metadata': {'span': 0.0, 'split_names': '["train"]'},
                  'type': examples_type}]},
              'schema': {'artifacts': [{
                  'name': '18', 'uri': 'gs://b/root/CuratedSchemaGen/3/schema',
                  'type': schema_type}]},
          }},
      'outputs': {'artifacts': outputs,
                  'outputFile': '/tmp/kfp_outputs/output_metadata.json'},
  }


def tfx_parse(document):
  """TFX's own parsing of the executor input's artifacts, as its entrypoint
  does it (kubeflow_v2_run_executor._run_executor)."""
  message = json_format.Parse(json.dumps(document),
                              pipeline_spec_pb2.ExecutorInput())
  return (kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(
              message.inputs.artifacts),
          kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(
              message.outputs.artifacts))


def test_open_source_kfp_input_is_repaired():
  # What the open-source driver sends for upstream artifacts.
  original = executor_input({'instanceSchema': ''}, {'instanceSchema': ''})
  kept = copy.deepcopy(original)
  with pytest.raises(AttributeError):  # TFX alone: tensorflow/tfx#7768.
    tfx_parse(original)

  repaired = kfp_entrypoint.repair_executor_input(original, INPUTS_SPEC)
  assert original == kept  # Not changed in place.
  inputs, outputs = tfx_parse(repaired)
  [examples] = inputs['examples']
  assert isinstance(examples, standard_artifacts.Examples)
  assert examples.uri == 'gs://b/root/IdxExampleGen/2/examples'
  assert examples.span == 0
  assert isinstance(inputs['schema'][0], standard_artifacts.Schema)
  assert set(outputs) == {'model'}  # executor-logs is the launcher's.
  assert isinstance(outputs['model'][0], standard_artifacts.Model)
  assert repaired['inputs']['parameterValues'] == {'epochs': 3}


def test_a_missing_type_field_is_filled_too():
  original = executor_input(None, {'instanceSchema': ''}, with_logs=False)
  del original['inputs']['artifacts']['examples']['artifacts'][0]['type']
  repaired = kfp_entrypoint.repair_executor_input(original, INPUTS_SPEC)
  assert repaired['inputs']['artifacts']['examples']['artifacts'][0][
      'type'] == {'instanceSchema': EXAMPLES_SCHEMA}


def test_complete_input_passes_unchanged():
  # As Vertex AI sends it: types set, no launcher log output.
  vertex = executor_input({'schemaTitle': 'tfx.Examples'},
                          {'schemaTitle': 'tfx.Schema'}, with_logs=False)
  assert kfp_entrypoint.repair_executor_input(vertex, INPUTS_SPEC) == vertex
  assert kfp_entrypoint.repair_executor_input(vertex, None) == vertex
  argv = ['--executor_class_path', 'x.Executor',
          '--json_serialized_invocation_args', json.dumps(vertex),
          '--direct_num_workers=0']
  repaired = kfp_entrypoint.repair_argv(argv)
  assert json.loads(repaired[3]) == vertex
  assert repaired[:3] + repaired[4:] == argv[:3] + argv[4:]


def test_argv_in_equals_form_and_with_the_inputs_spec():
  original = executor_input({'instanceSchema': ''}, {'instanceSchema': ''})
  argv = ['--executor_class_path=x.Executor',
          '--json_serialized_invocation_args=' + json.dumps(original),
          '--json_serialized_inputs_spec_args', json.dumps(INPUTS_SPEC)]
  repaired = kfp_entrypoint.repair_argv(argv)
  flag, _, text = repaired[1].partition('=')
  assert flag == '--json_serialized_invocation_args'
  assert json.loads(text) == kfp_entrypoint.repair_executor_input(
      original, INPUTS_SPEC)
  assert repaired[2:] == argv[2:]


@pytest.mark.parametrize('argv, message', [
    (['--executor_class_path', 'x.Executor'],
     '--json_serialized_invocation_args is missing'),
    (['--json_serialized_invocation_args', '{not json'],
     '--json_serialized_invocation_args is not JSON'),
    (['--json_serialized_invocation_args',
      json.dumps(executor_input({'instanceSchema': ''}, {}))],
     "input artifact 'examples' (gs://b/root/IdxExampleGen/2/examples) has no "
     'type, and the component inputs spec declares none for it'),
])
def test_unrepairable_input_is_an_error(argv, message):
  with pytest.raises(kfp_entrypoint.EntrypointError) as error:
    kfp_entrypoint.repair_argv(argv)
  assert message in str(error.value)


def test_main_exits_2_on_unrepairable_input(caplog):
  with pytest.raises(SystemExit) as exit_info:
    kfp_entrypoint.main(['--executor_class_path', 'x.Executor'])
  assert exit_info.value.code == 2
  assert '--json_serialized_invocation_args is missing' in caplog.text


def test_s3_buckets_are_found_in_uris_and_json_parameters():
  document = executor_input({'instanceSchema': ''}, {'instanceSchema': ''})
  assert kfp_entrypoint.s3_buckets(document) == []  # gs:// only.
  document['inputs']['artifacts']['examples']['artifacts'][0]['uri'] = (
      's3://mlpipeline/root/IdxExampleGen/2/examples')
  document['inputs']['parameterValues'] = {
      'push_destination': json.dumps(
          {'filesystem': {'base_directory': 's3://serving-bucket/models'}}),
      'epochs': 3, 'note': 'gs://other/s3-like-name'}
  assert kfp_entrypoint.s3_buckets(document) == ['mlpipeline',
                                                 'serving-bucket']
