"""Many drops through `local_runner.py`: a creep the anchor stops, an
accepted change that moves it, broken splits that nothing lets through, and
a window of spans without the stopped ones.

Real runs (TFX, Beam in one process, TFDV, SQLite ML Metadata) on drops of
3,000 train and 1,000 eval images, 1 epoch, with the machinery and the seven
invariants of `benchmarks/lifecycle_drops.py` checked after every step.
"""

import json
import os
import shutil

import pytest

import conftest

from benchmarks import lifecycle_drops as drops
from components import config as config_lib
from components.data_gate import gate
from layouts import anchor as anchor_layout
from layouts import rejections
from layouts import serving as serving_layout
from layouts import spans as spans_layout
from pipeline import exit_codes
from pipeline import run_summary

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path):
  return drops.DropsWorld(tmp_path, 'local',
                          night_flags=drops.NIGHT_FLAGS + conftest.IN_MEMORY_BEAM)


def _step(world, step):
  result = drops.run(world, [step])
  assert result['totals']['violations'] == 0, result['steps']
  return [o['actual'] for o in result['steps'][0]['exit_codes']]


def _summary(world):
  return json.loads((world.out('a') / 'run_summary.json').read_text())


def _distances(summary, reference):
  """measure -> the largest distance of any split from `reference`."""
  found = {}
  for split in summary['data_gate']['splits'].values():
    for m in split['drift'].get(reference, {}).values():
      found[m['measure']] = max(found.get(m['measure'], 0), m['value'])
  return found


def _within(summary, reference):
  return all(m['value'] <= m['threshold']
             for split in summary['data_gate']['splits'].values()
             for m in split['drift'].get(reference, {}).values())


def test_a_creep_is_stopped_by_the_anchor_which_only_the_operator_moves(
    world):
  assert _step(world, drops._upright_night) == [0]  # pylint: disable=protected-access
  first = anchor_layout.read_record(world.serving)
  assert first['set_by'] == anchor_layout.FIRST_PUSH

  # 1. 15 degrees: passes both references, and is pushed.
  assert _step(world, drops._creep_night) == [0]  # pylint: disable=protected-access
  summary = _summary(world)
  assert summary['pushed_model'] and _within(summary, gate.SERVED)
  assert anchor_layout.read_record(world.serving)['sha256'] == first['sha256']
  # 30 degrees: the step from the served model passes, the anchor stops it
  # (docs/data_gate.md: within 2 drops at this size), nothing is pushed.
  versions = serving_layout.versions(world.serving)
  assert _step(world, drops._creep_night) == [exit_codes.DATA_GATE]  # pylint: disable=protected-access
  summary = _summary(world)
  assert summary['pushed_model'] is None and summary['metrics'] is None
  assert _within(summary, gate.SERVED), summary['data_gate']['splits']
  assert not _within(summary, gate.ANCHOR)
  moving = _distances(summary, gate.SERVED)[gate.MEAN_IMAGE_MEASURE]
  anchored = _distances(summary, gate.ANCHOR)[gate.MEAN_IMAGE_MEASURE]
  assert moving < float(drops.MOVING_MEAN_IMAGE_LINF)
  assert anchored > config_lib.Thresholds().max_mean_image_linf
  assert serving_layout.versions(world.serving) == versions
  assert all('anchor reference' in line
             for line in summary['data_gate']['blocking'])

  # 2. Accepted as intended: pushed, and the anchor is this data now; the
  # next drop like it passes without the flag.
  assert _step(world, drops._accepted_change) == [0]  # pylint: disable=protected-access
  moved = anchor_layout.read_record(world.serving)
  assert moved['set_by'] == anchor_layout.ACCEPTED_DRIFT
  assert moved['version'] == os.path.basename(_summary(world)['pushed_model'])
  assert _step(world, drops._intended_night) == [0]  # pylint: disable=protected-access
  summary = _summary(world)
  assert summary['data_gate']['accepted'] == []
  assert _within(summary, gate.ANCHOR) and summary['pushed_model']
  assert anchor_layout.read_record(world.serving)['sha256'] == moved['sha256']

  # 6. A rollback, then the pipeline root and its store are lost: the anchor
  # and the rejection are still there, and the next night measures against
  # that anchor.
  assert world.rollback().actual == 0
  journal = rejections.read_rejections(world.serving)
  assert journal
  shutil.rmtree(world.out('a') / 'pipeline')
  (world.out('a') / 'metadata.sqlite').unlink()
  assert _step(world, drops._intended_night) == [0]  # pylint: disable=protected-access
  summary = _summary(world)
  assert summary['components']['IdxExampleGen']['status'] == 'ran'
  assert summary['data_gate']['anchor']['record']['sha256'] == moved['sha256']
  assert _distances(summary, gate.ANCHOR)
  assert anchor_layout.read_record(world.serving)['sha256'] == moved['sha256']
  assert rejections.read_rejections(world.serving) == journal
  served = serving_layout.latest_version_dir(world.serving)
  assert (serving_layout.identity_of(served)
          not in rejections.rejected_models(world.serving))


def _images_of(directory):
  """The images of the tf.Examples in one split directory."""
  return {pixels for pixels, _ in conftest.examples_in(
      os.path.join(directory, '*'))}


def _span_images(world, span):
  return {pixels for pixels, _ in conftest.idx_content(
      world.data_dir / f'span-{span}')}


def _trainer_examples(world):
  """The uri of the Examples artifact the newest run's Trainer was given."""
  store = run_summary.open_store(str(world.out('a') / 'metadata.sqlite'))
  [node] = [c for c in store.get_contexts_by_type('node')
            if c.name.endswith('.Trainer')]
  trainer = max(store.get_executions_by_context(node.id), key=lambda e: e.id)
  [event] = [e for e in store.get_events_by_execution_ids([trainer.id])
             if e.type == e.INPUT and e.path.steps[0].key == 'examples']
  [examples] = store.get_artifacts_by_id([event.artifact_id])
  return examples


def test_broken_splits_stop_even_when_accepted_and_never_enter_a_window(
    world):
  assert _step(world, drops._upright_night) == [0]  # pylint: disable=protected-access
  # 3. An eval split copied from train, an empty one and one under the
  # minimum: exit 4 with --accept-drift, as split sanity findings.
  for step, measure in ((drops._copied_eval, 'share also in train'),  # pylint: disable=protected-access
                        (drops._empty_eval, 'examples'),  # pylint: disable=protected-access
                        (drops._tiny_eval, 'examples')):  # pylint: disable=protected-access
    assert _step(world, step) == [exit_codes.DATA_GATE]
    findings = [f for split in _summary(world)['data_gate']['splits'].values()
                for f in split['findings'] if f['kind'] == gate.SANITY]
    assert measure in {f['measure'] for f in findings}, findings
    assert _summary(world)['pushed_model'] is None
  verdicts = spans_layout.latest_verdicts(world.serving)
  assert sorted(v['span'] for v in verdicts.values() if not v['passed']) == [
      2, 3, 4]

  # 4. Two increments with --train-spans 3: the second trains on spans 1, 5
  # and 6, the three newest the gate passed, and not on 2, 3 or 4.
  assert _step(world, drops._window_night) == [0]  # pylint: disable=protected-access
  assert _step(world, drops._window_night) == [0]  # pylint: disable=protected-access
  summary = _summary(world)
  assert [s['span'] for s in summary['spans']] == [1, 5, 6]
  examples = _trainer_examples(world)
  assert examples.custom_properties['span'].int_value == 6
  given = {split: _images_of(os.path.join(examples.uri, f'Split-{split}'))
           for split in ('train', spans_layout.HISTORY_SPLIT)}
  assert given['train'] == _span_images(world, 6)
  assert given[spans_layout.HISTORY_SPLIT] == (
      _span_images(world, 1) | _span_images(world, 5))
  for stopped in (2, 3, 4):
    assert not _span_images(world, stopped) & (
        given['train'] | given[spans_layout.HISTORY_SPLIT])
  # Only the newest span was gated, and its eval split is what was scored.
  assert summary['data_gate']['window'][-1]['span'] == 6
  assert set(summary['data_gate']['splits']) == {'train', 'eval'}
  assert summary['data_gate']['splits']['eval']['num_examples'] == (
      drops.DROP_SIZE[1])
