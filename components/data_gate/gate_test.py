"""The gate's rules on real TFDV statistics of small drops."""

import numpy as np
import pytest
from sklearn import datasets

from components import config as config_lib
from components.data_gate import gate
from components.data_gate import images as images_lib
from pipeline import data_schema

SCHEMA = data_schema.curated_schema()


def _check(stats, reference, thresholds=config_lib.Thresholds()):
  references = [] if reference is None else [
      gate.Reference(gate.SERVED, 'served version 17', reference, thresholds)]
  return gate.check_split('train', stats, SCHEMA, references)


def _label_shares(labels):
  return np.bincount(labels, minlength=10) / len(labels)


def _pixel_histogram(images):
  counts, _ = np.histogram(np.asarray(images).ravel(), bins=10,
                           range=(0, 255))
  return counts / counts.sum()


def _jensen_shannon(p, q):
  """In bits, as TFDV computes it, on the same 10 equal-width buckets."""
  m = (p + q) / 2

  def kl(a, b):
    mask = a > 0
    return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

  return (kl(p, m) + kl(q, m)) / 2


def test_another_mnist_drop_passes(make_stats, mnist_drops, reference_stats):
  (ref_images, ref_labels), (images, labels) = mnist_drops
  result = _check(make_stats(images, labels), reference_stats)
  assert result.findings == []
  label = result.drift['served']['label']
  assert label['threshold'] == config_lib.Thresholds().max_label_linf
  # An independent computation of the L-infinity distance.
  assert label['value'] == pytest.approx(
      np.abs(_label_shares(labels) - _label_shares(ref_labels)).max())
  assert result.drift['served']['image']['value'] < 0.001
  mean = result.drift['served']['image (mean image)']
  assert mean['measure'] == gate.MEAN_IMAGE_MEASURE
  assert mean['value'] == pytest.approx(np.abs(
      images.reshape(-1, 784).mean(0) -
      ref_images.reshape(-1, 784).mean(0)).max() / 255)
  assert mean['value'] < config_lib.Thresholds().max_mean_image_linf


def test_inverted_images_are_drift(make_stats, mnist_drops, reference_stats):
  (ref_images, _), (images, labels) = mnist_drops
  result = _check(make_stats(255 - images, labels), reference_stats)
  finding, mean_finding = result.findings
  assert (mean_finding.measure, mean_finding.measured) == (
      gate.MEAN_IMAGE_MEASURE, pytest.approx(1.0, abs=0.01))
  assert (finding.kind, finding.feature) == (gate.DRIFT, 'image')
  assert finding.allowed == config_lib.Thresholds().max_pixel_jsd
  # TFDV's divergence of the pixel histograms, computed here independently.
  assert finding.measured == pytest.approx(
      _jensen_shannon(_pixel_histogram(255 - images),
                      _pixel_histogram(ref_images)), abs=0.002)
  assert finding.measured > 0.4
  line = gate.describe(finding, 'span 3, split train (/d/span-3/train-*)',
                       {gate.SERVED: 'served version 17'})
  assert line == (
      "span 3, split train (/d/span-3/train-*): feature 'image': drift: "
      f'pixel-value Jensen-Shannon divergence {finding.measured:.4g} from the '
      'served reference (served version 17) exceeds the allowed 0.01')


def test_labels_almost_all_one_class_are_drift(make_stats, mnist_drops,
                                                reference_stats):
  (_, ref_labels), (images, labels) = mnist_drops
  skewed = np.where(np.arange(len(labels)) % 20 == 0, labels, 1)
  result = _check(make_stats(images, skewed), reference_stats)
  [finding] = result.findings
  assert (finding.kind, finding.feature) == (gate.DRIFT, 'label')
  assert finding.measured == pytest.approx(
      np.abs(_label_shares(skewed) - _label_shares(ref_labels)).max())
  assert finding.measured > 0.8


def test_another_digit_data_set_is_drift(make_stats, reference_stats):
  """scikit-learn's 8x8 digits, scaled and padded into 28x28 like MNIST.

  Their pixel histogram is close enough to MNIST's to pass the histogram
  comparison: the mean image tells them apart.
  """
  digits = datasets.load_digits()
  scaled = np.kron(digits.images, np.ones((2, 2))) * 255 / 16  # 16x16
  images = np.zeros((len(scaled), 28, 28))
  images[:, 6:22, 6:22] = scaled
  result = _check(make_stats(images.astype(np.uint8), digits.target),
                  reference_stats)
  assert result.drift['served']['image']['value'] < config_lib.Thresholds().max_pixel_jsd
  [finding] = result.findings
  assert (finding.kind, finding.feature, finding.measure) == (
      gate.DRIFT, 'image', gate.MEAN_IMAGE_MEASURE)
  assert finding.measured > 1.5 * config_lib.Thresholds().max_mean_image_linf


def test_rotated_digits_are_drift(make_stats, mnist_drops, reference_stats):
  _, (images, labels) = mnist_drops
  result = _check(make_stats(np.rot90(images, axes=(1, 2)), labels),
                  reference_stats)
  [finding] = result.findings
  assert finding.measure == gate.MEAN_IMAGE_MEASURE


def test_mean_image_round_trips_through_the_statistics(reference_stats):
  assert gate.recorded_mean_image(reference_stats).shape == (784,)
  values = np.linspace(0, 1, 784)
  replaced = gate.with_mean_image(reference_stats, values)
  np.testing.assert_allclose(gate.recorded_mean_image(replaced), values)
  [image] = [f for f in replaced.datasets[0].features
             if f.path.step == ['image']]
  assert [s.name for s in image.custom_stats].count(gate.MEAN_IMAGE_STAT) == 1


@pytest.mark.parametrize('reference', [True, False])
def test_out_of_range_pixel_is_a_schema_anomaly(make_stats, mnist_drops,
                                                reference_stats, reference):
  _, (images, labels) = mnist_drops
  pixels = images.reshape(len(images), -1).astype(int).tolist()
  pixels[3][5] = 300
  result = _check(make_stats(pixels, labels),
                  reference_stats if reference else None)
  schema = [f for f in result.findings if f.kind == gate.SCHEMA]
  assert [(f.feature, f.description) for f in schema] == [
      ('image', 'Out-of-range values: Unexpectedly large value: 300.')]
  # --accept-drift never lets a schema anomaly through.
  assert gate.blocking(result.findings, accept_drift=True) == schema
  if not reference:
    assert result.drift == {}


def test_wrong_value_count_and_label_are_schema_anomalies(make_stats,
                                                          mnist_drops):
  _, (images, labels) = mnist_drops
  pixels = [row[:783] for row in images.reshape(len(images), -1).tolist()]
  result = _check(make_stats(pixels, labels + 3), None)
  assert sorted((f.kind, f.feature, f.description.split(':')[0])
                for f in result.findings) == [
                    (gate.SCHEMA, 'image', 'Missing values'),
                    (gate.SCHEMA, 'label', 'Out-of-range values')]


def test_accepted_drift_does_not_block():
  drift = gate.Finding('train', 'image', gate.DRIFT, 'd', 'm', 0.5, 0.01)
  schema = gate.Finding('eval', 'label', gate.SCHEMA, 's')
  assert gate.blocking([drift, schema], accept_drift=False) == [drift, schema]
  assert gate.blocking([drift, schema], accept_drift=True) == [schema]


def test_thresholds_are_fractions():
  with pytest.raises(ValueError, match='max_pixel_jsd must be a number >= 0 and <= 1'):
    config_lib.Thresholds(max_pixel_jsd=1.5)


def test_both_references_are_measured_and_named(make_stats, mnist_drops,
                                                reference_stats):
  _, (images, labels) = mnist_drops
  rotated = make_stats(np.rot90(images, axes=(1, 2)), labels)
  result = gate.check_split('train', rotated, SCHEMA, [
      gate.Reference(gate.SERVED, 'served version 2', rotated,
                     config_lib.Thresholds()),
      gate.Reference(gate.ANCHOR, 'anchor', reference_stats,
                     config_lib.Thresholds())])
  assert result.drift[gate.SERVED]['image (mean image)']['value'] == 0
  assert result.drift[gate.ANCHOR]['image (mean image)']['value'] > 0.3
  [finding] = result.findings
  assert (finding.kind, finding.reference) == (gate.DRIFT, gate.ANCHOR)


def test_a_nan_distance_is_a_failure_even_with_accept_drift(
    make_stats, mnist_drops, reference_stats):
  """An IDX file with 0 items gives a mean image of 0/0."""
  _, (images, labels) = mnist_drops
  stats = gate.with_mean_image(make_stats(images, labels),
                               np.full(784, np.nan))
  result = _check(stats, reference_stats)
  stopping = gate.blocking(result.findings, accept_drift=True)
  assert [(f.kind, f.measure) for f in stopping] == [
      (gate.SANITY, gate.MEAN_IMAGE_MEASURE)]
  assert 'not a number' in stopping[0].description


def test_sanity_measures_against_an_independent_count():
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (300, 784), dtype=np.uint8)
  evaluation = np.concatenate([train[:30], rng.integers(
      0, 256, (170, 784), dtype=np.uint8), train[:1]])
  splits = {'train': images_lib.summarize_images([train[:200], train[200:]]),
            'eval': images_lib.summarize_images([evaluation])}
  findings, measured = gate.sanity_findings(
      splits, 'eval', splits['train'].hashes, config_lib.SanityLimits())
  # 31 of the 201 eval images are train images; 1 repeats another eval one.
  in_train = sum(any((row == train).all(1)) for row in evaluation)
  assert in_train == 31
  assert measured['eval']['share also in train']['value'] == in_train / 201
  assert measured['eval']['duplicate share']['value'] == pytest.approx(1 / 201)
  assert measured['train']['duplicate share']['value'] == 0
  assert [(f.split, f.measure) for f in findings] == [
      ('eval', 'share also in train')]
  np.testing.assert_allclose(splits['train'].mean_image,
                             train.mean(0, dtype=np.float64))
  assert splits['train'].count == 300


def test_an_empty_split_has_no_mean_and_fails_the_minimum():
  empty = images_lib.summarize_images([])
  assert empty.count == 0 and np.isnan(empty.mean_image).all()
  findings, _ = gate.sanity_findings({'train': empty}, 'eval',
                                     empty.hashes, config_lib.SanityLimits())
  assert [(f.measure, f.measured) for f in findings] == [('examples', 0)]


def test_config_round_trips_through_json():
  config = config_lib.GateConfig(
      thresholds=config_lib.Thresholds(max_label_linf=0.2),
      anchor_thresholds=config_lib.Thresholds(max_mean_image_linf=0.25),
      limits=config_lib.SanityLimits(min_examples=7), accept_drift=True)
  assert config_lib.from_json(config_lib.GateConfig,
                              config_lib.to_json(config)) == config
