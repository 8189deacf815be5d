"""The window of spans an IdxExampleGen run reads, resolved when it runs.

The executor's docstring and `layouts.spans` give the rules: the newest span
(refused if it is partly written) and, with `train_spans` K > 1, up to K - 1
earlier spans the data gate passed (left out, and logged, otherwise).
"""

import dataclasses
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from components.example_gen import idx
from layouts import lineage
from layouts import serving as serving_layout
from layouts import spans as spans_layout

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SpanFiles:
  """One span as this run found it: its files, their state before the read,
  and the headers of the splits read from it."""
  read: spans_layout.SpanRead
  # Split name -> the split's images and labels files.
  split_files: Dict[str, idx.IdxSplitFiles]
  # Path -> (length, mtime_nsec) before the digest was taken.
  stats: Dict[str, Tuple[int, int]]
  # Split name -> validated (images, labels) headers of each split read.
  headers: Dict[str, Tuple[idx.IdxHeader, idx.IdxHeader]]
  flat: bool = False

  @property
  def where(self) -> str:
    """How messages name the span."""
    if self.flat:
      return self.read.folder
    return f'span {self.read.span} ({self.read.folder})'


@dataclasses.dataclass(frozen=True)
class Window:
  """What a run reads: the newest span and the earlier spans of history."""
  newest: SpanFiles
  history: List[SpanFiles]  # oldest first

  @property
  def spans(self) -> List[SpanFiles]:
    return self.history + [self.newest]

  def reads(self) -> List[spans_layout.SpanRead]:
    """The window as recorded: history spans oldest first, newest last."""
    return [span.read for span in self.spans]


class SpanError(idx.IdxFormatError):
  """A span's file is missing, malformed or changing. `problem` says which
  file and what is wrong; the message adds the span (none for the flat
  layout, whose messages are the reader's own)."""

  def __init__(self, where: Optional[str], problem: str):
    super().__init__(f'{where}: {problem}' if where else problem)
    self.problem = problem


class _LeftOut(Exception):
  """An earlier span that does not enter the window (the message says why)."""


def _stat(path: str) -> Tuple[int, int]:
  stat = tf.io.gfile.stat(path)
  return stat.length, stat.mtime_nsec


def _digests(folder: str, names: Sequence[str]) -> Dict[str, Dict[str, Any]]:
  """{'size', 'sha256'} of the files `names` of `folder` (each read once,
  through tf.io.gfile), by `layouts.serving.file_digests` on the folder
  with every other file skipped. A name that vanished is missing."""
  others = {relative for relative, _ in serving_layout.files_below(folder)
            } - set(names)
  found = serving_layout.file_digests(folder, others)
  return {name: found[name] for name in names if name in found}


def _span_files(number: int, folder: str, patterns: Dict[str, str],
                flat: bool) -> SpanFiles:
  """Finds, stats and digests one span's files (each read once).

  Args:
    number: the span number (0 for the flat layout).
    folder: the span's folder.
    patterns: split name -> file pattern inside the folder; the files of the
      splits other than history make up the span (its digest).
    flat: the flat layout (messages name the folder alone).

  Returns:
    The span, without headers (`_validated` adds them).

  Raises:
    idx.IdxFormatError: a file is missing, or changed while it was digested
      (the message names the span and the file).
  """
  where = None if flat else f'span {number} ({folder})'
  split_files = {}
  for split, pattern in patterns.items():
    try:
      split_files[split] = idx.find_split_files(os.path.join(folder, pattern))
    except idx.IdxFormatError as e:
      raise SpanError(
          where, str(e) if flat else
          f'incomplete (a drop still being written?): {e}') from e
  paths = sorted({path for files in split_files.values()
                  for path in (files.images, files.labels)})
  own = sorted({path for split, files in split_files.items()
                if split != spans_layout.HISTORY_SPLIT
                for path in (files.images, files.labels)})
  try:
    stats = {path: _stat(path) for path in paths}
  except tf.errors.NotFoundError as e:
    raise SpanError(where, f'{e.message}: a file disappeared while it was '
                    'read (a drop still being written?)') from e
  names = {path: os.path.relpath(path, folder).replace(os.sep, '/')
           for path in own}
  files = _digests(folder, list(names.values()))
  for path, name in names.items():
    if name not in files or files[name]['size'] != stats[path][0]:
      raise SpanError(where, f'{path} changed while it was read (a drop '
                      'still being written?)')
  read = spans_layout.SpanRead(
      span=number, folder=folder, digest=spans_layout.span_digest(files),
      files=files)
  return SpanFiles(read=read, split_files=split_files, stats=stats,
                   headers={}, flat=flat)


def _validated(span: SpanFiles, splits: Sequence[str]) -> SpanFiles:
  """`span` with the validated headers of the splits read from it.

  Raises:
    SpanError: a file is malformed (names the span and the file).
  """
  headers = {}
  for split in splits:
    try:
      headers[split] = idx.validate_split(span.split_files[split])
    except idx.IdxFormatError as e:
      raise SpanError(None if span.flat else span.where,
                      str(e) if span.flat else f'cannot be read: {e}') from e
  return dataclasses.replace(span, headers=headers)


def _verdict_reason(span: spans_layout.SpanRead, serving_dir: str) -> str:
  """Why an earlier span whose digest the gate has not passed stays out."""
  entries = spans_layout.read_verdicts(serving_dir)
  latest = spans_layout.latest_verdicts(serving_dir).get(span.digest)
  if latest is not None:  # Its latest verdict is not a pass.
    return (f'stopped by the data gate (verdict of {latest.get("at", "?")} '
            f'in {os.path.join(serving_dir, spans_layout.VERDICTS_FILE)})')
  same_span = [e for e in entries if e.get('span') == span.span]
  if any(e['passed'] for e in same_span):
    passed = [e for e in same_span if e['passed']][-1]
    return (f'changed since it passed (the gate passed digest '
            f'{passed["digest"][:12]} on {passed.get("at", "?")}; its files '
            f'now have digest {span.digest[:12]})')
  if same_span:
    return (f'never gated as it is now (its digest {span.digest[:12]} has no '
            'verdict; the gate stopped an earlier version of it)')
  return (f'never gated (no verdict on it in '
          f'{os.path.join(serving_dir, spans_layout.VERDICTS_FILE)}; a run '
          'gates only its newest span)')


def resolve_window(input_base: str, patterns: Dict[str, str],
                   train_spans: int, serving_dir: Optional[str]) -> Window:
  """Lists `input_base` and resolves what this run reads.

  Args:
    input_base: the data root (local path or URI).
    patterns: split name -> the file part of its pattern (directory parts
      are ignored); `spans.HISTORY_SPLIT` only when train_spans > 1.
    train_spans: K, the spans the window may hold.
    serving_dir: where the data gate's verdicts are (needed when K > 1).

  Raises:
    idx.IdxFormatError: the data root is missing, or its newest span is
      incomplete, malformed or changing.
  """
  if not tf.io.gfile.isdir(input_base):
    raise idx.IdxFormatError(f'{input_base}: data directory not found')
  newest_splits = [s for s in patterns if s != spans_layout.HISTORY_SPLIT]
  history_pattern = patterns.get(spans_layout.HISTORY_SPLIT)
  found = spans_layout.span_dirs(input_base)
  if not found:
    folder = input_base.rstrip('/') or input_base
    newest = _validated(_span_files(0, folder, patterns, flat=True),
                        newest_splits)
    if history_pattern is not None:
      logger.info('%s: flat layout (no span-N/ folders): the window is the '
                  'folder alone, as span 0; the %s split is empty', folder,
                  spans_layout.HISTORY_SPLIT)
    return Window(newest=newest, history=[])

  numbers = sorted(found, reverse=True)
  newest = _validated(
      _span_files(numbers[0], os.path.join(input_base, found[numbers[0]]),
                  patterns, flat=False), newest_splits)
  logger.info('%s: %d span folder(s); reading the newest, %s', input_base,
              len(found), newest.where)
  history: List[SpanFiles] = []
  if history_pattern is None:
    return Window(newest=newest, history=[])
  wanted = train_spans - 1
  passed = spans_layout.passed_digests(serving_dir)
  # Spans the gate never passed under any digest are left out unhashed.
  verdicts = spans_layout.read_verdicts(serving_dir)
  ever_passed = {entry['span'] for entry in verdicts if entry['passed']}
  judged = {entry['span'] for entry in verdicts}
  for number in numbers[1:]:
    if len(history) == wanted:
      break
    folder = os.path.join(input_base, found[number])
    if number not in ever_passed:
      logger.info('Window: span %d (%s) is left out of the %s split: %s',
                  number, folder, spans_layout.HISTORY_SPLIT,
                  'stopped by the data gate (it never passed a span of that '
                  'number)' if number in judged else
                  'never gated (no verdict on a span of that number)')
      continue
    try:
      span = _span_files(number, folder, patterns, flat=False)
      if span.read.digest not in passed:
        raise _LeftOut(_verdict_reason(span.read, serving_dir))
      span = _validated(span, [spans_layout.HISTORY_SPLIT])
    except (SpanError, _LeftOut) as e:
      # Stopped or never gated: the gate's doing; the rest is the data's.
      reason = e.problem if isinstance(e, SpanError) else str(e)
      level = logging.WARNING if isinstance(e, SpanError) or reason.startswith(
          'changed') else logging.INFO
      logger.log(level, 'Window: span %d (%s) is left out of the %s split: '
                 '%s', number, folder, spans_layout.HISTORY_SPLIT, reason)
      continue
    logger.info('Window: span %d (%s) enters the %s split (passed by the '
                'data gate, digest %s)', number, folder,
                spans_layout.HISTORY_SPLIT, span.read.digest[:12])
    history.append(span)
  history.reverse()
  logger.info('Window of %d span(s) (train_spans %d): %s', len(history) + 1,
              train_spans,
              ', '.join(str(s.read.span) for s in history + [newest]))
  return Window(newest=newest, history=history)


def before_recheck(window: Window) -> None:  # pylint: disable=unused-argument
  """Called after the Beam read, before the files are checked again: a seam
  for tests (a file that changes while it is read)."""


def recheck(window: Window) -> None:
  """Checks that every file of the window is as it was before the read.

  Raises:
    idx.IdxFormatError: a file changed or disappeared (names span and file).
  """
  for span in window.spans:
    for path, (length, mtime_nsec) in span.stats.items():
      try:
        now = _stat(path)
      except tf.errors.NotFoundError as e:
        raise SpanError(span.where, f'{path} was removed while it was read '
                        '(a drop still being written?); nothing was '
                        'written') from e
      if now != (length, mtime_nsec):
        change = (f'{length} bytes before, {now[0]} after' if now[0] != length
                  else 'modified again')
        raise SpanError(
            span.where, f'{path} changed while it was read ({change}; a drop '
            'still being written?); nothing was written: rerun once it is '
            'complete')


def data_digest(window: Window, max_examples: Optional[int]) -> str:
  """What this window with --max-examples is, for the training identity
  (layouts/lineage.py)."""
  return lineage.data_digest([read.digest for read in window.reads()],
                             max_examples)
