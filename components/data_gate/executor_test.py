"""DataGate's executor on real artifacts: examples, TFDV statistics, the
committed schema, and reference statistics recorded in a pushed version."""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components import config as config_lib
from components.atomic_pusher import executor as pusher
from components.data_gate import executor
from components.data_gate import gate
from conftest import REPO_ROOT
from conftest import write_tfrecords
from layouts import anchor as anchor_layout
from layouts import contracts
from layouts import model as model_layout
from layouts import serving as serving_layout
from layouts import spans as spans_layout

# Runs executors, Beam or training on real data: the full suite's tier.
pytestmark = pytest.mark.slow

INPUT_BASE = '/drops'
SPLIT_PATTERNS = {'train': 'span-{SPAN}/train-*-ubyte*',
                  'eval': 'span-{SPAN}/t10k-*-ubyte*'}


class Drop:
  """Examples and StatisticsGen-style statistics of one data drop."""

  def __init__(self, directory: pathlib.Path, make_stats, splits, span: int):
    self.examples = standard_artifacts.Examples()
    self.examples.uri = str(directory / 'examples')
    self.examples.split_names = artifact_utils.encode_split_names(list(splits))
    self.examples.set_int_custom_property('span', span)
    self.statistics = standard_artifacts.ExampleStatistics()
    self.statistics.uri = str(directory / 'statistics')
    self.statistics.split_names = self.examples.split_names
    for split, (images, labels) in splits.items():
      write_tfrecords(directory / 'examples' / f'Split-{split}' / 'data.gz',
                      images, labels)
      stats = make_stats(images, labels)
      # As StatisticsGen writes it: TFDV's statistics, no mean image.
      for image in [f for f in stats.datasets[0].features
                    if f.path.step == ['image']]:
        del image.custom_stats[:]
      io_utils.write_bytes_file(
          os.path.join(self.statistics.uri, f'Split-{split}',
                       stats_artifact_utils.BINARY_PB_BASENAME),
          stats.SerializeToString())


@pytest.fixture
def schema_artifact(tmp_path):
  artifact = standard_artifacts.Schema()
  artifact.uri = str(tmp_path / 'schema')
  os.makedirs(artifact.uri)
  shutil.copy(REPO_ROOT / 'schema' / 'schema.pbtxt', artifact.uri)
  return artifact


def _run(drop, schema_artifact, out_dir, serving_dir, accept_drift=False,
         **config):
  anomalies = standard_artifacts.ExampleAnomalies()
  anomalies.uri = str(out_dir / 'anomalies')
  gated = standard_artifacts.ExampleStatistics()
  gated.uri = str(out_dir / 'gated_statistics')
  properties = {
      executor.SERVING_DIR_KEY: str(serving_dir),
      executor.CONFIG_KEY: config_lib.to_json(config_lib.GateConfig(
          accept_drift=accept_drift, **config)),
      executor.INPUT_BASE_KEY: INPUT_BASE,
      executor.SPLIT_PATTERNS_KEY: json.dumps(SPLIT_PATTERNS),
  }
  try:
    executor.Executor().Do(
        {'examples': [drop.examples], 'statistics': [drop.statistics],
         'schema': [schema_artifact]},
        {'anomalies': [anomalies], 'gated_statistics': [gated]}, properties)
  finally:
    report_path = pathlib.Path(anomalies.uri, contracts.GATE_REPORT_FILE)
    report = json.loads(report_path.read_text())
  return report, anomalies, gated


@pytest.fixture
def mnist_drop(tmp_path, make_stats, mnist_drops):
  (images, labels), (eval_images, eval_labels) = mnist_drops
  return Drop(tmp_path / 'drop-1', make_stats,
              {'train': (images, labels),
               'eval': (eval_images[:500], eval_labels[:500])}, span=1)


def _serve(serving_dir, exported_model, reference=None):
  return pusher.push(os.path.join(exported_model, model_layout.SERVING_MODEL_DIR),
                     str(serving_dir), {'model_uri': exported_model},
                     reference)


def test_first_drop_is_checked_against_the_schema_only(
    mnist_drop, schema_artifact, tmp_path, mnist_drops):
  report, anomalies, gated = _run(mnist_drop, schema_artifact,
                                  tmp_path / 'out', tmp_path / 'serving')
  assert report['passed'] is True
  assert report['reference'] == {'status': 'no model served',
                                 'version_dir': None}
  assert report['span'] == 1
  assert report['splits']['train']['where'] == (
      'span 1, split train (/drops/span-1/train-*-ubyte*)')
  assert report['splits']['train']['drift'] == {}
  assert report['anchor'] == {'status': 'not set', 'record': None}
  assert anomalies.get_int_custom_property(executor.PASSED_PROPERTY) == 1
  for split in ('train', 'eval'):
    assert pathlib.Path(anomalies.uri, f'Split-{split}',
                        executor.ANOMALIES_FILE).is_file()
  # The gated statistics carry the mean image of the examples, here checked
  # against numpy's mean of the same images.
  images, _ = mnist_drops[0]
  stats = stats_artifact_utils.load_statistics(gated, 'train').proto()
  np.testing.assert_allclose(
      gate.recorded_mean_image(stats), images.reshape(-1, 784).mean(0) / 255,
      atol=1e-5)


def test_inverted_drop_fails_against_the_recorded_reference(
    mnist_drop, schema_artifact, tmp_path, make_stats, mnist_drops,
    exported_model):
  _, _, gated = _run(mnist_drop, schema_artifact, tmp_path / 'first',
                     tmp_path / 'serving')
  version_dir = _serve(
      tmp_path / 'serving', exported_model,
      stats_artifact_utils.load_statistics(gated, 'train').proto())
  (other_images, other_labels), (images, labels) = mnist_drops
  inverted = Drop(tmp_path / 'drop-7', make_stats,
                  {'train': (255 - images, labels),
                   'eval': (255 - other_images[:300], other_labels[:300])},
                  span=7)

  with pytest.raises(gate.DataGateError) as raised:
    _run(inverted, schema_artifact, tmp_path / 'second', tmp_path / 'serving')

  message = str(raised.value)
  version = os.path.basename(version_dir)
  assert ("span 7, split train (/drops/span-7/train-*-ubyte*): feature "
          "'image': drift: pixel-value Jensen-Shannon divergence 0.") in message
  assert f'(served version {version}) exceeds the allowed 0.01' in message
  assert 'span 7, split eval (/drops/span-7/t10k-*-ubyte*)' in message
  report = raised.value.report
  assert report['passed'] is False
  assert report['reference'] == {'status': 'checked',
                                 'version_dir': version_dir}
  assert report['splits']['train']['drift']['served']['image']['value'] > 0.4
  assert report['blocking'] and not report['accepted']
  # The same report is on disk, beside TFDV's anomalies.
  assert json.loads(pathlib.Path(
      tmp_path / 'second' / 'anomalies' / contracts.GATE_REPORT_FILE).read_text()
                   ) == report

  accepted, _, _ = _run(inverted, schema_artifact, tmp_path / 'third',
                        tmp_path / 'serving', accept_drift=True)
  assert accepted['passed'] is True
  assert accepted['blocking'] == [] and accepted['accepted']


def test_version_pushed_before_the_gate_needs_accept_drift(
    mnist_drop, schema_artifact, tmp_path, exported_model):
  version_dir = _serve(tmp_path / 'serving', exported_model)
  assert serving_layout.read_reference_statistics(version_dir) is None
  with pytest.raises(gate.DataGateError,
                     match=f'{version_dir} has no reference statistics.*'
                     'rerun with --accept-drift'):
    _run(mnist_drop, schema_artifact, tmp_path / 'out', tmp_path / 'serving')
  report, _, _ = _run(mnist_drop, schema_artifact, tmp_path / 'accepted',
                      tmp_path / 'serving', accept_drift=True)
  assert report['passed'] is True
  assert report['reference']['status'] == 'missing'


def _anchor(serving_dir, gated):
  """Makes the train statistics of a gated drop the anchor."""
  anchor_layout.set_anchor(
      str(serving_dir), stats_artifact_utils.load_statistics(
          gated, 'train').proto(), anchor_layout.FIRST_PUSH, version='1')


def test_drift_from_the_anchor_stops_what_the_served_reference_lets_through(
    mnist_drop, schema_artifact, tmp_path, make_stats, mnist_drops,
    exported_model):
  _, _, gated = _run(mnist_drop, schema_artifact, tmp_path / 'first',
                     tmp_path / 'serving')
  _anchor(tmp_path / 'serving', gated)
  # The served model was trained on the drifted data itself.
  _, (images, labels) = mnist_drops
  shifted = np.roll(images.reshape(-1, 28, 28), 6, axis=2)
  drifted = Drop(tmp_path / 'drop-2', make_stats,
                 {'train': (shifted[:700], labels[:700]),
                  'eval': (shifted[700:], labels[700:])}, span=2)
  _, _, drifted_gated = _run(drifted, schema_artifact, tmp_path / 'second',
                             tmp_path / 'other-serving')
  _serve(tmp_path / 'serving', exported_model,
         stats_artifact_utils.load_statistics(drifted_gated, 'train').proto())

  with pytest.raises(gate.DataGateError) as raised:
    _run(drifted, schema_artifact, tmp_path / 'third', tmp_path / 'serving')

  report = raised.value.report
  assert report['anchor']['status'] == 'checked'
  drift = report['splits']['train']['drift']
  served = drift['served']['image (mean image)']
  anchored = drift['anchor']['image (mean image)']
  assert served['value'] < 0.05 < served['threshold']
  # An independent computation of the distance from the anchor.
  ref_images = mnist_drops[0][0].reshape(-1, 784)
  assert anchored['value'] == pytest.approx(np.abs(
      shifted[:700].reshape(-1, 784).mean(0) - ref_images.mean(0)).max() / 255,
      abs=1e-5)
  assert anchored['value'] > anchored['threshold']
  assert {f['reference'] for f in report['splits']['train']['findings']} == {
      'anchor'}
  assert 'from the anchor reference (anchor set by first push' in str(
      raised.value)
  # A wider anchor threshold lets it through.
  report, _, _ = _run(drifted, schema_artifact, tmp_path / 'fourth',
                      tmp_path / 'serving',
                      anchor_thresholds=config_lib.Thresholds(
                          max_mean_image_linf=0.99))
  assert report['passed'] is True


@pytest.mark.parametrize('case', ['eval copies train', 'empty eval',
                                  'eval under the minimum',
                                  'duplicated train'])
def test_split_sanity_stops_even_with_accept_drift(
    case, schema_artifact, tmp_path, make_stats, mnist_drops):
  (images, labels), (new_images, new_labels) = mnist_drops
  splits = {
      'eval copies train': {'train': (images[:600], labels[:600]),
                            'eval': (images[:200], labels[:200])},
      'empty eval': {'train': (images[:600], labels[:600]),
                     'eval': (images[:0], labels[:0])},
      'eval under the minimum': {'train': (images[:600], labels[:600]),
                                 'eval': (new_images[:99], new_labels[:99])},
      'duplicated train': {'train': (np.concatenate([images[:500]] * 2),
                                     np.concatenate([labels[:500]] * 2)),
                           'eval': (new_images[:200], new_labels[:200])},
  }[case]
  drop = Drop(tmp_path / 'drop', make_stats, splits, span=3)
  with pytest.raises(gate.DataGateError) as raised:
    _run(drop, schema_artifact, tmp_path / 'out', tmp_path / 'serving',
         accept_drift=True)
  report = raised.value.report
  findings = [f for split in report['splits'].values()
              for f in split['findings']]
  assert findings and all(f['kind'] == gate.SANITY for f in findings)
  measure = {'eval copies train': 'share also in train',
             'empty eval': 'examples', 'eval under the minimum': 'examples',
             'duplicated train': 'duplicate share'}[case]
  assert measure in {f['measure'] for f in findings}
  if case == 'eval copies train':
    assert report['splits']['eval']['sanity']['share also in train'][
        'value'] == 1.0
  if case == 'duplicated train':
    assert report['splits']['train']['sanity']['duplicate share'][
        'value'] == 0.5
  assert 'split sanity' in str(raised.value)


def test_the_verdict_on_the_newest_span_is_recorded(
    mnist_drop, schema_artifact, tmp_path, make_stats, mnist_drops):
  window = [spans_layout.SpanRead(1, '/drops/span-1', 'a' * 64, {})]
  mnist_drop.examples.set_string_custom_property(
      spans_layout.WINDOW_PROPERTY, spans_layout.encode_window(window))
  report, _, gated = _run(mnist_drop, schema_artifact, tmp_path / 'out',
                          tmp_path / 'serving')
  assert report['window'] == [{'span': 1, 'folder': '/drops/span-1'}]
  assert spans_layout.passed_digests(str(tmp_path / 'serving')) == {'a' * 64}
  assert spans_layout.decode_window(gated.get_string_custom_property(
      spans_layout.WINDOW_PROPERTY)) == window
  (images, labels), _ = mnist_drops
  bad = Drop(tmp_path / 'bad', make_stats,
             {'train': (images[:600], labels[:600]),
              'eval': (images[:200], labels[:200])}, span=2)
  bad.examples.set_string_custom_property(
      spans_layout.WINDOW_PROPERTY, spans_layout.encode_window(
          [spans_layout.SpanRead(2, '/drops/span-2', 'b' * 64, {})]))
  with pytest.raises(gate.DataGateError):
    _run(bad, schema_artifact, tmp_path / 'bad-out', tmp_path / 'serving')
  verdicts = spans_layout.latest_verdicts(str(tmp_path / 'serving'))
  assert verdicts['b' * 64]['passed'] is False
  assert verdicts['b' * 64]['findings']
  assert spans_layout.passed_digests(str(tmp_path / 'serving')) == {'a' * 64}
