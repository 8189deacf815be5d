"""End-to-end tests of `python local_runner.py` on small subsets.

These run the real command line in a subprocess: LocalDagRunner, Beam's
DirectRunner in multi-processing mode and a SQLite ML Metadata store.
"""

import os
import pathlib
import subprocess
import sys
from typing import Dict, List

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.idx_example_gen import idx
from components.idx_example_gen.component import IdxExampleGen
from conftest import REPO_ROOT
from conftest import load_mnist_head
from conftest import write_mnist_subset

SKELETON = ('IdxExampleGen', 'StatisticsGen', 'SchemaGen', 'ExampleValidator')


def run_cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, str(REPO_ROOT / 'local_runner.py'), *args],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)


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


def count_examples(split_dir: str) -> int:
  files = tf.io.gfile.glob(os.path.join(split_dir, '*.gz'))
  return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type='GZIP'))


def test_help_explains_the_flags():
  result = run_cli('--help')
  assert result.returncode == 0, result.stderr
  for flag in ('--data-dir', '--output-dir', '--max-examples', '--beam-arg',
               'data/mnist', 'DataflowRunner'):
    assert flag in result.stdout


def test_subset_run_completes_and_names_its_outputs(tmp_path):
  out = tmp_path / 'out'
  result = run_cli('--max-examples', '300', '--output-dir', str(out))
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Outputs: {out}' in result.stderr
  for name in SKELETON:
    assert f'{name} started' in result.stderr
    assert f'{name} finished in' in result.stderr
  # Default output is progress, not framework noise.
  assert 'cuda' not in result.stderr.lower()
  assert 'FutureWarning' not in result.stderr

  store = open_store(out)
  assert execution_states(store) == {name: ['COMPLETE'] for name in SKELETON}
  [examples] = store.get_artifacts_by_type('Examples')
  assert count_examples(os.path.join(examples.uri, 'Split-train')) == 300
  assert count_examples(os.path.join(examples.uri, 'Split-eval')) == 300
  [schema] = store.get_artifacts_by_type('Schema')
  schema_text = pathlib.Path(schema.uri, 'schema.pbtxt').read_text()
  assert 'name: "image"' in schema_text and 'size: 784' in schema_text
  [anomalies] = store.get_artifacts_by_type('ExampleAnomalies')
  assert anomalies.uri.startswith(str(out / 'pipeline'))


def test_missing_data_dir_fails_fast_with_its_name(tmp_path):
  missing = tmp_path / 'nowhere'
  result = run_cli('--data-dir', str(missing), '--output-dir',
                   str(tmp_path / 'out'))
  assert result.returncode == 2
  assert f'{missing}: data directory not found' in result.stderr
  assert not (tmp_path / 'out').exists()


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
  assert states == {'IdxExampleGen': ['FAILED']}
  assert not (out / 'pipeline' / 'StatisticsGen').exists()


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
