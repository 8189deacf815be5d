"""Dependencies point down: layouts/ imports no other project package, models/
imports layouts/ only, components/ never pipeline/, pipeline/ neither a
runner nor benchmarks/, and benchmarks/ never tests/ (tests aside)."""

import ast
import pathlib

import pytest

from conftest import REPO_ROOT

PROJECT_PACKAGES = {'components', 'pipeline', 'models', 'layouts',
                    'benchmarks', 'tests', 'conftest', 'local_runner',
                    'kubeflow_runner'}
PRODUCT = {'components', 'pipeline', 'models', 'layouts'}
# Package -> the project packages its code may import.
ALLOWED = {
    'layouts': {'layouts'},
    'models': {'models', 'layouts'},
    'components': {'components', 'models', 'layouts'},
    'pipeline': PRODUCT,
    'benchmarks': PRODUCT | {'benchmarks', 'local_runner', 'kubeflow_runner'},
}


def _imported_packages(path: pathlib.Path):
  tree = ast.parse(path.read_text(), str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module]
    else:
      continue
    for name in names:
      top = name.split('.')[0]
      if top in PROJECT_PACKAGES:
        yield top, node.lineno


@pytest.mark.parametrize('package', sorted(ALLOWED))
def test_package_imports_point_down(package):
  sources = [p for p in (REPO_ROOT / package).rglob('*.py')
             if not p.name.endswith('_test.py') and p.name != 'conftest.py']
  assert sources
  upward = [f'{p.relative_to(REPO_ROOT)}:{line} imports {top}'
            for p in sources for top, line in _imported_packages(p)
            if top not in ALLOWED[package]]
  assert upward == []
