"""Renders benchmark results (benchmarks/results/*.json) as markdown.

  .venv/bin/python -m benchmarks.render benchmarks/results/X.json [...]

Each result names the script that wrote it: the `module` field (results
written since it was recorded), else the `-m benchmarks.X` of its `command`.
If that module exists and has `markdown_lines(result)`, that renders it;
otherwise (no module named, the module removed, or no `markdown_lines`) a
generic rendering does: a header from the common fields (run, date, machine,
versions, command) and the other fields as compact tables, each field named
by its path in the JSON (`runs[0].wall_seconds`: lists count from 0).

BENCHMARKS.md quotes the figures that matter and names the files; the
per-run details are here, on demand, not pasted into it.
"""

import argparse
import importlib
import importlib.util
import json
import pathlib
import shlex
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# Fields every result records first (recording.result_header): the header.
HEADER_FIELDS = ('run_name', 'module', 'results_file', 'date_utc', 'command',
                 'machine', 'versions', 'note')
# Lists of numbers longer than this are summarized, not printed in full.
MAX_LIST = 12


def module_name(result: Dict[str, Any]) -> Optional[str]:
  """The module that wrote `result`: its `module` field, else its command's."""
  if result.get('module'):
    return result['module']
  try:
    words = shlex.split(result.get('command') or '')
  except ValueError:
    return None
  for flag, value in zip(words, words[1:]):
    if flag == '-m':
      return value
  return None


def renderer(result: Dict[str, Any]) -> Tuple[Optional[Callable], str]:
  """The module's `markdown_lines` (or None) and why, for `result`."""
  name = module_name(result)
  if not name:
    return None, 'no module recorded'
  try:
    found = importlib.util.find_spec(name) is not None
  except ModuleNotFoundError:  # a parent package is missing
    found = False
  if not found:
    return None, f'module {name} no longer exists'
  lines_fn = getattr(importlib.import_module(name), 'markdown_lines', None)
  if lines_fn is None:
    return None, f'module {name} has no markdown_lines'
  return lines_fn, f'rendered by {name}.markdown_lines'


# --------------------------------------------------------------------------
# Generic rendering.
# --------------------------------------------------------------------------


def fmt(value: Any) -> str:
  """A compact cell: numbers rounded, lists of numbers shortened."""
  if isinstance(value, bool) or value is None:
    return {True: 'yes', False: 'no', None: '-'}[value]
  if isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    if value == 0:
      return '0'
    return f'{value:.2f}' if abs(value) >= 1 else f'{value:.3g}'
  if isinstance(value, list):
    if len(value) > MAX_LIST and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
      ordered = sorted(value)
      return (f'{len(value)} values: first {fmt(value[0])}, last '
              f'{fmt(value[-1])}, min {fmt(ordered[0])}, median '
              f'{fmt(ordered[len(ordered) // 2])}, max {fmt(ordered[-1])}')
    return ', '.join(fmt(v) for v in value) if value else '-'
  if isinstance(value, dict):
    return '; '.join(f'{k}: {fmt(v)}' for k, v in value.items()) or '-'
  return str(value).replace('|', '\\|').replace('\n', ' ')


def _flat(value: Any) -> bool:
  """A scalar, or a list of scalars: fits in one cell."""
  if isinstance(value, list):
    return all(not isinstance(v, (dict, list)) for v in value)
  return not isinstance(value, dict)


def _flat_record(value: Any) -> bool:
  return isinstance(value, dict) and value and all(
      _flat(v) for v in value.values())


def _table(rows: Sequence[Tuple[str, Dict[str, Any]]], first: str) -> List[str]:
  """Rows of flat records as one table; `first` heads the row-name column."""
  columns: List[str] = []
  for _, record in rows:
    columns += [k for k in record if k not in columns]
  lines = [f'| {first} | ' + ' | '.join(columns) + ' |',
           '| --- |' + ' --- |' * len(columns)]
  for name, record in rows:
    lines.append(f'| {name} | ' + ' | '.join(
        fmt(record[c]) if c in record else '' for c in columns) + ' |')
  return lines


def _walk(path: str, value: Any, scalars: List[Tuple[str, Any]],
          tables: List[List[str]]) -> None:
  """Scalars go to `scalars` (by dotted path); records become tables."""
  if _flat(value):
    scalars.append((path, value))
  elif isinstance(value, list) and all(_flat_record(v) for v in value):
    tables.append([f'**{path}**', '', *_table(
        [(str(i), v) for i, v in enumerate(value)], '#')])
  elif (isinstance(value, dict) and len(value) > 1 and
        all(_flat_record(v) for v in value.values())):
    tables.append([f'**{path}**', '', *_table(list(value.items()), 'key')])
  elif isinstance(value, dict):
    for key, item in value.items():
      _walk(f'{path}.{key}' if path else key, item, scalars, tables)
  else:
    for index, item in enumerate(value):
      _walk(f'{path}[{index}]', item, scalars, tables)


def generic_lines(result: Dict[str, Any], source: str = '',
                  reason: str = '') -> List[str]:
  """Any result: the common header, then every other field, compactly."""
  lines = [f'### `{result.get("run_name", pathlib.Path(source).stem)}`', '']
  machine, versions = result.get('machine') or {}, result.get('versions') or {}
  if result.get('date_utc'):
    lines.append(f'- Date: {result["date_utc"]}' + (
        f'; machine: {machine.get("cpus", "?")} CPU cores '
        f'({machine.get("cpu_model", "?")})' if machine else '') + '.')
  if versions:
    lines.append('- Versions: ' + ', '.join(
        f'{k} {v}' for k, v in versions.items()) + '.')
  if result.get('command'):
    lines.append(f'- Command: `{result["command"]}`')
  if source or result.get('results_file'):
    lines.append('- Results: `' + (
        source or f'benchmarks/results/{result["results_file"]}') + '`')
  if result.get('note'):
    lines.append(f'- Note: {result["note"]}')
  if reason:
    lines.append(f'- Generic rendering ({reason}).')
  scalars: List[Tuple[str, Any]] = []
  tables: List[List[str]] = []
  for key, value in result.items():
    if key not in HEADER_FIELDS:
      _walk(key, value, scalars, tables)
  if scalars:
    lines += ['', '| field | value |', '| --- | --- |']
    lines += [f'| {path} | {fmt(value)} |' for path, value in scalars]
  for table in tables:
    lines += ['', *table]
  return lines


def render(path: str, generic: bool = False) -> str:
  """The markdown of the result in `path`."""
  with open(path) as f:
    result = json.load(f)
  if generic:
    return '\n'.join(generic_lines(result, path, 'asked for'))
  lines_fn, reason = renderer(result)
  if lines_fn is None:
    return '\n'.join(generic_lines(result, path, reason))
  return '\n'.join(lines_fn(result))


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('results', nargs='+', help='result JSON files')
  parser.add_argument('--generic', action='store_true',
                      help='the generic rendering, even if the module has one')
  args = parser.parse_args(argv)
  print('\n\n'.join(render(path, args.generic) for path in args.results))
  return 0


if __name__ == '__main__':
  sys.exit(main())
