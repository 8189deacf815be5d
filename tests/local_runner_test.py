"""End-to-end tests of `python local_runner.py` on small subsets.

These run the real command line in a subprocess: LocalDagRunner, Beam's
DirectRunner in multi-processing mode and a SQLite ML Metadata store.
"""

import json
import math
import os
import pathlib
import re
import signal
import subprocess
import time
import sys
from typing import Dict, List, Optional

import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.example_gen import idx
from components.example_gen.component import IdxExampleGen
from conftest import IN_MEMORY_BEAM
from conftest import load_mnist_head
from conftest import REPO_ROOT
from conftest import write_mnist_subset
from layouts import contracts
from layouts import model as model_layout
from layouts import serving as serving_layout
from pipeline import exit_codes
from pipeline import run_lock

# Runs executors, Beam or training on real data: the full suite's tier.
pytestmark = pytest.mark.slow

COMPONENTS = ('CuratedSchemaGen', 'IdxExampleGen', 'StatisticsGen', 'DataGate',
              'Trainer', 'VaeEvaluator', 'Pusher')


def run_cli(*args: str, beam_workers: bool = False,
            env: Optional[Dict[str, str]] = None
            ) -> subprocess.CompletedProcess:
  """local_runner.py with `args`; Beam in one process (IN_MEMORY_BEAM)
  unless `beam_workers`, the runner's default; `env`: more environment
  variables."""
  beam = () if beam_workers else IN_MEMORY_BEAM
  env = dict(os.environ, **env) if env else None
  return subprocess.run(
      [sys.executable, str(REPO_ROOT / 'local_runner.py'), *args, *beam],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
      env=env)


def open_store(output_dir: pathlib.Path) -> metadata_store.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(output_dir / 'metadata.sqlite')
  config.sqlite.connection_mode = 1  # READONLY
  return metadata_store.MetadataStore(config)


def execution_states(store: metadata_store.MetadataStore) -> Dict[str, List[str]]:
  """Component id -> states of its executions, oldest first."""
  node_type = store.get_context_type('node')
  states: Dict[str, List[str]] = {}
  for execution in sorted(store.get_executions(), key=lambda e: e.id):
    for context in store.get_contexts_by_execution(execution.id):
      if context.type_id == node_type.id:
        name = context.name.split('.', 1)[1]
        state = metadata_store_pb2.Execution.State.Name(
            execution.last_known_state)
        states.setdefault(name, []).append(state)
  return states


def served_versions(serving_dir: pathlib.Path) -> List[pathlib.Path]:
  """The version folders (all-digit names) TensorFlow Serving would see,
  oldest first; the writers' lock and the rejections sit beside them."""
  return sorted((p for p in serving_dir.iterdir() if p.name.isdigit()),
                key=lambda p: int(p.name))


def count_examples(split_dir: str) -> int:
  files = tf.io.gfile.glob(os.path.join(split_dir, '*.gz'))
  return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type='GZIP'))


def test_help_explains_the_flags():
  result = run_cli('--help')
  assert result.returncode == 0, result.stderr
  for flag in ('--data-dir', '--output-dir', '--max-examples', '--beam-arg',
               'data/mnist', 'DataflowRunner', '--epochs', '--batch-size',
               '--latent-dim', '--learning-rate', '--bless-threshold',
               '--bless-tolerance', '--accept-drift', '--max-label-linf',
               '--max-pixel-jsd', '--max-mean-image-linf'):
    assert flag in result.stdout
  assert '4 the data gate stopped the run' in ' '.join(result.stdout.split())


@pytest.mark.slow
def test_subset_run_completes_and_names_its_outputs(tmp_path):
  out = tmp_path / 'out'
  temp = tmp_path / 'temp'
  temp.mkdir()
  # One epoch on 300 images is far from the default threshold: loosen it so
  # the model is blessed and pushed.
  # Beam as the runner runs it by default: a worker process per core.
  result = run_cli('--max-examples', '300', '--epochs', '1', '--output-dir',
                   str(out), '--bless-threshold', '1000', beam_workers=True,
                   env={'TMPDIR': str(temp)})
  assert result.returncode == 0, result.stderr[-3000:]
  # The Beam components packaged no copy of TFX (pipeline.with_beam_dependencies).
  assert not list(temp.rglob('tfx_ephemeral*')), sorted(temp.rglob('*'))[:5]
  assert f'Outputs: {out}' in result.stderr
  # Keras' per-epoch line, with the validation -ELBO.
  assert re.search(r'loss: [\d.]+ .*val_loss: [\d.]+', result.stdout), (
      result.stdout[-2000:])
  for name in COMPONENTS:
    assert f'{name} started' in result.stderr
    assert f'{name} finished in' in result.stderr
  # Default output is progress, not framework noise.
  assert 'cuda' not in result.stderr.lower()
  assert 'FutureWarning' not in result.stderr

  store = open_store(out)
  assert execution_states(store) == {name: ['COMPLETE'] for name in COMPONENTS}
  [examples] = store.get_artifacts_by_type('Examples')
  assert count_examples(os.path.join(examples.uri, 'Split-train')) == 300
  assert count_examples(os.path.join(examples.uri, 'Split-eval')) == 300
  [schema] = store.get_artifacts_by_type('Schema')
  # The committed schema, imported as it is.
  assert pathlib.Path(schema.uri, 'schema.pbtxt').read_text() == (
      REPO_ROOT / 'schema' / 'schema.pbtxt').read_text()
  [anomalies] = store.get_artifacts_by_type('ExampleAnomalies')
  assert anomalies.uri.startswith(str(out / 'pipeline' / 'DataGate'))
  assert anomalies.custom_properties['gate_passed'].int_value == 1
  [model] = store.get_artifacts_by_type('Model')
  model_dir = pathlib.Path(model.uri)
  assert (model_dir / model_layout.SERVING_MODEL_DIR / 'saved_model.pb').is_file()
  assert (model_dir / model_layout.ENCODER_DIR / 'saved_model.pb').is_file()
  assert (model_dir / model_layout.WARM_START_WEIGHTS).is_file()
  [model_run] = store.get_artifacts_by_type('ModelRun')
  assert list(pathlib.Path(model_run.uri).glob('**/events.out.tfevents.*'))
  [evaluation] = store.get_artifacts_by_type('ModelEvaluation')
  for name in ('metrics.json', 'manifold.png', 'clusters.png', 'report.html'):
    assert (pathlib.Path(evaluation.uri) / name).is_file()
  [blessing] = store.get_artifacts_by_type('ModelBlessing')
  assert blessing.custom_properties['blessed'].int_value == 1
  assert (pathlib.Path(blessing.uri) / 'BLESSED').is_file()
  [version_dir] = served_versions(out / 'serving_model')
  assert (version_dir / 'saved_model.pb').is_file()
  [pushed] = store.get_artifacts_by_type('PushedModel')
  assert pushed.custom_properties['pushed_destination'].string_value == str(
      version_dir)

  summary = json.loads((out / 'run_summary.json').read_text())
  assert set(summary['metrics']) == {'neg_elbo', 'reconstruction', 'kl',
                                     'iwae_bound'}
  assert all(math.isfinite(v) for v in summary['metrics'].values())
  assert summary['blessed'] is True
  assert summary['pushed_model'] == str(version_dir)
  assert summary['model_uri'] == model.uri
  # How training ended: all of its one epoch, early stopping off (no warm
  # start), also on the terminal.
  assert summary['training']['epochs_run'] == 1
  assert summary['training']['max_epochs'] == 1
  assert summary['training']['reason'] == 'early stopping off'
  assert not summary['training']['stopped_early']
  assert f'training: {summary["training"]["description"]}' in result.stdout
  # Nothing was served: the schema was checked, drift was not.
  assert summary['data_gate']['passed'] is True
  assert summary['data_gate']['reference']['status'] == 'no model served'
  assert set(summary['data_gate']['splits']) == {'train', 'eval'}
  # The pushed version records its training data's statistics.
  assert (version_dir / 'assets.extra' /
          'mnist_vae_reference_stats.pb').is_file()
  for path in summary['plots'].values():
    assert os.path.isfile(path)
  assert {name: c['status'] for name, c in summary['components'].items()} == {
      name: 'ran' for name in COMPONENTS}
  assert all(c['seconds'] >= 0 for c in summary['components'].values())
  assert 'Run summary:' in result.stdout

  # The version records what it was trained on (layouts/lineage.py).
  trained_on = serving_layout.read_push_info(str(version_dir))[
      contracts.TRAINED_ON_KEY]
  assert trained_on == json.loads(model.custom_properties[
      contracts.TRAINED_ON_KEY].string_value)
  assert trained_on['data'] == examples.custom_properties[
      contracts.DATA_DIGEST_KEY].string_value

  # A rerun on the same data with the same flags: the served version was
  # trained on exactly that, so the run ends before the pipeline, exit 0,
  # with or without the cache, and nothing is served but that version.
  args = ('--max-examples', '300', '--epochs', '1', '--output-dir', str(out),
          '--bless-threshold', '1000')
  runs_before = len(store.get_contexts_by_type('pipeline_run'))
  for extra in ((), ('--no-cache',)):
    # Python lists every module it imports (PYTHONPROFILEIMPORTTIME).
    rerun = run_cli(*args, *extra, beam_workers=True,
                    env={'PYTHONPROFILEIMPORTTIME': '1'})
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # It ended before TFX, TFDV, Beam, TFDS and the components' executors
    # were imported (pipeline/local_run.py).
    imported = {line.rsplit('|', 1)[1].strip()
                for line in rerun.stderr.splitlines()
                if line.startswith('import time:') and '|' in line}
    assert 'tensorflow' in imported and 'pipeline.local_run' in imported
    late = {name for name in imported
            if name.split('.')[0] in ('tensorflow_data_validation',
                                      'apache_beam', 'tensorflow_datasets')
            or name.startswith(('tfx.orchestration', 'tfx.components',
                                'tfx.dsl', 'pipeline.pipeline'))
            or (name.startswith('components.') and 'executor' in name)}
    assert not late, sorted(late)[:20]
    summary = json.loads((out / 'run_summary.json').read_text())
    assert summary[contracts.NOTHING_NEW_KEY] == (
        f'nothing new: the served version {version_dir.name} was trained on '
        'exactly this data with this training configuration')
    assert summary['components'] == {} and summary['pushed_model'] is None
    assert 'nothing trained, measured or pushed' in rerun.stdout
    assert 'IdxExampleGen started' not in rerun.stderr
  assert len(open_store(out).get_contexts_by_type('pipeline_run')) == (
      runs_before)
  assert served_versions(out / 'serving_model') == [version_dir]

  # Another training configuration (a seed) is something new: it trains,
  # from the cached data.
  # (Beam's arguments are part of the cache key: the first run's again.)
  seeded = run_cli(*args, '--seed', '5', beam_workers=True)
  assert seeded.returncode == 0, seeded.stderr[-3000:]
  summary = json.loads((out / 'run_summary.json').read_text())
  assert summary['components']['IdxExampleGen']['status'] == 'cached'
  assert summary['components']['Trainer']['status'] == 'ran'
  assert summary[contracts.NOTHING_NEW_KEY] is None


def test_second_run_on_the_same_output_dir_is_refused(tmp_path):
  out = tmp_path / 'out'
  with run_lock.run_lock(str(out)):
    result = run_cli('--max-examples', '100', '--output-dir', str(out))
  assert result.returncode == 3
  assert f'{out} is in use by another run (pid {os.getpid()})' in result.stderr
  assert not (out / 'metadata.sqlite').exists()


def test_usage_errors_exit_64_not_the_bad_data_code(tmp_path):
  for flags in (('--epochs', 'many'), ('--no-such-flag',),
                ('--tfds', 'mnist', '--data-dir', str(tmp_path))):
    result = run_cli(*flags, '--output-dir', str(tmp_path / 'out'))
    assert result.returncode == exit_codes.USAGE, (flags, result.stderr)
    assert 'usage: local_runner.py' in result.stderr
  assert not (tmp_path / 'out').exists()


def test_missing_data_dir_fails_fast_with_its_name(tmp_path):
  missing = tmp_path / 'nowhere'
  result = run_cli('--data-dir', str(missing), '--output-dir',
                   str(tmp_path / 'out'))
  assert result.returncode == 2
  assert f'{missing}: data directory not found' in result.stderr
  assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_bad_labels_stop_the_run_before_statistics(tiny_mnist, tmp_path):
  _, labels = load_mnist_head('train', 120)
  labels = labels.copy()
  labels[5] = 10
  bad_file = tiny_mnist / 'train-labels-idx1-ubyte.gz'
  idx.write_idx(str(bad_file), labels)
  out = tmp_path / 'out'

  result = run_cli('--data-dir', str(tiny_mnist), '--output-dir', str(out))

  assert result.returncode == 2
  assert f'{bad_file}: label 10 at index 5 is outside 0..9' in result.stderr
  states = execution_states(open_store(out))
  assert states == {'CuratedSchemaGen': ['COMPLETE'],
                    'IdxExampleGen': ['FAILED']}
  assert not (out / 'pipeline' / 'StatisticsGen').exists()


@pytest.mark.slow
def test_newest_span_is_ingested_by_the_next_run(tmp_path):
  """The ExampleGen driver resolves {SPAN}: a new drop is read next run."""
  drops = tmp_path / 'drops'
  write_mnist_subset(drops / 'span-1', {'train': 30, 't10k': 10})
  metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
      str(tmp_path / 'metadata.sqlite'))

  def run_example_gen():
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name='span-test', pipeline_root=str(tmp_path / 'root'),
        components=[IdxExampleGen(input_base=str(drops), use_spans=True)],
        metadata_connection_config=metadata, enable_cache=True))

  run_example_gen()
  write_mnist_subset(drops / 'span-2', {'train': 45, 't10k': 15})
  run_example_gen()

  store = open_store(tmp_path)
  artifacts = sorted(store.get_artifacts_by_type('Examples'),
                     key=lambda a: a.id)
  spans = [a.custom_properties['span'].int_value for a in artifacts]
  assert spans == [1, 2]
  assert count_examples(os.path.join(artifacts[1].uri, 'Split-train')) == 45
  assert count_examples(os.path.join(artifacts[1].uri, 'Split-eval')) == 15


@pytest.mark.slow
def test_run_killed_during_training_resumes_to_completion(tmp_path):
  """kill -9 in epoch 3 of 4: the rerun continues at epoch 3 (Keras'
  BackupAndRestore in the Trainer), not from the start."""
  out = tmp_path / 'out'
  args = ('--max-examples', '2000', '--epochs', '4', '--output-dir', str(out),
          '--bless-threshold', '1000')
  process = subprocess.Popen(
      [sys.executable, str(REPO_ROOT / 'local_runner.py'), *args,
       *IN_MEMORY_BEAM],  # as run_cli runs the rerun
      cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True, start_new_session=True)
  seen = []
  deadline = time.monotonic() + 300
  for line in process.stdout:
    seen.append(line)
    if line.startswith('Epoch 3/4') or time.monotonic() > deadline:
      break
  os.killpg(process.pid, signal.SIGKILL)  # the runner and its Beam workers
  process.wait()
  assert any(line.startswith('Epoch 3/4') for line in seen), ''.join(seen)
  assert not (out / 'serving_model').exists()

  resumed = run_cli(*args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  epochs = re.findall(r'^Epoch (\d+)/4', resumed.stdout, re.M)
  assert epochs == ['3', '4'], resumed.stdout[-3000:]
  summary = json.loads((out / 'run_summary.json').read_text())
  statuses = {n: c['status'] for n, c in summary['components'].items()}
  assert statuses['IdxExampleGen'] == statuses['StatisticsGen'] == 'cached'
  assert statuses['Trainer'] == 'ran' and statuses['Pusher'] == 'ran'
  # Four epochs in all: two before the kill, two after.
  store = open_store(out)
  model_run = max(store.get_artifacts_by_type('ModelRun'), key=lambda a: a.id)
  rows = (pathlib.Path(model_run.uri) / 'history.csv').read_text().split()
  assert rows[0].startswith('epoch,')
  assert [row.split(',')[0] for row in rows[1:]] == ['0', '1', '2', '3']
  assert not (out / 'pipeline' / 'Trainer' / 'resume').exists() or not list(
      (out / 'pipeline' / 'Trainer' / 'resume').iterdir())
  versions = served_versions(out / 'serving_model')
  assert len(versions) == 1
  assert (versions[0] / 'saved_model.pb').is_file()
