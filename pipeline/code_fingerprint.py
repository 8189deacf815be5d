"""Fingerprints of the code each component runs, for TFX's cache key.

TFX reuses a component's earlier output when its execution properties and
input artifacts are unchanged; the Python code behind a `run_fn` path or a
custom executor class is not part of that key. So that editing that code
reruns the component (and, through its new output artifacts, everything
after it) while unchanged code stays cached, `create_pipeline` passes each
component a fingerprint of its own source files as an execution property.

A fingerprint is a SHA-256 over the name and bytes of every `.py` file of the
given modules and packages (a package: all its files, tests excluded), sorted
by name. Comments and whitespace count, as the fingerprint cannot tell them
from code; `__pycache__` and test files do not.
"""

import hashlib
import os
import types
from typing import Dict, Iterable

# Shown in logs and ML Metadata: long enough to be unique in practice.
FINGERPRINT_LENGTH = 16


def _is_source(name: str) -> bool:
  return (name.endswith('.py') and not name.endswith('_test.py') and
          not name.startswith('test_') and name != 'conftest.py')


def source_files(module: types.ModuleType) -> Dict[str, str]:
  """Dotted-path-like name -> file of every source file of `module`.

  A package contributes every source file below its folder; a plain module
  its own file. Names are relative to the folder holding the top-level
  package, so two checkouts of the same code give the same names.
  """
  path = os.path.abspath(module.__file__)
  depth = module.__name__.count('.') + (
      1 if os.path.basename(path) == '__init__.py' else 0)
  root = path
  for _ in range(depth + 1):
    root = os.path.dirname(root)
  if os.path.basename(path) != '__init__.py':
    paths = [path]
  else:
    paths = []
    for directory, subdirs, names in os.walk(os.path.dirname(path)):
      subdirs[:] = [d for d in subdirs if d != '__pycache__']
      paths.extend(os.path.join(directory, n) for n in names if _is_source(n))
  return {os.path.relpath(p, root).replace(os.sep, '/'): p for p in paths}


def fingerprint(modules: Iterable[types.ModuleType]) -> str:
  """A short hex digest of the source code of `modules`."""
  files: Dict[str, str] = {}
  for module in modules:
    files.update(source_files(module))
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
