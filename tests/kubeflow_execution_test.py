"""Executes the compiled Kubeflow package the way open-source KFP does.

`kubeflow_runner.py compile` writes the package; pipeline/kfp_launcher.py then
runs every task of it in topological order as the open-source KFP v2 driver
and launcher would: the executor input JSON substituted for `{{$}}` in the
task's compiled command, upstream artifacts passed with the empty type the
driver sends, the command run as a subprocess with the project's venv
standing in for the image, the executor output file read back. With the
project's entrypoint (pipeline/kfp_entrypoint.py) the whole pipeline runs to
a pushed model that loads; with TFX's stock entrypoint it fails where
open-source KFP fails (tensorflow/tfx#7768).

The pipeline root and push destination are local folders here; the same
run against an S3 server is in kubeflow_s3_test.py.
"""

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from benchmarks import kfp_package
from components.example_gen import idx
from conftest import load_mnist_head
from conftest import write_mnist_subset
from layouts import contracts
from layouts import serving as serving_layout
from pipeline import kfp_launcher

TFX_ENTRYPOINT = ['python', '-m',
                  'tfx.orchestration.kubeflow.v2.container.'
                  'kubeflow_v2_run_executor']
ALL_TASKS = ['CuratedSchemaGen', 'IdxExampleGen', 'StatisticsGen',
             'DataGate', 'Trainer', 'VaeEvaluator', 'Pusher']
# Loads the pushed decoder with TensorFlow alone and decodes two points.
_DECODE = textwrap.dedent("""
    import sys
    import tensorflow as tf
    decode = tf.saved_model.load(sys.argv[1]).signatures['serving_default']
    print(decode(z=tf.zeros([2, 2]))['image'].shape)
""")


def compile_package(tmp_path: pathlib.Path, serving_root: str,
                    pipeline_root: str = 'gs://compiled/root',
                    extra_flags=()) -> str:
  """kfp_package.compile_package with 3 compiled epochs, a lenient blessing
  threshold and one process per Beam task (the machine has two cores)."""
  return kfp_package.compile_package(
      str(tmp_path / 'pipeline.yaml'), serving_root=serving_root,
      pipeline_root=pipeline_root,
      flags=['--epochs', '3', '--bless-threshold', '1000',
             '--beam-arg=--direct_running_mode=in_memory', *extra_flags])


def decode_in_fresh_process(version_dir: str, env=None) -> str:
  completed = subprocess.run(
      [sys.executable, '-c', _DECODE, version_dir], capture_output=True,
      text=True, timeout=120, check=False, env=env)
  assert completed.returncode == 0, completed.stderr[-3000:]
  return completed.stdout.strip().splitlines()[-1]


def history_epochs(model_run_uri: str) -> int:
  """Rows of the Trainer's history.csv: the epochs it trained."""
  [history] = pathlib.Path(model_run_uri).rglob('history.csv')
  return len(history.read_text().strip().splitlines()) - 1


@pytest.mark.slow
def test_every_task_runs_as_kfp_runs_it_to_a_pushed_model(tmp_path):
  serving = tmp_path / 'serving'
  package = compile_package(tmp_path, str(serving))
  drop = write_mnist_subset(tmp_path / 'drop-1', {'train': 300, 't10k': 100})
  run = kfp_launcher.Run(
      package, pipeline_root=str(tmp_path / 'root'),
      # Runtime parameters: not the compiled data root and epochs.
      runtime_parameters={'data_root': f'{drop}/', 'epochs': 1},
      workdir=tmp_path / 'pods-1').run()

  assert run.completed == ALL_TASKS
  # The emulation passed upstream artifacts as the open-source driver does,
  # and the driver's log output; the entrypoint coped with both.
  examples = run.executor_inputs['Trainer']['inputs']['artifacts'][
      'examples']['artifacts'][0]
  assert examples['type'] == {'instanceSchema': ''}
  assert 'executor-logs' in run.executor_inputs['Trainer']['outputs'][
      'artifacts']
  assert 'type taken from the component inputs spec' in run.logs['Trainer']
  # The runtime parameters reached the tasks.
  assert history_epochs(run.output_uri('Trainer', 'model_run')) == 1
  metrics = json.loads(pathlib.Path(
      run.output_uri('VaeEvaluator', 'evaluation'), 'metrics.json').read_text())
  assert metrics['num_images'] == 100  # The drop's t10k files.
  assert metrics['blessed'] is True
  # One version pushed, with the decoder that loads and runs.
  [version] = [p for p in serving.iterdir() if p.name.isdigit()]
  assert (version / 'saved_model.pb').exists()
  assert decode_in_fresh_process(str(version)) == '(2, 28, 28, 1)'

  # The next scheduled run sees the same drop: KFP has no cache, so every
  # task runs, but the Trainer trains nothing (the served version was
  # trained on exactly this data and configuration), the evaluator measures
  # nothing and the Pusher pushes nothing; the run succeeds.
  same = kfp_launcher.Run(
      package, pipeline_root=str(tmp_path / 'root'),
      runtime_parameters={'data_root': f'{drop}/', 'epochs': 1},
      workdir=tmp_path / 'pods-same').run()
  assert same.completed == ALL_TASKS
  reason = same.output_property('Trainer', 'model', contracts.NOTHING_NEW_KEY)
  assert reason == (f'nothing new: the served version {version.name} was '
                    'trained on exactly this data with this training '
                    'configuration')
  assert not list(pathlib.Path(same.output_uri('Trainer', 'model')).rglob(
      'saved_model.pb'))
  assert same.output_property('VaeEvaluator', 'blessing', 'blessed') == 0
  assert same.output_property('Pusher', 'pushed_model', 'pushed') == 0
  assert same.output_property('Pusher', 'pushed_model',
                              contracts.NOT_PUSHED_REASON_KEY) == reason
  assert [p.name for p in serving.iterdir() if p.name.isdigit()] == [
      version.name]
  # What the version records it was trained on: this drop's digest.
  trained_on = serving_layout.read_push_info(str(version))[
      contracts.TRAINED_ON_KEY]
  assert trained_on['data'] == same.output_property(
      'IdxExampleGen', 'examples', contracts.DATA_DIGEST_KEY)

  # A second scheduled run, on inverted images: the data gate's task fails,
  # nothing after it runs, and the served version stays.
  inverted = tmp_path / 'drop-2'
  for prefix, count in (('train', 300), ('t10k', 100)):
    images, labels = load_mnist_head(prefix, count)
    idx.write_split(str(inverted), prefix, 255 - images, labels,
                    compress=False)
  second = kfp_launcher.Run(
      package, pipeline_root=str(tmp_path / 'root'),
      runtime_parameters={'data_root': f'{inverted}/', 'epochs': 1},
      workdir=tmp_path / 'pods-2')
  with pytest.raises(kfp_launcher.TaskFailed) as failure:
    second.run()
  assert failure.value.task == 'DataGate'
  assert second.completed == ['CuratedSchemaGen', 'IdxExampleGen',
                              'StatisticsGen']
  assert f'split train ({inverted}/train-*-ubyte*)' in failure.value.log
  assert 'pixel-value Jensen-Shannon divergence' in failure.value.log
  assert [p.name for p in serving.iterdir() if p.name.isdigit()] == [
      version.name]


@pytest.mark.slow
def test_stock_tfx_entrypoint_fails_at_the_first_consumer(tmp_path):
  """The fault this project's entrypoint answers, reproduced: KFP < 2.5, or
  PUBLISH_LOGS=false, where only the input artifact types are missing."""
  package = compile_package(tmp_path, str(tmp_path / 'serving'))
  drop = write_mnist_subset(tmp_path / 'drop', {'train': 100, 't10k': 50})
  run = kfp_launcher.Run(
      package, pipeline_root=str(tmp_path / 'root'),
      runtime_parameters={'data_root': f'{drop}/'},
      workdir=tmp_path / 'pods', publish_logs=False,
      command_for=lambda command: list(TFX_ENTRYPOINT))
  with pytest.raises(kfp_launcher.TaskFailed) as failure:
    run.run()
  # The tasks without upstream artifacts ran; the first one with runs TFX's
  # _retrieve_class_path on `instanceSchema: ""`.
  assert run.completed == ['CuratedSchemaGen', 'IdxExampleGen']
  assert failure.value.task == 'StatisticsGen'
  assert 'in _retrieve_class_path' in failure.value.log
  assert ("AttributeError: 'NoneType' object has no attribute 'get'"
          in failure.value.log)


@pytest.mark.slow
def test_stock_tfx_entrypoint_fails_on_the_launcher_log_output(tmp_path):
  """KFP >= 2.5 (PUBLISH_LOGS=true, the default): every task fails, the
  first one already, on the `executor-logs` output of type system.Artifact.
  """
  package = compile_package(tmp_path, str(tmp_path / 'serving'))
  run = kfp_launcher.Run(
      package, pipeline_root=str(tmp_path / 'root'),
      workdir=tmp_path / 'pods', publish_logs=True,
      command_for=lambda command: list(TFX_ENTRYPOINT))
  with pytest.raises(kfp_launcher.TaskFailed) as failure:
    run.run()
  assert run.completed == []
  assert failure.value.task == 'CuratedSchemaGen'
  assert 'Could not import system.Artifact' in failure.value.log
