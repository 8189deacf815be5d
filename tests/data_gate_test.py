"""The data gate end to end: `python local_runner.py` on successive spans.

Real LocalDagRunner, Beam, TFDV, SQLite ML Metadata and SavedModels, on
drops of 2,000 training and 500 eval images, 1 epoch. One scenario, in the
order a scheduled pipeline meets it: MNIST, more MNIST, inverted images,
labels of one class, then an intended change accepted with --accept-drift.
"""

import json
import pathlib
import shutil
from typing import Dict, List

import numpy as np
import pytest

from components.example_gen import idx
from conftest import load_mnist_head
from tests.local_runner_test import execution_states
from tests.local_runner_test import open_store
from tests.local_runner_test import run_cli

TRAIN, EVAL = 2000, 500
EXIT_DATA_GATE = 4


def write_drop(directory: pathlib.Path, train, evaluation) -> None:
  directory.mkdir(parents=True)
  for prefix, (images, labels) in (('train', train), ('t10k', evaluation)):
    idx.write_split(str(directory), prefix, images, labels)


def versions(out: pathlib.Path) -> List[str]:
  return sorted(p.name for p in (out / 'serving_model').iterdir()
                if p.name.isdigit())


def trainer_runs(out: pathlib.Path) -> int:
  return len(execution_states(open_store(out)).get('Trainer', []))


def statuses(out: pathlib.Path) -> Dict[str, str]:
  summary = json.loads((out / 'run_summary.json').read_text())
  return {name: c['status'] for name, c in summary['components'].items()}


@pytest.mark.slow
def test_gate_lets_mnist_through_and_stops_bad_drops(tmp_path):
  drops, out = tmp_path / 'drops', tmp_path / 'out'
  images, labels = load_mnist_head('train', 2 * TRAIN)
  eval_images, eval_labels = load_mnist_head('t10k', 2 * EVAL)
  first = ((images[:TRAIN], labels[:TRAIN]),
           (eval_images[:EVAL], eval_labels[:EVAL]))
  second = ((images[TRAIN:], labels[TRAIN:]),
            (eval_images[EVAL:], eval_labels[EVAL:]))
  args = ('--data-dir', str(drops), '--output-dir', str(out), '--epochs', '1',
          '--bless-threshold', '1000', '--bless-tolerance', '1000')

  # Span 1: nothing is served, the schema is checked; the model is pushed
  # with its training data's statistics, the reference from now on.
  write_drop(drops / 'span-1', *first)
  result = run_cli(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  [v1] = versions(out)
  assert (out / 'serving_model' / v1 / 'assets.extra' /
          'mnist_vae_reference_stats.pb').is_file()

  # 1. Span 2, other MNIST images: within every threshold, so it retrains.
  write_drop(drops / 'span-2', *second)
  result = run_cli(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((out / 'run_summary.json').read_text())
  gate = summary['data_gate']
  assert gate['passed'] is True and gate['span'] == 2
  assert gate['reference']['version_dir'] == str(out / 'serving_model' / v1)
  for split in ('train', 'eval'):
    for reference in ('served', 'anchor'):
      drift = gate['splits'][split]['drift'][reference]
      assert drift['label']['value'] <= drift['label']['threshold']
      assert drift['image']['value'] <= drift['image']['threshold']
  assert 'data gate: passed; against served version ' + v1 in result.stdout
  assert statuses(out)['Trainer'] == 'ran'
  assert len(versions(out)) == 2
  # The new span was read (ExampleGen ran again, not from cache) and the new
  # model evaluated against the one the first run pushed.
  assert statuses(out)['IdxExampleGen'] == 'ran'
  store = open_store(out)
  examples = sorted(store.get_artifacts_by_type('Examples'), key=lambda a: a.id)
  assert [a.custom_properties['span'].int_value for a in examples] == [1, 2]
  evaluations = sorted(store.get_artifacts_by_type('ModelEvaluation'),
                       key=lambda a: a.id)
  assert len(evaluations) == 2
  second_metrics = json.loads(
      pathlib.Path(evaluations[1].uri, 'metrics.json').read_text())
  assert second_metrics['num_images'] == EVAL
  assert second_metrics['served_model_dir'] == str(out / 'serving_model' / v1)
  served = versions(out)
  trained = trainer_runs(out)

  # 2. Span 3, inverted images: stopped before the Trainer, exit code 4.
  write_drop(drops / 'span-3', ((255 - second[0][0], second[0][1])),
             ((255 - second[1][0], second[1][1])))
  result = run_cli(*args)
  assert result.returncode == EXIT_DATA_GATE, result.stderr[-3000:]
  assert (f"span 3, split train ({drops}/span-3/train-*-ubyte*): feature "
          "'image': drift: pixel-value Jensen-Shannon divergence 0.") in (
              result.stderr)
  assert 'exceeds the allowed 0.01' in result.stderr
  assert 'Nothing was trained or pushed (exit code 4)' in result.stderr
  assert versions(out) == served
  assert trainer_runs(out) == trained
  assert set(statuses(out)) == {'CuratedSchemaGen', 'IdxExampleGen',
                                'StatisticsGen', 'DataGate'}
  assert statuses(out)['DataGate'] == 'failed'
  summary = json.loads((out / 'run_summary.json').read_text())
  assert summary['data_gate']['passed'] is False
  assert summary['data_gate']['span'] == 3
  [train_finding, *_] = summary['data_gate']['splits']['train']['findings']
  assert train_finding['feature'] == 'image'
  assert train_finding['measured'] > train_finding['allowed'] == 0.01
  assert summary['pushed_model'] is None

  # 3. Span 4, labels almost all one class: stopped the same way.
  skewed = np.where(np.arange(TRAIN) % 20 == 0, second[0][1], 1)
  eval_skewed = np.where(np.arange(EVAL) % 20 == 0, second[1][1], 1)
  write_drop(drops / 'span-4', (second[0][0], skewed.astype(np.uint8)),
             (second[1][0], eval_skewed.astype(np.uint8)))
  result = run_cli(*args)
  assert result.returncode == EXIT_DATA_GATE, result.stderr[-3000:]
  assert (f"span 4, split eval ({drops}/span-4/t10k-*-ubyte*): feature "
          "'label': drift: label L-infinity distance 0.") in result.stderr
  assert 'exceeds the allowed 0.1' in result.stderr
  assert versions(out) == served
  assert trainer_runs(out) == trained

  # 5. Span 5, inverted again, accepted on purpose: trained and pushed, and
  # its data becomes the reference...
  shutil.copytree(drops / 'span-3', drops / 'span-5')
  result = run_cli(*args, '--accept-drift')
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((out / 'run_summary.json').read_text())
  assert summary['data_gate']['passed'] is True
  assert summary['data_gate']['accepted']
  assert 'accepted (--accept-drift)' in result.stderr
  assert summary['pushed_model'] is not None
  accepted_version = pathlib.Path(summary['pushed_model']).name
  assert versions(out) == sorted(served + [accepted_version])

  # ... so the next span with the same drift passes without the flag (other
  # images, inverted alike: a copy of span 5 would be nothing new).
  write_drop(drops / 'span-6', ((255 - first[0][0], first[0][1])),
             ((255 - first[1][0], first[1][1])))
  result = run_cli(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((out / 'run_summary.json').read_text())
  assert summary['data_gate']['passed'] is True
  assert summary['data_gate']['accepted'] == []
  assert summary['data_gate']['reference']['version_dir'] == str(
      out / 'serving_model' / accepted_version)
  assert statuses(out)['Trainer'] == 'ran'


@pytest.mark.slow
def test_wrong_image_size_is_refused_by_the_reader_naming_the_file(
    tmp_path):
  """A drop whose images are not 28x28 never reaches the statistics."""
  drops, out = tmp_path / 'drops', tmp_path / 'out'
  images, labels = load_mnist_head('train', 100)
  eval_images, eval_labels = load_mnist_head('t10k', 50)
  write_drop(drops / 'span-1', (images, labels), (eval_images, eval_labels))
  bad = drops / 'span-1' / 't10k-images-idx3-ubyte.gz'
  idx.write_idx(str(bad), eval_images[:, :, :27])  # 27 values a row
  result = run_cli('--data-dir', str(drops), '--output-dir', str(out))
  assert result.returncode == 2
  assert (f'{bad}: images are 28x27; only 28x28 images are supported'
          in result.stderr)
  assert execution_states(open_store(out)) == {
      'CuratedSchemaGen': ['COMPLETE'], 'IdxExampleGen': ['FAILED']}
  assert not (out / 'serving_model').exists()
