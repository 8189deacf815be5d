"""A simulated month of nightly runs on one serving root, faults in between.

Each step is a nightly `local_runner.py` run on a small drop, an operator's
action, or a fault (FAULTS). After every step five invariants are checked
on the serving root itself:

1. the newest complete version holds a model some run blessed, or one an
   operator's rollback restored;
2. a rejected model (one an operator rolled back from) is never served again;
3. no incomplete version is ever counted (by the gate, the evaluator, the
   Pusher's compare-and-swap or retention);
4. every exit code is the documented one for its cause;
5. no version is lost except by retention (the newest `--keep-versions`).

    .venv/bin/python -m benchmarks.lifecycle [--store s3]
"""

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np

from benchmarks import recording
from benchmarks import s3_server
from components.example_gen import idx
from layouts import model as model_layout
from layouts import rejections
from layouts import serving as serving_layout
from pipeline import exit_codes

logger = logging.getLogger(__name__)

KEEP_VERSIONS = 5
# Each drop: this many train and eval images, cut from MNIST in turn.
DROP_TRAIN, DROP_EVAL = 2000, 500
# Every nightly run: the README's cron line on small data. Blessing is not
# what is under test here (every candidate that trains is blessed).
NIGHT_FLAGS = ('--epochs', '1', '--warm-start', '--bless-threshold', '1000',
               '--bless-tolerance', '1000', '--keep-versions',
               str(KEEP_VERSIONS))
# How slowly the push harness copies (seconds per file), for pushes that
# must still be in flight when something else happens.
SLOW_COPY_SECONDS = 0.25


@dataclasses.dataclass
class Outcome:
  """What one process of a step did."""
  command: str
  expected: int
  actual: int
  seconds: float


class World:
  """One serving root, its data root and two output dirs, and what the
  checker has learnt so far."""

  def __init__(self, root: pathlib.Path, store: str,
               s3: Optional[s3_server.S3Server] = None,
               drop_size: Sequence[int] = (DROP_TRAIN, DROP_EVAL),
               night_flags: Sequence[str] = NIGHT_FLAGS):
    self.root = root
    self.drop_size = tuple(drop_size)
    self.night_flags = tuple(night_flags)
    self.data_dir = root / 'data'
    self.data_dir.mkdir(parents=True, exist_ok=True)
    self.s3 = s3
    if store == 's3':
      self.serving = f's3://{s3_server.BUCKET}/{root.name}/serving'
    else:
      self.serving = str(root / 'serving')
    self.env = dict(os.environ, **(s3.env() if s3 else {}))
    self.next_span = 1
    self.blessed: set = set()      # identities of models runs blessed
    self.restored: set = set()     # identities rollbacks restored
    # Identity a rollback rejected -> the version it published: no version
    # above that may hold the identity.
    self.rejected_after: Dict[str, int] = {}
    self.seen_incomplete: set = set()  # version numbers seen incomplete
    self.complete: Dict[int, str] = {}  # version -> identity, last check
    self.outcomes: List[Outcome] = []

  def out(self, name: str = 'a') -> pathlib.Path:
    return self.root / f'out-{name}'

  def summary(self, out: str = 'a') -> Optional[Dict[str, Any]]:
    """The `run_summary.json` of an output dir's last run (None: none)."""
    path = self.out(out) / 'run_summary.json'
    return json.loads(path.read_text()) if path.exists() else None

  @property
  def s3_prefix(self) -> str:
    """The serving root's key prefix in the bucket."""
    return self.serving[len(f's3://{s3_server.BUCKET}/'):] + '/'

  # The world's events.
  def drop(self, kind: str = 'good', rotate: float = 0.0) -> pathlib.Path:
    """Writes the next span: the next slice of MNIST, rotated by `rotate`
    degrees, or a broken one ('bad', 'foreign', 'eval copies train', 'empty
    eval', 'tiny eval')."""
    span, self.next_span = self.next_span, self.next_span + 1
    directory = self.data_dir / f'span-{span}'
    directory.mkdir()
    written = {}
    for prefix, count in zip(('train', 't10k'), self.drop_size):
      start = ((span - 1) * count) % (60000 if prefix == 'train' else 10000)
      pixels, classes = recording.read_mnist(prefix, start, start + count)
      pixels, classes = recording.rotate(pixels, rotate), classes.copy()
      if kind == 'bad':
        classes[5] = 10
      elif kind == 'foreign':
        pixels = (255 - pixels).astype(np.uint8)
      elif prefix == 't10k' and kind == 'eval copies train':
        pixels, classes = (written['train'][0][:count],
                           written['train'][1][:count])
      elif prefix == 't10k' and kind == 'empty eval':
        pixels, classes = pixels[:0], classes[:0]
      elif prefix == 't10k' and kind == 'tiny eval':
        pixels, classes = pixels[:20], classes[:20]
      written[prefix] = pixels, classes
      idx.write_split(str(directory), prefix, pixels, classes)
    return directory

  def night_command(self, out: str = 'a', *extra: str) -> List[str]:
    return [sys.executable, str(recording.REPO_ROOT / 'local_runner.py'),
            '--data-dir', str(self.data_dir), '--output-dir',
            str(self.out(out)), '--serving-dir', self.serving,
            *self.night_flags, *extra]

  def run(self, command: List[str], expected: int) -> Outcome:
    """Runs a command to its end; records its exit code."""
    started = time.monotonic()
    done = subprocess.run(command, cwd=recording.REPO_ROOT, env=self.env,
                          capture_output=True, text=True, timeout=900,
                          check=False)
    outcome = self._record(command, expected, done.returncode, started)
    if done.returncode != expected:
      logger.error('%s exited %d, expected %d:\n%s', command[1:3],
                   done.returncode, expected, done.stderr[-4000:])
    return outcome

  def popen(self, command: List[str], **kwargs) -> subprocess.Popen:
    """A process of the step, started in the repository with the world's
    environment."""
    return subprocess.Popen(command, cwd=recording.REPO_ROOT, env=self.env,
                            text=True, **kwargs)

  def _record(self, command, expected, actual, started) -> Outcome:
    outcome = Outcome(' '.join(os.path.basename(str(c)) if i < 2 else str(c)
                               for i, c in enumerate(command)),
                      expected, actual, round(time.monotonic() - started, 1))
    self.outcomes.append(outcome)
    return outcome

  def night(self, out: str = 'a', *extra: str, expected: int = 0) -> Outcome:
    """One nightly run; learns which model it blessed."""
    (self.out(out) / 'run_summary.json').unlink(missing_ok=True)
    outcome = self.run(self.night_command(out, *extra), expected)
    self.learn(out)
    return outcome

  def learn(self, out: str) -> None:
    """Adds the model a run blessed (its identity) to what may be served."""
    identity = _blessed_identity(self.summary(out))
    if identity:
      self.blessed.add(identity)

  def rollback(self, *extra: str, expected: int = 0) -> Outcome:
    """The operator's rollback; learns what it restored and rejected."""
    outcome = self.run([sys.executable, '-m', 'pipeline.rollback',
                        '--serving-dir', self.serving, *extra], expected)
    if outcome.actual == exit_codes.OK:
      after = self.view()
      self.restored.add(serving_layout.identity_of(
          after.complete[max(after.complete)]))
      for identity in after.rejected - set(self.rejected_after):
        self.rejected_after[identity] = max(after.complete)
    return outcome

  @contextlib.contextmanager
  def slow_push(self, model_uri: str,
                expected: int) -> Iterator[subprocess.Popen]:
    """A push of `model_uri`, copying slowly, under way for the block."""
    command = [sys.executable, '-m', 'benchmarks.lifecycle', 'push-slowly',
               model_uri, self.serving]
    process = self.popen(command, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    started = time.monotonic()
    try:
      yield process
    finally:
      _, stderr = process.communicate(timeout=600)
      if process.returncode != expected:
        logger.error('push-slowly: %s', stderr[-3000:])
      self._record(command, expected, process.returncode, started)

  def wait_for_partial(self, files: int = 3, timeout: float = 120) -> None:
    """Waits until a push has written `files` files of a version (or of its
    temporary directory): then it is surely under way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if self.partial_files() >= files:
        return
      time.sleep(0.05)
    raise TimeoutError('no push got under way')

  def partial_files(self) -> int:
    """Files written so far into versions that are not complete yet (and
    into temporary push directories)."""
    if self.s3 is None:
      names = os.listdir(self.serving) if os.path.isdir(self.serving) else []
      return sum(
          sum(len(files) for _, _, files in os.walk(
              os.path.join(self.serving, name)))
          for name in names
          if name.startswith('.tmp-push-') or (
              name.isdigit() and not serving_layout.is_complete(
                  os.path.join(self.serving, name))))
    prefix = self.s3_prefix
    by_version: Dict[str, List[str]] = {}
    for key in self.s3.keys(prefix):
      version, _, rest = key[len(prefix):].partition('/')
      if version.isdigit():
        by_version.setdefault(version, []).append(rest)
    return sum(len(files) for files in by_version.values()
               if serving_layout.VERSION_RECORD_FILE not in files)

  # The checker's view of the serving root.
  def view(self) -> 'View':
    """The serving root as it is now (an S3 root is downloaded first)."""
    if self.s3 is None:
      return View.of(self.serving)
    return View.of(str(self.s3.download(
        self.s3_prefix, pathlib.Path(tempfile.mkdtemp(dir=self.root)))))

  def blessed_model_to_push(self) -> str:
    """The newest runs' blessed model that a push may still publish: not
    rejected, preferably not served (a run refused by compare-and-swap)."""
    view = self.view()
    served = (serving_layout.identity_of(view.complete[max(view.complete)])
              if view.complete else None)
    candidates = []
    for out in ('b', 'a'):
      summary = self.summary(out)
      identity = _blessed_identity(summary)
      if identity and identity not in view.rejected:
        candidates.append((identity == served, summary['model_uri']))
    if not candidates:
      raise RuntimeError('no blessed model left that may be pushed')
    return min(candidates)[1]


def _blessed_identity(summary: Optional[Dict[str, Any]]) -> Optional[str]:
  """The identity of the model a run blessed (None: it blessed none)."""
  if not (summary and summary.get('blessed') and summary.get('model_uri')):
    return None
  return serving_layout.model_identity(os.path.join(
      summary['model_uri'], model_layout.SERVING_MODEL_DIR))


@dataclasses.dataclass
class View:
  """A serving root's complete and incomplete versions and its rejections,
  read from a local copy."""
  path: str
  complete: Dict[int, str]
  incomplete: Dict[int, str]
  rejected: set

  @classmethod
  def of(cls, serving_dir: str) -> 'View':
    found = serving_layout.scan(serving_dir)
    return cls(serving_dir, found.complete, found.incomplete,
               set(rejections.rejected_models(serving_dir)))


def check(world: World, step: str, outcomes: Sequence[Outcome]) -> List[str]:
  """The five invariants after a step; returns the violations."""
  view = world.view()
  violations = []
  identities = {v: serving_layout.identity_of(d)
                for v, d in view.complete.items()}
  if identities:
    newest = identities[max(identities)]
    if newest not in world.blessed | world.restored:
      violations.append(f'1: newest version {max(identities)} holds model '
                        f'{newest[:12]}, neither blessed nor restored')
    if newest in view.rejected:
      violations.append(f'2: newest version {max(identities)} holds rejected '
                        f'model {newest[:12]}')
  for version, identity in identities.items():
    if (identity in view.rejected and
        version > world.rejected_after.get(identity, version)):
      violations.append(f'2: version {version} holds model {identity[:12]}, '
                        'rejected before it was published')
    if version in world.seen_incomplete:
      violations.append(f'3: version {version}, seen incomplete, now counts')
  world.seen_incomplete |= set(view.incomplete)
  for out in ('a', 'b'):
    summary = world.summary(out) or {}
    reference = ((summary.get('data_gate') or {}).get('reference') or {}).get(
        'version_dir')
    used = [reference, summary.get('pushed_model')]
    for path in filter(None, used):
      if int(os.path.basename(path.rstrip('/'))) in world.seen_incomplete:
        violations.append(f'3: {out} used incomplete version {path}')
  for outcome in outcomes:
    if outcome.actual != outcome.expected:
      violations.append(f'4: {outcome.command} exited {outcome.actual}, '
                        f'expected {outcome.expected}')
  kept = sorted(view.complete)[-KEEP_VERSIONS:]
  for version in world.complete:
    pruned = len(kept) == KEEP_VERSIONS and version < kept[0]
    if version not in view.complete and not pruned:
      violations.append(f'5: version {version} was lost, not pruned')
  world.complete = identities
  for violation in violations:
    logger.error('%s: invariant %s', step, violation)
  return violations


# A step acts on the world; returns what each of its processes did.
Step = Callable[[World], Sequence[Outcome]]


def _good_night(world: World) -> Sequence[Outcome]:
  world.drop()
  return [world.night()]


def _unchanged_night(world: World) -> Sequence[Outcome]:
  return [world.night()]


def _bad_drop(world: World) -> Sequence[Outcome]:
  world.drop('bad')
  return [world.night(expected=exit_codes.BAD_INPUT)]


def _foreign_drop(world: World) -> Sequence[Outcome]:
  world.drop('foreign')
  return [world.night(expected=exit_codes.DATA_GATE)]


def _rollback(world: World) -> Sequence[Outcome]:
  return [world.rollback()]


def _kill_during_training(world: World) -> Sequence[Outcome]:
  """kill -9 in epoch 2 of 3; the next step's night resumes it."""
  world.drop()
  command = world.night_command('a', '--epochs', '3')
  started = time.monotonic()
  process = world.popen(command, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, start_new_session=True)
  for line in process.stdout:
    if line.startswith('Epoch 2/3'):
      break
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  return [world._record(command, -signal.SIGKILL, process.returncode,  # pylint: disable=protected-access
                        started)]


def _resume(world: World) -> Sequence[Outcome]:
  return [world.night('a', '--epochs', '3')]


def _kill_during_push(world: World) -> Sequence[Outcome]:
  """A push killed with SIGKILL half-way through its copy."""
  with world.slow_push(world.blessed_model_to_push(),
                       -signal.SIGKILL) as process:
    world.wait_for_partial()
    os.killpg(process.pid, signal.SIGKILL)
  return world.outcomes[-1:]


def _concurrent_nights(world: World) -> Sequence[Outcome]:
  """Two runs on two output dirs share the serving root, at once."""
  world.drop()
  started = time.monotonic()
  processes = [(out, command, world.popen(
      command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
               for out, command in (
                   ('a', world.night_command('a')),
                   ('b', world.night_command('b', '--seed', '7')))]
  outcomes = []
  for out, command, process in processes:
    _, stderr = process.communicate(timeout=900)
    if process.returncode:
      logger.error('%s: %s', out, stderr[-3000:])
    outcomes.append(world._record(command, 0, process.returncode, started))  # pylint: disable=protected-access
    world.learn(out)
  return outcomes


def _rollback_during_push(world: World) -> Sequence[Outcome]:
  """The operator rolls back while a blessed model is being pushed: the
  rollback waits for the lock, then rolls back from what was pushed."""
  with world.slow_push(world.blessed_model_to_push(), 0):
    world.wait_for_partial()
    rolled = world.rollback()
  return [world.outcomes[-1], rolled]


def _corrupt_newest(world: World) -> Sequence[Outcome]:
  """Bytes of the newest version's weights change: the next night stops."""
  view = world.view()
  newest = max(view.complete)
  relative = 'variables/variables.data-00000-of-00001'
  path = os.path.join(world.serving, str(newest), relative)
  if world.s3 is None:
    data = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(data[:-16] + b'\xff' * 16)
  else:
    key = f'{world.s3_prefix}{newest}/{relative}'
    body = world.s3.client.get_object(Bucket=s3_server.BUCKET,
                                      Key=key)['Body'].read()
    world.s3.client.put_object(Bucket=s3_server.BUCKET, Key=key,
                               Body=body[:-16] + b'\xff' * 16)
  return [world.night(expected=exit_codes.SERVED_VERSION_CORRUPT)]


def _lost_pipeline_root(world: World) -> Sequence[Outcome]:
  """outputs/pipeline and its metadata store are gone; a new seed."""
  shutil.rmtree(world.out('a') / 'pipeline')
  (world.out('a') / 'metadata.sqlite').unlink()
  return [world.night('a', '--seed', '2')]


FAULTS = {
    _bad_drop: 'bad drop', _foreign_drop: 'foreign drop',
    _rollback: 'operator rollback', _kill_during_training: 'kill -9 in training',
    _kill_during_push: 'kill -9 in a push',
    _concurrent_nights: 'concurrent run on another output dir',
    _rollback_during_push: 'rollback during a push',
    _corrupt_newest: 'corrupted newest version',
    _lost_pipeline_root: 'lost pipeline root',
}
MONTH: List[Step] = [
    _good_night, _unchanged_night, _good_night, _bad_drop, _good_night,
    _foreign_drop, _good_night, _rollback, _unchanged_night, _rollback,
    _unchanged_night, _kill_during_training, _resume, _kill_during_push,
    _unchanged_night, _concurrent_nights, _rollback_during_push,
    _unchanged_night, _corrupt_newest, _rollback, _lost_pipeline_root,
    _good_night, _unchanged_night,
]
# On an object store: the push, kill-during-push, concurrent and rollback
# steps, and the nights that follow them.
OBJECT_STORE: List[Step] = [
    _good_night, _kill_during_push, _unchanged_night, _concurrent_nights,
    _rollback_during_push, _unchanged_night, _rollback, _unchanged_night,
    _good_night, _rollback,
]


# Invariants checked by `check`.
CHECKS = 5
Checker = Callable[[World, str, Sequence[Outcome]], List[str]]


def run_scenario(world: World, steps: Sequence[Step],
                 checkers: Sequence[Tuple[Checker, int]] = ((check, CHECKS),),
                 faults: Optional[Dict[Step, str]] = None) -> Dict[str, Any]:
  """Runs `steps` in order, each `checkers` (checker, how many invariants
  it checks) after each; `faults`: step -> the kind of fault it injects."""
  faults = FAULTS if faults is None else faults
  per_step = sum(count for _, count in checkers)
  records = []
  for number, step in enumerate(steps, 1):
    name = step.__name__.lstrip('_')
    logger.info('Step %d/%d: %s', number, len(steps), name)
    started = time.monotonic()
    outcomes = step(world)
    violations = [v for checker, _ in checkers
                  for v in checker(world, name, outcomes)]
    records.append({
        'step': number, 'name': name, 'fault': faults.get(step, ''),
        'seconds': round(time.monotonic() - started, 1),
        'exit_codes': [dataclasses.asdict(o) for o in outcomes],
        'versions': sorted(world.complete),
        'incomplete_seen': sorted(world.seen_incomplete),
        'checks': per_step, 'violations': violations,
    })
  kinds = sorted({r['fault'] for r in records if r['fault']})
  return {'steps': records, 'faults': kinds,
          'totals': {'steps': len(records), 'fault_kinds': len(kinds),
                     'invariant_checks': per_step * len(records),
                     'violations': sum(len(r['violations']) for r in records)}}


def push_slowly(model_uri: str, serving_dir: str) -> int:
  """The harness's push: the Pusher's own `push` of a Trainer model, with
  every file copy slowed down so that it can be caught in flight."""
  from components.atomic_pusher import executor as pusher  # pylint: disable=g-import-not-at-top
  if serving_layout.is_object_store(serving_dir):
    import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import
  real_copy = pusher.io_utils.fileio.copy

  def slow_copy(*args, **kwargs):
    time.sleep(SLOW_COPY_SECONDS)
    return real_copy(*args, **kwargs)

  pusher.io_utils.fileio.copy = slow_copy
  print(pusher.push(
      os.path.join(model_uri, model_layout.SERVING_MODEL_DIR), serving_dir,
      {serving_layout.MODEL_URI_KEY: model_uri}, None,
      {name: os.path.join(model_uri, name)
       for name in (model_layout.ENCODER_DIR, model_layout.WARM_START_DIR)}))
  return 0


def scenario_parser(doc: str) -> argparse.ArgumentParser:
  """The flags of a scenario's command line."""
  parser = argparse.ArgumentParser(description=doc.split('\n\n')[0])
  parser.add_argument('--steps', type=int, default=None,
                      help='run only the first N steps')
  parser.add_argument('--results-dir', default=str(recording.RESULTS_DIR))
  parser.add_argument('--work-dir', default=None,
                      help='where the scenario runs (default: a temp dir)')
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if argv[:1] == ['push-slowly']:
    return push_slowly(*argv[1:])
  parser = scenario_parser(__doc__)
  parser.add_argument('--store', choices=('local', 's3'), default='local')
  args = parser.parse_args(argv)
  recording.configure_logging()
  steps = (MONTH if args.store == 'local' else OBJECT_STORE)[:args.steps]
  result = recording.result_header('benchmarks.lifecycle', args.store, argv)
  root = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix='lifecycle-'))
  with contextlib.ExitStack() as stack:
    s3 = None
    if args.store == 's3':
      s3 = stack.enter_context(s3_server.S3Server())
      s3.client.create_bucket(Bucket=s3_server.BUCKET)
    world = World(root, args.store, s3)
    result.update(store=args.store, serving_dir=world.serving,
                  drop={'train': DROP_TRAIN, 'eval': DROP_EVAL},
                  night_flags=list(NIGHT_FLAGS),
                  **run_scenario(world, steps))
  return finish(result, args.results_dir)


def finish(result: Dict[str, Any], results_dir: str) -> int:
  """Writes a scenario's result and prints its totals; 1 on a violation."""
  recording.write_results(result, results_dir)
  totals = result['totals']
  print(f'{totals["steps"]} steps, {totals["fault_kinds"]} kinds of fault, '
        f'{totals["invariant_checks"]} invariant checks, '
        f'{totals["violations"]} violations')
  return 0 if totals['violations'] == 0 else 1


if __name__ == '__main__':
  # tensorflow-io is imported only for object stores (see exit_process).
  exit_codes.exit_process(main(), 'tensorflow_io' in sys.modules)
