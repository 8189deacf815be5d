"""The data gate's rules, on TFDV's public API; no TFX needed.

Every split of the newest span of a data drop is checked three ways:

1. **Schema.** `tfdv.validate_statistics` against the curated schema
   (`schema/schema.pbtxt`): feature types, value counts (784 pixels, one
   label), value ranges (0..255, 0..9), presence. A schema anomaly always
   stops the run.
2. **Drift**, against each reference (`Reference`): the training-split
   statistics of the data the served model was trained on (SERVED, recorded
   in its pushed version, `layouts.serving`; it moves with every push), and
   the anchor (ANCHOR, `layouts.anchor`; it moves only by an operator's
   action, so a creep in small steps is still caught). TFDV's drift
   comparators measure
   * the L-infinity distance between the label distributions (the largest
     difference of any class's share), and
   * the approximate Jensen-Shannon divergence between the pixel-value
     histograms (all 784 values of every image),
   and, because a histogram of pixel values is blind to *where* the ink is
   (rotated digits, or another digit data set scaled to MNIST's range, have
   MNIST's histogram), the gate adds
   * the L-infinity distance between the mean images (the largest difference
     of any pixel position's mean intensity, on a 0..1 scale), computed from
     the examples and kept with the statistics as a custom statistic.
   Drift stops the run unless it is accepted (`--accept-drift`); a distance
   that is not a finite number is a split sanity failure.
3. **Split sanity** (`sanity_findings`): eval images also trained on,
   duplicates within a split, too few examples: data bugs, which
   `--accept-drift` does not let through.

The thresholds were calibrated on MNIST against MNIST and on each kind of bad
drop (`benchmarks/data_gate.py`; docs/data_gate.md). Their defaults are in
`components/config.py`.
"""

import dataclasses
import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from components import config as config_lib
from components.data_gate import errors
from components.data_gate import images as images_lib
from layouts import contracts
from models import data

logger = logging.getLogger(__name__)

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
# A data bug rather than a change of distribution: --accept-drift does not
# let it through.
SANITY = 'split sanity'
# The two references a drop is measured against.
SERVED = 'served'
ANCHOR = 'anchor'
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
  reference: Optional[str] = None  # drift: SERVED or ANCHOR


@dataclasses.dataclass(frozen=True)
class Reference:
  """Statistics (with their mean image) a drop is compared with."""
  name: str  # SERVED or ANCHOR
  description: str  # for messages, e.g. 'served version 3'
  statistics: statistics_pb2.DatasetFeatureStatisticsList
  thresholds: config_lib.Thresholds


@dataclasses.dataclass
class SplitResult:
  """What the gate found in one split."""
  split: str
  anomalies: anomalies_pb2.Anomalies
  findings: List[Finding]
  # reference name -> feature -> {'measure', 'value', 'threshold'}: every
  # drift measurement, within the threshold or not (empty without a
  # reference).
  drift: Dict[str, Dict[str, Dict[str, Any]]]


DataGateError = errors.DataGateError


def schema_with_comparators(schema: schema_pb2.Schema,
                            thresholds: config_lib.Thresholds) -> schema_pb2.Schema:
  """A copy of `schema` with the drift comparators set to `thresholds`."""
  copy = schema_pb2.Schema()
  copy.CopyFrom(schema)
  label = tfdv.get_feature(copy, contracts.LABEL_KEY)
  label.drift_comparator.infinity_norm.threshold = thresholds.max_label_linf
  image = tfdv.get_feature(copy, contracts.IMAGE_KEY)
  image.drift_comparator.jensen_shannon_divergence.threshold = (
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
    key = contracts.IMAGE_KEY
    if feature.path.step == [key] or feature.name == key:
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
    raise ValueError(f'no {contracts.IMAGE_KEY!r} feature in the statistics')
  kept = [s for s in feature.custom_stats if s.name != MEAN_IMAGE_STAT]
  del feature.custom_stats[:]
  feature.custom_stats.extend(kept)
  histogram = feature.custom_stats.add(name=MEAN_IMAGE_STAT).histogram
  for position, value in enumerate(np.ravel(mean_image)):
    histogram.buckets.add(low_value=position, high_value=position + 1,
                          sample_count=float(value))
  return copy


def recorded_mean_image(statistics: statistics_pb2.DatasetFeatureStatisticsList
               ) -> Optional[np.ndarray]:
  """The mean image recorded by `with_mean_image`, or None."""
  feature = _image_feature(statistics)
  for stat in feature.custom_stats if feature else ():
    if stat.name == MEAN_IMAGE_STAT:
      return np.array([b.sample_count for b in stat.histogram.buckets])
  return None


def _validate(split: str,
              statistics: statistics_pb2.DatasetFeatureStatisticsList,
              schema: schema_pb2.Schema,
              reference: Optional[statistics_pb2.DatasetFeatureStatisticsList],
              thresholds: config_lib.Thresholds, reference_name: Optional[str]
              ) -> Tuple[anomalies_pb2.Anomalies, List[Finding],
                         Dict[str, Dict[str, Any]]]:
  """TFDV's validation against the schema and, if given, the reference;
  then the mean images, when both statistics carry one."""
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
            measured=m['value'], allowed=m['threshold'],
            reference=reference_name))
      else:
        findings.append(Finding(
            split, feature, SCHEMA,
            f'{reason.short_description}: {reason.description}'))
  for reason in anomalies.dataset_anomaly_info.reason:
    findings.append(Finding(split, '(dataset)', SCHEMA,
                            f'{reason.short_description}: {reason.description}'))
  current_mean = recorded_mean_image(statistics)
  reference_mean = (recorded_mean_image(reference) if reference is not None
                    else None)
  if current_mean is not None and reference_mean is not None:
    value = float(np.abs(current_mean - reference_mean).max())
    drift[contracts.IMAGE_KEY + ' (mean image)'] = {
        'measure': MEAN_IMAGE_MEASURE, 'value': value,
        'threshold': thresholds.max_mean_image_linf}
    # `not value <= allowed`: a NaN (an empty split's mean) is no pass.
    if not value <= thresholds.max_mean_image_linf:
      findings.append(Finding(
          split, contracts.IMAGE_KEY, DRIFT,
          f'The largest difference between the mean images is {value:.4g}, '
          f'above the threshold {thresholds.max_mean_image_linf:.4g}.',
          measure=MEAN_IMAGE_MEASURE, measured=value,
          allowed=thresholds.max_mean_image_linf, reference=reference_name))
  for feature, m in drift.items():
    if not math.isfinite(m['value']):
      findings.append(Finding(
          split, feature, SANITY,
          f'the {m["measure"]} from the {reference_name} reference is '
          f'{m["value"]}, not a number: the split is empty or broken',
          measure=m['measure'], measured=m['value'], allowed=m['threshold'],
          reference=reference_name))
  return anomalies, findings, drift


def check_schema(split: str,
                 statistics: statistics_pb2.DatasetFeatureStatisticsList,
                 schema: schema_pb2.Schema) -> SplitResult:
  """Validates one split's statistics against the schema (TFDV): its
  findings are of kind SCHEMA, and its anomalies ExampleValidator's."""
  anomalies, findings, _ = _validate(split, statistics, schema, None,
                                     config_lib.Thresholds(), None)
  return SplitResult(split, anomalies, findings, {})


def measure_drift(split: str,
                  statistics: statistics_pb2.DatasetFeatureStatisticsList,
                  schema: schema_pb2.Schema,
                  references: Sequence[Reference]) -> SplitResult:
  """Measures one split's drift from each reference: TFDV's comparators, and
  the mean images when both statistics carry one (`with_mean_image`).

  For a split whose schema `check_schema` passed: TFDV validates against the
  schema again as it compares (it has no drift-only entry point), and its
  schema findings are left out, so each finding is counted once. The
  anomalies kept (ExampleValidator's output) are those against the first
  reference.
  """
  anomalies, findings, drifts = None, [], {}
  for reference in references:
    against, found, drifts[reference.name] = _validate(
        split, statistics, schema, reference.statistics, reference.thresholds,
        reference.name)
    anomalies = anomalies or against
    findings.extend(f for f in found if f.kind != SCHEMA)
  return SplitResult(split, anomalies, findings, drifts)


def check_split(split: str,
                statistics: statistics_pb2.DatasetFeatureStatisticsList,
                schema: schema_pb2.Schema,
                references: Sequence[Reference]) -> SplitResult:
  """`check_schema`, then, if the schema holds and there are references,
  `measure_drift`: the whole verdict on one split's statistics."""
  result = check_schema(split, statistics, schema)
  if result.findings or not references:
    return result
  drift = measure_drift(split, statistics, schema, references)
  return SplitResult(split, drift.anomalies, drift.findings, drift.drift)


def sanity_findings(splits: Dict[str, images_lib.SplitImages],
                    eval_split: str,
                    train_hashes: np.ndarray, limits: config_lib.SanityLimits
                    ) -> Tuple[List[Finding], Dict[str, Dict[str, Any]]]:
  """The split sanity checks of one drop.

  Args:
    splits: split name -> its images' summary.
    eval_split: the split scored by the evaluator.
    train_hashes: the hashes of every image trained on (the window's).
    limits: the limits.

  Returns:
    (findings, split -> {measure: {'value', 'threshold'}}).
  """
  findings, measured = [], {}
  for split, images in sorted(splits.items()):
    checks = {
        'examples': (images.count, limits.min_examples, images.count >=
                     limits.min_examples),
        'duplicate share': (images_lib.duplicate_share(images.hashes),
                            limits.max_duplicate_share, None),
    }
    if split == eval_split:
      checks['share also in train'] = (
          images_lib.overlap_share(images.hashes, train_hashes),
          limits.max_eval_in_train, None)
    measured[split] = {}
    for measure, (value, allowed, ok) in checks.items():
      measured[split][measure] = {'value': value, 'threshold': allowed}
      ok = value <= allowed if ok is None else ok
      if not ok:
        bound = 'at least' if measure == 'examples' else 'at most'
        findings.append(Finding(
            split, '(split)', SANITY,
            f'{measure} is {value:.4g}; {bound} {allowed:.4g} is required',
            measure=measure, measured=float(value), allowed=float(allowed)))
  return findings, measured


def describe(finding: Finding, where: str,
             references: Dict[str, str]) -> str:
  """One line for an operator: where, which feature, measured vs allowed.

  `references` maps a reference name to its description."""
  if finding.kind == DRIFT and finding.measured is not None:
    what = (f'{finding.measure} {finding.measured:.4g} from the '
            f'{finding.reference} reference '
            f'({references.get(finding.reference, "?")}) exceeds the allowed '
            f'{finding.allowed:.4g}')
  else:
    what = finding.description
  return f'{where}: feature {finding.feature!r}: {finding.kind}: {what}'


def blocking(findings: List[Finding], accept_drift: bool) -> List[Finding]:
  """The findings that stop the run: all, or all but the drift ones if drift
  is accepted (schema and split sanity findings always stop it)."""
  return [f for f in findings if f.kind != DRIFT or not accept_drift]
