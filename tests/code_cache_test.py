"""The cache notices code: in a copy of the repository, editing a module
reruns exactly the components whose code imports it, and what follows; the
rest stays cached (pipeline/code_fingerprint.py)."""

import json
import modulefinder
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Dict, FrozenSet, List, Set

import pytest
from tfx import v1 as tfx

from conftest import REPO_ROOT
from conftest import write_mnist_subset
from pipeline import code_fingerprint
from pipeline import pipeline as pipeline_lib

# The installed packages (pyproject.toml): what the components' code is.
PRODUCT_PACKAGES = ('components', 'layouts', 'models', 'pipeline')


def copy_repository(destination: pathlib.Path) -> pathlib.Path:
  """The files git tracks or would track (not .venv, outputs, caches)."""
  listed = subprocess.run(
      ['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'],
      cwd=REPO_ROOT, capture_output=True, check=True).stdout
  for name in filter(None, listed.decode().split('\0')):
    source = REPO_ROOT / name
    if source.is_file():
      (destination / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(source, destination / name)
  return destination


def run_copy(repo: pathlib.Path, *args: str) -> Dict[str, str]:
  """Runs the copy's local_runner.py; returns component -> status."""
  # The copy's packages, not the installed checkout's, in this process and
  # in Beam's worker processes.
  env = dict(os.environ, PYTHONPATH=str(repo))
  result = subprocess.run(
      [sys.executable, str(repo / 'local_runner.py'), *args], cwd=repo,
      env=env, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((repo / 'outputs' / 'run_summary.json').read_text())
  return {name: c['status'] for name, c in summary['components'].items()}


def edit(path: pathlib.Path) -> None:
  with open(path, 'a') as f:
    f.write('\n# Edited by tests/code_cache_test.py.\n')


def code_entries(node: tfx.types.BaseNode) -> List[str]:
  """The modules a node's executor loads by name: the executor class's,
  and the Trainer's run_fn module."""
  entries = [node.executor_spec.executor_class.__module__]
  run_fn = node.exec_properties.get('run_fn')
  if run_fn:
    entries.append(run_fn.rpartition('.')[0])
  return entries


def imported_files(root: pathlib.Path, entries: List[str]) -> Set[str]:
  """The project files importing `entries` loads, as the standard library's
  ModuleFinder (an independent reading of the byte code) finds them."""
  finder = modulefinder.ModuleFinder(path=[str(root)])
  for entry in entries:
    finder.import_hook(entry)
  return {os.path.relpath(m.__file__, root)
          for m in finder.modules.values() if m.__file__}


@pytest.fixture(scope='module')
def nodes(tmp_path_factory) -> Dict[str, tfx.types.BaseNode]:
  """The pipeline's nodes whose cache key holds a code fingerprint."""
  root = tmp_path_factory.mktemp('pipeline')
  built = pipeline_lib.create_pipeline(
      pipeline_name='cache-test', pipeline_root=str(root / 'root'),
      data_root=str(root / 'data'), serving_dir=str(root / 'serving'))
  return {node.id: node for node in built.components
          if node.executor_spec.executor_class.__module__.startswith(
              PRODUCT_PACKAGES)}


def test_each_cache_key_holds_the_fingerprint_of_its_executors_imports(nodes):
  assert sorted(nodes) == ['DataGate', 'IdxExampleGen', 'Pusher', 'Trainer',
                           'VaeEvaluator']
  for name, node in nodes.items():
    expected = code_fingerprint.fingerprint(code_entries(node))
    assert expected in json.dumps(node.exec_properties, default=str), name


def test_editing_any_module_changes_exactly_the_keys_of_its_importers(
    nodes, tmp_path):
  """Each product module in turn, edited in a copy of the packages."""
  for package in PRODUCT_PACKAGES:
    shutil.copytree(REPO_ROOT / package, tmp_path / package,
                    ignore=shutil.ignore_patterns('__pycache__'))
  entries = {name: code_entries(node) for name, node in nodes.items()}
  importers = {name: imported_files(tmp_path, e) for name, e in entries.items()}

  def fingerprints() -> Dict[str, str]:
    return {name: code_fingerprint.fingerprint(e, str(tmp_path))
            for name, e in entries.items()}

  before = fingerprints()
  modules = sorted(
      str(path.relative_to(tmp_path)) for path in tmp_path.rglob('*.py')
      if not path.name.endswith('_test.py') and path.name != 'conftest.py')
  rerun: Dict[str, FrozenSet[str]] = {}
  for module in modules:
    path = tmp_path / module
    original = path.read_bytes()
    path.write_bytes(original + b'\n# edited\n')
    rerun[module] = frozenset(
        name for name, value in fingerprints().items()
        if value != before[name])
    path.write_bytes(original)
    assert rerun[module] == {
        name for name, files in importers.items() if module in files}, module
  assert fingerprints() == before
  # Spot checks of what the rule gives.
  assert rerun['models/data.py'] == {'DataGate', 'Trainer', 'VaeEvaluator'}
  assert rerun['components/vae_evaluator/blessing.py'] == {'VaeEvaluator'}
  assert rerun['pipeline/pipeline.py'] == set()


@pytest.mark.slow
def test_editing_code_reruns_its_component_and_what_follows(tmp_path):
  repo = copy_repository(tmp_path / 'repo')
  data = write_mnist_subset(tmp_path / 'mnist', {'train': 500, 't10k': 200})
  # Nothing is blessed, so nothing is pushed: the served model (part of the
  # gate's and evaluator's cache keys) stays the same throughout.
  args = ('--data-dir', str(data), '--epochs', '1', '--bless-threshold', '1')
  assert set(run_copy(repo, *args).values()) == {'ran'}

  # The data gate reads examples with models.data: a parser edit must not
  # leave its verdict and mean image cached.
  edit(repo / 'models' / 'data.py')
  assert run_copy(repo, *args) == {
      'CuratedSchemaGen': 'cached', 'IdxExampleGen': 'cached',
      'StatisticsGen': 'cached', 'DataGate': 'ran',
      'Trainer': 'ran', 'VaeEvaluator': 'ran', 'Pusher': 'ran'}

  edit(repo / 'components' / 'vae_evaluator' / 'blessing.py')
  assert run_copy(repo, *args) == {
      'CuratedSchemaGen': 'cached', 'IdxExampleGen': 'cached',
      'StatisticsGen': 'cached', 'DataGate': 'cached',
      'Trainer': 'cached', 'VaeEvaluator': 'ran', 'Pusher': 'ran'}

  # Unchanged code: everything cached.
  assert set(run_copy(repo, *args).values()) == {'cached'}
