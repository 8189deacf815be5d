"""A short lifecycle: nightly runs, two rollbacks, a lost pipeline root.

The same machinery as `benchmarks/lifecycle.py` (whose 23-step month runs
outside the suite), on fewer steps: each step is a real `local_runner.py`
run or rollback, and after each the invariants are checked and, here, the
served weights themselves.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import lifecycle
from conftest import IN_MEMORY_BEAM
from layouts import serving as serving_layout


def _served(world):
  found = serving_layout.versions(world.serving)
  return found[max(found)]


def _decode(version_dir):
  z = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
  signature = tf.saved_model.load(version_dir).signatures['serving_default']
  return signature(z=tf.constant(z))['image'].numpy()


def _summary(world):
  return json.loads((world.out('a') / 'run_summary.json').read_text())


def _step(world, step):
  result = lifecycle.run_scenario(world, [step])
  assert result['totals']['violations'] == 0, result['steps']
  return result['steps'][0]


@pytest.mark.slow
def test_rollbacks_stick_and_a_lost_pipeline_root_pushes_a_new_model(
    tmp_path):
  # Smaller drops than the benchmark's, and Beam in one process: the
  # serving root's life is the same, in less time.
  world = lifecycle.World(
      tmp_path, 'local', drop_size=(600, 200),
      night_flags=lifecycle.NIGHT_FLAGS + IN_MEMORY_BEAM)
  identity = serving_layout.identity_of

  _step(world, lifecycle._good_night)  # pylint: disable=protected-access
  first = _served(world)
  _step(world, lifecycle._good_night)  # pylint: disable=protected-access
  second = _served(world)
  assert identity(first) != identity(second)

  # Rollback: the first model is served again, byte for byte.
  _step(world, lifecycle._rollback)  # pylint: disable=protected-access
  restored = _served(world)
  np.testing.assert_array_equal(_decode(restored), _decode(first))

  # The next night: the Trainer is cached, so its model is the one rolled
  # back from. Exit 0, nothing pushed, the restored version still served.
  night = _step(world, lifecycle._unchanged_night)  # pylint: disable=protected-access
  assert [o['actual'] for o in night['exit_codes']] == [0]
  summary = _summary(world)
  assert summary['components']['Trainer']['status'] == 'cached'
  assert summary['pushed_model'] is None
  assert 'rolled back from' in summary['not_pushed_reason']
  assert _served(world) == restored

  # A second rollback goes further back or refuses; here there is nothing
  # older than the first model that is not rejected or served: refused, and
  # the rejected model is never served.
  world.rollback(expected=lifecycle.exit_codes.ROLLBACK_REFUSED)
  assert _served(world) == restored
  assert identity(_served(world)) != identity(second)

  # The pipeline root and its metadata store are lost; a new seed trains a
  # new model (warm-started from the restored version's own weights), whose
  # path repeats the old one's: it is pushed all the same.
  _step(world, lifecycle._lost_pipeline_root)  # pylint: disable=protected-access
  summary = _summary(world)
  assert summary['pushed_model'] is not None, summary
  # Warm-started, so early stopping watched its one epoch.
  assert summary['training']['reason'] == 'all epochs'
  assert summary['training']['best_epoch'] == 0
  newest = _served(world)
  assert newest == summary['pushed_model']
  assert identity(newest) not in {identity(first), identity(second)}
  assert os.path.basename(newest) > os.path.basename(restored)
