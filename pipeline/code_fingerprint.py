"""Fingerprints of the code each component runs, for TFX's cache key.

TFX reuses a component's earlier output when its execution properties and
input artifacts are unchanged; the Python code behind a `run_fn` path or a
custom executor class is not part of that key. So that editing that code
reruns the component (and, through its new output artifacts, everything
after it) while unchanged code stays cached, `create_pipeline` passes each
component a fingerprint of the code it runs as an execution property.

That code is computed, not listed: the closure of the project modules that
the component's executor module (and the Trainer's `run_fn` module) import,
directly or through each other, found by reading their `import` statements
(also those inside functions). A module outside the project (TensorFlow,
TFX, the standard library) ends the walk. Importing `a.b.c` runs
`a/__init__.py` and `a/b/__init__.py` too, so they are part of it.

A fingerprint is a SHA-256 over the relative name and bytes of every file of
the closure, sorted by name. Comments and whitespace count, as the
fingerprint cannot tell them from code; test files are never imported by
product code, so they never count.
"""

import ast
import functools
import hashlib
import os
import pathlib
from typing import Dict, Iterable, Iterator, Optional, Tuple

# Shown in logs and ML Metadata: long enough to be unique in practice.
FINGERPRINT_LENGTH = 16
# The folder holding the project's top-level packages.
PROJECT_ROOT = str(pathlib.Path(__file__).resolve().parent.parent)


def module_file(name: str, root: str = PROJECT_ROOT) -> Optional[str]:
  """The file of project module `name` below `root`, or None if `name` is
  not a project module."""
  base = os.path.join(root, *name.split('.'))
  for path in (base + '.py', os.path.join(base, '__init__.py')):
    if os.path.isfile(path):
      return path
  return None


def _imported_names(path: str, name: str) -> Iterator[str]:
  """Every dotted name an `import` statement in the file may load."""
  with open(path, 'rb') as f:
    return iter(_parsed_imports(f.read(), path, name))


@functools.lru_cache(maxsize=4096)
def _parsed_imports(source: bytes, path: str, name: str) -> Tuple[str, ...]:
  """`_imported_names` of one content of a file (parsed once a process)."""
  tree = ast.parse(source, filename=path)
  package = (name if os.path.basename(path) == '__init__.py'
             else name.rpartition('.')[0])
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.extend(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        parts = package.split('.')
        base = '.'.join(parts[:len(parts) - node.level + 1])
        module = f'{base}.{node.module}' if node.module else base
      else:
        module = node.module
      found.append(module)
      # `from a import b` loads the submodule a.b when there is one.
      found.extend(f'{module}.{alias.name}' for alias in node.names)
  return tuple(found)


def _with_parents(name: str) -> Iterator[str]:
  parts = name.split('.')
  for end in range(1, len(parts) + 1):
    yield '.'.join(parts[:end])


def closure(entries: Iterable[str], root: str = PROJECT_ROOT) -> Dict[str, str]:
  """Module name -> file of every project module that importing `entries`
  (module names) loads."""
  found: Dict[str, str] = {}
  pending = list(entries)
  while pending:
    for name in _with_parents(pending.pop()):
      if name in found:
        continue
      path = module_file(name, root)
      if path is None:
        continue
      found[name] = path
      pending.extend(_imported_names(path, name))
  return found


def fingerprint(entries: Iterable[str], root: str = PROJECT_ROOT) -> str:
  """A short hex digest of the code that importing `entries` loads."""
  files = {os.path.relpath(path, root).replace(os.sep, '/'): path
           for path in closure(entries, root).values()}
  digest = hashlib.sha256()
  for name in sorted(files):
    with open(files[name], 'rb') as f:
      content = f.read()
    digest.update(f'{name}\0{len(content)}\0'.encode())
    digest.update(content)
  return digest.hexdigest()[:FINGERPRINT_LENGTH]


def file_fingerprint(path: str) -> str:
  """A short hex digest of one file's bytes (e.g. the curated schema)."""
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()[:FINGERPRINT_LENGTH]
