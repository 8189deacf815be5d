"""Fingerprints change with the code and only with the code."""

import importlib
import sys

import pytest

from pipeline import code_fingerprint


@pytest.fixture
def package(tmp_path, monkeypatch):
  """An importable package `fpkg` with a module, a test and bytecode."""
  root = tmp_path / 'fpkg'
  (root / 'sub').mkdir(parents=True)
  (root / '__init__.py').write_text('')
  (root / 'model.py').write_text('X = 1\n')
  (root / 'sub' / 'layer.py').write_text('Y = 2\n')
  (root / 'model_test.py').write_text('def test(): pass\n')
  (root / '__pycache__').mkdir()
  (root / '__pycache__' / 'model.cpython-310.pyc').write_bytes(b'\0')
  monkeypatch.syspath_prepend(str(tmp_path))
  module = importlib.import_module('fpkg')
  yield root, module
  for name in [n for n in sys.modules if n.split('.')[0] == 'fpkg']:
    del sys.modules[name]


def test_source_files_skip_tests_and_bytecode(package):
  root, module = package
  assert sorted(code_fingerprint.source_files(module)) == [
      'fpkg/__init__.py', 'fpkg/model.py', 'fpkg/sub/layer.py']


def test_an_edit_changes_the_fingerprint_and_tests_do_not(package):
  root, module = package
  before = code_fingerprint.fingerprint([module])
  (root / 'model_test.py').write_text('def test(): assert False\n')
  (root / '__pycache__' / 'model.cpython-310.pyc').write_bytes(b'\1')
  assert code_fingerprint.fingerprint([module]) == before
  (root / 'sub' / 'layer.py').write_text('Y = 3\n')
  edited = code_fingerprint.fingerprint([module])
  assert edited != before
  (root / 'sub' / 'layer.py').write_text('Y = 2\n')
  assert code_fingerprint.fingerprint([module]) == before


def test_a_renamed_file_changes_the_fingerprint(package):
  root, module = package
  before = code_fingerprint.fingerprint([module])
  (root / 'model.py').rename(root / 'model2.py')
  assert code_fingerprint.fingerprint([module]) != before


def test_file_fingerprint(tmp_path):
  path = tmp_path / 'schema.pbtxt'
  path.write_text('a')
  first = code_fingerprint.file_fingerprint(str(path))
  assert len(first) == code_fingerprint.FINGERPRINT_LENGTH
  path.write_text('b')
  assert code_fingerprint.file_fingerprint(str(path)) != first
