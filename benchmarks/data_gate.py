"""Benchmark: the data gate's thresholds, calibrated.

`--calibrate` checks drops with `gate.check_split` under the default
thresholds, on TFDV statistics as StatisticsGen computes them: the cases that
must pass or be stopped (`calibration_cases`), a creep of rotations against
the moving reference and the anchor (`creep`), MNIST against an anchor
(`anchor_mnist`), and the split sanity figures (`split_sanity`). Targets:
the result's `targets`; figures: BENCHMARKS.md. (What the gate adds to a
pipeline run, `--timing`, was measured until commit TIMING_RETIRED_AT.)

  .venv/bin/python -m benchmarks.data_gate --calibrate
"""

import argparse
import dataclasses
import hashlib
import logging
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
from sklearn import datasets

from benchmarks import recording
from components import config as config_lib
from components.data_gate import gate
from components.data_gate import images as images_lib
from components.example_gen import writer as example_writer
from pipeline import data_schema

logger = logging.getLogger(__name__)

# The code just before the data gate landed.
# The last commit with `--timing` (what the gate adds to a pipeline run;
# data_gate_2026-12-01_timing.json, target met).
TIMING_RETIRED_AT = '2a2b67a'
Drop = Tuple[np.ndarray, np.ndarray]
# The result's keys for the gate's three drift measures.
MEASURES = {'label_linf': 'label L-infinity distance',
            'pixel_jsd': 'pixel-value Jensen-Shannon divergence',
            'mean_image_linf': gate.MEAN_IMAGE_MEASURE}
# The creep: drop k is MNIST rotated by k * CREEP_STEP degrees, k = 0..6.
CREEP_STEP = 15
CREEP_DROPS = 6
# (name, training images, t10k images) of each drop of the creep: all of
# MNIST (every drop the same images), and the tests' sizes (disjoint slices).
CREEP_SIZES = (('full size', 60000, 10000), ('the tests\' size', 3000, 1000),
               ('small', 600, 200))


def statistics(drop: Drop, directory: str, name: str):
  """TFDV statistics with the curated schema, plus the mean image."""
  images, labels = drop
  path = os.path.join(directory, f'{name}.tfrecord.gz')
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(path, options) as writer:
    for example in example_writer.iter_examples(images, labels):
      writer.write(example.SerializeToString())
  stats = tfdv.generate_statistics_from_tfrecord(
      path, stats_options=tfdv.StatsOptions(
          schema=data_schema.curated_schema()))
  mean = images.reshape(len(images), -1).astype(np.float64).mean(0) / 255
  return gate.with_mean_image(stats, mean)


def other_digits(padded_to: int, nearest: bool) -> Drop:
  """scikit-learn's 1,797 8x8 digits (0..16) in 28x28 images like MNIST's."""
  digits = datasets.load_digits()
  method = 'nearest' if nearest else 'bilinear'
  scaled = tf.image.resize(digits.images[..., None].astype(np.float32),
                           (padded_to, padded_to), method=method).numpy()[..., 0]
  images = np.zeros((len(scaled), 28, 28), np.float32)
  start = (28 - padded_to) // 2
  images[:, start:start + padded_to, start:start + padded_to] = scaled * 255 / 16
  return np.clip(images, 0, 255).astype(np.uint8), digits.target.astype(np.uint8)


def natural_patches(count: int, seed: int = 0) -> Drop:
  """28x28 grey patches of scikit-learn's two sample photographs."""
  rng = np.random.default_rng(seed)
  patches = []
  for photo in datasets.load_sample_images().images:
    grey = photo.mean(axis=-1)
    for _ in range(count // 2):
      y = rng.integers(0, grey.shape[0] - 56)
      x = rng.integers(0, grey.shape[1] - 56)
      patches.append(grey[y:y + 56:2, x:x + 56:2])
  return (np.array(patches).astype(np.uint8),
          (np.arange(len(patches)) % 10).astype(np.uint8))


def calibration_cases(train: Drop, test: Drop):
  """(name, reference, drop, must pass) for every case."""
  (ti, tl), (ei, el) = train, test
  one_class = np.where(np.arange(len(el)) % 20 == 0, el, 1).astype(np.uint8)
  rng = np.random.default_rng(0)
  noise = (rng.integers(0, 256, (2000, 28, 28)).astype(np.uint8),
           (np.arange(2000) % 10).astype(np.uint8))
  return [
      ('MNIST train 2nd half vs 1st half (30,000 each)',
       (ti[:30000], tl[:30000]), (ti[30000:], tl[30000:]), True),
      ('MNIST t10k (10,000) vs train (60,000)', train, test, True),
      ('first 300 t10k vs first 1,500 train', (ti[:1500], tl[:1500]),
       (ei[:300], el[:300]), True),
      ('t10k 500-999 vs first 2,000 train (the e2e test\'s spans)',
       (ti[:2000], tl[:2000]), (ei[500:1000], el[500:1000]), True),
      ('inverted t10k (255 - x) vs train', train, (255 - ei, el), False),
      ('t10k with 95% of labels 1 vs train', train, (ei, one_class), False),
      ('scikit-learn digits, bilinear 20x20 padded vs train', train,
       other_digits(20, nearest=False), False),
      ('scikit-learn digits, blocky 16x16 padded vs train', train,
       other_digits(16, nearest=True), False),
      ('natural photo patches vs train', train, natural_patches(2000), False),
      ('uniform noise vs train', train, noise, False),
      ('t10k rotated 90 degrees vs train', train,
       (np.rot90(ei, axes=(1, 2)).copy(), el), False),
      ('t10k mirrored left-right vs train', train,
       (ei[:, :, ::-1].copy(), el), None),
      ('t10k shifted 2 pixels right vs train', train,
       (np.roll(ei, 2, axis=2), el), None),
  ]


class StatisticsCache:
  """`statistics` of each distinct drop once, keyed by its content."""

  def __init__(self, directory: str):
    self._directory = directory
    self._cache: Dict[bytes, Any] = {}

  def __call__(self, drop: Drop):
    images, labels = drop
    digest = hashlib.blake2b(digest_size=16)
    for array in (images, labels):
      digest.update(str((array.dtype, array.shape)).encode())
      digest.update(np.ascontiguousarray(array).tobytes())
    key = digest.digest()
    if key not in self._cache:
      self._cache[key] = statistics(drop, self._directory,
                                    f'split-{len(self._cache)}')
    return self._cache[key]


def _measures(drift: Dict[str, Dict[str, Any]]) -> Dict[str, float]:
  measured = {m['measure']: m['value'] for m in drift.values()}
  return {key: float(measured[measure]) for key, measure in MEASURES.items()}


def _check(cache: StatisticsCache, drop: Drop,
           references: Sequence[Tuple[str, str, Drop]]) -> Dict[str, Any]:
  """`gate.check_split` of `drop` against (name, description, drop) each
  with the default thresholds: per reference its three measures and whether
  it passes (no drift or sanity finding from it); and the schema findings."""
  result = gate.check_split(
      'drop', cache(drop), data_schema.curated_schema(),
      [gate.Reference(name, description, cache(reference),
                      config_lib.Thresholds())
       for name, description, reference in references])
  checked = {'images': len(drop[0])}
  for name, _, _ in references:
    checked[name] = {
        **_measures(result.drift[name]),
        'passes': not any(f.reference == name and f.kind != gate.SCHEMA
                          for f in result.findings)}
  checked['schema_findings'] = [f.description for f in result.findings
                                if f.kind == gate.SCHEMA]
  checked['passes'] = not result.findings
  return checked


def calibrate(cache: StatisticsCache, train: Drop,
              test: Drop) -> List[Dict[str, Any]]:
  """Each calibration case against one reference, the served one."""
  rows = []
  for name, reference, drop, must_pass in calibration_cases(train, test):
    checked = _check(cache, drop, [(gate.SERVED, name, reference)])
    passed = checked['passes']
    row = {
        'case': name, 'reference_images': len(reference[0]),
        'drop_images': len(drop[0]), 'must_pass': must_pass,
        **{k: v for k, v in checked[gate.SERVED].items() if k != 'passes'},
        'passes_defaults': passed,
        'as_required': None if must_pass is None else passed == must_pass,
    }
    logger.info('%s', row)
    rows.append(row)
  return rows


def _slice(drop: Drop, start: int, stop: int) -> Drop:
  return drop[0][start:stop], drop[1][start:stop]


def creep(cache: StatisticsCache, train: Drop, test: Drop, name: str,
          train_size: int, test_size: int) -> Dict[str, Any]:
  """Drops 0..CREEP_DROPS, drop k rotated by k * CREEP_STEP degrees, each
  split against the moving reference (drop k - 1's train) and the anchor
  (drop 0's train). Each drop takes the next slices of train and t10k
  while they last (disjoint drops), else all drops take the first ones."""
  drops = CREEP_DROPS + 1
  disjoint = (drops * train_size <= len(train[0]) and
              drops * test_size <= len(test[0]))

  def split(source: Drop, size: int, k: int) -> Drop:
    start = k * size if disjoint else 0
    images, labels = _slice(source, start, start + size)
    return recording.rotate(images, k * CREEP_STEP), labels

  anchor = split(train, train_size, 0)
  previous = anchor
  rows = []
  for k in range(1, drops):
    angle = k * CREEP_STEP
    references = [
        (gate.SERVED, f'drop {k - 1} train ({angle - CREEP_STEP} degrees)',
         previous),
        (gate.ANCHOR, 'drop 0 train (0 degrees)', anchor)]
    current = split(train, train_size, k)
    row = {'drop': k, 'angle': angle, 'splits': {
        'eval': _check(cache, split(test, test_size, k), references),
        'train': _check(cache, current, references)}}
    for reference in (gate.SERVED, gate.ANCHOR):
      row[f'{reference}_passes'] = all(
          s[reference]['passes'] for s in row['splits'].values())
    row['passes'] = all(s['passes'] for s in row['splits'].values())
    logger.info('creep %s: %s', name, row)
    rows.append(row)
    previous = current

  def first_stop(split_names):
    return next((row['drop'] for row in rows if not all(
        row['splits'][s][gate.ANCHOR]['passes'] for s in split_names)), None)

  return {
      'name': name, 'train_images': train_size, 'eval_images': test_size,
      'step_degrees': CREEP_STEP, 'disjoint_drops': disjoint, 'drops': rows,
      'anchor_first_stops_at_drop': first_stop(('eval', 'train')),
      'anchor_first_stops_eval_at_drop': first_stop(('eval',)),
      'served_passes_every_step': all(r[f'{gate.SERVED}_passes'] for r in rows),
      'served_passes_every_eval_step': all(
          r['splits']['eval'][gate.SERVED]['passes'] for r in rows),
      'largest_step': {
          s: {m: max(r['splits'][s][gate.SERVED][m] for r in rows)
              for m in MEASURES} for s in ('eval', 'train')},
  }


def anchor_mnist(cache: StatisticsCache, train: Drop,
                 test: Drop) -> Dict[str, Any]:
  """MNIST drops of several sizes against an anchor of MNIST training
  images: they must pass. Slices disjoint from the small anchor where
  possible (the 60,000-image anchor holds every training image)."""
  anchors = [('60,000 train', (0, 60000)), ('first 3,000 train', (0, 3000))]
  drops = [('full: 60,000 / 10,000', (0, 60000), (0, 10000)),
           ('3,000 / 1,000', (3000, 6000), (0, 1000)),
           ('600 / 200', (6000, 6600), (1000, 1200)),
           ('300 t10k', None, (1200, 1500))]
  rows = []
  for anchor_name, anchor_range in anchors:
    anchor = _slice(train, *anchor_range)
    for drop_name, train_range, test_range in drops:
      for split, source, span in (('train', train, train_range),
                                  ('eval', test, test_range)):
        if span is None:
          continue
        checked = _check(cache, _slice(source, *span),
                         [(gate.ANCHOR, anchor_name, anchor)])
        row = {'anchor': anchor_name, 'anchor_images': len(anchor[0]),
               'drop': drop_name, 'split': split,
               'images': checked['images'],
               'shares_images_with_anchor': split == 'train' and
                   span[0] < anchor_range[1] and anchor_range[0] < span[1],
               **checked[gate.ANCHOR]}
        logger.info('anchor: %s', row)
        rows.append(row)
  return {'rows': rows, 'all_pass': all(r['passes'] for r in rows),
          'largest': {m: max(r[m] for r in rows) for m in MEASURES}}


def _rows_as_bytes(images: np.ndarray) -> np.ndarray:
  flat = np.ascontiguousarray(images).reshape(len(images), -1)
  return flat.view(f'V{flat.shape[1] * flat.itemsize}').ravel()


def _independent_counts(train_images: np.ndarray, eval_images: np.ndarray
                        ) -> Dict[str, int]:
  """Overlap and duplicate counts by np.unique on the raw rows (no hash)."""
  train_rows, eval_rows = _rows_as_bytes(train_images), _rows_as_bytes(
      eval_images)
  _, inverse = np.unique(np.concatenate([train_rows, eval_rows]),
                         return_inverse=True)
  in_train = np.zeros(inverse.max() + 1, bool)
  in_train[inverse[:len(train_rows)]] = True
  return {
      'eval_in_train_count': int(in_train[inverse[len(train_rows):]].sum()),
      'train_duplicate_count': len(train_rows) - len(np.unique(train_rows)),
      'eval_duplicate_count': len(eval_rows) - len(np.unique(eval_rows)),
  }


def _sanity(train_images: np.ndarray, eval_images: np.ndarray
            ) -> Dict[str, Any]:
  train_hashes = images_lib.image_hashes(train_images)
  eval_hashes = images_lib.image_hashes(eval_images)
  splits = {
      name: images_lib.SplitImages(
          len(images), images.reshape(len(images), -1).mean(0) / 255, hashes)
      for name, images, hashes in (('train', train_images, train_hashes),
                                   ('eval', eval_images, eval_hashes))}
  findings, _ = gate.sanity_findings(splits, 'eval', train_hashes,
                                     config_lib.SanityLimits())
  return {
      'train_images': len(train_images), 'eval_images': len(eval_images),
      'eval_in_train_share': images_lib.overlap_share(eval_hashes, train_hashes),
      'eval_in_train_count': int(np.isin(eval_hashes, train_hashes).sum()),
      'train_duplicate_share': images_lib.duplicate_share(train_hashes),
      'train_duplicate_count': len(train_hashes) - len(np.unique(train_hashes)),
      'eval_duplicate_share': images_lib.duplicate_share(eval_hashes),
      'eval_duplicate_count': len(eval_hashes) - len(np.unique(eval_hashes)),
      'independent': _independent_counts(train_images, eval_images),
      'findings': [f'{f.split}: {f.description}' for f in findings],
      'passes_defaults': not findings,
  }


def split_sanity(train: Drop, test: Drop) -> Dict[str, Any]:
  """The split sanity figures of MNIST itself (train with t10k as eval), and
  of a drop whose eval split copies the first 1,000 training images."""
  cases = {
      'MNIST: t10k (eval) and train': _sanity(train[0], test[0]),
      'eval = a copy of the first 1,000 train images': _sanity(
          train[0], train[0][:1000].copy()),
  }
  for name, case in cases.items():
    case['counts_agree'] = all(case[k] == v
                               for k, v in case['independent'].items())
    logger.info('sanity %s: %s', name, case)
  return cases


def calibration() -> Dict[str, Any]:
  """Every part of `--calibrate`, and how long it took."""
  start = time.perf_counter()
  train, test = recording.read_mnist('train'), recording.read_mnist('t10k')
  with tempfile.TemporaryDirectory(prefix='data_gate_') as directory:
    cache = StatisticsCache(directory)
    result = {
        'calibration': calibrate(cache, train, test),
        'creep': [creep(cache, train, test, *size) for size in CREEP_SIZES],
        'anchor_mnist': anchor_mnist(cache, train, test),
        'split_sanity': split_sanity(train, test),
    }
  cases = result['calibration']
  mnist, copied = result['split_sanity'].values()
  result['targets'] = {
      'cases_as_required': all(r['as_required'] is not False for r in cases),
      'creep_full_served_passes_every_step': all(
          c['served_passes_every_step'] for c in result['creep']
          if c['train_images'] == len(train[0])),
      'creep_anchor_stops_by_90_degrees': all(
          c['anchor_first_stops_at_drop'] is not None and
          c['anchor_first_stops_at_drop'] * CREEP_STEP <= 90
          for c in result['creep']),
      'anchor_mnist_all_pass': result['anchor_mnist']['all_pass'],
      'mnist_passes_split_sanity': mnist['passes_defaults'],
      'copied_eval_stopped': (copied['eval_in_train_share'] == 1.0 and
                              not copied['passes_defaults']),
      'overlap_counts_agree': mnist['counts_agree'] and copied['counts_agree'],
  }
  result['calibration_seconds'] = time.perf_counter() - start
  return result


def _verdict(passes: bool) -> str:
  return 'passes' if passes else 'stopped'


def _measure_cells(m: Dict[str, Any]) -> List[str]:
  """The three measures of a check and its verdict, as table cells."""
  return [f'{m["label_linf"]:.3g}', f'{m["pixel_jsd"]:.3g}',
          f'{m["mean_image_linf"]:.3g}', _verdict(m['passes'])]


def _creep_lines(creep_: Dict[str, Any]) -> List[str]:
  slices = ('disjoint slices of train and t10k per drop'
            if creep_['disjoint_drops'] else 'the same images in every drop')
  lines = ['', f'Creep, {creep_["name"]}: {creep_["train_images"]:,} train / '
           f'{creep_["eval_images"]:,} t10k images per drop ({slices}), drop '
           f'k rotated by k x {creep_["step_degrees"]} degrees. Each split '
           'against the moving reference (served: drop k-1\'s train) and the '
           'anchor (drop 0\'s train); the measures of the eval (t10k) split, '
           'the mean-image L-inf of the train split.', '']
  rows = []
  for row in creep_['drops']:
    cells = [row['drop'], f'{row["angle"]} deg']
    for reference in (gate.SERVED, gate.ANCHOR):
      cells += _measure_cells(row['splits']['eval'][reference])
    train = row['splits']['train']
    cells.append(' / '.join(
        f'{train[r]["mean_image_linf"]:.3g} ({_verdict(train[r]["passes"])})'
        for r in (gate.SERVED, gate.ANCHOR)))
    rows.append(cells)
  lines += recording.table(
      ('drop', 'rotated', 'served: label L-inf', 'pixel JSD',
       'mean-image L-inf', 'served', 'anchor: label L-inf', 'pixel JSD',
       'mean-image L-inf', 'anchor',
       'train split mean-image L-inf: served / anchor'), rows)
  stop = creep_['anchor_first_stops_at_drop']
  stop_text = ('never' if stop is None else
               f'at drop {stop} ({stop * creep_["step_degrees"]} degrees)')
  largest = creep_['largest_step']
  eval_stop = creep_['anchor_first_stops_eval_at_drop']
  lines += ['', f'The anchor first stops the creep {stop_text} (the eval '
            f'split: {"never" if eval_stop is None else f"drop {eval_stop}"}'
            '); the served reference passes every step: '
            f'{"yes" if creep_["served_passes_every_step"] else "no"} '
            '(largest step, ' + '; '.join(
                f'{label}: eval {largest["eval"][m]:.3g}, train '
                f'{largest["train"][m]:.3g}' for m, label in (
                    ('mean_image_linf', 'mean-image L-inf'),
                    ('pixel_jsd', 'pixel JSD'))) + ').']
  return lines


def _anchor_lines(anchor: Dict[str, Any]) -> List[str]:
  lines = ['', 'MNIST against an anchor of MNIST training images (each split '
           'of each drop; * = the split\'s images are in the anchor too):', '',
           *recording.table(
               ('anchor', 'drop (train / t10k)', 'split', 'images',
                'label L-inf', 'pixel JSD', 'mean-image L-inf',
                'under the defaults'),
               ([row['anchor'], row['drop'], row['split'] + (
                   ' *' if row['shares_images_with_anchor'] else ''),
                 f'{row["images"]:,}', *_measure_cells(row)]
                for row in anchor['rows']))]
  largest = anchor['largest']
  lines += ['', f'Largest against the anchor: label L-inf '
            f'{largest["label_linf"]:.3g}, pixel JSD {largest["pixel_jsd"]:.3g}'
            f', mean-image L-inf {largest["mean_image_linf"]:.3g}; all pass: '
            f'{"yes" if anchor["all_pass"] else "NO"}.']
  return lines


def _sanity_lines(sanity: Dict[str, Dict[str, Any]]) -> List[str]:
  lines = ['', 'Split sanity (exact duplicates by content hash, '
           '`images_lib.image_hashes`; counts checked by `np.unique` on the raw '
           'rows):', '']
  return lines + recording.table(
      ('drop', 'train / eval images', 'eval also in train',
       'duplicates in train', 'duplicates in eval', 'counts agree',
       'under the defaults'),
      ([name, f'{case["train_images"]:,} / {case["eval_images"]:,}',
        *(f'{case[f"{k}_share"]:.4g} ({case[f"{k}_count"]:,})'
          for k in ('eval_in_train', 'train_duplicate', 'eval_duplicate')),
        'yes' if case['counts_agree'] else 'NO',
        _verdict(case['passes_defaults'])]
       for name, case in sanity.items()))


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """This run as markdown, as printed at its end."""
  thresholds = result['thresholds']
  lines = [f'### `{result["run_name"]}`: the data gate\'s thresholds, '
           'calibrated',
           '', *recording.header_lines(result),
           f'- Default thresholds: label L-inf {thresholds["max_label_linf"]}, '
           f'pixel JSD {thresholds["max_pixel_jsd"]}, mean-image L-inf '
           f'{thresholds["max_mean_image_linf"]} (the same for the served '
           'reference and the anchor).',
           f'- Split sanity limits: eval images also in train at most '
           f'{thresholds["max_eval_in_train"]}, duplicate share at most '
           f'{thresholds["max_duplicate_share"]}, at least '
           f'{thresholds["min_split_examples"]} examples per split.']
  if 'calibration_seconds' in result:
    lines.append(f'- Calibration wall time: '
                 f'{result["calibration_seconds"]:.0f} s.')
  if result.get('calibration'):
    required = {True: 'pass', False: 'stop', None: 'no requirement'}
    lines += ['', *recording.table(
        ('case', 'reference / drop images', 'label L-inf', 'pixel JSD',
         'mean-image L-inf', 'required', 'under the defaults'),
        ([row['case'], f'{row["reference_images"]:,} / '
          f'{row["drop_images"]:,}',
          *_measure_cells({**row, 'passes': row['passes_defaults']})[:3],
          required[row['must_pass']], _verdict(row['passes_defaults'])]
         for row in result['calibration']))]
  for creep_ in result.get('creep', ()):
    lines += _creep_lines(creep_)
  if result.get('anchor_mnist'):
    lines += _anchor_lines(result['anchor_mnist'])
  if result.get('split_sanity'):
    lines += _sanity_lines(result['split_sanity'])
  if result.get('targets'):
    lines += ['', 'Targets: ' + '; '.join(
        f'{name.replace("_", " ")}: {"met" if met else "NOT met"}'
        for name, met in result['targets'].items()) + '.']
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = recording.parser(__doc__)
  parser.add_argument('--calibrate', action='store_true',
                      help='required: what the benchmark does')
  args = parser.parse_args(argv)
  if not args.calibrate:
    parser.error('give --calibrate (--timing was retired at commit '
                 f'{TIMING_RETIRED_AT}: its target was met)')
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  thresholds = dataclasses.asdict(config_lib.Thresholds())
  limits = config_lib.SanityLimits()
  result = {
      **recording.result_header('benchmarks.data_gate', args.tag, argv),
      'thresholds': {**thresholds, 'served': thresholds, 'anchor': thresholds,
                     'max_eval_in_train': limits.max_eval_in_train,
                     'max_duplicate_share': limits.max_duplicate_share,
                     'min_split_examples': limits.min_examples},
  }
  result.update(calibration())
  return recording.report(result, args.results_dir, markdown_lines(result))


if __name__ == '__main__':
  recording.configure_logging()
  main()
