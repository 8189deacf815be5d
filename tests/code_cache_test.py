"""The cache notices code: in a copy of the repository, editing the code a
component runs reruns that component and what follows; the rest stays
cached (pipeline/code_fingerprint.py)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Dict

from conftest import REPO_ROOT
from conftest import write_mnist_subset


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


def test_editing_code_reruns_its_component_and_what_follows(tmp_path):
  repo = copy_repository(tmp_path / 'repo')
  data = write_mnist_subset(tmp_path / 'mnist', {'train': 500, 't10k': 200})
  # Nothing is blessed, so nothing is pushed: the served model (part of the
  # gate's and evaluator's cache keys) stays the same throughout.
  args = ('--data-dir', str(data), '--epochs', '1', '--bless-threshold', '1')
  assert set(run_copy(repo, *args).values()) == {'ran'}

  edit(repo / 'models' / 'vae.py')
  assert run_copy(repo, *args) == {
      'CuratedSchemaGen': 'cached', 'IdxExampleGen': 'cached',
      'StatisticsGen': 'cached', 'DataGate': 'cached',
      'Trainer': 'ran', 'VaeEvaluator': 'ran', 'Pusher': 'ran'}

  edit(repo / 'components' / 'vae_evaluator' / 'blessing.py')
  assert run_copy(repo, *args) == {
      'CuratedSchemaGen': 'cached', 'IdxExampleGen': 'cached',
      'StatisticsGen': 'cached', 'DataGate': 'cached',
      'Trainer': 'cached', 'VaeEvaluator': 'ran', 'Pusher': 'ran'}

  # Unchanged code: everything cached.
  assert set(run_copy(repo, *args).values()) == {'cached'}
