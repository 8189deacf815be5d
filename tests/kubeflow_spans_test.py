"""Spans on Kubeflow: one compiled package, two nightly runs over one data
root, the second after a new `span-N/` folder landed.

Open-source KFP runs no ExampleGen driver, so nothing resolves {SPAN} at
run time but IdxExampleGen's executor: it lists the data root when its task
runs (pipeline/kfp_launcher.py runs every task as the open-source KFP v2
launcher does). The package is compiled once, with the flat patterns, and
not touched between the runs.
"""

import hashlib
import json
import pathlib
from typing import List, Tuple

import pytest

import conftest
from benchmarks import kfp_package
from conftest import idx_content
from layouts import spans
from pipeline import kfp_launcher

# Train and t10k images of each span: span n holds the n-th slice of each.
_TRAIN, _T10K = 300, 100


def write_span(root: pathlib.Path, number: int) -> pathlib.Path:
  return conftest.write_span(root, number, _TRAIN, _T10K)


def written(examples_uri: str, split: str) -> List[Tuple[bytes, int]]:
  return conftest.examples_in(f'{examples_uri}/Split-{split}/*')


def recorded_examples(run: kfp_launcher.Run):
  """The ExampleGen's Examples as the emulated KFP recorded them: its uri,
  and its custom properties (what downstream tasks get as metadata)."""
  recorded = run.mlmd[run.outputs['IdxExampleGen']['examples']]
  return recorded['uri'], recorded['custom_properties']


def sha256(path: str) -> str:
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


@pytest.mark.slow
def test_nightly_runs_read_the_newest_span_from_one_package(tmp_path):
  serving = tmp_path / 'serving'
  package = kfp_package.compile_package(
      str(tmp_path / 'pipeline.yaml'), serving_root=str(serving),
      pipeline_root='gs://compiled/root',
      flags=['--epochs', '3', '--bless-threshold', '1000',
             '--beam-arg=--direct_running_mode=in_memory'])
  compiled = pathlib.Path(package).read_bytes()
  root = tmp_path / 'drops'
  folders = {1: write_span(root, 1)}

  def nightly(number: int) -> kfp_launcher.Run:
    return kfp_launcher.Run(
        package, pipeline_root=str(tmp_path / 'root'),
        runtime_parameters={'data_root': f'{root}/', 'epochs': 1},
        workdir=tmp_path / f'pods-{number}').run()

  first = nightly(1)
  uri, properties = recorded_examples(first)
  assert properties['span'] == {'double_value': 1.0}
  assert written(uri, 'train') == idx_content(folders[1], 'train')
  assert [p.name for p in serving.iterdir() if p.name.isdigit()]

  folders[2] = write_span(root, 2)
  second = nightly(2)
  assert second.completed == first.completed
  uri, properties = recorded_examples(second)
  assert properties['span'] == {'double_value': 2.0}
  window = spans.decode_window(
      properties[spans.WINDOW_PROPERTY]['string_value'])
  assert [(s.span, s.folder) for s in window] == [(2, str(folders[2]))]
  assert written(uri, 'train') == idx_content(folders[2], 'train')
  assert written(uri, 'eval') == idx_content(folders[2], 't10k')
  # Downstream tasks got the span in the Examples' metadata.
  trainer_examples = second.executor_inputs['Trainer']['inputs'][
      'artifacts']['examples']['artifacts'][0]
  assert trainer_examples['metadata']['span'] == 2.0
  metrics = json.loads(pathlib.Path(
      second.output_uri('VaeEvaluator', 'evaluation'),
      'metrics.json').read_text())
  assert metrics['num_images'] == _T10K
  # The same package, byte for byte: nothing was compiled again.
  assert pathlib.Path(package).read_bytes() == compiled
  assert sha256(package) == hashlib.sha256(compiled).hexdigest()
