"""Many drops on one serving root: a creep, broken splits, an accepted change
and re-anchoring, and increments trained on a window of spans.

The machinery of benchmarks/lifecycle.py, with drops the data gate must see,
and two invariants more after every step:

6. the drift anchor (`layouts.anchor`) is what the operator's actions made
   it: the first pushed version's data, then the data of a pushed run with
   `--accept-drift`, or of the version `python -m pipeline.anchor --set`
   named; no push alone and no rollback moves it;
7. no pushed model was trained on a span the gate stopped: every span of
   the run's window (`run_summary.json`, `spans`) has a passing verdict.

The nightly runs widen the moving reference's mean-image threshold
(MOVING_MEAN_IMAGE_LINF), so that what stops the creep must be the anchor.

    .venv/bin/python -m benchmarks.lifecycle_drops
"""

import logging
import pathlib
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import lifecycle
from benchmarks import recording
from layouts import anchor as anchor_layout
from layouts import serving as serving_layout
from layouts import spans as spans_layout
from pipeline import exit_codes

logger = logging.getLogger(__name__)

# Degrees each drop of the creep turns further.
CREEP_DEGREES = 15.0
# The moving reference's mean-image threshold: above a 15-degree step at
# DROP_SIZE, so that only the anchor stops the creep.
MOVING_MEAN_IMAGE_LINF = '0.4'
NIGHT_FLAGS = lifecycle.NIGHT_FLAGS + (
    '--max-mean-image-linf', MOVING_MEAN_IMAGE_LINF)
WINDOW = 3
CHECKS = 2
# The data gate calibration's creep at the tests' size (data_gate.py).
DROP_SIZE = (3000, 1000)


class DropsWorld(lifecycle.World):
  """A lifecycle world that knows which anchor its events should leave."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault('night_flags', NIGHT_FLAGS)
    kwargs.setdefault('drop_size', DROP_SIZE)
    super().__init__(*args, **kwargs)
    self.rotation = 0.0
    # The statistics the anchor must hold now (None: no anchor yet).
    self.expected_anchor = None

  def night(self, out: str = 'a', *extra: str,
            expected: int = 0) -> lifecycle.Outcome:
    outcome = super().night(out, *extra, expected=expected)
    pushed = (outcome.actual == exit_codes.OK and
              (self.summary(out) or {}).get('pushed_model'))
    if pushed and (self.expected_anchor is None or '--accept-drift' in extra):
      self.expected_anchor = self.statistics_of(pushed)
    return outcome

  def statistics_of(self, version_dir: str):
    """The training statistics recorded in a version (read from the
    checker's copy of the serving root)."""
    version = pathlib.Path(version_dir.rstrip('/')).name
    return serving_layout.read_reference_statistics(
        str(pathlib.Path(self.view().path) / version))

  def re_anchor(self, version: Optional[int]) -> lifecycle.Outcome:
    """`python -m pipeline.anchor --set` (to the served version if None)."""
    chosen = ['--version', str(version)] if version is not None else []
    outcome = self.run([sys.executable, '-m', 'pipeline.anchor',
                        '--serving-dir', self.serving, '--set', *chosen,
                        '--reason', 'the turned digits are intended'],
                       exit_codes.OK)
    if outcome.actual == exit_codes.OK:
      view = self.view()
      number = max(view.complete) if version is None else version
      self.expected_anchor = self.statistics_of(str(number))
    return outcome


def check_drops(world: DropsWorld, step: str,
                outcomes: Sequence[lifecycle.Outcome]) -> List[str]:
  """Invariants 6 and 7 (module docstring); returns the violations."""
  del outcomes  # Invariant 4 (lifecycle.check) covers the exit codes.
  violations = []
  root = world.view().path
  statistics, _ = anchor_layout.read_anchor(root)
  if statistics != world.expected_anchor:
    violations.append('6: the anchor is not what the operator\'s actions '
                      'made it')
  passed = spans_layout.passed_digests(root)
  summary = world.summary('a') or {}
  if summary.get('pushed_model'):
    for span in summary.get('spans') or ():
      if span['digest'] not in passed:
        violations.append(f'7: {summary["pushed_model"]} was trained on '
                          f'span {span["span"]}, which the gate did not pass')
  for violation in violations:
    logger.error('%s: invariant %s', step, violation)
  return violations


def _upright_night(world: DropsWorld) -> Sequence[lifecycle.Outcome]:
  world.drop()
  return [world.night()]


def _creep_night(world: DropsWorld) -> Sequence[lifecycle.Outcome]:
  """The next drop, turned 15 degrees further; passes until it is as far
  from the anchor as the anchor's thresholds allow (30 degrees here)."""
  world.rotation += CREEP_DEGREES
  world.drop(rotate=world.rotation)
  expected = (exit_codes.DATA_GATE if world.rotation >= 2 * CREEP_DEGREES
              else exit_codes.OK)
  return [world.night(expected=expected)]


def _accepted_change(world: DropsWorld) -> Sequence[lifecycle.Outcome]:
  """The operator accepts the stopped drop as an intended change."""
  return [world.night('a', '--accept-drift')]


def _intended_night(world: DropsWorld) -> Sequence[lifecycle.Outcome]:
  """Another drop like the accepted one: passes without the flag."""
  world.drop(rotate=world.rotation)
  return [world.night()]


def _broken_split(kind: str):
  def step(world: DropsWorld) -> Sequence[lifecycle.Outcome]:
    world.drop(kind, rotate=world.rotation)
    return [world.night('a', '--accept-drift',
                        expected=exit_codes.DATA_GATE)]
  step.__name__ = '_' + kind.replace(' ', '_')
  return step


def _re_anchor(world: DropsWorld) -> Sequence[lifecycle.Outcome]:
  """The operator re-anchors to the served version's data (the newest
  drop of the intended distribution), then the next drop like it runs."""
  outcome = world.re_anchor(None)
  world.drop(rotate=world.rotation)
  return [outcome, world.night()]


def _window_night(world: DropsWorld) -> Sequence[lifecycle.Outcome]:
  """An increment, trained with the earlier spans the gate passed."""
  world.drop(rotate=world.rotation)
  return [world.night('a', '--train-spans', str(WINDOW))]


_copied_eval = _broken_split('eval copies train')
_empty_eval = _broken_split('empty eval')
_tiny_eval = _broken_split('tiny eval')
FAULTS = {
    _creep_night: 'creep in small steps', _accepted_change: 'accepted drift',
    _copied_eval: 'eval split copied from train', _empty_eval: 'empty split',
    _tiny_eval: 'split under the minimum',
    _re_anchor: 're-anchoring', _window_night: 'increment on a window',
    lifecycle._rollback: 'operator rollback',  # pylint: disable=protected-access
    lifecycle._lost_pipeline_root: 'lost pipeline root',  # pylint: disable=protected-access
}
DROPS: List[lifecycle.Step] = [
    _upright_night, _creep_night, _creep_night, _accepted_change,
    _intended_night, _copied_eval, _empty_eval, _tiny_eval, _re_anchor,
    _window_night, _window_night, lifecycle._rollback,  # pylint: disable=protected-access
    lifecycle._lost_pipeline_root, _window_night,  # pylint: disable=protected-access
]


def run(world: DropsWorld, steps: Sequence[lifecycle.Step]) -> Dict[str, Any]:
  """Runs `steps` with all seven invariants checked after each."""
  return lifecycle.run_scenario(
      world, steps, ((lifecycle.check, lifecycle.CHECKS),
                     (check_drops, CHECKS)), FAULTS)


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = lifecycle.scenario_parser(__doc__).parse_args(argv)
  recording.configure_logging()
  result = recording.result_header('benchmarks.lifecycle_drops', 'drops',
                                   argv, prefix='lifecycle')
  root = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix='drops-'))
  world = DropsWorld(root, 'local')
  result.update(store='local', serving_dir=world.serving,
                drop=dict(zip(('train', 'eval'), DROP_SIZE)),
                night_flags=list(NIGHT_FLAGS), creep_degrees=CREEP_DEGREES,
                **run(world, DROPS[:args.steps]))
  return lifecycle.finish(result, args.results_dir)


if __name__ == '__main__':
  sys.exit(main())
