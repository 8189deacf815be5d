"""kubeflow_runner.py with a TFDS source: compiled only (no cluster here).

The data set is prepared once into a bucket (--tfds-data-dir); the compiled
TfdsExampleGen task reads it there and nothing downloads in a task."""

import json

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import exit_codes
from tests.kubeflow_runner_test import _constant
from tests.kubeflow_runner_test import _executors
from tests.kubeflow_runner_test import IMAGE
from tests.kubeflow_runner_test import PIPELINE_ROOT
from tests.kubeflow_runner_test import SERVING_ROOT
import kubeflow_runner

TFDS_DATA_DIR = 'gs://test-bucket/tensorflow_datasets'
TFDS_FLAGS = ('--pipeline-root', PIPELINE_ROOT, '--serving-root',
              SERVING_ROOT, '--image', IMAGE, '--tfds', 'mnist',
              '--tfds-data-dir', TFDS_DATA_DIR)


def test_tfds_source_compiles_to_a_task_reading_the_bucket(tmp_path):
  output = tmp_path / 'tfds.yaml'
  kubeflow_runner.run_command(kubeflow_runner.parse_args(
      ['compile', '--output', str(output), *TFDS_FLAGS]))
  spec = json_format.ParseDict(yaml.safe_load(output.read_text()),
                               pipeline_spec_pb2.PipelineSpec())
  executors = _executors(spec)
  assert 'IdxExampleGen' not in executors
  args = list(executors['TfdsExampleGen'].container.args)
  assert 'components.example_gen.tfds_executor.Executor' in ' '.join(args)
  dataset_dir = f'{TFDS_DATA_DIR}/mnist/3.0.1'
  patterns = {'train': 'mnist-train.tfrecord*', 'eval': 'mnist-test.tfrecord*'}
  assert _constant(spec, 'TfdsExampleGen', 'input_base') == dataset_dir
  input_config = json.loads(_constant(spec, 'TfdsExampleGen', 'input_config'))
  assert {s['name']: s['pattern'] for s in input_config['splits']} == patterns
  # The gate names what ExampleGen read.
  assert _constant(spec, 'DataGate', 'input_base') == dataset_dir
  assert json.loads(_constant(spec, 'DataGate', 'split_patterns')) == patterns
  # No data_root parameter: the prepared data set is compiled in.
  assert set(spec.root.input_definitions.parameters) == {'epochs'}
  assert executors['TfdsExampleGen'].container.resources.cpu_limit == 2


@pytest.mark.parametrize('extra, message', [
    (('--data-root', 'gs://b/mnist/'), '--data-root and --tfds are two data '
     'sources'),
    (('--tfds-data-dir', '/local/tfds'), 'a local path exists only on this '
     'machine'),
])
def test_bad_tfds_flags_are_usage_errors(extra, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    kubeflow_runner.parse_args(['compile', '--output', 'p.yaml', *TFDS_FLAGS,
                                *extra])
  assert exit_info.value.code == exit_codes.USAGE
  assert message in capsys.readouterr().err
