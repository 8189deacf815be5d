"""Fingerprints cover the modules a module imports, and only those."""

import pathlib

import pytest

from pipeline import code_fingerprint


@pytest.fixture
def tree(tmp_path) -> pathlib.Path:
  """Packages `app` and `lib` with every kind of import, and a test file."""
  files = {
      'app/__init__.py': '',
      'app/main.py': ('import os\n'
                      'from app import helper\n'
                      'from . import relative\n'
                      'from lib.sub import thing\n'
                      'def late():\n'
                      '  import lib.lazy\n'),
      'app/helper.py': 'import numpy\n',
      'app/relative.py': 'from .helper import *\n',
      'app/unused.py': 'X = 1\n',
      'app/main_test.py': 'from app import main\n',
      'lib/__init__.py': '',
      'lib/sub/__init__.py': 'from .thing import Y\n',
      'lib/sub/thing.py': 'Y = 2\n',
      'lib/lazy.py': '',
  }
  for name, text in files.items():
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
  return tmp_path


def test_closure_follows_every_kind_of_import(tree):
  assert sorted(code_fingerprint.closure(['app.main'], str(tree))) == [
      'app', 'app.helper', 'app.main', 'app.relative', 'lib', 'lib.lazy',
      'lib.sub', 'lib.sub.thing']


@pytest.mark.parametrize('name,counts', [
    ('app/helper.py', True), ('lib/sub/__init__.py', True),
    ('lib/lazy.py', True), ('app/unused.py', False),
    ('app/main_test.py', False)])
def test_only_an_edit_of_an_imported_module_changes_it(tree, name, counts):
  before = code_fingerprint.fingerprint(['app.main'], str(tree))
  with open(tree / name, 'a') as f:
    f.write('# edited\n')
  after = code_fingerprint.fingerprint(['app.main'], str(tree))
  assert (after != before) == counts
  assert len(after) == code_fingerprint.FINGERPRINT_LENGTH


def test_a_renamed_import_changes_it(tree):
  before = code_fingerprint.fingerprint(['app.main'], str(tree))
  (tree / 'lib' / 'lazy.py').rename(tree / 'lib' / 'lazy2.py')
  (tree / 'app' / 'main.py').write_text(
      (tree / 'app' / 'main.py').read_text().replace('lazy', 'lazy2'))
  assert code_fingerprint.fingerprint(['app.main'], str(tree)) != before


def test_file_fingerprint(tmp_path):
  path = tmp_path / 'schema.pbtxt'
  path.write_text('a')
  first = code_fingerprint.file_fingerprint(str(path))
  assert len(first) == code_fingerprint.FINGERPRINT_LENGTH
  path.write_text('b')
  assert code_fingerprint.file_fingerprint(str(path)) != first
