"""The data gate's rules, on TFDV's public API; no TFX needed.

Every split of a new data drop is checked twice, first with
`tfdv.validate_statistics`:

1. **Schema.** Against the curated schema (`schema/schema.pbtxt`): feature
   types, value counts (784 pixels, one label), value ranges (0..255, 0..9),
   presence. A schema anomaly always stops the run.
2. **Drift.** Against the *reference*: the training-split statistics of the
   data the currently served model was trained on, recorded in its pushed
   version (see `layouts.serving`). TFDV's drift comparators
   measure
   * the L-infinity distance between the label distributions (the largest
     difference of any class's share), and
   * the approximate Jensen-Shannon divergence between the pixel-value
     histograms (all 784 values of every image),
   and flag values above their thresholds; and, because a histogram of pixel
   values is blind to *where* the ink is (rotated digits, or another digit
   data set scaled to MNIST's range, have MNIST's histogram), the gate adds
   * the L-infinity distance between the mean images (the largest difference
     of any pixel position's mean intensity, on a 0..1 scale), computed from
     the examples and kept with the statistics as a custom statistic.
   With no model served there is no reference and no drift check. Drift
   stops the run unless the operator accepts it (`--accept-drift`), for an
   intended change of distribution.

The thresholds were calibrated on MNIST against MNIST and on each kind of bad
drop (`benchmarks/data_gate.py`; README, "Data gate").
"""

import dataclasses
import logging
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from models import data

logger = logging.getLogger(__name__)

IMAGE_FEATURE = data.IMAGE_KEY
LABEL_FEATURE = data.LABEL_KEY
# Calibrated with benchmarks/data_gate.py (README, "Data gate"): MNIST
# against MNIST measured at most 0.0285 (500 test images against 2,000
# training images); labels 95% one class 0.84.
DEFAULT_MAX_LABEL_LINF = 0.1
# MNIST against MNIST at most 0.00025 (300 against 1,500 images); inverted
# images 0.49, natural photo patches 0.42, another digit data set 0.048 or,
# scaled to MNIST's range of values, 0.0087 (the mean image catches that).
DEFAULT_MAX_PIXEL_JSD = 0.01
# MNIST against MNIST at most 0.168 (the first 300 test images against the
# first 1,500 training images); digits rotated by 90 degrees 0.451, another
# digit data set 0.49-0.60.
DEFAULT_MAX_MEAN_IMAGE_LINF = 0.3
# The custom statistic of the `image` feature that holds the mean image:
# a histogram whose bucket i (low_value i, high_value i + 1) has the mean
# intensity (0..1) of pixel position i as its sample_count.
MEAN_IMAGE_STAT = 'mnist_vae_mean_image'
MEAN_IMAGE_MEASURE = 'mean-image L-infinity distance'

_DRIFT_TYPES = {
    anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
}
_MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY:
        'label L-infinity distance',
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE:
        'pixel-value Jensen-Shannon divergence',
}
SCHEMA = 'schema'
DRIFT = 'drift'


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """Largest drift a drop may show against the reference."""
  max_label_linf: float = DEFAULT_MAX_LABEL_LINF
  max_pixel_jsd: float = DEFAULT_MAX_PIXEL_JSD
  max_mean_image_linf: float = DEFAULT_MAX_MEAN_IMAGE_LINF

  def __post_init__(self):
    for name, value in dataclasses.asdict(self).items():
      if not 0 <= value <= 1:
        raise ValueError(f'{name} must be in [0, 1], got {value}')


@dataclasses.dataclass(frozen=True)
class Finding:
  """One anomaly of one split."""
  split: str
  feature: str
  kind: str  # SCHEMA or DRIFT
  description: str
  measure: Optional[str] = None  # drift: what was measured
  measured: Optional[float] = None
  allowed: Optional[float] = None


@dataclasses.dataclass
class SplitResult:
  """What the gate found in one split."""
  split: str
  anomalies: anomalies_pb2.Anomalies
  findings: List[Finding]
  # feature -> {'measure', 'value', 'threshold'}: every drift measurement,
  # within the threshold or not (empty without a reference).
  drift: Dict[str, Dict[str, Any]]


class DataGateError(RuntimeError):
  """A data drop failed the gate; `report` says what was found."""

  def __init__(self, message: str, report: Dict[str, Any]):
    super().__init__(message)
    self.report = report


def schema_with_comparators(schema: schema_pb2.Schema,
                            thresholds: Thresholds) -> schema_pb2.Schema:
  """A copy of `schema` with the drift comparators set to `thresholds`."""
  copy = schema_pb2.Schema()
  copy.CopyFrom(schema)
  tfdv.get_feature(copy, LABEL_FEATURE).drift_comparator.infinity_norm.threshold = (
      thresholds.max_label_linf)
  tfdv.get_feature(
      copy, IMAGE_FEATURE).drift_comparator.jensen_shannon_divergence.threshold = (
          thresholds.max_pixel_jsd)
  return copy


def _drift_measurements(
    anomalies: anomalies_pb2.Anomalies) -> Dict[str, Dict[str, Any]]:
  found = {}
  for info in anomalies.drift_skew_info:
    feature = '.'.join(info.path.step)
    for m in info.drift_measurements:
      found[feature] = {'measure': _MEASURE_NAMES.get(m.type, str(m.type)),
                        'value': m.value, 'threshold': m.threshold}
  return found


def _image_feature(statistics: statistics_pb2.DatasetFeatureStatisticsList
                   ) -> Optional[statistics_pb2.FeatureNameStatistics]:
  for feature in statistics.datasets[0].features:
    if feature.path.step == [IMAGE_FEATURE] or feature.name == IMAGE_FEATURE:
      return feature
  return None


def with_mean_image(statistics: statistics_pb2.DatasetFeatureStatisticsList,
                    mean_image: np.ndarray
                    ) -> statistics_pb2.DatasetFeatureStatisticsList:
  """A copy of `statistics` with the mean image (0..1 per pixel position)
  as the `image` feature's custom statistic MEAN_IMAGE_STAT (replaced if
  there is one)."""
  copy = statistics_pb2.DatasetFeatureStatisticsList()
  copy.CopyFrom(statistics)
  feature = _image_feature(copy)
  if feature is None:
    raise ValueError(f'no {IMAGE_FEATURE!r} feature in the statistics')
  kept = [s for s in feature.custom_stats if s.name != MEAN_IMAGE_STAT]
  del feature.custom_stats[:]
  feature.custom_stats.extend(kept)
  histogram = feature.custom_stats.add(name=MEAN_IMAGE_STAT).histogram
  for position, value in enumerate(np.ravel(mean_image)):
    histogram.buckets.add(low_value=position, high_value=position + 1,
                          sample_count=float(value))
  return copy


def mean_image(statistics: statistics_pb2.DatasetFeatureStatisticsList
               ) -> Optional[np.ndarray]:
  """The mean image recorded by `with_mean_image`, or None."""
  feature = _image_feature(statistics)
  for stat in feature.custom_stats if feature else ():
    if stat.name == MEAN_IMAGE_STAT:
      return np.array([b.sample_count for b in stat.histogram.buckets])
  return None


def check_split(split: str, statistics: statistics_pb2.DatasetFeatureStatisticsList,
                schema: schema_pb2.Schema,
                reference: Optional[statistics_pb2.DatasetFeatureStatisticsList],
                thresholds: Thresholds) -> SplitResult:
  """Validates one split's statistics against the schema and the reference
  (TFDV), then compares the mean images if both statistics carry one."""
  if reference is None:
    anomalies = tfdv.validate_statistics(statistics, schema)
  else:
    anomalies = tfdv.validate_statistics(
        statistics, schema_with_comparators(schema, thresholds),
        previous_statistics=reference)
  drift = _drift_measurements(anomalies)
  findings = []
  for feature, info in sorted(anomalies.anomaly_info.items()):
    for reason in info.reason:
      if reason.type in _DRIFT_TYPES and feature in drift:
        m = drift[feature]
        findings.append(Finding(
            split, feature, DRIFT, reason.description, measure=m['measure'],
            measured=m['value'], allowed=m['threshold']))
      else:
        findings.append(Finding(
            split, feature, SCHEMA,
            f'{reason.short_description}: {reason.description}'))
  for reason in anomalies.dataset_anomaly_info.reason:
    findings.append(Finding(split, '(dataset)', SCHEMA,
                            f'{reason.short_description}: {reason.description}'))
  result = SplitResult(split, anomalies, findings, drift)
  check_mean_image(result, statistics, reference, thresholds)
  return result


def check_mean_image(
    result: SplitResult,
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
    reference: Optional[statistics_pb2.DatasetFeatureStatisticsList],
    thresholds: Thresholds) -> None:
  """Adds the mean-image comparison to `result`, when both `statistics` and
  `reference` carry a mean image (`with_mean_image`)."""
  current_mean = mean_image(statistics)
  reference_mean = mean_image(reference) if reference is not None else None
  if current_mean is None or reference_mean is None:
    return
  value = float(np.abs(current_mean - reference_mean).max())
  allowed = thresholds.max_mean_image_linf
  result.drift[IMAGE_FEATURE + ' (mean image)'] = {
      'measure': MEAN_IMAGE_MEASURE, 'value': value, 'threshold': allowed}
  if value > allowed:
    result.findings.append(Finding(
        result.split, IMAGE_FEATURE, DRIFT,
        f'The largest difference between the mean images is {value:.4g}, '
        f'above the threshold {allowed:.4g}.', measure=MEAN_IMAGE_MEASURE,
        measured=value, allowed=allowed))


def describe(finding: Finding, where: str, reference: str) -> str:
  """One line for an operator: where, which feature, measured vs allowed."""
  if finding.kind == DRIFT and finding.measured is not None:
    what = (f'{finding.measure} {finding.measured:.4g} from the reference '
            f'({reference}) exceeds the allowed {finding.allowed:.4g}')
  else:
    what = finding.description
  return f'{where}: feature {finding.feature!r}: {finding.kind}: {what}'


def blocking(findings: List[Finding], accept_drift: bool) -> List[Finding]:
  """The findings that stop the run: all, or the schema ones if drift is
  accepted."""
  return [f for f in findings if f.kind == SCHEMA or not accept_drift]
